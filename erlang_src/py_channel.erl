%% @doc Channels of Erlang terms to Python, with backpressure.
%%
%% ```
%% {ok, Ch} = py_channel:new(#{max_size => 10000}),
%% {ok, _} = py:spawn_call(workers, consume, [Ch]),   % Python: Channel(ch)
%% ok = py_channel:send(Ch, {work, 1}),
%% ok = py_channel:close(Ch).
%% '''
%%
%% A channel is a handle: pass it to Python as an argument, where
%% `erlang.channel.Channel(handle)' receives from it. Several Python receivers,
%% in any contexts and port programs of the node, may share it: each message
%% goes to exactly one of them, in send order. `send/2' decides backpressure in
%% the caller's process: `busy' when the bytes queued (encoded size, not yet
%% taken by Python) would exceed `max_size'. The channel closes when its owner
%% (the process that created it) exits.
%%
%% If a port program dies holding messages it had not yet handed to Python,
%% they are queued again for the other receivers; a message Python had taken
%% just before the crash may therefore be delivered a second time.
-module(py_channel).

-include("py_channel.hrl").

-export([new/0, new/1, send/2, close/1, info/1]).
-export([register_callbacks/0]).
-export_type([channel/0]).

-type channel() :: #py_channel{}.

%% @doc The reference needs this once before Python uses channels; here
%% channels need no registered callbacks: a no-op, for ported code.
-spec register_callbacks() -> ok.
register_callbacks() ->
    ok.

%% @equiv new(#{})
-spec new() -> {ok, channel()} | {error, term()}.
new() ->
    new(#{}).

%% @doc A new channel owned by the caller. Option `max_size': the most bytes
%% queued before `send/2' returns `busy' (default `infinity'; 0 is also unbounded).
-spec new(#{max_size => non_neg_integer() | infinity}) -> {ok, channel()} | {error, term()}.
new(Opts) ->
    case py_channel_server:new(term, Opts) of
        {ok, {Id, Server, Counters, Max}} ->
            {ok, #py_channel{id = Id, server = Server, counters = Counters, max_size = Max}};
        {error, _} = Error ->
            Error
    end.

%% @doc Queues `Term' for Python. `busy' when the queue is full (nothing sent),
%% `{error, closed}' after close.
-spec send(channel(), term()) -> ok | busy | {error, closed | {too_large, pos_integer()} | badarg}.
send(#py_channel{server = Server, counters = Counters, max_size = Max}, Term) ->
    Item = py_msgpack:encode(Term),
    py_channel_server:enqueue(Server, Counters, Max, Item, iolist_size(Item));
send(_, _) ->
    {error, badarg}.

%% @doc Closes the channel. Receivers get every message sent before, then
%% `ChannelClosed' (StopIteration when iterating). Idempotent.
-spec close(channel()) -> ok | {error, badarg}.
close(#py_channel{server = Server, counters = Counters}) ->
    py_channel_server:close(Server, Counters);
close(_) ->
    {error, badarg}.

%% @doc `#{size => Bytes, max_size => Max | infinity, closed => Bool}'.
-spec info(channel()) -> #{size := non_neg_integer(), max_size := pos_integer() | infinity,
                           closed := boolean()} | {error, badarg}.
info(#py_channel{server = Server, counters = Counters, max_size = Max}) ->
    py_channel_server:info(Server, Counters, Max);
info(_) ->
    {error, badarg}.
