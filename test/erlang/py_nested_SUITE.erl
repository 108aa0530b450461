%% @doc Which requests run nested while a context's thread waits for Erlang
%% (spec/PROTOCOL.md, "Callbacks: waits, nesting, cancellation"): only those of
%% the waiting call's own chain (a registered function, called from that
%% thread, calling back into the context, directly or through a pool, at any
%% depth, from erlang.call or erlang.async_call). Every other request queued
%% for the context runs in its turn, after the waiting request, as on an idle
%% context: concurrent coroutine calls no longer start an event loop inside a
%% running one.
-module(py_nested_SUITE).

-include_lib("common_test/include/ct.hrl").

-export([all/0, suite/0, init_per_suite/1, end_per_suite/1,
         init_per_testcase/2, end_per_testcase/2]).
-export([coroutines_default_pool/1, coroutines_one_context/1,
         asyncio_run_default_pool/1, asyncio_run_one_context/1,
         unrelated_request_runs_after/1, unrelated_request_after_async_wait/1,
         reenter_call_via_context/1, reenter_call_via_pool/1,
         reenter_call_via_default_pool/1, reenter_async_via_context/1,
         reenter_async_via_pool/1, reenter_async_concurrent/1,
         delegated_chain/1]).

-define(POOL1, nested_one).
-define(CONCURRENT, 8).

suite() ->
    [{timetrap, {seconds, 60}}].

all() ->
    [coroutines_default_pool, coroutines_one_context, asyncio_run_default_pool,
     asyncio_run_one_context, unrelated_request_runs_after,
     unrelated_request_after_async_wait, reenter_call_via_context, reenter_call_via_pool,
     reenter_call_via_default_pool, reenter_async_via_context, reenter_async_via_pool,
     reenter_async_concurrent, delegated_chain].

%% The helper module is on python_path, so every pool can import it.
init_per_suite(Config) ->
    Helpers = filename:join(?config(priv_dir, Config), "helpers"),
    ok = filelib:ensure_dir(filename:join(Helpers, "x")),
    ok = file:write_file(filename:join(Helpers, "nested_probe.py"), probe_module()),
    Saved = py_test_util:start_app([Helpers]),
    {ok, 2} = py:eval(<<"1 + 1">>),
    ok = py:register_function(nested_slow, fun([X]) -> timer:sleep(20), X * 2 end),
    ok = py:register_function(nested_chain, fun([Target, N]) ->
                                                    {ok, L} = py:call(Target, nested_probe, chain,
                                                                      [Target, N - 1]),
                                                    L
                                            end),
    Saved ++ Config.

end_per_suite(Config) ->
    _ = py:unregister_function(nested_slow),
    _ = py:unregister_function(nested_chain),
    py_test_util:stop_app(Config),
    Config.

init_per_testcase(_Case, Config) ->
    {ok, [Ctx]} = py_context_router:start_pool(?POOL1, 1, process),
    [{ctx, Ctx} | Config].

end_per_testcase(_Case, _Config) ->
    ok = py_context_router:stop_pool(?POOL1),
    [ok = py_context_router:unregister_pool(T)
     || {T, _} <- py_context_router:list_pool_registrations()],
    _ = py:unregister_function(nested_hold),
    ok.

%%====================================================================
%% Concurrent coroutine calls (issue: 2 of 8 succeeded, 6 got
%% "asyncio.run() cannot be called from a running event loop")
%%====================================================================

coroutines_default_pool(_Config) ->
    true = py_context_router:num_contexts(default) < ?CONCURRENT,
    all_ok(concurrently(fun(I) -> py:call(nested_probe, fetch, [I]) end)).

coroutines_one_context(_Config) ->
    all_ok(concurrently(fun(I) -> py:call(?POOL1, nested_probe, fetch, [I]) end)).

%% A sync function that runs its own loop, as threading.md shows.
asyncio_run_default_pool(_Config) ->
    all_ok(concurrently(fun(I) -> py:call(nested_probe, fetch_sync, [I]) end)).

asyncio_run_one_context(_Config) ->
    all_ok(concurrently(fun(I) -> py:call(?POOL1, nested_probe, fetch_sync, [I]) end)).

%%====================================================================
%% Order: a request of someone else waits for the waiting call to end
%%====================================================================

