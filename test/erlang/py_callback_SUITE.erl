%% @doc Python calling Erlang: registered functions called with erlang.call,
%% erlang.<name>, `from erlang import name', erlang.async_call and erlang.send,
%% from the context's own thread, from Python threads, thread pools and asyncio;
%% errors, reentrancy, cancellation on timeout, the handler processes under
%% py_callback_sup and what happens to them when the port program dies.
%%
%% Every example of the threading guide (threading.md) is a test here (group
%% `guide'). Anything stateful runs in context 1 of the default pool, or in a
%% pool of its own when the test may break or kill its port program.
-module(py_callback_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0, groups/0, suite/0, init_per_suite/1, end_per_suite/1,
         init_per_testcase/2, end_per_testcase/2]).
%% called through py:register_function/3
-export([double_list/1]).

-export([guide_threading_thread/1, guide_thread_pool_executor/1,
         guide_sequential_calls_one_thread/1, guide_threads_double_it/1,
         guide_error_handling/1, guide_async_call/1, guide_async_gather/1,
         guide_async_error_handling/1, guide_fastapi_http/1, guide_fastapi_websocket/1,
         fastapi_served_by_uvicorn/1,
         call_forms/1, erlang_preimported/1, register_forms/1, register_badarg/1,
         multiple_arguments/1, registration_is_immediate/1,
         error_raise/1, error_throw/1, error_exit/1, error_unregistered/1,
         error_non_str_name/1, error_unregister_then_call/1, error_uncaught_reaches_caller/1,
         errors_in_threads/1, async_call_errors/1, error_reason_not_latin1/1,
         error_reason_not_latin1_async/1, error_handler_killed/1,
         error_handler_killed_thread/1, error_async_process_killed/1,
         error_result_too_deep/1, deep_terms_on_a_small_stack/1,
         error_result_over_max_frame/1,
         async_call_reenters_context/1, abandoned_handler_retired/1,
         async_call_cancelled_on_timeout/1,
         types_both_ways/1, types_from_python/1, send_delivers/1,
         threads_16_x_1000/1, thread_pool_32_map_10000/1, async_gather_1000/1,
         thread_calls_while_main_blocked/1, event_loops_are_freed/1, reentrancy_3_levels/1, reentrancy_deep/1,
         handlers_per_slot_and_depth/1, thread_churn_is_bounded/1,
         slow_callback_cancelled_on_timeout/1, callback_after_cancel_not_delayed/1,
         registration_visible_to_new_pool/1, port_crash_kills_handlers/1]).

-define(CANCELLED(Name),
        <<"erlang.call('", Name/binary,
          "') cancelled: the Erlang caller of this Python call gave up">>).

suite() ->
    [{timetrap, {seconds, 60}}].

all() ->
    [{group, guide}, {group, api}, {group, errors}, {group, types}, {group, concurrency},
     {group, handlers}, {group, timeouts}, {group, lifecycle}].

groups() ->
    [{guide, [], [guide_threading_thread, guide_thread_pool_executor,
                  guide_sequential_calls_one_thread, guide_threads_double_it,
                  guide_error_handling, guide_async_call, guide_async_gather,
                  guide_async_error_handling, guide_fastapi_http, guide_fastapi_websocket]},
     {api, [], [call_forms, erlang_preimported, register_forms, register_badarg,
                multiple_arguments, registration_is_immediate]},
     {errors, [], [error_raise, error_throw, error_exit, error_unregistered,
                   error_non_str_name, error_unregister_then_call,
                   error_uncaught_reaches_caller, errors_in_threads, async_call_errors,
                   error_reason_not_latin1, error_reason_not_latin1_async,
                   error_handler_killed, error_handler_killed_thread,
                   error_async_process_killed, error_result_too_deep,
                   deep_terms_on_a_small_stack, error_result_over_max_frame]},
     {types, [], [types_both_ways, types_from_python, send_delivers]},
     {concurrency, [], [threads_16_x_1000, thread_pool_32_map_10000, async_gather_1000,
                        thread_calls_while_main_blocked, reentrancy_3_levels,
                        reentrancy_deep, async_call_reenters_context,
                        fastapi_served_by_uvicorn, event_loops_are_freed]},
     {handlers, [], [handlers_per_slot_and_depth, thread_churn_is_bounded]},
     {timeouts, [], [slow_callback_cancelled_on_timeout, callback_after_cancel_not_delayed,
                     abandoned_handler_retired, async_call_cancelled_on_timeout]},
     {lifecycle, [], [registration_visible_to_new_pool, port_crash_kills_handlers]}].

init_per_suite(Config) ->
    {ok, _} = application:ensure_all_started(erlang_python),
    %% The first call waits for Python to start.
    {ok, 2} = py:eval(py:context(1), <<"1 + 1">>),
    Functions = #{ident => fun([X]) -> X end,
                  echo_args => fun(Args) -> Args end,
                  add_one => fun([X]) -> X + 1 end,
                  double_it => fun([X]) -> X * 2 end,
                  my_function => fun([A, B]) -> A + B end,
                  maybe_fail => fun([X]) when X >= 42 -> error({too_big, X});
                                   ([X]) -> X
                                end,
                  get_user => fun([Id]) -> #{id => Id, name => <<"user", (integer_to_binary(Id))/binary>>} end,
                  query_a => fun([P]) -> {a, P} end,
                  query_b => fun([P]) -> {b, P} end,
                  query_c => fun([P]) -> {c, P} end,
                  whoami => fun([]) -> self() end,
                  boom => fun([]) -> error(badarith) end,
                  throw_it => fun([]) -> throw(oops) end,
                  exit_it => fun([]) -> exit(bye) end,
                  process_message => fun([Text]) -> <<"got: ", Text/binary>> end},
    [ok = py:register_function(Name, Fun) || {Name, Fun} <- maps:to_list(Functions)],
    ok = shared_exec(py:context(1), result_helpers()),
    [{functions, maps:keys(Functions)} | Config].

end_per_suite(Config) ->
    [py:unregister_function(Name) || Name <- ?config(functions, Config)],
    ok = application:stop(erlang_python),
    Config.

init_per_testcase(_Case, Config) ->
    flush_mailbox(),
    Config.

end_per_testcase(_Case, _Config) ->
    ok.

%%====================================================================
%% guide: every example of threading.md
%%====================================================================

