%% @doc Owner of one port program. It stays off the call path's critical work:
%% callers write their own requests with port_command/2, and for each reply the
%% owner reads only the request ID (a process alias) and forwards the rest, still
%% encoded, to the caller. When the port program dies the owner exits, and every
%% caller waiting on it learns at once through its monitor.
%%
%% Callback handlers: the owner starts one handler per handler key (Python
%% thread and nesting depth) and keeps, per handler, how many requests it sent
%% and the last callback ID; the handler counts the ones it finished in an
%% atomics cell. Requests with one key never overlap on the Python side, so a
%% request for a key whose handler is still busy means Python abandoned the
%% previous one (its Erlang caller timed out and the wait was cancelled): that
%% handler is retired (it finishes, then exits) and the key gets a fresh one.
%% A handler or async-call process that exits abnormally gets its last
%% callback failed with `[21, Id, Reason]', so the Python thread never waits
%% for a reply that cannot come (a duplicate of a reply already written is
%% harmless: callback IDs are never reused and the port program drops replies
%% nobody waits for).
%%
%% Stuck Python: a caller that timed out has cancelled its request (which
%% interrupts it) and tells the owner, who asks the port program to say when
%% that request has ended (`[11, Watch, Ctx, ReqId]'). No answer within the
%% pool's `interrupt_grace' (code stuck in C, holding the GIL or not, or
%% catching KeyboardInterrupt and going on) and the port program is killed:
%% every caller waiting on it gets `{error, {python_died, stuck}}' and the
%% supervisor restarts it, as after any crash.
-module(py_port).
-behaviour(gen_server).

-include("py_protocol.hrl").

-export([start_link/4, info/1]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2, terminate/2]).

-record(state, {pool :: atom() | py_pool:member_key(),
                index :: non_neg_integer(),
                port :: port() | undefined,
                backend = port :: py_driver:backend(),
                os_pid :: integer() | undefined,
                handlers = #{} :: #{integer() => handler()},
                %% handler and async-call processes: what each is serving
                workers = #{} :: #{pid() => {key, integer()} | {async, non_neg_integer()} | retired},
                %% Channel servers Python used, watched so that Python learns
                %% when one is gone (closed), whatever the reason.
                channels = #{} :: #{pid() => {reference(), [pos_integer()]}},
                info = #{} :: map(),
                %% interrupt_grace: watches of timed-out requests (each
                %% Watch alias to its timer, and `written' or the frame a busy
                %% port did not take yet), how many were made, and whether
                %% one expired (the port program is killed, not asked to stop)
                grace = infinity :: timeout(),
                watches = #{} :: #{reference() => {reference(), written | binary()}},
                watched = 0 :: non_neg_integer(),
                stuck = false :: boolean(),
                %% Until the hello: what the port program printed (the reason
                %% it cannot start Python), newest first, at most ?STARTUP_TEXT bytes.
                startup = [] :: [binary()] | started}).

-define(STARTUP_TEXT, 16384).

%% {Pid, Done, Sent, LastId}: Done counts the requests the handler finished.
-type handler() :: {pid(), atomics:atomics_ref(), non_neg_integer(), non_neg_integer()}.

%% @doc Starts port program `Index' of `Pool', hosting `Contexts' contexts.
-spec start_link(atom() | py_pool:member_key(), non_neg_integer(), pos_integer(), py_pool:spec()) ->
          {ok, pid()} | {error, term()}.
start_link(Pool, Index, Contexts, Spec) ->
    gen_server:start_link(?MODULE, {Pool, Index, Contexts, Spec}, []).

