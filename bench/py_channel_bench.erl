%% Channel figures for py_bench (issue: channels): end-to-end messages/s from
%% one Erlang sender to one Python consumer, Channel and ByteChannel, at 64 B,
%% 1 KiB and 16 KiB, next to a raw one-way pipe transfer of the same frames
%% (bench_echo_port in sink mode). Raw and ours alternate over ?ROUNDS rounds
%% and each figure is the median of its rounds: the machine's state drifts.
-module(py_channel_bench).

-export([all/1, sizes/0]).

%% {Size, Messages}: about the same time per size.
-define(RUNS, [{64, 200000}, {1024, 100000}, {16384, 15000}]).
-define(ROUNDS, 3).

-spec sizes() -> [pos_integer()].
sizes() -> [S || {S, _} <- ?RUNS].

%% Every figure: raw pipe and both channel kinds, per size, in rounds.
-spec all(map()) -> #{atom() => term()}.
all(#{echo_port := Path}) ->
    Ctx = py:context(1),
    ok = py_context:exec(Ctx, consumers(), shared),  % called by spawned consumers
    Kinds = [{raw, fun(S, N) -> raw_run(Path, S, N) end}
             | [{K, fun(S, N) -> run(Ctx, K, S, N) end} || K <- [term, bytes]]],
    Rounds = [[{key(K, S), F(S, N)} || {S, N} <- ?RUNS, {K, F} <- Kinds]
              || _ <- lists:seq(1, ?ROUNDS)],
    Keys = [key(K, S) || {S, _} <- ?RUNS, {K, _} <- Kinds],
    maps:from_list([{Key, median_rate([R || Round <- Rounds, {K2, R} <- Round, K2 =:= Key])}
                    || Key <- Keys]).

median_rate(Figures) ->
    Sorted = lists:sort([R || {chan_rate, R, _} <- Figures]),
    [{chan_rate, _, Size} | _] = Figures,
    {chan_rate, lists:nth((length(Sorted) + 1) div 2, Sorted), Size}.

%% Raw: Erlang writes N frames of Size bytes to a port program that drops
%% them, then an empty frame it answers: messages/s of the whole transfer.
raw_run(Path, Size, N) ->
    Port = open_port({spawn_executable, Path}, [{packet, 4}, binary, use_stdio, {args, ["sink"]}]),
    Payload = binary:copy(<<"r">>, Size),
    raw_send(Port, Payload, N div 10),  % warm-up
    T0 = erlang:monotonic_time(),
    raw_send(Port, Payload, N),
    T1 = erlang:monotonic_time(),
    port_close(Port),
    {chan_rate, N / seconds(T1 - T0), Size}.

raw_send(Port, Payload, N) ->
    send_n(fun() -> true = erlang:port_command(Port, Payload) end, N),
    true = erlang:port_command(Port, <<>>),
    receive {Port, {data, <<>>}} -> ok after 60000 -> error(raw_sink_timeout) end.

%% Ours: a Python consumer counts messages until the channel closes; the time
%% runs from the first send to the consumer's result.
consumers() ->
    <<"
from erlang.channel import Channel, ByteChannel
def bench_consume(h):
    n = 0
    for _ in Channel(h):
        n += 1
    return n
def bench_consume_bytes(h):
    n = 0
    for _ in ByteChannel(h):
        n += 1
    return n
">>.

run(Ctx, Kind, Size, N) ->
    _ = run_once(Ctx, Kind, Size, N div 10),  % warm-up
    {Secs, N} = run_once(Ctx, Kind, Size, N),
    {chan_rate, N / Secs, Size}.

run_once(Ctx, Kind, Size, N) ->
    {New, Send, Close, Fun} =
        case Kind of
            term -> {fun py_channel:new/0, fun py_channel:send/2, fun py_channel:close/1,
                     bench_consume};
            bytes -> {fun py_byte_channel:new/0, fun py_byte_channel:send/2,
                      fun py_byte_channel:close/1, bench_consume_bytes}
        end,
    {ok, Ch} = New(),
    Self = self(),
    Consumer = spawn_link(fun() ->
                                  Self ! {consumed, py:call(Ctx, '__main__', Fun, [Ch],
                                                            #{timeout => 120000})}
                          end),
    Payload = binary:copy(<<"c">>, Size),
    T0 = erlang:monotonic_time(),
    send_n(fun() -> ok = Send(Ch, Payload) end, N),
    ok = Close(Ch),
    Count = receive {consumed, {ok, C}} -> C;
                    {consumed, Other} -> error({consumer, Other})
            after 120000 -> error(consumer_timeout)
            end,
    T1 = erlang:monotonic_time(),
    unlink(Consumer),
    {seconds(T1 - T0), Count}.

send_n(_Fun, 0) -> ok;
send_n(Fun, N) -> Fun(), send_n(Fun, N - 1).

key(Kind, Size) -> list_to_atom(lists:concat([chan_, Kind, "_", Size])).

seconds(Native) -> erlang:convert_time_unit(Native, native, nanosecond) / 1.0e9.
