%% The rest of the Python `erlang' module (threading.md, channel.md,
%% type-conversion.md): whereis, Function, ProcessError, reply at the top
%% level, erlang.byte_channel, receive(timeout_ms), send_bytes returning True,
%% max_size => 0, and the module's names: every documented one is real, a
%% misspelt one is an AttributeError / ImportError.
-module(py_module_SUITE).

-include_lib("common_test/include/ct.hrl").

-export([all/0, init_per_suite/1, end_per_suite/1]).
-export([documented_names_exist/1, misspelt_names_fail/1, registered_functions_as_attributes/1,
         whereis/1, function_object/1, send_to_dead_pid_raises/1, reply_top_level/1,
         byte_channel_module/1, receive_with_timeout/1, byte_receive_with_timeout/1,
         send_bytes_returns_true/1, max_size_zero_is_unbounded/1]).

all() ->
    [documented_names_exist, misspelt_names_fail, registered_functions_as_attributes,
     whereis, function_object, send_to_dead_pid_raises, reply_top_level, byte_channel_module,
     receive_with_timeout, byte_receive_with_timeout, send_bytes_returns_true,
     max_size_zero_is_unbounded].

init_per_suite(Config) ->
    py_test_util:start_app([]) ++ Config.

end_per_suite(Config) ->
    py_test_util:stop_app(Config),
    Config.

documented_names_exist(_Config) ->
    Names = [<<"Atom">>, <<"Pid">>, <<"Ref">>, <<"OpaqueTerm">>, <<"call">>, <<"async_call">>,
             <<"send">>, <<"reply">>, <<"whereis">>, <<"Function">>, <<"ProcessError">>,
             <<"Channel">>, <<"ChannelClosed">>, <<"ByteChannel">>, <<"ByteChannelClosed">>,
             <<"state_get">>, <<"state_set">>, <<"state_delete">>, <<"state_keys">>,
             <<"state_clear">>, <<"state_incr">>, <<"state_decr">>, <<"SharedDict">>,
             <<"ErlangHandler">>, <<"setup_logging">>, <<"Span">>, <<"trace">>,
             <<"channel">>, <<"byte_channel">>],
    {ok, []} = py:eval(<<"[n for n in names if not hasattr(erlang, n)]">>, #{names => Names}),
    ok = py:exec(<<"
from erlang import state_set, state_get, state_incr, state_decr, state_delete, state_keys
from erlang import SharedDict, ErlangHandler, setup_logging, Span, trace, whereis
from erlang import Function, ProcessError, reply, ByteChannel, ByteChannelClosed
from erlang.channel import Channel, ChannelClosed, reply
from erlang.byte_channel import ByteChannel
from erlang import *
">>),
    ok.

misspelt_names_fail(_Config) ->
    {error, {'ImportError', _}} = py:exec(<<"from erlang import state_gett">>),
    {error, {'AttributeError', _}} = py:eval(<<"erlang.SharedDcit">>),
    {error, {'AttributeError', _}} = py:eval(<<"erlang._private_thing">>),
    {ok, false} = py:eval(<<"hasattr(erlang, 'no_such_function')">>),
    ok.

registered_functions_as_attributes(_Config) ->
    ok = py:register_function(mod_double, fun([X]) -> 2 * X end),
    {ok, 42} = py:eval(<<"erlang.mod_double(21)">>),
    ok = py:exec(<<"from erlang import mod_double as dbl">>),
    {ok, 8} = py:eval(<<"dbl(4)">>),
    ok = py:unregister_function(mod_double),
    {error, {'AttributeError', _}} = py:eval(<<"erlang.mod_double">>),
    ok.

whereis(_Config) ->
    Pid = erlang:whereis(py_stream),
    {ok, Pid} = py:eval(<<"erlang.whereis('py_stream')">>),
    {ok, none} = py:eval(<<"erlang.whereis('no_such_registered_name_xyz')">>),
    true = register(py_module_test_proc, self()),
    {ok, none} = py:eval(<<"erlang.send(erlang.whereis('py_module_test_proc'), 'hi')">>),
    receive <<"hi">> -> ok after 5000 -> ct:fail(no_message) end,
    unregister(py_module_test_proc),
    {error, {'TypeError', _}} = py:eval(<<"erlang.whereis(1)">>),
    ok.

function_object(_Config) ->
    ok = py:register_function(double_it, fun([X]) -> X * 2 end),
    {ok, 42} = py:eval(<<"erlang.Function('double_it')(21)">>),
    {ok, [0, 2, 4]} = py:eval(<<"list(map(erlang.Function('double_it'), range(3)))">>),
    {ok, true} = py:eval(<<"erlang.Function('a') == erlang.Function('a')">>),
    {error, {'RuntimeError', _}} = py:eval(<<"erlang.Function('not_registered_fn')()">>),
    {error, {'TypeError', _}} = py:eval(<<"erlang.Function(3)">>),
    ok.

%% type-conversion.md: "Sending to a process that has already exited raises
%% erlang.ProcessError."
send_to_dead_pid_raises(_Config) ->
    Dead = spawn(fun() -> ok end),
    Mon = monitor(process, Dead),
    receive {'DOWN', Mon, _, _, _} -> ok end,
    {error, {'ProcessError', _}} = py:eval(<<"erlang.send(p, 1)">>, #{p => Dead}),
    {ok, <<"caught">>} = py:eval(<<"
try:
    erlang.send(p, 1)
    r = 'sent'
except erlang.ProcessError:
    r = 'caught'
r">>, #{p => Dead}),
    {ok, none} = py:eval(<<"erlang.send(p, 1)">>, #{p => self()}),
    receive 1 -> ok after 5000 -> ct:fail(no_message) end,
    ok.

reply_top_level(_Config) ->
    {ok, none} = py:eval(<<"erlang.reply(p, (erlang.Atom('response'), 'x'))">>, #{p => self()}),
    receive {response, <<"x">>} -> ok after 5000 -> ct:fail(no_message) end,
    {ok, none} = py:eval(<<"__import__('erlang.channel').channel.reply(p, 2)">>, #{p => self()}),
    receive 2 -> ok after 5000 -> ct:fail(no_message) end,
    ok.

byte_channel_module(_Config) ->
    {ok, Ch} = py_byte_channel:new(),
    ok = py_byte_channel:send(Ch, <<"abc">>),
    {ok, <<"abc">>} = py:eval(<<"__import__('erlang.byte_channel').byte_channel.ByteChannel(h).receive_bytes()">>,
                              #{h => Ch}),
    ok = py_byte_channel:close(Ch).

receive_with_timeout(_Config) ->
    {ok, Ch} = py_channel:new(),
    Ctx = py:context(1),
    %% nothing comes: TimeoutError after about the time given
    T0 = erlang:monotonic_time(millisecond),
    {error, {'TimeoutError', _}} = py:eval(Ctx, <<"erlang.Channel(h).receive(100)">>, #{h => Ch}),
    true = erlang:monotonic_time(millisecond) - T0 >= 100,
    {error, {'TimeoutError', _}} = py:eval(Ctx, <<"erlang.Channel(h).receive(0)">>, #{h => Ch}),
    %% a message already there, and one that comes while waiting
    ok = py_channel:send(Ch, first),
    {ok, first} = py:eval(Ctx, <<"erlang.Channel(h).receive(5000)">>, #{h => Ch}),
    Self = self(),
    spawn_link(fun() ->
                       Self ! {result, py:eval(Ctx, <<"erlang.Channel(h).receive(20000)">>,
                                               #{h => Ch})}
               end),
    py_test_util:wait_until(fun() -> busy(Ctx) end, 5000),
    ok = py_channel:send(Ch, second),
    receive {result, {ok, second}} -> ok after 10000 -> ct:fail(no_result) end,
    %% closed
    ok = py_channel:close(Ch),
    {error, {'ChannelClosed', _}} = py:eval(Ctx, <<"erlang.Channel(h).receive(1000)">>, #{h => Ch}),
    {error, {'ValueError', _}} = py:eval(Ctx, <<"erlang.Channel(h).receive(-1)">>, #{h => Ch}),
    ok.

byte_receive_with_timeout(_Config) ->
    {ok, Ch} = py_byte_channel:new(),
    {error, {'TimeoutError', _}} = py:eval(<<"erlang.ByteChannel(h).receive_bytes(50)">>, #{h => Ch}),
    ok = py_byte_channel:send(Ch, <<"x">>),
    {ok, <<"x">>} = py:eval(<<"erlang.ByteChannel(h).receive_bytes(5000)">>, #{h => Ch}),
    ok.

send_bytes_returns_true(_Config) ->
    {ok, Ch} = py_byte_channel:new(),
    {ok, true} = py:eval(<<"erlang.ByteChannel(h).send_bytes(b'response data')">>, #{h => Ch}),
    {ok, <<"response data">>} = py_byte_channel:recv(Ch, 5000),
    ok.

max_size_zero_is_unbounded(_Config) ->
    {ok, Ch} = py_channel:new(#{max_size => 0}),
    #{max_size := infinity} = py_channel:info(Ch),
    [ok = py_channel:send(Ch, binary:copy(<<"x">>, 100000)) || _ <- lists:seq(1, 20)],
    {ok, B} = py_byte_channel:new(#{max_size => 0}),
    #{max_size := infinity} = py_byte_channel:info(B),
    {error, {bad_option, {max_size, -1}}} = py_channel:new(#{max_size => -1}),
    ok.

%% The context is running a request (its in-flight counter is up).
busy(Ctx) ->
    case ets:lookup(py_contexts, Ctx) of
        [{_, _, _, _, {Counters, Slot}}] -> atomics:get(Counters, Slot) > 0;
        _ -> false
    end.
