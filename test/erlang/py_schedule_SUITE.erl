%% Schedule markers and time slices: every example of asyncio.md's "Explicit
%% Scheduling API" (and "Erlang Callbacks from Python"), and the point of
%% markers in a port program: the context serves others between the steps.
-module(py_schedule_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0, suite/0, init_per_suite/1, end_per_suite/1, init_per_testcase/2,
         end_per_testcase/2]).
-export([seed_erlang_call/1, seed_schedule/1, seed_schedule_py/1, seed_schedule_inline/1,
         seed_consume_time_slice/1, seed_cooperative_batches/1, seed_must_return_marker/1,
         seed_nested_marker/1, markers_are_classes/1, marker_chain_through_erlang/1,
         schedule_unregistered/1, schedule_callback_fails/1, schedule_py_errors/1,
         consume_time_slice_badarg/1, marker_in_a_pool_call/1,
         cooperative_tasks_interleave/1, context_free_between_steps/1]).

suite() ->
    [{timetrap, {seconds, 120}}].

all() ->
    [seed_erlang_call, seed_schedule, seed_schedule_py, seed_schedule_inline,
     seed_consume_time_slice, seed_cooperative_batches, seed_must_return_marker,
     seed_nested_marker, markers_are_classes, marker_chain_through_erlang,
     schedule_unregistered, schedule_callback_fails, schedule_py_errors,
     consume_time_slice_badarg, marker_in_a_pool_call, cooperative_tasks_interleave,
     context_free_between_steps].

init_per_suite(Config) ->
    {ok, _} = application:ensure_all_started(erlang_python),
    ok = py:register_function(<<"compute">>, fun([X]) -> X * 2 end),
    ok = py:register_function(my_callback, fun([A, B]) -> A + B end),
    Config.

end_per_suite(Config) ->
    py:unregister_function(<<"compute">>),
    py:unregister_function(my_callback),
    ok = application:stop(erlang_python),
    Config.

init_per_testcase(_Case, Config) ->
    [{ctx, py:context(1)} | Config].

end_per_testcase(_Case, _Config) ->
    ok.

exec(Config, Code) ->
    ok = py:exec(?config(ctx, Config), Code).

call(Config, F, Args) ->
    py:call(?config(ctx, Config), '__main__', F, Args).

