%% @doc CPython's test_asyncio on one event loop, inside port programs
%% (`make test-asyncio', `make test-asyncio-quick').
%%
%% Each test_asyncio module runs in a fresh port program (a pool of one
%% context) through `ep_asyncio_harness:run_module/4', which appends one
%% result line per test to `OutDir/Loop/Module.jsonl'. A test that hangs past
%% the per-test timeout ends its port program (Python's faulthandler timer,
%% which needs no GIL), a test that crashes it does the same: either way the
%% module is run again in a new port program and resumes after that test,
%% which is recorded as `timeout' or `crashed'. The table and the check against
%% the exceptions of test/README.md come from `ep_asyncio_report'.
%%
%% Arguments (strings `key=value'): `loop' (erlang | uvloop | stdlib | auto:
%% erlang when the port program has ErlangEventLoop, else stdlib), `modules'
%% (comma-separated, or `all'), `out' (results directory, emptied for the
%% modules run), `dir' (this directory), `check' (true: exit status 1 when a
%% loop-dependent test fails that test/README.md does not list),
%% `test_timeout' (seconds).
-module(py_asyncio_harness).

-export([main/1]).

-define(APP, erlang_python).
-define(POOL, asyncio_harness).
-define(MAX_ATTEMPTS, 40).
-define(MODULE_TIMEOUT_MS, 1800000).

-spec main([string()]) -> no_return().
main(Args) ->
    Opts = maps:from_list([list_to_tuple(string:split(A, "=")) || A <- Args]),
    Dir = maps:get("dir", Opts),
    OutDir = maps:get("out", Opts),
    ok = application:load(?APP),
    ok = application:set_env(?APP, default_pool_size, 1),
    ok = application:set_env(?APP, python_path, [Dir]),
    {ok, _} = application:ensure_all_started(?APP),
    %% A port program that a test crashed or hung is reported in the table.
    ok = logger:set_module_level(supervisor, critical),
    Status =
        try
            Loop = loop(maps:get("loop", Opts, "auto")),
            Modules = modules(maps:get("modules", Opts, "all")),
            TestTimeout = list_to_integer(maps:get("test_timeout", Opts, "60")),
            io:format("test_asyncio on loop ~ts: ~b modules, each in its own port program~n",
                      [Loop, length(Modules)]),
            Broken = lists:append([run_module(Loop, M, OutDir, TestTimeout) || M <- Modules]),
            report(Loop, OutDir, Dir, Modules, Broken, maps:get("check", Opts, "true") =:= "true")
        catch
            throw:{fatal, Why} ->
                io:format(standard_error, "test_asyncio: ~ts~n", [Why]),
                2
        end,
    application:stop(?APP),
    halt(Status).

loop(Name) ->
    Kinds = case py:call(ep_loops, available, []) of
                {ok, Ks} -> Ks;
                Other -> throw({fatal, io_lib:format("ep_loops.available(): ~p", [Other])})
            end,
    Loop = case Name of
               "auto" ->
                   case lists:member(<<"erlang">>, Kinds) of
                       true -> <<"erlang">>;
                       false -> <<"stdlib">>
                   end;
               _ -> list_to_binary(Name)
           end,
    case lists:member(Loop, Kinds) of
        true -> Loop;
        false -> throw({fatal, io_lib:format("loop ~ts is not available here (available: ~p)",
                                             [Loop, Kinds])})
    end.

modules("all") ->
    {ok, Modules} = py:call(ep_rebase, modules, []),
    Modules;
modules(List) ->
    [list_to_binary(M) || M <- string:lexemes(List, ",")].

%% Runs one module to its end, across as many port programs as it takes;
%% the modules that could not run at all (an import error) are returned.
-spec run_module(binary(), binary(), string(), pos_integer()) -> [{binary(), term()}].
run_module(Loop, Module, OutDir, TestTimeout) ->
    File = filename:join([OutDir, Loop, <<Module/binary, ".jsonl">>]),
    [file:delete(<<File/binary, Ext/binary>>) || Ext <- [<<>>, <<".tb">>, <<".hang">>]],
    T0 = erlang:monotonic_time(millisecond),
    Result = attempt(Loop, Module, File, TestTimeout, 1),
    Secs = (erlang:monotonic_time(millisecond) - T0) / 1000,
    case Result of
        {ok, Attempts} ->
            io:format("  ~ts: ~.1f s~ts~n",
                      [Module, Secs, restarts(Attempts)]),
            [];
        {error, Why} ->
            io:format("  ~ts: did not run: ~p~n", [Module, Why]),
            [{Module, Why}]
    end.

restarts(1) -> "";
restarts(N) -> io_lib:format(" (~b port programs: a test crashed or hung)", [N]).

attempt(_Loop, _Module, _File, _TestTimeout, N) when N > ?MAX_ATTEMPTS ->
    {error, too_many_crashes};
attempt(Loop, Module, File, TestTimeout, N) ->
    {ok, [Ctx]} = py_context_router:start_pool(?POOL, 1, #{mode => process}),
    Result = py:call(Ctx, ep_asyncio_harness, run_module, [Loop, Module, File, TestTimeout],
                     #{timeout => ?MODULE_TIMEOUT_MS}),
    ok = py_context_router:stop_pool(?POOL),
    case Result of
        {ok, _Count} -> {ok, N};
        {error, {python_died, _}} -> attempt(Loop, Module, File, TestTimeout, N + 1);
        {error, timeout} -> attempt(Loop, Module, File, TestTimeout, N + 1);
        {error, Why} -> {error, Why}
    end.

report(Loop, OutDir, Dir, Modules, Broken, Check) ->
    Readme = filename:join([Dir, "..", "README.md"]),
    {ok, {Text, _Passed, _Failed, Unexpected}} =
        py:call(ep_asyncio_report, report, [list_to_binary(OutDir), Loop, list_to_binary(Readme),
                                            Modules]),
    io:format("~n~ts~n", [Text]),
    [io:format("module ~ts did not run: ~p~n", [M, Why]) || {M, Why} <- Broken],
    case Check andalso (Unexpected =/= [] orelse Broken =/= []) of
        true -> 1;
        false -> 0
    end.
