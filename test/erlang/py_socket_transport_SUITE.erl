%% ErlangEventLoop's socket transport (TCP and unix stream sockets): the
%% standard library's _SelectorSocketTransport with its per-read and per-write
%% methods native (core/socket_transport.cpp). Each scenario of
%% py_socket_transport_SUITE_data/transport_checks.py runs on ErlangEventLoop
%% and on asyncio's selector loop: the two traces (protocol events, data,
%% exceptions and the messages the exception handler got) must be equal.
-module(py_socket_transport_SUITE).

-include_lib("common_test/include/ct.hrl").

-export([all/0, init_per_suite/1, end_per_suite/1]).
-export([native_transports_are_used/1, write_errors_as_stdlib/1, flow_control_as_stdlib/1,
         reading_as_stdlib/1, failures_as_stdlib/1, buffered_protocol_as_stdlib/1,
         io_polled_while_busy/1]).

all() ->
    [native_transports_are_used, write_errors_as_stdlib, flow_control_as_stdlib,
     reading_as_stdlib, failures_as_stdlib, buffered_protocol_as_stdlib, io_polled_while_busy].

init_per_suite(Config) ->
    py_test_util:start_app([?config(data_dir, Config)]) ++ [{ctx, py:context(1)} | Config].

end_per_suite(Config) ->
    py_test_util:stop_app(Config).

check(Config, Fun) ->
    {ok, Result} = py:call(?config(ctx, Config), transport_checks, Fun, [], #{timeout => 60000}),
    Result.

%% Both loops' traces; they must be equal.
same(Config, Fun) ->
    [Erlang, Stdlib] = check(Config, Fun),
    ct:log("~p:~nerlang ~p~nstdlib ~p", [Fun, Erlang, Stdlib]),
    Stdlib = Erlang.

native_transports_are_used(Config) ->
    %% Bound native methods (METH_METHOD), not Python ones.
    [<<"ErlangSocketTransport">>, <<"builtin_method">>, <<"builtin_method">>,
     <<"ErlangSocketTransport">>] =
        check(Config, transport_types).

write_errors_as_stdlib(Config) ->
    [Out, []] = same(Config, write_errors),
    [{<<"TypeError">>, <<"data argument must be a bytes-like object, not 'str'">>},
     {<<"TypeError">>, <<"data argument must be a bytes-like object, not 'int'">>},
     {<<"TypeError">>, <<"data argument must be a bytes-like object, not 'NoneType'">>},
     <<"abcd">>,
     {<<"RuntimeError">>, <<"unable to write; sendfile is in progress">>},
     {<<"RuntimeError">>, <<"Cannot call write() after write_eof()">>},
     true, <<>>, [<<"made">>, <<"eof">>, {<<"lost">>, none, none}]] = Out.

flow_control_as_stdlib(Config) ->
    [[true, [<<"made">>, <<"pause_writing">>], true, 0,
      [<<"made">>, <<"pause_writing">>, <<"resume_writing">>]], []] =
        same(Config, flow_control).

reading_as_stdlib(Config) ->
    Digits = binary:copy(<<"0123456789">>, 10),
    [[true, false, <<>>, Digits, true, <<"after eof">>,
      [<<"made">>, <<"eof">>, {<<"lost">>, none, none}]], []] =
        same(Config, reading).

failures_as_stdlib(Config) ->
    [[[<<"made">>, {<<"lost">>, <<"ValueError">>, <<"data_received failed">>}],
      [<<"made">>, {<<"lost">>, <<"ConnectionResetError">>, _}],
      {<<"lost">>, <<"ConnectionResetError">>}],
     [<<"Fatal error: protocol.data_received() call failed.">>]] =
        same(Config, failures).

buffered_protocol_as_stdlib(Config) ->
    [[true, true, none, {<<"RuntimeError">>, <<"get_buffer() returned an empty buffer">>}],
     [<<"Fatal error: protocol.get_buffer() call failed.">>]] =
        same(Config, buffered).

%% run_once skips a zero-timeout wait right after a wait (one epoll_wait less
%% per task woken by I/O); a loop busy with callbacks still sees I/O within
%% two iterations, and stop() before run_forever() still polls once.
io_polled_while_busy(Config) ->
    [true, true, [<<"y">>]] = check(Config, io_polled_while_busy).
