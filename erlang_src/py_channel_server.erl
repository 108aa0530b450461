%% @doc The server of one channel (py_channel or py_byte_channel).
%%
%% It holds the messages Erlang sent and hands them to the port programs whose
%% Python receivers asked for more ("want", see spec/PROTOCOL.md, Channels): a
%% port gets everything queued at that moment in one frame, so a lagging
%% consumer is fed in large batches. Messages shipped to a port stay here until
%% the port acknowledges them; if the port program dies first they are queued
%% again, in order, ahead of everything else (at-least-once for that case).
%%
%% A probe (Python's try_receive found nothing in its port program) is
%% answered at once with what is queued, or with nothing, and leaves the
%% port's want, if any, as it was.
%%
%% Senders never wait for the server: they reserve their bytes in the atomics
%% array of the handle (see py_channel.hrl) and send. The port owner subtracts
%% the bytes Python acknowledged before it forwards the ack here.
%%
%% A byte channel also carries bytes the other way: ByteChannel.send_bytes in
%% Python, py_byte_channel:recv/1,2 in Erlang.
%%
%% The server stops once the channel is closed (by either side, or because its
%% owner died) and nothing it holds can still be delivered.
-module(py_channel_server).
-behaviour(gen_server).

-include("py_channel.hrl").
-include("py_protocol.hrl").

-export([start_link/1, new/2, enqueue/5, close/2, info/3, recv/2, try_recv/1]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2]).

%% A frame carries at most this much and this many messages.
-define(BATCH_BYTES, 1024 * 1024).
-define(BATCH_COUNT, 16384).
%% Messages a burst gathers from the mailbox before shipping.
-define(BURST, 4096).
%% A message shipped alone travels in [Type, ChanId, Msg]: a frame at most this
%% much bigger than the size a send counts (array header, type, a uint64
%% ChanId, and for a byte channel, which counts the data, its bin header).
-define(FRAME_HEAD, 16).
%% How long a closed and drained server lingers before it stops.
-define(STOP_GRACE_MS, 500).

-type kind() :: term | bytes.
-type item() :: {iodata(), non_neg_integer()}.

-record(port_state, {monitor :: reference(),
                     in_flight = queue:new() :: queue:queue([item()]),
                     acked = 0 :: non_neg_integer()}).  % of the first batch in flight

-record(state, {id :: pos_integer(),
                kind :: kind(),
                counters :: atomics:atomics_ref(),
                owner :: reference() | gone,  % gone: nobody reads what Python sends
                front = [] :: [item()],       % to send first, in order
                pending = [] :: [item()],     % to send after, newest first
                queued = 0 :: non_neg_integer(),  % in front and pending
                stop_timer :: reference() | undefined,
                ports = #{} :: #{port() => #port_state{}},
                waiting = [] :: [port()],     % ports with a want outstanding
                closed = false :: boolean(),
                batch_bytes :: pos_integer(),  % per frame: within the ports' max_frame
                inbound = queue:new() :: queue:queue(binary()),
                readers = queue:new() :: queue:queue({pid(), reference()})}).

%%====================================================================
%% API (used by py_channel and py_byte_channel)
%%====================================================================

-spec start_link(map()) -> {ok, pid()} | {error, term()}.
start_link(Args) ->
    gen_server:start_link(?MODULE, Args, []).

%% @doc A new channel of `Kind' owned by the calling process.
-spec new(kind(), map()) ->
          {ok, {pos_integer(), pid(), atomics:atomics_ref(), pos_integer() | infinity}}
          | {error, term()}.
new(Kind, Opts) when is_map(Opts) ->
    %% max_size => 0 is unbounded, as in erlang_python (dropin2)
    case maps:get(max_size, Opts, infinity) of
        0 -> new(Kind, Opts#{max_size => infinity});
        Max when Max =:= infinity; is_integer(Max), Max > 0 ->
            Id = erlang:unique_integer([positive]),
            Counters = atomics:new(3, [{signed, true}]),
            %% The largest message accepted fits a frame of max_frame alone.
            MaxFrame = py_config:max_frame(),
            atomics:put(Counters, ?CH_MAX_MESSAGE, max(0, MaxFrame - ?FRAME_HEAD)),
            Args = #{id => Id, kind => Kind, counters => Counters, owner => self(),
                     max_frame => MaxFrame},
            case py_channel_sup:start_server(Args) of
                {ok, Server} -> {ok, {Id, Server, Counters, Max}};
                {error, _} = Error -> Error
            end;
        Bad ->
            {error, {bad_option, {max_size, Bad}}}
    end;
new(_Kind, Opts) ->
    {error, {bad_options, Opts}}.

%% @doc Queues one encoded message of `Size' bytes, in the caller's process. A
%% message that cannot fit a frame of the max_frame the channel was made with
%% is refused.
-spec enqueue(pid(), atomics:atomics_ref(), pos_integer() | infinity, iodata(),
              non_neg_integer()) -> ok | busy | {error, closed | {too_large, pos_integer()}}.
