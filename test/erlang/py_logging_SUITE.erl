%% Python logging to the Erlang logger (py:configure_logging/0,1,
%% erlang.ErlangHandler, erlang.setup_logging) and span tracing
%% (py:enable_tracing/0 ..., erlang.Span, erlang.trace): the examples of
%% logging.md and getting-started.md. Records are caught by a logger handler
%% of this module that forwards them to the test process.
-module(py_logging_SUITE).

-include_lib("common_test/include/ct.hrl").

-export([all/0, init_per_suite/1, end_per_suite/1, init_per_testcase/2, end_per_testcase/2]).
-export([log/2]).
-export([quick_start/1, level_mapping/1, level_option_filters/1, format_option/1,
         metadata/1, handler_from_python/1, later_contexts_configured/1,
         stdout_still_forwarded/1, bad_options/1,
         tracing_quick_start/1, span_structure/1, nested_spans/1, span_events/1,
         span_error/1, decorator/1, spans_per_thread/1, disabled_records_nothing/1]).

-define(TIMEOUT, 10000).

all() ->
    [quick_start, level_mapping, level_option_filters, format_option, metadata,
     handler_from_python, later_contexts_configured, stdout_still_forwarded, bad_options,
     tracing_quick_start, span_structure, nested_spans, span_events, span_error,
     decorator, spans_per_thread, disabled_records_nothing].

init_per_suite(Config) ->
    %% The logger drops info and debug by default (primary level notice).
    #{level := Level} = logger:get_primary_config(),
    ok = logger:set_primary_config(level, all),
    [{primary_level, Level} | py_test_util:start_app([?config(data_dir, Config)]) ++ Config].

end_per_suite(Config) ->
    py_test_util:stop_app(Config),
    logger:set_primary_config(level, ?config(primary_level, Config)),
    Config.

