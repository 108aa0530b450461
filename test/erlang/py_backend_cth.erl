%% @doc Common Test hook of `make test-ct-driver': the suites run against the
%% linked-in driver (EP_BACKEND=driver) with the same expectations, except
%% what needs the port program's crash isolation. The cases listed here kill
%% or crash Python's OS process (with the driver that is the test node), or
%% check what only a separate process has; each is skipped with its reason.
%% What a Python crash does with the driver is tested by
%% py_driver_SUITE:python_crash_takes_the_node_down.
-module(py_backend_cth).

-export([init/2, pre_init_per_suite/3, pre_init_per_testcase/4]).

-spec init(term(), term()) -> {ok, map()}.
init(_Id, _Opts) ->
    {ok, #{}}.

-spec pre_init_per_suite(atom(), term(), map()) -> {term(), map()}.
pre_init_per_suite(Suite, Config, State) ->
    case driver() andalso suite_skip(Suite) of
        Reason when is_list(Reason) -> {{skip, "driver backend: " ++ Reason}, State};
        _ -> {Config, State}
    end.

-spec pre_init_per_testcase(atom(), atom(), term(), map()) -> {term(), map()}.
pre_init_per_testcase(Suite, Case, Config, State) ->
    case driver() andalso case_skip(Suite, Case) of
        Reason when is_list(Reason) -> {{skip, "driver backend: " ++ Reason}, State};
        _ -> {Config, State}
    end.

driver() ->
    os:getenv("EP_BACKEND") =:= "driver".

-define(CRASH, "Python's process is the node's (no crash isolation)").

suite_skip(py_failure_SUITE) -> ?CRASH ++ ": the suite crashes and kills port programs";
suite_skip(py_storm_SUITE) -> ?CRASH ++ ": storms of port program crashes and kills";
suite_skip(py_pools_SUITE) ->
    "the suite tells pools and contexts apart by their port programs' OS pids and "
        "checks per-pool sys.path: driver pools are all in the VM's process and share "
        "one sys.path (pool routing itself is the same for both backends)";
suite_skip(py_startup_SUITE) ->
    "start failures of port programs (a broken program or package, a release layout "
        "with the port program only): with the driver, Python starts once per VM, in the VM";
suite_skip(_) -> false.

case_skip(py_event_loop_api_SUITE, port_death_python_died_then_restarted) -> ?CRASH;
case_skip(py_event_loop_api_SUITE, port_death_with_many_tasks_in_flight) -> ?CRASH;
case_skip(py_event_loop_api_SUITE, create_tasks_port_died) -> ?CRASH;
case_skip(py_nodes_SUITE, remote_crash_restarts_in_pool) -> ?CRASH;
case_skip(py_stream_SUITE, port_death_is_an_error_event) -> ?CRASH;
case_skip(py_callback_SUITE, port_crash_kills_handlers) -> ?CRASH;
case_skip(py_namespace_SUITE, ref_stale_after_restart) -> ?CRASH;
case_skip(py_channel_SUITE, port_crash_redelivers) -> ?CRASH;
case_skip(py_compat_SUITE, context_pid_survives_restart) -> ?CRASH;
case_skip(py_compat_SUITE, new_context_survives_restart) -> ?CRASH;
case_skip(py_compat_SUITE, path_registry_reaches_new_and_restarted) -> ?CRASH;
case_skip(py_pools_SUITE, crash_in_one_context) -> ?CRASH;
case_skip(py_pools_SUITE, cached_routes_follow_changes) -> ?CRASH;
case_skip(py_api_SUITE, Case) when Case =:= fd_write_is_forwarded;
                                   Case =:= stderr_is_forwarded;
                                   Case =:= large_output_does_not_corrupt ->
    "fd-level writes (os.write(1, ...), C stdio) go to the VM's own fds 1 and 2; "
        "sys.stdout and sys.stderr are still forwarded";
case_skip(py_callback_SUITE, Case) when Case =:= error_result_over_max_frame;
                                        Case =:= handlers_per_slot_and_depth ->
    "Python threads that no context runs call Erlang through the oldest driver port "
        "(one runtime per VM), with its handlers and max_frame";
case_skip(py_channel_SUITE, message_over_max_frame_raises) ->
    "channel traffic of the VM's one runtime goes through the oldest driver port, "
        "with its max_frame";
case_skip(py_event_loop_api_SUITE, pool_loops_in_several_ports) ->
    "every driver port is in the VM's OS process";
case_skip(py_nodes_SUITE, Case) when Case =:= calls_reach_both_nodes;
                                     Case =:= registration_routes_to_node_pool;
                                     Case =:= peer_stopped_mid_call;
                                     Case =:= peer_killed_mid_call;
                                     Case =:= stop_pool_stops_remote_port_programs;
                                     Case =:= local_node_listed ->
    "these cases tell contexts apart by their port program's OS pid; driver ports have none";
case_skip(py_memory_SUITE, Case) when Case =:= cap_raises_memory_error;
                                      Case =:= cap_rearms;
                                      Case =:= cap_held_over_kills ->
    "a memory cap runs its pool on port programs, but the cap is sized from the default "
        "pool's process, which is the VM";
case_skip(py_venv_SUITE, deactivate) ->
    "sys.modules is the VM's (one interpreter): a module a venv provided stays imported";
case_skip(py_logging_SUITE, Case) when Case =:= quick_start; Case =:= level_mapping;
                                       Case =:= level_option_filters; Case =:= format_option;
                                       Case =:= metadata; Case =:= handler_from_python;
                                       Case =:= later_contexts_configured ->
    "the interpreter outlives application restarts: logging handlers earlier suites "
        "installed on the root logger are still there";
case_skip(py_stream_SUITE, owner_death_stops_generator) ->
    "no backpressure on what Python sends to the port owner (a pipe has some): the "
        "endless generator floods the owner's mailbox and the 'still wanted?' check "
        "waits behind it";
case_skip(py_hostile_SUITE, bad_frames_close_the_port_program) ->
    "checks that the port program's OS process is gone; a driver port has none "
        "(a bad frame closes a driver port all the same)";
case_skip(py_event_loop_SUITE, signal_handlers_on_non_main_threads) ->
    "signals belong to the VM (SIGUSR1 would make it halt)";
case_skip(_, _) -> false.
