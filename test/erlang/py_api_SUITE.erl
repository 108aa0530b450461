%% @doc The py API and the type mapping of spec/PROTOCOL.md, against the real
%% port program and CPython: every call form, errors, timeouts, concurrency and
%% output forwarding.
-module(py_api_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0, groups/0, suite/0, init_per_suite/1, end_per_suite/1,
         init_per_testcase/2, end_per_testcase/2]).
%% logger handler callback (the handler is this module)
-export([log/2]).

-export([call_3/1, call_4_kwargs/1, call_4_context_or_pool/1, call_5_timeout/1,
         call_5_context_opts/1, call_main_function/1, eval_1/1, eval_2_locals/1,
         eval_3_timeout_form/1, eval_context_forms/1, eval_multi_statement/1,
         exec_1_2/1, context_state_persists/1, context_isolation/1, cast_3/1,
         cast_error_is_logged_not_replied/1, spawn_call_await/1, await_timeout/1,
         version_0/1, context_1/1,
         python_exception/1, module_not_found/1, function_not_found/1, wrong_arity/1,
         invalid_utf8_str/1, badarg_inputs/1, unmappable_python_value/1,
         deep_argument/1, deep_result/1, nesting_limit_erlang_to_python/1,
         nesting_limit_python_to_erlang/1,
         integers/1, floats/1, float_specials/1, strings/1, bytes/1, booleans/1,
         none_values/1, atoms/1, lists/1, tuples/1, maps/1, nested/1, pids/1, refs/1,
         funs_and_ports/1, numpy_values/1,
         timeout_leaves_mailbox_clean/1, timeout_context_forms/1,
         concurrent_callers/1,
         print_is_forwarded/1, fd_write_is_forwarded/1, stderr_is_forwarded/1,
         large_output_does_not_corrupt/1]).

-define(LOG_WAIT, 5000).

suite() ->
    [{timetrap, {seconds, 60}}].

all() ->
    [{group, calls}, {group, errors}, {group, types}, {group, timeouts},
     {group, concurrency}, {group, output}].

groups() ->
    [{calls, [], [call_3, call_4_kwargs, call_4_context_or_pool, call_5_timeout,
                  call_5_context_opts, call_main_function, eval_1, eval_2_locals,
                  eval_3_timeout_form, eval_context_forms, eval_multi_statement, exec_1_2,
                  context_state_persists, context_isolation, cast_3,
                  cast_error_is_logged_not_replied, spawn_call_await, await_timeout,
                  version_0, context_1]},
     {errors, [], [python_exception, module_not_found, function_not_found, wrong_arity,
                   invalid_utf8_str, badarg_inputs, unmappable_python_value, deep_argument,
                   deep_result, nesting_limit_erlang_to_python,
                   nesting_limit_python_to_erlang]},
     {types, [], [integers, floats, float_specials, strings, bytes, booleans, none_values,
                  atoms, lists, tuples, maps, nested, pids, refs, funs_and_ports,
                  numpy_values]},
     {timeouts, [], [timeout_leaves_mailbox_clean, timeout_context_forms]},
     {concurrency, [], [concurrent_callers]},
     {output, [], [print_is_forwarded, fd_write_is_forwarded, stderr_is_forwarded,
                   large_output_does_not_corrupt]}].

init_per_suite(Config) ->
    {ok, _} = application:ensure_all_started(erlang_python),
    %% The first call waits for Python to start.
    {ok, 2} = py:eval(<<"1 + 1">>),
    #{level := Level} = logger:get_primary_config(),
    ok = logger:set_primary_config(level, notice),
    [{primary_log_level, Level} | Config].

end_per_suite(Config) ->
    ok = logger:set_primary_config(level, ?config(primary_log_level, Config)),
    ok = application:stop(erlang_python),
    Config.

%% Only the tests that look at log events capture them: the others check that
%% their mailbox is empty.
-define(LOGGING_CASES, [cast_3, cast_error_is_logged_not_replied, print_is_forwarded,
                        fd_write_is_forwarded, stderr_is_forwarded,
                        large_output_does_not_corrupt]).

