%% @doc Python async work driven from Erlang (asyncio.md, "Async Task API").
%%
%% Event loops run in the port programs of pool `py_event_loops' (one asyncio
%% loop per port program, on a thread of its own; spec/PROTOCOL.md, "Event
%% loops"). The caller encodes its task and writes it to the loop's port
%% itself, as `py:call' does; the result comes back to the caller's alias
%% through the port owner. So any number of tasks from any number of processes
%% are in flight at once with no Erlang process in between, and a caller that
%% gave up never gets a late message.
%%
%% `Module.Function(*Args, **Kwargs)' may be a coroutine function (it runs as
%% an asyncio task) or a plain function (it runs when the loop takes the
%% request; its result is the task's). Errors are `{error, {ExcClass, Msg}}'
%% as for `py:call'; `{error, timeout}' cancels the task; a port program that
%% dies is `{error, {python_died, _}}' at once and the loop starts again.
%%
%% This module also is a server: it forgets a process's namespace on the loops
%% (exec/eval) when the process exits, and it keeps the results of tasks
%% created by processes that another node spawned (an `rpc:call' runs in a
%% process that exits at once): such a task's reply goes to the server, and
%% await/2 from any process of this node collects it (distributed.md, "Using
%% the Async Task API Remotely"). Kept results not awaited expire after 5 min.
-module(py_event_loop).
-behaviour(gen_server).

-include("py_protocol.hrl").

-export([run/3, run/4, create_task/3, create_task/4, create_task/5, create_tasks/1,
         create_tasks/2, await/1, await/2,
         spawn_task/3, spawn_task/4, spawn_task/5, get_loop/0, exec/1, exec/2, eval/1, eval/2]).
%% For py_event_loop_pool and py
-export([run_on/5, create_task_on/5, create_task_on/6, create_tasks_on/2, default_timeout/0]).
-export([start_link/0, init/1, handle_call/3, handle_cast/2, handle_info/2]).

-type loop() :: {py_loop, pos_integer()}.
-type name() :: atom() | binary().
-type run_opts() :: #{timeout => timeout(), kwargs => map()}.
-type task() :: {name(), name(), list()} | {name(), name(), list(), map()}.
-export_type([loop/0, task/0]).

-define(POOL, py_event_loops).
-define(LOOP_ID, 0).  % the loop's number in its port program
-define(DEFAULT_TIMEOUT, 5000).
-define(IS_TIMEOUT(T), (T =:= infinity orelse (is_integer(T) andalso T >= 0))).
-define(KEPT, py_event_loop_kept).  % ETS: the tasks whose results the server keeps
-define(KEEP_MS, 300000).
-define(BATCH_MAX, 256). % tasks per write: the loop starts on the first while more come
-define(BATCH_BYTES, 1 bsl 20).  % bytes per write at most (or half of max_frame)
%% The calling process's tasks on one loop owner share one monitor of it
%% (see task_ref/3): {Owner, Mon, Outstanding, Port, Unalias}, or {dead,
%% Mon, Reason, Outstanding} once that owner died, until its tasks have been
%% awaited. Unalias: the replies come to the pid, not through the alias (the
%% linked-in driver's), which await/2 then deactivates itself.
-define(SHARED, '$py_tasks').

%% @doc The event loop of this module (the first of py_event_loop_pool's).
-spec get_loop() -> {ok, loop()} | {error, term()}.
get_loop() ->
    case py_pool:pool_started(?POOL) of
        true -> {ok, {py_loop, 1}};
        false -> {error, event_loops_not_started}
    end.

%% @doc Runs `Module.Function(*Args)' on the loop and waits (5000 ms).
-spec run(name(), name(), list()) -> {ok, term()} | {error, term()}.
run(Module, Function, Args) ->
    run(Module, Function, Args, #{}).

%% @doc As run/3 with options `timeout' (ms or `infinity', default 5000) and `kwargs'.
-spec run(name(), name(), list(), run_opts()) -> {ok, term()} | {error, term()}.
run(Module, Function, Args, Opts) ->
    run_on({py_loop, 1}, Module, Function, Args, Opts).

%% @doc Submits `Module.Function(*Args)'; the reference is for await/1,2.
-spec create_task(name(), name(), list()) -> reference().
create_task(Module, Function, Args) ->
    create_task_on({py_loop, 1}, Module, Function, Args, #{}).

%% @doc `create_task(Module, Function, Args, Kwargs)', or
%% `create_task(Loop, Module, Function, Args)' → `{ok, Ref}' on a given loop.
-spec create_task(name(), name(), list(), map()) -> reference();
                 (loop(), name(), name(), list()) -> {ok, reference()}.
create_task({py_loop, _} = Loop, Module, Function, Args) ->
    {ok, create_task_on(Loop, Module, Function, Args, #{})};
create_task(Module, Function, Args, Kwargs) ->
    create_task_on({py_loop, 1}, Module, Function, Args, Kwargs).

%% @doc create_task on loop `Loop' with keyword arguments → `{ok, Ref}'.
-spec create_task(loop(), name(), name(), list(), map()) -> {ok, reference()}.
create_task(Loop, Module, Function, Args, Kwargs) ->
    {ok, create_task_on(Loop, Module, Function, Args, Kwargs)}.

%% @doc Submits several tasks at once: `{Module, Function, Args}' or
%% `{Module, Function, Args, Kwargs}' each, in one write to the loop's port
%% (per 256 tasks) instead of one each. A reference per task, in order, for
%% await/1,2; the tasks start in this order. A malformed entry gets a
%% reference whose await returns `{error, {badarg, _}}'; the others still run.
-spec create_tasks([task()]) -> [reference()] | {error, {badarg, term()}}.
create_tasks(Tasks) ->
    create_tasks_on({py_loop, 1}, Tasks).

%% @doc create_tasks/1 on a given loop → `{ok, Refs}'.
-spec create_tasks(loop(), [task()]) -> {ok, [reference()]} | {error, {badarg, term()}}.
create_tasks(Loop, Tasks) ->
    case create_tasks_on(Loop, Tasks) of
        Refs when is_list(Refs) -> {ok, Refs};
        Error -> Error
    end.

%% @doc The result of a task (5000 ms).
-spec await(reference()) -> {ok, term()} | {error, term()}.
await(Ref) ->
    await(Ref, ?DEFAULT_TIMEOUT).

%% @doc The result of a task, waiting at most `Timeout' ms (or `infinity');
%% on timeout the task is cancelled. `Ref' is a reference create_task/3,4,5
%% or create_tasks/1,2 gave the calling process (or, for a task kept by the
%% server, any process of this node); a reference of no task gives
%% `{error, timeout}' after `Timeout'. `py:spawn_call/3' references go to
%% `py:await/1,2'.
-spec await(reference(), timeout()) -> {ok, term()} | {error, term()}.
await(Ref, Timeout) when is_reference(Ref), ?IS_TIMEOUT(Timeout) ->
    %% what a task of this process left there: see task_ref/3
    case get({'$py_task', Ref}) of
        {Port, Mon} when is_reference(Mon) -> await_batched(Ref, Port, Mon, Timeout);
        Port when is_port(Port) -> await_shared(Ref, Timeout, marked);
        {_Port, own} -> await_own(Ref, Timeout);
        undefined -> await_unmarked(Ref, Timeout)
    end;
await(Ref, Timeout) when is_reference(Ref) ->
    {error, {badarg, {timeout, Timeout}}};
await(Ref, _Timeout) ->
    {error, {badarg, Ref}}.

%% No entry: a task under the shared monitor (the common case, which keeps
%% nothing per task), a task whose reply the server keeps, one that failed
%% before it was sent, or no task of this process.
await_unmarked(Ref, Timeout) ->
    Shared = get(?SHARED) =/= undefined,
    %% A process whose group leader is on another node has its tasks kept
    %% by the server (create_task_on/5), and none under a shared monitor.
    case (not Shared orelse node(group_leader()) =/= node()) andalso kept(Ref) of
        true -> await_kept(Ref, Timeout);
        false when Shared -> await_shared(Ref, Timeout, unmarked);
        false -> await_own(Ref, Timeout)
    end.

%% A task with a monitor of its own (task_ref/3), one that failed before it
%% was sent, or no task of this process.
await_own(Ref, Timeout) ->
    case py_request:wait(Ref, Timeout) of
        {error, timeout} = Error ->
            cancel_task(Ref),
            Error;
        Result ->
            erase({'$py_task', Ref}),
            Result
    end.

%% A task under the monitor its process's tasks share (task_ref/3): a
%% burst of thousands does not send the owner a monitor and a demonitor
%% each. `Marked': whether it has an entry (py:async_call's tasks, which
%% py:await/2 tells from spawn_call's requests by it).
await_shared(Ref, Timeout, Marked) ->
    case get(?SHARED) of
        {Owner, Mon, N, Port, Unalias} ->
            receive
                {Ref, Tag, Payload} when Tag =:= ok; Tag =:= error ->
                    Unalias andalso erlang:unalias(Ref),
                    unmark(Marked, Ref),
                    shared_done(),
                    py_request:result(Tag, Payload);
                {Ref, failed, Reason} ->
                    %% py_request:failed/1: no task was counted
                    {error, Reason};
                {'DOWN', Mon, process, Owner, Reason} ->
                    %% Its replies sent before it died are here already: the
                    %% other tasks still awaited take theirs, or fail too.
                    erlang:unalias(Ref),
                    unmark(Marked, Ref),
                    shared_died(Mon, Reason, N - 1),
                    py_request:died(Reason)
            after Timeout ->
                shared_gave_up(Ref, Port, Marked)
            end;
        {dead, Mon, Reason, N} ->
            receive
                {Ref, Tag, Payload} when Tag =:= ok; Tag =:= error ->
                    erlang:unalias(Ref),  % in case it came to the pid
                    unmark(Marked, Ref),
                    shared_died(Mon, Reason, N - 1),
                    py_request:result(Tag, Payload);
                {Ref, failed, Reason1} ->
                    {error, Reason1}
            after 0 ->
                erlang:unalias(Ref),
                unmark(Marked, Ref),
                shared_died(Mon, Reason, N - 1),
                py_request:died(Reason)
            end;
        undefined ->
            await_own(Ref, Timeout)
    end.

unmark(marked, Ref) -> erase({'$py_task', Ref});
unmark(unmarked, _Ref) -> ok.

%% The caller gave up on `Ref': if it is a task still running (its alias
%% still active), no late reply comes and the loop cancels it; a reply that
%% came meanwhile is dropped. Either way the task is done with. A reference
%% that is neither is no task of this process, and changes nothing.
shared_gave_up(Ref, Port, Marked) ->
    case erlang:unalias(Ref) of
        true ->
            unmark(Marked, Ref),
            cancel_on(Port, Ref),
            shared_done();
        false ->
            receive
                {Ref, Tag, _} when Tag =:= ok; Tag =:= error ->
                    unmark(Marked, Ref),
                    shared_done()
            after 0 ->
                ok
            end
    end,
    {error, timeout}.

%% A new task of this process on loop `Port' of owner `Owner': its request
%% ID, a reply alias. A process's tasks on one owner share one monitor of
%% it, taken with the first and dropped with the last awaited (a process
%% that calls in a loop takes one per task, as py:call does), and keep
%% nothing per task: await/2 takes a reference with no entry for one of
%% them (?SHARED holds the owner's port for a cancel). A task on another
%% owner, or one created while the death of the last owner is being
%% reported, gets a monitor of its own and an entry {'$py_task', Ref} =>
%% {Port, own}. `marked': a shared task with an entry Port, for
%% py:async_call.
task_ref(Port, Owner, Mark) ->
    case get(?SHARED) of
        {Owner, Mon, N, Port, Unalias} ->
            put(?SHARED, {Owner, Mon, N + 1, Port, Unalias}),
            shared_ref(Port, Mark);
        undefined ->
            Mon = erlang:monitor(process, Owner),
            put(?SHARED, {Owner, Mon, 1, Port, replies_to_pid(Port)}),
            shared_ref(Port, Mark);
        _ ->
            own_ref(Port, Owner)
    end.

%% Whether the replies of `Port' come to the pid rather than through the
%% alias (the linked-in driver's): asked once per port, as port_info/2
%% builds the port's name.
replies_to_pid(Port) ->
    case get({'$py_drv_port', Port}) of
        undefined ->
            Driver = py_driver:is_driver(Port),
            put({'$py_drv_port', Port}, Driver),
            Driver;
        Driver ->
            Driver
    end.

shared_ref(_Port, shared) ->
    erlang:alias([reply]);
shared_ref(Port, marked) ->
    Ref = erlang:alias([reply]),
    put({'$py_task', Ref}, Port),
    Ref.

own_ref(Port, Owner) ->
    Ref = erlang:monitor(process, Owner, [{alias, reply_demonitor}]),
    put({'$py_task', Ref}, {Port, own}),
    Ref.

%% A task that could not be written after all.
task_unsent(Ref) ->
    case erase({'$py_task', Ref}) of
        {_Port, own} -> erlang:demonitor(Ref, [flush]);
        _SharedOrUndefined -> erlang:unalias(Ref), shared_done()
    end.

%% A task under the shared monitor is done with.
shared_done() ->
    case get(?SHARED) of
        {Owner, Mon, N, Port, Unalias} when N > 1 ->
            put(?SHARED, {Owner, Mon, N - 1, Port, Unalias});
        {_Owner, Mon, _, _, _} ->
            erlang:demonitor(Mon, [flush]),
            erase(?SHARED);
        _ ->
            ok
    end.

shared_died(_Mon, _Reason, N) when N =< 0 ->
    erase(?SHARED);
shared_died(Mon, Reason, N) ->
    put(?SHARED, {dead, Mon, Reason, N}).

%% A task of a batch with a monitor of its own (create_tasks beside tasks on
%% another owner): its request ID is an alias of its own, and one monitor of
%% the port owner serves the whole batch. Its 'DOWN' is posted again for the
%% batch's other tasks, but by the last one.
await_batched(Ref, Port, Mon, Timeout) ->
    receive
        {Ref, Tag, Payload} when Tag =:= ok; Tag =:= error ->
            %% the linked-in driver replies to the pid: the alias is still on
            replies_to_pid(Port) andalso erlang:unalias(Ref),
            _ = batch_done(Ref, Mon),
            py_request:result(Tag, Payload);
        {Ref, failed, Reason} ->
            _ = batch_done(Ref, Mon),
            {error, Reason};
        {'DOWN', Mon, process, _, Reason} = Down ->
            case batch_done(Ref, Mon) of
                last -> ok;
                more -> self() ! Down
            end,
            py_request:died(Reason)
    after Timeout ->
        give_up(Ref),
        _ = batch_done(Ref, Mon),
        {error, timeout}
    end.

%% Its caller gave up on task `Ref' (an alias): no late reply, and the
%% loop cancels it.
give_up(Ref) ->
    erlang:unalias(Ref),
    %% a reply sent before the alias was deactivated may already be here
    receive {Ref, _, _} -> ok after 0 -> ok end,
    cancel_task(Ref).

%% One task of batch `Mon' is done with: the monitor goes with the last.
batch_done(Ref, Mon) ->
    erase({'$py_task', Ref}),
    case get({'$py_batch', Mon}) of
        N when is_integer(N), N > 1 ->
            put({'$py_batch', Mon}, N - 1),
            more;
        _ ->
            erase({'$py_batch', Mon}),
            erlang:demonitor(Mon, [flush]),
            last
    end.

kept(Ref) ->
    try ets:member(?KEPT, Ref) catch error:badarg -> false end.

%% The server hands over the reply message it kept; the usual wait reads it.
await_kept(Ref, Timeout) ->
    case gen_server:call(?MODULE, {await, Ref, Timeout}, infinity) of
        {reply, Msg} ->
            self() ! Msg,
            py_request:wait(Ref, 0);
        Error ->
            Error
    end.

%% @doc Runs `Module.Function(*Args)' on the loop; nobody gets the result
%% (an exception is logged as Python stderr output).
-spec spawn_task(name(), name(), list()) -> ok | {error, term()}.
spawn_task(Module, Function, Args) ->
    spawn_task(Module, Function, Args, #{}).

-spec spawn_task(name(), name(), list(), map()) -> ok | {error, term()};
                (loop(), name(), name(), list()) -> ok | {error, term()}.
spawn_task({py_loop, _} = Loop, Module, Function, Args) ->
    spawn_task(Loop, Module, Function, Args, #{});
spawn_task(Module, Function, Args, Kwargs) ->
    spawn_task({py_loop, 1}, Module, Function, Args, Kwargs).

-spec spawn_task(loop(), name(), name(), list(), map()) -> ok | {error, term()}.
spawn_task(Loop, Module, Function, Args, Kwargs) ->
    case task_parts(Module, Function, Args, Kwargs) of
        {ok, M, F, Ns} ->
            case route(Loop) of
                {ok, Port, _Owner} ->
                    try py_request_write(Port, [?PY_MSG_LOOP_TASK, none, ?LOOP_ID, Ns, M, F, Args, Kwargs]) of
                        true -> ok
                    catch
                        error:badarg -> {error, {python_died, port_closed}}
                    end;
                Error ->
                    Error
            end;
        Error ->
            Error
    end.

%% @doc Runs statements in the calling process's own namespace on the loop:
%% its later tasks of module `'__main__'' find what they define; other
%% processes do not see it. Freed when the process exits.
-spec exec(iodata()) -> ok | {error, term()}.
exec(Code) ->
    exec({py_loop, 1}, Code).

-spec exec(loop(), iodata()) -> ok | {error, term()}.
exec(Loop, Code) ->
    case namespace_request(Loop, 49, Code) of
        {ok, _} -> ok;
        Error -> Error
    end.

%% @doc The value of `Code' (its last expression) in the calling process's
%% namespace on the loop.
-spec eval(iodata()) -> {ok, term()} | {error, term()}.
eval(Code) ->
    eval({py_loop, 1}, Code).

-spec eval(loop(), iodata()) -> {ok, term()} | {error, term()}.
eval(Loop, Code) ->
    namespace_request(Loop, 50, Code).

%% @doc run/4 on a given loop (py_event_loop_pool uses it).
-spec run_on(loop(), name(), name(), list(), run_opts()) -> {ok, term()} | {error, term()}.
run_on(Loop, Module, Function, Args, Opts) when is_map(Opts) ->
    Timeout = maps:get(timeout, Opts, ?DEFAULT_TIMEOUT),
    case ?IS_TIMEOUT(Timeout) of
        true -> await(create_task_on(Loop, Module, Function, Args, maps:get(kwargs, Opts, #{})),
                      Timeout);
        false -> {error, {badarg, {timeout, Timeout}}}
    end;
run_on(_Loop, _Module, _Function, _Args, Opts) ->
    {error, {badarg, Opts}}.

%% @doc create_task on a given loop; a task that cannot even be sent gives a
%% reference whose await returns the error.
-spec create_task_on(loop(), name(), name(), list(), map()) -> reference().
create_task_on(Loop, Module, Function, Args, Kwargs) ->
    create_task_on(Loop, Module, Function, Args, Kwargs, shared).

%% @doc create_task_on/5; `marked': a task that py:await/1,2 also knows as
%% one (py:async_call's).
-spec create_task_on(loop(), name(), name(), list(), map(), shared | marked) -> reference().
create_task_on(Loop, Module, Function, Args, Kwargs, Mark) ->
    case node(group_leader()) =:= node() of
        true -> send_task(Loop, Module, Function, Args, Kwargs, Mark);
        false -> gen_server:call(?MODULE, {create_task, Loop, Module, Function, Args, Kwargs},
                                 infinity)
    end.

%% `Monitor': `shared' or `marked' for the caller's own tasks (task_ref/3),
%% `own' for the server's (it tells a task's 'DOWN' by its reference).
send_task(Loop, Module, Function, Args, Kwargs, Monitor) ->
    case task_parts(Module, Function, Args, Kwargs) of
        {ok, M, F, Ns} ->
            case route(Loop) of
                {ok, Port, Owner} ->
                    Ref = case Monitor of
                              own -> own_ref(Port, Owner);
                              Mark -> task_ref(Port, Owner, Mark)
                          end,
                    try py_request_write(Port, [?PY_MSG_LOOP_TASK, Ref, ?LOOP_ID, Ns, M, F, Args, Kwargs]) of
                        true -> Ref
                    catch
                        error:badarg ->
                            task_unsent(Ref),
                            py_request:failed({python_died, port_closed})
                    end;
                {error, Reason} ->
                    py_request:failed(Reason)
            end;
        {error, Reason} ->
            py_request:failed(Reason)
    end.

%% @doc create_tasks on a given loop (py_event_loop_pool and py use it).
-spec create_tasks_on(loop(), [task()]) -> [reference()] | {error, {badarg, term()}}.
create_tasks_on(Loop, Tasks) when is_list(Tasks) ->
    try length(Tasks) of
        _ ->
            case node(group_leader()) =:= node() of
                true -> send_tasks(Loop, Tasks);
                false -> [case task_mfa(T) of
                              {ok, M, F, A, K} -> create_task_on(Loop, M, F, A, K);
                              {error, Reason} -> py_request:failed(Reason)
                          end || T <- Tasks]
            end
    catch
        error:badarg -> {error, {badarg, Tasks}}
    end;
create_tasks_on(_Loop, Tasks) ->
    {error, {badarg, Tasks}}.

task_mfa({M, F, A}) -> {ok, M, F, A, #{}};
task_mfa({M, F, A, K}) -> {ok, M, F, A, K};
task_mfa(Bad) -> {error, {badarg, Bad}}.

send_tasks(Loop, Tasks) ->
    case route(Loop) of
        {ok, Port, Owner} ->
            Limit = max(1, min(?BATCH_BYTES, py_config:max_frame() div 2)),
            case get(?SHARED) of
                Shared when Shared =:= undefined; element(1, Shared) =:= Owner ->
                    %% under the monitor of the process's other tasks (task_ref/3)
                    send_all(Port, {shared, Owner}, Limit, Tasks, {[], 0, 0}, []);
                _ ->
                    %% One monitor of the owner for the batch (await_batched/4).
                    Mon = erlang:monitor(process, Owner),
                    put({'$py_batch', Mon}, 0),
                    Refs = send_all(Port, Mon, Limit, Tasks, {[], 0, 0}, []),
                    case get({'$py_batch', Mon}) of
                        0 -> erase({'$py_batch', Mon}), erlang:demonitor(Mon, [flush]);
                        _ -> ok
                    end,
                    Refs
            end;
        {error, Reason} ->
            [py_request:failed(Reason) || _ <- Tasks]
    end.

%% Writes are of at most ?BATCH_MAX tasks and `Limit' bytes (within the port
%% program's max_frame); a bigger task goes alone, as a frame of its own, so
%% that a task over max_frame gets its own error. `Batch': {shared, Owner}
%% (the tasks count under the process's shared monitor) or the batch's own
%% monitor. `Pending': {Frames (newest first, with their references), count,
%% bytes}; `Acc': every reference so far, newest first.
send_all(Port, Batch, _Limit, [], Pending, Acc) ->
    _ = write_pending(Port, Batch, Pending),
    lists:reverse(Acc);
send_all(Port, Batch, Limit, [Task | Rest], {Frames, N, Bytes} = Pending, Acc) ->
    case encode_task(Port, Batch, Task) of
        {Ref, none} ->
            send_all(Port, Batch, Limit, Rest, Pending, [Ref | Acc]);
        {Ref, Frame} ->
            Size = iolist_size(Frame),
            {Now, Next} =
                if
                    Size >= Limit -> {[Pending, {[{Ref, Frame}], 1, Size}], {[], 0, 0}};
                    N + 1 >= ?BATCH_MAX; Bytes + Size >= Limit ->
                        {[{[{Ref, Frame} | Frames], N + 1, Bytes + Size}], {[], 0, 0}};
                    true -> {[], {[{Ref, Frame} | Frames], N + 1, Bytes + Size}}
                end,
            case write_each(Port, Batch, Now) of
                true ->
                    send_all(Port, Batch, Limit, Rest, Next, [Ref | Acc]);
                false ->
                    %% the port program died: what was not written fails at once
                    lists:reverse([Ref | Acc],
                                  [py_request:failed({python_died, port_closed}) || _ <- Rest])
            end
    end.

write_each(_Port, _Batch, []) ->
    true;
write_each(Port, Batch, [P | Ps]) ->
    case write_pending(Port, Batch, P) of
        true -> write_each(Port, Batch, Ps);
        false -> lists:foreach(fun(Q) -> fail_pending(Batch, Q) end, Ps), false
    end.

%% One write; false (and each of its tasks failed) if the port is closed.
write_pending(_Port, _Batch, {[], 0, _}) ->
    true;
write_pending(Port, Batch, {Frames, N, _} = Pending) ->
    Data = case Frames of
               [{_, Frame}] -> Frame;  % alone: a frame of its own
               _ -> [16#92, ?PY_MSG_BATCH, array_header(N) | lists:reverse([F || {_, F} <- Frames])]
           end,
    try erlang:port_command(Port, Data)
    catch
        error:badarg -> fail_pending(Batch, Pending), false
    end.

%% Await gets the failure. A task of a batch with its own monitor stays in
%% it; one under the shared monitor no longer counts there.
fail_pending(Batch, {Frames, _, _}) ->
    [begin
         erlang:unalias(Ref),
         self() ! {Ref, failed, {python_died, port_closed}},
         case Batch of
             {shared, _} -> shared_done();
             _ -> ok
         end
     end || {Ref, _} <- Frames],
    ok.

encode_task(Port, Batch, Task) ->
    case task_mfa(Task) of
        {ok, M0, F0, A, K} ->
            case task_parts(M0, F0, A, K) of
                {ok, M, F, Ns} ->
                    Ref = batch_ref(Port, Batch),
                    {Ref, py_msgpack:encode([48, Ref, ?LOOP_ID, Ns, M, F, A, K])};
                {error, Reason} ->
                    {py_request:failed(Reason), none}
            end;
        {error, Reason} ->
            {py_request:failed(Reason), none}
    end.

batch_ref(Port, {shared, Owner}) ->
    task_ref(Port, Owner, shared);
batch_ref(Port, Mon) ->
    Ref = erlang:alias([reply]),
    put({'$py_task', Ref}, {Port, Mon}),
    put({'$py_batch', Mon}, get({'$py_batch', Mon}) + 1),
    Ref.

array_header(N) when N < 16 -> 16#90 + N;
array_header(N) when N < 16#10000 -> <<16#dc, N:16>>.

%% @doc The default timeout of run and await (ms).
-spec default_timeout() -> pos_integer().
default_timeout() ->
    ?DEFAULT_TIMEOUT.

%%% Namespace server

-spec start_link() -> {ok, pid()} | {error, term()}.
start_link() ->
    gen_server:start_link({local, ?MODULE}, ?MODULE, [], []).

-record(state, {owners = #{} :: #{pid() => {reference(), [loop()]}},
                %% kept tasks: the reply message, or who awaits it (and its timer)
                kept = #{} :: #{reference() => pending | {msg, tuple(), reference()}
                                                | {awaited, gen_server:from(), reference() | none}}}).

-spec init([]) -> {ok, #state{}}.
init([]) ->
    ets:new(?KEPT, [named_table, public, set, {read_concurrency, true}]),
    {ok, #state{}}.

-spec handle_call(term(), gen_server:from(), #state{}) ->
          {reply, term(), #state{}} | {noreply, #state{}}.
handle_call({create_task, Loop, Module, Function, Args, Kwargs}, _From,
            #state{kept = Kept} = State) ->
    %% the reply comes to this process, which keeps it for await/2
    Ref = send_task(Loop, Module, Function, Args, Kwargs, own),
    ets:insert(?KEPT, {Ref}),
    {reply, Ref, State#state{kept = Kept#{Ref => pending}}};
handle_call({await, Ref, Timeout}, From, #state{kept = Kept} = State) ->
    case Kept of
        #{Ref := {msg, Msg, Expiry}} ->
            erlang:cancel_timer(Expiry),
            {reply, {reply, Msg}, forget(Ref, State)};
        #{Ref := pending} ->
            Timer = case Timeout of
                        infinity -> none;
                        _ -> erlang:send_after(Timeout, self(), {await_timeout, Ref})
                    end,
            {noreply, State#state{kept = Kept#{Ref := {awaited, From, Timer}}}};
        #{Ref := {awaited, _, _}} ->
            {reply, {error, already_awaited}, State};
        _ ->
            {reply, {error, timeout}, State}
    end;
handle_call(_Request, _From, State) ->
    {reply, {error, unknown_call}, State}.

-spec handle_cast(term(), #state{}) -> {noreply, #state{}}.
handle_cast({watch, Pid, Loop}, #state{owners = Owners} = State) ->
    case Owners of
        #{Pid := {Mon, Loops}} ->
            {noreply, State#state{owners = Owners#{Pid := {Mon, [Loop | Loops -- [Loop]]}}}};
        _ ->
            {noreply, State#state{owners = Owners#{Pid => {erlang:monitor(process, Pid), [Loop]}}}}
    end;
handle_cast(_Msg, State) ->
    {noreply, State}.

-spec handle_info(term(), #state{}) -> {noreply, #state{}}.
handle_info({Ref, _Tag, _Payload} = Msg, #state{kept = Kept} = State)
  when is_map_key(Ref, Kept) ->
    {noreply, kept_reply(Ref, Msg, State)};
handle_info({'DOWN', Ref, process, _, _} = Msg, #state{kept = Kept} = State)
  when is_map_key(Ref, Kept) ->
    {noreply, kept_reply(Ref, Msg, State)};
handle_info({'DOWN', _, process, Pid, _}, #state{owners = Owners} = State)
  when is_map_key(Pid, Owners) ->
    {_, Loops} = maps:get(Pid, Owners),
    [case route(Loop) of
         {ok, Port, _} -> catch py_request_write(Port, [?PY_MSG_LOOP_FORGET, none, ?LOOP_ID, Pid]);
         _ -> ok
     end || Loop <- Loops],
    {noreply, State#state{owners = maps:remove(Pid, Owners)}};
handle_info({await_timeout, Ref}, #state{kept = Kept} = State) ->
    case Kept of
        #{Ref := {awaited, From, _}} ->
            gen_server:reply(From, {error, timeout}),
            erlang:demonitor(Ref, [flush]),
            cancel_task(Ref),
            {noreply, forget(Ref, State)};
        _ ->
            {noreply, State}
    end;
handle_info({expire, Ref}, State) ->
    erlang:demonitor(Ref, [flush]),
    {noreply, forget(Ref, State)};
handle_info(_Msg, State) ->
    {noreply, State}.

kept_reply(Ref, Msg, #state{kept = Kept} = State) ->
    erlang:demonitor(Ref, [flush]),
    case maps:get(Ref, Kept) of
        {awaited, From, Timer} ->
            _ = Timer =:= none orelse erlang:cancel_timer(Timer),
            gen_server:reply(From, {reply, Msg}),
            forget(Ref, State);
        _ ->
            Expiry = erlang:send_after(?KEEP_MS, self(), {expire, Ref}),
            State#state{kept = Kept#{Ref := {msg, Msg, Expiry}}}
    end.

forget(Ref, #state{kept = Kept} = State) ->
    ets:delete(?KEPT, Ref),
    erase({'$py_task', Ref}),
    State#state{kept = maps:remove(Ref, Kept)}.

cancel_task(Ref) ->
    case erase({'$py_task', Ref}) of
        undefined -> ok;
        Task ->
            cancel_on(case Task of {P, _} -> P; P -> P end, Ref)
    end.

%% The loop of `Port' cancels task `Ref'; its reply, if already here, is dropped.
cancel_on(Port, Ref) ->
    py_request:cancel(Port, py_msgpack:encode([?PY_MSG_LOOP_CANCEL, Ref, ?LOOP_ID]), Ref).

%%% Internal

namespace_request(Loop, Type, Code) ->
    case catch unicode:characters_to_binary(Code) of
        Bin when is_binary(Bin) ->
            case route(Loop) of
                {ok, Port, Owner} ->
                    watch(Loop),
                    Ref = erlang:monitor(process, Owner, [{alias, reply_demonitor}]),
                    try py_request_write(Port, [Type, Ref, ?LOOP_ID, self(), Bin]) of
                        true -> py_request:wait(Ref, py_config:call_timeout())
                    catch
                        error:badarg ->
                            erlang:demonitor(Ref, [flush]),
                            {error, {python_died, port_closed}}
                    end;
                Error ->
                    Error
            end;
        _ ->
            {error, {badarg, Code}}
    end.

%% The namespace server forgets this process's namespace when it exits.
watch(Loop) ->
    Key = {'$py_loop_ns', Loop},
    case get(Key) of
        undefined -> gen_server:cast(?MODULE, {watch, self(), Loop}), put(Key, true);
        _ -> ok
    end.

%% The port and port owner of a loop. The calling process keeps the last
%% answer per loop ({'$py_loop', Slot}) while that owner lives: a loop's
%% port and owner change only together with the owner (a restart), and the
%% pool's tables take three lookups (0.6 µs) per task.
route({py_loop, Slot} = Loop) when is_integer(Slot), Slot >= 1 ->
    case get({'$py_loop', Slot}) of
        {Port, Owner} ->
            case erlang:is_process_alive(Owner) of
                true -> {ok, Port, Owner};
                false -> erase({'$py_loop', Slot}), route_lookup(Loop)
            end;
        _ ->
            route_lookup(Loop)
    end;
route({py_loop, 0}) ->
    {error, event_loops_not_started};
route(Loop) ->
    {error, {badarg, Loop}}.

route_lookup({py_loop, Slot}) ->
    case py_pool:context(?POOL, Slot) of
        Ctx when is_pid(Ctx) ->
            case ets:lookup(py_contexts, Ctx) of
                [{_, Port, Owner, _Local, _Load}] ->
                    put({'$py_loop', Slot}, {Port, Owner}),
                    {ok, Port, Owner};
                [] -> {error, {python_died, restarting}}
            end;
        {error, _} = Error ->
            case py_pool:pool_started(?POOL) of
                true -> Error;
                false -> {error, event_loops_not_started}
            end
    end.

task_parts(Module, Function, Args, Kwargs) ->
    case {name(Module), name(Function)} of
        {{ok, M}, {ok, F}} when is_list(Args), length(Args) >= 0, is_map(Kwargs) ->
            %% '__main__' is the caller's own namespace on the loop (exec/2)
            Ns = case M of <<"__main__">> -> self(); _ -> none end,
            {ok, M, F, Ns};
        {{ok, _}, {ok, _}} when is_list(Args), length(Args) >= 0 -> {error, {badarg, Kwargs}};
        {{ok, _}, {ok, _}} -> {error, {badarg, Args}};
        {{ok, _}, _} -> {error, {badarg, Function}};
        _ -> {error, {badarg, Module}}
    end.

name(A) when is_atom(A) -> {ok, atom_to_binary(A, utf8)};
name(B) when is_binary(B) -> {ok, B};
name(_) -> error.

py_request_write(Port, Msg) ->
    erlang:port_command(Port, py_msgpack:encode(Msg)).