enqueue(Server, Counters, Max, Item, Size) ->
    case Size > atomics:get(Counters, ?CH_MAX_MESSAGE) of
        true -> {error, {too_large, Size}};
        false -> enqueue_fitting(Server, Counters, Max, Item, Size)
    end.

enqueue_fitting(Server, Counters, Max, Item, Size) ->
    case atomics:get(Counters, ?CH_CLOSED) =:= 0 andalso is_process_alive(Server) of
        true ->
            case reserve(Counters, Max, Size) of
                ok -> Server ! {'$py_msg', Item, Size}, ok;
                busy -> busy
            end;
        false ->
            {error, closed}
    end.

reserve(Counters, infinity, Size) ->
    atomics:add(Counters, ?CH_SIZE, Size);
reserve(Counters, Max, Size) ->
    Queued = atomics:get(Counters, ?CH_SIZE),
    if
        Queued + Size > Max -> busy;
        true ->
            case atomics:compare_exchange(Counters, ?CH_SIZE, Queued, Queued + Size) of
                ok -> ok;
                _ -> reserve(Counters, Max, Size)
            end
    end.

%% @doc Closes the channel: later sends fail, receivers get what was sent, then
%% the closed error.
-spec close(pid(), atomics:atomics_ref()) -> ok.
close(Server, Counters) ->
    atomics:put(Counters, ?CH_CLOSED, 1),
    Server ! '$py_close',
    ok.

-spec info(pid(), atomics:atomics_ref(), pos_integer() | infinity) ->
          #{size := non_neg_integer(), max_size := pos_integer() | infinity,
            closed := boolean()}.
info(Server, Counters, Max) ->
    #{size => atomics:get(Counters, ?CH_SIZE),
      max_size => Max,
      closed => atomics:get(Counters, ?CH_CLOSED) =:= 1 orelse not is_process_alive(Server)}.