init_per_testcase(Case, Config) ->
    flush_mailbox(),
    case lists:member(Case, ?LOGGING_CASES) of
        true -> ok = logger:add_handler(test_capture, ?MODULE, #{config => #{pid => self()}});
        false -> ok
    end,
    Config.

end_per_testcase(_Case, _Config) ->
    _ = logger:remove_handler(test_capture),
    ok.

%%====================================================================
%% calls
%%====================================================================

call_3(_Config) ->
    {ok, 3} = py:call(operator, add, [1, 2]),
    {ok, 3} = py:call(<<"operator">>, <<"add">>, [1, 2]),
    {ok, 3} = py:call(operator, <<"add">>, [1, 2]),
    {ok, 3} = py:call(<<"operator">>, add, [1, 2]),
    {ok, <<"abc">>} = py:call(builtins, str, [<<"abc">>]),
    {ok, 0} = py:call(builtins, len, [[]]),
    %% a dotted function name walks attributes
    {ok, <<"a/b">>} = py:call(os, 'path.join', [<<"a">>, <<"b">>]),
    ok.

call_4_kwargs(_Config) ->
    {ok, 255} = py:call(builtins, int, [<<"ff">>], #{base => 16}),
    {ok, 255} = py:call(builtins, int, [<<"ff">>], #{<<"base">> => 16}),
    {ok, [3, 2, 1]} = py:call(builtins, sorted, [[1, 3, 2]], #{reverse => true}),
    {ok, [1, 2, 3]} = py:call(builtins, sorted, [[1, 3, 2]], #{}),
    %% keyword names arrive as erlang.Atom (a str) and travel back as atoms
    {ok, #{a := 1, b := <<"x">>}} = py:call(builtins, dict, [], #{a => 1, b => <<"x">>}),
    {ok, #{<<"a">> := 1}} = py:call(builtins, dict, [], #{<<"a">> => 1}),
    ok.

call_4_context_or_pool(_Config) ->
    Ctx = py:context(1),
    {ok, 42} = py:call(Ctx, operator, mul, [6, 7]),
    {ok, 42} = py:call(Ctx, <<"operator">>, <<"mul">>, [6, 7]),
    {ok, 42} = py:call(default, operator, mul, [6, 7]),
    {error, _} = py:call(no_such_pool, operator, mul, [6, 7]),
    ok.

call_5_timeout(_Config) ->
    {ok, [3, 2, 1]} = py:call(builtins, sorted, [[3, 1, 2]], #{reverse => true}, 5000),
    {ok, 10} = py:call(builtins, int, [<<"a">>], #{base => 16}, infinity),
    ok.

call_5_context_opts(_Config) ->
    Ctx = py:context(1),
    {ok, [3, 2, 1]} =
        py:call(Ctx, builtins, sorted, [[3, 1, 2]], #{kwargs => #{reverse => true},
                                                      timeout => 5000}),
    {ok, [1, 2, 3]} = py:call(Ctx, builtins, sorted, [[3, 1, 2]], #{}),
    {ok, [3, 2, 1]} = py:call(Ctx, builtins, sorted, [[3, 1, 2]],
                              #{kwargs => #{reverse => true}}),
    {ok, [1, 2, 3]} = py:call(Ctx, builtins, sorted, [[3, 1, 2]], #{timeout => 5000}),
    ok.

call_main_function(_Config) ->
    Ctx = py:context(1),
    ok = py:exec(Ctx, <<"def f(a, b=10):\n    return a * b\n">>),
    {ok, 30} = py:call(Ctx, '__main__', f, [3]),
    {ok, 6} = py:call(Ctx, '__main__', f, [3], #{kwargs => #{b => 2}}),
    {ok, 6} = py:call(Ctx, <<"__main__">>, <<"f">>, [2, 3]),
    {error, {'NameError', _}} = py:call(Ctx, '__main__', no_such_function_here, []),
    ok.

eval_1(_Config) ->
    {ok, 2} = py:eval(<<"1 + 1">>),
    {ok, 2} = py:eval("1 + 1"),
    {ok, 2} = py:eval([<<"1 ">>, "+", [<<" 1">>]]),
    {ok, <<"abc">>} = py:eval(<<"'a' + 'bc'">>),
    ok.

eval_2_locals(_Config) ->
    {ok, 7} = py:eval(<<"x + y">>, #{x => 3, y => 4}),
    {ok, 7} = py:eval(<<"x + y">>, #{<<"x">> => 3, <<"y">> => 4}),
    {ok, 1} = py:eval(<<"d['a']">>, #{d => #{a => 1}}),
    {ok, 2} = py:eval(<<"1 + 1">>, #{}),
    ok.

eval_3_timeout_form(_Config) ->
    {ok, 6} = py:eval(<<"x * 2">>, #{x => 3}, 5000),
    {ok, 6} = py:eval(<<"x * 2">>, #{x => 3}, infinity),
    ok.

eval_context_forms(_Config) ->
    Ctx = py:context(1),
    {ok, 4} = py:eval(Ctx, <<"2 + 2">>),
    {ok, 5} = py:eval(Ctx, <<"x + 2">>, #{x => 3}),
    {ok, 6} = py:eval(Ctx, <<"x + 3">>, #{x => 3}, 5000),
    ok.

eval_multi_statement(_Config) ->
    {ok, 2} = py:eval(<<"import math\nmath.floor(2.5)">>),
    {ok, 6} = py:eval(<<"a = 3\nb = a * 2\nb">>),
    {ok, 9} = py:eval(<<"def sq(v):\n    return v * v\nsq(x)">>, #{x => 3}),
    %% no last expression: None
    {ok, none} = py:eval(<<"q = 1">>),
    ok.

exec_1_2(_Config) ->
    ok = py:exec(<<"import math">>),
    ok = py:exec("z = 1"),
    ok = py:exec([<<"z2 = ">>, "2"]),
    Ctx = py:context(1),
    ok = py:exec(Ctx, <<"exec_var = 41">>),
    {ok, 42} = py:eval(Ctx, <<"exec_var + 1">>),
    {error, {'SyntaxError', _}} = py:exec(Ctx, <<"x = ">>),
    {error, {'ZeroDivisionError', _}} = py:exec(Ctx, <<"1 / 0">>),
    ok.

context_state_persists(_Config) ->
    Ctx = py:context(1),
    ok = py:exec(Ctx, <<"x = 1">>),
    {ok, 1} = py:eval(Ctx, <<"x">>),
    ok = py:exec(Ctx, <<"x += 1\nhistory = []">>),
    ok = py:exec(Ctx, <<"history.append(x)">>),
    {ok, 2} = py:eval(Ctx, <<"x">>),
    {ok, [2]} = py:eval(Ctx, <<"history">>),
    %% the namespace persists across eval without locals too
    {ok, none} = py:eval(Ctx, <<"y_from_eval = 5">>),
    {ok, 5} = py:eval(Ctx, <<"y_from_eval">>),
    ok.

context_isolation(_Config) ->
    %% Two contexts in one port program (worker mode: one interpreter), and,
    %% when the default pool has two, two contexts in two port programs.
    {ok, [W1, W2]} = py_pool:start_pool(api_isolation, 2, #{mode => worker}),
    try
        check_isolation(W1, W2)
    after
        py_pool:stop_pool(api_isolation)
    end,
    case py_pool:contexts(default) of
        [C1, C2 | _] -> check_isolation(C1, C2);
        _ -> ok
    end.

check_isolation(C1, C2) ->
    ?assertNotEqual(C1, C2),
    ok = py:exec(C1, <<"iso = 'one'\niso_only_one = 1">>),
    ok = py:exec(C2, <<"iso = 'two'">>),
    {ok, <<"one">>} = py:eval(C1, <<"iso">>),
    {ok, <<"two">>} = py:eval(C2, <<"iso">>),
    {ok, 1} = py:eval(C1, <<"iso_only_one">>),
    {error, {'NameError', _}} = py:eval(C2, <<"iso_only_one">>),
    ok = py:exec(C2, <<"def g(): return iso">>),
    {ok, <<"two">>} = py:call(C2, '__main__', g, []),
    {error, {'NameError', _}} = py:call(C1, '__main__', g, []),
    ok.

cast_3(_Config) ->
    Marker = unique_marker(<<"cast marker">>),
    ok = py:cast(builtins, print, [Marker]),
    {Meta, _Text} = wait_log(Marker),
    [python] = maps:get(domain, Meta),
    sync_all_contexts(),
    %% a cast never replies
    [] = mailbox_without_logs(),
    ok = py:cast(<<"builtins">>, <<"print">>, [unique_marker(<<"cast binary names">>)]),
    {error, {badarg, _}} = py:cast(42, print, []),
    {error, {badarg, _}} = py:cast(builtins, print, not_a_list),
    ok.

cast_error_is_logged_not_replied(_Config) ->
    Marker = unique_marker(<<"cast_failure">>),
    ok = py:cast(builtins, int, [Marker]),
    {Meta, Text} = wait_log(Marker),
    [python] = maps:get(domain, Meta),
    true = contains(Text, <<"ValueError">>),
    sync_all_contexts(),
    [] = mailbox_without_logs(),
    ok.

spawn_call_await(_Config) ->
    Ref = py:spawn_call(operator, mul, [6, 7]),
    {ok, 42} = py:await(Ref),
    Refs = [{I, py:spawn_call(operator, add, [I, 1000])} || I <- lists:seq(1, 50)],
    %% awaited in reverse order: each result belongs to its own request
    [{I, {ok, Sum}} = {I, py:await(R, 10000)} || {I, R} <- lists:reverse(Refs), Sum <- [I + 1000]],
    {ok, 255} = py:await(py:spawn_call(builtins, int, [<<"ff">>], #{base => 16})),
    {error, {'ZeroDivisionError', _}} = py:await(py:spawn_call(operator, truediv, [1, 0])),
    {error, {badarg, _}} = py:await(py:spawn_call(1, 2, 3)),
    {messages, []} = process_info(self(), messages),
    ok.

await_timeout(_Config) ->
    Ref = py:spawn_call(time, sleep, [0.5]),
    {error, timeout} = py:await(Ref, 50),
    sync_all_contexts(),
    {messages, []} = process_info(self(), messages),
    ok.

version_0(_Config) ->
    {ok, Version} = py:version(),
    true = is_binary(Version),
    {match, _} = re:run(Version, <<"^3\\.11\\.[0-9]+$">>),
    {ok, _Port, Owner, _Local} = py_context:lookup(py:context(1)),
    #{<<"python">> := Version} = py_port:info(Owner),
    ok.

context_1(_Config) ->
    Ctx = py:context(1),
    true = is_pid(Ctx),
    true = is_process_alive(Ctx),
    Contexts = py_pool:contexts(default),
    Ctx = hd(Contexts),
    true = lists:all(fun is_pid/1, Contexts),
    N = length(Contexts),
    N = py_pool:num_contexts(default),
    {error, _} = py:context(N + 1),
    {ok, 1} = py:eval(Ctx, <<"1">>),
    ok.

%%====================================================================
%% errors
%%====================================================================

python_exception(_Config) ->
    {error, {'ZeroDivisionError', Msg}} = py:eval(<<"1 / 0">>),
    true = is_binary(Msg),
    <<"division by zero">> = Msg,
    TB = py:last_traceback(),
    true = is_binary(TB),
    true = contains(TB, <<"Traceback">>),
    true = contains(TB, <<"ZeroDivisionError">>),
    Ctx = py:context(1),
    ok = py:exec(Ctx, <<"def boom():\n    raise ValueError('kaboom')\n">>),
    {error, {'ValueError', <<"kaboom">>}} = py:call(Ctx, '__main__', boom, []),
    TB2 = py:last_traceback(),
    true = contains(TB2, <<"Traceback">>),
    true = contains(TB2, <<"boom">>),
    {error, {'KeyError', _}} = py:eval(<<"{}['missing']">>),
    %% a custom exception class
    {error, {'MyError', <<"mine">>}} =
        py:eval(<<"class MyError(Exception): pass\nraise MyError('mine')">>),
    ok.

module_not_found(_Config) ->
    {error, {'ModuleNotFoundError', Msg}} = py:call(no_such_module_xyz, f, []),
    true = contains(Msg, <<"no_such_module_xyz">>),
    {ok, 3} = py:call(operator, add, [1, 2]),
    ok.

function_not_found(_Config) ->
    {error, {'AttributeError', Msg}} = py:call(operator, no_such_function_xyz, []),
    true = contains(Msg, <<"no_such_function_xyz">>),
    ok.

wrong_arity(_Config) ->
    {error, {'TypeError', _}} = py:call(operator, add, [1]),
    {error, {'TypeError', _}} = py:call(operator, add, [1, 2, 3]),
    {error, {'TypeError', _}} = py:call(builtins, len, [[]], #{bogus => 1}),
    ok.

invalid_utf8_str(_Config) ->
    {error, {'UnicodeDecodeError', _}} = py:call(builtins, len, [<<255, 254>>]),
    {error, {'UnicodeDecodeError', _}} = py:eval(<<"x">>, #{x => <<"ok", 16#c3>>}),
    {error, {'UnicodeDecodeError', _}} = py:eval(<<"x">>, #{x => [1, [<<128>>]]}),
    %% the same bytes as {bytes, B} are fine
    {ok, 2} = py:call(builtins, len, [{bytes, <<255, 254>>}]),
    {ok, 3} = py:call(operator, add, [1, 2]),
    ok.

badarg_inputs(_Config) ->
    {error, {badarg, _}} = py:call(42, f, []),
    {error, {badarg, _}} = py:call("operator", add, [1, 2]),
    {error, {badarg, _}} = py:call(operator, 42, [1, 2]),
    {error, {badarg, _}} = py:call(operator, add, {1, 2}),
    {error, {badarg, _}} = py:call(operator, add, not_a_list),
    {error, {badarg, _}} = py:call(py:context(1), operator, add, not_a_list),
    {error, {badarg, _}} = py:call(operator, add, not_a_list, #{}, 5000),
    {error, {badarg, _}} = py:eval(not_iodata),
    {error, {badarg, _}} = py:eval(42),
    {error, {badarg, _}} = py:eval([<<"1">>, self()]),
    {error, {badarg, _}} = py:eval(py:context(1), not_iodata),
    {error, {badarg, _}} = py:eval(<<"1">>, not_a_map),
    {error, {badarg, _}} = py:exec(not_iodata),
    {error, {badarg, _}} = py:exec(py:context(1), 42),
    %% improper argument lists and bad timeouts: refused before anything is sent
    {error, {badarg, [1 | 2]}} = py:call(operator, add, [1 | 2]),
    {error, {badarg, [1 | 2]}} = py:call(operator, add, [1 | 2], #{}),
    {error, {badarg, [1 | 2]}} = py:cast(operator, add, [1 | 2]),
    {error, {badarg, {timeout, -1}}} = py:call(py:context(1), operator, add, [1, 2],
                                               #{timeout => -1}),
    {error, {badarg, {timeout, soon}}} = py:call(operator, add, [1, 2], #{}, soon),
    {error, {badarg, {timeout, 1.5}}} = py:eval(<<"1">>, #{}, 1.5),
    {error, {badarg, {timeout, x}}} = py:exec(py:context(1), <<"1">>, x),
    {error, {badarg, not_a_ref}} = py:await(not_a_ref),
    {error, {badarg, {timeout, -1}}} = py:await(make_ref(), -1),
    {messages, []} = erlang:process_info(self(), messages),
    {ok, 3} = py:call(operator, add, [1, 2]),
    ok.

unmappable_python_value(_Config) ->
    {error, {'TypeError', SetMsg}} = py:eval(<<"{1, 2}">>),
    true = is_binary(SetMsg),
    true = contains(SetMsg, <<"set">>),
    {error, {'TypeError', ObjMsg}} = py:eval(<<"object()">>),
    %% (every such message says "Python object": the type is named besides)
    true = contains(binary:replace(ObjMsg, <<"Python object">>, <<>>, [global]), <<"object">>),
    {error, {'TypeError', ClassMsg}} = py:eval(<<"class Unmappable: pass\nUnmappable()">>),
    true = contains(ClassMsg, <<"Unmappable">>),
    {error, {'TypeError', CallMsg}} = py:call(builtins, set, [[1]]),
    true = contains(CallMsg, <<"set">>),
    {error, {'TypeError', FunMsg}} = py:eval(<<"lambda: 1">>),
    true = contains(FunMsg, <<"function">>),
    %% nested inside a container too
    {error, {'TypeError', NestedMsg}} = py:eval(<<"[1, {'k': frozenset()}]">>),
    true = contains(NestedMsg, <<"frozenset">>),
    {ok, 3} = py:call(operator, add, [1, 2]),
    ok.

deep_argument(_Config) ->
    Before = default_os_pids(),
    Deep = nest(100000),
    {error, Reason} = py:call(builtins, len, [Deep]),
    ct:pal("100,000-deep argument: ~p", [Reason]),
    {'ValueError', _} = Reason,
    {error, {'ValueError', _}} = py:eval(<<"x">>, #{x => Deep}),
    {ok, 3} = py:call(operator, add, [1, 2]),
    %% no port program crashed on the way
    Before = default_os_pids(),
    ok.

deep_result(_Config) ->
    Before = default_os_pids(),
    {error, Reason} = py:eval(<<"l = []\nfor _ in range(100000): l = [l]\nl">>),
    ct:pal("100,000-deep result: ~p", [Reason]),
    {ok, 3} = py:call(operator, add, [1, 2]),
    {error, _} = py:eval(<<"t = ()\nfor _ in range(100000): t = (t,)\nt">>),
    {ok, 3} = py:call(operator, add, [1, 2]),
    Before = default_os_pids(),
    ok.

%% PROTOCOL.md: "Nesting deeper than 10,000 levels fails the request with
%% ValueError, in either direction." A list of 10,000 levels passes, whether
%% its innermost list is empty or holds a scalar; one of 10,001 levels fails.
nesting_limit_erlang_to_python(_Config) ->
    Results = [{Levels, Leaf, depth_result(py:call(builtins, len, [levels(Levels, Leaf)]))}
               || Levels <- [10000, 10001], Leaf <- [empty, scalar]],
    ct:pal("Erlang -> Python: ~p", [Results]),
    {ok, 10000} = py:eval(<<"d = 0\nwhile isinstance(x, list):\n    d += 1\n"
                            "    x = x[0] if x else 0\nd">>, #{x => levels(10000, empty)}),
    [{10000, empty, ok}, {10000, scalar, ok},
     {10001, empty, 'ValueError'}, {10001, scalar, 'ValueError'}] = Results,
    ok.

nesting_limit_python_to_erlang(_Config) ->
    Results = [{Levels, Leaf, depth_result(py:eval(python_levels(Levels, Leaf)))}
               || Levels <- [10000, 10001], Leaf <- [empty, scalar]],
    ct:pal("Python -> Erlang: ~p", [Results]),
    {ok, Ok} = py:eval(python_levels(10000, scalar)),
    Ok = levels(10000, scalar),
    [{10000, empty, ok}, {10000, scalar, ok},
     {10001, empty, 'ValueError'}, {10001, scalar, 'ValueError'}] = Results,
    ok.

depth_result({ok, _}) -> ok;
depth_result({error, {bad_reply, too_deep}}) -> {bad_reply, too_deep};
depth_result({error, {Class, _}}) when is_atom(Class) -> Class;
depth_result(Other) -> Other.

%%====================================================================
%% types: each row of the PROTOCOL.md table, both ways
%%====================================================================

integers(_Config) ->
    Values = [0, 1, -1, 127, 128, -32, -33, 255, 256, 65535, 65536, -129, -32769,
              (1 bsl 32) - 1, 1 bsl 32, (1 bsl 63) - 1, -(1 bsl 63), (1 bsl 64) - 1,
              1 bsl 64, -(1 bsl 63) - 1, -(1 bsl 64), 1 bsl 200, -(1 bsl 200),
              (1 bsl 1000) + 12345],
    lists:foreach(
      fun(V) ->
              S = integer_to_binary(V),
              {{ok, <<"int">>}, V} = {type_name(V), V},
              {{ok, V}, V} = {roundtrip(V), V},
              %% exact in Python: the value equals the one parsed from its digits
              {{ok, true}, V} = {py:eval(<<"x == int(s)">>, #{x => V, s => S}), V},
              {{ok, S}, V} = {py:eval(<<"str(x)">>, #{x => V}), V},
              %% and Python -> Erlang
              {{ok, V}, V} = {py:eval(<<"int(s)">>, #{s => S}), V},
              {{ok, V}, V} = {py:eval(S), V}
      end, Values),
    {ok, 1 bsl 64} = py:eval(<<"2**64">>),
    {ok, -(1 bsl 63)} = py:eval(<<"-2**63">>),
    {ok, [1 bsl 200, -(1 bsl 200), 0]} = py:eval(<<"[2**200, -2**200, 0]">>),
    ok.

floats(_Config) ->
    Values = [0.0, 1.5, -2.25, 3.141592653589793, 1.0e308, -1.0e-308, 5.0e-324,
              1.7976931348623157e308, 0.1, 123456789.123456789],
    lists:foreach(
      fun(F) ->
              S = float_to_binary(F, [short]),
              {{ok, <<"float">>}, F} = {type_name(F), F},
              {{ok, F}, F} = {roundtrip(F), F},
              {{ok, true}, F} = {py:eval(<<"x == float(s)">>, #{x => F, s => S}), F},
              {{ok, F}, F} = {py:eval(<<"float(s)">>, #{s => S}), F}
      end, Values),
    {ok, 0.5} = py:eval(<<"1 / 2">>),
    ok.

float_specials(_Config) ->
    {ok, nan} = py:eval(<<"float('nan')">>),
    {ok, infinity} = py:eval(<<"float('inf')">>),
    {ok, neg_infinity} = py:eval(<<"float('-inf')">>),
    {ok, [infinity, neg_infinity, nan]} =
        py:eval(<<"import math\n[math.inf, -math.inf, math.nan]">>),
    {ok, {1.0, infinity}} = py:eval(<<"(1.0, 1e308 * 10)">>),
    ok.

strings(_Config) ->
    Values = [<<>>, <<"a">>, <<"héllo ✓"/utf8>>, <<"😀 emoji"/utf8>>,
              <<"nul\0inside">>, bin_of(31), bin_of(32), bin_of(255), bin_of(256),
              bin_of(65535), bin_of(65536), bin_of(200000)],
    lists:foreach(
      fun(B) ->
              Len = length(unicode:characters_to_list(B)),
              {{ok, <<"str">>}, B} = {type_name(B), B},
              {{ok, B}, B} = {roundtrip(B), B},
              {{ok, Len}, B} = {py:eval(<<"len(x)">>, #{x => B}), B},
              Points = unicode:characters_to_list(B),
              {{ok, true}, B} = {py:eval(<<"x == ''.join(map(chr, p))">>,
                                         #{x => B, p => Points}), B}
      end, Values),
    {ok, <<"héllo ✓"/utf8>>} = py:eval(<<"'h\\u00e9llo \\u2713'">>),
    {ok, <<"😀"/utf8>>} = py:eval(<<"chr(0x1F600)">>),
    {ok, <<>>} = py:eval(<<"''">>),
    ok.

bytes(_Config) ->
    Values = [<<>>, <<"abc">>, <<255, 0, 254, 128>>, <<"héllo"/utf8>>, bin_of(255),
              bin_of(256), bin_of(70000)],
    lists:foreach(
      fun(B) ->
              {{ok, <<"bytes">>}, B} = {type_name({bytes, B}), B},
              {{ok, B}, B} = {roundtrip({bytes, B}), B},
              {{ok, true}, B} = {py:eval(<<"x == bytes(l)">>,
                                         #{x => {bytes, B}, l => binary_to_list(B)}), B}
      end, Values),
    %% Python bytes-likes -> binaries, including bytes that are not UTF-8
    {ok, <<255, 0, "abc">>} = py:eval(<<"b'\\xff\\x00abc'">>),
    {ok, <<128, 129>>} = py:eval(<<"bytes([128, 129])">>),
    {ok, <<"ab">>} = py:eval(<<"bytearray(b'ab')">>),
    {ok, <<"cd">>} = py:eval(<<"memoryview(b'cd')">>),
    {ok, <<>>} = py:eval(<<"b''">>),
    {ok, [<<1, 2>>, {<<3>>}]} = py:eval(<<"[b'\\x01\\x02', (b'\\x03',)]">>),
    ok.

booleans(_Config) ->
    {ok, <<"bool">>} = type_name(true),
    {ok, <<"bool">>} = type_name(false),
    {ok, true} = py:eval(<<"x is True">>, #{x => true}),
    {ok, true} = py:eval(<<"x is False">>, #{x => false}),
    {ok, true} = roundtrip(true),
    {ok, false} = roundtrip(false),
    {ok, true} = py:eval(<<"True">>),
    {ok, false} = py:eval(<<"1 == 2">>),
    {ok, [true, false]} = py:eval(<<"[True, False]">>),
    ok.

none_values(_Config) ->
    lists:foreach(
      fun(A) ->
              {{ok, <<"NoneType">>}, A} = {type_name(A), A},
              {{ok, true}, A} = {py:eval(<<"x is None">>, #{x => A}), A},
              {{ok, none}, A} = {roundtrip(A), A}
      end, [none, nil, undefined]),
    {ok, none} = py:eval(<<"None">>),
    {ok, none} = py:call(builtins, print, [<<>>], #{'end' => <<>>}),
    {ok, [none, {none}]} = py:eval(<<"[None, (None,)]">>),
    ok.

atoms(_Config) ->
    Atoms = [foo, 'Hello World', 'héllo', '', nan, infinity, 'with\'quote',
             list_to_atom(lists:duplicate(255, $a))],
    lists:foreach(
      fun(A) ->
              Name = atom_to_binary(A, utf8),
              {{ok, <<"Atom">>}, A} = {type_name(A), A},
              {{ok, true}, A} = {py:eval(<<"isinstance(x, erlang.Atom)">>, #{x => A}), A},
              {{ok, true}, A} = {py:eval(<<"isinstance(x, str)">>, #{x => A}), A},
              {{ok, true}, A} = {py:eval(<<"x == n">>, #{x => A, n => Name}), A},
              {{ok, true}, A} = {py:eval(<<"hash(x) == hash(n)">>, #{x => A, n => Name}), A},
              {{ok, A}, A} = {roundtrip(A), A}
      end, Atoms),
    {ok, true} = py:eval(<<"x == 'foo'">>, #{x => foo}),
    {ok, 1} = py:eval(<<"{'foo': 1}[x]">>, #{x => foo}),
    %% str methods give plain str back
    {ok, <<"FOO">>} = py:eval(<<"x.upper()">>, #{x => foo}),
    %% Python -> Erlang
    {ok, bar} = py:eval(<<"erlang.Atom('bar')">>),
    {ok, [a, {b}]} = py:eval(<<"[erlang.Atom('a'), (erlang.Atom('b'),)]">>),
    ok.

lists(_Config) ->
    Values = [[], [1], [1, <<"a">>, foo, 2.5], lists:seq(1, 15), lists:seq(1, 16),
              lists:seq(1, 70000), [[], [[]]]],
    lists:foreach(
      fun(L) ->
              {{ok, <<"list">>}, L} = {type_name(L), L},
              {{ok, L}, L} = {roundtrip(L), L},
              Len = length(L),
              {{ok, Len}, L} = {py:eval(<<"len(x)">>, #{x => L}), L}
      end, Values),
    {ok, [1, 2, 3]} = py:eval(<<"[1, 2, 3]">>),
    {ok, []} = py:eval(<<"[]">>),
    {ok, [0, 1, 4]} = py:eval(<<"[i * i for i in range(3)]">>),
    ok.

tuples(_Config) ->
    Values = [{}, {1}, {1, <<"a">>, foo}, {1, {2, {3, []}}},
              list_to_tuple(lists:seq(1, 20)), list_to_tuple(lists:seq(1, 70000))],
    lists:foreach(
      fun(T) ->
              {{ok, <<"tuple">>}, T} = {type_name(T), T},
              {{ok, T}, T} = {roundtrip(T), T},
              Size = tuple_size(T),
              {{ok, Size}, T} = {py:eval(<<"len(x)">>, #{x => T}), T}
      end, Values),
    {ok, {1, <<"a">>, none}} = py:eval(<<"(1, 'a', None)">>),
    {ok, {}} = py:eval(<<"()">>),
    {ok, {{1}}} = py:eval(<<"((1,),)">>),
    ok.

maps(_Config) ->
    Big = maps:from_list([{I, I * 2} || I <- lists:seq(1, 20000)]),
    Values = [#{}, #{a => 1}, #{a => 1, <<"b">> => [1, 2], 3 => {x}, {k, 1} => none},
              #{1.5 => float_key, -7 => neg}, Big],
    lists:foreach(
      fun(M) ->
              {{ok, <<"dict">>}, M} = {type_name(M), M},
              {{ok, M}, M} = {roundtrip(M), M},
              Size = map_size(M),
              {{ok, Size}, M} = {py:eval(<<"len(x)">>, #{x => M}), M}
      end, Values),
    %% atom keys are usable as Python str keys
    {ok, 1} = py:eval(<<"d['a']">>, #{d => #{a => 1}}),
    {ok, 2} = py:eval(<<"d[(erlang.Atom('k'), 1)]">>, #{d => #{{k, 1} => 2}}),
    {ok, 20000} = py:eval(<<"d[10000]">>, #{d => Big}),
    %% Python -> Erlang: str keys become binaries
    {ok, #{<<"a">> := [1, {2}], 3 := none}} = py:eval(<<"{'a': [1, (2,)], 3: None}">>),
    {ok, #{}} = py:eval(<<"{}">>),
    ok.

nested(_Config) ->
    V = #{list => [{1, #{k => [true, none, <<"s">>]}}, {bytes_free, 1 bsl 70}],
          tuple => {[], {}, #{}, [[[1.5]]]},
          <<"bin">> => #{nested => #{deeper => [foo, -1, {self()}]}}},
    {ok, V} = roundtrip(V),
    {ok, <<"s">>} = py:eval(<<"x['list'][0][1]['k'][2]">>, #{x => V}),
    {ok, [<<"ab">>, {<<1>>}]} = roundtrip([{bytes, <<"ab">>}, {{bytes, <<1>>}}]),
    {ok, #{<<"k">> := [{1, [none, true]}]}} = py:eval(<<"{'k': [(1, [None, True])]}">>),
    ok.

pids(_Config) ->
    Self = self(),
    {ok, Self} = py:eval(<<"x">>, #{x => Self}),
    {ok, <<"Pid">>} = type_name(Self),
    {ok, true} = py:eval(<<"isinstance(x, erlang.Pid)">>, #{x => Self}),
    Other = spawn(fun() -> ok end),
    {ok, Other} = roundtrip(Other),
    {ok, [Self, {Other}]} = roundtrip([Self, {Other}]),
    %% equality and hashing in Python
    {ok, true} = py:eval(<<"a == b and hash(a) == hash(b) and a != c and len({a, b, c}) == 2">>,
                         #{a => Self, b => Self, c => Other}),
    {ok, 7} = py:eval(<<"{a: 7}[b]">>, #{a => Self, b => Self}),
    %% a pid and an atom are different Python values
    {ok, false} = py:eval(<<"a == b">>, #{a => Self, b => foo}),
    ok.

refs(_Config) ->
    Ref = make_ref(),
    {ok, Ref} = roundtrip(Ref),
    {ok, <<"Ref">>} = type_name(Ref),
    Ref2 = make_ref(),
    {ok, true} = py:eval(<<"a == b and hash(a) == hash(b) and a != c">>,
                         #{a => Ref, b => Ref, c => Ref2}),
    {ok, {Ref, [Ref2]}} = roundtrip({Ref, [Ref2]}),
    %% a pid and a reference with different types never compare equal
    {ok, false} = py:eval(<<"a == b">>, #{a => Ref, b => self()}),
    ok.

funs_and_ports(_Config) ->
    Base = 10,
    F = fun(X) -> X + Base end,
    {ok, F2} = roundtrip(F),
    true = F =:= F2,
    11 = F2(1),
    {ok, <<"OpaqueTerm">>} = type_name(F),
    External = fun lists:reverse/1,
    {ok, External} = roundtrip(External),
    [3, 2, 1] = External([1, 2, 3]),
    Port = hd(erlang:ports()),
    {ok, Port} = roundtrip(Port),
    {ok, <<"OpaqueTerm">>} = type_name(Port),
    {ok, true} = py:eval(<<"a == b and hash(a) == hash(b)">>, #{a => F, b => F}),
    {ok, [F, {Port}]} = roundtrip([F, {Port}]),
    ok.

%%====================================================================
%% timeouts
%%====================================================================

timeout_leaves_mailbox_clean(_Config) ->
    T0 = erlang:monotonic_time(millisecond),
    {error, timeout} = py:eval(<<"__import__('time').sleep(1)">>, #{}, 100),
    Elapsed = erlang:monotonic_time(millisecond) - T0,
    ct:pal("timed out after ~p ms", [Elapsed]),
    true = Elapsed >= 100 andalso Elapsed < 900,
    %% The sleep ran in one of the pool's contexts: a call to each context runs
    %% after it, and its reply comes through the same owner after the late one.
    sync_all_contexts(),
    {messages, []} = process_info(self(), messages),
    %% the caller's next calls are not confused by the late reply
    {ok, 3} = py:call(operator, add, [1, 2]),
    {messages, []} = process_info(self(), messages),
    ok.

timeout_context_forms(_Config) ->
    Ctx = py:context(1),
    {error, timeout} = py:eval(Ctx, <<"__import__('time').sleep(0.3)">>, #{}, 50),
    {ok, 1} = py:eval(Ctx, <<"1">>),
    {messages, []} = process_info(self(), messages),
    {error, timeout} = py:call(Ctx, time, sleep, [0.3], #{timeout => 50}),
    {ok, 2} = py:eval(Ctx, <<"2">>),
    {messages, []} = process_info(self(), messages),
    {error, timeout} = py:exec(Ctx, <<"import time; time.sleep(0.3)">>, 50),
    {ok, 3} = py:eval(Ctx, <<"3">>),
    {messages, []} = process_info(self(), messages),
    {error, timeout} = py:call(time, sleep, [0.3], #{}, 50),
    sync_all_contexts(),
    {messages, []} = process_info(self(), messages),
    ok.

%%====================================================================
%% concurrency
%%====================================================================

concurrent_callers(_Config) ->
    Parent = self(),
    NProcs = 100,
    NCalls = 100,
    Pids = [spawn_monitor(
              fun() ->
                      Bad = [{I, J, R} || J <- lists:seq(1, NCalls),
                                          R <- [py:call(operator, add, [I * 1000000, J])],
                                          R =/= {ok, I * 1000000 + J}],
                      {messages, Stray} = process_info(self(), messages),
                      Parent ! {done, self(), Bad, Stray}
              end) || I <- lists:seq(1, NProcs)],
    Results = [receive
                   {done, Pid, Bad, Stray} ->
                       receive {'DOWN', MRef, process, Pid, normal} -> ok
                       after 5000 -> ct:fail({no_exit, Pid})
                       end,
                       {Bad, Stray};
                   {'DOWN', MRef, process, Pid, Reason} ->
                       ct:fail({caller_crashed, Pid, Reason})
               after 60000 ->
                   ct:fail({caller_stuck, Pid})
               end || {Pid, MRef} <- Pids],
    [] = [R || {Bad, Stray} = R <- Results, Bad =/= [] orelse Stray =/= []],
    ok.

%%====================================================================
%% output forwarding
%%====================================================================

print_is_forwarded(_Config) ->
    Ctx = py:context(1),
    ok = py:exec(<<"print('hello from python')">>),
    {Meta, Text} = wait_log(<<"hello from python">>),
    [python] = maps:get(domain, Meta),
    true = contains(Text, <<"hello from python">>),
    {ok, 3} = py:call(operator, add, [1, 2]),
    %% in a known context: the event names it
    Marker = unique_marker(<<"print in context">>),
    ok = py:exec(Ctx, <<"print('", Marker/binary, "')">>),
    {Meta2, _} = wait_log(Marker),
    [python] = maps:get(domain, Meta2),
    Ctx = maps:get(py_context, Meta2),
    {ok, 3} = py:call(Ctx, operator, add, [1, 2]),
    %% print inside a called function, whose result is still right
    ok = py:exec(Ctx, <<"def noisy(a):\n    print('noisy', a)\n    return a + 1\n">>),
    {ok, 42} = py:call(Ctx, '__main__', noisy, [41]),
    {_, _} = wait_log(<<"noisy 41">>),
    ok.

fd_write_is_forwarded(_Config) ->
    ok = py:exec(<<"import os; os.write(1, b'fd level\\n')">>),
    {Meta, _Text} = wait_log(<<"fd level">>),
    [python] = maps:get(domain, Meta),
    {ok, 3} = py:call(operator, add, [1, 2]),
    %% C-level stdio as well
    Marker = unique_marker(<<"libc puts">>),
    ok = py:exec(<<"import ctypes\nlibc = ctypes.CDLL(None)\nlibc.puts(b'",
                   Marker/binary, "')\nlibc.fflush(None)">>),
    {_, _} = wait_log(Marker),
    {ok, 3} = py:call(operator, add, [1, 2]),
    ok.

stderr_is_forwarded(_Config) ->
    Marker = unique_marker(<<"to stderr">>),
    ok = py:exec(<<"import sys; print('", Marker/binary, "', file=sys.stderr)">>),
    {Meta, _} = wait_log(Marker),
    [python] = maps:get(domain, Meta),
    Marker2 = unique_marker(<<"fd2">>),
    ok = py:exec(<<"import os; os.write(2, b'", Marker2/binary, "\\n')">>),
    {_, _} = wait_log(Marker2),
    {ok, 3} = py:call(operator, add, [1, 2]),
    ok.

large_output_does_not_corrupt(_Config) ->
    Ctx = py:context(1),
    Marker = unique_marker(<<"big">>),
    %% 256 KiB through sys.stdout and through fd 1, then a call on the same context
    ok = py:exec(Ctx, <<"import os\nprint('", Marker/binary, "' + 'x' * 262144)\n"
                        "os.write(1, b'", Marker/binary, "fd' + b'y' * 262144 + b'\\n')">>),
    {ok, 3} = py:call(Ctx, operator, add, [1, 2]),
    {_, Text} = wait_log(<<Marker/binary, "xxxx">>),
    true = byte_size(Text) >= 262144,
    %% fd-level output may arrive in several pieces
    {_, _} = wait_log(<<Marker/binary, "fd">>),
    {ok, <<"after">>} = py:eval(Ctx, <<"'after'">>),
    ok.

%%====================================================================
%% logger handler (this module is the handler)
%%====================================================================

log(#{level := Level, msg := Msg, meta := Meta}, #{config := #{pid := Pid}}) ->
    Text = try format_msg(Msg)
           catch _:_ -> iolist_to_binary(io_lib:format("~p", [Msg]))
           end,
    Pid ! {captured_log, Level, Meta, Text},
    ok.

format_msg({string, S}) -> unicode:characters_to_binary(S);
format_msg({report, R}) -> iolist_to_binary(io_lib:format("~p", [R]));
format_msg({Format, Args}) -> unicode:characters_to_binary(io_lib:format(Format, Args)).

%% Waits for a captured log event whose text contains Needle.
wait_log(Needle) ->
    Deadline = erlang:monotonic_time(millisecond) + ?LOG_WAIT,
    wait_log(Needle, Deadline).

wait_log(Needle, Deadline) ->
    Left = max(0, Deadline - erlang:monotonic_time(millisecond)),
    receive
        {captured_log, _Level, Meta, Text} ->
            case contains(Text, Needle) of
                true -> {Meta, Text};
                false -> wait_log(Needle, Deadline)
            end
    after Left ->
        ct:fail({no_log_event_containing, Needle})
    end.

%%====================================================================
%% helpers
%%====================================================================

%% OS pids of the default pool's port programs.
default_os_pids() ->
    [maps:get(os_pid, py_port:info(Owner))
     || Ctx <- py_pool:contexts(default), {ok, _, Owner, _} <- [py_context:lookup(Ctx)]].

type_name(V) -> py:eval(<<"type(x).__name__">>, #{x => V}).

roundtrip(V) -> py:eval(<<"x">>, #{x => V}).

%% A list nested N levels deep ([] is one level).
nest(1) -> [];
nest(N) -> [nest(N - 1)].

%% Lists nested Levels deep; the innermost is empty or holds the integer 7.
levels(Levels, empty) -> nest(Levels);
levels(1, scalar) -> [7];
levels(Levels, scalar) -> [levels(Levels - 1, scalar)].

python_levels(Levels, Leaf) ->
    Init = case Leaf of empty -> "[]"; scalar -> "[7]" end,
    iolist_to_binary(io_lib:format("l = ~s\nfor _ in range(~b): l = [l]\nl",
                                   [Init, Levels - 1])).

bin_of(N) -> binary:copy(<<"z">>, N).

contains(Bin, Needle) when is_binary(Bin) -> binary:match(Bin, Needle) =/= nomatch;
contains(_, _) -> false.

unique_marker(Prefix) ->
    <<Prefix/binary, "_", (integer_to_binary(erlang:unique_integer([positive])))/binary>>.

%% A call to every context of the default pool: each runs after whatever that
%% context was running, so replies due before it have been delivered.
sync_all_contexts() ->
    [{ok, 1} = py:eval(C, <<"1">>) || C <- py_pool:contexts(default)],
    ok.

mailbox_without_logs() ->
    {messages, Msgs} = process_info(self(), messages),
    [M || M <- Msgs, element(1, M) =/= captured_log].

flush_mailbox() ->
    receive _ -> flush_mailbox() after 0 -> ok end.

%% NumPy arrays and scalars come back as what tolist() gives.
numpy_values(_Config) ->
    case py:eval(<<"import numpy">>) of
        {error, {'ModuleNotFoundError', _}} -> {skip, "python3-numpy is not installed"};
        {ok, _} ->
            {ok, [1, 2, 3]} = py:eval(<<"import numpy as np\nnp.array([1, 2, 3])">>),
            {ok, [[1.5, 2.0], [3.0, 4.0]]} = py:eval(<<"import numpy as np\nnp.array([[1.5, 2], [3, 4]])">>),
            {ok, 6} = py:eval(<<"import numpy as np\nnp.arange(4).sum()">>),
            {ok, 0.5} = py:eval(<<"import numpy as np\nnp.float32(0.5)">>),
            {ok, true} = py:eval(<<"import numpy as np\nnp.bool_(True)">>),
            {ok, #{<<"mean">> := 2.0}} = py:eval(<<"import numpy as np\n{'mean': np.mean([1, 2, 3])}">>),
            {ok, 3.0} = py:call(numpy, mean, [[2, 3, 4]]),
            %% numpy objects without a plain form still name their type
            {error, {'TypeError', Msg}} = py:eval(<<"import numpy as np\nnp.dtype('int32')">>),
            {match, _} = re:run(Msg, <<"dtype">>),
            ok
    end.
