%% Shared state (py:state_*, erlang.state_*) and SharedDict (py:shared_dict_*,
%% erlang.SharedDict): the examples of getting-started.md, scalability.md and
%% shared-dict.md, visibility across port programs, atomic counters under
%% concurrency, and the lifecycle of a SharedDict. Python side: state_mod.py.
-module(py_state_SUITE).

-include_lib("common_test/include/ct.hrl").

-export([all/0, init_per_suite/1, end_per_suite/1, init_per_testcase/2, end_per_testcase/2]).
-export([getting_started_erlang/1, getting_started_python/1, scalability_example/1,
         atom_and_binary_keys_meet/1, visible_in_every_port_program/1,
         atomic_counters_160k/1, state_errors/1,
         sd_quick_start_erlang/1, sd_python_side/1, sd_configuration_passing/1,
         sd_session_state/1, sd_cache_sharing/1, sd_errors/1, sd_destroy/1,
         sd_freed_when_owner_dies/1, sd_concurrent_python_and_erlang/1]).

-define(POOL, state_test_pool).

all() ->
    [getting_started_erlang, getting_started_python, scalability_example,
     atom_and_binary_keys_meet, visible_in_every_port_program, atomic_counters_160k,
     state_errors, sd_quick_start_erlang, sd_python_side, sd_configuration_passing,
     sd_session_state, sd_cache_sharing, sd_errors, sd_destroy, sd_freed_when_owner_dies,
     sd_concurrent_python_and_erlang].

init_per_suite(Config) ->
    Config1 = py_test_util:start_app([?config(data_dir, Config)]) ++ Config,
    {ok, _} = py_context_router:start_pool(?POOL, 2, process),
    Config1.

end_per_suite(Config) ->
    py_test_util:stop_app(Config),
    Config.

init_per_testcase(_Case, Config) ->
    ok = py:state_clear(),
    Config.

end_per_testcase(_Case, _Config) ->
    ok.