init_per_testcase(_Case, Config) ->
    ok = logger:add_handler(py_logging_test, ?MODULE, #{config => #{pid => self()}}),
    ok = py:clear_traces(),
    Config.

end_per_testcase(_Case, _Config) ->
    _ = logger:remove_handler(py_logging_test),
    _ = py:disable_tracing(),
    ok.

%% logger handler callback: python records to the test process
log(#{meta := #{domain := [python]} = Meta, level := Level, msg := Msg}, #{config := #{pid := Pid}}) ->
    Text = case Msg of
               {Format, Args} when is_list(Format); is_binary(Format) -> iolist_to_binary(io_lib:format(Format, Args));
               {string, S} -> iolist_to_binary(S);
               _ -> Msg
           end,
    Pid ! {py_log, Level, Text, Meta};
log(_, _) ->
    ok.

%% logging.md, "Quick Start"; getting-started.md "Python Logging to Erlang"
quick_start(_Config) ->
    ok = py:configure_logging(),
    {ok, _} = py:eval(<<"
import logging
logging.info('Hello from Python!')
logging.warning('Something happened')
">>),
    {info, <<"Hello from Python!">>, #{py_logger := <<"root">>}} = next_log(),
    {warning, <<"Something happened">>, _} = next_log(),
    ok = py:configure_logging(#{level => info}),
    ok = py:exec(<<"
import logging
logging.info('Hello from Python!')
logging.warning('Something needs attention')
">>),
    {info, <<"Hello from Python!">>, _} = next_log(),
    {warning, <<"Something needs attention">>, _} = next_log(),
    ok.

%% "Log Level Mapping"
level_mapping(_Config) ->
    ok = py:configure_logging(),
    {ok, none} = py:call(log_mod, every_level, []),
    [{debug, <<"d">>}, {info, <<"i">>}, {warning, <<"w">>}, {error, <<"e">>},
     {critical, <<"c">>}] = [begin {L, T, _} = next_log(), {L, T} end || _ <- lists:seq(1, 5)],
    ok.

level_option_filters(_Config) ->
    ok = py:configure_logging(#{level => warning}),
    {ok, none} = py:call(log_mod, every_level, []),
    %% in order through one port owner: had debug/info passed they would come first
    [{warning, <<"w">>}, {error, <<"e">>}, {critical, <<"c">>}] =
        [begin {L, T, _} = next_log(), {L, T} end || _ <- lists:seq(1, 3)],
    ok = py:configure_logging(#{level => debug}),
    ok.

%% "Configuration Options": format
format_option(_Config) ->
    ok = py:configure_logging(#{level => info, format => <<"%(name)s - %(message)s">>}),
    {ok, _} = py:eval(<<"import logging; logging.getLogger('app').info('hello')">>),
    {info, <<"app - hello">>, #{py_logger := <<"app">>}} = next_log(),
    ok = py:configure_logging(),
    ok.

%% "Metadata"
metadata(_Config) ->
    ok = py:configure_logging(),
    {ok, 42} = py:call(log_mod, my_function, []),
    {warning, <<"from my_function">>,
     #{domain := [python], py_logger := <<"mymodule">>,
       py_meta := #{<<"module">> := <<"log_mod">>, <<"lineno">> := Line,
                    <<"funcName">> := <<"my_function">>}}} = next_log(),
    true = is_integer(Line),
    ok.

%% "Python API": ErlangHandler and setup_logging
handler_from_python(_Config) ->
    Ctx = py:context(1),
    ok = py:exec(Ctx, <<"
import logging, erlang
handler = erlang.ErlangHandler()
lg = logging.getLogger('direct')
lg.propagate = False
lg.addHandler(handler)
lg.setLevel(logging.DEBUG)
lg.debug('direct record')
">>),
    {debug, <<"direct record">>, #{py_logger := <<"direct">>}} = next_log(),
    ok = py:exec(Ctx, <<"erlang.setup_logging(level=20)\nlogging.getLogger('x').info('via setup')">>),
    {info, <<"via setup">>, _} = next_log(),
    ok = py:exec(Ctx, <<"erlang.setup_logging(level=10, format='%(name)s: %(message)s')\n"
                        "logging.getLogger('y').debug('fmt')">>),
    {debug, <<"y: fmt">>, _} = next_log(),
    ok.

%% Contexts started after configure_logging are configured too.
later_contexts_configured(_Config) ->
    ok = py:configure_logging(#{level => info}),
    {ok, [Ctx]} = py_context_router:start_pool(log_later_pool, 1, process),
    {ok, _} = py:eval(Ctx, <<"__import__('logging').info('from a new pool')">>),
    {info, <<"from a new pool">>, _} = next_log(),
    ok = py_context_router:stop_pool(log_later_pool),
    ok.

stdout_still_forwarded(_Config) ->
    ok = py:configure_logging(),
    ok = py:exec(<<"print('printed line')">>),
    {notice, Text, #{stream := stdout}} = next_log(),
    {match, _} = re:run(Text, <<"printed line">>),
    ok.

bad_options(_Config) ->
    {error, {badarg, {level, loud}}} = py:configure_logging(#{level => loud}),
    {error, {badarg, _}} = py:configure_logging(not_a_map),
    {error, {badarg, {format, 42}}} = py:configure_logging(#{format => 42}),
    ok.

%% logging.md "Distributed Tracing, Quick Start"; getting-started.md
tracing_quick_start(_Config) ->
    ok = py:enable_tracing(),
    ok = py:exec(<<"def do_work(): return 1">>),
    {ok, _} = py:eval(<<"
import erlang

with erlang.Span('process-request', user_id=123):
    do_work()
">>),
    {ok, [#{name := <<"process-request">>, status := ok,
            attributes := #{<<"user_id">> := 123}}]} = py:get_traces(),
    ok = py:exec(<<"
import erlang
with erlang.Span('my-operation', key='value'):
    pass  # your code here
">>),
    {ok, [_, #{name := <<"my-operation">>, attributes := #{<<"key">> := <<"value">>}}]} =
        py:get_traces(),
    ok = py:clear_traces(),
    {ok, []} = py:get_traces(),
    ok = py:disable_tracing(),
    ok.

%% "Span Structure"
span_structure(_Config) ->
    ok = py:enable_tracing(),
    {ok, _} = py:eval(<<"
with erlang.Span('operation-name', key='value', count=42) as span:
    span.event('checkpoint', items_processed=10)
">>),
    {ok, [Span]} = py:get_traces(),
    #{name := <<"operation-name">>, span_id := Id, parent_id := undefined,
      start_time := Start, end_time := End, duration_us := Duration, status := ok,
      attributes := #{<<"key">> := <<"value">>, <<"count">> := 42},
      end_attrs := #{}, events := [#{name := <<"checkpoint">>,
                                     attrs := #{<<"items_processed">> := 10},
                                     time := T}]} = Span,
    true = is_integer(Id) andalso Id >= 0 andalso Id < 1 bsl 64,
    Duration = End - Start,
    true = Start =< T andalso T =< End,
    11 = maps:size(Span) + 1,
    ok.

nested_spans(_Config) ->
    ok = py:enable_tracing(),
    {ok, _} = py:eval(<<"
with erlang.Span('outer'):
    with erlang.Span('sub-operation'):
        pass
">>),
    {ok, [#{name := <<"sub-operation">>, parent_id := P}, #{name := <<"outer">>, span_id := P,
                                                            parent_id := undefined}]} =
        py:get_traces(),
    ok.

span_events(_Config) ->
    ok = py:enable_tracing(),
    {ok, _} = py:eval(<<"
with erlang.Span('ev') as s:
    s.event('a')
    s.event('b', n=2)
">>),
    {ok, [#{events := [#{name := <<"a">>, attrs := #{}}, #{name := <<"b">>, attrs := #{<<"n">> := 2}}]}]} =
        py:get_traces(),
    ok.

%% "Error Handling"
span_error(_Config) ->
    ok = py:enable_tracing(),
    {ok, _} = py:eval(<<"
import erlang

try:
    with erlang.Span('risky-operation'):
        raise ValueError('something went wrong')
except ValueError:
    pass
">>),
    {ok, [#{name := <<"risky-operation">>, status := error,
            end_attrs := #{<<"exception">> := <<"something went wrong">>}}]} = py:get_traces(),
    %% the exception still propagates
    {error, {'KeyError', _}} = py:eval(<<"
with erlang.Span('raising'):
    {}['x']
">>),
    ok.

%% "Decorator"
decorator(_Config) ->
    ok = py:enable_tracing(),
    {ok, 42} = py:call(log_mod, traced_plain, []),
    {ok, none} = py:call(log_mod, traced_named, []),
    {ok, [#{name := <<"traced_plain">>}, #{name := <<"custom-name">>}]} = py:get_traces(),
    ok.

%% "Thread Safety": each thread has its own span stack
spans_per_thread(_Config) ->
    ok = py:enable_tracing(),
    {ok, none} = py:call(log_mod, spans_in_threads, [8]),
    {ok, Spans} = py:get_traces(),
    16 = length(Spans),
    Outer = maps:from_list([{I, Id} || #{name := <<"thread-outer">>, span_id := Id,
                                         attributes := #{<<"i">> := I}} <- Spans]),
    8 = maps:size(Outer),
    [P = maps:get(I, Outer) || #{name := <<"thread-inner">>, parent_id := P,
                                  attributes := #{<<"i">> := I}} <- Spans],
    ok.

disabled_records_nothing(_Config) ->
    ok = py:disable_tracing(),
    {ok, _} = py:eval(<<"with erlang.Span('not recorded'):\n    pass\n">>),
    {ok, []} = py:get_traces(),
    %% enabled in a pool started later, too
    ok = py:enable_tracing(),
    {ok, [Ctx]} = py_context_router:start_pool(trace_later_pool, 1, process),
    {ok, _} = py:eval(Ctx, <<"with erlang.Span('later'):\n    pass\n">>, #{}),
    {ok, [#{name := <<"later">>}]} = py:get_traces(),
    ok = py_context_router:stop_pool(trace_later_pool),
    ok.

next_log() ->
    receive {py_log, Level, Text, Meta} -> {Level, Text, Meta}
    after ?TIMEOUT -> ct:fail(no_log)
    end.
