%% @doc A port program that cannot start Python says why: the Python error
%% reaches an error report that OTP's default logger handler shows.
-module(py_startup_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0, suite/0, init_per_suite/1, end_per_suite/1]).
-export([log/2]).
-export([missing_package_is_logged/1, python_start_error_is_logged/1,
         python_pkg_found_under_priv/1]).

suite() ->
    [{timetrap, {seconds, 60}}].

all() ->
    [missing_package_is_logged, python_start_error_is_logged, python_pkg_found_under_priv].

init_per_suite(Config) ->
    {ok, _} = application:ensure_all_started(erlang_python),
    Config.

end_per_suite(Config) ->
    ok = application:stop(erlang_python),
    Config.

%% The port program run without the path of the Python package `erlang' (a
%% release that lacks it): the import error and sys.path are logged.
missing_package_is_logged(Config) ->
    Real = py_config:port_program(),
    Wrapper = filename:join(?config(priv_dir, Config), "no_python_path"),
    %% The real port program, but none of the arguments Erlang gives it.
    ok = file:write_file(Wrapper, ["#!/bin/sh\nexec '", Real, "' --contexts 1\n"]),
    ok = file:change_mode(Wrapper, 8#755),
    Text = start_failure_text(Wrapper, #{}),
    ?assertMatch({_, _}, binary:match(Text, <<"No module named 'erlang'">>), Text),
    ?assertMatch({_, _}, binary:match(Text, <<"sys.path was [">>), Text),
    ?assertMatch({_, _}, binary:match(Text, <<"exited with status 1 before Python started">>), Text).

%% Python's own start-up fails (an unusable PYTHONHOME): its message is logged.
python_start_error_is_logged(_Config) ->
    Text = start_failure_text(py_config:port_program(),
                              #{env => #{"PYTHONHOME" => "/nonexistent/python/home"}}),
    ?assertMatch({_, _}, binary:match(Text, <<"Python start failed">>), Text),
    ?assertMatch({_, _}, binary:match(Text, <<"before Python started">>), Text).

%% Without a python_pkg/ next to ebin/ (an OTP release copies only ebin/ and
%% priv/), the package is taken from priv/python, which the build fills.
python_pkg_found_under_priv(Config) ->
    Root = filename:dirname(filename:dirname(code:which(py))),
    Priv = filename:join(Root, "priv"),
    ?assert(filelib:is_regular(filename:join([Priv, "python", "erlang", "__init__.py"]))),
    %% A copy of the application laid out as in a release.
    Lib = filename:join(?config(priv_dir, Config), "erlang_python-0.1.0"),
    ok = filelib:ensure_path(filename:join(Lib, "ebin")),
    ok = copy_tree(filename:join(Root, "ebin"), filename:join(Lib, "ebin")),
    ok = copy_tree(filename:join([Priv, "python"]), filename:join([Lib, "priv", "python"])),
    {ok, _} = file:copy(py_config:port_program(), filename:join([Lib, "priv", "erlang_python_port"])),
    ok = file:change_mode(filename:join([Lib, "priv", "erlang_python_port"]), 8#755),
    {ok, Peer, Node} = ?CT_PEER(#{args => ["-pa", filename:join(Lib, "ebin")]}),
    try
        ok = erpc:call(Node, application, set_env, [erlang_python, default_pool_size, 1]),
        {ok, _} = erpc:call(Node, application, ensure_all_started, [erlang_python]),
        Dir = filename:join([Lib, "priv", "python"]),
        ?assertEqual(Dir, erpc:call(Node, py_config, python_pkg_dir, [])),
        ?assertEqual({ok, list_to_binary(filename:join(Dir, "erlang"))},
                     erpc:call(Node, py, eval,
                               [<<"__import__('os').path.dirname(__import__('erlang').__file__)">>]))
    after
        peer:stop(Peer)
    end.

%% Starts a pool of one context with `Program' as its port program and returns
%% the text of the error report about its start.
start_failure_text(Program, Opts) ->
    ok = logger:add_handler(startup_capture, ?MODULE, #{config => #{pid => self()}}),
    ok = application:set_env(erlang_python, port_program, Program),
    %% The reports are expected: keep them off the console (CT's logs keep them).
    Level = case logger:get_handler_config(default) of
                {ok, #{level := L}} -> ok = logger:update_handler_config(default, level, none), L;
                {error, _} -> undefined
            end,
    try
        {ok, _} = py_context_router:start_pool(broken, 1, Opts#{mode => process}),
        wait_for_report()
    after
        application:unset_env(erlang_python, port_program),
        _ = py_context_router:stop_pool(broken),
        _ = logger:remove_handler(startup_capture),
        Level =/= undefined andalso logger:update_handler_config(default, level, Level)
    end.

wait_for_report() ->
    receive
        {captured_log, error, Meta, Text} ->
            case binary:match(Text, <<"before Python started">>) of
                nomatch -> wait_for_report();
                _ ->
                    %% No `python' domain: OTP's default handler shows it.
                    ?assertEqual(error, maps:get(domain, Meta, error)),
                    Text
            end
    after 20000 ->
        ct:fail(no_start_failure_report)
    end.

copy_tree(From, To) ->
    ok = filelib:ensure_path(To),
    {ok, Names} = file:list_dir(From),
    lists:foreach(
      fun(Name) ->
              F = filename:join(From, Name),
              T = filename:join(To, Name),
              case filelib:is_dir(F) of
                  true -> ok = copy_tree(F, T);
                  false -> {ok, _} = file:copy(F, T)
              end
      end, Names).

%% logger handler: forwards every event to the test process.
-spec log(logger:log_event(), logger:handler_config()) -> ok.
log(#{level := Level, msg := Msg, meta := Meta}, #{config := #{pid := Pid}}) ->
    Text = case Msg of
               {string, S} -> unicode:characters_to_binary(S);
               {report, R} -> iolist_to_binary(io_lib:format("~p", [R]));
               {Format, Args} -> unicode:characters_to_binary(io_lib:format(Format, Args))
           end,
    Pid ! {captured_log, Level, Meta, Text},
    ok.