%% @doc The next bytes Python sent on a byte channel; waits up to `Timeout'.
-spec recv(pid(), timeout()) -> {ok, binary()} | {error, closed | timeout}.
recv(Server, Timeout) ->
    Tag = erlang:monitor(process, Server),
    Server ! {'$py_recv', self(), Tag},
    receive
        {Tag, Reply} ->
            erlang:demonitor(Tag, [flush]),
            Reply;
        {'DOWN', Tag, process, _, _} ->
            {error, closed}
    after Timeout ->
        %% Withdraw the request; if the server already answered, take that.
        Withdrawn = (catch gen_server:call(Server, {cancel_recv, Tag}, infinity)),
        erlang:demonitor(Tag, [flush]),
        receive
            {Tag, Reply} -> Reply
        after 0 ->
            case Withdrawn of
                ok -> {error, timeout};
                _ -> {error, closed}
            end
        end
    end.

-spec try_recv(pid()) -> {ok, binary()} | {error, empty | closed}.
try_recv(Server) ->
    try
        gen_server:call(Server, try_recv, infinity)
    catch
        exit:_ -> {error, closed}
    end.

%%====================================================================
%% gen_server callbacks
%%====================================================================

-spec init(map()) -> {ok, #state{}}.
init(#{id := Id, kind := Kind, counters := Counters, owner := Owner, max_frame := MaxFrame}) ->
    %% A batch stays well within a frame; a single message over a port
    %% program's frame limit (one started with a smaller max_frame) still goes
    %% alone, and the port program fails its receive().
    BatchBytes = max(1, min(?BATCH_BYTES, MaxFrame div 2)),
    {ok, #state{id = Id, kind = Kind, counters = Counters, batch_bytes = BatchBytes,
                owner = erlang:monitor(process, Owner)}}.

-spec handle_call(term(), gen_server:from(), #state{}) ->
          {reply, term(), #state{}}.
handle_call(try_recv, _From, #state{inbound = In} = State) ->
    case queue:out(In) of
        {{value, Bin}, In1} ->
            {noreply, State1} = settle(State#state{inbound = In1}),
            {reply, {ok, Bin}, State1};
        {empty, _} when State#state.closed -> {reply, {error, closed}, State};
        {empty, _} -> {reply, {error, empty}, State}
    end;
handle_call({cancel_recv, Tag}, _From, #state{readers = Readers} = State) ->
    Left = queue:filter(fun({_, T}) -> T =/= Tag end, Readers),
    Reply = case queue:len(Left) =:= queue:len(Readers) of
                true -> answered;
                false -> ok
            end,
    {reply, Reply, State#state{readers = Left}};
handle_call(_Request, _From, State) ->
    {reply, {error, unknown_call}, State}.

-spec handle_cast(term(), #state{}) -> {noreply, #state{}}.
handle_cast(_Msg, State) ->
    {noreply, State}.

-spec handle_info(term(), #state{}) -> {noreply, #state{}} | {stop, normal, #state{}}.
handle_info({'$py_msg', Item, Size}, #state{pending = Pending, queued = Queued} = State) ->
    {Pending1, Queued1} = burst([{Item, Size} | Pending], Queued + 1, ?BURST),
    {noreply, ship(State#state{pending = Pending1, queued = Queued1})};
handle_info({'$py_ack', Port, Count, Want}, State) ->
    State1 = acknowledged(Port, Count, watch(Port, State)),
    State2 = case Want of
                 true -> wants(Port, State1);
                 false -> State1
             end,
    settle(State2);
handle_info({'$py_probe', Port, Count}, State) ->
    %% try_receive found nothing in that port program: it gets what is queued
    %% now, maybe nothing, at once (its want, if any, stays as it was).
    State1 = acknowledged(Port, Count, watch(Port, State)),
    case drained_out(State1) of
        true ->
            send_closed(Port, State1#state.id),
            settle(State1);
        false ->
            {noreply, probed(Port, State1)}
    end;
handle_info({'$py_return', Port, Count}, State) ->
    %% Nobody in that port program receives: what it was sent and did not take
    %% goes to the others.
    State1 = requeue(Port, true, acknowledged(Port, Count, watch(Port, State))),
    %% After everything this server sent there for the withdrawn want.
    catch erlang:port_command(Port, py_msgpack:encode([?PY_MSG_CHANNEL_RETURNED, State1#state.id])),
    settle(ship(State1));
handle_info('$py_stop', State) ->
    State1 = State#state{stop_timer = undefined},
    case drained_out(State1) andalso queue:is_empty(State1#state.inbound) of
        true -> {stop, normal, State1};
        false -> {noreply, State1}  % a late send came: serve it first
    end;
handle_info('$py_close', State) ->
    settle(closed(State));
handle_info({'$py_bytes', _Bin}, #state{owner = gone} = State) ->
    {noreply, State};
handle_info({'$py_bytes', Bin}, State) ->
    {noreply, inbound(Bin, State)};
handle_info({'$py_recv', Pid, Tag}, #state{inbound = In, readers = Readers} = State) ->
    case queue:out(In) of
        {{value, Bin}, In1} ->
            Pid ! {Tag, {ok, Bin}},
            settle(State#state{inbound = In1});
        {empty, _} when State#state.closed ->
            Pid ! {Tag, {error, closed}},
            {noreply, State};
        {empty, _} ->
            {noreply, State#state{readers = queue:in({Pid, Tag}, Readers)}}
    end;
handle_info({'DOWN', Ref, process, _, _}, #state{owner = Ref} = State) ->
    %% The owner is gone: nobody reads what Python sends back any more.
    settle(closed(State#state{owner = gone, inbound = queue:new()}));
handle_info({'DOWN', _Ref, port, Port, _}, State) ->
    settle(ship(port_down(Port, State)));
handle_info(_Other, State) ->
    {noreply, State}.

%%====================================================================
%% Internal
%%====================================================================

%% More messages already in the mailbox join the same shipment.
burst(Acc, Queued, 0) -> {Acc, Queued};
burst(Acc, Queued, N) ->
    receive
        {'$py_msg', Item, Size} -> burst([{Item, Size} | Acc], Queued + 1, N - 1)
    after 0 -> {Acc, Queued}
    end.

watch(Port, #state{ports = Ports} = State) ->
    case Ports of
        #{Port := _} -> State;
        _ ->
            Monitor = erlang:monitor(port, Port),
            State#state{ports = Ports#{Port => #port_state{monitor = Monitor}}}
    end.

%% The port took `Count' more of the messages shipped to it.
acknowledged(_Port, 0, State) -> State;
acknowledged(Port, Count, #state{ports = Ports} = State) ->
    case Ports of
        #{Port := P} -> State#state{ports = Ports#{Port => drop_acked(Count, P)}};
        _ -> State
    end.

drop_acked(Count, #port_state{in_flight = InFlight, acked = Acked} = P) ->
    case queue:peek(InFlight) of
        {value, {N, _Items}} when Acked + Count >= N ->
            drop_acked(Acked + Count - N, P#port_state{in_flight = queue:drop(InFlight), acked = 0});
        {value, _} ->
            P#port_state{acked = Acked + Count};
        empty ->
            P#port_state{acked = 0}
    end.

wants(Port, #state{waiting = Waiting} = State) ->
    Waiting1 = case lists:member(Port, Waiting) of
                   true -> Waiting;
                   false -> Waiting ++ [Port]
               end,
    ship(State#state{waiting = Waiting1}).

%% Hands what is queued to the waiting ports, spread evenly.
ship(#state{waiting = []} = State) -> State;
ship(#state{queued = 0} = State) -> State;
ship(#state{queued = Queued, waiting = Waiting, ports = Ports} = State) ->
    %% With several consuming ports, leave a share for the others.
    Share = max(1, Queued div max(length(Waiting), map_size(Ports))),
    ship_to(Waiting, Share, State).

ship_to([], _Share, State) ->
    State#state{waiting = []};
ship_to(Waiting, _Share, #state{queued = 0} = State) ->
    State#state{waiting = Waiting};
ship_to([Port | Waiting], Share, State) ->
    ship_to(Waiting, Share, send_batch(Port, ?PY_MSG_CHANNEL_DATA, Share, State)).

%% Answers a probe (?PY_MSG_CHANNEL_PROBE) of `Port': a share of what is
%% queued, or nothing, in a ?PY_MSG_CHANNEL_PROBE_DATA frame.
probed(Port, #state{queued = Queued, waiting = Waiting, ports = Ports} = State) ->
    Share = max(1, Queued div max(length(Waiting) + 1, map_size(Ports))),
    send_batch(Port, ?PY_MSG_CHANNEL_PROBE_DATA, Share, State).

%% Sends `Port' a frame of type `Type' with up to `Share' queued messages
%% (none if nothing is queued), kept in flight until acknowledged.
send_batch(Port, Type, Share, #state{id = Id, ports = Ports, front = Front,
                                     pending = Pending, queued = Queued,
                                     batch_bytes = BatchBytes} = State) ->
    {Batch, N, Front1, Pending1} = case Queued of
                                       0 -> {[], 0, Front, Pending};
                                       _ -> take(Front, Pending, min(Share, ?BATCH_COUNT),
                                                 BatchBytes, [], 0)
                                   end,
    Frame = [arr_hdr(N + 2), Type, py_msgpack:encode(Id) | [I || {I, _} <- Batch]],
    case catch erlang:port_command(Port, Frame) of
        true when N > 0 ->
            P = #port_state{in_flight = InFlight} = maps:get(Port, Ports),
            P1 = P#port_state{in_flight = queue:in({N, Batch}, InFlight)},
            State#state{ports = Ports#{Port := P1}, front = Front1, pending = Pending1,
                        queued = Queued - N};
        _ ->  % nothing sent, or the port is gone (its 'DOWN' requeues what it held)
            State
    end.

%% Up to Count messages and Bytes bytes (at least one message) from the
%% queue: Front in order, then Pending (newest first).
take([], [], _Count, _Bytes, Acc, N) ->
    {lists:reverse(Acc), N, [], []};
take([], Pending, Count, Bytes, Acc, N) ->
    take(lists:reverse(Pending), [], Count, Bytes, Acc, N);
take([{_, Size} = Item | Rest], Pending, Count, Bytes, Acc, N)
  when Count > 0, (Bytes >= Size orelse N =:= 0) ->
    take(Rest, Pending, Count - 1, Bytes - Size, [Item | Acc], N + 1);
take(Front, Pending, _Count, _Bytes, Acc, N) ->
    {lists:reverse(Acc), N, Front, Pending}.

%% What a dead port held goes back to the front of the queue.
port_down(Port, State) ->
    requeue(Port, false, State).

%% What `Port' was sent and has not acknowledged goes back to the front of the
%% queue; the port is forgotten unless `Keep'.
requeue(Port, Keep, #state{ports = Ports, front = Front, waiting = Waiting} = State) ->
    case Ports of
        #{Port := #port_state{in_flight = InFlight, acked = Acked} = P} ->
            Batches = [Items || {_, Items} <- queue:to_list(InFlight)],
            Redeliver = lists:nthtail(Acked, lists:append(Batches)),
            Ports1 = case Keep of
                         true -> Ports#{Port := P#port_state{in_flight = queue:new(), acked = 0}};
                         false -> maps:remove(Port, Ports)
                     end,
            State#state{ports = Ports1, front = Redeliver ++ Front,
                        queued = State#state.queued + length(Redeliver),
                        waiting = lists:delete(Port, Waiting)};
        _ ->
            State#state{waiting = lists:delete(Port, Waiting)}
    end.

closed(#state{closed = true} = State) -> State;
closed(#state{counters = Counters} = State) ->
    atomics:put(Counters, ?CH_CLOSED, 1),
    State#state{closed = true}.

inbound(Bin, #state{readers = Readers, inbound = In} = State) ->
    case queue:out(Readers) of
        {{value, {Pid, Tag}}, Readers1} ->
            Pid ! {Tag, {ok, Bin}},
            State#state{readers = Readers1};
        {empty, _} ->
            State#state{inbound = queue:in(Bin, In)}
    end.

send_closed(Port, Id) ->
    catch erlang:port_command(Port, py_msgpack:encode([?PY_MSG_CHANNEL_CLOSED, Id])),
    ok.

%% Once closed and with nothing queued or in flight (a port that dies hands its
%% messages back), waiting receivers learn it is over; the server stops when
%% nothing is left for Erlang to read either.
settle(State) ->
    case drained_out(State) of
        true -> drained(State);
        false -> {noreply, State}
    end.

%% Closed, nothing queued and nothing in flight to any port program.
drained_out(#state{closed = true, front = [], pending = [], ports = Ports}) ->
    lists:all(fun(#port_state{in_flight = F}) -> queue:is_empty(F) end, maps:values(Ports));
drained_out(_State) ->
    false.

drained(#state{id = Id, waiting = Waiting, inbound = In, readers = Readers} = State) ->
    [send_closed(Port, Id) || Port <- Waiting],
    case queue:is_empty(In) of
        true ->
            [Pid ! {Tag, {error, closed}} || {Pid, Tag} <- queue:to_list(Readers)],
            {noreply, stop_later(State#state{waiting = [], readers = queue:new()})};
        false ->
            {noreply, State#state{waiting = []}}
    end.

%% A sender that read the closed flag just before the close may still be
%% sending: its message must find the server, so the server lingers a little.
stop_later(#state{stop_timer = undefined} = State) ->
    State#state{stop_timer = erlang:send_after(?STOP_GRACE_MS, self(), '$py_stop')};
stop_later(State) ->
    State.

arr_hdr(N) when N < 16 -> 16#90 + N;
arr_hdr(N) when N < 16#10000 -> <<16#dc, N:16>>;
arr_hdr(N) -> <<16#dd, N:32>>.
