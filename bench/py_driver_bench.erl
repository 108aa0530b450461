%% @doc `make bench-driver': the two backends side by side in one run, next
%% to the raw {packet,4} echo (bench/echo_port.cpp). Every sequential figure
%% is measured in interleaved blocks (the machine's speed drifts), the rates
%% one after the other, port then driver, in rounds.
-module(py_driver_bench).

-export([main/1]).

-define(WARMUP, 500).
-define(BLOCK, 200).
-define(ROUNDS, 20).
-define(CALLERS, 8).
-define(CONC_MS, 1500).
-define(RATE_ROUNDS, 3).
-define(CHAN_MSGS, 100000).

main([EchoPort]) ->
    ok = io:setopts([{encoding, unicode}]),
    try
        {ok, _} = application:ensure_all_started(erlang_python),
        T0 = erlang:monotonic_time(millisecond),
        Pools = #{port => start(bench_port, port), driver => start(bench_drv, driver)},
        Seq = sequential(EchoPort, Pools),
        Rates = rates(EchoPort, Pools),
        report(Seq, Rates),
        io:format("~nLoad: ~ts~nTotal: ~.1f s~n",
                  [string:trim(os:cmd("uptime")),
                   (erlang:monotonic_time(millisecond) - T0) / 1000]),
        halt(0)
    catch
        C:R:S ->
            io:format(standard_error, "py_driver_bench crashed: ~p:~p~n~p~n", [C, R, S]),
            halt(1)
    end.

%% A pool of 2 contexts (as the default pool) on each backend.
start(Pool, Backend) ->
    {ok, Ctxs} = py_context_router:start_pool(Pool, 2, #{backend => Backend}),
    [ok = py_context:exec(C, helpers(), shared) || C <- Ctxs],
    hd(Ctxs).

helpers() ->
    <<"
import time
import erlang
from erlang.channel import Channel
def ident(x):
    return x
def cb_seq(n):
    call = erlang.call
    pc = time.perf_counter
    out = []
    for i in range(n):
        t0 = pc()
        call('bench_ident', i)
        out.append((pc() - t0) * 1e6)
    return out
def consume(h):
    n = 0
    for _ in Channel(h):
        n += 1
    return n
">>.

sequential(EchoPort, #{port := P, driver := D}) ->
    Echo = open_port({spawn_executable, EchoPort}, [{packet, 4}, binary, use_stdio]),
    ok = py:register_function(bench_ident, fun([X]) -> X end),
    Small = binary:copy(<<"e">>, 32),
    Kib = binary:copy(<<"k">>, 1024),
    EchoF = fun(B) -> timed(fun() -> true = port_command(Echo, B),
                                      receive {Echo, {data, _}} -> ok end end) end,
    Call = fun(Ctx) -> timed(fun() -> {ok, 3} = py:call(Ctx, operator, add, [1, 2]) end) end,
    Ident = fun(Ctx) -> timed(fun() -> {ok, Kib} = py:call(Ctx, '__main__', ident, [Kib]) end) end,
    Cb = fun(Ctx) -> fun(N) -> {ok, S} = py:call(Ctx, '__main__', cb_seq, [N]), S end end,
    Variants = [{raw_32, EchoF(Small)}, {raw_1k, EchoF(Kib)},
                {call_port, Call(P)}, {call_driver, Call(D)},
                {ident_port, Ident(P)}, {ident_driver, Ident(D)},
                {cb_port, Cb(P)}, {cb_driver, Cb(D)}],
    [F(?WARMUP) || {_, F} <- Variants],
    Rounds = [[{K, F(?BLOCK)} || {K, F} <- rotate(R, Variants)] || R <- lists:seq(0, ?ROUNDS - 1)],
    port_close(Echo),
    maps:from_list([{K, stats(lists:append([S || Round <- Rounds, {K2, S} <- Round, K2 =:= K]))}
                    || {K, _} <- Variants]).

timed(Fun) ->
    fun(N) ->
            [begin
                 T0 = erlang:monotonic_time(nanosecond),
                 Fun(),
                 (erlang:monotonic_time(nanosecond) - T0) / 1000
             end || _ <- lists:seq(1, N)]
    end.

rotate(N, L) ->
    {A, B} = lists:split(N rem length(L), L),
    B ++ A.

stats(Samples) ->
    S = lists:sort(Samples),
    {lists:nth((length(S) + 1) div 2, S), lists:sum(S) / length(S)}.

rates(EchoPort, #{port := P, driver := D}) ->
    Rounds = [[{raw_conc, raw_conc(EchoPort)},
               {conc_port, conc(bench_port)}, {conc_driver, conc(bench_drv)},
               {chan_port, chan(P)}, {chan_driver, chan(D)}]
              || _ <- lists:seq(1, ?RATE_ROUNDS)],
    Keys = [K || {K, _} <- hd(Rounds)],
    maps:from_list([{K, median([V || Round <- Rounds, {K2, V} <- Round, K2 =:= K])} || K <- Keys]).

median(L) ->
    lists:nth((length(L) + 1) div 2, lists:sort(L)).

%% ?CALLERS processes call in a loop for ?CONC_MS: calls/s.
conc(Pool) ->
    loop_rate(fun() -> {ok, 3} = py:call(Pool, operator, add, [1, 2]) end).

raw_conc(EchoPort) ->
    Port = open_port({spawn_executable, EchoPort}, [{packet, 4}, binary, use_stdio]),
    Owner = spawn(fun() -> receive go -> echo_owner(Port) end end),
    true = erlang:port_connect(Port, Owner),
    unlink(Port),
    Owner ! go,
    Pad = binary:copy(<<"p">>, 24),
    Rate = loop_rate(fun() ->
                             Ref = erlang:phash2(make_ref()),
                             true = port_command(Port, <<(pid_bin(self()))/binary, Ref:64, Pad/binary>>),
                             receive {echo, Ref} -> ok end
                     end),
    exit(Owner, kill),
    catch port_close(Port),
    Rate.

pid_bin(Pid) ->
    B = term_to_binary(Pid),
    <<(byte_size(B)):8, B/binary>>.

echo_owner(Port) ->
    receive
        {Port, {data, <<L:8, PidB:L/binary, Ref:64, _/binary>>}} ->
            binary_to_term(PidB) ! {echo, Ref},
            echo_owner(Port)
    end.

loop_rate(Call) ->
    Self = self(),
    Stop = erlang:monotonic_time(millisecond) + 200 + ?CONC_MS,
    Start = erlang:monotonic_time(millisecond) + 200,
    Pids = [spawn_link(fun() -> Self ! {count, self(), caller(Call, Start, Stop, 0)} end)
            || _ <- lists:seq(1, ?CALLERS)],
    Total = lists:sum([receive {count, P, N} -> N end || P <- Pids]),
    Total * 1000 / ?CONC_MS.

caller(Call, Start, Stop, N) ->
    Call(),
    Now = erlang:monotonic_time(millisecond),
    if
        Now >= Stop -> N;
        Now >= Start -> caller(Call, Start, Stop, N + 1);
        true -> caller(Call, Start, Stop, N)
    end.

%% One Erlang sender, one Python consumer: msgs/s of 64 B messages.
chan(Ctx) ->
    {ok, Ch} = py_channel:new(),
    Self = self(),
    spawn_link(fun() -> Self ! {consumed, py:call(Ctx, '__main__', consume, [Ch],
                                                  #{timeout => 120000})} end),
    Payload = binary:copy(<<"c">>, 64),
    T0 = erlang:monotonic_time(),
    [ok = py_channel:send(Ch, Payload) || _ <- lists:seq(1, ?CHAN_MSGS)],
    ok = py_channel:close(Ch),
    {ok, ?CHAN_MSGS} = receive {consumed, R} -> R end,
    ?CHAN_MSGS / (erlang:convert_time_unit(erlang:monotonic_time() - T0, native, microsecond) / 1.0e6).

report(S, R) ->
    Us = fun(K) -> {M, A} = maps:get(K, S), io_lib:format("~.1f / ~.1f", [M, A]) end,
    Ratio = fun(A, B) -> io_lib:format("~.2f", [element(1, maps:get(A, S)) / element(1, maps:get(B, S))]) end,
    Rate = fun(K) -> integer_to_list(round(maps:get(K, R))) end,
    io:format("~n| figure | raw echo | port | driver | driver / raw | driver / port |~n"
              "| --- | --- | --- | --- | --- | --- |~n"),
    Row = fun(Label, Raw, P, D) ->
                  io:format("| ~ts | ~ts | ~ts | ~ts | ~ts | ~ts |~n",
                            [Label, Us(Raw), Us(P), Us(D), Ratio(D, Raw), Ratio(D, P)])
          end,
    Row("sequential py:call(Ctx, operator, add, [1, 2]), µs median / mean", raw_32, call_port, call_driver),
    Row("sequential 1 KiB echo through Python (ident), µs", raw_1k, ident_port, ident_driver),
    Row("callback round trip Python → Erlang → Python, µs", raw_32, cb_port, cb_driver),
    RRow = fun(Label, Raw, P, D) ->
                   RawS = case Raw of none -> "–"; _ -> Rate(Raw) end,
                   DR = case Raw of none -> "–";
                            _ -> io_lib:format("~.2f", [maps:get(D, R) / maps:get(Raw, R)]) end,
                   io:format("| ~ts | ~ts | ~ts | ~ts | ~ts | ~.2f |~n",
                             [Label, RawS, Rate(P), Rate(D), DR, maps:get(D, R) / maps:get(P, R)])
           end,
    RRow("8 callers py:call(Pool, operator, add, [1, 2]), calls/s", raw_conc, conc_port, conc_driver),
    RRow("Channel 64 B, Erlang send → Python receive, msgs/s", none, chan_port, chan_driver).