guide_threading_thread(_Config) ->
    Ctx = py:context(1),
    ok = shared_exec(Ctx, <<"
import threading
import erlang

guide_got = []
def guide_worker():
    result = erlang.call('my_function', 20, 22)
    print(f'Got: {result}')
    guide_got.append(f'Got: {result}')

thread = threading.Thread(target=guide_worker)
thread.start()
thread.join()
">>),
    {ok, [<<"Got: 42">>]} = py:eval(Ctx, <<"guide_got">>),
    ok.

guide_thread_pool_executor(_Config) ->
    Ctx = py:context(1),
    ok = shared_exec(Ctx, <<"
from concurrent.futures import ThreadPoolExecutor
import erlang

def call_erlang(x):
    return erlang.call('double_it', x)

with ThreadPoolExecutor(max_workers=4) as executor:
    guide_results = list(executor.map(call_erlang, range(10)))
">>),
    {ok, [0, 2, 4, 6, 8, 10, 12, 14, 16, 18]} = py:eval(Ctx, <<"guide_results">>),
    ok.

guide_sequential_calls_one_thread(_Config) ->
    Ctx = py:context(1),
    ok = shared_exec(Ctx, <<"
import threading
import erlang

guide_seq = []
def guide_seq_worker():
    # Chain multiple Erlang calls
    x = erlang.call('add_one', 0)
    x = erlang.call('add_one', x)
    x = erlang.call('add_one', x)
    guide_seq.append(x)
    return x  # Returns 3

thread = threading.Thread(target=guide_seq_worker)
thread.start()
thread.join()
">>),
    {ok, [3]} = py:eval(Ctx, <<"guide_seq">>),
    %% and the same function on the context's own thread
    {ok, 3} = py:call(Ctx, '__main__', guide_seq_worker, []),
    ok.

guide_threads_double_it(_Config) ->
    %% "Registering Erlang Functions": registered from Erlang, called from 10 threads.
    ok = py:register_function(double_it, fun([X]) -> X * 2 end),
    ok = py:register_function(add_one, fun([X]) -> X + 1 end),
    Ctx = py:context(1),
    ok = shared_exec(Ctx, <<"
import threading
import erlang

guide_doubled = {}
def guide_double_worker(n):
    guide_doubled[n] = erlang.call('double_it', n)
    return guide_doubled[n]

threads = [threading.Thread(target=guide_double_worker, args=(i,)) for i in range(10)]
for t in threads:
    t.start()
for t in threads:
    t.join()
">>),
    {ok, Doubled} = py:eval(Ctx, <<"guide_doubled">>),
    ?assertEqual(maps:from_list([{I, 2 * I} || I <- lists:seq(0, 9)]), Doubled),
    ok.

guide_error_handling(_Config) ->
    Ctx = py:context(1),
    ok = shared_exec(Ctx, <<"
import threading
import erlang

guide_errors = []
def guide_error_worker():
    try:
        result = erlang.call('maybe_fail', 42)
    except RuntimeError as e:
        print(f'Erlang error: {e}')
        guide_errors.append(str(e))

thread = threading.Thread(target=guide_error_worker)
thread.start()
thread.join()
">>),
    {ok, [<<"erlang.call('maybe_fail') failed: error:{too_big,42}">>]} =
        py:eval(Ctx, <<"guide_errors">>),
    %% below the threshold it succeeds
    {ok, 41} = py:eval(Ctx, <<"erlang.call('maybe_fail', 41)">>),
    ok.

guide_async_call(_Config) ->
    Ctx = py:context(1),
    ok = shared_exec(Ctx, <<"
import asyncio
import erlang

async def fetch_data(user_id):
    result = await erlang.async_call('get_user', user_id)
    return result
">>),
    %% the map's atom keys are erlang.Atom keys in Python, and atoms again here
    Expected = #{id => 7, name => <<"user7">>},
    %% run with asyncio.run, as in the guide ...
    {ok, Expected} = py:eval(Ctx, <<"asyncio.run(fetch_data(7))">>),
    %% ... and as a coroutine function called from Erlang
    {ok, Expected} = py:call(Ctx, '__main__', fetch_data, [7]),
    ok.

guide_async_gather(_Config) ->
    Ctx = py:context(1),
    ok = shared_exec(Ctx, <<"
import asyncio
import erlang

async def parallel_queries(param1, param2, param3):
    # Run multiple Erlang calls concurrently
    results = await asyncio.gather(
        erlang.async_call('query_a', param1),
        erlang.async_call('query_b', param2),
        erlang.async_call('query_c', param3)
    )
    return results
">>),
    {ok, [{a, 1}, {b, <<"two">>}, {c, [3]}]} =
        py:call(Ctx, '__main__', parallel_queries, [1, <<"two">>, [3]]),
    ok.

guide_async_error_handling(_Config) ->
    Ctx = py:context(1),
    ok = shared_exec(Ctx, <<"
import asyncio
import erlang

guide_async_errors = []
async def safe_call(x):
    try:
        result = await erlang.async_call('maybe_fail', x)
        return result
    except RuntimeError as e:
        print(f'Erlang error: {e}')
        guide_async_errors.append(str(e))
        return None
">>),
    {ok, none} = py:eval(Ctx, <<"asyncio.run(safe_call(42))">>),
    {ok, 3} = py:eval(Ctx, <<"asyncio.run(safe_call(3))">>),
    {ok, [Msg]} = py:eval(Ctx, <<"guide_async_errors">>),
    true = contains(Msg, <<"{too_big,42}">>),
    ok.

%% "With FastAPI/Starlette": the guide's app, driven by Starlette's TestClient,
%% which runs the app on an event loop of its own in another thread. (The
%% guide's websocket handler lacks the `WebSocket' annotation, without which
%% FastAPI takes the argument for a query parameter and refuses the connection.)
guide_fastapi_http(_Config) ->
    Ctx = py:context(1),
    ok = shared_exec(Ctx, fastapi_app()),
    {ok, {200, #{<<"user">> := #{<<"id">> := 7, <<"name">> := <<"user7">>}}}} =
        py:call(Ctx, '__main__', fastapi_get, [<<"/user/7">>]),
    %% FastAPI's own validation, before any callback
    {ok, {422, _}} = py:call(Ctx, '__main__', fastapi_get, [<<"/user/seven">>]),
    ok.

guide_fastapi_websocket(_Config) ->
    Ctx = py:context(1),
    ok = shared_exec(Ctx, fastapi_app()),
    {ok, [<<"got: hello">>, <<"got: wörld"/utf8>>, <<"got: ">>]} =
        py:call(Ctx, '__main__', fastapi_ws_roundtrip, [[<<"hello">>, <<"wörld"/utf8>>, <<>>]]),
    ok.

fastapi_app() ->
    <<"
from fastapi import FastAPI, WebSocket
from fastapi.testclient import TestClient
import erlang

app = FastAPI()

@app.get('/user/{user_id}')
async def get_user(user_id: int):
    # Use async_call for asyncio compatibility
    user = await erlang.async_call('get_user', user_id)
    return {'user': user}

@app.websocket('/ws')
async def websocket_endpoint(websocket: WebSocket):
    await websocket.accept()
    while True:
        data = await websocket.receive_text()
        # Safe to use in WebSocket handlers
        result = await erlang.async_call('process_message', data)
        await websocket.send_text(result)

def fastapi_get(path):
    with TestClient(app) as client:
        r = client.get(path)
        return (r.status_code, r.json())

def fastapi_ws_roundtrip(texts):
    replies = []
    with TestClient(app) as client:
        with client.websocket_connect('/ws') as ws:
            for text in texts:
                ws.send_text(text)
                replies.append(ws.receive_text())
    return replies
">>.

%%====================================================================
%% api
%%====================================================================

call_forms(_Config) ->
    Ctx = py:context(1),
    {ok, {2, 8, 11, 101, 1001, 3}} = py:eval(Ctx, <<"
from erlang import add_one
from erlang import double_it as dbl
import erlang as e
async def add_one_async(x):
    return await erlang.async_call('add_one', x)
(add_one(1), dbl(4), erlang.add_one(10), erlang.call('add_one', 100), e.add_one(1000),
 asyncio.run(add_one_async(2)))
">>),
    %% the attribute form carries its name
    {ok, <<"add_one">>} = py:eval(Ctx, <<"erlang.add_one.__name__">>),
    %% dunder names are not registered functions
    {ok, false} = py:eval(Ctx, <<"hasattr(erlang, '__wrapped__')">>),
    ok.

erlang_preimported(_Config) ->
    %% no import needed: in any context of the pool, with and without locals
    [{ok, 5} = py:eval(C, <<"erlang.call('add_one', 4)">>) || C <- py_pool:contexts(default)],
    [{ok, 5} = py:eval(<<"erlang.call('add_one', 4)">>) || _ <- py_pool:contexts(default)],
    {ok, 5} = py:eval(<<"erlang.add_one(x)">>, #{x => 4}),
    ok = py:exec(<<"erlang.call('add_one', 4)">>),
    ok.

register_forms(_Config) ->
    Ctx = py:context(1),
    %% fun, atom name
    ok = py:register_function(reg_atom, fun([X]) -> {atom_name, X} end),
    {ok, {atom_name, 1}} = py:eval(Ctx, <<"erlang.call('reg_atom', 1)">>),
    %% fun, binary name (also non-ASCII)
    ok = py:register_function(<<"reg_bin">>, fun([X]) -> {bin_name, X} end),
    {ok, {bin_name, 2}} = py:eval(Ctx, <<"erlang.reg_bin(2)">>),
    ok = py:register_function(<<"régistré_名"/utf8>>, fun([X]) -> {utf8_name, X} end),
    {ok, {utf8_name, 3}} = py:eval(Ctx, <<"erlang.call('régistré_名', 3)"/utf8>>),
    %% Module, Function
    ok = py:register_function(mf_double, ?MODULE, double_list),
    {ok, 42} = py:eval(Ctx, <<"erlang.call('mf_double', 21)">>),
    ok = py:register_function(<<"mf_bin">>, ?MODULE, double_list),
    {ok, 8} = py:eval(Ctx, <<"erlang.mf_bin(4)">>),
    %% a name registered as atom is the same as its binary
    ok = py:register_function(<<"reg_atom">>, fun([X]) -> {replaced, X} end),
    {ok, {replaced, 4}} = py:eval(Ctx, <<"erlang.reg_atom(4)">>),
    [ok = py:unregister_function(N) || N <- [reg_atom, <<"reg_bin">>, <<"régistré_名"/utf8>>,
                                             mf_double, mf_bin]],
    {ok, {<<"RuntimeError">>, _}} = py:call(Ctx, '__main__', cb_result, [<<"reg_atom">>]),
    {ok, {<<"RuntimeError">>, _}} = py:call(Ctx, '__main__', cb_result, [<<"mf_double">>]),
    %% unregistering an unknown name is fine
    ok = py:unregister_function(never_registered_xyz),
    ok.

register_badarg(_Config) ->
    {error, {badarg, _}} = py:register_function(42, fun([]) -> ok end),
    {error, {badarg, _}} = py:register_function("a list", fun([]) -> ok end),
    {error, {badarg, _}} = py:register_function(bad_fun, not_a_fun),
    {error, {badarg, _}} = py:register_function(bad_fun, fun(_, _) -> ok end),
    {error, {badarg, _}} = py:register_function(bad_fun, "m", f),
    {error, {badarg, _}} = py:unregister_function(42),
    {ok, {<<"RuntimeError">>, _}} =
        py:call(py:context(1), '__main__', cb_result, [<<"bad_fun">>]),
    ok.

multiple_arguments(_Config) ->
    Ctx = py:context(1),
    {ok, []} = py:eval(Ctx, <<"erlang.call('echo_args')">>),
    {ok, [1, <<"a">>, none, [2.5]]} = py:eval(Ctx, <<"erlang.call('echo_args', 1, 'a', None, [2.5])">>),
    {ok, [1, 2, 3]} = py:eval(Ctx, <<"erlang.echo_args(*range(1, 4))">>),
    ok.

registration_is_immediate(_Config) ->
    %% registered, replaced, unregistered: every context sees each step at once
    Contexts = py_pool:contexts(default),
    Check = fun(Expected) ->
                    [{C, Expected} = {C, py:call(C, '__main__', cb_result_any, [<<"imm">>])}
                     || C <- Contexts]
            end,
    [ok = shared_exec(C, <<"
def cb_result_any(name, *args):
    try:
        return ('ok', erlang.call(name, *args))
    except Exception as e:
        return (type(e).__name__, str(e))
">>) || C <- Contexts],
    Check({ok, {<<"RuntimeError">>, <<"erlang.call('imm') failed: function 'imm' is not registered">>}}),
    ok = py:register_function(imm, fun([]) -> one end),
    Check({ok, {<<"ok">>, one}}),
    ok = py:register_function(imm, fun([]) -> two end),
    Check({ok, {<<"ok">>, two}}),
    ok = py:unregister_function(imm),
    Check({ok, {<<"RuntimeError">>, <<"erlang.call('imm') failed: function 'imm' is not registered">>}}),
    ok.

%%====================================================================
%% errors
%%====================================================================

error_raise(_Config) ->
    {ok, {<<"RuntimeError">>, <<"erlang.call('boom') failed: error:badarith">>}} =
        cb_result(<<"boom">>, []),
    ok = py:register_function(boom_reason, fun([X]) -> error({bad_thing, X, "text"}) end),
    {ok, {<<"RuntimeError">>, <<"erlang.call('boom_reason') failed: error:{bad_thing,7,\"text\"}">>}} =
        cb_result(<<"boom_reason">>, [7]),
    ok = py:unregister_function(boom_reason),
    %% a function clause error is an error too
    {ok, {<<"RuntimeError">>, <<"erlang.call('add_one') failed: error:function_clause">>}} =
        cb_result(<<"add_one">>, [1, 2]),
    {ok, {<<"RuntimeError">>, <<"erlang.call('add_one') failed: error:badarith">>}} =
        cb_result(<<"add_one">>, [<<"x">>]),
    %% the context goes on
    {ok, {<<"ok">>, 2}} = cb_result(<<"add_one">>, [1]),
    ok.

error_throw(_Config) ->
    {ok, {<<"RuntimeError">>, <<"erlang.call('throw_it') failed: throw:oops">>}} =
        cb_result(<<"throw_it">>, []),
    ok.

error_exit(_Config) ->
    {ok, {<<"RuntimeError">>, <<"erlang.call('exit_it') failed: exit:bye">>}} =
        cb_result(<<"exit_it">>, []),
    %% the handler survives its function's exit: same handler next time
    {ok, {<<"ok">>, H1}} = cb_result(<<"whoami">>, []),
    {ok, {<<"RuntimeError">>, _}} = cb_result(<<"exit_it">>, []),
    {ok, {<<"ok">>, H1}} = cb_result(<<"whoami">>, []),
    true = is_process_alive(H1),
    ok.

error_unregistered(_Config) ->
    {ok, {<<"RuntimeError">>, <<"erlang.call('nope') failed: function 'nope' is not registered">>}} =
        cb_result(<<"nope">>, [1, 2]),
    %% from a thread
    {ok, {<<"RuntimeError">>, <<"erlang.call('nope') failed: function 'nope' is not registered">>}} =
        py:eval(py:context(1), <<"in_thread(cb_result, 'nope')">>),
    %% the attribute form: no such attribute (dropin2: not a stub failing when called)
    {ok, {<<"AttributeError">>, AttrMsg}} =
        py:eval(py:context(1), <<"
try:
    erlang.nope_attr(1)
    r = ('ok', None)
except AttributeError as e:
    r = ('AttributeError', str(e))
r">>),
    true = contains(AttrMsg, <<"no Erlang function of that name is registered">>),
    ok.

error_non_str_name(_Config) ->
    Ctx = py:context(1),
    {ok, {<<"TypeError">>, Msg}} = py:call(Ctx, '__main__', cb_result, [42]),
    true = contains(Msg, <<"must be str">>),
    {ok, {<<"TypeError">>, _}} = py:call(Ctx, '__main__', cb_result, [{bytes, <<"ident">>}, 1]),
    {ok, {<<"TypeError">>, _}} = py:call(Ctx, '__main__', cb_result, [none]),
    {error, {'TypeError', _}} = py:eval(Ctx, <<"erlang.call()">>),
    {error, {'TypeError', _}} = py:eval(Ctx, <<"erlang.call(42)">>),
    %% async_call checks the name before anything is sent
    {ok, {<<"TypeError">>, _}} = py:eval(Ctx, <<"asyncio.run(acb_result(42))">>),
    %% an argument with no Erlang mapping
    {ok, {<<"TypeError">>, SetMsg}} = py:eval(Ctx, <<"cb_result('ident', {1, 2})">>),
    true = contains(SetMsg, <<"set">>),
    {ok, {<<"TypeError">>, _}} = py:eval(Ctx, <<"cb_result('ident', object())">>),
    %% the thread goes on
    {ok, {<<"ok">>, 1}} = cb_result(<<"ident">>, [1]),
    ok.

error_unregister_then_call(_Config) ->
    Ctx = py:context(1),
    ok = py:register_function(short_lived, fun([X]) -> X * 3 end),
    {ok, 6} = py:eval(Ctx, <<"erlang.call('short_lived', 2)">>),
    {ok, 6} = py:eval(Ctx, <<"in_thread(erlang.call, 'short_lived', 2)">>),
    ok = py:unregister_function(short_lived),
    {ok, {<<"RuntimeError">>,
          <<"erlang.call('short_lived') failed: function 'short_lived' is not registered">>}} =
        cb_result(<<"short_lived">>, [2]),
    {ok, {<<"RuntimeError">>, _}} = py:eval(Ctx, <<"in_thread(cb_result, 'short_lived', 2)">>),
    {ok, {<<"RuntimeError">>, _}} = py:eval(Ctx, <<"asyncio.run(acb_result('short_lived', 2))">>),
    ok.

error_uncaught_reaches_caller(_Config) ->
    Ctx = py:context(1),
    {error, {'RuntimeError', <<"erlang.call('boom') failed: error:badarith">>}} =
        py:eval(Ctx, <<"erlang.call('boom')">>),
    {error, {'RuntimeError', <<"erlang.call('nope') failed: function 'nope' is not registered">>}} =
        py:eval(Ctx, <<"erlang.call('nope')">>),
    true = contains(py:last_traceback(), <<"RuntimeError">>),
    {error, {'AttributeError', _}} = py:eval(Ctx, <<"erlang.nope()">>),
    ok.

errors_in_threads(_Config) ->
    Ctx = py:context(1),
    {ok, Results} = py:eval(Ctx, <<"
def thread_errors():
    names = ['boom', 'throw_it', 'exit_it', 'nope', 'ident']
    out = [None] * len(names)
    def w(k):
        out[k] = cb_result(names[k], *([5] if names[k] == 'ident' else []))
    ts = [threading.Thread(target=w, args=(k,)) for k in range(len(names))]
    for t in ts: t.start()
    for t in ts: t.join()
    return out
thread_errors()">>),
    [{<<"RuntimeError">>, <<"erlang.call('boom') failed: error:badarith">>},
     {<<"RuntimeError">>, <<"erlang.call('throw_it') failed: throw:oops">>},
     {<<"RuntimeError">>, <<"erlang.call('exit_it') failed: exit:bye">>},
     {<<"RuntimeError">>, <<"erlang.call('nope') failed: function 'nope' is not registered">>},
     {<<"ok">>, 5}] = Results,
    ok.

%% Async errors are RuntimeErrors that name the function and the reason, like
%% erlang.call's.
async_call_errors(_Config) ->
    Ctx = py:context(1),
    {ok, Results} = py:eval(Ctx, <<"
async def async_errors():
    return await asyncio.gather(*[acb_result(n) for n in ['boom', 'throw_it', 'exit_it', 'nope']])
asyncio.run(async_errors())">>),
    [{<<"RuntimeError">>, M1}, {<<"RuntimeError">>, M2}, {<<"RuntimeError">>, M3},
     {<<"RuntimeError">>, M4}] = Results,
    true = contains(M1, <<"error:badarith">>),
    true = contains(M2, <<"throw:oops">>),
    true = contains(M3, <<"exit:bye">>),
    true = contains(M4, <<"function 'nope' is not registered">>),
    %% the message names the function, as erlang.call's does
    [{Name, true} = {Name, contains(M, Name)}
     || {Name, M} <- [{<<"boom">>, M1}, {<<"throw_it">>, M2}, {<<"exit_it">>, M3},
                      {<<"nope">>, M4}]],
    ok.

%% A reason that does not fit in Latin-1 (a Unicode atom or string) still
%% becomes a RuntimeError, and at once: the handler must always reply.
error_reason_not_latin1(_Config) ->
    with_pool(cb_unicode_pool, fun(Ctx) ->
        ok = py:register_function(unicode_error, fun([]) -> error({'日本', 1}) end),
        ok = shared_exec(Ctx, result_helpers()),
        Result = py:call(Ctx, '__main__', cb_result, [<<"unicode_error">>], #{timeout => 2000}),
        ok = py:unregister_function(unicode_error),
        {ok, {<<"RuntimeError">>, Msg}} = Result,
        true = contains(Msg, <<"erlang.call('unicode_error') failed: error:">>),
        true = contains(Msg, <<"日本"/utf8>>)
    end).

%% The same through async_call: a reply must come, or the coroutine (and with
%% it the context) waits forever.
error_reason_not_latin1_async(_Config) ->
    with_pool(cb_unicode_async_pool, fun(Ctx) ->
        ok = py:register_function(unicode_error, fun([]) -> exit('日本') end),
        ok = shared_exec(Ctx, result_helpers()),
        Result = py:call(Ctx, '__main__', acb_result, [<<"unicode_error">>], #{timeout => 2000}),
        ok = py:unregister_function(unicode_error),
        {ok, {<<"RuntimeError">>, Msg}} = Result,
        true = contains(Msg, <<"日本"/utf8>>),
        %% the context is usable afterwards
        {ok, 2} = py:eval(Ctx, <<"1 + 1">>, #{}, 3000)
    end).

%% A function whose process is killed (exit(self(), kill) cannot be caught):
%% the call still fails at once with a RuntimeError naming the function, and
%% the thread gets a new handler next time.
error_handler_killed(_Config) ->
    with_pool(cb_killed_pool, fun(Ctx) ->
        ok = py:register_function(killed, fun([]) -> exit(self(), kill) end),
        ok = shared_exec(Ctx, result_helpers()),
        Result = py:call(Ctx, '__main__', cb_result, [<<"killed">>], #{timeout => 2000}),
        ok = py:unregister_function(killed),
        {ok, {<<"RuntimeError">>, Msg}} = Result,
        true = contains(Msg, <<"erlang.call('killed') failed">>),
        {ok, 3} = py:eval(Ctx, <<"erlang.call('add_one', 2)">>, #{}, 2000)
    end).

%% The same from a Python thread (its wait is not the executor's): the owner
%% fails the call with [21, Id, ...] when the handler dies, and the thread's
%% next call gets a new handler.
error_handler_killed_thread(_Config) ->
    with_pool(cb_killed_thread_pool, fun(Ctx) ->
        ok = py:register_function(killed, fun([]) -> exit(self(), kill) end),
        ok = shared_exec(Ctx, <<"
import threading
def killed_in_thread():
    out = []
    def run():
        try:
            erlang.call('killed')
            out.append('no error')
        except RuntimeError as e:
            out.append(str(e))
        out.append(erlang.call('add_one', 2))
    t = threading.Thread(target=run)
    t.start()
    t.join()
    return out
">>),
        T0 = now_ms(),
        Result = py:call(Ctx, '__main__', killed_in_thread, [], #{timeout => 5000}),
        ok = py:unregister_function(killed),
        ct:pal("~p in ~b ms", [Result, now_ms() - T0]),
        {ok, [Msg, 3]} = Result,
        true = contains(Msg, <<"erlang.call('killed') failed: callback process died: killed">>)
    end).

%% An async_call whose process is killed: the awaiting coroutine gets a
%% RuntimeError at once.
error_async_process_killed(_Config) ->
    with_pool(cb_killed_async_pool, fun(Ctx) ->
        ok = py:register_function(killed, fun([]) -> exit(self(), kill) end),
        ok = shared_exec(Ctx, <<"
import asyncio
async def killed_async():
    try:
        await erlang.async_call('killed')
        return 'no error'
    except RuntimeError as e:
        return [str(e), await erlang.async_call('add_one', 2)]
">>),
        Result = py:call(Ctx, '__main__', killed_async, [], #{timeout => 5000}),
        ok = py:unregister_function(killed),
        {ok, [Msg, 3]} = Result,
        true = contains(Msg, <<"erlang.async_call('killed') failed: callback process died: killed">>)
    end).

%% A registered function whose result nests deeper than Python decodes
%% (10,000 levels): the call fails at once with RuntimeError naming the
%% function, on the context's thread, on a Python thread and in async_call;
%% 10,000 levels still arrive.
error_result_too_deep(_Config) ->
    ok = py:register_function(deep_list, fun([N]) -> nest(N) end),
    Ctx = py:context(1),
    ok = shared_exec(Ctx, [three_ways_py(), <<"
def deep_depth(x):
    d = 0
    while isinstance(x, list):
        d += 1
        x = x[0] if x else None
    return d
def deep_everywhere(n):
    return call_three_ways('deep_list', n, deep_depth)
">>]),
    {ok, [10000, 10000, 10000]} = py:call(Ctx, '__main__', deep_everywhere, [10000]),
    {ok, Outcomes} = py:call(Ctx, '__main__', deep_everywhere, [10001], #{timeout => 10000}),
    [{<<"RuntimeError">>, M1}, {<<"RuntimeError">>, M2}, {<<"RuntimeError">>, M3}] = Outcomes,
    true = contains(M1, <<"erlang.call('deep_list') failed: its result cannot be decoded">>),
    true = contains(M2, <<"erlang.call('deep_list') failed">>),
    true = contains(M3, <<"erlang.async_call('deep_list') failed">>),
    [true = contains(M, <<"10000 levels">>) || M <- [M1, M2, M3]],
    ok = py:unregister_function(deep_list).

%% A Python thread started with a small stack (threading.stack_size) cannot
%% convert a term nested thousands of levels deep: RecursionError in that
%% thread, either way, instead of a crashed port program; shallow terms still
%% cross in the same thread.
deep_terms_on_a_small_stack(_Config) ->
    ok = py:register_function(deep_list, fun([N]) -> nest(N) end),
    ok = py:register_function(deep_length, fun([L]) -> length(L) end),
    Ctx = py:context(1),
    {ok, OsPidBefore} = py:call(Ctx, os, getpid, []),
    ok = shared_exec(Ctx, <<"
import threading
def small_stack_outcomes(n):
    nested = []
    for _ in range(n):
        nested = [nested]
    out = []
    def attempt(call):
        try:
            out.append(('ok', call()))
        except RecursionError as e:
            out.append(('RecursionError', str(e)))
    def worker():
        attempt(lambda: len(erlang.call('deep_list', n)))
        attempt(lambda: erlang.call('deep_length', nested))
        attempt(lambda: erlang.call('deep_list', 3))
    t = threading.Thread(target=worker)
    threading.stack_size(256 * 1024)  # for the threads started from now on
    try:
        t.start()
    finally:
        threading.stack_size(0)
    t.join()
    return out
">>),
    {ok, [{<<"RecursionError">>, R1}, {<<"RecursionError">>, R2}, {<<"ok">>, [[[]]]}]} =
        py:call(Ctx, '__main__', small_stack_outcomes, [9000]),
    [true = contains(R, <<"too deep for this thread's stack">>) || R <- [R1, R2]],
    {ok, OsPidBefore} = py:call(Ctx, os, getpid, []),
    [ok = py:unregister_function(F) || F <- [deep_list, deep_length]].

%% A registered function whose result is bigger than the port program's
%% max_frame: the call fails at once with RuntimeError saying so, on the
%% context's thread, on a Python thread and in async_call; the next call works.
error_result_over_max_frame(_Config) ->
    ok = application:set_env(erlang_python, max_frame, 1 bsl 20),
    Started = py_pool:start_pool(cb_small_frames, 1, #{mode => process}),
    ok = application:unset_env(erlang_python, max_frame),
    {ok, [Ctx]} = Started,
    try
        ok = py:register_function(blob, fun([N]) -> binary:copy(<<"b">>, N) end),
        ok = shared_exec(Ctx, [three_ways_py(), <<"
def blob_everywhere(n):
    return call_three_ways('blob', n, len)
">>]),
        {ok, [{<<"RuntimeError">>, M1}, {<<"RuntimeError">>, M2}, {<<"RuntimeError">>, M3}]} =
            py:call(Ctx, '__main__', blob_everywhere, [2000000], #{timeout => 10000}),
        true = contains(M1, <<"erlang.call('blob') failed: its result does not fit">>),
        true = contains(M2, <<"erlang.call('blob') failed: its result does not fit">>),
        true = contains(M3, <<"erlang.async_call('blob') failed: its result does not fit">>),
        [true = contains(M, <<"over the maximum frame of 1048576 bytes">>) || M <- [M1, M2, M3]],
        {ok, [1000, 1000, 1000]} = py:call(Ctx, '__main__', blob_everywhere, [1000])
    after
        py:unregister_function(blob),
        py_pool:stop_pool(cb_small_frames)
    end.

%% call_three_ways(Name, Arg, Measure): the registered function Name called
%% with Arg on the context's thread (erlang.call), on a new Python thread
%% (erlang.Name, with room for 10,000 levels on its stack, sanitizers
%% included) and with async_call: Measure(result), or the exception's
%% (class, message), for each.
three_ways_py() ->
    <<"
import asyncio, threading
def call_three_ways(name, arg, measure):
    def outcome(call):
        try:
            return measure(call())
        except Exception as e:
            return (type(e).__name__, str(e))
    out = [outcome(lambda: erlang.call(name, arg))]
    t = threading.Thread(target=lambda: out.append(outcome(lambda: getattr(erlang, name)(arg))))
    threading.stack_size(64 << 20)
    try:
        t.start()
    finally:
        threading.stack_size(0)
    t.join()
    async def via_async():
        return await erlang.async_call(name, arg)
    out.append(outcome(lambda: asyncio.run(via_async())))
    return out
">>.

%% A list nested N levels deep ([] is one level).
nest(1) -> [];
nest(N) -> [nest(N - 1)].

%%====================================================================
%% types
%%====================================================================

%% Erlang -> Python (call argument) -> Erlang (callback argument) -> Python
%% (callback result) -> Erlang (call result): every step keeps the value.
types_both_ways(_Config) ->
    Self = self(),
    ok = py:register_function(ident_seen, fun([X]) -> Self ! {seen, X}, X end),
    Ctx = py:context(1),
    ok = shared_exec(Ctx, <<"
def through_erlang(x):
    return erlang.call('ident_seen', x)
def through_erlang_types(x):
    y = erlang.call('ident_seen', x)
    return [type(y).__module__ + '.' + type(y).__name__, y == x]
">>),
    Fun = fun(A) -> A + 1 end,
    Values = [0, 1, -1, 127, 255, 65536, 1 bsl 62, (1 bsl 64) - 1, -(1 bsl 63),
              1 bsl 64, -(1 bsl 63) - 1, 1 bsl 200, -(1 bsl 200) + 7,
              1.5, -0.0, 1.0e300,
              <<>>, <<"hello">>, <<"héllo wörld 日本 🎉"/utf8>>, binary:copy(<<"x">>, 70000),
              {bytes, <<"bytes">>},
              true, false, none,
              foo, 'with space', 'ünïcödé',
              [], [1, [2, [3, []]]], [<<"a">>, b, 3],
              {}, {1}, {1, <<"two">>, three, {4.0}},
              #{}, #{<<"k">> => <<"v">>, 1 => [2], x => {y}},
              self(), make_ref(), Fun, hd(erlang:ports()),
              #{nested => [#{deep => {[self(), make_ref(), 1 bsl 100]}}]}],
    lists:foreach(
      fun(V) ->
              Expected = normalize(V),
              {V, {ok, Expected}} = {V, py:call(Ctx, '__main__', through_erlang, [V])},
              {V, Expected} = {V, receive {seen, Seen} -> Seen after 5000 -> no_callback end}
      end, Values),
    %% the Python types on the way back from the callback
    Types = [{foo, <<"erlang._types.Atom">>}, {self(), <<"erlang._types.Pid">>},
             {make_ref(), <<"erlang._types.Ref">>}, {1 bsl 100, <<"builtins.int">>},
             {{1, 2}, <<"builtins.tuple">>}, {#{a => 1}, <<"builtins.dict">>},
             {<<"s">>, <<"builtins.str">>}, {Fun, <<"erlang._types.OpaqueTerm">>},
             {none, <<"builtins.NoneType">>},
             %% bytes reach Erlang as a binary, which is a str on the way back
             {{bytes, <<"b">>}, <<"builtins.str">>, false}],
    lists:foreach(
      fun(Case) ->
              {V, Type, Equal} = case Case of
                                     {V0, T0} -> {V0, T0, true};
                                     Three -> Three
                                 end,
              {V, {ok, [Type, Equal]}} = {V, py:call(Ctx, '__main__', through_erlang_types, [V])},
              receive {seen, _} -> ok after 5000 -> ct:fail(no_callback) end
      end, Types),
    %% atoms are str in Python
    {ok, true} = py:eval(Ctx, <<"isinstance(erlang.call('ident', x), str) and erlang.call('ident', x) == 'foo'">>,
                         #{x => foo}),
    ok = py:unregister_function(ident_seen),
    ok.

%% Values made in Python arrive in Erlang with the documented mapping, and
%% come back to Python equal.
types_from_python(_Config) ->
    Self = self(),
    ok = py:register_function(ident_seen, fun(Args) -> Self ! {seen, Args}, <<"seen">> end),
    Ctx = py:context(1),
    {ok, true} = py:eval(Ctx, <<"
vals = [2**100, -2**100, 2**64 - 1, -2**63, (1, (2, 'x')), {'a': [1, {'b': None}]},
        b'\\x00\\xff', bytearray(b'ab'), erlang.Atom('foo'), None, True, 1.5, 'ünï',
        [], (), {}]
erlang.call('ident_seen', *vals) == 'seen'"/utf8>>),
    receive
        {seen, Seen} ->
            [1 bsl 100, -(1 bsl 100), (1 bsl 64) - 1, -(1 bsl 63), {1, {2, <<"x">>}},
             #{<<"a">> := [1, #{<<"b">> := none}]}, <<0, 255>>, <<"ab">>, foo, none, true,
             1.5, <<"ünï"/utf8>>, [], {}, #{}] = Seen
    after 5000 ->
            ct:fail(no_callback)
    end,
    %% and back to Python equal (bytes excepted: they come back as str)
    {ok, true} = py:eval(Ctx, <<"
vals = [2**100, -2**100, 2**64 - 1, -2**63, (1, (2, 'x')), {'a': [1, {'b': None}]},
        erlang.Atom('foo'), None, True, 1.5, 'ünï', [], (), {}]
back = erlang.call('echo_args', *vals)
back == vals and type(back[6]) is erlang.Atom and type(back[4]) is tuple"/utf8>>),
    %% float specials become atoms
    {ok, [nan, infinity, neg_infinity]} =
        py:eval(Ctx, <<"erlang.echo_args(float('nan'), float('inf'), float('-inf'))">>),
    ok = py:unregister_function(ident_seen),
    ok.

send_delivers(_Config) ->
    Ctx = py:context(1),
    {ok, none} = py:eval(Ctx, <<"erlang.send(p, (erlang.Atom('hello'), 42, [1, 'two'], p))">>,
                         #{p => self()}),
    Self = self(),
    receive {hello, 42, [1, <<"two">>], Self} -> ok after 5000 -> ct:fail(no_message) end,
    %% from a thread, to another process
    Parent = self(),
    Other = spawn_link(fun() -> receive M -> Parent ! {other_got, M} end end),
    {ok, none} = py:eval(Ctx, <<"in_thread(erlang.send, p, {'from': 'thread'})">>, #{p => Other}),
    receive {other_got, #{<<"from">> := <<"thread">>}} -> ok after 5000 -> ct:fail(no_message) end,
    %% many, in order
    ok = shared_exec(Ctx, <<"def send_many(p, n):\n    for i in range(n): erlang.send(p, i)\n">>),
    {ok, none} = py:call(Ctx, '__main__', send_many, [self(), 100]),
    Got = [receive N when is_integer(N) -> N after 5000 -> missing end || _ <- lists:seq(0, 99)],
    Got = lists:seq(0, 99),
    %% a pid is required
    {error, {'TypeError', _}} = py:eval(Ctx, <<"erlang.send('not a pid', 1)">>),
    {error, {'TypeError', _}} = py:eval(Ctx, <<"erlang.send(p)">>, #{p => self()}),
    %% sending to a dead process raises erlang.ProcessError (type-conversion.md)
    Dead = spawn(fun() -> ok end),
    wait_dead(Dead),
    {error, {'ProcessError', _}} = py:eval(Ctx, <<"erlang.send(p, 1)">>, #{p => Dead}),
    {messages, []} = process_info(self(), messages),
    ok.

%%====================================================================
%% concurrency
%%====================================================================

threads_16_x_1000(_Config) ->
    ok = py:register_function(mul_add, fun([K, I]) -> K * 100000 + I end),
    Ctx = py:context(1),
    {ok, Results} = py:eval(Ctx, <<"
def many_threads(nthreads, ncalls):
    results = [None] * nthreads
    barrier = threading.Barrier(nthreads)
    def w(k):
        me = erlang.call('whoami')
        barrier.wait()  # all alive at once: each has a slot of its own
        got = [erlang.call('mul_add', k, i) for i in range(ncalls)]
        ok = got == [k * 100000 + i for i in range(ncalls)]
        results[k] = (ok, me, erlang.call('whoami'))
    ts = [threading.Thread(target=w, args=(k,)) for k in range(nthreads)]
    for t in ts: t.start()
    for t in ts: t.join()
    return results
many_threads(16, 1000)">>, #{}, 50000),
    16 = length(Results),
    [{true, H, H} = R || {_, H, _} = R <- Results],
    %% each thread had its own handler
    Handlers = [H || {_, H, _} <- Results],
    16 = length(lists:usort(Handlers)),
    ok = py:unregister_function(mul_add),
    ok.

thread_pool_32_map_10000(_Config) ->
    Ctx = py:context(1),
    {ok, {10000, true}} = py:eval(Ctx, <<"
def pool_map(n):
    with ThreadPoolExecutor(max_workers=32) as ex:
        got = list(ex.map(lambda x: erlang.call('double_it', x), range(n)))
    return (len(got), got == [2 * x for x in range(n)])
pool_map(10000)">>, #{}, 50000),
    ok.

async_gather_1000(_Config) ->
    Ctx = py:context(1),
    Before = handlers(),
    ok = shared_exec(Ctx, <<"
async def gather_many(n):
    return await asyncio.gather(*[erlang.async_call('double_it', i) for i in range(n)])
">>),
    {ok, Results} = py:call(Ctx, '__main__', gather_many, [1000]),
    Expected = [2 * I || I <- lists:seq(0, 999)],
    Expected = Results,
    %% async calls use short-lived processes, not supervised handlers
    Before = handlers(),
    %% a mix of async errors and results
    {ok, Mixed} = py:eval(Ctx, <<"
async def gather_mixed(n):
    return await asyncio.gather(*[erlang.async_call('maybe_fail', i) for i in range(n)],
                                return_exceptions=True)
[r if isinstance(r, int) else type(r).__name__ for r in asyncio.run(gather_mixed(50))]">>),
    ExpectedMixed = lists:seq(0, 41) ++ lists:duplicate(8, <<"RuntimeError">>),
    ExpectedMixed = Mixed,
    ok.

%% The context's own thread waits in erlang.call while a Python thread's call
%% must complete for it to return: both are served at the same time.
thread_calls_while_main_blocked(_Config) ->
    Coordinator = spawn_link(fun() -> rendezvous(2, []) end),
    ok = py:register_function(rendezvous, fun([Role]) ->
                                                  Coordinator ! {arrive, Role, self()},
                                                  receive {go, R} -> R after 5000 -> timeout end
                                          end),
    Ctx = py:context(1),
    {ok, #{<<"main">> := <<"main-ok">>, <<"thread">> := <<"thread-ok">>}} = py:eval(Ctx, <<"
def main_blocked():
    out = {}
    def w():
        out['thread'] = erlang.call('rendezvous', 'thread')
    t = threading.Thread(target=w)
    t.start()
    out['main'] = erlang.call('rendezvous', 'main')
    t.join()
    return out
main_blocked()">>, #{}, 15000),
    %% the main thread is blocked first, and only the thread's call unblocks it
    Relay = spawn_link(fun() ->
                               receive {main_waiting, Main} -> ok end,
                               receive {signal, V, From} -> Main ! {signal, V}, From ! sent end
                       end),
    ok = py:register_function(wait_signal, fun([]) ->
                                                   Relay ! {main_waiting, self()},
                                                   receive {signal, V} -> V after 5000 -> timeout end
                                           end),
    ok = py:register_function(signal, fun([V]) ->
                                              Relay ! {signal, V, self()},
                                              receive sent -> sent after 5000 -> timeout end
                                      end),
    {ok, [<<"from thread">>, sent]} = py:eval(Ctx, <<"
import time
def main_waits_for_thread():
    out = []
    def w():
        time.sleep(0.05)  # the main thread is blocked in erlang.call by now
        out.append(erlang.call('signal', 'from thread'))
    t = threading.Thread(target=w)
    t.start()
    got = erlang.call('wait_signal')
    t.join()
    return [got] + out
main_waits_for_thread()">>, #{}, 15000),
    ok = py:unregister_function(wait_signal),
    ok = py:unregister_function(signal),
    ok = py:unregister_function(rendezvous),
    ok.

rendezvous(0, Arrived) ->
    [Pid ! {go, <<Role/binary, "-ok">>} || {Role, Pid} <- Arrived],
    ok;
rendezvous(N, Arrived) ->
    receive {arrive, Role, Pid} -> rendezvous(N - 1, [{Role, Pid} | Arrived]) end.

%% Python -> Erlang -> Python (same context) -> Erlang -> Python -> Erlang -> Python.
reentrancy_3_levels(_Config) ->
    Ctx = py:context(1),
    ok = py:register_function(reenter, fun([N]) ->
                                               {ok, L} = py:call(Ctx, '__main__', reenter, [N - 1]),
                                               [{erl, N, self()} | L]
                                       end),
    ok = shared_exec(Ctx, <<"
def reenter(n):
    if n == 0:
        return [('py', 0)]
    return [('py', n)] + erlang.call('reenter', n)
">>),
    {ok, [{<<"py">>, 3}, {erl, 3, H0}, {<<"py">>, 2}, {erl, 2, H1}, {<<"py">>, 1},
          {erl, 1, H2}, {<<"py">>, 0}]} = py:call(Ctx, '__main__', reenter, [3]),
    %% one handler per nesting depth
    3 = length(lists:usort([H0, H1, H2])),
    %% the same handlers serve the same depths next time
    {ok, [_, {erl, 3, H0}, _, {erl, 2, H1}, _, {erl, 1, H2}, _]} =
        py:call(Ctx, '__main__', reenter, [3]),
    ok = py:unregister_function(reenter),
    ok.

reentrancy_deep(_Config) ->
    Ctx = py:context(1),
    ok = py:register_function(reenter_sum, fun([N]) ->
                                                   {ok, S} = py:call(Ctx, '__main__', reenter_sum, [N - 1]),
                                                   S + N
                                           end),
    ok = shared_exec(Ctx, <<"
def reenter_sum(n):
    return 0 if n == 0 else erlang.call('reenter_sum', n)
">>),
    {ok, 210} = py:call(Ctx, '__main__', reenter_sum, [20]),
    ok = py:unregister_function(reenter_sum),
    ok.

%% `await erlang.async_call(F)' in a coroutine running on the context's own
%% thread, where F calls back into the same context with py:call: while the
%% event loop waits for the async call it runs the requests sent to its
%% context nested (as erlang.call does), so there is no deadlock. Several
%% at once (gather), and a nested request that itself calls erlang.call.
async_call_reenters_context(_Config) ->
    with_pool(cb_async_reenter_pool, fun(Ctx) ->
        ok = py:register_function(reenter_async, fun([X]) ->
                                                         {ok, V} = py:call(Ctx, '__main__', plus_one_cb, [X],
                                                                           #{timeout => 5000}),
                                                         V
                                                 end),
        ok = shared_exec(Ctx, <<"
import asyncio
def plus_one_cb(x):
    return erlang.call('add_one', x) + 0
async def reenter_one(x):
    return await erlang.async_call('reenter_async', x)
async def reenter_many(n):
    return await asyncio.gather(*(erlang.async_call('reenter_async', i) for i in range(n)))
">>),
        T0 = now_ms(),
        R1 = py:call(Ctx, '__main__', reenter_one, [1], #{timeout => 5000}),
        R2 = py:call(Ctx, '__main__', reenter_many, [20], #{timeout => 5000}),
        Elapsed = now_ms() - T0,
        ok = py:unregister_function(reenter_async),
        ct:pal("~p, ~p in ~b ms", [R1, R2, Elapsed]),
        {ok, 2} = R1,
        Expected = lists:seq(1, 20),
        {ok, Expected} = R2,
        true = Elapsed < 4000,
        %% outside a coroutine the context runs its requests in order, as before
        {ok, 2} = py:eval(Ctx, <<"1 + 1">>, #{}, 2000)
    end).

%% Each event loop that used async_call gets an eventfd; a loop that is done
%% with must be freed with it, also when a call of it was cancelled: 300
%% asyncio.run calls (a sync web handler may make one per request) leave the
%% port program's descriptors as they were.
event_loops_are_freed(_Config) ->
    Ctx = py:context(1),
    %% slower than the 1 ms the loops wait for it: each of those calls is cancelled
    ok = py:register_function(slow_ident, fun([X]) -> timer:sleep(20), X end),
    ok = shared_exec(Ctx, <<"
import asyncio
async def loop_once(i):
    done = await erlang.async_call('add_one', i)
    try:
        await asyncio.wait_for(erlang.async_call('slow_ident', i), 0.001)
    except asyncio.TimeoutError:
        pass
    return done
def many_loops(n):
    return sum(asyncio.run(loop_once(i)) for i in range(n))
">>),
    {ok, OsPid} = py:call(Ctx, os, getpid, []),
    Fds = fun() -> length(filelib:wildcard("/proc/" ++ integer_to_list(OsPid) ++ "/fd/*")) end,
    {ok, _} = py:call(Ctx, '__main__', many_loops, [10]),
    Before = Fds(),
    {ok, Sum} = py:call(Ctx, '__main__', many_loops, [300], #{timeout => 60000}),
    Sum = lists:sum([I + 1 || I <- lists:seq(0, 299)]),
    After = Fds(),
    ct:pal("descriptors before ~p, after 300 loops ~p", [Before, After]),
    true = After =< Before + 4,
    ok = py:unregister_function(slow_ident).

%% A FastAPI app served by uvicorn from a thread of the port program, its
%% handler calling Erlang; Erlang's httpc sends 200 requests, 20 at a time.
fastapi_served_by_uvicorn(_Config) ->
    {ok, _} = application:ensure_all_started(inets),
    Ctx = py:context(1),
    ok = shared_exec(Ctx, <<"
import threading, time
import uvicorn
from fastapi import FastAPI
import erlang

served = FastAPI()

@served.get('/double/{n}')
async def served_double(n: int):
    return {'n': n, 'doubled': await erlang.async_call('double_it', n),
            'handler': repr(erlang.call('whoami'))}

def serve_start():
    global server, server_thread
    config = uvicorn.Config(served, host='127.0.0.1', port=0, log_level='warning',
                            lifespan='off')
    server = uvicorn.Server(config)
    server_thread = threading.Thread(target=server.run, daemon=True)
    server_thread.start()
    while not server.started:  # uvicorn sets it once it listens
        if not server_thread.is_alive():
            raise RuntimeError('uvicorn stopped before it listened')
        time.sleep(0.01)
    return server.servers[0].sockets[0].getsockname()[1]

def serve_stop():
    server.should_exit = True
    server_thread.join(10)
    return not server_thread.is_alive()
">>),
    {ok, Port} = py:call(Ctx, '__main__', serve_start, []),
    try
        Get = fun(N) ->
                      Url = lists:concat(["http://127.0.0.1:", Port, "/double/", N]),
                      {ok, {{_, 200, _}, _, Body}} =
                          httpc:request(get, {Url, []}, [{timeout, 10000}], [{body_format, binary}]),
                      Body
              end,
        Parent = self(),
        Batches = [lists:seq(B * 20, B * 20 + 19) || B <- lists:seq(0, 9)],
        Bodies = lists:append(
                   [begin
                        Pids = [spawn_link(fun() -> Parent ! {self(), N, Get(N)} end) || N <- Batch],
                        [receive {P, N, Body} -> {N, Body} end || {P, N} <- lists:zip(Pids, Batch)]
                    end || Batch <- Batches]),
        200 = length(Bodies),
        [true = contains(Body, <<"\"doubled\":", (integer_to_binary(2 * N))/binary, ",">>)
         || {N, Body} <- Bodies],
        %% the server's loop thread calls with erlang.call too, through its own handler
        [true = contains(Body, <<"Pid">>) || {_, Body} <- Bodies]
    after
        {ok, true} = py:call(Ctx, '__main__', serve_stop, [])
    end,
    ok.

%%====================================================================
%% handlers
%%====================================================================

%% One handler per Python thread slot and nesting depth, children of
%% py_callback_sup, reused by later threads, gone with their port program.
handlers_per_slot_and_depth(_Config) ->
    Before = handlers(),
    with_pool(cb_handler_pool, fun(Ctx) ->
        Before = handlers(),
        ok = py:register_function(reenter1, fun([]) -> {ok, H} = py:eval(Ctx, <<"erlang.whoami()">>),
                                                       [self(), H]
                                            end),
        {ok, H0} = py:eval(Ctx, <<"erlang.whoami()">>),
        true = is_child(H0),
        Plus1 = Before + 1,
        Plus1 = handlers(),
        %% many calls from the same thread: the same handler
        {ok, true} = py:eval(Ctx, <<"
same = True
for _ in range(100):
    same = same and erlang.whoami() == h
same">>, #{h => H0}),
        Plus1 = handlers(),
        %% nesting: one more handler for depth 1
        {ok, [H0, H1]} = py:eval(Ctx, <<"erlang.reenter1()">>),
        true = is_child(H1),
        ?assertNotEqual(H0, H1),
        Plus2 = Before + 2,
        Plus2 = handlers(),
        %% a thread: one more
        ok = shared_exec(Ctx, <<"
import threading
def thread_whoami():
    out = []
    t = threading.Thread(target=lambda: out.append(erlang.whoami()))
    t.start()
    t.join()
    return out[0]
">>),
        {ok, T1} = py:call(Ctx, '__main__', thread_whoami, []),
        true = is_child(T1),
        false = lists:member(T1, [H0, H1]),
        Plus3 = Before + 3,
        Plus3 = handlers(),
        %% a later thread reuses the slot of the one that exited, and its handler
        timer:sleep(100),
        {ok, T1} = py:call(Ctx, '__main__', thread_whoami, []),
        Plus3 = handlers(),
        %% async calls add none
        {ok, _} = py:eval(Ctx, <<"
import asyncio
async def whoami_async():
    return await erlang.async_call('whoami')
asyncio.run(whoami_async())">>),
        Plus3 = handlers(),
        ok = py:unregister_function(reenter1),
        put(handler_pids, [H0, H1, T1])
    end),
    %% the pool stopped: its handlers are gone
    [wait_dead(P) || P <- get(handler_pids)],
    ok = wait_handlers(Before, 5000),
    ok.

%% 10,000 short-lived threads, each doing one call, in batches of 100 (the
%% threads of a batch are all alive at once, and each batch is joined before
%% the next starts): the handlers stay bounded by the threads alive at once,
%% and once the churn is over, new threads reuse the slots (and handlers) of
%% the old ones: no growth.
thread_churn_is_bounded(_Config) ->
    Ctx = py:context(1),
    ok = shared_exec(Ctx, <<"
import time
def churn(batches, batch, pause):
    bad = 0
    for b in range(batches):
        res = [None] * batch
        alive = threading.Barrier(batch)
        def w(k, v):
            res[k] = erlang.call('ident', v)
            alive.wait()  # the whole batch holds its slots at once
        ts = [threading.Thread(target=w, args=(k, b * batch + k)) for k in range(batch)]
        for t in ts: t.start()
        for t in ts: t.join()
        bad += sum(1 for k in range(batch) if res[k] != b * batch + k)
        if pause:
            time.sleep(pause)
    return bad
">>),
    Start = handlers(),
    {ok, 0} = py:call(Ctx, '__main__', churn, [50, 100, 0], #{timeout => 50000}),
    Round1 = handlers(),
    {ok, 0} = py:call(Ctx, '__main__', churn, [50, 100, 0], #{timeout => 50000}),
    Round2 = handlers(),
    %% A thread's slot is freed when its OS thread ends, a moment after join:
    %% let the last batch finish, then batches that leave their threads time to
    %% end must find every slot (and handler) they need.
    timer:sleep(100),
    {ok, 0} = py:call(Ctx, '__main__', churn, [5, 100, 0.05], #{timeout => 50000}),
    Round3 = handlers(),
    ct:pal("handlers: ~b at start, ~b after 5,000 threads, ~b after 10,000, ~b after 500 more",
           [Start, Round1, Round2, Round3]),
    true = Round1 =< 200,
    true = Round2 =< 200,
    %% bounded by the threads alive at once (100) plus the stragglers of a batch
    true = Round2 - Start =< 200,
    Round2 = Round3,
    ok.

%%====================================================================
%% timeouts
%%====================================================================

%% The Erlang caller gives up: the pending erlang.call raises at once and the
%% context serves the next call without waiting for the slow function.
slow_callback_cancelled_on_timeout(_Config) ->
    Self = self(),
    ok = py:register_function(slow, fun([]) ->
                                            Self ! {slow_started, self()},
                                            receive release_slow -> done after 10000 -> late end
                                    end),
    Ctx = py:context(1),
    ok = shared_exec(Ctx, <<"
slow_error = None
def call_slow():
    global slow_error
    try:
        return erlang.call('slow')
    except RuntimeError as e:
        slow_error = str(e)
        raise
">>),
    T0 = now_ms(),
    {error, timeout} = py:call(Ctx, '__main__', call_slow, [], #{timeout => 500}),
    Elapsed = now_ms() - T0,
    true = Elapsed < 1500,
    Slow = receive {slow_started, P} -> P after 0 -> ct:fail(slow_not_called) end,
    %% the error was raised right then, and the context serves the next call
    T1 = now_ms(),
    {ok, Msg} = py:eval(Ctx, <<"slow_error">>, #{}, 2000),
    {ok, 2} = py:eval(Ctx, <<"1 + 1">>, #{}, 2000),
    true = now_ms() - T1 < 1000,
    Msg = ?CANCELLED(<<"slow">>),
    true = is_process_alive(Slow),
    %% the slow function finishes later: its late reply is dropped and the
    %% context's next callbacks get their own replies
    Slow ! release_slow,
    {ok, 7} = py:eval(Ctx, <<"erlang.call('ident', 7)">>, #{}, 5000),
    {ok, [1, 2, 3]} = py:eval(Ctx, <<"[erlang.call('ident', i) for i in (1, 2, 3)]">>, #{}, 5000),
    ok = py:unregister_function(slow),
    {messages, []} = process_info(self(), messages),
    ok.

%% After a cancelled callback the same thread's next erlang.call is not queued
%% behind the slow function still running in Erlang.
callback_after_cancel_not_delayed(_Config) ->
    Self = self(),
    ok = py:register_function(slow, fun([]) ->
                                            Self ! {slow_started, self()},
                                            receive release_slow -> done after 10000 -> late end
                                    end),
    Ctx = py:context(1),
    {error, timeout} = py:eval(Ctx, <<"erlang.call('slow')">>, #{}, 300),
    Slow = receive {slow_started, P} -> P after 2000 -> ct:fail(slow_not_called) end,
    try
        T0 = now_ms(),
        Result = py:eval(Ctx, <<"erlang.call('ident', 5)">>, #{}, 1500),
        Elapsed = now_ms() - T0,
        ct:pal("callback after a cancelled one: ~p in ~b ms", [Result, Elapsed]),
        {ok, 5} = Result,
        true = Elapsed < 1000
    after
        Slow ! release_slow,
        ok = py:unregister_function(slow),
        %% let the late replies drain before the next test
        {ok, 1} = py:eval(Ctx, <<"erlang.call('ident', 1)">>, #{}, 10000)
    end,
    ok.

%% A coroutine running on the context's thread awaits an async call slower
%% than its Erlang caller's timeout: the cancellation reaches the event loop,
%% the await raises at once, and the context serves the next request.
async_call_cancelled_on_timeout(_Config) ->
    Self = self(),
    ok = py:register_function(slow_async, fun([]) ->
                                                  Self ! {slow_started, self()},
                                                  receive release_slow -> done end
                                          end),
    with_pool(cb_async_cancel_pool, fun(Ctx) ->
        ok = shared_exec(Ctx, <<"
import asyncio
slow_async_error = None
async def call_slow_async():
    global slow_async_error
    try:
        return await erlang.async_call('slow_async')
    except RuntimeError as e:
        slow_async_error = str(e)
        raise
">>),
        {error, timeout} = py:call(Ctx, '__main__', call_slow_async, [], #{timeout => 300}),
        Slow = receive {slow_started, P} -> P after 2000 -> ct:fail(slow_not_called) end,
        try
            %% had the await not raised, this would run nested in the waiting
            %% loop and see None
            {ok, Msg} = py:eval(Ctx, <<"slow_async_error">>, #{}, 2000),
            <<"erlang.async_call('slow_async') cancelled: the Erlang caller of this Python call gave up">> = Msg,
            {ok, 2} = py:eval(Ctx, <<"1 + 1">>, #{}, 2000)
        after
            Slow ! release_slow,
            ok = py:unregister_function(slow_async)
        end,
        %% the late reply is dropped; async calls still work
        {ok, 5} = py:eval(Ctx, <<"
async def one(x):
    return await erlang.async_call('ident', x)
asyncio.run(one(5))">>, #{}, 2000)
    end).

%% The handler left running an abandoned request is retired: once its slow
%% function returns it exits (normally), and the thread keeps the fresh one.
abandoned_handler_retired(_Config) ->
    Self = self(),
    ok = py:register_function(slow, fun([]) ->
                                            Self ! {slow_started, self()},
                                            receive release_slow -> done end
                                    end),
    Ctx = py:context(1),
    {ok, H0} = py:eval(Ctx, <<"erlang.call('whoami')">>, #{}, 2000),
    Before = handlers(),
    {error, timeout} = py:eval(Ctx, <<"erlang.call('slow')">>, #{}, 300),
    Slow = receive {slow_started, P} -> P after 2000 -> ct:fail(slow_not_called) end,
    H0 = Slow,
    Ref = erlang:monitor(process, Slow),
    try
        %% the next call (same thread, same depth) gets a new handler at once
        {ok, H1} = py:eval(Ctx, <<"erlang.call('whoami')">>, #{}, 2000),
        true = H1 =/= H0,
        true = is_child(H1),
        Plus1 = Before + 1,
        Plus1 = handlers(),
        {ok, H1} = py:eval(Ctx, <<"erlang.call('whoami')">>, #{}, 2000)
    after
        Slow ! release_slow,
        ok = py:unregister_function(slow)
    end,
    receive {'DOWN', Ref, process, Slow, normal} -> ok after 5000 -> ct:fail(not_retired) end,
    ok = wait_handlers(Before, 5000),
    {ok, 1} = py:eval(Ctx, <<"erlang.call('ident', 1)">>, #{}, 2000),
    ok.

%%====================================================================
%% lifecycle
%%====================================================================

%% Registrations are global: a context started later sees those made before,
%% and those made after, at once.
registration_visible_to_new_pool(_Config) ->
    ok = py:register_function(before_pool, fun([X]) -> {before, X} end),
    {ok, [Ctx]} = py_pool:start_pool(cb_pool, 1, #{mode => process}),
    try
        {ok, {before, 1}} = py:call(Ctx, erlang, call, [<<"before_pool">>, 1]),
        {ok, {before, 2}} = py:eval(Ctx, <<"erlang.before_pool(2)">>),
        {ok, {before, 3}} = py:call(cb_pool, erlang, call, [<<"before_pool">>, 3]),
        ok = py:register_function(after_pool, fun([X]) -> {'after', X} end),
        {ok, {'after', 4}} = py:eval(Ctx, <<"erlang.after_pool(4)">>),
        ok = py:unregister_function(before_pool),
        {error, {'AttributeError', _}} = py:eval(Ctx, <<"erlang.before_pool(5)">>),
        %% from a thread of the new context too
        {ok, {'after', 6}} = py:eval(Ctx, <<"
import threading
out = []
t = threading.Thread(target=lambda: out.append(erlang.after_pool(6)))
t.start()
t.join()
out[0]">>)
    after
        py_pool:stop_pool(cb_pool),
        py:unregister_function(before_pool),
        py:unregister_function(after_pool)
    end,
    ok.

%% kill -9 of the port program while 8 Python threads wait on callbacks: the
%% handlers die with the port's owner, the caller gets python_died, and the
%% restarted context sees the registered functions.
port_crash_kills_handlers(_Config) ->
    {ok, [Ctx]} = py_pool:start_pool(cb_crash_pool, 1, #{mode => process}),
    try
        {ok, 2} = py:eval(Ctx, <<"1 + 1">>),
        Before = handlers(),
        Self = self(),
        ok = py:register_function(block, fun([I]) ->
                                                 Self ! {blocked, I, self()},
                                                 receive release -> I end
                                         end),
        ok = shared_exec(Ctx, <<"
import threading
def crash_wait(n):
    ts = [threading.Thread(target=erlang.call, args=('block', i)) for i in range(n)]
    for t in ts: t.start()
    for t in ts: t.join()
    return 'joined'
">>),
        Caller = spawn_link(fun() ->
                                    Self ! {caller_result,
                                            py:call(Ctx, '__main__', crash_wait, [8],
                                                    #{timeout => 30000})}
                            end),
        Blocked = [receive {blocked, N, P} -> {N, P} after 10000 -> ct:fail({not_blocked, K}) end
                   || K <- lists:seq(1, 8)],
        Pids = [P || {_, P} <- Blocked],
        [0, 1, 2, 3, 4, 5, 6, 7] = lists:sort([I || {I, _} <- Blocked]),
        8 = length(lists:usort(Pids)),
        true = lists:all(fun is_child/1, Pids),
        Refs = [erlang:monitor(process, P) || P <- Pids],
        {ok, _Port, Owner, _} = py_context:lookup(Ctx),
        #{os_pid := OsPid} = py_port:info(Owner),
        OwnerRef = erlang:monitor(process, Owner),
        _ = os:cmd("kill -9 " ++ integer_to_list(OsPid)),
        [receive {'DOWN', R, process, _, _} -> ok after 5000 -> ct:fail(handler_survived) end
         || R <- Refs],
        receive {'DOWN', OwnerRef, process, Owner, _} -> ok after 5000 -> ct:fail(owner_alive) end,
        receive
            {caller_result, {error, {python_died, _}}} -> ok;
            {caller_result, Other} -> ct:fail({caller_got, Other})
        after 5000 ->
                ct:fail(caller_not_told)
        end,
        unlink(Caller),
        ok = wait_handlers(Before, 5000),
        %% the restarted context sees the registrations
        NewCtx = wait_new_context(cb_crash_pool, Ctx, 10000),
        {ok, 6} = py:eval(NewCtx, <<"erlang.double_it(3)">>, #{}, 10000),
        {ok, true} = py:eval(NewCtx, <<"
import threading
out = []
t = threading.Thread(target=lambda: out.append(erlang.call('double_it', 4)))
t.start()
t.join()
out == [8]">>, #{}, 10000),
        {messages, []} = process_info(self(), messages)
    after
        py_pool:stop_pool(cb_crash_pool),
        py:unregister_function(block)
    end,
    ok.

%%====================================================================
%% Helpers
%%====================================================================

double_list([X]) -> X * 2.

cb_result(Name, Args) ->
    py:call(py:context(1), '__main__', cb_result, [Name | Args], #{timeout => 10000}).

handlers() ->
    proplists:get_value(active, supervisor:count_children(py_callback_sup)).

is_child(Pid) ->
    lists:keymember(Pid, 2, supervisor:which_children(py_callback_sup)).

%% Children leave the supervisor a moment after they die.
wait_handlers(Expected, Timeout) when Timeout =< 0 ->
    ct:fail({handlers, handlers(), expected, Expected});
wait_handlers(Expected, Timeout) ->
    case handlers() of
        Expected -> ok;
        _ -> timer:sleep(20), wait_handlers(Expected, Timeout - 20)
    end.

wait_new_context(_Pool, _Old, Timeout) when Timeout =< 0 ->
    ct:fail(context_not_restarted);
wait_new_context(Pool, Old, Timeout) ->
    %% The context keeps its pid: wait for a live new port owner behind it.
    Old = py_pool:context(Pool, 1),
    case py_context:lookup(Old) of
        {ok, Port, Owner, _} when is_port(Port) ->
            case is_process_alive(Owner) andalso erlang:port_info(Port) =/= undefined of
                true -> Old;
                false -> timer:sleep(20), wait_new_context(Pool, Old, Timeout - 20)
            end;
        _ ->
            timer:sleep(20),
            wait_new_context(Pool, Old, Timeout - 20)
    end.

wait_dead(Pid) ->
    Ref = erlang:monitor(process, Pid),
    receive {'DOWN', Ref, process, Pid, _} -> ok after 5000 -> ct:fail({still_alive, Pid}) end.

%% Runs Fun(Ctx) in a pool of its own, for tests that may leave a context stuck.
%% Python helpers of the tests: a call's result or its exception, sync and
%% async, and a call made from a new thread.
result_helpers() ->
    <<"
import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

def cb_result(name, *args):
    try:
        return ('ok', erlang.call(name, *args))
    except Exception as e:
        return (type(e).__name__, str(e))

async def acb_result(name, *args):
    try:
        return ('ok', await erlang.async_call(name, *args))
    except Exception as e:
        return (type(e).__name__, str(e))

def in_thread(fn, *args):
    out = []
    t = threading.Thread(target=lambda: out.append(fn(*args)))
    t.start()
    t.join()
    return out[0]
">>.

with_pool(Pool, Fun) ->
    {ok, [Ctx]} = py_pool:start_pool(Pool, 1, #{mode => process}),
    try
        Fun(Ctx)
    after
        py_pool:stop_pool(Pool)
    end.

%% What a value becomes after a round trip through Python.
normalize({bytes, B}) -> B;
normalize(undefined) -> none;
normalize(nil) -> none;
normalize(L) when is_list(L) -> [normalize(X) || X <- L];
normalize(T) when is_tuple(T) -> list_to_tuple([normalize(X) || X <- tuple_to_list(T)]);
normalize(M) when is_map(M) -> maps:from_list([{normalize(K), normalize(V)} || {K, V} <- maps:to_list(M)]);
normalize(X) -> X.

contains(Bin, Part) when is_binary(Bin) ->
    binary:match(Bin, Part) =/= nomatch;
contains(_, _) ->
    false.

now_ms() ->
    erlang:monotonic_time(millisecond).

flush_mailbox() ->
    receive _ -> flush_mailbox() after 0 -> ok end.

%% Helpers other processes call (callback handlers, spawned callers): in the
%% context's shared namespace, which every process's namespace sees.
shared_exec(Ctx, Code) ->
    py_context:exec(Ctx, Code, shared).
