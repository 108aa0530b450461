%% @doc Pools of contexts (doc: the pools guide): the `default' and `io' pools,
%% explicit pool selection, registration routing and its priority, custom
%% pools in `worker' and `process' mode, pool options (python_path, venv, env,
%% max_memory), isolation (io work does not hold up default work, a crash
%% costs one port program), stopping a pool and the idle preference of
%% get_context.
%%
%% Which pool served a call is observed through the OS pid of the port program
%% that ran it (`os.getpid()'), compared with `py_port:info/1' of the pool's
%% port programs. Blocked calls are held in a registered Erlang function
%% (`pools_hold', through `erlang.call') or on a `threading.Event', and released
%% by the test: nothing waits on a sleep.
-module(py_pools_SUITE).

-include_lib("common_test/include/ct.hrl").

-export([all/0, groups/0, suite/0, init_per_suite/1, end_per_suite/1,
         init_per_testcase/2, end_per_testcase/2]).
%% logger handler callback (the handler is this module)
-export([log/2]).

-export([two_pools_start_with_the_app/1, explicit_pool_selection/1,
         registration_routes_calls/1, function_registration_wins/1, unregister/1,
         custom_pool/1, request_handler_example/1, batch_example/1, monitoring/1,
         backward_compatible/1,
         pool_sizes/1, start_pool_errors/1, start_pool_rejects_unknown_mode/1,
         subinterp_runs_as_worker/1, io_does_not_block_default/1,
         crash_in_one_context/1, python_path_option/1, venv_option/1, env_option/1,
         max_memory_option/1, stop_pool/1, get_context_prefers_idle/1,
         get_context_after_killed_caller/1, nested_request_keeps_outer_callback/1,
         killed_callers_release_counters/1, worker_pool_mixed_readers/1,
         cached_routes_follow_changes/1, restarting_member_is_skipped/1,
         call_waits_for_restarting_pool/1,
         app_env_configuration/1, port_scheduling_option/1]).

-define(APP, erlang_python).
%% Every pool a test may start; end_per_testcase stops them all.
-define(TEST_POOLS, [gpu, pools_w1, pools_w2, pools_w20, pools_p1, pools_p2, pools_p20,
                     pools_bad, pools_si, pools_crash, pools_pp, pools_venv, pools_env,
                     pools_mem, pools_stop, pools_idle, pools_auto, pools_nest,
                     pools_normal, pools_mix, pools_cache, pools_skip, pools_wait]).
%% How long an answer that should be prompt may take (the suite also runs
%% under ASan, about 3x slower).
-define(PROMPT_MS, 5000).
-define(CRASH_CALLS, 200).

suite() ->
    [{timetrap, {seconds, 60}}].

all() ->
    [{group, guide}, {group, pools}, {group, configuration}].

groups() ->
    [{guide, [], [two_pools_start_with_the_app, explicit_pool_selection,
                  registration_routes_calls, function_registration_wins, unregister,
                  custom_pool, request_handler_example, batch_example, monitoring,
                  backward_compatible]},
     {pools, [], [pool_sizes, start_pool_errors, start_pool_rejects_unknown_mode,
                  subinterp_runs_as_worker, io_does_not_block_default,
                  crash_in_one_context, python_path_option, venv_option, env_option,
                  max_memory_option, stop_pool, get_context_prefers_idle,
                  get_context_after_killed_caller, nested_request_keeps_outer_callback,
                  killed_callers_release_counters, worker_pool_mixed_readers,
                  cached_routes_follow_changes, restarting_member_is_skipped,
                  call_waits_for_restarting_pool]},
     {configuration, [], [app_env_configuration, port_scheduling_option]}].

%% The app is started with the suite's helper modules (written to priv_dir) on
%% python_path, so that the default and io pools can import them.
init_per_suite(Config) ->
    _ = application:stop(?APP),
    ok = load_app(),
    Helpers = filename:join(?config(priv_dir, Config), "helpers"),
    ok = filelib:ensure_dir(filename:join(Helpers, "x")),
    ok = file:write_file(filename:join(Helpers, "pools_probe.py"), probe_module()),
    ok = file:write_file(filename:join(Helpers, "pools_db.py"), db_module()),
    Saved = py_test_util:start_app([Helpers]),
    {ok, 2} = py:eval(<<"1 + 1">>),
    [{helpers, Helpers} | Saved ++ Config].

end_per_suite(Config) ->
    py_test_util:stop_app(Config),
    Config.

init_per_testcase(_Case, Config) ->
    true = py_context_router:pool_started(default),
    true = py_context_router:pool_started(io),
    [] = py_context_router:list_pool_registrations(),
    Config.

end_per_testcase(_Case, _Config) ->
    _ = logger:remove_handler(pools_capture),
    case whereis(erlang_python_sup) of
        undefined -> {ok, _} = application:ensure_all_started(?APP);
        _ -> ok
    end,
    [ok = py_context_router:stop_pool(P) || P <- ?TEST_POOLS],
    [ok = py_context_router:unregister_pool(Target)
     || {Target, _Pool} <- py_context_router:list_pool_registrations()],
    _ = py:unregister_function(pools_hold),
    ok.

%%====================================================================
%% The guide's examples
%%====================================================================

%% default: schedulers contexts, one port program each; io: 10 contexts as
%% threads of one port program.
two_pools_start_with_the_app(_Config) ->
    true = py_context_router:pool_started(default),
    true = py_context_router:pool_started(io),
    Schedulers = erlang:system_info(schedulers),
    Schedulers = py_context_router:num_contexts(default),
    10 = py_context_router:num_contexts(io),
    Default = py_context_router:contexts(default),
    Io = py_context_router:contexts(io),
    Schedulers = length(Default),
    10 = length(Io),
    DefaultPids = default_os_pids(),
    Schedulers = length(lists:usort(DefaultPids)),
    IoPid = io_os_pid(),
    false = lists:member(IoPid, DefaultPids),
    %% each context runs in the port program its owner reports
    [{ok, P} = py:call(C, os, getpid, []) || C <- Default ++ Io, P <- [os_pid(C)]],
    %% io contexts are distinct threads (and namespaces) of that one program
    Threads = [Tid || C <- Io, {ok, Tid} <- [py:call(C, threading, get_native_id, [])]],
    10 = length(lists:usort(Threads)),
    true = lists:member(py_context_router:get_context(), Default),
    true = lists:member(py_context_router:get_context(default), Default),
    true = lists:member(py_context_router:get_context(io), Io),
    ok.

explicit_pool_selection(_Config) ->
    {ok, 4.0} = py:call(default, math, sqrt, [16]),
    {ok, <<"a%20b/c">>} = py:call(io, 'urllib.parse', quote, [<<"a b/c">>]),
    %% with keyword arguments
    {ok, <<"a%20b%2Fc">>} = py:call(io, 'urllib.parse', quote, [<<"a b/c">>],
                                    #{safe => <<"">>}),
    {ok, 255} = py:call(io, builtins, int, [<<"ff">>], #{base => 16}),
    IoPid = io_os_pid(),
    DefaultPids = default_os_pids(),
    {ok, IoPid} = py:call(io, os, getpid, []),
    {ok, IoPid} = py:call(io, os, getpid, [], #{}),
    [{ok, true} = in(py:call(default, os, getpid, []), DefaultPids) || _ <- DefaultPids],
    %% an explicit pool wins over a registration
    ok = py:register_pool(io, os),
    {ok, true} = in(py:call(default, os, getpid, []), DefaultPids),
    ok = py:register_pool(default, {os, getpid}),
    {ok, IoPid} = py:call(io, os, getpid, []),
    ok.

%% A module registration sends every function of the module; a function
%% registration only that function (the guide's db.query / db.connect).
registration_routes_calls(_Config) ->
    IoPid = io_os_pid(),
    IoPidBin = integer_to_binary(IoPid),
    DefaultPids = default_os_pids(),
    %% nothing registered: default
    {ok, true} = in(py:call(os, getpid, []), DefaultPids),
    ok = py:register_pool(io, os),
    {ok, IoPid} = py:call(os, getpid, []),
    {ok, IoPidBin} = py:call(os, readlink, [<<"/proc/self">>]),
    {ok, IoPid} = py:call(<<"os">>, <<"getpid">>, []),
    {ok, IoPid} = py:call(os, getpid, [], #{}),
    {ok, IoPid} = py:call(os, getpid, [], #{}, 5000),
    {ok, 4.0} = py:call(math, sqrt, [16]),
    ok = py:register_pool(io, {pools_db, query}),
    {ok, [IoPid, [[7, <<"user">>]]]} = py:call(pools_db, query, [<<"SELECT">>, [7]]),
    {ok, true} = in(py:call(pools_db, connect, [<<"dsn">>]), DefaultPids),
    io = py_context_router:lookup_pool(pools_db, query),
    default = py_context_router:lookup_pool(pools_db, connect),
    %% spawn_call and cast route the same way
    {ok, IoPid} = py:await(py:spawn_call(os, getpid, [])),
    ok = py:register_pool(io, {pools_probe, report_pid}),
    ok = py:cast(pools_probe, report_pid, [self()]),
    receive {pool_pid, IoPid} -> ok after ?PROMPT_MS -> ct:fail(no_cast_report) end,
    ok = py:unregister_pool({pools_probe, report_pid}),
    ok = py:cast(pools_probe, report_pid, [self()]),
    receive
        {pool_pid, Pid} -> true = lists:member(Pid, DefaultPids)
    after ?PROMPT_MS -> ct:fail(no_cast_report)
    end,
    %% a registration to a pool that does not run
    ok = py:register_pool(no_such_pool, {math, sqrt}),
    {error, {pool_not_started, no_such_pool}} = py:call(math, sqrt, [16]),
    ok.

function_registration_wins(_Config) ->
    %% the guide's example
    ok = py:register_pool(io, json),
    ok = py:register_pool(default, {json, dumps}),
    io = py_context_router:lookup_pool(json, loads),
    default = py_context_router:lookup_pool(json, dumps),
    io = py_context_router:lookup_pool(<<"json">>, <<"loads">>),
    default = py_context_router:lookup_pool(<<"json">>, <<"dumps">>),
    {ok, [1, 2]} = py:call(json, loads, [<<"[1, 2]">>]),
    {ok, <<"[1, 2]">>} = py:call(json, dumps, [[1, 2]]),
    %% and observed: the module to io, one function back to default, in the
    %% other order too (registration order does not matter)
    IoPid = io_os_pid(),
    DefaultPids = default_os_pids(),
    ok = py_context_router:register_pool(default, pools_db, connect),
    ok = py_context_router:register_pool(io, pools_db),
    {ok, [IoPid, []]} = py:call(pools_db, query, [<<"SELECT">>, []]),
    {ok, true} = in(py:call(pools_db, connect, [<<"dsn">>]), DefaultPids),
    %% a function registered to io under a module registered to default
    ok = py:register_pool(default, os),
    ok = py:register_pool(io, {os, getpid}),
    {ok, IoPid} = py:call(os, getpid, []),
    {ok, true} = in(py:call(os, readlink, [<<"/proc/self">>]),
                    [integer_to_binary(P) || P <- DefaultPids]),
    %% registering again moves the route
    ok = py:register_pool(default, {os, getpid}),
    {ok, true} = in(py:call(os, getpid, []), DefaultPids),
    default = py_context_router:lookup_pool(os, getpid),
    ok.

unregister(_Config) ->
    ok = py:register_pool(io, requests),
    ok = py:register_pool(io, {urllib, urlopen}),
    ok = py:register_pool(io, {httpx, 'get'}),
    io = py_context_router:lookup_pool(requests, get),
    io = py_context_router:lookup_pool(urllib, urlopen),
    default = py_context_router:lookup_pool(urllib, quote),
    ok = py:unregister_pool(requests),
    default = py_context_router:lookup_pool(requests, get),
    ok = py:unregister_pool({urllib, urlopen}),
    default = py_context_router:lookup_pool(urllib, urlopen),
    ok = py_context_router:unregister_pool(httpx, 'get'),
    default = py_context_router:lookup_pool(httpx, 'get'),
    [] = py_context_router:list_pool_registrations(),
    %% unregistering a module keeps its function registrations, and the reverse
    ok = py:register_pool(io, json),
    ok = py:register_pool(io, {json, dumps}),
    ok = py:unregister_pool(json),
    default = py_context_router:lookup_pool(json, loads),
    io = py_context_router:lookup_pool(json, dumps),
    ok = py:register_pool(io, json),
    ok = py:unregister_pool({json, dumps}),
    io = py_context_router:lookup_pool(json, dumps),
    ok = py_context_router:unregister_pool(json),
    %% unregistering what is not registered is fine; the call goes back to default
    ok = py:unregister_pool(never_registered),
    ok = py:unregister_pool({never_registered, f}),
    [] = py_context_router:list_pool_registrations(),
    ok = py:register_pool(io, os),
    {ok, IoPid} = py:call(os, getpid, []),
    IoPid = io_os_pid(),
    ok = py:unregister_pool(os),
    {ok, true} = in(py:call(os, getpid, []), default_os_pids()),
    ok.

%% The guide's custom pool: start_pool(gpu, 2, worker) and modules registered to it.
custom_pool(_Config) ->
    {ok, [_, _] = Ctxs} = py_context_router:start_pool(gpu, 2, worker),
    Ctxs = py_context_router:contexts(gpu),
    ok = py:register_pool(gpu, torch),
    ok = py:register_pool(gpu, tensorflow),
    gpu = py_context_router:lookup_pool(torch, zeros),
    gpu = py_context_router:lookup_pool(tensorflow, constant),
    %% (not installed here: the error comes from the gpu pool's Python)
    {error, {'ModuleNotFoundError', _}} = py:call(torch, zeros, [3]),
    ok = py:register_pool(gpu, {os, getpid}),
    [GpuPid] = lists:usort([os_pid(C) || C <- Ctxs]),
    {ok, GpuPid} = py:call(os, getpid, []),
    {ok, GpuPid} = py:call(gpu, os, getpid, []),
    false = lists:member(GpuPid, [io_os_pid() | default_os_pids()]),
    ok = py_context_router:stop_pool(gpu),
    {error, {pool_not_started, gpu}} = py:call(os, getpid, []),
    ok.

%% The guide's init_pools/handle_request, with stdlib stand-ins: pools_db for
%% psycopg2 and zlib.crc32 for the hash.
request_handler_example(_Config) ->
    ok = init_pools(),
    IoPid = io_os_pid(),
    UserId = <<"user-42">>,
    {ok, Hash} = py:call(zlib, crc32, [{bytes, UserId}]),
    true = is_integer(Hash),
    {ok, [IoPid, [Row]]} = py:call(pools_db, query,
                                   [<<"SELECT * FROM users WHERE id = ?">>, [UserId]]),
    {ok, Json} = py:call(json, dumps, [Row]),
    <<"[\"user-42\", \"user\"]">> = Json,
    io = py_context_router:lookup_pool(pools_db, fetchone),
    io = py_context_router:lookup_pool(requests, get),
    default = py_context_router:lookup_pool(json, dumps),
    ok.

init_pools() ->
    ok = py:register_pool(io, requests),
    ok = py:register_pool(io, httpx),
    ok = py:register_pool(io, pools_db),
    ok = py:register_pool(io, redis),
    ok.

%% The guide's process_batch: fetches on the io pool in parallel, then the CPU
%% work on default. (The guide collects py:cast results with py:await; cast
%% returns ok, so spawn_call is what gives something to await.)
batch_example(_Config) ->
    ok = py:register_pool(io, {pools_probe, download}),
    IoPid = io_os_pid(),
    DefaultPids = default_os_pids(),
    Items = [<<"k", (integer_to_binary(I))/binary>> || I <- lists:seq(1, 20)],
    Futures = [py:spawn_call(pools_probe, download, [Key]) || Key <- Items],
    Files = [begin {ok, [Key, IoPid]} = py:await(F, ?PROMPT_MS), Key end
             || {F, Key} <- lists:zip(Futures, Items)],
    Items = Files,
    Predictions = [py:call(pools_probe, predict, [File]) || File <- Files],
    [{ok, true} = in({ok, Pid}, DefaultPids) || {ok, [_, Pid]} <- Predictions],
    20 = length([ok || {ok, [_, _]} <- Predictions]),
    ok.

monitoring(_Config) ->
    true = py_context_router:pool_started(default),
    true = py_context_router:pool_started(io),
    false = py_context_router:pool_started(pools_never_started),
    DefaultSize = py_context_router:num_contexts(default),
    DefaultSize = erlang:system_info(schedulers),
    10 = py_context_router:num_contexts(io),
    0 = py_context_router:num_contexts(pools_never_started),
    [] = py_context_router:contexts(pools_never_started),
    {error, {pool_not_started, pools_never_started}} =
        py_context_router:get_context(pools_never_started),
    ok = py:register_pool(io, requests),
    ok = py:register_pool(default, {json, dumps}),
    ok = py:register_pool(io, <<"binmod">>),
    Regs = py_context_router:list_pool_registrations(),
    Expected = [{{requests, '_'}, io}, {{json, dumps}, default}, {{<<"binmod">>, '_'}, io}],
    true = lists:sort(Expected) =:= lists:sort(Regs),
    io = py_context_router:lookup_pool(requests, get),
    default = py_context_router:lookup_pool(math, sqrt),
    io = py_context_router:lookup_pool(binmod, anything),
    ok.

backward_compatible(_Config) ->
    {ok, 4.0} = py:call(math, sqrt, [16]),
    {ok, <<"{\"a\": 1}">>} = py:call(json, dumps, [#{a => 1}]),
    {ok, 6} = py:eval(<<"2 + 4">>),
    {ok, true} = in(py:call(os, getpid, []), default_os_pids()),
    ok.

%%====================================================================
%% Pools
%%====================================================================

%% Sizes 1, 2 and 20 in both modes: a worker pool is one port program whatever
%% its size, a process pool one per context. Every context answers from its own
%% port program and thread, has its own namespace, and calls through the pool
%% go round the contexts.
pool_sizes(_Config) ->
    Specs = [{pools_w1, 1, worker}, {pools_w2, 2, worker}, {pools_w20, 20, worker},
             {pools_p1, 1, process}, {pools_p2, 2, process}, {pools_p20, 20, process}],
    Started = [{Pool, Size, Mode, start_ok(Pool, Size, Mode)} || {Pool, Size, Mode} <- Specs],
    [check_pool(Pool, Size, Mode, Ctxs) || {Pool, Size, Mode, Ctxs} <- Started],
    AllPids = lists:append([[os_pid(C) || C <- Ctxs] || {_, _, _, Ctxs} <- Started]),
    %% 1 + 1 + 1 worker programs, 1 + 2 + 20 process ones, none shared
    26 = length(lists:usort(AllPids)),
    ok.

start_ok(Pool, Size, Mode) ->
    {ok, Ctxs} = py_context_router:start_pool(Pool, Size, Mode),
    Ctxs.

check_pool(Pool, Size, Mode, Ctxs) ->
    Size = length(Ctxs),
    Ctxs = py_context_router:contexts(Pool),
    Size = py_context_router:num_contexts(Pool),
    true = py_context_router:pool_started(Pool),
    OsPids = [os_pid(C) || C <- Ctxs],
    [{ok, P} = py:call(C, os, getpid, []) || {C, P} <- lists:zip(Ctxs, OsPids)],
    case Mode of
        worker -> 1 = length(lists:usort(OsPids));
        process -> Size = length(lists:usort(OsPids))
    end,
    Threads = [T || C <- Ctxs, {ok, T} <- [py:call(C, threading, get_native_id, [])]],
    Size = length(lists:usort(Threads)),
    %% namespaces are per context
    [ok = py:exec(C, [<<"pool_marker = ">>, integer_to_binary(I)])
     || {I, C} <- lists:zip(lists:seq(1, Size), Ctxs)],
    [{ok, I} = py:eval(C, <<"pool_marker">>) || {I, C} <- lists:zip(lists:seq(1, Size), Ctxs)],
    %% Size callers in a row through the pool (all idle): one per context
    Served = [T || _ <- Ctxs, {ok, T} <- [fresh(fun() -> py:call(Pool, threading, get_native_id, []) end)]],
    true = lists:sort(Served) =:= lists:sort(Threads),
    ok.

start_pool_errors(_Config) ->
    {error, {already_started, default}} = py_context_router:start_pool(default, 1),
    {error, {already_started, io}} = py_context_router:start_pool(io, 2, worker),
    {error, _} = py_context_router:start_pool(pools_bad, 0),
    {error, _} = py_context_router:start_pool(pools_bad, -1, worker),
    {error, _} = py_context_router:start_pool("pools_bad", 1),
    {error, _} = py_context_router:start_pool(pools_bad, 1, "worker"),
    %% options of the wrong type are refused, not crashing the caller
    {error, {badarg, {python_path, foo}}} =
        py_context_router:start_pool(pools_bad, 1, #{python_path => foo}),
    {error, {badarg, {python_path, [1]}}} =
        py_context_router:start_pool(pools_bad, 1, #{python_path => [1]}),
    {error, {badarg, {env, foo}}} = py_context_router:start_pool(pools_bad, 1, #{env => foo}),
    {error, {badarg, {env, #{"K" := 1}}}} =
        py_context_router:start_pool(pools_bad, 1, #{env => #{"K" => 1}}),
    {error, {badarg, {venv, 42}}} = py_context_router:start_pool(pools_bad, 1, #{venv => 42}),
    {error, {badarg, {max_memory, -5}}} =
        py_context_router:start_pool(pools_bad, 1, #{max_memory => -5}),
    false = py_context_router:pool_started(pools_bad),
    {error, _} = py:register_pool("io", json),
    {error, _} = py:register_pool(io, 42),
    {error, _} = py:register_pool(io, {json, 42}),
    [] = py_context_router:list_pool_registrations(),
    %% the pools that exist are untouched
    Schedulers = erlang:system_info(schedulers),
    Schedulers = py_context_router:num_contexts(default),
    {ok, 3} = py:call(operator, add, [1, 2]),
    ok.

%% A mode that is not auto | subinterp | worker | process is an error, like a
%% bad size.
start_pool_rejects_unknown_mode(_Config) ->
    R1 = py_context_router:start_pool(pools_bad, 1, bogus),
    Started1 = py_context_router:pool_started(pools_bad),
    ok = py_context_router:stop_pool(pools_bad),
    R2 = py_context_router:start_pool(pools_bad, 1, #{mode => bogus}),
    Started2 = py_context_router:pool_started(pools_bad),
    ok = py_context_router:stop_pool(pools_bad),
    {{error, _}, false, {error, _}, false} = {R1, Started1, R2, Started2},
    ok.

%% subinterp on the embedded Python 3.11: a worker pool and a logged notice;
%% auto on a pool other than default: worker too.
subinterp_runs_as_worker(_Config) ->
    capture_log(),
    {ok, Ctxs} = py_context_router:start_pool(pools_si, 3, subinterp),
    3 = length(Ctxs),
    [_] = lists:usort([os_pid(C) || C <- Ctxs]),
    #{msg := Msg} = receive_log(fun(#{level := notice, msg := M}) -> mentions(M, "subinterp");
                                   (_) -> false
                                end),
    ct:pal("notice: ~p", [Msg]),
    {ok, 4.0} = py:call(pools_si, math, sqrt, [16]),
    {ok, Auto} = py_context_router:start_pool(pools_auto, 3),
    [_] = lists:usort([os_pid(C) || C <- Auto]),
    ok.

%% All 10 io contexts are held in an Erlang function; meanwhile default calls
%% (by registration and explicit) complete, a routed io call stays queued, and a
%% call to a busy io context times out without disturbing the held call.
io_does_not_block_default(_Config) ->
    register_hold(),
    IoCtxs = py_context_router:contexts(io),
    10 = length(IoCtxs),
    IoPid = io_os_pid(),
    DefaultPids = default_os_pids(),
    Tagged = lists:zip(lists:seq(1, 10), IoCtxs),
    Held = [{I, async(fun() -> py:call(C, pools_probe, hold, [I]) end)} || {I, C} <- Tagged],
    Holds = await_holds(10),
    [IoPid] = lists:usort([P || {_, P, _} <- Holds]),
    true = lists:seq(1, 10) =:= lists:sort([T || {T, _, _} <- Holds]),
    %% io is saturated: a further call to an io context waits
    {error, timeout} = py:call(hd(IoCtxs), math, sqrt, [4], #{timeout => 200}),
    ok = py:register_pool(io, {pools_probe, hold}),
    Routed = async(fun() -> py:call(pools_probe, hold, [11]) end),
    T0 = now_ms(),
    [{ok, 4.0} = py:call(math, sqrt, [16]) || _ <- lists:seq(1, 100)],
    [{ok, 3} = py:call(default, operator, add, [1, 2]) || _ <- lists:seq(1, 100)],
    [{ok, true} = in(py:call(default, os, getpid, []), DefaultPids) || _ <- DefaultPids],
    ok = py:exec(<<"x = 1">>),
    Elapsed = now_ms() - T0,
    ct:pal("204 default calls in ~p ms while every io context was held", [Elapsed]),
    [] = [Pid || {_, Pid} <- [{11, Routed} | Held], has_result(Pid)],
    %% release: the held calls, then the routed one once it holds in its turn
    [H ! {release, T} || {T, _, H} <- Holds],
    [{ok, I} = result(Pid) || {I, Pid} <- Held],
    [{11, IoPid, H11}] = await_holds(1),
    H11 ! {release, 11},
    {ok, 11} = result(Routed),
    %% the context that got the timed-out call still works
    {ok, 2.0} = py:call(hd(IoCtxs), math, sqrt, [4]),
    ok.

%% 200 calls spread over a 4-context process pool (each held in Erlang, so all
%% are in flight or queued); one port program is killed with SIGKILL. Its
%% callers get errors at once, every other call succeeds, and the pool is back
%% to 4 live contexts, with a new context and port program in the killed slot.
crash_in_one_context(_Config) ->
    register_hold(),
    Pool = pools_crash,
    {ok, Ctxs} = py_context_router:start_pool(Pool, 4, process),
    OsPids = [os_pid(C) || C <- Ctxs],
    4 = length(lists:usort(OsPids)),
    [{ok, P} = py:call(C, os, getpid, []) || {C, P} <- lists:zip(Ctxs, OsPids)],
    [Victim | Others] = Ctxs,
    VictimOs = os_pid(Victim),
    {ok, _, VictimOwner, _} = py_context:lookup(Victim),
    Test = self(),
    Callers = [spawn_link(fun() ->
                                  Ctx = py_context_router:get_context(Pool),
                                  Test ! {picked, self(), Ctx},
                                  R = py:call(Ctx, pools_probe, hold, [I]),
                                  Test ! {done, self(), R, now_ms()}
                          end) || I <- lists:seq(1, ?CRASH_CALLS)],
    Picks = maps:from_list([receive {picked, Pid, Ctx} -> {Pid, Ctx} end || Pid <- Callers]),
    PerCtx = [{C, length([x || Picked <- maps:values(Picks), Picked =:= C])} || C <- Ctxs],
    ct:pal("calls per context: ~p", [[N || {_, N} <- PerCtx]]),
    [] = [C || {C, 0} <- PerCtx],
    %% one call running in each port program; the rest queued behind them
    Running = await_holds_from(lists:sort(OsPids), []),
    OwnerRef = monitor(process, VictimOwner),
    T0 = now_ms(),
    _ = os:cmd("kill -9 " ++ integer_to_list(VictimOs)),
    [H ! {release, T} || {T, P, H} <- Running, P =/= VictimOs],
    Results = collect_crash_results(Callers, VictimOs, #{}),
    {VictimResults, OtherResults} =
        lists:partition(fun({Pid, _, _}) -> maps:get(Pid, Picks) =:= Victim end,
                        [{Pid, R, T - T0} || Pid <- Callers, {R, T} <- [maps:get(Pid, Results)]]),
    Slowest = lists:max([Ms || {_, _, Ms} <- VictimResults]),
    ct:pal("~p calls to the killed context answered within ~p ms: ~p",
           [length(VictimResults), Slowest,
            lists:usort([R || {_, R, _} <- VictimResults])]),
    [] = [R || {_, R, _} <- VictimResults, not is_error(R)],
    true = lists:any(fun({_, R, _}) -> R =:= {error, {python_died, 137}} end, VictimResults),
    true = Slowest < ?PROMPT_MS,
    [] = [R || {_, R, _} <- OtherResults, element(1, R) =/= ok],
    ?CRASH_CALLS = length(VictimResults) + length(OtherResults),
    receive {'DOWN', OwnerRef, process, VictimOwner, _} -> ok
    after ?PROMPT_MS -> ct:fail(owner_still_alive)
    end,
    false = os_pid_alive(VictimOs),
    %% the pool is whole again: the other contexts untouched, slot 1 (same pid)
    %% served by a new port program
    [New | Others] = py_test_util:wait_until(fun() ->
                                        case py_context_router:contexts(Pool) of
                                            [Victim | Others] = Cs ->
                                                new_owner(Victim, VictimOwner) andalso Cs;
                                            _ -> false
                                        end
                                end, ?PROMPT_MS),
    4 = py_context_router:num_contexts(Pool),
    NewOs = os_pid(New),
    true = NewOs =/= VictimOs,
    true = os_pid_alive(NewOs),
    {ok, NewOs} = py:call(New, os, getpid, []),
    Served = lists:usort([P || _ <- Ctxs, {ok, P} <- [fresh(fun() -> py:call(Pool, os, getpid, []) end)]]),
    true = Served =:= lists:usort([NewOs | tl(OsPids)]),
    ok.

%% Holds arrive from the killed program only before the kill; the others are
%% released as they come, until every caller has answered.
collect_crash_results(Callers, VictimOs, Acc) when map_size(Acc) =:= length(Callers) ->
    _ = VictimOs,
    Acc;
collect_crash_results(Callers, VictimOs, Acc) ->
    receive
        {held, T, _P, H} ->
            H ! {release, T},
            collect_crash_results(Callers, VictimOs, Acc);
        {done, Pid, R, T} ->
            collect_crash_results(Callers, VictimOs, Acc#{Pid => {R, T}})
    after ?PROMPT_MS * 2 ->
        ct:fail({callers_still_waiting, length(Callers) - map_size(Acc)})
    end.

await_holds_from([], Acc) ->
    Acc;
await_holds_from(Pending, Acc) ->
    receive
        {held, T, P, H} ->
            true = lists:member(P, Pending),
            await_holds_from(lists:delete(P, Pending), [{T, P, H} | Acc])
    after ?PROMPT_MS * 2 ->
        ct:fail({no_call_running_in, Pending})
    end.

python_path_option(Config) ->
    Dir = filename:join(?config(priv_dir, Config), "python_path"),
    ok = filelib:ensure_dir(filename:join(Dir, "x")),
    ok = file:write_file(filename:join(Dir, "mymod.py"),
                         <<"def f():\n    return 'mymod from python_path'\n">>),
    {ok, [Ctx]} = py_context_router:start_pool(pools_pp, 1, #{python_path => [Dir]}),
    {ok, <<"mymod from python_path">>} = py:call(pools_pp, mymod, f, []),
    {ok, true} = py:eval(Ctx, <<"p in __import__('sys').path">>, #{p => list_to_binary(Dir)}),
    %% only that pool has it
    {error, {'ModuleNotFoundError', _}} = py:call(default, mymod, f, []),
    {error, {'ModuleNotFoundError', _}} = py:call(io, mymod, f, []),
    ok.

%% A venv's lib/python3.X/site-packages goes on sys.path (made by hand here).
venv_option(Config) ->
    Venv = filename:join(?config(priv_dir, Config), "venv"),
    Site = filename:join([Venv, "lib", "python3.11", "site-packages"]),
    ok = filelib:ensure_dir(filename:join(Site, "x")),
    ok = file:write_file(filename:join(Site, "mymod2.py"),
                         <<"def f():\n    return 'mymod2 from the venv'\n">>),
    {ok, [_]} = py_context_router:start_pool(pools_venv, 1,
                                             #{mode => worker, venv => list_to_binary(Venv)}),
    {ok, <<"mymod2 from the venv">>} = py:call(pools_venv, mymod2, f, []),
    {error, {'ModuleNotFoundError', _}} = py:call(default, mymod2, f, []),
    ok.

env_option(_Config) ->
    {ok, [Ctx]} = py_context_router:start_pool(pools_env, 1,
                                               #{env => #{"EP_TEST_VAR" => "42",
                                                          <<"EP_TEST_BIN">> => <<"bin">>}}),
    {ok, <<"42">>} = py:call(pools_env, os, getenv, [<<"EP_TEST_VAR">>]),
    {ok, <<"bin">>} = py:call(pools_env, os, getenv, [<<"EP_TEST_BIN">>]),
    {ok, <<"42">>} = py:eval(Ctx, <<"__import__('os').environ['EP_TEST_VAR']">>),
    {ok, none} = py:call(default, os, getenv, [<<"EP_TEST_VAR">>]),
    {ok, none} = py:call(io, os, getenv, [<<"EP_TEST_VAR">>]),
    ok.

%% Python allocates 1 GB in a pool capped at 200 MB and keeps it (it catches
%% the MemoryError the cap raises first, see py_memory_SUITE): the port
%% program is killed (the call would otherwise sleep 30 s), the caller gets
%% python_died at once, and the pool restarts it.
max_memory_option(_Config) ->
    Pool = pools_mem,
    {ok, [Ctx]} = py_context_router:start_pool(Pool, 1, #{max_memory => 200000000}),
    OsPid = os_pid(Ctx),
    {ok, _, OldOwner, _} = py_context:lookup(Ctx),
    {ok, OsPid} = py:call(Pool, os, getpid, []),
    T0 = now_ms(),
    R = py:call(Pool, pools_probe, alloc_and_hold, [1000000000, 10000000, 30]),
    Elapsed = now_ms() - T0,
    ct:pal("allocating 1 GB under max_memory 200 MB: ~p after ~p ms", [R, Elapsed]),
    {error, {python_died, 137}} = R,
    true = Elapsed < 10000,
    false = os_pid_alive(OsPid),
    New = py_test_util:wait_until(fun() ->
                             case py_context_router:contexts(Pool) of
                                 [Ctx] -> new_owner(Ctx, OldOwner) andalso Ctx;
                                 _ -> false
                             end
                     end, ?PROMPT_MS),
    NewOs = os_pid(New),
    true = NewOs =/= OsPid,
    {ok, NewOs} = py:call(Pool, os, getpid, []),
    %% an allocation under the cap is fine
    {ok, 5} = py:call(Pool, pools_probe, alloc, [50000000, 10000000, 0]),
    ok.

%% stop_pool with a call in flight: the caller gets an error, later calls (also
%% routed by registration) get pool_not_started, and the port programs are gone.
%% The name can then be started again.
stop_pool(_Config) ->
    register_hold(),
    Pool = pools_stop,
    {ok, Ctxs} = py_context_router:start_pool(Pool, 2, process),
    OsPids = [os_pid(C) || C <- Ctxs],
    2 = length(lists:usort(OsPids)),
    [{ok, P} = py:call(C, os, getpid, []) || {C, P} <- lists:zip(Ctxs, OsPids)],
    InFlight = async(fun() -> py:call(Pool, pools_probe, hold, [1]) end),
    [{1, _, _}] = await_holds(1),
    T0 = now_ms(),
    ok = py_context_router:stop_pool(Pool),
    Stopped = now_ms() - T0,
    {error, Reason} = result(InFlight),
    ct:pal("stop_pool took ~p ms; the call in flight got ~p", [Stopped, Reason]),
    [] = [P || P <- OsPids, os_pid_alive(P)],
    [] = [C || C <- Ctxs, is_process_alive(C)],
    false = py_context_router:pool_started(Pool),
    0 = py_context_router:num_contexts(Pool),
    [] = live_contexts(Pool),
    {error, {pool_not_started, Pool}} = py_context_router:get_context(Pool),
    {error, {pool_not_started, Pool}} = py:call(Pool, math, sqrt, [4]),
    {error, {pool_not_started, Pool}} = py:call(Pool, json, dumps, [[]], #{indent => 2}),
    ok = py:register_pool(Pool, {math, sqrt}),
    {error, {pool_not_started, Pool}} = py:call(math, sqrt, [4]),
    ok = py:unregister_pool({math, sqrt}),
    %% stopping again, or a pool that never ran, is fine
    ok = py_context_router:stop_pool(Pool),
    ok = py_context_router:stop_pool(pools_never_started),
    %% the default and io pools are untouched
    {ok, 2.0} = py:call(math, sqrt, [4]),
    {ok, 2.0} = py:call(io, math, sqrt, [4]),
    %% started again under the same name
    {ok, [Ctx]} = py_context_router:start_pool(Pool, 1, worker),
    NewOs = os_pid(Ctx),
    {ok, NewOs} = py:call(Pool, os, getpid, []),
    ok = py_context_router:stop_pool(Pool),
    false = os_pid_alive(NewOs),
    ok.

%% A 2-context pool with one context busy (a call waiting on a threading.Event):
%% get_context returns the other one, every time; idle again, both are used.
get_context_prefers_idle(_Config) ->
    Pool = pools_idle,
    {ok, [C1, C2]} = py_context_router:start_pool(Pool, 2, worker),
    {ok, T1} = py:call(C1, threading, get_native_id, []),
    {ok, T2} = py:call(C2, threading, get_native_id, []),
    Test = self(),
    Busy = async(fun() -> py:call(C1, pools_probe, wait_event, [<<"idle">>, Test, 30]) end),
    receive {waiting, <<"idle">>, _} -> ok after ?PROMPT_MS -> ct:fail(not_waiting) end,
    [C2 = py_context_router:get_context(Pool) || _ <- lists:seq(1, 10)],
    [{ok, T2} = py:call(Pool, threading, get_native_id, []) || _ <- lists:seq(1, 5)],
    false = has_result(Busy),
    {ok, true} = py:call(C2, pools_probe, set_event, [<<"idle">>]),
    {ok, true} = result(Busy),
    %% both idle: new callers go round robin over both; a caller calling in a
    %% loop stays with the context it used last while that one is idle
    [C1, C2] = lists:usort([fresh(fun() -> py_context_router:get_context(Pool) end)
                            || _ <- lists:seq(1, 4)]),
    [T1, T2] = lists:usort([T || _ <- [1, 2],
                                 {ok, T} <- [fresh(fun() -> py:call(Pool, threading, get_native_id, []) end)]]),
    Mine = py_context_router:get_context(Pool),
    [Mine = py_context_router:get_context(Pool) || _ <- lists:seq(1, 5)],
    ok.

%% A caller killed while its call runs (a linked process exiting, a supervisor
%% shutting a worker down) must not leave its context marked busy for ever:
%% once that context is idle again, get_context must pick it again.
get_context_after_killed_caller(_Config) ->
    Pool = pools_idle,
    {ok, [C1, C2]} = py_context_router:start_pool(Pool, 2, worker),
    Test = self(),
    Caller = spawn(fun() ->
                           py:call(C1, pools_probe, wait_event, [<<"killed">>, Test, 30])
                   end),
    receive {waiting, <<"killed">>, _} -> ok after ?PROMPT_MS -> ct:fail(not_waiting) end,
    Ref = monitor(process, Caller),
    exit(Caller, kill),
    receive {'DOWN', Ref, process, Caller, killed} -> ok end,
    {ok, true} = py:call(C2, pools_probe, set_event, [<<"killed">>]),
    %% C1 runs its requests in order: once this returns, the abandoned call is over
    {ok, 2.0} = py:call(C1, math, sqrt, [4]),
    Picks = [fresh(fun() -> py_context_router:get_context(Pool) end) || _ <- lists:seq(1, 4)],
    ct:pal("C1 ~p, C2 ~p; get_context x4: ~p", [C1, C2, Picks]),
    true = lists:sort([C1, C2]) =:= lists:usort(Picks),
    ok.

%% Callers killed (or shut down by an exit signal) while their calls run or
%% wait in the context's queue: every slot's in-flight counter returns to 0,
%% and get_context goes back to preferring the idle context.
killed_callers_release_counters(_Config) ->
    Pool = pools_idle,
    %% C3 stays free to set the events the others wait on
    {ok, [C1, C2, C3]} = py_context_router:start_pool(Pool, 3, worker),
    Test = self(),
    Call = fun(Ctx, Event) ->
                   spawn(fun() -> py:call(Ctx, pools_probe, wait_event, [Event, Test, 30]) end)
           end,
    %% one call runs in C1 and one in C2, three more wait in C1's queue
    Running = [Call(C1, <<"k1">>), Call(C2, <<"k2">>)],
    [receive {waiting, E, _} -> ok after ?PROMPT_MS -> ct:fail({not_waiting, E}) end
     || E <- [<<"k1">>, <<"k2">>]],
    Queued = [Call(C1, <<"k1">>) || _ <- lists:seq(1, 3)],
    [4, 1, 0] = py_test_util:wait_until(fun() -> case in_flight(Pool) of [4, 1, 0] = L -> L; _ -> false end end,
                           ?PROMPT_MS),
    %% killed, or ended by an exit signal they do not trap
    Refs = [{monitor(process, P), P} || P <- Running ++ Queued],
    [exit(P, if P =:= hd(Queued) -> shutdown; true -> kill end) || P <- Running ++ Queued],
    [receive {'DOWN', R, process, P, _} -> ok end || {R, P} <- Refs],
    [0, 0, 0] = py_test_util:wait_until(fun() -> case in_flight(Pool) of [0, 0, 0] = L -> L; _ -> false end end,
                           ?PROMPT_MS),
    %% the abandoned calls finish in Python
    {ok, true} = py:call(C3, pools_probe, set_event, [<<"k1">>]),
    {ok, true} = py:call(C3, pools_probe, set_event, [<<"k2">>]),
    {ok, 2.0} = py:call(C1, math, sqrt, [4]),
    {ok, 2.0} = py:call(C2, math, sqrt, [4]),
    [0, 0, 0] = in_flight(Pool),
    %% routing: with C1 busy, never C1; all idle, all of them
    Busy = async(fun() -> py:call(C1, pools_probe, wait_event, [<<"k3">>, Test, 30]) end),
    receive {waiting, <<"k3">>, _} -> ok after ?PROMPT_MS -> ct:fail(not_waiting) end,
    [1, 0, 0] = in_flight(Pool),
    true = lists:sort([C2, C3]) =:=
        lists:usort([fresh(fun() -> py_context_router:get_context(Pool) end)
                     || _ <- lists:seq(1, 9)]),
    {ok, true} = py:call(C3, pools_probe, set_event, [<<"k3">>]),
    {ok, true} = result(Busy),
    [0, 0, 0] = in_flight(Pool),
    true = lists:sort([C1, C2, C3]) =:=
        lists:usort([fresh(fun() -> py_context_router:get_context(Pool) end)
                     || _ <- lists:seq(1, 6)]),
    %% a caller that used another pool first, killed mid-call: the counter of
    %% the pool it was calling comes down, the other pool's stay as they were
    Mover = spawn(fun() ->
                          {ok, 2.0} = py:call(default, math, sqrt, [4]),
                          py:call(C1, pools_probe, wait_event, [<<"k4">>, Test, 30])
                  end),
    receive {waiting, <<"k4">>, _} -> ok after ?PROMPT_MS -> ct:fail(not_waiting) end,
    [1, 0, 0] = in_flight(Pool),
    MoverRef = monitor(process, Mover),
    exit(Mover, kill),
    receive {'DOWN', MoverRef, process, Mover, _} -> ok end,
    [0, 0, 0] = py_test_util:wait_until(fun() -> case in_flight(Pool) of [0, 0, 0] = L -> L; _ -> false end end,
                           ?PROMPT_MS),
    true = lists:all(fun(N) -> N =:= 0 end, in_flight(default)),
    {ok, true} = py:call(C3, pools_probe, set_event, [<<"k4">>]),
    {ok, 2.0} = py:call(C1, math, sqrt, [4]),
    [0, 0, 0] = in_flight(Pool),
    ok.

%% The in-flight counters of a pool's slots.
in_flight(Pool) ->
    [{_, Size, Counters, _}] = ets:lookup(py_pools, Pool),
    [atomics:get(Counters, Slot + 2) || Slot <- lists:seq(0, Size - 1)].

%% An io-style pool whose Python waits in an Erlang function (erlang.call on the
%% context's own thread): while it waits, the context runs the requests of that
%% callback's chain nested on the same thread (here sent by a process acting
%% for the callback: py_callback:join_chain/1). The outer call must still get
%% its reply when that reply comes in while the nested call waits in
%% erlang.call too, and a timeout of the outer caller must not cancel the
%% nested call, nor the other way round.
nested_request_keeps_outer_callback(_Config) ->
    Test = self(),
    ok = py:register_function(pools_hold, fun([Tag, OsPid]) ->
                                                  Test ! {held, Tag, OsPid, self()},
                                                  Test ! {chain, Tag, py_callback:chain()},
                                                  receive {release, Reply} -> Reply end
                                          end),
    {ok, [C]} = py_context_router:start_pool(pools_nest, 1, worker),
    Call = fun(Tag, Timeout, Chain) ->
                   async(fun() ->
                                 ok = py_callback:join_chain(Chain),
                                 py:call(C, pools_probe, hold_in_callback, [Tag],
                                         #{timeout => Timeout})
                         end)
           end,
    ChainOf = fun(Tag) -> receive {chain, Tag, Chain} -> Chain after 5000 -> ct:fail(Tag) end end,
    %% 1. A waits; B runs nested and waits; A's reply reaches the port program
    %% first, then B's
    A = Call(a, 2000, none),
    [{a, _, HA}] = await_holds(1),
    B = Call(b, 2000, ChainOf(a)),
    [{b, _, HB}] = await_holds(1),
    HA ! {release, a},
    ok = wait_reply_written(HA),
    HB ! {release, b},
    RB = result(B),
    RA = result(A),
    %% 2. A2 times out (its request is cancelled) while B2 waits nested in it
    A2 = Call(a2, 300, none),
    [{a2, _, HA2}] = await_holds(1),
    B2 = Call(b2, 2000, ChainOf(a2)),
    [{b2, _, HB2}] = await_holds(1),
    RA2 = result(A2),
    HB2 ! {release, b2},
    RB2 = result(B2),
    HA2 ! {release, a2},
    %% A2's wait saw its cancellation once B2 was over, not before
    {ok, ErrA2} = py:call(C, pools_probe, error_of, [a2]),
    {ok, none} = py:call(C, pools_probe, error_of, [b2]),
    %% 3. the nested B3 times out while A3 waits under it: only B3 is cancelled,
    %% A3 still gets its reply
    A3 = Call(a3, 5000, none),
    [{a3, _, HA3}] = await_holds(1),
    B3 = Call(b3, 300, ChainOf(a3)),
    [{b3, _, HB3}] = await_holds(1),
    RB3 = result(B3),
    HA3 ! {release, a3},
    RA3 = result(A3),
    HB3 ! {release, b3},
    {ok, ErrB3} = py:call(C, pools_probe, error_of, [b3]),
    {ok, none} = py:call(C, pools_probe, error_of, [a3]),
    ct:pal("A: ~p~nB: ~p~nA2: ~p (~p)~nB2: ~p~nA3: ~p~nB3: ~p (~p)",
           [RA, RB, RA2, ErrA2, RB2, RA3, RB3, ErrB3]),
    {ok, 2.0} = py:call(C, math, sqrt, [4]),
    {{ok, a}, {ok, b}, {error, timeout}, {ok, b2}, {ok, a3}, {error, timeout}} =
        {RA, RB, RA2, RB2, RA3, RB3},
    true = binary:match(ErrA2, <<"cancelled">>) =/= nomatch,
    true = binary:match(ErrB3, <<"cancelled">>) =/= nomatch,
    ok.

%% The handler H has returned from the registered function (so its reply is
%% written to the port): it waits for messages outside this module's fun.
wait_reply_written(H) ->
    py_test_util:wait_until(fun() ->
                       case erlang:process_info(H, [status, current_function]) of
                           [{status, waiting}, {current_function, {M, _, _}}] -> M =/= ?MODULE;
                           undefined -> true;
                           _ -> false
                       end
               end, ?PROMPT_MS),
    ok.

%%====================================================================
%% Configuration by application environment
%%====================================================================

%% A process keeps the routes of the pools it calls (py_pool:checkout/1): its
%% next call after a context restarted, or after the pool was stopped and
%% started again under the same name, goes to the new context at once.
cached_routes_follow_changes(_Config) ->
    Pool = pools_cache,
    {ok, [Ctx]} = py_context_router:start_pool(Pool, 1, process),
    OsPid = os_pid(Ctx),
    {ok, OsPid} = py:call(Pool, os, getpid, []),
    {ok, _, OldOwner, _} = py_context:lookup(Ctx),
    _ = os:cmd("kill -9 " ++ integer_to_list(OsPid)),
    [Restarted] = py_test_util:wait_until(fun() ->
                                     case py_context_router:contexts(Pool) of
                                         [Ctx] = Cs -> new_owner(Ctx, OldOwner) andalso Cs;
                                         _ -> false
                                     end
                             end, ?PROMPT_MS),
    NewOsPid = os_pid(Restarted),
    {ok, NewOsPid} = py:call(Pool, os, getpid, []),
    ok = py_context_router:stop_pool(Pool),
    {error, {pool_not_started, Pool}} = py:call(Pool, os, getpid, []),
    {ok, [Again]} = py_context_router:start_pool(Pool, 1, process),
    AgainOsPid = os_pid(Again),
    {ok, AgainOsPid} = py:call(Pool, os, getpid, []),
    true = lists:usort([OsPid, NewOsPid, AgainOsPid]) =:= lists:sort([OsPid, NewOsPid, AgainOsPid]),
    ok.

%% A process whose context is restarting (here: its py_context stopped by
%% its supervisor, the state between a crash and the restart) is served at
%% once by another context of the pool, not told `context_starting'.
restarting_member_is_skipped(_Config) ->
    Pool = pools_skip,
    {ok, [_, _]} = py_context_router:start_pool(Pool, 2, process),
    {ok, Used} = py:call(Pool, os, getpid, []),
    [Other] = [os_pid(C) || C <- py_context_router:contexts(Pool)] -- [Used],
    {PortSup, Ctx} = port_sup_of(Pool, Used),
    Ref = monitor(process, Ctx),
    ok = take_down(PortSup),
    receive {'DOWN', Ref, process, Ctx, _} -> ok end,
    1 = length(live_contexts(Pool)),
    %% the same process, many times (it also had the route cached)
    [{ok, Other} = py:call(Pool, os, getpid, []) || _ <- lists:seq(1, 20)],
    {ok, 4} = py:call(Pool, operator, add, [2, 2]),
    ok = bring_up(PortSup),
    2 = length(live_contexts(Pool)),
    {ok, _} = py:call(Pool, os, getpid, []),
    ok.

%% A member between a crash and its restart: its port program gone, and its
%% context (the pid users hold is a stable handle whose route stays) too.
take_down(PortSup) ->
    ok = supervisor:terminate_child(PortSup, {context, 0}),
    ok = supervisor:terminate_child(PortSup, port).

bring_up(PortSup) ->
    {ok, _} = supervisor:restart_child(PortSup, port),
    {ok, _} = supervisor:restart_child(PortSup, {context, 0}),
    ok.

%% The pool's contexts (stable handles) whose port program is up now.
live_contexts(Pool) ->
    [C || C <- py_context_router:contexts(Pool), {ok, Port, _, _} <- [py_context:lookup(C)],
          erlang:port_info(Port) =/= undefined].

%% With every context of the pool restarting, a call waits (within its
%% timeout) for one instead of failing; none comes: `{error, timeout}'.
call_waits_for_restarting_pool(_Config) ->
    Pool = pools_wait,
    {ok, [_]} = py_context_router:start_pool(Pool, 1, process),
    {ok, OsPid} = py:call(Pool, os, getpid, []),
    {PortSup, _Ctx} = port_sup_of(Pool, OsPid),
    ok = take_down(PortSup),
    [] = live_contexts(Pool),
    T0 = now_ms(),
    %% (stateless calls: a process's eval/exec stick to one context)
    ok = application:set_env(erlang_python, call_timeout, 200),
    {error, timeout} = py:call(Pool, operator, add, [1, 0]),
    ok = application:unset_env(erlang_python, call_timeout),
    true = now_ms() - T0 >= 200,
    Caller = async(fun() -> py:call(Pool, operator, add, [1, 1]) end),
    %% the caller is still waiting, not answered with an error
    receive {async_result, Caller, Early} -> ct:fail({answered_without_context, Early})
    after 300 -> ok
    end,
    ok = bring_up(PortSup),
    {ok, 2} = result(Caller),
    ok.

%% The py_port_sup of the pool's port program with OS pid OsPid, and its
%% (first) context.
port_sup_of(Pool, OsPid) ->
    [{_, PoolSup, _, _}] = [C || {Id, _, _, _} = C <- supervisor:which_children(py_pools_sup),
                                 Id =:= Pool],
    %% (the context child is this incarnation's process: the pid users hold
    %% is a stable handle, so the port program is told by its owner)
    [{PortSup, Ctx}] =
        [{Sup, Ctx} || {{port, _}, Sup, supervisor, _} <- supervisor:which_children(PoolSup),
                       {port, Owner, _, _} <- supervisor:which_children(Sup),
                       {{context, 0}, Ctx, _, _} <- supervisor:which_children(Sup),
                       is_pid(Owner), is_pid(Ctx),
                       maps:get(os_pid, py_port:info(Owner)) =:= OsPid],
    {PortSup, Ctx}.

%% One port program, three kinds of waiters at once: a context called in a
%% loop (it should read its own requests), a context called now and then (it
%% is cold, and its requests must still come promptly), and Python threads of
%% a third context calling Erlang (several replies awaited at once: the standby
%% reads for them). Every call completes with the right result, and no call to
%% the cold context waits anywhere near the standby's cover of a vacancy.
worker_pool_mixed_readers(_Config) ->
    Pool = pools_mix,
    {ok, [Hot, Cold, Threads]} = py_context_router:start_pool(Pool, 3, worker),
    ok = py:register_function(mix_ident, fun([X]) -> X end),
    try
        ok = py_context:exec(Threads, <<"
import threading
def mix_threads(n, calls):
    out = [0] * n
    def work(k):
        total = 0
        for i in range(calls):
            total += erlang.call('mix_ident', i)
        out[k] = total
    ts = [threading.Thread(target=work, args=(k,)) for k in range(n)]
    for t in ts: t.start()
    for t in ts: t.join()
    return out
">>, shared),
        CallbackJob = async(fun() -> py:call(Threads, '__main__', mix_threads, [4, 500],
                                             #{timeout => 60000}) end),
        HotJob = async(fun() -> [{ok, I} = py:call(Hot, operator, pos, [I])
                                 || I <- lists:seq(1, 3000)], ok end),
        ColdTimes = [begin
                         timer:sleep(3),  % long enough for Cold to count as cold
                         T0 = now_ms(),
                         {ok, I} = py:call(Cold, operator, pos, [I]),
                         now_ms() - T0
                     end || I <- lists:seq(1, 100)],
        ok = result(HotJob),
        Expected = lists:sum(lists:seq(0, 499)),
        {ok, [Expected, Expected, Expected, Expected]} = result(CallbackJob),
        ct:pal("cold context calls: max ~p ms, median ~p ms",
               [lists:max(ColdTimes), lists:nth(50, lists:sort(ColdTimes))]),
        true = lists:max(ColdTimes) < ?PROMPT_MS
    after
        py:unregister_function(mix_ident)
    end,
    ok.

%% Port programs run under SCHED_BATCH (their threads do not preempt an Erlang
%% scheduler when they wake up), executors and Python's own threads included;
%% `port_scheduling => normal' keeps the default policy for ports started later.
port_scheduling_option(_Config) ->
    Batch = <<"__import__('os').SCHED_BATCH">>,
    {ok, SchedBatch} = py:eval(Batch),
    {ok, SchedBatch} = py:call(default, os, sched_getscheduler, [0]),
    {ok, SchedBatch} = py:call(io, os, sched_getscheduler, [0]),
    {ok, SchedBatch} = py:eval(<<"__import__('concurrent.futures').futures.ThreadPoolExecutor(1)"
                                 ".submit(__import__('os').sched_getscheduler, 0).result()">>),
    Saved = application:get_env(?APP, port_scheduling),
    try
        ok = application:set_env(?APP, port_scheduling, normal),
        {ok, [Ctx]} = py_context_router:start_pool(pools_normal, 1, #{mode => process}),
        {ok, SchedOther} = py:eval(Ctx, <<"__import__('os').SCHED_OTHER">>, #{}),
        {ok, SchedOther} = py:call(Ctx, os, sched_getscheduler, [0]),
        {ok, SchedBatch} = py:call(default, os, sched_getscheduler, [0])
    after
        case Saved of
            {ok, V} -> application:set_env(?APP, port_scheduling, V);
            undefined -> application:unset_env(?APP, port_scheduling)
        end
    end,
    ok.

app_env_configuration(_Config) ->
    Keys = [default_pool_size, io_pool_size, io_pool_mode, default_pool_mode],
    Saved = [{K, application:get_env(?APP, K)} || K <- Keys],
    try
        ok = application:stop(?APP),
        ok = application:set_env(?APP, default_pool_size, 3),
        ok = application:set_env(?APP, io_pool_size, 4),
        ok = application:set_env(?APP, io_pool_mode, process),
        {ok, _} = application:ensure_all_started(?APP),
        3 = py_context_router:num_contexts(default),
        4 = py_context_router:num_contexts(io),
        3 = length(lists:usort(default_os_pids())),
        4 = length(lists:usort([os_pid(C) || C <- py_context_router:contexts(io)])),
        {ok, 4.0} = py:call(io, math, sqrt, [16]),

        ok = application:stop(?APP),
        ok = application:set_env(?APP, io_pool_size, 20),
        ok = application:set_env(?APP, io_pool_mode, subinterp),
        ok = application:set_env(?APP, default_pool_mode, worker),
        capture_log(),
        {ok, _} = application:ensure_all_started(?APP),
        _ = receive_log(fun(#{level := notice, msg := M}) -> mentions(M, "subinterp");
                           (_) -> false
                        end),
        20 = py_context_router:num_contexts(io),
        [_] = lists:usort([os_pid(C) || C <- py_context_router:contexts(io)]),
        [_] = lists:usort(default_os_pids()),
        {ok, 4.0} = py:call(io, math, sqrt, [16]),
        {ok, 4.0} = py:call(math, sqrt, [16]),

        ok = application:stop(?APP),
        ok = application:set_env(?APP, io_pool_mode, worker),
        ok = application:unset_env(?APP, default_pool_mode),
        {ok, _} = application:ensure_all_started(?APP),
        [_] = lists:usort([os_pid(C) || C <- py_context_router:contexts(io)]),
        ok
    after
        _ = application:stop(?APP),
        [case V of
             {ok, Val} -> application:set_env(?APP, K, Val);
             undefined -> application:unset_env(?APP, K)
         end || {K, V} <- Saved],
        {ok, _} = application:ensure_all_started(?APP)
    end,
    Schedulers = erlang:system_info(schedulers),
    Schedulers = py_context_router:num_contexts(default),
    10 = py_context_router:num_contexts(io),
    ok.

%%====================================================================
%% Helpers
%%====================================================================

load_app() ->
    case application:load(?APP) of
        ok -> ok;
        {error, {already_loaded, ?APP}} -> ok
    end.

%% The OS pid of the port program running context Ctx.
os_pid(Ctx) ->
    {ok, _Port, Owner, _Local} = py_context:lookup(Ctx),
    #{os_pid := OsPid} = py_port:info(Owner),
    OsPid.

io_os_pid() ->
    [Pid] = lists:usort([os_pid(C) || C <- py_context_router:contexts(io)]),
    Pid.

default_os_pids() ->
    [os_pid(C) || C <- py_context_router:contexts(default)].

%% {ok, true} when the call returned one of Values.
in({ok, V}, Values) -> {ok, lists:member(V, Values)};
in(Other, _Values) -> Other.

is_error({error, _}) -> true;
is_error(_) -> false.

os_pid_alive(OsPid) ->
    case file:read_file("/proc/" ++ integer_to_list(OsPid) ++ "/stat") of
        {ok, Stat} ->
            %% "pid (comm) S ...": a zombie (Z) is not alive
            [_, After] = binary:split(Stat, <<") ">>),
            binary:first(After) =/= $Z;
        {error, _} ->
            false
    end.

now_ms() ->
    erlang:monotonic_time(millisecond).

%% Runs Fun in a linked process; result/1 collects what it returned.
%% Fun's result, computed in a new process (no routing history).
fresh(Fun) ->
    {Pid, Ref} = spawn_monitor(fun() -> exit({fresh, Fun()}) end),
    receive {'DOWN', Ref, process, Pid, {fresh, R}} -> R end.

async(Fun) ->
    Test = self(),
    spawn_link(fun() -> Test ! {async_result, self(), Fun()} end).

result(Pid) ->
    receive {async_result, Pid, R} -> R
    after ?PROMPT_MS * 2 -> ct:fail({no_result_from, Pid})
    end.

has_result(Pid) ->
    receive {async_result, Pid, _} = Msg -> self() ! Msg, true
    after 0 -> false
    end.

%% erlang.call('pools_hold', Tag, OsPid) (pools_probe.hold) tells the test it
%% runs, then waits for {release, Reply} and returns Reply to Python.
register_hold() ->
    Test = self(),
    ok = py:register_function(pools_hold, fun([Tag, OsPid]) ->
                                                  Test ! {held, Tag, OsPid, self()},
                                                  receive {release, Reply} -> Reply end
                                          end).

await_holds(N) ->
    [receive {held, Tag, OsPid, Handler} -> {Tag, OsPid, Handler}
     after ?PROMPT_MS * 2 -> ct:fail({holds_missing, N - I + 1})
     end || I <- lists:seq(1, N)].

capture_log() ->
    ok = logger:add_handler(pools_capture, ?MODULE, #{config => #{pid => self()}}).

%% logger handler: forwards every event to the test process.
log(Event, #{config := #{pid := Pid}}) ->
    Pid ! {pools_log, Event}.

receive_log(Match) ->
    receive
        {pools_log, Event} ->
            case Match(Event) of
                true -> Event;
                false -> receive_log(Match)
            end
    after ?PROMPT_MS -> ct:fail(expected_log_event_missing)
    end.

mentions({string, S}, What) -> string:find(S, What) =/= nomatch;
mentions({report, R}, What) -> mentions({string, io_lib:format("~p", [R])}, What);
mentions({Fmt, Args}, What) -> mentions({string, io_lib:format(Fmt, Args)}, What).

%%====================================================================
%% Python helper modules (written to priv_dir, on the app's python_path)
%%====================================================================

probe_module() ->
    [<<"\"\"\"Helpers of py_pools_SUITE.\"\"\"
import os
import threading
import time

import erlang


def pid():
    return os.getpid()


def hold(tag):
    \"\"\"Keeps this context busy until the suite releases it: the context's
    thread waits on an Event, set once the suite's registered Erlang function
    'pools_hold', called from a helper thread, returns.\"\"\"
    done = threading.Event()
    box = []

    def helper():
        try:
            box.append(erlang.call('pools_hold', tag, os.getpid()))
        except BaseException as e:
            box.append(e)
        finally:
            done.set()

    threading.Thread(target=helper, daemon=True).start()
    done.wait()
    if isinstance(box[0], BaseException):
        raise box[0]
    return box[0]


_errors = {}


def hold_in_callback(tag):
    \"\"\"Waits in erlang.call on the context's own thread.\"\"\"
    try:
        return erlang.call('pools_hold', tag, os.getpid())
    except Exception as e:
        _errors[str(tag)] = str(e)
        raise


def error_of(tag):
    \"\"\"What hold_in_callback(tag) raised, or None.\"\"\"
    return _errors.get(str(tag))


def report_pid(to):
    erlang.send(to, (erlang.Atom('pool_pid'), os.getpid()))


def download(key):
    return [key, os.getpid()]


def predict(data):
    return [data, os.getpid()]


def alloc(total, chunk, then_sleep):
    \"\"\"Allocates (and touches) `total` bytes in `chunk`-sized blocks.\"\"\"
    blocks = []
    n = 0
    while n < total:
        blocks.append(bytearray(b'\\x01') * chunk)
        n += chunk
    time.sleep(then_sleep)
    return len(blocks)


_held = []


def alloc_and_hold(total, chunk, then_sleep):
    \"\"\"alloc(), keeping what it got when the memory cap raises MemoryError.\"\"\"
    n = 0
    try:
        while n < total:
            _held.append(bytearray(b'\\x01') * chunk)
            n += chunk
    except MemoryError:
        pass
    time.sleep(then_sleep)
    return len(_held)
">>, py_test_util:events_py()].

db_module() ->
    <<"\"\"\"A stand-in database client for py_pools_SUITE.\"\"\"
import os


def connect(dsn):
    return os.getpid()


def query(sql, params):
    return [os.getpid(), [[p, 'user'] for p in params]]


def fetchone(sql, params):
    return query(sql, params)[1][0]
">>.

%% The context (a stable pid) is served by a live port owner other than Old.
new_owner(Ctx, Old) ->
    case py_context:lookup(Ctx) of
        {ok, Port, Owner, _} when Owner =/= Old, is_port(Port) ->
            is_process_alive(Owner) andalso erlang:port_info(Port) =/= undefined;
        _ ->
            false
    end.
