%% Channel figures for py_bench (issue: channels): end-to-end messages/s from
%% one Erlang sender to one Python consumer, Channel and ByteChannel, at 64 B,
%% 1 KiB and 16 KiB, next to a raw one-way pipe transfer of the same frames
%% (bench_echo_port in sink mode) measured in the same run.
-module(py_channel_bench).

-export([raw_pipe/1, channels/1, sizes/0]).

%% {Size, Messages}: about the same time per size.
-define(RUNS, [{64, 400000}, {1024, 200000}, {16384, 30000}]).

-spec sizes() -> [pos_integer()].
sizes() -> [S || {S, _} <- ?RUNS].

%% Raw: Erlang writes N frames of Size bytes to a port program that drops
%% them, then an empty frame it answers: messages/s of the whole transfer.
-spec raw_pipe(map()) -> #{atom() => term()}.
raw_pipe(#{echo_port := Path}) ->
    maps:from_list([{key(raw, S), raw_run(Path, S, N)} || {S, N} <- ?RUNS]).

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
-spec channels(map()) -> #{atom() => term()}.
channels(_Env) ->
    Ctx = py:context(1),
    ok = py:exec(Ctx, <<"
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
">>),
    maps:from_list(
      [{key(Kind, S), run(Ctx, Kind, S, N)} || Kind <- [term, bytes], {S, N} <- ?RUNS]).

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
