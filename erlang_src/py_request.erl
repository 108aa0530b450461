%% @doc The call path: the caller encodes its own request, writes it to the port
%% itself, and waits in its own mailbox. The request ID is a process alias tied to
%% a monitor of the port owner: a reply after a timeout is dropped by the runtime,
%% and a dying port program wakes every waiter at once.
%%
%% A context on another node (of a node pool) is in this node's `py_contexts'
%% with the context process in place of the port: port_command/2 cannot reach a
%% remote port, so the caller sends the encoded request to the context process,
%% which writes it. The rest is the same: the monitor is of the (remote) port
%% owner, so a lost connection wakes every waiter at once with
%% `{error, {nodedown, Node}}', and the owner sends the reply to the alias,
%% which the runtime routes back to the caller's node.
-module(py_request).

-include("py_protocol.hrl").

-export([call/3, call_route/3, try_route/3, send/2, cast/2, wait/2, failed/1, cancel/3,
         result/2, died/1]).

%% Makes a request message from the context's number in its port program, then
%% the request ID.
-type builder() :: fun((Local :: non_neg_integer()) -> fun((ReqId :: reference() | none) -> list())).
%% How to reach a context: its port (or, on another node, its context
%% process), the port's owner, its number in the port program, its load counter.
-type route() :: {port() | pid(), pid(), non_neg_integer(), py_inflight:load()}.
-export_type([builder/0, route/0]).

%% @doc Sends a request and waits for its reply. On timeout the port program is
%% told, so that the request is dropped if it has not started, and an
%% `erlang.call' it is blocked in raises instead of waiting on; and the port
%% owner, which restarts the port program if the request has not ended
%% within the pool's `interrupt_grace'.
-spec call(pid(), builder(), timeout()) -> {ok, term()} | {error, term()}.
call(Ctx, Build, Timeout) ->
    case ets:lookup(py_contexts, Ctx) of
        [{_, Port, Owner, Local, Load}] -> call_route({Port, Owner, Local, Load}, Build, Timeout);
        [] -> {error, {no_context, Ctx}}
    end.

%% @doc call/3 when the caller has the context's route already (py_pool:checkout/1).
-spec call_route(route(), builder(), timeout()) -> {ok, term()} | {error, term()}.
call_route(Route, Build, Timeout) ->
    case try_route(Route, Build, Timeout) of
        not_sent -> {error, {python_died, port_closed}};
        Reply -> Reply
    end.

%% @doc call_route/3, or `not_sent' if the port was closed before the request
%% could be written: nothing reached Python, another context may take it.
-spec try_route(route(), builder(), timeout()) -> {ok, term()} | {error, term()} | not_sent.
try_route({_Port, _Owner, _Local, none} = Route, Build, Timeout) ->
    try_counted(Route, Build, Timeout);
try_route(Route, Build, Timeout) ->
    %% a unit of py_semaphore: given back with the in-flight counter below
    case py_semaphore:acquire() of
        ok -> try_counted(Route, Build, Timeout);
        Overloaded -> Overloaded
    end.

try_counted({Port, Owner, Local, Load}, Build, Timeout) ->
    %% the slot's in-flight counter: lowered even if this process is killed
    py_inflight:begin_call(Load),
    try send_to(Port, Owner, Build(Local)) of
        {ok, _} = Sent -> await_sent(Sent, Port, Owner, Local, Timeout);
        {error, {python_died, port_closed}} -> not_sent
    after
        py_inflight:end_call(Load)
    end.

await_sent({ok, Ref}, Port, Owner, Local, Timeout) ->
    case wait(Ref, Timeout) of
        {error, timeout} = Error ->
            %% The owner makes sure the request ends (py_port, interrupt_grace).
            cancel(Port, py_msgpack:encode([?PY_MSG_CANCEL, Ref, Local]), Ref),
            Owner ! {'$py_timed_out', Local, Ref},
            Error;
        Reply ->
            Reply
    end.

%% @doc Sends a request to context `Ctx'; `Build' makes the message from the
%% request ID and the context's number in its port program.
-spec send(pid(), builder()) -> {ok, reference()} | {error, term()}.
send(Ctx, Build) ->
    case ets:lookup(py_contexts, Ctx) of
        [{_, Port, Owner, Local, _}] -> send_to(Port, Owner, Build(Local));
        [] -> {error, {no_context, Ctx}}
    end.

