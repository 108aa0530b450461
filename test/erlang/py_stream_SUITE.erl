%% Streaming generators: py:stream/3,4, py:stream_eval/1,2 (batch) and
%% py:stream_start/3,4 with py:stream_cancel/1 (events), every example of the
%% reference's streaming.md, and the failure cases. Python side:
%% stream_mod.py in the data directory.
-module(py_stream_SUITE).

-include_lib("common_test/include/ct.hrl").

-export([all/0, init_per_suite/1, end_per_suite/1]).
-export([stream_eval_examples/1, stream_eval_with_locals/1, stream_generator_function/1,
         stream_module_function/1, stream_batches/1, stream_errors/1,
         start_iter_example/1, start_owner_option/1, start_async_generator/1,
         start_error_event/1, start_unconvertible_value/1, start_bad_input/1,
         cancel_stops_generator/1, cancel_async_generator/1,
         owner_death_stops_generator/1, port_death_is_an_error_event/1,
         plain_call_of_generator_names_stream_functions/1, llm_tokens_example/1,
         many_values_in_order/1]).

-define(TIMEOUT, 10000).

all() ->
    [stream_eval_examples, stream_eval_with_locals, stream_generator_function,
     stream_module_function, stream_batches, stream_errors,
     start_iter_example, start_owner_option, start_async_generator,
     start_error_event, start_unconvertible_value, start_bad_input,
     cancel_stops_generator, cancel_async_generator, owner_death_stops_generator,
     port_death_is_an_error_event, plain_call_of_generator_names_stream_functions,
     llm_tokens_example, many_values_in_order].

init_per_suite(Config) ->
    py_test_util:start_app([?config(data_dir, Config)]) ++ Config.

end_per_suite(Config) ->
    py_test_util:stop_app(Config),
    Config.

%% streaming.md, "Generator Expressions" and "Iterator Objects"; getting-started.md
stream_eval_examples(_Config) ->
    {ok, [0, 1, 4, 9, 16, 25, 36, 49, 64, 81]} = py:stream_eval(<<"(x**2 for x in range(10))">>),
    {ok, [<<"H">>, <<"E">>, <<"L">>, <<"L">>, <<"O">>]} =
        py:stream_eval(<<"(c.upper() for c in 'hello')">>),
    {ok, [0, 2, 4, 6, 8, 10, 12, 14, 16, 18]} =
        py:stream_eval(<<"(x for x in range(20) if x % 2 == 0)">>),
    {ok, [0, 1, 2, 3, 4]} = py:stream_eval(<<"iter(range(5))">>),
    {ok, [{<<"a">>, 1}, {<<"b">>, 2}]} = py:stream_eval(<<"iter({'a': 1, 'b': 2}.items())">>),
    {ok, [0, 1, 1, 2, 3, 5, 8, 13, 21, 34]} = py:stream_eval(
        <<"(lambda: ((fib := [0, 1]), [fib.append(fib[-1] + fib[-2]) for _ in range(8)], iter(fib))[-1])()">>),
    {ok, [0, 1, 4, 9, 16]} = py:stream_eval(<<"(x**2 for x in range(5))">>),
    %% memory.md: a long generator collected in one go
    {ok, L} = py:stream_eval(<<"(x for x in range(100000))">>),
    100000 = length(L),
    %% statements before the expression, an iolist
    {ok, [3, 4]} = py:stream_eval([<<"import itertools\n">>, <<"itertools.islice(itertools.count(3), 2)">>]),
    ok.

