%% @doc Streaming Python generators to Erlang (`py:stream*').
%%
%% `stream/3,4' and `stream_eval/1,2' collect every value into a list.
%% `stream_start/3,4' calls the function in a context, then drives the
%% generator (sync or async) on a Python thread of its own in that port
%% program, which sends `{py_stream, Ref, {data, Value}}' per value, then
%% `{py_stream, Ref, done}' or `{py_stream, Ref, {error, Reason}}', to the
%% owner. A stream is wanted while it has a row in `py_streams': the Python
%% thread asks (`_py.stream_wanted') before it takes a value, at most every
%% 10 ms; `stream_cancel/1' and the owner's death (seen by this server)
%% delete the row, and the generator is then closed there. If the port
%% program dies first the owner gets `{error, {python_died, Reason}}'.
-module(py_stream).
-behaviour(gen_server).

-export([stream/3, stream/4, stream_eval/1, stream_eval/2,
         stream_start/3, stream_start/4, stream_cancel/1]).
-export([wanted/1, finished/1]).
-export([start_link/0, init/1, handle_call/3, handle_cast/2, handle_info/2]).

-define(TABLE, py_streams).  % {Ref, Owner}

-type start_opts() :: #{owner => pid(), kwargs => map(), pool => atom(), context => pid()}.

%% @doc Every value of the generator `Module.Function(*Args)', as a list.
-spec stream(atom() | binary(), atom() | binary(), list()) -> py:result().
stream(Module, Function, Args) ->
    stream(Module, Function, Args, #{}).

%% @doc The same with keyword arguments.
-spec stream(atom() | binary(), atom() | binary(), list(), map()) -> py:result().
stream(Module, Function, Args, Kwargs) ->
    case names(Module, Function, Args, Kwargs) of
        {ok, M, F} ->
            py:eval(py_context_router:lookup_pool(Module, Function),
                    <<"erlang._stream.collect(m, f, a, k, globals())">>,
                    #{<<"m">> => M, <<"f">> => F, <<"a">> => Args, <<"k">> => Kwargs},
                    py_config:call_timeout());
        Error ->
            Error
    end.

%% @doc Every value of the iterable `Code' evaluates to (a generator expression,
%% an iterator), as a list.
-spec stream_eval(iodata()) -> py:result().
stream_eval(Code) ->
    eval_collect(Code, none).

-spec stream_eval(iodata(), map()) -> py:result().
stream_eval(Code, Locals) when is_map(Locals) ->
    eval_collect(Code, Locals);
stream_eval(_Code, Locals) ->
    {error, {badarg, Locals}}.

%% @doc Starts streaming `Module.Function(*Args)' to the calling process.
-spec stream_start(atom() | binary(), atom() | binary(), list()) -> {ok, reference()} | {error, term()}.
stream_start(Module, Function, Args) ->
    stream_start(Module, Function, Args, #{}).

%% @doc Options: `owner' (the process that gets the events, default the caller),
%% `kwargs', and `pool' or `context' (where the generator runs).
-spec stream_start(atom() | binary(), atom() | binary(), list(), start_opts()) ->
          {ok, reference()} | {error, term()}.
stream_start(Module, Function, Args, Opts) when is_map(Opts) ->
    Owner = maps:get(owner, Opts, self()),
    Kwargs = maps:get(kwargs, Opts, #{}),
    case {names(Module, Function, Args, Kwargs), is_pid(Owner), context(Module, Function, Opts)} of
        {{ok, M, F}, true, {ok, Ctx, PortOwner}} ->
            Ref = make_ref(),
            true = ets:insert(?TABLE, {Ref, Owner}),
            gen_server:cast(?MODULE, {watch, Ref, Owner, PortOwner}),
            Locals = #{<<"m">> => M, <<"f">> => F, <<"a">> => Args, <<"k">> => Kwargs,
                       <<"o">> => Owner, <<"r">> => Ref},
            case py:eval(Ctx, <<"erlang._stream.start(m, f, a, k, o, r, globals())">>, Locals) of
                {ok, _} -> {ok, Ref};
                Error -> finished(Ref), Error
            end;
        {{ok, _, _}, true, Error} -> Error;
        {{ok, _, _}, false, _} -> {error, {badarg, {owner, Owner}}};
        {Error, _, _} -> Error
    end;
stream_start(_Module, _Function, _Args, Opts) ->
    {error, {badarg, Opts}}.