send_to(Port, Owner, Build) ->
    Ref = erlang:monitor(process, Owner, [{alias, reply_demonitor}]),
    try write_request(Port, Ref, py_msgpack:encode(in_chain(Build(Ref), Owner))) of
        true -> {ok, Ref}
    catch
        error:badarg ->
            erlang:demonitor(Ref, [flush]),
            {error, {python_died, port_closed}}
    end.

%% A request whose reply this process waits for. A driver's reply comes
%% from the driver to this process, not through the alias, so a wait that
%% times out tells the driver (wait/2); the driver's scheduler may poll for a
%% short reply (py_driver:call/2).
write_request(Port, Ref, Frame) when is_port(Port) ->
    case is_driver_port(Port) of
        true ->
            true = py_driver:call(Port, Ref, Frame),
            put({'$py_drv', Ref}, Port),
            true;
        false ->
            erlang:port_command(Port, Frame)
    end;
write_request(Ctx, _Ref, Frame) ->
    write(Ctx, Frame).

write(Port, Frame) when is_port(Port) ->
    erlang:port_command(Port, Frame);
write(Ctx, Frame) ->
    Ctx ! {'$py_write', Frame},
    true.

%% @doc Sends a request whose reply nobody wants.
-spec cast(pid(), builder()) -> ok | {error, term()}.
cast(Ctx, Build) ->
    case ets:lookup(py_contexts, Ctx) of
        [{_, Port, Owner, Local, _}] ->
            try write(Port, py_msgpack:encode(in_chain((Build(Local))(none), Owner))) of
                true -> ok
            catch
                error:badarg -> {error, {python_died, port_closed}}
            end;
        [] ->
            {error, {no_context, Ctx}}
    end.

%% @doc Waits for the reply to request `Ref'.
-spec wait(reference(), timeout()) -> {ok, term()} | {error, term()}.
wait(Ref, Timeout) ->
    receive
        {Ref, Tag, Payload} when Tag =:= ok; Tag =:= error ->
            replied(Ref),
            result(Tag, Payload);
        {Ref, failed, Reason} ->
            {error, Reason};
        {'DOWN', Ref, process, Owner, noconnection} ->
            erase({'$py_drv', Ref}),
            {error, {nodedown, node(Owner)}};
        {'DOWN', Ref, process, _, Reason} ->
            erase({'$py_drv', Ref}),
            died(Reason)
    after Timeout ->
        erlang:demonitor(Ref, [flush]),
        %% A driver would still send the reply here: it forgets it first.
        case erase({'$py_drv', Ref}) of
            undefined -> ok;
            Port -> catch py_driver:forget(Port, Ref)
        end,
        %% A reply sent before the alias was deactivated may already be here.
        receive {Ref, _, _} -> ok after 0 -> ok end,
        {error, timeout}
    end.

%% @doc The result of a reply message `{ReqId, Tag, Payload}' (wait/2; a
%% waiter of its own, py_event_loop's batches, decodes it the same way).
-spec result(ok | error, binary()) -> {ok, term()} | {error, term()}.
result(ok, Payload) ->
    case py_msgpack:decode_all(Payload) of
        {ok, Value} -> {ok, Value};
        {error, {atom_limit, _} = Reason} -> {error, Reason};
        {error, Reason} -> {error, {bad_reply, Reason}}
    end;
result(error, Payload) ->
    python_error(Payload).

%% @doc The error of a request whose port owner went down with `Reason'.
-spec died(term()) -> {error, {python_died, term()}}.
died(Reason) ->
    {error, {python_died, died_reason(Reason)}}.

%% @doc Writes the cancellation `Frame' of request `Ref' (whose wait timed
%% out) and drops a reply that came meanwhile: the linked-in driver sends
%% replies straight to the caller, not to its alias, so a reply sent before
%% the driver took the cancellation is flushed here.
-spec cancel(port() | pid(), iodata(), reference()) -> ok.
cancel(Port, Frame, Ref) ->
    _ = write_cancel(Port, Frame),
    receive {Ref, _, _} -> ok after 0 -> ok end.

