%% Channels: py_channel and py_byte_channel with Python's Channel and
%% ByteChannel, against the real port programs. The Python side of every test
%% is chan_workers.py in this suite's data directory.
-module(py_channel_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0, groups/0, init_per_suite/1, end_per_suite/1,
         init_per_testcase/2, end_per_testcase/2]).
-export([request_reply/1, streaming_to_async_consumer/1, four_workers_exactly_once/1,
         byte_channel_both_ways/1, byte_channel_async_and_with/1,
         backpressure_busy_then_ok/1, send_to_closed/1, info_of_new_channel/1,
         receive_closed_while_waiting/1, async_receive_closed_while_waiting/1,
         byte_receive_closed_while_waiting/1, close_from_python/1,
         send_bytes_rejects_non_bytes/1, bad_input/1, try_receive_empty/1,
         byte_try_receive_and_timeout/1, owner_exit_closes/1,
         threads_of_one_context_share/1, workers_in_other_port_programs/1,
         port_crash_redelivers/1, receive_cancelled_by_timeout/1,
         send_racing_close_is_delivered/1, concurrent_senders_exact_accounting/1,
         async_timeout_keeps_message/1, async_consumers_cancelled_exactly_once/1,
         orphaned_want_gives_messages_back/1, byte_channel_server_ends_after_owner_exit/1,
         every_type_round_trips/1, large_messages/1, killed_server_closes/1,
         space_visible_with_reply/1, too_deep_message_raises/1,
         message_over_max_frame_raises/1, message_over_own_max_frame_refused/1,
         try_receive_sees_sent/1, try_receive_closed_raises/1, byte_try_receive_sees_sent/1,
         try_receive_from_thread_and_loop/1, try_receive_server_killed/1,
         million_messages/1]).

-define(APP, erlang_python).
-define(TIMEOUT, 30000).
-define(POOL, chan_test_pool).

all() ->
    [{group, examples}, {group, semantics}, {group, load}].

groups() ->
    [{examples, [], [request_reply, streaming_to_async_consumer, four_workers_exactly_once,
                     byte_channel_both_ways, byte_channel_async_and_with]},
     {semantics, [], [backpressure_busy_then_ok, send_to_closed, info_of_new_channel,
                      receive_closed_while_waiting, async_receive_closed_while_waiting,
                      byte_receive_closed_while_waiting, close_from_python,
                      send_bytes_rejects_non_bytes, bad_input, try_receive_empty,
                      byte_try_receive_and_timeout, owner_exit_closes,
                      threads_of_one_context_share, workers_in_other_port_programs,
                      port_crash_redelivers, receive_cancelled_by_timeout,
                      send_racing_close_is_delivered,
                      async_timeout_keeps_message, async_consumers_cancelled_exactly_once,
                      orphaned_want_gives_messages_back,
                      byte_channel_server_ends_after_owner_exit, every_type_round_trips,
                      large_messages, killed_server_closes, space_visible_with_reply,
                      too_deep_message_raises, message_over_max_frame_raises,
                      message_over_own_max_frame_refused,
                      try_receive_sees_sent, try_receive_closed_raises,
                      byte_try_receive_sees_sent, try_receive_from_thread_and_loop,
                      try_receive_server_killed]},
     {load, [], [concurrent_senders_exact_accounting, million_messages]}].

init_per_suite(Config) ->
    py_test_util:start_app([?config(data_dir, Config)]) ++ Config.

end_per_suite(Config) ->
    py_test_util:stop_app(Config),
    Config.

init_per_testcase(_Case, Config) ->
    Config.

end_per_testcase(_Case, _Config) ->
    _ = py_context_router:stop_pool(?POOL),
    ok.

%%====================================================================
%% Helpers
%%====================================================================

ctx() -> py:context(1).