%% getting-started.md, "Shared State" and "From Erlang"
getting_started_erlang(_Config) ->
    ok = py:state_store(<<"config">>, #{api_key => <<"secret">>, timeout => 5000}),
    ok = py:exec(<<"
from erlang import state_get
config = state_get('config')
print(config['api_key'])
">>),
    {ok, <<"secret">>} = py:eval(<<"config['api_key']">>),
    Value = #{<<"data">> => [1, 2, 3]},
    ok = py:state_store(<<"k">>, Value),
    {ok, Value} = py:state_fetch(<<"k">>),
    ok = py:state_remove(<<"k">>),
    {error, not_found} = py:state_fetch(<<"k">>),
    [<<"config">>] = py:state_keys(),
    1 = py:state_incr(<<"hits">>),
    11 = py:state_incr(<<"hits">>, 10),
    10 = py:state_decr(<<"hits">>),
    7 = py:state_decr(<<"hits">>, 3),
    ok = py:state_clear(),
    [] = py:state_keys(),
    ok.

%% getting-started.md, "From Python"
getting_started_python(_Config) ->
    {ok, {#{<<"data">> := [1, 2, 3]}, 1, 11, 10, [<<"my_key">>, <<"requests">>], none}} =
        py:call(state_mod, python_api_example, []),
    {ok, 10} = py:state_fetch(<<"requests">>),
    ok.

%% scalability.md, "Shared State"
scalability_example(_Config) ->
    py:state_store(<<"app_config">>, #{model => <<"gpt-4">>, timeout => 30000}),
    {ok, #{model := <<"gpt-4">>, timeout := 30000}} =
        py:call(state_mod, scalability_example, [<<"12345">>]),
    {ok, 1} = py:state_fetch(<<"requests_total">>),
    {ok, Total} = py:state_fetch(<<"bytes_processed">>),
    5 = Total,
    ok.

atom_and_binary_keys_meet(_Config) ->
    ok = py:state_store(hits_atom, 5),
    {ok, 5} = py:eval(<<"erlang.state_get('hits_atom')">>),
    {ok, 5} = py:state_fetch(<<"hits_atom">>),
    6 = py:state_incr(hits_atom),
    %% other terms are keys as they are
    ok = py:state_store({a, 1}, tuple_key),
    {ok, tuple_key} = py:state_fetch({a, 1}),
    ok.

%% A value set in one port program is seen in another, and by Erlang.
visible_in_every_port_program(_Config) ->
    [C1, C2] = py_context_router:contexts(?POOL),
    true = port_of(C1) =/= port_of(C2),
    {ok, none} = py:eval(C1, <<"erlang.state_set('shared', [1, 'two'])">>),
    {ok, [1, <<"two">>]} = py:eval(C2, <<"erlang.state_get('shared')">>),
    {ok, [1, <<"two">>]} = py:eval(py:context(1), <<"erlang.state_get('shared')">>),
    {ok, [1, <<"two">>]} = py:state_fetch(<<"shared">>),
    ok.

%% 8 Erlang processes and 8 Python threads (4 in each of two port programs),
%% 10,000 increments each of one key: the exact total.
atomic_counters_160k(_Config) ->
    [C1, C2] = py_context_router:contexts(?POOL),
    Self = self(),
    Procs = [spawn_link(fun() ->
                                [py:state_incr(<<"counter">>) || _ <- lists:seq(1, 10000)],
                                Self ! {done, self()}
                        end) || _ <- lists:seq(1, 8)],
    Py = [spawn_link(fun() ->
                             {ok, true} = py:call(C, state_mod, incr_in_threads,
                                                  [<<"counter">>, 4, 10000], #{timeout => 120000}),
                             Self ! {done, self()}
                     end) || C <- [C1, C2]],
    [receive {done, P} -> ok after 120000 -> ct:fail(timeout) end || P <- Procs ++ Py],
    {ok, 160000} = py:state_fetch(<<"counter">>),
    ok.

state_errors(_Config) ->
    ok = py:state_store(<<"text">>, <<"not a number">>),
    {'EXIT', {badarg, _}} = catch py:state_incr(<<"text">>),
    {'EXIT', {{badarg, x}, _}} = catch py:state_incr(<<"n">>, x),
    {error, {'RuntimeError', _}} = py:eval(<<"erlang.state_incr('text')">>),
    {error, {'TypeError', _}} = py:eval(<<"erlang.state_incr('n', 1.5)">>),
    {error, {'TypeError', _}} = py:eval(<<"erlang.state_set('s', {1, 2})">>),
    %% a misspelt name fails at import, not when called
    {error, {'ImportError', _}} = py:exec(<<"from erlang import state_gett">>),
    {error, {'AttributeError', _}} = py:eval(<<"erlang.state_gett">>),
    ok.

%% shared-dict.md, "Quick Start", Erlang side
sd_quick_start_erlang(_Config) ->
    {ok, SD} = py:shared_dict_new(),
    ok = py:shared_dict_set(SD, <<"config">>, #{host => <<"localhost">>, port => 8080}),
    #{host := <<"localhost">>, port := 8080} = py:shared_dict_get(SD, <<"config">>),
    default_value = py:shared_dict_get(SD, <<"missing">>, default_value),
    undefined = py:shared_dict_get(SD, <<"missing">>),
    [<<"config">>] = py:shared_dict_keys(SD),
    ok = py:shared_dict_del(SD, <<"config">>),
    ok = py:shared_dict_del(SD, <<"config">>),
    [] = py:shared_dict_keys(SD),
    ok = py:shared_dict_destroy(SD),
    ok.

%% shared-dict.md, "Python Side"
sd_python_side(_Config) ->
    {ok, SD} = py:shared_dict_new(),
    ok = py:shared_dict_set(SD, <<"config">>, #{host => <<"localhost">>, port => 8080}),
    {ok, {<<"localhost">>, Seen, #{<<"status">> := <<"ok">>, <<"count">> := 42}, false}} =
        py:call(state_mod, process_with_config, [SD]),
    [<<"config found">>, <<"config">>, <<"result">>] = Seen,
    [<<"config">>] = py:shared_dict_keys(SD),
    ok.

%% shared-dict.md, "Configuration Passing"
sd_configuration_passing(_Config) ->
    {ok, SD} = py:shared_dict_new(),
    ok = py:shared_dict_set(SD, <<"db">>, #{host => <<"localhost">>, port => 5432,
                                            user => <<"admin">>}),
    ok = py:exec(<<"from state_mod import process_data">>),
    {ok, _} = py:eval(<<"process_data(handle)">>, #{<<"handle">> => SD}),
    #{<<"rows_processed">> := 1000, <<"port">> := 5432} = py:shared_dict_get(SD, <<"results">>),
    ok.

%% shared-dict.md, "Session State"
sd_session_state(_Config) ->
    {ok, Session} = py:shared_dict_new(),
    ok = py:shared_dict_set(Session, <<"user_id">>, 7),
    ok = py:shared_dict_set(Session, <<"cart">>, []),
    {ok, _} = py:call(state_mod, add_to_cart, [Session, 101]),
    {ok, _} = py:call(?POOL, state_mod, add_to_cart, [Session, 102]),
    [101, 102] = py:shared_dict_get(Session, <<"cart">>),
    ok = py:shared_dict_destroy(Session).

%% shared-dict.md, "Cache Sharing"
sd_cache_sharing(_Config) ->
    {ok, Cache} = py:shared_dict_new(),
    Ctx = py:context(1),
    {ok, _} = py:eval(Ctx, <<"(globals().__setitem__('_cache_handle', handle), None)[-1]">>,
                      #{handle => Cache}),
    ok = py:exec(Ctx, <<"
from erlang import SharedDict
cache = SharedDict(_cache_handle)
cache['computed'] = 42
">>),
    42 = py:shared_dict_get(Cache, <<"computed">>),
    ok.

sd_errors(_Config) ->
    {ok, SD} = py:shared_dict_new(),
    {ok, [<<"getitem KeyError">>, <<"delitem KeyError">>, none, <<"default">>,
          <<"set TypeError">>]} = py:call(state_mod, dict_errors, [SD]),
    {error, {'TypeError', _}} = py:eval(<<"erlang.SharedDict(('nope', 1))">>),
    {'EXIT', {{badarg, nope}, _}} = catch py:shared_dict_get(nope, <<"k">>),
    ok.

%% "After destruction, any operations on the SharedDict raise an error.
%% This is idempotent."
sd_destroy(_Config) ->
    {ok, SD} = py:shared_dict_new(),
    ok = py:shared_dict_set(SD, <<"a">>, 1),
    ok = py:shared_dict_destroy(SD),
    ok = py:shared_dict_destroy(SD),
    {'EXIT', {{shared_dict_destroyed, SD}, _}} = catch py:shared_dict_get(SD, <<"a">>),
    {'EXIT', {{shared_dict_destroyed, SD}, _}} = catch py:shared_dict_set(SD, <<"a">>, 2),
    {'EXIT', {{shared_dict_destroyed, SD}, _}} = catch py:shared_dict_keys(SD),
    {'EXIT', {{shared_dict_destroyed, SD}, _}} = catch py:shared_dict_del(SD, <<"a">>),
    {ok, SD2} = py:shared_dict_new(),
    ok = py:shared_dict_set(SD2, <<"x">>, 1),
    {ok, <<"destroyed">>} = py:call(state_mod, destroy_from_python, [SD2]),
    {'EXIT', {{shared_dict_destroyed, SD2}, _}} = catch py:shared_dict_get(SD2, <<"x">>),
    [] = ets:match(py_shared_dict_data, {{element(2, SD2), '_'}, '_'}),
    ok.

sd_freed_when_owner_dies(_Config) ->
    Self = self(),
    Owner = spawn(fun() ->
                          {ok, SD} = py:shared_dict_new(),
                          ok = py:shared_dict_set(SD, <<"k">>, lists:seq(1, 100)),
                          Self ! {sd, SD},
                          receive stop -> ok end
                  end),
    SD = receive {sd, D} -> D after 5000 -> ct:fail(no_dict) end,
    {ok, 100} = py:eval(<<"len(erlang.SharedDict(h)['k'])">>, #{h => SD}),
    Mon = monitor(process, Owner),
    Owner ! stop,
    receive {'DOWN', Mon, _, _, _} -> ok end,
    py_test_util:wait_until(fun() -> not ets:member(py_shared_dicts, element(2, SD)) end, 5000),
    [] = ets:match(py_shared_dict_data, {{element(2, SD), '_'}, '_'}),
    {error, {'RuntimeError', _}} = py:eval(<<"erlang.SharedDict(h)['k']">>, #{h => SD}),
    ok.

%% Erlang and Python threads of two port programs writing one dict.
sd_concurrent_python_and_erlang(_Config) ->
    {ok, SD} = py:shared_dict_new(),
    [C1, C2] = py_context_router:contexts(?POOL),
    Code = <<"
import threading
def fill(h, prefix, n):
    sd = erlang.SharedDict(h)
    def work(t):
        for i in range(n):
            sd['%s-%d-%d' % (prefix, t, i)] = i
    ts = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    [t.start() for t in ts]
    [t.join() for t in ts]
">>,
    %% called by the spawned fillers: the contexts' shared namespace
    ok = py_context:exec(C1, Code, shared),
    ok = py_context:exec(C2, Code, shared),
    Self = self(),
    Fill = fun(C, P) -> spawn_link(fun() ->
                                           Self ! {filled, P, py:call(C, '__main__', fill,
                                                                      [SD, P, 250])}
                                   end)
           end,
    Fill(C1, <<"a">>),
    Fill(C2, <<"b">>),
    [ok = py:shared_dict_set(SD, {erl, I}, I) || I <- lists:seq(1, 1000)],
    [receive {filled, P, {ok, none}} -> ok after 60000 -> ct:fail(timeout) end
     || P <- [<<"a">>, <<"b">>]],
    3000 = length(py:shared_dict_keys(SD)),
    249 = py:shared_dict_get(SD, <<"b-3-249">>),
    ok.

port_of(Ctx) ->
    [{_, Port, _, _, _}] = ets:lookup(py_contexts, Ctx),
    Port.