%% "Erlang Callbacks from Python": erlang.call blocks until the callback returns
seed_erlang_call(Config) ->
    exec(Config, <<"
import erlang
def process(x):
    return x * 10
def handler():
    result = erlang.call('my_callback', 1, 2)
    return process(result)
">>),
    {ok, 30} = call(Config, handler, []).

seed_schedule(Config) ->
    exec(Config, <<"
import erlang
def handler(x):
    return erlang.schedule('compute', x)
">>),
    {ok, 10} = call(Config, handler, [5]).

seed_schedule_py(Config) ->
    exec(Config, <<"
import erlang
def compute(x, multiplier=2):
    return x * multiplier
def handler(x):
    return erlang.schedule_py('__main__', 'compute', [x], {'multiplier': 3})
">>),
    {ok, 15} = call(Config, handler, [5]).

seed_schedule_inline(Config) ->
    exec(Config, <<"
import erlang
steps = 0
def transform(v):
    return v * v
def process_chunk(data, offset=0, results=None):
    global steps
    steps += 1
    if results is None:
        results = []
    chunk_end = min(offset + 100, len(data))
    for i in range(offset, chunk_end):
        results.append(transform(data[i]))
    if chunk_end < len(data):
        return erlang.schedule_inline(
            '__main__', 'process_chunk',
            args=[data, chunk_end, results]
        )
    return results
">>),
    Data = lists:seq(1, 1050),
    {ok, Results} = call(Config, process_chunk, [Data]),
    ?assertEqual([X * X || X <- Data], Results),
    {ok, 11} = py:eval(?config(ctx, Config), <<"steps">>).

seed_consume_time_slice(Config) ->
    exec(Config, <<"
import erlang
yields = 0
def process(item):
    return item + 1
def long_computation(items, start_idx=0):
    global yields
    results = []
    for i in range(start_idx, len(items)):
        results.append(process(items[i]))
        if erlang.consume_time_slice(1):
            yields += 1
            return erlang.schedule_py(
                '__main__', 'long_computation',
                [items], {'start_idx': i + 1}
            )
    return results
">>),
    %% The seed's example as written returns the last chunk's results only.
    {ok, Last} = call(Config, long_computation, [lists:seq(1, 1000)]),
    ?assertEqual(lists:seq(1001 - length(Last) + 1, 1001), Last),
    {ok, Yields} = py:eval(?config(ctx, Config), <<"yields">>),
    ?assert(Yields >= 9).

seed_cooperative_batches(Config) ->
    exec(Config, <<"
import erlang
processed = []
def expensive_operation(item):
    processed.append(item)
def process_batch(items, batch_size=100, offset=0):
    end = min(offset + batch_size, len(items))
    for i in range(offset, end):
        expensive_operation(items[i])
    if end < len(items):
        return erlang.schedule_py(
            '__main__', 'process_batch',
            [items], {'batch_size': batch_size, 'offset': end}
        )
    return 'done'
">>),
    {ok, <<"done">>} = call(Config, process_batch, [lists:seq(1, 550)]),
    {ok, Processed} = py:eval(?config(ctx, Config), <<"processed">>),
    ?assertEqual(lists:seq(1, 550), Processed).

seed_must_return_marker(Config) ->
    exec(Config, <<"
import erlang
def wrong(arg):
    erlang.schedule('compute', arg)
    return 'oops'
def correct(arg):
    return erlang.schedule('compute', arg)
">>),
    {ok, <<"oops">>} = call(Config, wrong, [1]),
    {ok, 2} = call(Config, correct, [1]).

seed_nested_marker(Config) ->
    exec(Config, <<"
import erlang
def outer(arg):
    def inner():
        return erlang.schedule('compute', arg)
    return inner()
def broken(arg):
    def inner():
        erlang.schedule('compute', arg)
    inner()
    return 'oops'
">>),
    {ok, 8} = call(Config, outer, [4]),
    {ok, <<"oops">>} = call(Config, broken, [4]).

markers_are_classes(Config) ->
    {ok, [true, true, true, true, false]} =
        py:eval(?config(ctx, Config), <<"
from erlang import ScheduleMarker, InlineScheduleMarker
[isinstance(erlang.schedule('x'), ScheduleMarker),
 isinstance(erlang.schedule_py('m', 'f'), ScheduleMarker),
 isinstance(erlang.schedule_inline('m', 'f'), InlineScheduleMarker),
 isinstance(erlang.schedule_inline('m', 'f'), ScheduleMarker),
 isinstance(erlang.schedule_py('m', 'f'), InlineScheduleMarker)]">>).

%% schedule_py to a function that schedules an Erlang callback
marker_chain_through_erlang(Config) ->
    exec(Config, <<"
import erlang
def first(x):
    return erlang.schedule_py('__main__', 'second', [x + 1])
def second(x):
    return erlang.schedule('compute', x)
">>),
    {ok, 12} = call(Config, first, [5]).

schedule_unregistered(Config) ->
    exec(Config, <<"
import erlang
def to_nowhere():
    return erlang.schedule('no_such_callback', 1)
">>),
    {error, {not_registered, <<"no_such_callback">>}} = call(Config, to_nowhere, []).

schedule_callback_fails(Config) ->
    ok = py:register_function(sched_fails, fun([X]) -> 1 / X end),
    try
        exec(Config, <<"
import erlang
def div0():
    return erlang.schedule('sched_fails', 0)
">>),
        {error, {callback_failed, <<"sched_fails">>, {error, badarith}}} = call(Config, div0, [])
    after
        py:unregister_function(sched_fails)
    end.

schedule_py_errors(Config) ->
    exec(Config, <<"
import erlang
def to_missing():
    return erlang.schedule_py('__main__', 'no_such_function_here', [1])
def to_raise():
    return erlang.schedule_py('operator', 'truediv', [1, 0])
">>),
    {error, {'NameError', _}} = call(Config, to_missing, []),
    {error, {'ZeroDivisionError', _}} = call(Config, to_raise, []),
    {error, {'TypeError', _}} = py:eval(?config(ctx, Config), <<"erlang.schedule(1)">>).

consume_time_slice_badarg(Config) ->
    Ctx = ?config(ctx, Config),
    {error, {'ValueError', _}} = py:eval(Ctx, <<"erlang.consume_time_slice(0)">>),
    {error, {'ValueError', _}} = py:eval(Ctx, <<"erlang.consume_time_slice(101)">>),
    {error, {'ValueError', _}} = py:eval(Ctx, <<"erlang.consume_time_slice('x')">>),
    {ok, [false, false, false, true, false]} =
        py:eval(Ctx, <<"
import threading
out = []
def run():
    erlang.consume_time_slice(100)  # a fresh slice for this thread
    out.extend(erlang.consume_time_slice(25) for _ in range(5))
t = threading.Thread(target=run); t.start(); t.join()
out">>).

%% A marker returned to a call through a pool continues on the same context.
marker_in_a_pool_call(_Config) ->
    [{ok, _} = py:eval(C, <<"exec(src, {})">>, #{src => <<"
import sys, types, erlang
m = types.ModuleType('sched_mod')
exec('''
import erlang, os
def start(x):
    return erlang.schedule_py('sched_mod', 'finish', [x, os.getpid()])
def finish(x, pid):
    return (x * 2, pid == os.getpid())
''', m.__dict__)
sys.modules['sched_mod'] = m
">>}) || C <- py_context_router:contexts(default)],
    [?assertEqual({ok, {2 * I, true}}, py:call(sched_mod, start, [I])) || I <- lists:seq(1, 20)].

%% Two long cooperative tasks on one context: their steps interleave, because
%% the context's thread is free between steps.
cooperative_tasks_interleave(Config) ->
    Ctx = ?config(ctx, Config),
    {ok, _} = py:eval(Ctx, <<"exec(src, {})">>, #{src => <<"
import sys, types
m = types.ModuleType('coop')
exec('''
import erlang, time
log = []
def step(name, i, n):
    log.append(name)
    time.sleep(0.002)
    if i + 1 < n:
        return erlang.schedule_py('coop', 'step', [name, i + 1, n])
    return name
''', m.__dict__)
sys.modules['coop'] = m
">>}),
    Parent = self(),
    Start = fun(Name) ->
                    spawn_link(fun() ->
                                       receive go -> ok end,
                                       Parent ! {self(), py:call(Ctx, coop, step, [Name, 0, 50])}
                               end)
            end,
    A = Start(<<"a">>),
    B = Start(<<"b">>),
    A ! go, B ! go,
    receive {A, RA} -> {ok, <<"a">>} = RA end,
    receive {B, RB} -> {ok, <<"b">>} = RB end,
    {ok, Log} = py:eval(Ctx, <<"__import__('coop').log">>),
    100 = length(Log),
    %% interleaved: neither ran all its steps before the other's second step
    Switches = length([x || {X, Y} <- lists:zip(lists:droplast(Log), tl(Log)), X =/= Y]),
    ct:pal("steps switched between the tasks ~p times", [Switches]),
    ?assert(Switches >= 10).

%% While a cooperative task runs on a context, short calls to that context are
%% served between its steps (a blocking loop would hold them until the end).
context_free_between_steps(Config) ->
    Ctx = ?config(ctx, Config),
    {ok, _} = py:eval(Ctx, <<"exec(src, {})">>, #{src => <<"
import sys, types
m = types.ModuleType('coop2')
exec('''
import erlang, time
state = {'steps': 0}
def long_task(n):
    state['steps'] += 1
    time.sleep(0.005)
    if state['steps'] < n:
        return erlang.schedule_py('coop2', 'long_task', [n])
    return 'finished'
def steps():
    return state['steps']
''', m.__dict__)
sys.modules['coop2'] = m
">>}),
    Parent = self(),
    Long = spawn_link(fun() -> Parent ! {self(), py:call(Ctx, coop2, long_task, [200])} end),
    %% a short call answered while the long task is still at work
    py_test_util:wait_until(fun() -> {ok, S} = py:call(Ctx, coop2, steps, []), S > 0 end, 10000),
    {ok, Steps} = py:call(Ctx, coop2, steps, []),
    ?assert(Steps < 200),
    receive {Long, R} -> {ok, <<"finished">>} = R end.
