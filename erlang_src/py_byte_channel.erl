%% @doc Channels of raw bytes, both ways, with backpressure toward Python.
%%
%% Like py_channel, but the data is bytes with no term encoding:
%% `send/2' queues a binary that Python reads with
%% `erlang.ByteChannel(handle).receive_bytes()', and what Python writes with
%% `send_bytes(b)' is read here with `recv/1,2' or `try_receive/1'.
-module(py_byte_channel).

-include("py_channel.hrl").

-export([new/0, new/1, send/2, recv/1, recv/2, try_receive/1, close/1, info/1]).
-export_type([channel/0]).

-type channel() :: #py_byte_channel{}.

%% @equiv new(#{})
-spec new() -> {ok, channel()} | {error, term()}.
new() ->
    new(#{}).

%% @doc A new byte channel owned by the caller. Option `max_size': the most
%% bytes queued toward Python before `send/2' returns `busy'.
-spec new(#{max_size => non_neg_integer() | infinity}) -> {ok, channel()} | {error, term()}.
new(Opts) ->
    case py_channel_server:new(bytes, Opts) of
        {ok, {Id, Server, Counters, Max}} ->
            {ok, #py_byte_channel{id = Id, server = Server, counters = Counters, max_size = Max}};
        {error, _} = Error ->
            Error
    end.

%% @doc Queues `Bytes' (a binary) for Python.
-spec send(channel(), binary()) -> ok | busy | {error, closed | badarg | {too_large, pos_integer()}}.
send(#py_byte_channel{server = Server, counters = Counters, max_size = Max}, Bytes)
  when is_binary(Bytes) ->
    py_channel_server:enqueue(Server, Counters, Max, py_msgpack:encode({bytes, Bytes}),
                              byte_size(Bytes));
send(_, _) ->
    {error, badarg}.

%% @equiv recv(Ch, infinity)
-spec recv(channel()) -> {ok, binary()} | {error, closed | badarg}.
recv(Ch) ->
    recv(Ch, infinity).

%% @doc The next bytes Python sent; waits up to `Timeout' ms.
-spec recv(channel(), timeout()) -> {ok, binary()} | {error, closed | timeout | badarg}.
recv(#py_byte_channel{server = Server}, Timeout)
  when Timeout =:= infinity; is_integer(Timeout), Timeout >= 0 ->
    py_channel_server:recv(Server, Timeout);
recv(_, _) ->
    {error, badarg}.

%% @doc The next bytes Python sent, or `{error, empty}' at once.
-spec try_receive(channel()) -> {ok, binary()} | {error, empty | closed | badarg}.
try_receive(#py_byte_channel{server = Server}) ->
    py_channel_server:try_recv(Server);
try_receive(_) ->
    {error, badarg}.

%% @doc Closes both directions; what was sent before is still delivered.
-spec close(channel()) -> ok | {error, badarg}.
close(#py_byte_channel{server = Server, counters = Counters}) ->
    py_channel_server:close(Server, Counters);
close(_) ->
    {error, badarg}.

%% @doc `#{size => Bytes, max_size => Max | infinity, closed => Bool}' (bytes
%% queued toward Python).
-spec info(channel()) -> #{size := non_neg_integer(), max_size := pos_integer() | infinity,
                           closed := boolean()} | {error, badarg}.
info(#py_byte_channel{server = Server, counters = Counters, max_size = Max}) ->
    py_channel_server:info(Server, Counters, Max);
info(_) ->
    {error, badarg}.