%% A waits in erlang.call; B (another process) is sent to the context; then A's
%% handler calls the context itself (C, of A's chain: nested at once). A ends,
%% then B runs: the log is [c, a-done, b]. Nested, B would have run first.
unrelated_request_runs_after(Config) ->
    Ctx = ?config(ctx, Config),
    register_hold(),
    ok = py:register_pool(?POOL1, {nested_probe, record}),
    A = async(fun() -> py:call(Ctx, nested_probe, hold_then_record, [<<"a">>]) end),
    HA = await_held(<<"a">>),
    RefB = py:spawn_call(nested_probe, record, [<<"b">>]),  % written to the port now
    HA ! {call, fun() -> py:call(Ctx, nested_probe, record, [<<"c">>]) end, self()},
    {ok, <<"c">>} = receive {called, R} -> R after 5000 -> ct:fail(no_chain_call) end,
    HA ! {release, done},
    {ok, <<"a">>} = result(A),
    {ok, <<"b">>} = py:await(RefB, 5000),
    {ok, [<<"c">>, <<"a-done">>, <<"b">>]} = py:call(Ctx, nested_probe, take_log, []).

%% The same while A's coroutine awaits erlang.async_call: B (also a coroutine)
%% runs after A, not inside A's running loop.
unrelated_request_after_async_wait(Config) ->
    Ctx = ?config(ctx, Config),
    register_hold(),
    ok = py:register_pool(?POOL1, {nested_probe, record_co}),
    A = async(fun() -> py:call(Ctx, nested_probe, hold_then_record_co, [<<"a">>]) end),
    HA = await_held(<<"a">>),
    RefB = py:spawn_call(nested_probe, record_co, [<<"b">>]),
    HA ! {call, fun() -> py:call(Ctx, nested_probe, record, [<<"c">>]) end, self()},
    {ok, <<"c">>} = receive {called, R} -> R after 5000 -> ct:fail(no_chain_call) end,
    HA ! {release, done},
    {ok, <<"a">>} = result(A),
    {ok, <<"b">>} = py:await(RefB, 5000),
    {ok, [<<"c">>, <<"a-done">>, <<"b">>]} = py:call(Ctx, nested_probe, take_log, []).

%%====================================================================
%% Reentrancy: the chain still runs nested, several levels deep
%%====================================================================

reenter_call_via_context(Config) ->
    Ctx = ?config(ctx, Config),
    OsPid = os_pid(Ctx),
    {ok, Pids} = py:call(Ctx, nested_probe, chain, [Ctx, 5]),
    Pids = lists:duplicate(6, OsPid).

%% The pool has one context: each level lands on the waiting thread.
reenter_call_via_pool(Config) ->
    OsPid = os_pid(?config(ctx, Config)),
    {ok, Pids} = py:call(?POOL1, nested_probe, chain, [?POOL1, 5]),
    Pids = lists:duplicate(6, OsPid).

%% Each level lands on either context of the default pool; concurrently.
reenter_call_via_default_pool(_Config) ->
    Results = concurrently(fun(_) -> py:call(nested_probe, chain, [default, 4]) end),
    [5 = length(Pids) || {ok, Pids} <- Results],
    ?CONCURRENT = length([ok || {ok, _} <- Results]).

%% A coroutine awaits erlang.async_call; the function calls back into the
%% context (nested in the running loop), which goes on with erlang.call.
reenter_async_via_context(Config) ->
    Ctx = ?config(ctx, Config),
    OsPid = os_pid(Ctx),
    {ok, Pids} = py:call(Ctx, nested_probe, chain_co, [Ctx, 4]),
    Pids = lists:duplicate(5, OsPid).

reenter_async_via_pool(Config) ->
    OsPid = os_pid(?config(ctx, Config)),
    {ok, Pids} = py:call(?POOL1, nested_probe, chain_co, [?POOL1, 4]),
    Pids = lists:duplicate(5, OsPid),
    %% several re-entering async calls at once in one loop
    {ok, Lists} = py:call(?POOL1, nested_probe, chain_gather, [?POOL1, 3, 5]),
    Lists = lists:duplicate(5, lists:duplicate(4, OsPid)).

%% Concurrent callers on one context, each a coroutine whose async call
%% re-enters: each caller's chain runs nested in its own wait, the other
%% callers' requests wait for their turn.
reenter_async_concurrent(Config) ->
    OsPid = os_pid(?config(ctx, Config)),
    Results = concurrently(fun(_) -> py:call(?POOL1, nested_probe, chain_co, [?POOL1, 3]) end),
    Expected = lists:duplicate(?CONCURRENT, {ok, lists:duplicate(4, OsPid)}),
    Expected = Results.

%% A process acting for the callback (py_callback:join_chain/1) is part of
%% its chain; without it, the same call waits for its turn.
delegated_chain(Config) ->
    Ctx = ?config(ctx, Config),
    register_hold(),
    A = async(fun() -> py:call(Ctx, nested_probe, hold_then_record, [<<"a">>]) end),
    HA = await_held(<<"a">>),
    HA ! {call, fun() ->
                        Chain = py_callback:chain(),
                        {_, _} = Chain,
                        Handler = self(),
                        spawn_link(fun() ->
                                           ok = py_callback:join_chain(Chain),
                                           Handler ! {delegated, py:call(Ctx, nested_probe, record,
                                                                         [<<"d">>])}
                                   end),
                        receive {delegated, R} -> R after 5000 -> timeout end
                end, self()},
    {ok, <<"d">>} = receive {called, R} -> R after 5000 -> ct:fail(no_chain_call) end,
    %% a plain process: it waits for A (a timeout leaves it queued, then dropped)
    {error, timeout} = py:call(Ctx, nested_probe, record, [<<"x">>], #{timeout => 300}),
    HA ! {release, done},
    {ok, <<"a">>} = result(A),
    {ok, [<<"d">>, <<"a-done">>]} = py:call(Ctx, nested_probe, take_log, []),
    none = py_callback:chain().

%%====================================================================
%% Helpers
%%====================================================================

probe_module() ->
    <<"
import asyncio
import os

import erlang

_log = []


def record(tag):
    _log.append(tag)
    return tag


async def record_co(tag):
    await asyncio.sleep(0)
    return record(tag)


def take_log():
    out = list(_log)
    _log.clear()
    return out


async def fetch(x):
    return await erlang.async_call('nested_slow', x)


def fetch_sync(x):
    return asyncio.run(fetch(x))


def hold_then_record(tag):
    erlang.call('nested_hold', tag)
    _log.append(tag + '-done')
    return tag


async def _hold_co(tag):
    await erlang.async_call('nested_hold', tag)
    _log.append(tag + '-done')
    return tag


def hold_then_record_co(tag):
    return asyncio.run(_hold_co(tag))


def chain(target, n):
    \"\"\"n levels: erlang.call, whose function calls this again in `target`.\"\"\"
    if n == 0:
        return [os.getpid()]
    return [os.getpid()] + erlang.call('nested_chain', target, n)


async def chain_co(target, n):
    return [os.getpid()] + await erlang.async_call('nested_chain', target, n)


async def chain_gather(target, n, k):
    return list(await asyncio.gather(*(chain_co(target, n) for _ in range(k))))
">>.

%% nested_hold(Tag) tells the test {held, Tag, Handler}, then serves
%% {call, Fun, From} (runs Fun in the handler: part of the chain) until
%% {release, Reply}.
register_hold() ->
    Test = self(),
    ok = py:register_function(nested_hold, fun([Tag]) ->
                                                   Test ! {held, Tag, self()},
                                                   hold_loop()
                                           end).

hold_loop() ->
    receive
        {call, Fun, From} -> From ! {called, Fun()}, hold_loop();
        {release, Reply} -> Reply
    end.

await_held(Tag) ->
    receive {held, Tag, H} -> H after 5000 -> ct:fail({not_held, Tag}) end.

concurrently(Fun) ->
    Test = self(),
    Pids = [spawn_link(fun() -> Test ! {done, self(), Fun(I)} end)
            || I <- lists:seq(1, ?CONCURRENT)],
    [receive {done, P, R} -> R after 20000 -> ct:fail({no_result, P}) end || P <- Pids].

all_ok(Results) ->
    ct:pal("~p", [Results]),
    Expected = [{ok, I * 2} || I <- lists:seq(1, ?CONCURRENT)],
    Expected = Results.

async(Fun) ->
    Test = self(),
    spawn_link(fun() -> Test ! {async_result, self(), Fun()} end).

result(Pid) ->
    receive {async_result, Pid, R} -> R after 10000 -> ct:fail({no_result_from, Pid}) end.

os_pid(Ctx) ->
    {ok, P} = py:call(Ctx, os, getpid, []),
    P.
