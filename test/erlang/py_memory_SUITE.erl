%% Python memory from Erlang (memory.md): py:memory_stats/0, py:gc/0,1,
%% py:tracemalloc_start/0,1, py:tracemalloc_stop/0, and the memory cap of a
%% context (a pool's max_memory: one port program per context in process
%% mode): crossing it is {error, {'MemoryError', _}} for the call that did,
%% and the context stays usable.
-module(py_memory_SUITE).

-include_lib("common_test/include/ct.hrl").

-export([all/0, init_per_suite/1, end_per_suite/1, end_per_testcase/2]).
-export([memory_stats_shape/1, gc_generations/1, tracemalloc_example/1,
         tracemalloc_frames_and_later_contexts/1, monitor_memory_example/1,
         worker_memory_growth_example/1, bad_arguments/1,
         cap_raises_memory_error/1, cap_rearms/1, cap_held_over_kills/1,
         malloc_arenas_capped/1]).

%% The cap: a port program's resident memory at rest (larger under ASan) plus 120 MB.
-define(CAP, cap()).

all() ->
    [memory_stats_shape, gc_generations, tracemalloc_example,
     tracemalloc_frames_and_later_contexts, monitor_memory_example,
     worker_memory_growth_example, bad_arguments,
     cap_raises_memory_error, cap_rearms, cap_held_over_kills, malloc_arenas_capped].

init_per_suite(Config) ->
    py_test_util:start_app([]) ++ Config.

end_per_suite(Config) ->
    py_test_util:stop_app(Config),
    Config.

end_per_testcase(_Case, _Config) ->
    _ = py:tracemalloc_stop(),
    _ = py_context_router:stop_pool(mem_cap_pool),
    _ = py_context_router:stop_pool(arena_pool),
    application:unset_env(erlang_python, malloc_arena_max),
    ok.