stream_eval_with_locals(_Config) ->
    {ok, [2, 4, 6]} = py:stream_eval(<<"(x * k for x in xs)">>, #{xs => [1, 2, 3], k => 2}),
    ok.

%% streaming.md, "Generator Functions": defined with exec, streamed from __main__
stream_generator_function(_Config) ->
    ok = py:exec(<<"
def fibonacci(n):
    a, b = 0, 1
    for _ in range(n):
        yield a
        a, b = b, a + b
">>),
    {ok, [0, 1, 1, 2, 3, 5, 8, 13, 21, 34]} = py:stream('__main__', fibonacci, [10]),
    %% "Batch Processing"
    ok = py:exec(<<"
def batches(data, size):
    for i in range(0, len(data), size):
        yield data[i:i+size]
">>),
    {ok, [[1, 2], [3, 4], [5]]} = py:stream('__main__', batches, [[1, 2, 3, 4, 5], 2]),
    ok.

%% getting-started.md and "Data Processing Pipelines"
stream_module_function(Config) ->
    {ok, [arg1, arg2]} = py:stream(stream_mod, generate_data, [arg1, arg2]),
    File = filename:join(?config(priv_dir, Config), "data.txt"),
    ok = file:write_file(File, <<"one\ntwo\nthree\n">>),
    {ok, Lines} = py:stream(stream_mod, read_lines, [list_to_binary(File)]),
    [<<"one">>, <<"two">>, <<"three">>] = Lines,
    %% kwargs, and an async generator collected too
    {ok, [0, 1, 2]} = py:stream(stream_mod, count, [], #{n => 3}),
    {ok, [0, 1, 2]} = py:stream(stream_mod, async_gen, [3]),
    ok.

stream_batches(_Config) ->
    {ok, [0, 1, 2]} = py:stream(stream_mod, gen_returner, []),
    {ok, [<<"a">>, <<"b">>]} = py:stream(builtins, iter, [[<<"a">>, <<"b">>]]),
    ok.

stream_errors(_Config) ->
    {error, {'ValueError', <<"boom after 2">>}} = py:stream(stream_mod, fails_after, [2]),
    {error, {'TypeError', Msg}} = py:stream(stream_mod, not_iterable, []),
    {match, _} = re:run(Msg, <<"int">>),
    {error, {'NameError', _}} = py:stream('__main__', no_such_generator, []),
    {error, {'ModuleNotFoundError', _}} = py:stream(no_such_module, f, []),
    {error, {badarg, _}} = py:stream(stream_mod, count, not_a_list),
    {error, {badarg, _}} = py:stream_eval(<<"x">>, not_a_map),
    {error, {badarg, _}} = py:stream_eval(123),
    {error, {'NameError', _}} = py:stream_eval(<<"(x for x in undefined_name)">>),
    ok.

%% streaming.md, "True Streaming"
start_iter_example(_Config) ->
    {ok, Ref} = py:stream_start(builtins, iter, [[1, 2, 3, 4, 5]]),
    {[1, 2, 3, 4, 5], done} = receive_loop(Ref),
    ok.

start_owner_option(_Config) ->
    Self = self(),
    Other = spawn_link(fun() ->
                               receive {go, Ref} -> Self ! {other_got, receive_loop(Ref)} end
                       end),
    {ok, Ref} = py:stream_start(stream_mod, count, [4], #{owner => Other}),
    Other ! {go, Ref},
    receive {other_got, {[0, 1, 2, 3], done}} -> ok after ?TIMEOUT -> ct:fail(no_events) end,
    {messages, []} = process_info(self(), messages),
    %% kwargs
    {ok, Ref2} = py:stream_start(stream_mod, count, [], #{kwargs => #{n => 2}}),
    {[0, 1], done} = receive_loop(Ref2),
    ok.

%% streaming.md, "Async Generators"
start_async_generator(_Config) ->
    {ok, Ref} = py:stream_start(stream_mod, async_gen, [5]),
    {[0, 1, 2, 3, 4], done} = receive_loop(Ref),
    ok.

start_error_event(_Config) ->
    {ok, Ref} = py:stream_start(stream_mod, fails_after, [3]),
    {[0, 1, 2], {error, {'ValueError', <<"boom after 3">>}}} = receive_loop(Ref),
    ok.

start_unconvertible_value(_Config) ->
    {ok, Ref} = py:stream_start(stream_mod, unconvertible, []),
    {[1], {error, {'TypeError', _}}} = receive_loop(Ref),
    ok.

start_bad_input(_Config) ->
    {error, {'AttributeError', _}} = py:stream_start(stream_mod, no_such_function, []),
    {error, {'TypeError', _}} = py:stream_start(stream_mod, not_iterable, []),
    {error, {badarg, _}} = py:stream_start(stream_mod, count, [1], #{owner => not_a_pid}),
    {error, {badarg, _}} = py:stream_start(stream_mod, count, [1], not_a_map),
    {error, {badarg, _}} = py:stream_cancel(not_a_ref),
    0 = ets:info(py_streams, size),
    ok.

%% streaming.md, "Cancellation": the generator is closed (its finally runs)
cancel_stops_generator(_Config) ->
    {ok, Ref} = py:stream_start(stream_mod, endless, [self()]),
    receive {py_stream, Ref, {data, 0}} -> ok after ?TIMEOUT -> ct:fail(no_data) end,
    ok = py:stream_cancel(Ref),
    receive {generator_closed, _} -> ok after ?TIMEOUT -> ct:fail(generator_not_closed) end,
    flush_stream(Ref),
    ok = py:stream_cancel(Ref),  % again: still ok
    ok.

cancel_async_generator(_Config) ->
    {ok, Ref} = py:stream_start(stream_mod, async_endless, [self()]),
    receive {py_stream, Ref, {data, 0}} -> ok after ?TIMEOUT -> ct:fail(no_data) end,
    ok = py:stream_cancel(Ref),
    receive {generator_closed, _} -> ok after ?TIMEOUT -> ct:fail(generator_not_closed) end,
    ok.

%% The owner dies once the generator has started: closing a generator that
%% never ran does not run its `finally' (Python's rule), so killing the owner
%% before the first item would leave nothing to observe.
owner_death_stops_generator(_Config) ->
    Self = self(),
    Owner = spawn(fun() ->
                          receive {py_stream, _, {data, 0}} -> Self ! {started, self()} end,
                          receive stop -> ok end
                  end),
    {ok, _Ref} = py:stream_start(stream_mod, endless, [Self], #{owner => Owner}),
    receive {started, Owner} -> ok after ?TIMEOUT -> ct:fail(no_data) end,
    exit(Owner, kill),
    receive {generator_closed, _} -> ok after ?TIMEOUT -> ct:fail(generator_not_closed) end,
    ok.

%% The port program dying mid-stream is an error event, nothing hangs.
port_death_is_an_error_event(_Config) ->
    Ctx = py:context(1),
    {ok, Ref} = py:stream_start(stream_mod, endless, [self()], #{context => Ctx}),
    receive {py_stream, Ref, {data, 0}} -> ok after ?TIMEOUT -> ct:fail(no_data) end,
    {error, {python_died, _}} = py:call(Ctx, os, '_exit', [3]),
    wait_error(Ref),
    ok.

plain_call_of_generator_names_stream_functions(_Config) ->
    {error, {'TypeError', Msg}} = py:call(stream_mod, count, [3]),
    {match, _} = re:run(Msg, <<"py:stream_start/3,4">>),
    {error, {'TypeError', Msg2}} = py:call(stream_mod, async_gen, [3]),
    {match, _} = re:run(Msg2, <<"py:stream">>),
    ok.

%% streaming.md, "LLM Token Streaming" (a websocket stands in as a process)
llm_tokens_example(_Config) ->
    Self = self(),
    WS = spawn_link(fun() -> ws_loop(Self, []) end),
    {ok, Ref} = py:stream_start(stream_mod, tokens, [<<"hello streaming world">>]),
    stream_to_client(Ref, WS),
    receive {ws, [<<"hello">>, <<"streaming">>, <<"world">>, <<"[DONE]">>]} -> ok
    after ?TIMEOUT -> ct:fail(no_ws)
    end.

many_values_in_order(_Config) ->
    N = 100000,
    {ok, Ref} = py:stream_start(builtins, range, [N]),
    {Values, done} = receive_loop(Ref),
    Values = lists:seq(0, N - 1),
    ok.

%% helpers

receive_loop(Ref) ->
    receive_loop(Ref, []).

receive_loop(Ref, Acc) ->
    receive
        {py_stream, Ref, {data, Value}} -> receive_loop(Ref, [Value | Acc]);
        {py_stream, Ref, done} -> {lists:reverse(Acc), done};
        {py_stream, Ref, {error, Reason}} -> {lists:reverse(Acc), {error, Reason}}
    after ?TIMEOUT ->
        ct:fail({timeout, lists:reverse(Acc)})
    end.

flush_stream(Ref) ->
    receive {py_stream, Ref, _} -> flush_stream(Ref) after 0 -> ok end.

wait_error(Ref) ->
    receive
        {py_stream, Ref, {data, _}} -> wait_error(Ref);
        {py_stream, Ref, {error, {python_died, _}}} -> ok;
        {py_stream, Ref, Other} -> ct:fail({unexpected, Other})
    after ?TIMEOUT -> ct:fail(no_error_event)
    end.

stream_to_client(Ref, WS) ->
    receive
        {py_stream, Ref, {data, Token}} -> WS ! {send, Token}, stream_to_client(Ref, WS);
        {py_stream, Ref, done} -> WS ! {send, <<"[DONE]">>}, WS ! done;
        {py_stream, Ref, {error, _}} -> WS ! {send, <<"[ERROR]">>}, WS ! done
    after ?TIMEOUT -> ct:fail(no_events)
    end.

ws_loop(Parent, Acc) ->
    receive
        {send, T} -> ws_loop(Parent, [T | Acc]);
        done -> Parent ! {ws, lists:reverse(Acc)}
    end.
