%% @doc Event loops compared inside one port program (`make bench-loop').
%%
%% ErlangEventLoop, uvloop and asyncio's standard loop run the same figures
%% (bench/event_loop_bench.py) in interleaved rounds on one context of a
%% port program; `erlang.async_call' calls `bench_loop_ident', registered here.
%% Kinds the port program does not have (no ErlangEventLoop yet) are left out.
%% Environment: EP_LOOP_BENCH_ROUNDS (default 7), EP_LOOP_BENCH_ONLY
%% (comma-separated figure keys, e.g. `call_soon,tcp_rtt_proto').
-module(py_loop_bench).

-export([main/1]).

-define(APP, erlang_python).
-define(TIMEOUT_MS, 1800000).

-spec main([string()]) -> no_return().
main([BenchDir, HarnessDir]) ->
    ok = io:setopts([{encoding, unicode}]),
    ok = application:load(?APP),
    ok = application:set_env(?APP, default_pool_size, 1),
    ok = application:set_env(?APP, python_path, [BenchDir, HarnessDir]),
    {ok, _} = application:ensure_all_started(?APP),
    ok = py:register_function(bench_loop_ident, fun([X]) -> X end),
    Rounds = list_to_integer(os:getenv("EP_LOOP_BENCH_ROUNDS", "7")),
    Only = [list_to_binary(K) || K <- string:lexemes(os:getenv("EP_LOOP_BENCH_ONLY", ""), ",")],
    Kinds = [<<"erlang">>, <<"uvloop">>, <<"stdlib">>],
    Status =
        case py:call(py:context(1), event_loop_bench, run_table, [Kinds, Rounds, Only],
                     #{timeout => ?TIMEOUT_MS}) of
            {ok, Table} ->
                io:format("~n~ts~n", [Table]),
                0;
            {error, Why} ->
                io:format(standard_error, "bench-loop failed: ~p~n", [Why]),
                1
        end,
    application:stop(?APP),
    halt(Status).