%% Every port program starts with MALLOC_ARENA_MAX (app env malloc_arena_max,
%% default 2): the default and io pools, the event loops, a pool started by
%% hand; a pool's own `env' wins; `system' leaves it unset. (On the driver
%% backend, `make test-ct-driver', Python runs in the VM, whose environment
%% is its own: the pools started here ask for port programs.)
malloc_arenas_capped(_Config) ->
    Getenv = [<<"MALLOC_ARENA_MAX">>],
    [{ok, <<"2">>} = py:call(Ctx, os, getenv, Getenv)
     || Ctx <- py_context_router:contexts(default) ++ py_context_router:contexts(io),
        on_port_program(Ctx)],
    [{ok, <<"2">>} = py_event_loop:run_on(L, os, getenv, Getenv, #{})
     || L <- py_event_loop_pool:get_all_loops(),
        lists:all(fun on_port_program/1, py_context_router:contexts(py_event_loops))],
    Arena = fun(Opts) ->
                    {ok, [_]} = py_context_router:start_pool(arena_pool, 1,
                                                             Opts#{mode => process, backend => port}),
                    {ok, Value} = py:call(arena_pool, os, getenv, Getenv),
                    ok = py_context_router:stop_pool(arena_pool),
                    Value
            end,
    <<"2">> = Arena(#{}),
    <<"4">> = Arena(#{env => #{"MALLOC_ARENA_MAX" => "4"}}),
    ok = application:set_env(erlang_python, malloc_arena_max, 8),
    <<"8">> = Arena(#{}),
    ok = application:set_env(erlang_python, malloc_arena_max, system),
    Inherited = Arena(#{}),
    Inherited = case os:getenv("MALLOC_ARENA_MAX") of
                    false -> none;
                    V -> list_to_binary(V)
                end,
    ok.

on_port_program(Ctx) ->
    {ok, _, Owner, _} = py_context:lookup(Ctx),
    maps:get(backend, py_port:info(Owner)) =:= port.

%% "Memory Statistics"
memory_stats_shape(_Config) ->
    {ok, Stats} = py:memory_stats(),
    #{gc_stats := GcStats, gc_count := {G0, G1, G2}, gc_threshold := {T0, T1, T2}} = Stats,
    3 = length(GcStats),
    [#{<<"collected">> := C, <<"collections">> := N, <<"uncollectable">> := U} | _] = GcStats,
    true = lists:all(fun is_integer/1, [C, N, U, G0, G1, G2, T0, T1, T2]),
    false = maps:is_key(traced_memory_current, Stats),
    ok.

%% "Garbage Collection"
gc_generations(_Config) ->
    {ok, Collected} = py:gc(),
    true = is_integer(Collected) andalso Collected >= 0,
    {ok, _} = py:gc(0),
    {ok, _} = py:gc(1),
    {ok, _} = py:gc(2),
    %% a reference cycle is collected
    ok = py:exec(py:context(1), <<"
class _Node:
    pass
for _ in range(100):
    a = _Node(); b = _Node(); a.other = b; b.other = a
del a, b
">>),
    {ok, Freed} = py:gc(),
    true = Freed >= 200,
    ok.

%% "Memory Tracing"
tracemalloc_example(_Config) ->
    ok = py:tracemalloc_start(),
    {ok, _} = py:eval(<<"[x**2 for x in range(100000)]">>),
    {ok, Stats} = py:memory_stats(),
    #{traced_memory_current := Current, traced_memory_peak := Peak} = Stats,
    true = is_integer(Current) andalso Peak >= Current andalso Peak > 0,
    ok = py:tracemalloc_stop(),
    {ok, After} = py:memory_stats(),
    false = maps:is_key(traced_memory_current, After),
    ok.

%% "Frame Depth"; tracing reaches every context, started later included
tracemalloc_frames_and_later_contexts(_Config) ->
    ok = py:tracemalloc_start(10),
    [{ok, 10} = py:eval(Ctx, <<"__import__('tracemalloc').get_traceback_limit()">>, #{})
     || Ctx <- py_context_router:contexts(default)],
    {ok, [New]} = py_context_router:start_pool(mem_cap_pool, 1, process),
    {ok, true} = py:eval(New, <<"__import__('tracemalloc').is_tracing()">>, #{}),
    ok = py:tracemalloc_stop(),
    {ok, false} = py:eval(New, <<"__import__('tracemalloc').is_tracing()">>, #{}),
    ok.

%% "Monitor Pool Memory"
monitor_memory_example(_Config) ->
    {ok, Stats} = py:memory_stats(),
    Count = element(1, maps:get(gc_count, Stats)),
    Threshold = element(1, maps:get(gc_threshold, Stats)),
    R = if Count > Threshold * 0.8 -> py:gc();
           true -> ok
        end,
    true = R =:= ok orelse element(1, R) =:= ok,
    ok.

%% "Worker Memory Growth"
worker_memory_growth_example(_Config) ->
    [ok = py:exec(<<"x", (integer_to_binary(N))/binary, " = [0] * 1000">>) || N <- lists:seq(1, 5)],
    LargeList = lists:seq(1, 1000),
    [{ok, 1000} = py:eval(<<"len(data)">>, #{data => LargeList}) || _ <- lists:seq(1, 5)],
    ok.

bad_arguments(_Config) ->
    {error, {badarg, 3}} = py:gc(3),
    {error, {badarg, x}} = py:gc(x),
    {error, {badarg, 0}} = py:tracemalloc_start(0),
    ok.

%% Under ASan (make test-asan) freed memory waits in a quarantine and is not
%% returned: without one, usage drops below the cap as it would normally.
cap_opts() ->
    #{max_memory => ?CAP,
      env => #{"ASAN_OPTIONS" => "detect_leaks=0:abort_on_error=1:quarantine_size_mb=0"}}.

cap() ->
    {ok, Rss} = py:eval(py:context(1), <<"int(open('/proc/self/statm').read().split()[1]) * "
                                        "__import__('resource').getpagesize()">>, #{}),
    Rss + 120000000.

%% "Per-Context Memory Caps": the call that crosses the cap gets MemoryError,
%% the context (same OS process, same namespace) stays usable.
cap_raises_memory_error(_Config) ->
    {ok, [Ctx]} = py_context_router:start_pool(mem_cap_pool, 1, cap_opts()),
    ok = py:exec(Ctx, <<"kept = 'state survives'">>),
    {ok, OsPid} = py:eval(Ctx, <<"__import__('os').getpid()">>, #{}),
    {error, {'MemoryError', _}} = py:exec(Ctx, <<"_hog = [[] for _ in range(10000000)]">>),
    {ok, 4} = py:eval(Ctx, <<"2+2">>, #{}),
    {ok, OsPid} = py:eval(Ctx, <<"__import__('os').getpid()">>, #{}),
    {ok, <<"state survives">>} = py:eval(Ctx, <<"kept">>, #{}),
    ok.

%% "The cap re-arms once usage drops back below it"
cap_rearms(_Config) ->
    {ok, [Ctx]} = py_context_router:start_pool(mem_cap_pool, 1, cap_opts()),
    Hog = <<"_hog = [bytearray(b'x') * 10000000 for _ in range(100)]">>,
    {error, {'MemoryError', _}} = py:exec(Ctx, Hog),
    {ok, 1} = py:eval(Ctx, <<"1">>, #{}),
    {error, {'MemoryError', _}} = py:exec(Ctx, Hog),
    {ok, 2} = py:eval(Ctx, <<"2">>, #{}),
    ok.

%% Memory that stays over the cap (the code catches MemoryError and keeps
%% what it allocated): the port program is killed after the grace time, the
%% caller gets python_died, the pool restarts it.
cap_held_over_kills(_Config) ->
    {ok, [Ctx]} = py_context_router:start_pool(mem_cap_pool, 1, cap_opts()),
    ok = py:exec(Ctx, <<"
import time
held = []
def hold():
    try:
        while True:
            held.append(bytearray(b'x') * 10000000)
    except MemoryError:
        time.sleep(30)
">>),
    T0 = erlang:monotonic_time(millisecond),
    {error, {python_died, 137}} = py:call(Ctx, '__main__', hold, []),
    Elapsed = erlang:monotonic_time(millisecond) - T0,
    ct:pal("killed after ~p ms", [Elapsed]),
    true = Elapsed < 10000,
    ok.