%% @doc What the port program said in its hello, plus its OS pid (`undefined' for
%% the linked-in driver), `backend' and its watches of timed-out requests
%% (`watches': pending, `watched': ever made).
-spec info(pid()) -> map().
info(Owner) ->
    gen_server:call(Owner, info).

%% gen_server callbacks

-spec init({atom() | py_pool:member_key(), non_neg_integer(), pos_integer(), py_pool:spec()}) ->
          {ok, #state{}} | {stop, term()}.
init({Pool, Index, Contexts, Spec}) ->
    process_flag(trap_exit, true),
    Backend = maps:get(backend, Spec, port),
    case open(Backend, Contexts, Spec) of
        {ok, Port, OsPid} ->
            %% Requests may follow at once: they wait (in the pipe, or in the
            %% driver) while Python starts.
            %% Node-wide setup (py_setup: logging, tracing, a venv) before any request.
            _ = [port_command(Port, py_msgpack:encode([?PY_MSG_EXEC, none, I, Code]))
                 || Code <- py_setup:codes(), I <- lists:seq(0, Contexts - 1)],
            ets:insert(py_ports, {{Pool, Index}, self(), Port}),
            %% A stuck driver context cannot be killed without the node: its
            %% timed-out requests are not watched (interrupt_grace infinity).
            Grace = case Backend of
                        port -> maps:get(interrupt_grace, Spec, py_config:interrupt_grace());
                        driver -> infinity
                    end,
            {ok, #state{pool = Pool, index = Index, port = Port, os_pid = OsPid,
                        backend = Backend, grace = Grace}};
        {error, Reason} ->
            {stop, Reason}
    end.

%% A port program, or a port of the linked-in driver (py_driver): the same
%% frames either way, each sending its hello first.
open(port, Contexts, Spec) ->
    Program = py_config:port_program(),
    Options = [{packet, 4}, binary, exit_status, use_stdio,
               {args, py_config:port_args(Contexts, maps:get(python_path, Spec, []),
                                          maps:get(max_memory, Spec, undefined))},
               {env, py_config:port_env(maps:get(env, Spec, []))}],
    try open_port({spawn_executable, Program}, Options) of
        Port ->
            true = port_command(Port, py_msgpack:encode([?PY_MSG_HELLO, ?PY_PROTOCOL_VERSION, #{}])),
            {os_pid, OsPid} = erlang:port_info(Port, os_pid),
            {ok, Port, OsPid}
    catch
        error:Reason -> {error, {port_program, Program, Reason}}
    end;
open(driver, Contexts, Spec) ->
    py_driver:open(Contexts, maps:get(python_path, Spec, [])).

-spec handle_call(term(), gen_server:from(), #state{}) -> {reply, term(), #state{}}.
handle_call(info, _From, #state{info = Info, os_pid = OsPid, backend = Backend} = State) ->
    %% a driver port has no OS process of its own: nothing to kill without the node
    Os = case Backend of port -> OsPid; driver -> undefined end,
    {reply, Info#{os_pid => Os, backend => Backend, watches => map_size(State#state.watches),
                  watched => State#state.watched}, State};
handle_call(_Request, _From, State) ->
    {reply, {error, unknown_call}, State}.

-spec handle_cast(term(), #state{}) -> {noreply, #state{}}.
handle_cast(_Msg, State) ->
    {noreply, State}.

-spec handle_info(term(), #state{}) -> {noreply, #state{}} | {stop, term(), #state{}}.
handle_info({Port, {data, Data}}, #state{port = Port} = State) ->
    try
        case Data of
            <<16#93, ?PY_MSG_REPLY_OK, Rest/binary>> -> forwarded(forward(Rest, ok, Data), State);
            <<16#95, ?PY_MSG_REPLY_ERROR, Rest/binary>> -> forwarded(forward(Rest, error, Data), State);
            <<16#95, ?PY_MSG_CALLBACK, Rest/binary>> -> callback(Rest, State);
            _ -> handle_message(Data, State)
        end
    catch
        %% a well-formed message with values of the wrong types
        Class:Reason -> bad_frame({Class, Reason}, State)
    end;
handle_info({Port, {exit_status, Status}}, #state{port = Port, startup = Text} = State)
  when is_list(Text) ->
    %% Python never started: say why, visibly (no `python' domain, which
    %% OTP's default handler hides).
    logger:error("Python port program ~ts of pool ~p exited with status ~p before Python "
                 "started:~n~ts", [py_config:port_program(), State#state.pool, Status,
                                   case Text of [] -> "(it printed nothing)"; _ -> lists:reverse(Text) end]),
    {stop, {shutdown, {python_died, Status}}, State#state{port = undefined}};
handle_info({Port, {exit_status, Status}}, #state{port = Port} = State) ->
    logger:error("Python port program ~p of pool ~p exited with status ~p",
                 [State#state.os_pid, State#state.pool, Status], #{domain => [python]}),
    {stop, {shutdown, {python_died, Status}}, State#state{port = undefined}};
handle_info({'EXIT', Port, Reason}, #state{port = Port} = State) ->
    {stop, {shutdown, {python_died, Reason}}, State#state{port = undefined}};
handle_info({'DOWN', _Ref, process, Server, _}, #state{channels = Channels, port = Port} = State)
  when is_map_key(Server, Channels) ->
    {_, Ids} = maps:get(Server, Channels),
    [catch port_command(Port, py_msgpack:encode([?PY_MSG_CHANNEL_CLOSED, Id])) || Id <- Ids],
    {noreply, State#state{channels = maps:remove(Server, Channels)}};
handle_info({'EXIT', Pid, Reason}, #state{} = State) ->
    {noreply, worker_exit(Pid, Reason, State)};
handle_info({'$py_timed_out', Local, ReqId}, State) ->
    {noreply, watch(Local, ReqId, State)};
handle_info({Watch, _Tag, _Payload}, #state{watches = Watches} = State)
  when is_map_key(Watch, Watches) ->
    %% the watched request has ended
    {{TRef, _}, Watches1} = maps:take(Watch, Watches),
    _ = erlang:cancel_timer(TRef),
    {noreply, State#state{watches = Watches1}};
handle_info({timeout, TRef0, {stuck, Watch, Local}}, #state{watches = Watches} = State)
  when is_map_key(Watch, Watches), element(2, map_get(Watch, Watches)) =/= written ->
    %% The port was busy (its input not read) when the watch was made: a
    %% port program that has not taken it for a whole grace is stuck too.
    {_, Frame} = maps:get(Watch, Watches),
    case write_nosuspend(State#state.port, Frame) of
        true ->
            TRef = erlang:start_timer(State#state.grace, self(), {stuck, Watch, Local}),
            {noreply, State#state{watches = Watches#{Watch := {TRef, written}}}};
        false ->
            handle_info({timeout, TRef0, {stuck, Watch, Local}},
                        State#state{watches = Watches#{Watch := {TRef0, written}}})
    end;
handle_info({timeout, _TRef, {stuck, Watch, Local}}, #state{watches = Watches} = State)
  when is_map_key(Watch, Watches) ->
    logger:error("Python context ~p of port program ~p (pool ~p) is stuck: a request whose "
                 "caller timed out has not ended ~p ms after its interrupt; killing the port "
                 "program (it restarts)", [Local, State#state.os_pid, State#state.pool,
                                            State#state.grace], #{domain => [python]}),
    {stop, {shutdown, {python_died, stuck}}, State#state{stuck = true}};
handle_info(_Other, State) ->
    {noreply, State}.

-spec terminate(term(), #state{}) -> ok.
terminate(Reason, #state{pool = Pool, index = Index, port = Port, os_pid = OsPid,
                          stuck = Stuck, backend = Backend}) ->
    ets:delete_object(py_ports, {{Pool, Index}, self(), Port}),
    case {Port, Backend} of
        {undefined, _} -> ok;
        %% the driver stops the port's contexts after their queued requests
        {_, driver} -> catch port_close(Port), ok;
        _ when Stuck -> kill(Port, OsPid);
        %% The supervisor was killed: no orderly stop. The port is closed
        %% first, so that no caller can write a request to a port program
        %% that is already gone (it gets not_sent and chooses again).
        _ when Reason =:= killed ->
            catch port_close(Port),
            _ = os:cmd("kill -9 " ++ integer_to_list(OsPid)),
            ok;
        _ -> shut_down(Port, OsPid)
    end.

%% Internal

%% The request ID is a reference (ext 4), almost always in an ext8 header.
%% `safe': bytes that would create an atom are no reference this node issued.
forward(<<16#c7, Len, ?PY_EXT_REF, RefBytes:Len/binary, Payload/binary>>, Tag, Whole) ->
    try binary_to_term(<<131, RefBytes/binary>>, [safe]) of
        Ref when is_reference(Ref) ->
            Ref ! {Ref, Tag, Payload},
            ok;
        _ ->
            forward(<<>>, Tag, Whole)
    catch
        error:badarg -> forward(<<>>, Tag, Whole)
    end;
forward(_, Tag, Whole) ->
    case py_msgpack:decode_reply(Whole) of
        {_Type, Ref, Payload} when is_reference(Ref) -> Ref ! {Ref, Tag, Payload}, ok;
        {error, {atom_limit, _}} -> ok;
        {error, Reason} -> {error, Reason};
        _ -> ok  % a cast's reply or an ID we never issued: nobody waits for it
    end.

forwarded(ok, State) ->
    {noreply, State};
forwarded({error, Reason}, State) ->
    bad_frame(Reason, State).

%% A frame that does not decode: the port program is broken or hostile. It is
%% closed (its callers get `{error, {python_died, _}}' at once, the context
%% restarts); the owner itself exits normally.
bad_frame(Reason, State) ->
    logger:error("Python port program ~p of pool ~p sent a malformed frame (~0tp): "
                 "closing it", [State#state.os_pid, State#state.pool, Reason],
                 #{domain => [python]}),
    {stop, {shutdown, {python_died, {bad_frame, Reason}}}, State}.

handle_message(Data, State) ->
    case py_msgpack:decode_all(Data) of
        {ok, [?PY_MSG_HELLO, ?PY_PROTOCOL_VERSION, Info]} ->
            {noreply, State#state{info = Info, startup = started}};
        {ok, [?PY_MSG_HELLO, Version | _]} ->
            {stop, {shutdown, {protocol_version, Version}}, State};
        {ok, [?PY_MSG_OUTPUT, Stream, Ctx, Text]} ->
            log_output(Stream, Ctx, Text, State),
            {noreply, startup_text(Text, State)};
        {ok, [?PY_MSG_LOG, Level, Logger, Message, Meta]} ->
            logger:log(log_level(Level), "~ts", [Message],
                       #{domain => [python], py_logger => Logger, py_meta => Meta}),
            {noreply, State};
        {ok, [?PY_MSG_SEND, Pid, Term]} when is_pid(Pid) ->
            Pid ! Term,
            {noreply, State};
        {ok, [Type, Id, Server | _]} when Type >= ?PY_MSG_CHANNEL_ACK,
                                          Type =< ?PY_MSG_CHANNEL_RETURN, is_pid(Server),
                                          node(Server) =/= node() ->
            %% A channel of another node: its server cannot write to this
            %% port, so the Python side would wait forever. Closed, said once.
            logger:warning("a channel of node ~p was used by a port program of node ~p: "
                           "channels are served on their own node only",
                           [node(Server), node()], #{domain => [python]}),
            catch port_command(State#state.port, py_msgpack:encode([?PY_MSG_CHANNEL_CLOSED, Id])),
            {noreply, State};
        {ok, [?PY_MSG_CHANNEL_ACK, Id, Server, Counters, Count, Bytes, Want]} when is_pid(Server) ->
            %% Before anything later from this port (a reply saying "drained")
            %% reaches a sender: the bytes Python took no longer count.
            release_bytes(Counters, Bytes),
            Server ! {'$py_ack', State#state.port, Count, Want},
            {noreply, watch_channel(Server, Id, State)};
        {ok, [?PY_MSG_CHANNEL_PROBE, Id, Server, Counters, Count, Bytes]} when is_pid(Server) ->
            %% An ack, and try_receive asks what is queued now.
            release_bytes(Counters, Bytes),
            Server ! {'$py_probe', State#state.port, Count},
            {noreply, watch_channel(Server, Id, State)};
        {ok, [?PY_MSG_CHANNEL_RETURN, Id, Server, Counters, Count, Bytes]} when is_pid(Server) ->
            %% An ack, and nothing in that port program receives any more.
            release_bytes(Counters, Bytes),
            Server ! {'$py_return', State#state.port, Count},
            {noreply, watch_channel(Server, Id, State)};
        {ok, [?PY_MSG_CHANNEL_CLOSE, Id, Server, Counters]} when is_pid(Server) ->
            catch py_channel_server:close(Server, Counters),
            {noreply, watch_channel(Server, Id, State)};
        {ok, [?PY_MSG_CHANNEL_BYTES, Id, Server, Bin]} when is_pid(Server), is_binary(Bin) ->
            Server ! {'$py_bytes', Bin},
            {noreply, watch_channel(Server, Id, State)};
        {ok, [?PY_MSG_PROTOCOL_ERROR, Reason]} ->
            logger:error("Python port program protocol error: ~ts", [Reason],
                         #{domain => [python]}),
            {noreply, State};
        {ok, Other} ->
            logger:warning("unexpected message from the Python port program: ~p", [Other],
                           #{domain => [python]}),
            {noreply, State};
        {error, {atom_limit, Limit}} ->
            logger:warning("a message from the Python port program was dropped: it holds "
                           "more new atoms than the node allows (max_new_atoms ~p)", [Limit],
                           #{domain => [python]}),
            {noreply, State};
        {error, Reason} ->
            bad_frame(Reason, State)
    end.

%% A callback request `[16, Id, HandlerKey, Name, Args]': the handler key names
%% the Python thread (and nesting depth); `none' (async calls) runs on its own.
callback(Bin, #state{port = Port} = State) ->
    case py_msgpack:decode(Bin) of
        {ok, Id, Rest0} when is_integer(Id) ->
            case py_msgpack:decode(Rest0) of
                {ok, Nil, Request} when Nil =:= none; Nil =:= nil ->  % app env none_as
                    Pid = proc_lib:spawn_link(py_callback, run, [self(), Port, Id, Request]),
                    {noreply, State#state{workers = (State#state.workers)#{Pid => {async, Id}}}};
                {ok, Key, Request} when is_integer(Key) ->
                    case handler(Key, State) of
                        {ok, {Pid, Done, Sent, _}, State1} ->
                            Pid ! {py_callback, Id, Request},
                            Handlers = State1#state.handlers,
                            {noreply,
                             State1#state{handlers = Handlers#{Key => {Pid, Done, Sent + 1, Id}}}};
                        error ->
                            %% No handler could start: fail the call rather than leave it waiting.
                            py_callback:write_reply(Port, Id, {error, <<"no callback handler">>}),
                            {noreply, State}
                    end;
                Bad ->
                    %% The thread that asked waits for a reply: it gets one.
                    py_callback:write_reply(Port, Id, {error, <<"malformed callback request">>}),
                    case Bad of
                        {error, Reason} -> bad_frame(Reason, State);
                        _ -> {noreply, State}
                    end
            end;
        {ok, _, _} ->
            bad_frame(callback_id, State);
        {error, Reason} ->
            bad_frame(Reason, State)
    end.

%% The handler of `Key', idle: a busy one (its request was abandoned by
%% Python) is retired and replaced.
handler(Key, #state{handlers = Handlers, workers = Workers, port = Port} = State) ->
    case Handlers of
        #{Key := {Pid, Done, Sent, _} = Handler} ->
            case atomics:get(Done, 1) of
                Sent ->
                    {ok, Handler, State};
                _ ->
                    py_callback:retire(Pid),
                    handler(Key, State#state{handlers = maps:remove(Key, Handlers),
                                             workers = Workers#{Pid => retired}})
            end;
        _ ->
            Done = atomics:new(1, []),
            case py_callback_sup:start_handler(self(), Port, Done) of
                {ok, Pid} ->
                    Handler = {Pid, Done, 0, 0},
                    {ok, Handler, State#state{handlers = Handlers#{Key => Handler},
                                              workers = Workers#{Pid => {key, Key}}}};
                _ ->
                    error
            end
    end.

%% Python's counts are trusted only as far as the counters accept them.
release_bytes(Counters, Bytes) when is_integer(Bytes), Bytes > 0 ->
    try atomics:sub(Counters, 1, Bytes) catch error:badarg -> ok end;
release_bytes(_Counters, _Bytes) ->
    ok.

watch_channel(Server, Id, #state{channels = Channels} = State) ->
    case Channels of
        #{Server := {Monitor, Ids}} ->
            case lists:member(Id, Ids) of
                true -> State;
                false -> State#state{channels = Channels#{Server := {Monitor, [Id | Ids]}}}
            end;
        _ ->
            Monitor = erlang:monitor(process, Server),
            State#state{channels = Channels#{Server => {Monitor, [Id]}}}
    end.

%% A handler or async-call process exited.
worker_exit(Pid, Reason, #state{handlers = Handlers, workers = Workers} = State) ->
    case maps:take(Pid, Workers) of
        {{key, Key}, Workers1} ->
            Handlers1 = case maps:take(Key, Handlers) of
                            {{Pid, _Done, Sent, LastId}, H} ->
                                Sent > 0 andalso Reason =/= normal
                                    andalso fail_callback(LastId, Reason, State),
                                H;
                            _ ->
                                Handlers
                        end,
            State#state{handlers = Handlers1, workers = Workers1};
        {{async, Id}, Workers1} ->
            Reason =/= normal andalso fail_callback(Id, Reason, State),
            State#state{workers = Workers1};
        {retired, Workers1} ->
            %% its request was abandoned: nobody waits for a reply
            State#state{workers = Workers1};
        error ->
            State
    end.

%% The callback process of `Id' died without replying (or after): fail the call.
fail_callback(Id, Reason, #state{port = Port}) ->
    Text = case unicode:characters_to_binary(io_lib:format("~0tp", [Reason])) of
               Bin when is_binary(Bin) -> Bin;
               _ -> <<"?">>
           end,
    py_callback:write_reply(Port, Id, {error, <<"callback process died: ", Text/binary>>}),
    true.

log_output(Stream, Ctx, Text, #state{port = Port, pool = Pool}) ->
    Context = case Ctx of
                  none -> undefined;
                  nil -> undefined;  % app env none_as
                  _ -> case ets:match(py_contexts, {'$1', Port, '_', Ctx, '_'}) of
                           [[Pid]] -> Pid;
                           _ -> undefined
                       end
              end,
    {Level, Name} = case Stream of
                        ?PY_STDOUT -> {notice, stdout};
                        _ -> {warning, stderr}
                    end,
    logger:log(Level, "python ~s: ~ts", [Name, string:trim(Text, trailing, "\n")],
               #{domain => [python], stream => Name, py_context => Context, pool => Pool}).

startup_text(Text, #state{startup = Acc} = State) when is_list(Acc), is_binary(Text) ->
    case iolist_size(Acc) + byte_size(Text) =< ?STARTUP_TEXT of
        true -> State#state{startup = [Text | Acc]};
        false -> State
    end;
startup_text(_Text, State) ->
    State.

log_level(L) when L >= 50 -> critical;
log_level(L) when L >= 40 -> error;
log_level(L) when L >= 30 -> warning;
log_level(L) when L >= 20 -> info;
log_level(_) -> debug.

%% A request of context `Local' timed out (its caller wrote the cancel): the
%% port program answers `Watch' once the request has ended.
watch(_Local, _ReqId, #state{grace = infinity} = State) ->
    State;
watch(Local, ReqId, #state{port = Port, grace = Grace, watches = Watches} = State) ->
    Watch = erlang:alias([reply]),
    Frame = py_msgpack:encode([?PY_MSG_WATCH_END, Watch, Local, ReqId]),
    %% The owner never waits on a busy port (its timers must run).
    Written = case write_nosuspend(Port, Frame) of
                  true -> written;
                  false -> Frame
              end,
    TRef = erlang:start_timer(Grace, self(), {stuck, Watch, Local}),
    State#state{watches = Watches#{Watch => {TRef, Written}}, watched = State#state.watched + 1}.

write_nosuspend(Port, Frame) ->
    try erlang:port_command(Port, Frame, [nosuspend])
    catch error:badarg -> false  % closed: its exit_status follows
    end.

%% A stuck port program: killed at once, gone before the owner is.
kill(Port, OsPid) ->
    _ = os:cmd("kill -9 " ++ integer_to_list(OsPid)),
    receive
        {Port, {exit_status, _}} -> ok
    after 2000 ->
        ok
    end,
    catch port_close(Port),
    ok.

%% Asks the port program to finish (running requests get up to 1 s), then makes
%% sure the OS process is gone before the owner is.
shut_down(Port, OsPid) ->
    catch port_command(Port, py_msgpack:encode([?PY_MSG_SHUTDOWN])),
    receive
        {Port, {exit_status, _}} -> ok
    after 2000 ->
        _ = os:cmd("kill -9 " ++ integer_to_list(OsPid)),
        catch port_close(Port),
        ok
    end.