%% @doc Stops a stream: the generator is closed before it yields again and no
%% further event is sent. `ok' also for a stream that already ended.
-spec stream_cancel(reference()) -> ok | {error, term()}.
stream_cancel(Ref) when is_reference(Ref) ->
    finished(Ref);
stream_cancel(Other) ->
    {error, {badarg, Other}}.

%% @private Built-in for the Python thread: is the stream still wanted?
-spec wanted(reference()) -> boolean().
wanted(Ref) ->
    case ets:lookup(?TABLE, Ref) of
        [{_, Owner}] when node(Owner) =:= node() -> is_process_alive(Owner);
        [{_, _}] -> true;
        [] -> false
    end.

%% @private The stream ended (or was cancelled): forget it.
-spec finished(reference()) -> ok.
finished(Ref) ->
    true = ets:delete(?TABLE, Ref),
    gen_server:cast(?MODULE, {forget, Ref}).

%% Internal

eval_collect(Code, Locals) ->
    try iolist_to_binary(Code) of
        Bin -> py:eval(<<"erlang._stream.collect_eval(c, l, globals())">>,
                       #{<<"c">> => Bin, <<"l">> => Locals})
    catch
        error:badarg -> {error, {badarg, Code}}
    end.

names(Module, Function, Args, Kwargs) ->
    case {name(Module), name(Function)} of
        {{ok, M}, {ok, F}} when is_list(Args), length(Args) >= 0, is_map(Kwargs) -> {ok, M, F};
        {{ok, _}, {ok, _}} when is_list(Args), length(Args) >= 0 -> {error, {badarg, Kwargs}};
        {{ok, _}, {ok, _}} -> {error, {badarg, Args}};
        {{ok, _}, Error} -> Error;
        {Error, _} -> Error
    end.

name(Name) when is_atom(Name) -> {ok, atom_to_binary(Name, utf8)};
name(Name) when is_binary(Name) -> {ok, Name};
name(Name) -> {error, {badarg, Name}}.

context(Module, Function, Opts) ->
    Ctx = case Opts of
              #{context := C} -> C;
              #{pool := Pool} -> py_pool:get_context(Pool);
              _ when is_atom(Module) orelse is_binary(Module), is_atom(Function) orelse is_binary(Function) ->
                  py_pool:get_context(py_context_router:lookup_pool(Module, Function));
              _ -> py_pool:get_context(default)
          end,
    case is_pid(Ctx) andalso ets:lookup(py_contexts, Ctx) of
        [{_, _, PortOwner, _, _}] -> {ok, Ctx, PortOwner};
        [] -> {error, {badarg, {context, Ctx}}};
        false -> Ctx
    end.

%% gen_server: watches owners and port programs of running streams.

-spec start_link() -> {ok, pid()} | {error, term()}.
start_link() ->
    gen_server:start_link({local, ?MODULE}, ?MODULE, [], []).

-spec init([]) -> {ok, map()}.
init([]) ->
    %% After a restart: watch the owners of the streams that run (their port
    %% programs' deaths are no longer reported to them).
    State = lists:foldl(fun({Ref, Owner}, S) ->
                                O = erlang:monitor(process, Owner),
                                S#{O => {owner, Ref}}
                        end, #{}, ets:tab2list(?TABLE)),
    {ok, State}.

-spec handle_call(term(), gen_server:from(), map()) -> {reply, term(), map()}.
handle_call(_Request, _From, State) ->
    {reply, {error, unknown_call}, State}.

-spec handle_cast(term(), map()) -> {noreply, map()}.
handle_cast({watch, Ref, Owner, PortOwner}, State) ->
    O = erlang:monitor(process, Owner),
    P = erlang:monitor(process, PortOwner),
    {noreply, State#{Ref => {O, P}, O => {owner, Ref}, P => {port, Ref, Owner}}};
handle_cast({forget, Ref}, State) ->
    case maps:take(Ref, State) of
        {{O, P}, State1} ->
            erlang:demonitor(O, [flush]),
            erlang:demonitor(P, [flush]),
            {noreply, maps:without([O, P], State1)};
        error ->
            {noreply, State}
    end;
handle_cast(_Msg, State) ->
    {noreply, State}.

-spec handle_info(term(), map()) -> {noreply, map()}.
handle_info({'DOWN', Mon, process, _, Reason}, State) ->
    case maps:take(Mon, State) of
        {{owner, Ref}, State1} ->
            true = ets:delete(?TABLE, Ref),
            {noreply, drop(Ref, State1)};
        {{port, Ref, Owner}, State1} ->
            case ets:take(?TABLE, Ref) of
                [_] -> Owner ! {py_stream, Ref, {error, {python_died, reason(Reason)}}};
                [] -> ok
            end,
            {noreply, drop(Ref, State1)};
        error ->
            {noreply, State}
    end;
handle_info(_Info, State) ->
    {noreply, State}.

drop(Ref, State) ->
    case maps:take(Ref, State) of
        {{O, P}, State1} ->
            erlang:demonitor(O, [flush]),
            erlang:demonitor(P, [flush]),
            maps:without([O, P], State1);
        error ->
            State
    end.

reason({shutdown, {python_died, Status}}) -> Status;
reason(Other) -> Other.
