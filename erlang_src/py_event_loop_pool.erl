%% @doc A pool of event loops (asyncio.md, "Event Loop Pool"): the loops of
%% pool `py_event_loops', one per port program, so independent processes use
%% several cores. A process always gets the same loop (a hash of its pid), so
%% its tasks start in the order it submitted them. Size: app env
%% `event_loop_pool_size' (default: the number of schedulers; 0: no loops).
-module(py_event_loop_pool).

-export([get_loop/0, run/3, run/4, create_task/3, create_task/4, create_tasks/1, await/1, await/2,
         spawn_task/3, spawn_task/4, get_stats/0, get_all_loops/0]).
-export([start_pool/0, create_marked_task/4]).

-define(POOL, py_event_loops).
-define(SIZE_KEY, {?MODULE, size}).

-type name() :: atom() | binary().

%% @doc The loop of the calling process (always the same for one pid).
-spec get_loop() -> {ok, py_event_loop:loop()} | {error, term()}.
get_loop() ->
    case persistent_term:get(?SIZE_KEY, 0) of
        0 -> {error, event_loops_not_started};
        N -> {ok, {py_loop, erlang:phash2(self(), N) + 1}}
    end.

-spec run(name(), name(), list()) -> {ok, term()} | {error, term()}.
run(Module, Function, Args) ->
    run(Module, Function, Args, #{}).

%% @doc As py_event_loop:run/4, on the caller's loop.
-spec run(name(), name(), list(), map()) -> {ok, term()} | {error, term()}.
run(Module, Function, Args, Opts) ->
    py_event_loop:run_on(loop(), Module, Function, Args, Opts).

-spec create_task(name(), name(), list()) -> reference().
create_task(Module, Function, Args) ->
    create_task(Module, Function, Args, #{}).

%% @doc As py_event_loop:create_task/4, on the caller's loop.
-spec create_task(name(), name(), list(), map()) -> reference().
create_task(Module, Function, Args, Kwargs) ->
    py_event_loop:create_task_on(loop(), Module, Function, Args, Kwargs).

%% @doc create_task/4 for py:async_call: py:await/1,2 also knows the task.
-spec create_marked_task(name(), name(), list(), map()) -> reference().
create_marked_task(Module, Function, Args, Kwargs) ->
    py_event_loop:create_task_on(loop(), Module, Function, Args, Kwargs, marked).

%% @doc As py_event_loop:create_tasks/1, on the caller's loop: several tasks
%% in one write per 256, a reference each, in order.
-spec create_tasks([py_event_loop:task()]) -> [reference()] | {error, {badarg, term()}}.
create_tasks(Tasks) ->
    py_event_loop:create_tasks_on(loop(), Tasks).

-spec await(reference()) -> {ok, term()} | {error, term()}.
await(Ref) ->
    py_event_loop:await(Ref).

-spec await(reference(), timeout()) -> {ok, term()} | {error, term()}.
await(Ref, Timeout) ->
    py_event_loop:await(Ref, Timeout).

-spec spawn_task(name(), name(), list()) -> ok | {error, term()}.
spawn_task(Module, Function, Args) ->
    spawn_task(Module, Function, Args, #{}).

-spec spawn_task(name(), name(), list(), map()) -> ok | {error, term()}.
spawn_task(Module, Function, Args, Kwargs) ->
    py_event_loop:spawn_task(loop(), Module, Function, Args, Kwargs).

%% @doc `#{num_loops, supported, loops => [#{loop, running, submitted,
%% completed, failed, cancelled, namespaces} | #{loop, error}]}': each loop's
%% counters, asked of the loop itself.
-spec get_stats() -> #{num_loops := non_neg_integer(), supported := boolean(), loops := [map()]}.
get_stats() ->
    Loops = get_all_loops(),
    Supported = Loops =/= [],
    Refs = [{Slot, py_event_loop:create_task_on(L, 'erlang._loop_host', stats, [], #{})}
            || {py_loop, Slot} = L <- Loops],
    Stats = [case py_event_loop:await(Ref) of
                 {ok, S} when is_map(S) -> S#{loop => Slot};
                 {error, Reason} -> #{loop => Slot, error => Reason}
             end || {Slot, Ref} <- Refs],
    #{num_loops => length(Loops), supported => Supported, loops => Stats}.

%% @doc Every loop of the pool.
-spec get_all_loops() -> [py_event_loop:loop()].
get_all_loops() ->
    [{py_loop, Slot} || Slot <- lists:seq(1, persistent_term:get(?SIZE_KEY, 0))].

%% @doc Starts the pool's port programs (erlang_python_sup's child).
-spec start_pool() -> ignore | {error, term()}.
start_pool() ->
    case application:get_env(erlang_python, event_loop_pool_size,
                             erlang:system_info(schedulers)) of
        0 ->  % no event loops: their calls get {error, event_loops_not_started}
            persistent_term:put(?SIZE_KEY, 0),
            ignore;
        Size when is_integer(Size), Size > 0 ->
            start_pool(Size);
        Other ->
            {error, {badarg, {event_loop_pool_size, Other}}}
    end.

start_pool(Size) ->
    case py_context_router:start_pool(?POOL, Size, process) of
        {ok, _} ->
            persistent_term:put(?SIZE_KEY, Size),
            ignore;
        {error, {already_started, _}} ->
            persistent_term:put(?SIZE_KEY, Size),
            ignore;
        Error ->
            Error
    end.

loop() ->
    case persistent_term:get(?SIZE_KEY, 0) of
        0 -> {py_loop, 0};  % route/1 says the pool is not there
        N -> {py_loop, erlang:phash2(self(), N) + 1}
    end.
