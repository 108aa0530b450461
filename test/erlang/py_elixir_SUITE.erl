%% @doc What Elixir users rely on, from the Erlang side: keyword lists as
%% kwargs, Python's None as `nil' (app env `none_as'), and Elixir exceptions
%% raised by registered functions as Python sees them. test/elixir runs the
%% same from Elixir itself (ExUnit).
-module(py_elixir_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0, suite/0, init_per_suite/1, end_per_suite/1]).
-export([keyword_kwargs/1, keyword_kwargs_badarg/1, none_as_nil/1, none_as_badarg/1,
         elixir_exception_text/1]).

suite() ->
    [{timetrap, {seconds, 60}}].

all() ->
    [keyword_kwargs, keyword_kwargs_badarg, none_as_nil, none_as_badarg, elixir_exception_text].

init_per_suite(Config) ->
    {ok, _} = application:ensure_all_started(erlang_python),
    Config.

end_per_suite(Config) ->
    ok = application:stop(erlang_python),
    Config.

%% `:py.call(:builtins, :sorted, [[3, 1, 2]], reverse: true)' and every other
%% place a kwargs map goes.
keyword_kwargs(_Config) ->
    KW = [{reverse, true}],
    ?assertEqual({ok, [3, 2, 1]}, py:call(builtins, sorted, [[3, 1, 2]], KW)),
    ?assertEqual({ok, [3, 2, 1]}, py:call(builtins, sorted, [[3, 1, 2]], KW, 5000)),
    ?assertEqual({ok, [3, 2, 1]}, py:call(default, builtins, sorted, [[3, 1, 2]], KW)),
    ?assertEqual({ok, [3, 2, 1]},
                 py:call(py:context(1), builtins, sorted, [[3, 1, 2]], #{kwargs => KW})),
    ?assertEqual({ok, [3, 2, 1]}, py:await(py:spawn_call(builtins, sorted, [[3, 1, 2]], KW))),
    ?assertEqual(ok, py:cast(builtins, sorted, [[3, 1, 2]], KW)),
    ?assertEqual({ok, 255}, py:call(builtins, int, [<<"ff">>], [{base, 16}])),
    ?assertEqual({ok, <<>>}, py:call(<<"builtins">>, <<"str">>, [], [])),
    %% The pool form still reads as the pool form.
    ?assertEqual({ok, 4.0}, py:call(default, math, sqrt, [16])).

keyword_kwargs_badarg(_Config) ->
    [?assertMatch({error, {badarg, KW}}, py:call(builtins, sorted, [[3, 1, 2]], KW))
     || KW <- [[{1, true}], [{reverse, true}, {reverse, false}], [foo], [{reverse, true} | x],
               [{reverse, true, x}]]],
    ?assertMatch({error, {badarg, _}}, py:call(builtins, sorted, [[3, 1, 2]], 5)).

%% With none_as = nil, None comes back as nil everywhere Python hands Erlang a
%% value: results, callback arguments, and async callbacks keep working.
none_as_nil(_Config) ->
    ?assertEqual({ok, none}, py:eval(<<"None">>)),
    ok = application:stop(erlang_python),
    ok = application:set_env(erlang_python, none_as, nil),
    try
        {ok, _} = application:ensure_all_started(erlang_python),
        ?assertEqual({ok, nil}, py:eval(<<"None">>)),
        ?assertEqual({ok, [nil, #{<<"k">> => nil}]}, py:eval(<<"[None, {'k': None}]">>)),
        %% nil, none and undefined all still go to Python as None.
        ?assertEqual({ok, true}, py:eval(<<"x is None and y is None and z is None">>,
                                         #{x => nil, y => none, z => undefined})),
        ok = py:register_function(echo_args, fun(Args) -> Args end),
        ?assertEqual({ok, [nil, 1]}, py:eval(<<"erlang.call('echo_args', None, 1)">>)),
        Ctx = py:context(1),
        ok = py:exec(Ctx, <<"import asyncio\n"
                            "async def echo_async(x):\n"
                            "    return await erlang.async_call('echo_args', x)\n">>),
        ?assertEqual({ok, [nil]}, py:eval(Ctx, <<"asyncio.run(echo_async(None))">>))
    after
        ok = application:stop(erlang_python),
        ok = application:unset_env(erlang_python, none_as),
        {ok, _} = application:ensure_all_started(erlang_python)
    end,
    ?assertEqual({ok, none}, py:eval(<<"None">>)).

none_as_badarg(_Config) ->
    ok = application:stop(erlang_python),
    ok = application:set_env(erlang_python, none_as, null),
    try
        ?assertMatch({error, {{badarg, {none_as, null}}, _}}, application:start(erlang_python))
    after
        ok = application:unset_env(erlang_python, none_as),
        {ok, _} = application:ensure_all_started(erlang_python)
    end.

%% An Elixir exception (a struct with __exception__) reads as Elixir prints it.
%% Elixir is not loaded here, so the text comes from the struct's message
%% field; test/elixir raises a real ArgumentError.
elixir_exception_text(_Config) ->
    Exception = #{'__struct__' => 'Elixir.ArgumentError', '__exception__' => true,
                  message => <<"bad">>},
    ok = py:register_function(raise_elixir, fun(_) -> erlang:error(Exception) end),
    {error, {'RuntimeError', Message}} = py:eval(<<"erlang.call('raise_elixir')">>),
    ?assertMatch({_, _}, binary:match(Message, <<"failed: ArgumentError: bad">>), Message),
    ?assertEqual(nomatch, binary:match(Message, <<"__exception__">>)),
    %% Erlang errors read as before.
    ok = py:register_function(raise_erlang, fun(_) -> erlang:error({too_big, 42}) end),
    {error, {'RuntimeError', Message2}} = py:eval(<<"erlang.call('raise_erlang')">>),
    ?assertMatch({_, _}, binary:match(Message2, <<"error:{too_big,42}">>), Message2).
