%% py_event_loop, py_event_loop_pool and py:async_*: every example of
%% asyncio.md's "Async Task API (Erlang)", "Event Loop Pool" and "Async Worker
%% Backend", the event loop namespaces of process-bound-envs.md, and errors.
-module(py_event_loop_api_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0, groups/0, suite/0, init_per_suite/1, end_per_suite/1,
         init_per_testcase/2, end_per_testcase/2]).
-export([create_task_from_callback/1]).

-export([seed_run/1, seed_run_opts/1, seed_create_task_await/1, seed_await_forms/1,
         seed_spawn_task/1, seed_concurrent_requests/1, seed_background_processing/1,
         seed_thread_safety_from_callback/1,
         pool_get_loop_affinity/1, pool_api/1, pool_stats/1, pool_all_loops/1,
         pool_parallel_processing/1, pool_size_from_env/1, pool_loops_in_several_ports/1,
         tasks_on_several_loops_from_one_process/1,
         ordered_per_process/1, plain_and_coroutine_functions/1,
         plain_functions_answered_by_the_port_program/1,
         async_call_await/1, async_call_kwargs/1, async_gather_in_order/1,
         async_gather_error/1, py_await_on_async_ref/1,
         ns_exec_create_task/1, ns_state_persists/1, ns_eval/1, ns_isolated/1,
         ns_freed_on_exit/1, loop_form_create_task/1, loop_is_erlang_event_loop/1,
         error_coroutine_raises/1, error_missing_module/1, error_missing_function/1,
         error_unencodable_result/1, error_badarg/1,
         timeout_cancels_task/1, no_late_message_after_timeout/1,
         other_references_while_tasks_run/1, create_tasks_beside_tasks_on_another_loop/1,
         awaited_tasks_leave_no_alias/1,
         port_death_with_many_tasks_in_flight/1,
         port_death_python_died_then_restarted/1, many_sleeps_concurrently/1,
         many_processes_concurrently/1, rpc_run_on_node/1, rpc_tasks_on_peer/1,
         create_tasks_in_order/1, create_tasks_errors/1, create_tasks_timeout_cancels/1,
         create_tasks_port_died/1, create_tasks_split_by_size/1,
         create_tasks_bypass_the_owner/1]).

suite() ->
    [{timetrap, {seconds, 120}}].

all() ->
    [{group, seed}, {group, pool}, {group, async}, {group, namespaces}, {group, errors},
     {group, scale}, {group, batch}].

groups() ->
    [{seed, [], [seed_run, seed_run_opts, seed_create_task_await, seed_await_forms,
                 seed_spawn_task, seed_concurrent_requests, seed_background_processing,
                 seed_thread_safety_from_callback]},
     {pool, [], [pool_get_loop_affinity, pool_api, pool_stats, pool_all_loops,
                 pool_parallel_processing, pool_loops_in_several_ports, ordered_per_process,
                 tasks_on_several_loops_from_one_process,
                 plain_and_coroutine_functions, plain_functions_answered_by_the_port_program,
                 loop_is_erlang_event_loop, pool_size_from_env]},
     {async, [], [async_call_await, async_call_kwargs, async_gather_in_order,
                  async_gather_error, py_await_on_async_ref]},
     {namespaces, [], [ns_exec_create_task, ns_state_persists, ns_eval, ns_isolated,
                       ns_freed_on_exit, loop_form_create_task]},
     {errors, [], [error_coroutine_raises, error_missing_module, error_missing_function,
                   error_unencodable_result, error_badarg, timeout_cancels_task,
                   no_late_message_after_timeout, other_references_while_tasks_run,
                   port_death_python_died_then_restarted,
                   port_death_with_many_tasks_in_flight]},
     {scale, [], [many_sleeps_concurrently, many_processes_concurrently, rpc_run_on_node,
                  rpc_tasks_on_peer]},
     {batch, [], [create_tasks_in_order, create_tasks_errors, create_tasks_timeout_cancels,
                  create_tasks_beside_tasks_on_another_loop, awaited_tasks_leave_no_alias,
                  create_tasks_split_by_size, create_tasks_bypass_the_owner,
                  create_tasks_port_died]}].