%% Never waits on a busy port program (a stuck one reads no input): a cancel
%% it does not take leaves the queued request to run, its reply dropped. The
%% driver takes it synchronously (port_control), so its reply is not sent.
write_cancel(Port, Frame) when is_port(Port) ->
    case py_driver:is_driver(Port) of
        true -> catch py_driver:write_sync(Port, Frame);
        false -> catch erlang:port_command(Port, Frame, [nosuspend])
    end;
write_cancel(Ctx, Frame) ->
    write(Ctx, Frame).

%% @doc A reference whose wait/2 returns `{error, Reason}' (for spawn_call/3
%% when the request could not even be sent).
-spec failed(term()) -> reference().
failed(Reason) ->
    Ref = make_ref(),
    self() ! {Ref, failed, Reason},
    Ref.

%% Internal

%% A reply through the alias ended its monitor (reply_demonitor); one from
%% the linked-in driver (sent to the caller's pid) did not.
replied(Ref) ->
    erlang:demonitor(Ref),
    erase({'$py_drv', Ref}).

%% Whether a port is a driver's is noted for the last port this process
%% wrote a request to (one entry, however many ports restart).
is_driver_port(Port) ->
    case get('$py_drv_port') of
        {Port, IsDriver} ->
            IsDriver;
        _ ->
            IsDriver = py_driver:is_driver(Port),
            put('$py_drv_port', {Port, IsDriver}),
            IsDriver
    end.

%% A request sent by a process running a callback of the same port program
%% (py_callback) carries that callback's ID as a trailing chain marker: it runs
%% nested if a thread of the context waits for that callback, else in its turn.
%% One process dictionary read on the plain call path.
%% The marker is the first trailing element (spec/PROTOCOL.md, "Request
%% trailer"): it fills the nil a namespaced request has there.
in_chain(Msg, Owner) ->
    case get('$py_callback') of
        {Owner, CbId} -> set_nest(Msg, CbId);
        _ -> Msg
    end.

set_nest([Type | _] = Msg, CbId) ->
    case fixed_elements(Type) of
        none ->
            Msg;
        Fixed ->
            case lists:split(min(Fixed, length(Msg)), Msg) of
                {Head, []} -> Head ++ [CbId];
                {Head, [_Nil | Trailer]} -> Head ++ [CbId | Trailer]
            end
    end.

fixed_elements(?PY_MSG_CALL) -> 7;
fixed_elements(?PY_MSG_EVAL) -> 5;
fixed_elements(?PY_MSG_EXEC) -> 4;
fixed_elements(?PY_MSG_REF_OP) -> 8;
fixed_elements(_) -> none.

python_error(Payload) ->
    case decode3(Payload) of
        {ok, <<"KeyboardInterrupt">>, _Message, Traceback} ->
            %% py:interrupt/1 (or a timeout) stopped the Python code
            put('$py_last_traceback', Traceback),
            {error, interrupted};
        {ok, Class, Message, Traceback} ->
            put('$py_last_traceback', Traceback),
            %% Python may name classes at will: an atom only within the budget
            {error, {py_atoms:class_name(Class), Message}};
        error ->
            {error, {bad_reply, Payload}}
    end.

decode3(B0) ->
    maybe_decode(py_msgpack:decode(B0), fun(A, B1) ->
        maybe_decode(py_msgpack:decode(B1), fun(B, B2) ->
            maybe_decode(py_msgpack:decode(B2), fun(C, _) -> {ok, A, B, C} end)
        end)
    end).

maybe_decode({ok, Term, Rest}, Next) when is_binary(Term) -> Next(Term, Rest);
maybe_decode(_, _) -> error.

died_reason({shutdown, {python_died, Status}}) -> Status;
died_reason(Reason) -> Reason.