%% Runs a Python function in its own process; the result comes back as
%% {py_result, Tag, Result}.
spawn_py(Ctx, Fun, Args) ->
    Self = self(),
    Tag = make_ref(),
    spawn_link(fun() -> Self ! {py_result, Tag, py:call(Ctx, chan_workers, Fun, Args, #{timeout => ?TIMEOUT})} end),
    Tag.

result(Tag) ->
    receive
        {py_result, Tag, R} -> R
    after ?TIMEOUT -> ct:fail({no_result, Tag})
    end.

wait_for(Msg) ->
    receive
        Msg -> ok
    after ?TIMEOUT -> ct:fail({not_received, Msg})
    end.

%%====================================================================
%% The guide's examples
%%====================================================================

request_reply(_Config) ->
    {ok, Ch} = py_channel:new(),
    Worker = spawn_py(ctx(), handle_requests, [Ch]),
    ok = py_channel:send(Ch, {request, self(), <<"compute">>}),
    receive
        {response, Result} -> <<"COMPUTE">> = Result
    after ?TIMEOUT -> ct:fail(no_response)
    end,
    ok = py_channel:send(Ch, {request, self(), <<"again">>}),
    receive {response, <<"AGAIN">>} -> ok after ?TIMEOUT -> ct:fail(no_response) end,
    ok = py_channel:close(Ch),
    {ok, 2} = result(Worker).

streaming_to_async_consumer(_Config) ->
    {ok, Ch} = py_channel:new(),
    Items = lists:seq(1, 500),
    lists:foreach(fun(Item) -> ok = py_channel:send(Ch, Item) end, Items),
    ok = py_channel:close(Ch),
    Expected = [2 * I || I <- Items],
    {ok, Expected} = py:call(ctx(), chan_workers, process_stream, [Ch]).

%% Four asyncio workers in four contexts (threads of the io pool's port program)
%% share a channel:
%% every item is processed exactly once, in send order per worker.
four_workers_exactly_once(_Config) ->
    {ok, Ch} = py_channel:new(#{max_size => 100000}),
    Contexts = lists:sublist(py_context_router:contexts(io), 4),
    Tags = [spawn_py(C, worker, [Ch, N]) || {N, C} <- lists:zip([1, 2, 3, 4], Contexts)],
    WorkItems = lists:seq(1, 2000),
    [ok = send_retry(Ch, {work, Item}) || Item <- WorkItems],
    ok = py_channel:close(Ch),
    Results = [result(T) || T <- Tags],
    Seen = lists:append([Items || {ok, {_, Items}} <- Results]),
    ct:pal("~p", [[R || R <- Results, element(1, R) =/= ok]]),
    4 = length([ok || {ok, _} <- Results]),
    WorkItems = lists:sort(Seen),
    [Items = lists:sort(Items) || {ok, {_, Items}} <- Results],
    ok.

byte_channel_both_ways(_Config) ->
    {ok, Ch} = py_byte_channel:new(),
    Worker = spawn_py(ctx(), process_bytes, [Ch]),
    ok = py_byte_channel:send(Ch, <<"HTTP/1.1 200 OK\r\n">>),
    {ok, <<"got:HTTP/1.1 200 OK\r\n">>} = py_byte_channel:recv(Ch),
    ok = py_byte_channel:send(Ch, <<"body">>),
    {ok, <<"BODY">>} = py_byte_channel:recv(Ch, ?TIMEOUT),
    {error, empty} = py_byte_channel:try_receive(Ch),
    ok = py_byte_channel:send(Ch, <<"more">>),
    {ok, <<"MORE">>} = py_byte_channel:recv(Ch, ?TIMEOUT),
    ok = py_byte_channel:close(Ch),
    {ok, 2} = result(Worker).

byte_channel_async_and_with(_Config) ->
    {ok, Ch} = py_byte_channel:new(),
    [ok = py_byte_channel:send(Ch, B) || B <- [<<"a">>, <<"bc">>, <<0, 255>>]],
    ok = py_byte_channel:close(Ch),
    {ok, <<"abc", 0, 255>>} = py:call(ctx(), chan_workers, process_bytes_async, [Ch]),
    {ok, Ch2} = py_byte_channel:new(),
    ok = py_byte_channel:send(Ch2, <<"x">>),
    Tag = spawn_py(ctx(), bytes_with, [Ch2]),
    ok = py_byte_channel:send(Ch2, <<"y">>),
    ok = py_byte_channel:close(Ch2),
    {ok, [<<"x">>, <<"y">>]} = result(Tag).

%%====================================================================
%% Semantics
%%====================================================================

backpressure_busy_then_ok(_Config) ->
    {ok, Ch} = py_channel:new(#{max_size => 1000}),
    Msg = binary:copy(<<"x">>, 90),
    N = fill(Ch, Msg, 0),
    true = N > 0,
    busy = py_channel:send(Ch, Msg),
    #{size := Size, max_size := 1000, closed := false} = py_channel:info(Ch),
    true = Size =< 1000 andalso Size > 1000 - 100,
    %% Python drains it all: the sender may send again at once, nothing queued.
    {ok, Taken} = py:call(ctx(), chan_workers, take, [Ch, N]),
    N = length(Taken),
    #{size := 0} = py_channel:info(Ch),
    ok = py_channel:send(Ch, Msg),
    {ok, [Msg]} = py:call(ctx(), chan_workers, take, [Ch, 1]),
    #{size := 0} = py_channel:info(Ch),
    %% A message larger than max_size never fits.
    busy = py_channel:send(Ch, binary:copy(<<"y">>, 2000)),
    ok = py_channel:close(Ch).

fill(Ch, Msg, N) ->
    case py_channel:send(Ch, Msg) of
        ok -> fill(Ch, Msg, N + 1);
        busy -> N
    end.

send_to_closed(_Config) ->
    {ok, Ch} = py_channel:new(),
    ok = py_channel:close(Ch),
    ok = py_channel:close(Ch),
    {error, closed} = py_channel:send(Ch, hello),
    #{closed := true} = py_channel:info(Ch),
    {ok, B} = py_byte_channel:new(),
    ok = py_byte_channel:close(B),
    {error, closed} = py_byte_channel:send(B, <<"x">>),
    {error, closed} = py_byte_channel:recv(B, 1000),
    {error, closed} = py_byte_channel:try_receive(B).

info_of_new_channel(_Config) ->
    {ok, Ch} = py_channel:new(),
    #{size := 0, max_size := infinity, closed := false} = py_channel:info(Ch),
    ok = py_channel:send(Ch, <<"abc">>),
    #{size := 4} = py_channel:info(Ch),   % encoded: a fixstr header and 3 bytes
    {ok, B} = py_byte_channel:new(#{max_size => 10}),
    ok = py_byte_channel:send(B, <<"12345">>),
    #{size := 5, max_size := 10} = py_byte_channel:info(B),
    busy = py_byte_channel:send(B, <<"123456">>),
    ok = py_byte_channel:send(B, <<"12345">>).

receive_closed_while_waiting(_Config) ->
    {ok, Ch} = py_channel:new(),
    Tag = spawn_py(ctx(), receive_or_closed, [Ch, self()]),
    wait_for(waiting),
    ok = py_channel:close(Ch),
    {ok, closed} = result(Tag).

async_receive_closed_while_waiting(_Config) ->
    {ok, Ch} = py_channel:new(),
    Tag = spawn_py(ctx(), async_receive_or_closed, [Ch, self()]),
    wait_for(waiting),
    ok = py_channel:close(Ch),
    {ok, closed} = result(Tag),
    %% and one that gets a message
    {ok, Ch2} = py_channel:new(),
    Tag2 = spawn_py(ctx(), async_receive_or_closed, [Ch2, self()]),
    wait_for(waiting),
    ok = py_channel:send(Ch2, {hello, 1}),
    {ok, {hello, 1}} = result(Tag2).

byte_receive_closed_while_waiting(_Config) ->
    {ok, B} = py_byte_channel:new(),
    Tag = spawn_py(ctx(), byte_receive_or_closed, [B]),
    ok = py_byte_channel:close(B),
    {ok, closed} = result(Tag).

close_from_python(_Config) ->
    {ok, Ch} = py_channel:new(),
    {ok, true} = py:call(ctx(), chan_workers, close_from_python, [Ch]),
    {error, closed} = py_channel:send(Ch, x),
    #{closed := true} = py_channel:info(Ch).

send_bytes_rejects_non_bytes(_Config) ->
    {ok, B} = py_byte_channel:new(),
    {ok, {<<"TypeError">>, _}} = py:call(ctx(), chan_workers, send_non_bytes, [B, 42]),
    {ok, {<<"TypeError">>, _}} = py:call(ctx(), chan_workers, send_non_bytes, [B, [1, 2]]),
    %% Erlang binaries arrive as str in Python: not bytes either
    {ok, {<<"TypeError">>, _}} = py:call(ctx(), chan_workers, send_non_bytes, [B, <<"text">>]),
    {error, empty} = py_byte_channel:try_receive(B),
    ok = py_byte_channel:close(B).

bad_input(_Config) ->
    {error, badarg} = py_channel:send(not_a_channel, x),
    {error, badarg} = py_channel:close(42),
    {error, badarg} = py_channel:info(<<"x">>),
    {error, {bad_option, {max_size, -1}}} = py_channel:new(#{max_size => -1}),
    {error, {bad_option, {max_size, zero}}} = py_channel:new(#{max_size => zero}),
    {error, {bad_options, [x]}} = py_channel:new([x]),
    {ok, B} = py_byte_channel:new(),
    {error, badarg} = py_byte_channel:send(B, 123),
    {error, badarg} = py_byte_channel:send(B, "a list"),
    {error, badarg} = py_byte_channel:recv(B, -5),
    {ok, Ch} = py_channel:new(),
    %% a byte channel handle is not a Channel, nor garbage
    {ok, <<"TypeError">>} = py:call(ctx(), chan_workers, wrong_handle, [B]),
    {ok, <<"TypeError">>} = py:call(ctx(), chan_workers, wrong_handle, [{py_channel, 1}]),
    {ok, <<"TypeError">>} = py:call(ctx(), chan_workers, wrong_handle, [<<"x">>]),
    {ok, <<"accepted">>} = py:call(ctx(), chan_workers, wrong_handle, [Ch]),
    ok = py_channel:close(Ch),
    ok = py_byte_channel:close(B).

try_receive_empty(_Config) ->
    {ok, Ch} = py_channel:new(),
    {ok, none} = py:call(ctx(), chan_workers, try_take, [Ch]),
    {ok, [none, none]} = py:call(ctx(), chan_workers, try_take_all, [Ch, 2]),
    ok = py_channel:send(Ch, 7),
    {ok, [7]} = py:call(ctx(), chan_workers, take, [Ch, 1]),
    ok = py_channel:close(Ch).

%% What send/2 accepted before try_receive is returned by it, on the first
%% call (issue 19: the first one returned None, the message came later).
try_receive_sees_sent(_Config) ->
    {ok, Ch} = py_channel:new(#{max_size => 1000}),
    ok = py_channel:send(Ch, hello),
    {ok, hello} = py:call(ctx(), chan_workers, try_take, [Ch]),
    ok = py_channel:send(Ch, {a, 1}),
    ok = py_channel:send(Ch, <<"b">>),
    {ok, [{a, 1}, <<"b">>, none]} = py:call(ctx(), chan_workers, try_take_all, [Ch, 3]),
    %% everything taken was acknowledged: the space is free again
    #{size := 0} = py_channel:info(Ch),
    ok = py_channel:close(Ch).

%% A closed channel: its messages, then ChannelClosed (not None).
try_receive_closed_raises(_Config) ->
    {ok, Empty} = py_channel:new(),
    ok = py_channel:close(Empty),
    {ok, [closed]} = py:call(ctx(), chan_workers, try_take_all, [Empty, 1]),
    {error, {'ChannelClosed', _}} = py:call(ctx(), chan_workers, try_take, [Empty]),
    {ok, Ch} = py_channel:new(),
    ok = py_channel:send(Ch, last),
    ok = py_channel:close(Ch),
    {ok, [last, closed, closed]} = py:call(ctx(), chan_workers, try_take_all, [Ch, 3]).

byte_try_receive_sees_sent(_Config) ->
    {ok, B} = py_byte_channel:new(),
    {ok, [none]} = py:call(ctx(), chan_workers, try_take_bytes, [B, 1]),
    ok = py_byte_channel:send(B, <<"x">>),
    ok = py_byte_channel:send(B, <<"yz">>),
    {ok, [<<"x">>, <<"yz">>, none]} = py:call(ctx(), chan_workers, try_take_bytes, [B, 3]),
    ok = py_byte_channel:send(B, <<"end">>),
    ok = py_byte_channel:close(B),
    {ok, [<<"end">>, closed]} = py:call(ctx(), chan_workers, try_take_bytes, [B, 2]).

%% The same from a Python thread of its own and from a coroutine.
try_receive_from_thread_and_loop(_Config) ->
    {ok, Ch} = py_channel:new(),
    ok = py_channel:send(Ch, t1),
    {ok, [t1, none]} = py:call(ctx(), chan_workers, try_take_in_thread, [Ch, 2]),
    ok = py_channel:send(Ch, l1),
    {ok, [l1, none]} = py:call(ctx(), chan_workers, try_take_in_loop, [Ch, 2]),
    ok = py_channel:close(Ch),
    {ok, [closed]} = py:call(ctx(), chan_workers, try_take_in_thread, [Ch, 1]),
    {ok, [closed]} = py:call(ctx(), chan_workers, try_take_in_loop, [Ch, 1]).

%% A server that is gone answers nothing: try_receive ends with ChannelClosed
%% (the port owner watches the server), it does not hang.
try_receive_server_killed(_Config) ->
    {ok, Ch} = py_channel:new(),
    {py_channel, _, Server, _, _} = Ch,
    Mon = erlang:monitor(process, Server),
    exit(Server, kill),
    receive {'DOWN', Mon, process, Server, _} -> ok after ?TIMEOUT -> ct:fail(alive) end,
    {ok, [closed, closed]} = py:call(ctx(), chan_workers, try_take_all, [Ch, 2],
                                     #{timeout => 5000}),
    {ok, B} = py_byte_channel:new(),
    ok = py_byte_channel:send(B, <<"q">>),
    {py_byte_channel, _, BServer, _, _} = B,
    {ok, [<<"q">>]} = py:call(ctx(), chan_workers, try_take_bytes, [B, 1]),
    exit(BServer, kill),
    {ok, [closed]} = py:call(ctx(), chan_workers, try_take_bytes, [B, 1], #{timeout => 5000}).

byte_try_receive_and_timeout(_Config) ->
    {ok, B} = py_byte_channel:new(),
    {error, empty} = py_byte_channel:try_receive(B),
    {error, timeout} = py_byte_channel:recv(B, 50),
    %% the timed-out recv left nothing behind: the next bytes go to the next recv
    Tag = spawn_py(ctx(), process_bytes, [B]),
    ok = py_byte_channel:send(B, <<"q">>),
    {ok, <<"got:q">>} = py_byte_channel:recv(B, ?TIMEOUT),
    ok = py_byte_channel:close(B),
    {ok, 0} = result(Tag).

owner_exit_closes(_Config) ->
    Self = self(),
    {Owner, Mon} = spawn_monitor(fun() ->
                                         {ok, Ch} = py_channel:new(),
                                         Self ! {channel, Ch},
                                         receive stop -> ok end
                                 end),
    Ch = receive {channel, C} -> C after ?TIMEOUT -> ct:fail(no_channel) end,
    Tag = spawn_py(ctx(), receive_or_closed, [Ch, self()]),
    wait_for(waiting),
    Owner ! stop,
    receive {'DOWN', Mon, process, Owner, _} -> ok end,
    {ok, closed} = result(Tag),
    {error, closed} = py_channel:send(Ch, late).

threads_of_one_context_share(_Config) ->
    {ok, Ch} = py_channel:new(),
    Tag = spawn_py(ctx(), threads_share, [Ch, 4]),
    Items = lists:seq(1, 3000),
    [ok = py_channel:send(Ch, I) || I <- Items],
    ok = py_channel:close(Ch),
    {ok, PerThread} = result(Tag),
    4 = length(PerThread),
    Items = lists:sort(lists:append(PerThread)),
    [L = lists:sort(L) || L <- PerThread],
    ok.

%% Receivers in different port programs (a process-mode pool) share a channel.
workers_in_other_port_programs(Config) ->
    {ok, _} = py_context_router:start_pool(?POOL, 3, #{mode => process,
                                                  python_path => [?config(data_dir, Config)]}),
    Contexts = py_context_router:contexts(?POOL),
    3 = length(Contexts),
    {ok, Ch} = py_channel:new(),
    Tags = [spawn_py(C, consume_all, [Ch]) || C <- Contexts],
    Items = lists:seq(1, 3000),
    [ok = py_channel:send(Ch, I) || I <- Items],
    ok = py_channel:close(Ch),
    Results = [R || {ok, R} <- [result(T) || T <- Tags]],
    3 = length(Results),
    Items = lists:sort(lists:append(Results)),
    [L = lists:sort(L) || L <- Results],
    ok.

%% A port program dies holding messages: they go to the next receiver.
port_crash_redelivers(Config) ->
    {ok, _} = py_context_router:start_pool(?POOL, 2, #{mode => process,
                                                  python_path => [?config(data_dir, Config)]}),
    [C1, C2] = py_context_router:contexts(?POOL),
    {ok, Ch} = py_channel:new(),
    Items = lists:seq(1, 100),
    [ok = py_channel:send(Ch, I) || I <- Items],
    {error, _} = py:call(C1, chan_workers, take_one_then_die, [Ch, self()],
                         #{timeout => ?TIMEOUT}),
    ok = py_channel:close(Ch),
    C2b = case is_process_alive(C2) of
              true -> C2;
              false -> hd(py_context_router:contexts(?POOL))
          end,
    {ok, Items} = py:call(C2b, chan_workers, consume_all, [Ch], #{timeout => ?TIMEOUT}),
    #{size := 0} = py_channel:info(Ch).

%% A py:call blocked in receive() whose caller gives up frees its context at
%% once; the message sent later still reaches the next receiver.
receive_cancelled_by_timeout(_Config) ->
    {ok, Ch} = py_channel:new(),
    Ctx = ctx(),
    {error, timeout} = py:call(Ctx, chan_workers, take, [Ch, 1], #{timeout => 200}),
    {ok, 2} = py:eval(Ctx, <<"1 + 1">>, #{}),
    ok = py_channel:send(Ch, late),
    {ok, [late]} = py:call(Ctx, chan_workers, take, [Ch, 1], #{timeout => ?TIMEOUT}),
    #{size := 0} = py_channel:info(Ch),
    ok = py_channel:close(Ch).

%% An async receive whose timeout fires in the loop iteration that brings its
%% message: the message is not lost with the cancelled receive.
async_timeout_keeps_message(_Config) ->
    {ok, Ch} = py_channel:new(),
    Tag = spawn_py(ctx(), timed_out_receive_keeps_message, [Ch, self()]),
    wait_for(waiting),
    ok = py_channel:send(Ch, precious),
    R = result(Tag),
    ct:pal("~p", [R]),
    true = lists:member(R, [{ok, {precious, none}}, {ok, {timeout, precious}}]),
    #{size := 0} = py_channel:info(Ch),
    ok = py_channel:close(Ch).

%% Eight async consumers on one loop share a channel, some receives cancelled
%% by timeouts: every message taken exactly once, in order per consumer.
async_consumers_cancelled_exactly_once(_Config) ->
    {ok, Ch} = py_channel:new(#{max_size => 2000}),
    Tag = spawn_py(ctx(), async_consumers_one_loop, [Ch, 8, 3]),
    Items = lists:seq(1, 5000),
    [ok = send_retry(Ch, I) || I <- Items],
    ok = py_channel:close(Ch),
    {ok, PerConsumer} = result(Tag),
    Items = lists:sort(lists:append(PerConsumer)),
    [L = lists:sort(L) || L <- PerConsumer],
    #{size := 0} = py_channel:info(Ch).

%% A port program whose receiver went away while its want was outstanding
%% gives the messages it then gets back: a receiver in another port program
%% gets them, and the close reaches it.
orphaned_want_gives_messages_back(Config) ->
    {ok, _} = py_context_router:start_pool(?POOL, 2, #{mode => process,
                                                  python_path => [?config(data_dir, Config)]}),
    [C1, C2] = py_context_router:contexts(?POOL),
    {ok, Ch} = py_channel:new(),
    {ok, none} = py:call(C1, chan_workers, orphan_want, [Ch]),
    Tag = spawn_py(C2, consume_all, [Ch]),
    ok = py_channel:send(Ch, one),
    ok = py_channel:send(Ch, two),
    ok = py_channel:close(Ch),
    {ok, [one, two]} = result(Tag),
    #{size := 0} = py_channel:info(Ch),
    %% the channel is over for the first port program too
    {error, {'ChannelClosed', _}} = py:call(C1, chan_workers, take, [Ch, 1],
                                            #{timeout => ?TIMEOUT}).

%% Bytes Python sends after the owner exited are read by nobody: the server
%% does not keep them (and itself) alive once the channel is drained.
byte_channel_server_ends_after_owner_exit(_Config) ->
    Self = self(),
    {Owner, Mon} = spawn_monitor(fun() ->
                                         {ok, B} = py_byte_channel:new(),
                                         ok = py_byte_channel:send(B, <<"a">>),
                                         ok = py_byte_channel:send(B, <<"b">>),
                                         Self ! {channel, B},
                                         receive stop -> ok end
                                 end),
    B = receive {channel, C} -> C after ?TIMEOUT -> ct:fail(no_channel) end,
    {py_byte_channel, _, Server, _, _} = B,
    ServerMon = erlang:monitor(process, Server),
    {ok, Go} = py_channel:new(),
    Tag = spawn_py(ctx(), bytes_after_owner_exit, [B, Go, self()]),
    wait_for({took, <<"a">>}),
    Owner ! stop,
    receive {'DOWN', Mon, process, Owner, _} -> ok end,
    %% the server has seen the owner go (it sets the closed flag then)
    wait_closed(B),
    ok = py_channel:send(Go, go),
    {ok, [<<"a">>, <<"b">>]} = result(Tag),
    receive {'DOWN', ServerMon, process, Server, normal} -> ok
    after ?TIMEOUT -> ct:fail({server_alive, sys:get_state(Server)})
    end,
    ok = py_channel:close(Go).

wait_closed(B) ->
    case py_byte_channel:info(B) of
        #{closed := true} -> ok;
        _ -> erlang:yield(), wait_closed(B)
    end.

%% Every type of the mapping crosses a channel as it crosses a call.
every_type_round_trips(_Config) ->
    Terms = [atom, 'ünï', true, false, undefined, 0, -1, 255, 1 bsl 62, -(1 bsl 63),
             1 bsl 64, 1 bsl 200, -(1 bsl 300), 1.5, -0.0, 1.0e308, <<>>, <<"bin">>,
             <<"ünï"/utf8>>, [], [1, [2, [3]]], "string", {}, {a},
             {1, {2, {3, x}}}, #{}, #{a => 1, <<"k">> => [v], 3 => #{nested => {t}}},
             self(), make_ref(), {self(), make_ref(), [#{k => {1.0, -7}}]},
             lists:seq(1, 1000), list_to_tuple(lists:seq(1, 300))],
    {ok, Ch} = py_channel:new(),
    Tag = spawn_py(ctx(), echo_all, [Ch, self()]),
    [ok = py_channel:send(Ch, T) || T <- Terms],
    ok = py_channel:close(Ch),
    Echoed = [receive {echo, E} -> E after ?TIMEOUT -> ct:fail({no_echo, T}) end || T <- Terms],
    Expected = [begin {ok, V} = py:call(ctx(), chan_workers, identity, [T]), V end || T <- Terms],
    Expected = Echoed,
    N = length(Terms),
    {ok, N} = result(Tag),
    #{size := 0} = py_channel:info(Ch).

%% Messages of several MB, together over the 8 MiB a frame carries, and one
%% of 40 MB; bytes both ways.
large_messages(_Config) ->
    {ok, Ch} = py_channel:new(),
    Bins = [binary:copy(<<I>>, 3 * 1024 * 1024 + I) || I <- lists:seq($a, $e)]
        ++ [binary:copy(<<"z">>, 40 * 1024 * 1024)],
    [ok = py_channel:send(Ch, B) || B <- Bins],
    ok = py_channel:close(Ch),
    Expected = [{byte_size(B), erlang:crc32(B)} || B <- Bins],
    {ok, Expected} = py:call(ctx(), chan_workers, sizes, [Ch], #{timeout => 120000}),
    #{size := 0} = py_channel:info(Ch),
    {ok, B} = py_byte_channel:new(#{max_size => 64 * 1024 * 1024}),
    Big = crypto:strong_rand_bytes(12 * 1024 * 1024),
    Tag = spawn_py(ctx(), byte_echo_big, [B]),
    ok = py_byte_channel:send(B, Big),
    ok = py_byte_channel:send(B, Big),
    Rev = reverse_bytes(Big),
    {ok, Rev} = py_byte_channel:recv(B, 120000),
    {ok, Rev} = py_byte_channel:recv(B, 120000),
    ok = py_byte_channel:close(B),
    {ok, 2} = result(Tag).

%% The bytes of Bin in reverse order, through one integer: a list of 12 MiB
%% (binary_to_list, lists:reverse) took 5-25 s of the case.
reverse_bytes(<<>>) ->
    <<>>;
reverse_bytes(Bin) ->
    Rev = binary:encode_unsigned(binary:decode_unsigned(Bin, little), big),
    <<0:((byte_size(Bin) - byte_size(Rev)) * 8), Rev/binary>>.

%% A message nested deeper than Python can decode (10,000 levels) is one
%% message all the same: its receive() raises ValueError and the messages
%% around it arrive, in order, and are acknowledged (the queue ends empty).
too_deep_message_raises(_Config) ->
    Nest = fun Nest(0) -> []; Nest(N) -> [Nest(N - 1)] end,
    {ok, Ch} = py_channel:new(#{max_size => 1000000}),
    ok = py_channel:send(Ch, before),
    ok = py_channel:send(Ch, Nest(10001)),
    ok = py_channel:send(Ch, Nest(3)),
    ok = py_channel:close(Ch),
    {ok, [{<<"ok">>, before},
          {<<"ValueError">>, <<"term nesting exceeds 10000 levels">>},
          {<<"ok">>, [[[[]]]]}]} = py:call(ctx(), chan_workers, outcomes, [Ch]),
    #{size := 0} = py_channel:info(Ch),
    ok.

%% A port program started with a max_frame of 1 MiB, channels made with one
%% of 1.9 MB: a 1.5 MB message (which the channel accepts) is one message whose
%% receive() raises ValueError there (Channel and ByteChannel; its bytes are
%% released), and 3 MiB of small messages arrive in batches that fit (half the
%% channel's max_frame each).
message_over_max_frame_raises(Config) ->
    ok = application:set_env(?APP, max_frame, 1 bsl 20),
    try
        {ok, [Ctx]} = py_context_router:start_pool(?POOL, 1, #{mode => process,
                                                          python_path => [?config(data_dir, Config)]}),
        ok = application:set_env(?APP, max_frame, 1900000),
        {ok, Ch} = py_channel:new(#{max_size => 8000000}),
        {ok, BCh} = py_byte_channel:new(#{max_size => 8000000}),
        Small = binary:copy(<<"s">>, 1024),
        [begin
             ok = Send(C, <<"first">>),
             ok = Send(C, binary:copy(<<"x">>, 1500000)),
             [ok = Send(C, Small) || _ <- lists:seq(1, 3000)],
             ok = Close(C)
         end || {C, Send, Close} <- [{Ch, fun py_channel:send/2, fun py_channel:close/1},
                                     {BCh, fun py_byte_channel:send/2, fun py_byte_channel:close/1}]],
        {ok, [{<<"ok">>, <<"first">>}, {<<"ValueError">>, Why} | Rest]} =
            py:call(Ctx, chan_workers, outcomes, [Ch]),
        true = binary:match(Why, <<"channel message does not fit">>) =/= nomatch,
        3000 = length([ok || {<<"ok">>, S} <- Rest, S =:= Small]),
        3000 = length(Rest),
        {ok, [{<<"ok">>, <<"first">>}, {<<"ValueError">>, _} | BRest]} =
            py:call(Ctx, chan_workers, byte_outcomes, [BCh]),
        3000 = length([ok || {<<"ok">>, S} <- BRest, S =:= Small]),
        3000 = length(BRest),
        #{size := 0} = py_channel:info(Ch),
        #{size := 0} = py_byte_channel:info(BCh)
    after
        application:unset_env(?APP, max_frame)
    end.

%% A send refuses a message that cannot fit a frame of the max_frame the
%% channel was made with (lowered: 1 MiB, or raised: 128 MiB, where 65 MiB
%% fits), whatever the default.
message_over_own_max_frame_refused(_Config) ->
    Fits = 1 bsl 20 - 16,
    ok = application:set_env(?APP, max_frame, 1 bsl 20),
    try
        {ok, Ch} = py_channel:new(#{}),
        {ok, BCh} = py_byte_channel:new(#{}),
        %% a term channel counts the encoded message, a byte channel its data
        {error, {too_large, 2000005}} = py_channel:send(Ch, binary:copy(<<"x">>, 2000000)),
        {error, {too_large, 2000000}} = py_byte_channel:send(BCh, binary:copy(<<"x">>, 2000000)),
        {error, {too_large, _}} = py_byte_channel:send(BCh, binary:copy(<<"x">>, Fits + 1)),
        ok = py_byte_channel:send(BCh, binary:copy(<<"x">>, Fits)),
        #{size := Fits} = py_byte_channel:info(BCh),
        ok = application:set_env(?APP, max_frame, 128 bsl 20),
        {ok, Big} = py_byte_channel:new(#{}),
        ok = py_byte_channel:send(Big, binary:copy(<<"x">>, 65 bsl 20)),
        [begin ok = Close(C), exit(element(3, C), kill) end
         || {C, Close} <- [{Ch, fun py_channel:close/1}, {BCh, fun py_byte_channel:close/1},
                           {Big, fun py_byte_channel:close/1}]],
        ok
    after
        application:unset_env(?APP, max_frame)
    end.

%% A channel server killed: senders get {error, closed}, receivers waiting in
%% several port programs get ChannelClosed, a byte reader gets closed.
killed_server_closes(Config) ->
    {ok, _} = py_context_router:start_pool(?POOL, 2, #{mode => process,
                                                  python_path => [?config(data_dir, Config)]}),
    [C1, C2] = py_context_router:contexts(?POOL),
    {ok, Ch} = py_channel:new(),
    %% both port programs have talked to the server (a want each)
    ok = py_channel:send(Ch, 1),
    ok = py_channel:send(Ch, 2),
    {ok, [1]} = py:call(C1, chan_workers, take, [Ch, 1]),
    {ok, [2]} = py:call(C2, chan_workers, take, [Ch, 1]),
    Tags = [spawn_py(C, receive_or_closed, [Ch, self()]) || C <- [C1, C2, ctx()]],
    [wait_for(waiting) || _ <- Tags],
    {py_channel, _, Server, _, _} = Ch,
    exit(Server, kill),
    [{ok, closed} = result(T) || T <- Tags],
    {error, closed} = py_channel:send(Ch, late),
    #{closed := true} = py_channel:info(Ch),
    {ok, B} = py_byte_channel:new(),
    {py_byte_channel, _, BServer, _, _} = B,
    Self = self(),
    Reader = spawn_link(fun() -> Self ! {read, py_byte_channel:recv(B, ?TIMEOUT)} end),
    wait_reader(BServer, Reader),
    exit(BServer, kill),
    receive {read, {error, closed}} -> ok after ?TIMEOUT -> ct:fail(reader_stuck) end,
    {error, closed} = py_byte_channel:send(B, <<"x">>),
    {error, closed} = py_byte_channel:try_receive(B).

%% The reader's request is queued at the server.
wait_reader(Server, Reader) ->
    case {erlang:process_info(Reader, status), erlang:process_info(Server, message_queue_len)} of
        {{status, waiting}, {message_queue_len, 0}} -> ok;
        _ -> erlang:yield(), wait_reader(Server, Reader)
    end.

%% A sender that got Python's reply (erlang.send) to a message sees the
%% message's space free, even while Python's call goes on.
space_visible_with_reply(_Config) ->
    {ok, Ch} = py_channel:new(#{max_size => 100000}),
    {ok, Go} = py_channel:new(),
    Tag = spawn_py(ctx(), reply_then_wait, [Ch, Go]),
    ok = py_channel:send(Ch, {request, self(), <<"x">>}),
    receive {response, <<"x">>} -> ok after ?TIMEOUT -> ct:fail(no_response) end,
    #{size := 0} = py_channel:info(Ch),
    ok = py_channel:send(Go, go),
    {ok, true} = result(Tag),
    ok = py_channel:close(Ch),
    ok = py_channel:close(Go).

%% A sender that read the closed flag just before close/1 sends after the
%% channel was closed and drained: the server is still there and the message
%% reaches the next receiver (emulated by sending what send/2 would).
send_racing_close_is_delivered(_Config) ->
    {ok, Ch} = py_channel:new(),
    ok = py_channel:close(Ch),
    {ok, closed} = py:call(ctx(), chan_workers, receive_or_closed, [Ch, self()]),
    wait_for(waiting),
    {py_channel, _, Server, Counters, _} = Ch,
    Item = py_msgpack:encode(late),
    atomics:add(Counters, 1, iolist_size(Item)),
    Server ! {'$py_msg', Item, iolist_size(Item)},
    {ok, [late]} = py:call(ctx(), chan_workers, consume_all, [Ch], #{timeout => ?TIMEOUT}),
    #{size := 0, closed := true} = py_channel:info(Ch),
    Mon = erlang:monitor(process, Server),
    receive {'DOWN', Mon, process, Server, normal} -> ok
    after ?TIMEOUT -> ct:fail(server_lingers)
    end.

%%====================================================================
%% Load
%%====================================================================

%% 8 senders, 3 Python consumers, a small max_size: every message delivered
%% once, the size never negative, back to 0 at the end.
concurrent_senders_exact_accounting(_Config) ->
    {ok, Ch} = py_channel:new(#{max_size => 4096}),
    %% two consumers in one port program, one in another
    [Io1, Io2 | _] = py_context_router:contexts(io),
    Consumers = [spawn_py(C, consume_all, [Ch]) || C <- [Io1, Io2, py:context(1)]],
    Self = self(),
    Senders = [spawn_link(fun() ->
                                  [ok = send_retry(Ch, {S, I}) || I <- lists:seq(1, 1000)],
                                  Self ! {sent, S}
                          end) || S <- lists:seq(1, 8)],
    Sampler = spawn_link(fun() -> sample(Ch, 0) end),
    [wait_for({sent, S}) || S <- lists:seq(1, 8)],
    ok = py_channel:close(Ch),
    Results0 = [result(T) || T <- Consumers],
    ct:pal("~p", [[R || R <- Results0, element(1, R) =/= ok]]),
    Results = [R || {ok, R} <- Results0],
    3 = length(Results),
    Sampler ! {stop, self()},
    Min = receive {min, M} -> M after ?TIMEOUT -> ct:fail(no_sampler) end,
    true = Min >= 0,
    #{size := 0} = py_channel:info(Ch),
    All = lists:append(Results),
    8000 = length(All),
    8000 = length(lists:usort(All)),
    %% send order kept per sender within each consumer
    [begin
         PerSender = [I || {S2, I} <- L, S2 =:= S],
         PerSender = lists:sort(PerSender)
     end || L <- Results, S <- lists:seq(1, 8)],
    length(Senders).

send_retry(Ch, Msg) ->
    case py_channel:send(Ch, Msg) of
        busy ->
            %% documented backoff: the queue is full until Python takes some
            receive after 1 -> ok end,
            send_retry(Ch, Msg);
        Other -> Other
    end.

sample(Ch, Min) ->
    receive
        {stop, From} -> From ! {min, Min}
    after 0 ->
        #{size := S} = py_channel:info(Ch),
        erlang:yield(),
        sample(Ch, min(Min, S))
    end.

million_messages(_Config) ->
    {ok, Ch} = py_channel:new(),
    Tag = spawn_py(ctx(), count_in_order, [Ch]),
    N = 1000000,
    send_seq(Ch, 1, N),
    ok = py_channel:close(Ch),
    {ok, N} = result(Tag),
    #{size := 0} = py_channel:info(Ch).

send_seq(_Ch, I, N) when I > N -> ok;
send_seq(Ch, I, N) ->
    ok = py_channel:send(Ch, I),
    send_seq(Ch, I + 1, N).
