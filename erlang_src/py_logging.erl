%% @doc Python `logging' to the Erlang logger, and span tracing.
%%
%% `configure_logging/0,1' installs `erlang.ErlangHandler' on Python's root
%% logger in every context of the node, now and in port programs started
%% later (py_setup). A record travels as a `[7, ...]' frame, fire and forget,
%% and the port owner logs it at the mapped level with metadata
%% `#{domain => [python], py_logger => Name, py_meta => #{<<"module">>, <<"lineno">>,
%% <<"funcName">>}}'.
%%
%% Tracing: `erlang.Span' and `erlang.trace' record finished spans here
%% (`_py.trace_span', one callback per span) while tracing is enabled.
-module(py_logging).

-export([configure_logging/0, configure_logging/1,
         enable_tracing/0, disable_tracing/0, get_traces/0, clear_traces/0]).
-export([record_span/1]).

-type level() :: debug | info | warning | error | critical.
-type opts() :: #{level => level(), format => iodata()}.

%% @doc Python logging at level `debug' and up reaches the Erlang logger.
-spec configure_logging() -> ok | {error, term()}.
configure_logging() ->
    configure_logging(#{}).

%% @doc Options: `level' (`debug' (default) | `info' | `warning' | `error' |
%% `critical'), `format' (a Python logging format, default `%(message)s').
-spec configure_logging(opts()) -> ok | {error, term()}.
configure_logging(Opts) when is_map(Opts) ->
    Level = maps:get(level, Opts, debug),
    Format = maps:get(format, Opts, <<"%(message)s">>),
    case {levelno(Level), format(Format)} of
        {N, {ok, F}} when is_integer(N) ->
            Code = iolist_to_binary(
                     ["__import__('erlang').setup_logging(level=", integer_to_binary(N),
                      ", format=bytes.fromhex('", binary:encode_hex(F), "').decode())"]),
            py_setup:put(logging, Code);
        {undefined, _} -> {error, {badarg, {level, Level}}};
        {_, error} -> {error, {badarg, {format, Format}}}
    end;
configure_logging(Opts) ->
    {error, {badarg, Opts}}.

%% @doc Starts collecting the spans Python finishes.
-spec enable_tracing() -> ok | {error, term()}.
enable_tracing() ->
    py_setup:put(tracing, tracing_code(<<"True">>)).

%% @doc Stops collecting spans (those collected stay until clear_traces/0).
-spec disable_tracing() -> ok | {error, term()}.
disable_tracing() ->
    py_setup:delete(tracing, tracing_code(<<"False">>)).

%% @doc The spans collected, in the order they finished.
-spec get_traces() -> {ok, [map()]}.
get_traces() ->
    {ok, [Span || {span, Span} <- ets:lookup(py_traces, span)]}.

-spec clear_traces() -> ok.
clear_traces() ->
    true = ets:delete_all_objects(py_traces),
    ok.

%% @private A finished span from Python (built-in `_py.trace_span').
-spec record_span(map()) -> boolean().
record_span(Span) when is_map(Span) ->
    ets:member(py_setup, tracing) andalso ets:insert(py_traces, {span, Span}).

tracing_code(Flag) ->
    <<"__import__('erlang._trace')._trace.set_enabled(", Flag/binary, ")">>.

levelno(debug) -> 10;
levelno(info) -> 20;
levelno(warning) -> 30;
levelno(error) -> 40;
levelno(critical) -> 50;
levelno(_) -> undefined.

format(F) ->
    try {ok, iolist_to_binary(F)}
    catch error:badarg -> error
    end.