%% A Python module the tasks use, defined in every port program of the loops.
-define(HELPERS, <<"
import asyncio, sys, types
src = '''
import asyncio, erlang

async def double(x, delay=0.001):
    await asyncio.sleep(delay)
    return x * 2

async def fetch(url, headers=None):
    await asyncio.sleep(0.01)
    return {'url': url, 'headers': headers or {}}

async def boom(msg):
    await asyncio.sleep(0)
    raise ValueError(msg)

async def notify(pid, term, delay=0):
    await asyncio.sleep(delay)
    erlang.send(pid, term)
    return 'sent'

async def track_event(name, props, pid=None):
    await asyncio.sleep(0)
    erlang.send(pid, (erlang.Atom('tracked'), name, props))

async def guarded_sleep(pid, seconds):
    try:
        await asyncio.sleep(seconds)
        return 'slept'
    except asyncio.CancelledError:
        erlang.send(pid, erlang.Atom('task_cancelled'))
        raise

def plain(x):
    return x + 1

def plain_kw(x, scale=1):
    return [x * scale, (x, None), {'s': scale}, 'ok', b'b', 1.5, True]

def plain_unencodable():
    return [1, {2}]

def plain_raises(msg):
    raise KeyError(msg)

def slow_plain(seconds):
    import time
    time.sleep(seconds)
    return 'late'

async def unencodable():
    return {1, 2}

async def call_erlang(name, *args):
    return await erlang.async_call(name, *args)

log = []
async def record(i):
    log.append(i)
    await asyncio.sleep(0)
    return i

def take_log():
    out = list(log)
    log.clear()
    return out
'''
m = types.ModuleType('el_helpers')
exec(src, m.__dict__)
sys.modules['el_helpers'] = m
">>).

init_per_suite(Config) ->
    {ok, _} = application:ensure_all_started(erlang_python),
    define_helpers(),
    Config.

end_per_suite(Config) ->
    ok = application:stop(erlang_python),
    Config.

init_per_testcase(_Case, Config) ->
    flush_mailbox(),
    Config.

end_per_testcase(_Case, _Config) ->
    ok.

define_helpers() ->
    [{ok, _} = py:eval(Ctx, <<"exec(helpers_src, {})">>, #{helpers_src => ?HELPERS})
     || Ctx <- py_context_router:contexts(py_event_loops)],
    ok.

flush_mailbox() ->
    receive _ -> flush_mailbox() after 0 -> ok end.

%%====================================================================
%% seed: asyncio.md, "Async Task API (Erlang)"
%%====================================================================

seed_run(_Config) ->
    {ok, 42} = py_event_loop:run(el_helpers, double, [21]),
    {ok, 4.0} = py_event_loop:run(math, sqrt, [16.0]),
    {ok, 84} = py_event_loop:run(<<"el_helpers">>, <<"double">>, [42]).

seed_run_opts(_Config) ->
    %% {ok, Result} = py_event_loop:run(aiohttp, get, [Url], #{timeout => 10000,
    %%                                  kwargs => #{headers => #{}}}), with a local coroutine
    Url = <<"https://api.example.com">>,
    {ok, #{<<"url">> := Url, <<"headers">> := #{accept := <<"json">>}}} =
        py_event_loop:run(el_helpers, fetch, [Url],
                          #{timeout => 10000, kwargs => #{headers => #{accept => <<"json">>}}}),
    {error, timeout} = py_event_loop:run(asyncio, sleep, [1], #{timeout => 50}),
    {ok, done} = py_event_loop:run(asyncio, sleep, [0.01, done], #{timeout => infinity}).

seed_create_task_await(_Config) ->
    Ref = py_event_loop:create_task(el_helpers, double, [5]),
    ?assert(is_reference(Ref)),
    do_other_work,
    {ok, 10} = py_event_loop:await(Ref),
    Ref2 = py_event_loop:create_task(el_helpers, double, [5], #{delay => 0}),
    {ok, 10} = py_event_loop:await(Ref2).

seed_await_forms(_Config) ->
    {ok, 2} = py_event_loop:await(py_event_loop:create_task(el_helpers, double, [1])),
    {ok, 4} = py_event_loop:await(py_event_loop:create_task(el_helpers, double, [2]), 10000),
    {ok, 6} = py_event_loop:await(py_event_loop:create_task(el_helpers, double, [3]), infinity),
    Slow = py_event_loop:create_task(asyncio, sleep, [2]),
    {error, timeout} = py_event_loop:await(Slow, 20).

seed_spawn_task(_Config) ->
    Self = self(),
    ok = py_event_loop:spawn_task(el_helpers, notify, [Self, hello]),
    receive hello -> ok after 5000 -> ct:fail(no_message) end,
    ok = py_event_loop:spawn_task(el_helpers, notify, [Self, with_kwargs], #{delay => 0.01}),
    receive with_kwargs -> ok after 5000 -> ct:fail(no_message) end,
    %% a failing spawned task is logged, the loop goes on
    ok = py_event_loop:spawn_task(el_helpers, boom, [<<"ignored">>]),
    {ok, 2} = py_event_loop:run(el_helpers, double, [1]).

seed_concurrent_requests(_Config) ->
    Refs = [py_event_loop:create_task(el_helpers, fetch, [<<"https://api.example.com/users">>]),
            py_event_loop:create_task(el_helpers, fetch, [<<"https://api.example.com/posts">>]),
            py_event_loop:create_task(el_helpers, fetch, [<<"https://api.example.com/comments">>])],
    Results = [py_event_loop:await(Ref, 10000) || Ref <- Refs],
    [<<"https://api.example.com/users">>, <<"https://api.example.com/posts">>,
     <<"https://api.example.com/comments">>] = [U || {ok, #{<<"url">> := U}} <- Results].

seed_background_processing(_Config) ->
    Request = #{path => <<"/index">>, user_id => 7},
    ok = py_event_loop:spawn_task(el_helpers, track_event,
                                  [<<"page_view">>,
                                   #{path => maps:get(path, Request),
                                     user_id => maps:get(user_id, Request)}],
                                  #{pid => self()}),
    receive
        {tracked, <<"page_view">>, #{path := <<"/index">>, user_id := 7}} -> ok
    after 5000 -> ct:fail(not_tracked)
    end.

%% "you can safely call py_event_loop:create_task from within a callback"
seed_thread_safety_from_callback(_Config) ->
    ok = py:register_function(el_create_task, ?MODULE, create_task_from_callback),
    try
        {ok, 14} = py_event_loop:run(el_helpers, call_erlang, [<<"el_create_task">>, 7]),
        {ok, 14} = py:eval(<<"erlang.call('el_create_task', 7)">>)
    after
        py:unregister_function(el_create_task)
    end.

create_task_from_callback([X]) ->
    {ok, V} = py_event_loop:await(py_event_loop_pool:create_task(el_helpers, double, [X])),
    V.

%%====================================================================
%% pool: asyncio.md, "Event Loop Pool"
%%====================================================================

pool_get_loop_affinity(_Config) ->
    {ok, Loop} = py_event_loop_pool:get_loop(),
    {ok, Loop} = py_event_loop_pool:get_loop(),
    Loops = lists:usort([begin
                             Self = self(),
                             spawn(fun() -> Self ! {loop, py_event_loop_pool:get_loop()} end),
                             receive {loop, {ok, L}} -> L end
                         end || _ <- lists:seq(1, 50)]),
    ?assertEqual(lists:sort(py_event_loop_pool:get_all_loops()), Loops).

pool_api(_Config) ->
    Ref = py_event_loop_pool:create_task(math, sqrt, [16.0]),
    {ok, 4.0} = py_event_loop_pool:await(Ref),
    {ok, 4.0} = py_event_loop_pool:run(math, sqrt, [16.0]),
    ok = py_event_loop_pool:spawn_task(logging, info, [<<"message">>]),
    ok = py_event_loop_pool:spawn_task(el_helpers, notify, [self(), pooled], #{delay => 0}),
    receive pooled -> ok after 5000 -> ct:fail(no_message) end,
    {ok, 8} = py_event_loop_pool:await(py_event_loop_pool:create_task(el_helpers, double, [4]),
                                       5000),
    {ok, 3} = py_event_loop_pool:run(el_helpers, plain, [2], #{timeout => 1000}).

pool_stats(_Config) ->
    N = erlang:system_info(schedulers),
    #{num_loops := N, supported := true, loops := Loops} = py_event_loop_pool:get_stats(),
    N = length(Loops),
    [#{loop := _, running := R, submitted := S, completed := C}] = lists:sublist(Loops, 1),
    ?assert(R >= 0 andalso S >= C).

pool_all_loops(_Config) ->
    Loops = py_event_loop_pool:get_all_loops(),
    ?assertEqual(erlang:system_info(schedulers), length(Loops)),
    [{ok, 2} = py_event_loop:run_on(L, el_helpers, plain, [1], #{}) || L <- Loops],
    {ok, {py_loop, _} = First} = py_event_loop:get_loop(),
    ?assert(lists:member(First, Loops)).

pool_parallel_processing(_Config) ->
    Items = lists:seq(1, 1000),
    Parent = self(),
    Chunks = partition(Items, 100),
    Pids = [spawn_link(fun() ->
                               Results = [begin
                                              Ref = py_event_loop_pool:create_task(
                                                      el_helpers, double, [Item, 0]),
                                              py_event_loop_pool:await(Ref)
                                          end || Item <- Chunk],
                               Parent ! {done, self(), Results}
                       end) || Chunk <- Chunks],
    Results = lists:append([receive {done, Pid, R} -> R end || Pid <- Pids]),
    ?assertEqual([{ok, 2 * I} || I <- Items], Results).

partition([], _N) -> [];
partition(L, N) when length(L) =< N -> [L];
partition(L, N) -> {A, B} = lists:split(N, L), [A | partition(B, N)].

%% The loops live in different port programs (so on several cores).
pool_loops_in_several_ports(_Config) ->
    Pids = [begin
                {ok, Pid} = py_event_loop:run_on(L, os, getpid, [], #{}),
                Pid
            end || L <- py_event_loop_pool:get_all_loops()],
    ?assertEqual(length(Pids), length(lists:usort(Pids))).

%% One process's tasks on every loop at once, interleaved, awaited in any
%% order and with timeouts: the tasks on the first loop's owner share a
%% monitor, the others get one each; all come back and none is left.
tasks_on_several_loops_from_one_process(_Config) ->
    Loops = py_event_loop_pool:get_all_loops(),
    Tasks = [{L, I, begin {ok, R} = py_event_loop:create_task(L, el_helpers, plain, [I]), R end}
             || I <- lists:seq(1, 60), L <- Loops],
    Slow = [begin {ok, R} = py_event_loop:create_task(L, asyncio, sleep, [30]), R end || L <- Loops],
    [{error, timeout} = py_event_loop:await(R, 10) || R <- Slow],
    Expected = [{ok, I + 1} || {_, I, _} <- lists:reverse(Tasks)],
    Expected = [py_event_loop:await(R) || {_, _, R} <- lists:reverse(Tasks)],
    {ok, 42} = py:await(py:async_call(el_helpers, plain, [41])),
    {monitors, []} = process_info(self(), monitors),
    {messages, []} = process_info(self(), messages),
    [] = [K || {{'$py_task', _} = K, _} <- get()].

ordered_per_process(_Config) ->
    Refs = [py_event_loop_pool:create_task(el_helpers, record, [I]) || I <- lists:seq(1, 200)],
    [{ok, I} = py_event_loop_pool:await(R) || {I, R} <- lists:zip(lists:seq(1, 200), Refs)],
    {ok, Log} = py_event_loop_pool:run(el_helpers, take_log, []),
    ?assertEqual(lists:seq(1, 200), Log).

plain_and_coroutine_functions(_Config) ->
    {ok, 6} = py_event_loop_pool:run(el_helpers, plain, [5]),
    {ok, 10} = py_event_loop_pool:run(el_helpers, double, [5]),
    %% a plain function returning an awaitable: awaited
    {ok, x} = py_event_loop_pool:run(asyncio, sleep, [0, x]),
    {ok, <<"a-b">>} = py_event_loop_pool:run(<<"builtins">>, <<"str.join">>, [<<"-">>, [<<"a">>, <<"b">>]]),
    {ok, <<"/a/b">>} = py_event_loop_pool:run(os, 'path.join', [<<"/a">>, <<"b">>]).

%% A plain function of an imported module is called, and its plain result
%% framed, by the port program's C code (_erlang_loop_host.pump): the same
%% results, errors and counters as through the loop host's Python.
plain_functions_answered_by_the_port_program(_Config) ->
    Loop = {py_loop, 1},
    #{submitted := S0, completed := C0, failed := F0} = loop_stats(Loop),
    {ok, [6, {3, none}, #{<<"s">> := 2}, <<"ok">>, <<"b">>, 1.5, true]} =
        py_event_loop:run(el_helpers, plain_kw, [3], #{kwargs => #{scale => 2}}),
    {error, {'KeyError', <<"'gone'">>}} = py_event_loop:run(el_helpers, plain_raises, [<<"gone">>]),
    ?assertNotEqual(nomatch, binary:match(py:last_traceback(), <<"plain_raises">>)),
    {error, {'TypeError', Msg}} = py_event_loop:run(el_helpers, plain_unencodable, []),
    ?assertNotEqual(nomatch, binary:match(Msg, <<"set">>)),
    ok = py_event_loop:spawn_task(Loop, el_helpers, plain, [1]),
    Refs = [py_event_loop:create_task(el_helpers, plain, [I]) || I <- lists:seq(1, 100)],
    Expected = [{ok, I + 1} || I <- lists:seq(1, 100)],
    Expected = [py_event_loop:await(R) || R <- Refs],
    %% a stats task counts as submitted while it runs, completed after
    #{submitted := S1, completed := C1, failed := F1, running := 0} = loop_stats(Loop),
    {105, 104, 1} = {S1 - S0, C1 - C0, F1 - F0}.

loop_stats(Loop) ->
    {ok, Stats} = py_event_loop:run_on(Loop, 'erlang._loop_host', stats, [], #{}),
    Stats.

%% The loops are ErlangEventLoops (erlang._loop_host.new_loop).
loop_is_erlang_event_loop(_Config) ->
    ok = py_event_loop:exec(<<"
import asyncio
async def loop_class():
    return type(asyncio.get_running_loop()).__name__
">>),
    {ok, <<"ErlangEventLoop">>} = py_event_loop:run('__main__', loop_class, []).

pool_size_from_env(_Config) ->
    Old = application:get_env(erlang_python, event_loop_pool_size),
    ok = application:stop(erlang_python),
    ok = application:set_env(erlang_python, event_loop_pool_size, 3),
    try
        {ok, _} = application:ensure_all_started(erlang_python),
        #{num_loops := 3, supported := true} = py_event_loop_pool:get_stats(),
        3 = length(py_event_loop_pool:get_all_loops()),
        ok = application:stop(erlang_python),
        ok = application:set_env(erlang_python, event_loop_pool_size, 0),
        {ok, _} = application:ensure_all_started(erlang_python),
        #{num_loops := 0, supported := false} = py_event_loop_pool:get_stats(),
        {error, event_loops_not_started} = py_event_loop_pool:get_loop(),
        {error, event_loops_not_started} = py_event_loop:run(math, sqrt, [4.0]),
        {error, event_loops_not_started} = py_event_loop_pool:run(math, sqrt, [4.0]),
        {error, event_loops_not_started} = py:async_await(py:async_call(math, sqrt, [4.0])),
        {ok, 2.0} = py:call(math, sqrt, [4.0])
    after
        ok = application:stop(erlang_python),
        case Old of
            {ok, V} -> application:set_env(erlang_python, event_loop_pool_size, V);
            undefined -> application:unset_env(erlang_python, event_loop_pool_size)
        end,
        {ok, _} = application:ensure_all_started(erlang_python),
        define_helpers()
    end.

%%====================================================================
%% async: asyncio.md, "Async Worker Backend" (py:async_*)
%%====================================================================

async_call_await(_Config) ->
    Ref = py:async_call(el_helpers, double, [21]),
    ?assert(is_reference(Ref)),
    {ok, 42} = py:async_await(Ref),
    {ok, 4.0} = py:async_await(py:async_call(math, sqrt, [16.0]), 5000),
    {error, timeout} = py:async_await(py:async_call(asyncio, sleep, [1]), 10).

async_call_kwargs(_Config) ->
    {ok, 8} = py:async_await(py:async_call(el_helpers, double, [4], #{delay => 0})).

async_gather_in_order(_Config) ->
    {ok, [2, 4.0, x, 6]} =
        py:async_gather([{el_helpers, double, [1]}, {math, sqrt, [16.0]},
                         {asyncio, sleep, [0.02, x]}, {el_helpers, double, [3], #{delay => 0}}]),
    {ok, []} = py:async_gather([]),
    %% concurrently: ten 0.2 s sleeps take about 0.2 s, not 2 s
    T0 = erlang:monotonic_time(millisecond),
    {ok, L} = py:async_gather([{asyncio, sleep, [0.2, I]} || I <- lists:seq(1, 10)], 10000),
    ?assertEqual(lists:seq(1, 10), L),
    ?assert(erlang:monotonic_time(millisecond) - T0 < 1500).

async_gather_error(_Config) ->
    {error, {'ValueError', <<"bad">>}} =
        py:async_gather([{el_helpers, double, [1]}, {el_helpers, boom, [<<"bad">>]}]),
    {error, timeout} = py:async_gather([{asyncio, sleep, [1]}], 20),
    {error, {badarg, _}} = py:async_gather([foo]),
    {error, {badarg, _}} = py:async_gather(foo),
    {error, {badarg, _}} = py:async_gather([], -1).

py_await_on_async_ref(_Config) ->
    {ok, 42} = py:await(py:async_call(el_helpers, double, [21])).

%%====================================================================
%% namespaces: process-bound-envs.md, "Event Loop Environments"
%%====================================================================

ns_exec_create_task(_Config) ->
    {ok, Loop} = py_event_loop:get_loop(),
    ok = py_event_loop:exec(Loop, <<"
import asyncio

async def my_async_function(x):
    await asyncio.sleep(0.1)
    return x * 2

counter = 0

async def increment_and_get():
    global counter
    counter += 1
    return counter
">>),
    {ok, Ref} = py_event_loop:create_task(Loop, '__main__', my_async_function, [21]),
    {ok, 42} = py_event_loop:await(Ref),
    Ref3 = py_event_loop:create_task('__main__', my_async_function, [1]),
    {ok, 2} = py_event_loop:await(Ref3).

ns_state_persists(_Config) ->
    {ok, Loop} = py_event_loop:get_loop(),
    ok = py_event_loop:exec(<<"
counter = 0
async def increment_and_get():
    global counter
    counter += 1
    return counter
">>),
    {ok, Ref1} = py_event_loop:create_task(Loop, '__main__', increment_and_get, []),
    {ok, 1} = py_event_loop:await(Ref1),
    {ok, Ref2} = py_event_loop:create_task(Loop, '__main__', increment_and_get, []),
    {ok, 2} = py_event_loop:await(Ref2).

ns_eval(_Config) ->
    {ok, 42} = py_event_loop:eval(<<"21 * 2">>),
    ok = py_event_loop:exec(<<"result = 'computed'">>),
    {ok, <<"computed">>} = py_event_loop:eval(<<"result">>),
    {ok, Loop} = py_event_loop:get_loop(),
    {ok, <<"computed">>} = py_event_loop:eval(Loop, <<"result">>),
    {ok, 3} = py_event_loop:eval(<<"import math\nint(math.sqrt(9))">>),
    {error, {'SyntaxError', _}} = py_event_loop:exec(<<"def (">>),
    {error, {'NameError', _}} = py_event_loop:eval(<<"undefined_name_here">>),
    {error, {badarg, _}} = py_event_loop:exec(foo).

ns_isolated(_Config) ->
    {ok, Loop} = py_event_loop:get_loop(),
    Parent = self(),
    Run = fun(Val) ->
                  spawn_link(fun() ->
                                     ok = py_event_loop:exec(Loop, <<"x = '", Val/binary, "'">>),
                                     receive go -> ok end,
                                     Parent ! {self(), py_event_loop:eval(Loop, <<"x">>)}
                             end)
          end,
    A = Run(<<"A">>),
    B = Run(<<"B">>),
    %% both have defined x before either reads it
    {ok, _} = py_event_loop:eval(<<"1">>),
    A ! go, B ! go,
    receive {A, RA} -> {ok, <<"A">>} = RA end,
    receive {B, RB} -> {ok, <<"B">>} = RB end,
    %% another process does not see their names
    {error, {'NameError', _}} = py_event_loop:eval(<<"x">>),
    ok = py_event_loop:exec(<<"def only_mine(): return 1">>),
    Self = self(),
    spawn_link(fun() -> Self ! {other, py_event_loop:run('__main__', only_mine, [])} end),
    receive {other, Other} -> {error, {'NameError', _}} = Other end,
    {ok, 1} = py_event_loop:run('__main__', only_mine, []).

ns_freed_on_exit(_Config) ->
    Count = fun() ->
                    #{loops := [#{namespaces := N} | _]} = py_event_loop_pool:get_stats(),
                    N
            end,
    Before = Count(),
    Parent = self(),
    {Pid, Mon} = spawn_monitor(fun() ->
                                       ok = py_event_loop:exec(<<"y = 1">>),
                                       Parent ! {defined, Count()}
                               end),
    receive {defined, During} -> ?assertEqual(Before + 1, During) end,
    receive {'DOWN', Mon, process, Pid, _} -> ok end,
    py_test_util:wait_until(fun() -> Count() =:= Before end, 5000).

loop_form_create_task(_Config) ->
    [L1, L2 | _] = py_event_loop_pool:get_all_loops() ++ py_event_loop_pool:get_all_loops(),
    {ok, R1} = py_event_loop:create_task(L1, el_helpers, double, [1]),
    {ok, R2} = py_event_loop:create_task(L2, el_helpers, double, [2], #{delay => 0}),
    {ok, 2} = py_event_loop:await(R1),
    {ok, 4} = py_event_loop:await(R2),
    ok = py_event_loop:spawn_task(L2, el_helpers, notify, [self(), on_l2]),
    receive on_l2 -> ok after 5000 -> ct:fail(no_message) end.

%%====================================================================
%% errors
%%====================================================================

error_coroutine_raises(_Config) ->
    {error, {'ValueError', <<"boom">>}} = py_event_loop:run(el_helpers, boom, [<<"boom">>]),
    Tb = py:last_traceback(),
    ?assertNotEqual(nomatch, binary:match(Tb, <<"ValueError: boom">>)),
    {error, {'ZeroDivisionError', _}} = py_event_loop:run(operator, truediv, [1, 0]),
    {ok, 2} = py_event_loop:run(el_helpers, double, [1]).

error_missing_module(_Config) ->
    {error, {'ModuleNotFoundError', <<"No module named 'no_such_module'">>}} =
        py_event_loop:run(no_such_module, f, []),
    {error, {'ModuleNotFoundError', _}} =
        py_event_loop:await(py_event_loop:create_task(no_such_module, f, [])),
    {ok, 2} = py_event_loop:run(el_helpers, double, [1]).

error_missing_function(_Config) ->
    {error, {'AttributeError', _}} = py_event_loop:run(el_helpers, no_such_function, []),
    {error, {'NameError', _}} = py_event_loop:run('__main__', no_such_function_here, []),
    {ok, 2} = py_event_loop:run(el_helpers, double, [1]).

error_unencodable_result(_Config) ->
    {error, {'TypeError', Msg}} = py_event_loop:run(el_helpers, unencodable, []),
    ?assertNotEqual(nomatch, binary:match(Msg, <<"set">>)),
    {ok, 2} = py_event_loop:run(el_helpers, double, [1]).

error_badarg(_Config) ->
    {error, {badarg, _}} = py_event_loop:await(py_event_loop:create_task(1, f, [])),
    {error, {badarg, _}} = py_event_loop:await(py_event_loop:create_task(m, "f", [])),
    {error, {badarg, _}} = py_event_loop:await(py_event_loop:create_task(m, f, [a | b])),
    {error, {badarg, _}} = py_event_loop:await(py_event_loop:create_task(m, f, not_a_list)),
    {error, {badarg, _}} = py_event_loop:run(m, f, [], #{timeout => -1}),
    {error, {badarg, _}} = py_event_loop:run(m, f, [], not_a_map),
    {error, {badarg, _}} = py_event_loop:await(not_a_ref),
    {error, {badarg, _}} = py_event_loop:await(make_ref(), bad),
    {error, {badarg, _}} = py_event_loop:spawn_task(1, f, []),
    {error, _} = py_event_loop:run_on({py_loop, 999}, math, sqrt, [1.0], #{}),
    {error, {badarg, _}} = py_event_loop:run_on(not_a_loop, math, sqrt, [1.0], #{}).

timeout_cancels_task(_Config) ->
    {error, timeout} = py_event_loop:run(el_helpers, guarded_sleep, [self(), 5], #{timeout => 50}),
    receive task_cancelled -> ok after 5000 -> ct:fail(not_cancelled) end,
    {ok, 2} = py_event_loop:run(el_helpers, double, [1]).

no_late_message_after_timeout(_Config) ->
    %% a plain function blocks the loop past the timeout, then replies
    {error, timeout} = py_event_loop:run(el_helpers, slow_plain, [0.3], #{timeout => 20}),
    %% ordered after the late reply on the same loop
    {ok, 2} = py_event_loop:run(el_helpers, double, [1]),
    receive Msg -> ct:fail({late_message, Msg}) after 0 -> ok end.

%% A process's tasks on one loop keep nothing per task, so await/2 takes a
%% reference it has no entry for as one of them. Other references must not
%% disturb them: a reference of no task times out and cancels nothing, one
%% that failed before it was sent, or was awaited already, answers at once,
%% and the tasks still running keep the monitor they share until the last.
other_references_while_tasks_run(_Config) ->
    Slow = [py_event_loop:create_task(el_helpers, guarded_sleep, [self(), 0.3]) || _ <- [1, 2]],
    Quick = py_event_loop:create_task(el_helpers, double, [4]),
    {monitors, [_]} = process_info(self(), monitors),
    {error, timeout} = py_event_loop:await(make_ref(), 10),
    {error, {badarg, 1}} = py_event_loop:await(py_event_loop:create_task(1, f, [])),
    {ok, 8} = py_event_loop:await(Quick),
    {error, timeout} = py_event_loop:await(Quick, 10),
    {monitors, [_]} = process_info(self(), monitors),
    [{ok, _} = py_event_loop:await(R) || R <- Slow],
    receive task_cancelled -> ct:fail(cancelled) after 0 -> ok end,
    {monitors, []} = process_info(self(), monitors),
    %% a task that times out is cancelled, and drops the monitor as the last
    Sleeper = py_event_loop:create_task(el_helpers, guarded_sleep, [self(), 5]),
    {error, timeout} = py_event_loop:await(Sleeper, 50),
    receive task_cancelled -> ok after 5000 -> ct:fail(not_cancelled) end,
    {monitors, []} = process_info(self(), monitors),
    {messages, []} = process_info(self(), messages),
    [] = [K || {{'$py_task', _} = K, _} <- get()].

port_death_python_died_then_restarted(_Config) ->
    {ok, Loop} = py_event_loop:get_loop(),
    Before = py_pool:context(py_event_loops, 1),
    {ok, _, BeforeOwner, _} = py_context:lookup(Before),
    Waiter = py_event_loop:create_task(asyncio, sleep, [30]),
    T0 = erlang:monotonic_time(millisecond),
    {error, {python_died, _}} = py_event_loop:run_on(Loop, os, '_exit', [3], #{timeout => 20000}),
    {error, {python_died, _}} = py_event_loop:await(Waiter, 20000),
    ?assert(erlang:monotonic_time(millisecond) - T0 < 5000),
    py_test_util:wait_until(
      fun() ->
              %% the same context pid, served by a new port program
              case py_context:lookup(py_pool:context(py_event_loops, 1)) of
                  {ok, _, Owner, _} when Owner =/= BeforeOwner -> is_process_alive(Owner);
                  _ -> false
              end
      end, 20000),
    py_test_util:wait_until(fun() -> py_event_loop:run(math, sqrt, [4.0]) =:= {ok, 2.0} end,
                            20000),
    define_helpers(),
    {ok, 2} = py_event_loop:run(el_helpers, double, [1]).

%%====================================================================
%% scale
%%====================================================================

%% A process's tasks on one loop share one monitor of its port owner: when
%% the port program dies, each task still running fails at once, those that
%% finished keep their results, tasks created meanwhile run on the new port
%% program, and the process is left with no monitor and no message.
port_death_with_many_tasks_in_flight(_Config) ->
    {ok, Loop} = py_event_loop:get_loop(),
    {ok, _, Owner, _} = py_context:lookup(py_pool:context(py_event_loops, 1)),
    Done = [py_event_loop:create_task(el_helpers, plain, [I]) || I <- lists:seq(1, 20)],
    Sleeping = [py_event_loop:create_task(asyncio, sleep, [30]) || _ <- lists:seq(1, 50)],
    %% the plain tasks' replies are here before the port program dies
    {ok, 2} = py_event_loop:await(hd(Done)),
    [{links, Links}] = [process_info(Owner, links)],
    [OsPort] = [P || P <- Links, is_port(P)],
    {os_pid, OsPid} = erlang:port_info(OsPort, os_pid),
    os:cmd("kill -9 " ++ integer_to_list(OsPid)),
    py_test_util:wait_until(fun() -> not is_process_alive(Owner) end, 20000),
    py_test_util:wait_until(
      fun() ->
              case py_context:lookup(py_pool:context(py_event_loops, 1)) of
                  {ok, _, New, _} when New =/= Owner -> true;
                  _ -> false
              end
      end, 20000),
    define_helpers(),
    %% a task created before the dead owner's tasks are all awaited
    After = py_event_loop:create_task(el_helpers, plain, [100]),
    T0 = erlang:monotonic_time(millisecond),
    Expected = [{ok, I + 1} || I <- lists:seq(2, 20)],
    Expected = [py_event_loop:await(R) || R <- tl(Done)],
    [{error, {python_died, _}} = py_event_loop:await(R, 20000) || R <- Sleeping],
    ?assert(erlang:monotonic_time(millisecond) - T0 < 2000),
    [] = [R || R <- Done ++ Sleeping, erlang:unalias(R)],  % no alias left behind
    {ok, 101} = py_event_loop:await(After),
    %% and later tasks share a monitor of the new owner again
    Refs = [py_event_loop:create_task(el_helpers, plain, [I]) || I <- lists:seq(1, 100)],
    {monitors, [_]} = process_info(self(), monitors),
    [{ok, _} = py_event_loop:await(R) || R <- Refs],
    {ok, 4} = py_event_loop:run_on(Loop, el_helpers, plain, [3], #{}),
    {monitors, []} = process_info(self(), monitors),
    {messages, []} = process_info(self(), messages).

many_sleeps_concurrently(_Config) ->
    Refs = [py_event_loop_pool:create_task(asyncio, sleep, [0.01, I]) || I <- lists:seq(1, 10000)],
    {monitors, [_]} = process_info(self(), monitors),  % one for all
    Results = [py_event_loop_pool:await(R, 60000) || R <- Refs],
    ?assertEqual([{ok, I} || I <- lists:seq(1, 10000)], Results),
    {monitors, []} = process_info(self(), monitors),
    {messages, []} = process_info(self(), messages).

many_processes_concurrently(_Config) ->
    Parent = self(),
    Pids = [spawn_link(fun() ->
                               Refs = [py_event_loop_pool:create_task(el_helpers, plain, [I])
                                       || I <- lists:seq(1, 200)],
                               Parent ! {self(), [py_event_loop_pool:await(R, 60000) || R <- Refs]}
                       end) || _ <- lists:seq(1, 50)],
    Expected = [{ok, I + 1} || I <- lists:seq(1, 200)],
    [receive {Pid, Res} -> ?assertEqual(Expected, Res) end || Pid <- Pids].

%% distributed.md: the async task API through rpc (here to this node).
rpc_run_on_node(_Config) ->
    {ok, 4.0} = rpc:call(node(), py_event_loop, run, [math, sqrt, [16.0]]),
    {ok, 10} = rpc:call(node(), py_event_loop, run, [el_helpers, double, [5], #{timeout => 10000}]).

%% distributed.md, "Using the Async Task API Remotely": create_task and await
%% in two rpc:calls to a node (each runs in a process of its own there).
rpc_tasks_on_peer(_Config) ->
    StartedDist = case is_alive() of
                      true -> false;
                      false ->
                          _ = os:cmd("epmd -daemon"),
                          {ok, _} = net_kernel:start([list_to_atom("el_ct_" ++ integer_to_list(
                                                                     erlang:unique_integer([positive]))),
                                                      shortnames]),
                          true
                  end,
    Ebin = filename:dirname(code:which(py)),
    {ok, Peer, Node} = peer:start(#{name => peer:random_name(el_peer),
                                    args => ["-pa", Ebin,
                                             "-erlang_python", "default_pool_size", "1",
                                             "-erlang_python", "io_pool_size", "1",
                                             "-erlang_python", "event_loop_pool_size", "1"]}),
    try
        {ok, _} = erpc:call(Node, application, ensure_all_started, [erlang_python]),
        Ref = rpc:call(Node, py_event_loop, create_task, [asyncio, sleep, [0.05, <<"response">>]]),
        ?assert(is_reference(Ref)),
        {ok, <<"response">>} = rpc:call(Node, py_event_loop, await, [Ref, 10000]),
        %% a result that came before the await is kept for it
        Ref2 = rpc:call(Node, py_event_loop, create_task, [math, sqrt, [16.0]]),
        {ok, 4.0} = rpc:call(Node, py_event_loop, run, [math, sqrt, [16.0]]),
        {ok, 4.0} = rpc:call(Node, py_event_loop, await, [Ref2]),
        %% errors and timeouts as locally; a timed-out task is cancelled
        Ref3 = rpc:call(Node, py_event_loop, create_task, [no_such_module, f, []]),
        {error, {'ModuleNotFoundError', _}} = rpc:call(Node, py_event_loop, await, [Ref3]),
        Ref4 = rpc:call(Node, py_event_loop, create_task, [asyncio, sleep, [10]]),
        {error, timeout} = rpc:call(Node, py_event_loop, await, [Ref4, 50]),
        {ok, #{loops := [#{cancelled := 1}]}} =
            {ok, rpc:call(Node, py_event_loop_pool, get_stats, [])}
    after
        peer:stop(Peer),
        StartedDist andalso net_kernel:stop()
    end.

%%====================================================================
%% batch: create_tasks (several tasks in one write)
%%====================================================================

%% More than one write's worth (256), interleaved with single tasks: every
%% task starts in submission order and each reference gets its own result.
create_tasks_in_order(_Config) ->
    {monitors, Monitors0} = process_info(self(), monitors),
    R0 = py_event_loop_pool:create_task(el_helpers, record, [0]),
    Refs1 = py_event_loop_pool:create_tasks([{el_helpers, record, [I]} || I <- lists:seq(1, 600)]),
    R601 = py_event_loop_pool:create_task(el_helpers, record, [601]),
    Refs2 = py_event_loop_pool:create_tasks([{el_helpers, record, [I], #{}}
                                            || I <- lists:seq(602, 700)]),
    Refs = [R0] ++ Refs1 ++ [R601] ++ Refs2,
    ?assertEqual(701, length(Refs)),
    [{ok, I} = py_event_loop_pool:await(R) || {I, R} <- lists:zip(lists:seq(0, 700), Refs)],
    {ok, Log} = py_event_loop_pool:run(el_helpers, take_log, []),
    ?assertEqual(lists:seq(0, 700), Log),
    %% py_event_loop's own loop, and a given loop
    [{ok, 2}, {ok, 4}] = [py_event_loop:await(R)
                          || R <- py_event_loop:create_tasks([{el_helpers, double, [1]},
                                                              {el_helpers, double, [2]}])],
    {ok, Loop} = py_event_loop_pool:get_loop(),
    {ok, [Ra, Rb]} = py_event_loop:create_tasks(Loop, [{el_helpers, plain, [1]},
                                                       {el_helpers, fetch, [<<"u">>],
                                                        #{headers => #{a => 1}}}]),
    {ok, 2} = py_event_loop:await(Ra),
    {ok, #{<<"url">> := <<"u">>, <<"headers">> := #{a := 1}}} = py_event_loop:await(Rb),
    [] = py_event_loop_pool:create_tasks([]),
    [Bad] = py_event_loop_pool:create_tasks([not_a_task]),  % no task sent: no monitor kept
    {error, {badarg, not_a_task}} = py_event_loop_pool:await(Bad),
    receive Msg -> ct:fail({stray_message, Msg}) after 100 -> ok end,
    %% a batch's tasks share the process's monitor of their port's owner:
    %% gone with the last task
    {monitors, Monitors} = process_info(self(), monitors),
    ?assertEqual(lists:sort(Monitors0), lists:sort(Monitors)),
    [] = [K || {{'$py_batch', _} = K, _} <- get()].

%% A batch on another loop than the process's running tasks gets a monitor
%% of its own; both are gone with their last tasks.
create_tasks_beside_tasks_on_another_loop(_Config) ->
    case py_event_loop_pool:get_all_loops() of
        [L1, L2 | _] ->
            {ok, Slow} = py_event_loop:create_task(L1, el_helpers, guarded_sleep, [self(), 0.2]),
            {ok, Refs} = py_event_loop:create_tasks(L2, [{el_helpers, plain, [I]}
                                                         || I <- lists:seq(1, 50)]),
            {monitors, [_, _]} = process_info(self(), monitors),
            Expected = [{ok, I + 1} || I <- lists:seq(1, 50)],
            Expected = [py_event_loop:await(R) || R <- Refs],
            {monitors, [_]} = process_info(self(), monitors),
            {ok, <<"slept">>} = py_event_loop:await(Slow),
            {monitors, []} = process_info(self(), monitors),
            {messages, []} = process_info(self(), messages),
            [] = [K || {{Tag, _} = K, _} <- get(), Tag =:= '$py_task' orelse Tag =:= '$py_batch'];
        _ ->
            {skip, "one loop"}
    end.

%% A task's alias ends with its await, whoever delivered the reply (a port
%% owner sends it through the alias; the linked-in driver, to the pid):
%% single tasks, a batch under the shared monitor, one with its own.
awaited_tasks_leave_no_alias(_Config) ->
    Single = [py_event_loop_pool:create_task(el_helpers, plain, [I]) || I <- lists:seq(1, 20)]
        ++ [py_event_loop_pool:create_task(asyncio, sleep, [0, I]) || I <- lists:seq(1, 20)],
    Batch = py_event_loop_pool:create_tasks([{el_helpers, plain, [I]} || I <- lists:seq(1, 20)]),
    Others = case py_event_loop_pool:get_all_loops() of
                 [L1, L2 | _] ->
                     {ok, R} = py_event_loop:create_task(L1, el_helpers, plain, [0]),
                     {ok, Rs} = py_event_loop:create_tasks(L2, [{el_helpers, plain, [I]}
                                                                || I <- lists:seq(1, 20)]),
                     [R | Rs];
                 _ ->
                     []
             end,
    All = Single ++ Batch ++ Others,
    [{ok, _} = py_event_loop:await(R) || R <- All],
    [] = [R || R <- All, erlang:unalias(R)],
    {monitors, []} = process_info(self(), monitors),
    {messages, []} = process_info(self(), messages).

%% On the linked-in driver, the replies to a batch go straight to the
%% caller, as a single task's do: no driver port's owner (traced) receives
%% any of them. (A port program's replies come through its owner.)
create_tasks_bypass_the_owner(_Config) ->
    {ok, {py_loop, Slot} = Loop} = py_event_loop_pool:get_loop(),
    [{_, Port, _, _, _}] = ets:lookup(py_contexts, py_pool:context(py_event_loops, Slot)),
    case py_driver:is_driver(Port) of
        false ->
            {skip, "port backend: replies come through the port's owner"};
        true ->
            Owners = [Pid || P <- erlang:ports(), py_driver:is_driver(P),
                             {connected, Pid} <- [erlang:port_info(P, connected)]],
            [1 = erlang:trace(O, true, ['receive']) || O <- Owners],
            try
                {ok, Refs} = py_event_loop:create_tasks(
                               Loop, [{el_helpers, double, [I]} || I <- lists:seq(1, 20)]),
                Expected = [{ok, 2 * I} || I <- lists:seq(1, 20)],
                Expected = [py_event_loop:await(R, 5000) || R <- Refs]
            after
                [catch erlang:trace(O, false, ['receive']) || O <- Owners]
            end,
            Replies = fun Count(N) ->
                              receive
                                  {trace, _, 'receive', {_, {data, <<16#93, 4, _/binary>>}}} ->
                                      Count(N + 1);
                                  {trace, _, 'receive', _} ->
                                      Count(N)
                              after 200 -> N
                              end
                      end,
            0 = Replies(0),
            ok
    end.

%% Each task fails on its own; the loop keeps serving the others.
create_tasks_errors(_Config) ->
    Refs = py_event_loop_pool:create_tasks(
             [{el_helpers, double, [1]},
              {el_helpers, boom, [<<"bad">>]},
              not_a_task,
              {no_such_module_xyz, f, []},
              {el_helpers, double, not_a_list},
              {el_helpers, double, [1], not_a_map},
              {el_helpers, unencodable, []},
              {el_helpers, plain, [41]}]),
    [{ok, 2},
     {error, {'ValueError', <<"bad">>}},
     {error, {badarg, not_a_task}},
     {error, {'ModuleNotFoundError', _}},
     {error, {badarg, not_a_list}},
     {error, {badarg, not_a_map}},
     {error, {'TypeError', _}},
     {ok, 42}] = [py_event_loop_pool:await(R) || R <- Refs],
    {error, {badarg, nope}} = py_event_loop_pool:create_tasks(nope),
    {error, {badarg, [a | b]}} = py_event_loop:create_tasks([a | b]),
    {error, {badarg, nope}} = py_event_loop:create_tasks({py_loop, 1}, nope),
    [{error, {badarg, {py_loop, x}}}] =
        [py_event_loop:await(R) || R <- element(2, py_event_loop:create_tasks({py_loop, x},
                                                                             [{math, sqrt, [1.0]}]))],
    {ok, 3.0} = py_event_loop_pool:run(math, sqrt, [9.0]).

%% A timeout cancels its task of a batch and no late message comes; the
%% others of the batch are not affected.
create_tasks_timeout_cancels(_Config) ->
    Self = self(),
    [Slow, Fast] = py_event_loop_pool:create_tasks([{el_helpers, guarded_sleep, [Self, 5]},
                                                    {el_helpers, double, [3, 0.2]}]),
    {error, timeout} = py_event_loop_pool:await(Slow, 50),
    receive task_cancelled -> ok after 5000 -> ct:fail(not_cancelled) end,
    {ok, 6} = py_event_loop_pool:await(Fast, 5000),
    receive Msg -> ct:fail({late_message, Msg}) after 100 -> ok end.

%% Every waiting task of a batch gets {python_died, _} at once when its port
%% program dies, and a batch sent after the restart runs.
create_tasks_port_died(_Config) ->
    {ok, {py_loop, Slot} = Loop} = py_event_loop_pool:get_loop(),
    {ok, _, Owner, _} = py_context:lookup(py_pool:context(py_event_loops, Slot)),
    {ok, Sleepers} = py_event_loop:create_tasks(Loop, [{asyncio, sleep, [30, I]}
                                                       || I <- lists:seq(1, 300)]),
    T0 = erlang:monotonic_time(millisecond),
    {error, {python_died, _}} = py_event_loop:run_on(Loop, os, '_exit', [3], #{timeout => 20000}),
    [{error, {python_died, _}} = py_event_loop:await(R, 20000) || R <- Sleepers],
    ?assert(erlang:monotonic_time(millisecond) - T0 < 5000),
    %% the batch's one 'DOWN' reached each of its tasks and is gone with the last
    receive {'DOWN', _, _, _, _} = Down -> ct:fail({stray, Down}) after 100 -> ok end,
    py_test_util:wait_until(
      fun() ->
              case py_context:lookup(py_pool:context(py_event_loops, Slot)) of
                  {ok, _, New, _} when New =/= Owner -> is_process_alive(New);
                  _ -> false
              end
      end, 20000),
    py_test_util:wait_until(
      fun() -> py_event_loop:run_on(Loop, math, sqrt, [4.0], #{}) =:= {ok, 2.0} end, 20000),
    {ok, [R1, R2]} = py_event_loop:create_tasks(Loop, [{math, sqrt, [4.0]}, {math, sqrt, [9.0]}]),
    {ok, 2.0} = py_event_loop:await(R1, 20000),
    {ok, 3.0} = py_event_loop:await(R2, 20000),
    define_helpers().

%% Writes stay within half of max_frame: big tasks go alone, smaller ones in
%% several batches; every task runs, in order. (The port programs were started
%% with the default max_frame, so nothing is refused here: this checks the
%% splitting, the same order and a result each.)
create_tasks_split_by_size(_Config) ->
    Old = application:get_env(erlang_python, max_frame),
    application:set_env(erlang_python, max_frame, 4000),  % writes of < 2000 bytes
    try
        Big = binary:copy(<<"b">>, 2500),
        Mid = binary:copy(<<"m">>, 300),
        Tasks = [case I rem 10 of
                     0 -> {el_helpers, record, [{I, Big}]};
                     _ -> {el_helpers, record, [{I, Mid}]}
                 end || I <- lists:seq(1, 100)],
        Refs = py_event_loop_pool:create_tasks(Tasks),
        Results = [py_event_loop_pool:await(R) || R <- Refs],
        ?assertEqual([{ok, {I, case I rem 10 of 0 -> Big; _ -> Mid end}}
                      || I <- lists:seq(1, 100)], Results),
        {ok, Log} = py_event_loop_pool:run(el_helpers, take_log, []),
        ?assertEqual(lists:seq(1, 100), [I || {I, _} <- Log])
    after
        case Old of
            {ok, V} -> application:set_env(erlang_python, max_frame, V);
            undefined -> application:unset_env(erlang_python, max_frame)
        end
    end.
