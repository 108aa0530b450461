%% @doc Failure, supervision and isolation, against the real port program: a
%% port program that dies with calls in flight, owners and the application
%% stopping, and bad frames on the wire.
-module(py_failure_SUITE).

-include_lib("common_test/include/ct.hrl").
-include("py_protocol.hrl").

-export([all/0, groups/0, suite/0, init_per_suite/1, end_per_suite/1,
         init_per_group/2, end_per_group/2, init_per_testcase/2, end_per_testcase/2]).
%% logger handler callback (the handler is this module)
-export([log/2]).

-export([kill_9_with_calls_in_flight/1, os_exit_with_calls_in_flight/1,
         segfault_with_calls_in_flight/1,
         owner_killed_port_program_exits/1, owner_killed_while_python_spins/1,
         app_stop_leaves_no_port_program/1, app_stop_while_python_spins/1,
         malformed_frames_are_harmless/1, bad_requests_get_protocol_errors/1,
         oversized_frame/1]).

-define(CALLERS, 100).
-define(PROMPT_MS, 5000).
-define(MAX_FRAME, 1048576).

suite() ->
    [{timetrap, {seconds, 60}}].

all() ->
    [{group, crashes}, {group, owners}, {group, protocol}, {group, max_frame}].

groups() ->
    [{crashes, [], [kill_9_with_calls_in_flight, os_exit_with_calls_in_flight,
                    segfault_with_calls_in_flight]},
     {owners, [], [owner_killed_port_program_exits, owner_killed_while_python_spins,
                   app_stop_leaves_no_port_program, app_stop_while_python_spins]},
     {protocol, [], [malformed_frames_are_harmless, bad_requests_get_protocol_errors]},
     {max_frame, [], [oversized_frame]}].

init_per_suite(Config) ->
    {ok, _} = application:ensure_all_started(erlang_python),
    {ok, 2} = py:eval(<<"1 + 1">>),
    #{level := Level} = logger:get_primary_config(),
    ok = logger:set_primary_config(level, notice),
    [{primary_log_level, Level} | Config].

end_per_suite(Config) ->
    ok = logger:set_primary_config(level, ?config(primary_log_level, Config)),
    ok = application:stop(erlang_python),
    Config.

init_per_group(max_frame, Config) ->
    ok = application:stop(erlang_python),
    ok = application:set_env(erlang_python, max_frame, ?MAX_FRAME),
    {ok, _} = application:ensure_all_started(erlang_python),
    Config;
init_per_group(_, Config) ->
    Config.

end_per_group(max_frame, _Config) ->
    ok = application:stop(erlang_python),
    ok = application:unset_env(erlang_python, max_frame),
    {ok, _} = application:ensure_all_started(erlang_python),
    ok;
end_per_group(_, _Config) ->
    ok.

init_per_testcase(_Case, Config) ->
    ok = logger:add_handler(test_capture, ?MODULE, #{config => #{pid => self()}}),
    %% every test starts from a working context 1
    {ok, 3} = py:call(py:context(1), operator, add, [1, 2]),
    Config.

end_per_testcase(_Case, _Config) ->
    _ = logger:remove_handler(test_capture),
    untrace_port_commands(),
    %% leave a working application behind for the next test
    case whereis(erlang_python_sup) of
        undefined -> {ok, _} = application:ensure_all_started(erlang_python);
        _ -> ok
    end,
    ok.

%%====================================================================
%% crashes with calls in flight
%%====================================================================

kill_9_with_calls_in_flight(_Config) ->
    crash_with_calls_in_flight(
      fun(#{os_pid := OsPid}) ->
              os:cmd("kill -9 " ++ integer_to_list(OsPid))
      end, none, 128 + 9).

os_exit_with_calls_in_flight(_Config) ->
    crash_with_calls_in_flight(fun poke/1, <<"exit">>, 1).

segfault_with_calls_in_flight(_Config) ->
    %% the status is 139 (SIGSEGV), or 134 when a sanitizer turns it into abort()
    crash_with_calls_in_flight(fun poke/1, <<"segv">>, any).

%% Context 1 gets ?CALLERS calls from as many processes: the first runs a
%% function that blocks until it is poked over TCP, then exits the process or
%% dereferences NULL (the action); the others (time.sleep(30)) wait behind it.
%% Once every request is written, Crash runs; every caller must get
%% {error, {python_died, Status}} within ?PROMPT_MS, then the supervisor
%% restarts the port program and context 1 works again.
crash_with_calls_in_flight(Crash, Action, ExpectedStatus) ->
    Ctx = py:context(1),
    {ok, _Port, Owner, _Local} = py_context:lookup(Ctx),
    #{os_pid := OsPid} = Info = py_port:info(Owner),
    true = os_pid_alive(OsPid),
    ok = shared_exec(Ctx, <<"import ctypes, os, socket, time\n"
                        "_gate = socket.create_server(('127.0.0.1', 0))\n"
                        "def blocker(action):\n"
                        "    _gate.accept()\n"
                        "    if action == 'exit':\n"
                        "        os._exit(1)\n"
                        "    if action == 'segv':\n"
                        "        ctypes.string_at(0)\n"
                        "    time.sleep(30)\n">>),
    {ok, GatePort} = py:eval(Ctx, <<"_gate.getsockname()[1]">>),
    OwnerRef = monitor(process, Owner),
    true = trace_port_commands() >= 1,
    First = start_callers(Ctx, [{'__main__', blocker, [Action]}]),
    Rest = start_callers(Ctx, lists:duplicate(?CALLERS - 1, {time, sleep, [30]})),
    Callers = First ++ Rest,
    ?CALLERS = length(Callers),
    T0 = erlang:monotonic_time(millisecond),
    Crash(Info#{gate => GatePort}),
    Results = [receive
                   {result, Pid, Result, T} -> {Result, T - T0}
               after ?PROMPT_MS * 2 ->
                   ct:fail({caller_still_waiting, Pid})
               end || Pid <- Callers],
    Slowest = lists:max([Ms || {_, Ms} <- Results]),
    ct:pal("~p callers answered within ~p ms; first result ~p",
           [length(Results), Slowest, element(1, hd(Results))]),
    [] = [R || {R, _} <- Results, not is_died(R, ExpectedStatus)],
    true = Slowest < ?PROMPT_MS,
    receive
        {'DOWN', OwnerRef, process, Owner, Reason} ->
            ct:pal("owner exited: ~p", [Reason])
    after ?PROMPT_MS -> ct:fail(owner_still_alive)
    end,
    true = wait_os_pid_gone(OsPid, 2000),
    %% the context's pid stays valid: it reaches the new port program
    Ctx = wait_new_context(Ctx),
    true = lists:member(Ctx, py_pool:contexts(default)),
    {ok, 3} = py:call(Ctx, operator, add, [1, 2]),
    {ok, _, NewOwner, _} = py_context:lookup(Ctx),
    true = NewOwner =/= Owner,
    #{os_pid := NewOsPid} = py_port:info(NewOwner),
    true = NewOsPid =/= OsPid,
    true = os_pid_alive(NewOsPid),
    ok.

poke(#{gate := GatePort}) ->
    {ok, Sock} = gen_tcp:connect({127, 0, 0, 1}, GatePort, [], 5000),
    Sock.

is_died({error, {python_died, _}}, any) -> true;
is_died({error, {python_died, Status}}, Status) -> true;
is_died(_, _) -> false.

%% Starts one caller per {M, F, A} and returns once each has written its
%% request to the port: callers write their own requests with
%% erlang:port_command/2, and its return is traced (an event, not polling).
start_callers(Ctx, Calls) ->
    Parent = self(),
    Pids = [begin
                Pid = spawn(fun() ->
                                    receive go -> ok end,
                                    R = py:call(Ctx, M, F, A, #{timeout => 60000}),
                                    Parent ! {result, self(), R,
                                              erlang:monotonic_time(millisecond)}
                            end),
                1 = erlang:trace(Pid, true, [call]),
                Pid ! go,
                Pid
            end || {M, F, A} <- Calls],
    [receive
         {trace, Pid, return_from, {erlang, port_command, _}, true} -> ok
     after 10000 -> ct:fail({request_not_sent, Pid})
     end || Pid <- Pids],
    Pids.

trace_port_commands() ->
    erlang:trace_pattern({erlang, port_command, '_'}, [{'_', [], [{return_trace}]}],
                         [global]).

untrace_port_commands() ->
    erlang:trace_pattern({erlang, port_command, '_'}, false, [global]),
    flush_traces().

flush_traces() ->
    receive {trace, _, _, _} -> flush_traces();
            {trace, _, _, _, _} -> flush_traces()
    after 0 -> ok
    end.

%%====================================================================
%% owners and the application stopping
%%====================================================================

owner_killed_port_program_exits(_Config) ->
    Ctx = py:context(1),
    {ok, _, Owner, _} = py_context:lookup(Ctx),
    #{os_pid := OsPid} = py_port:info(Owner),
    true = os_pid_alive(OsPid),
    kill_owner_and_check(Owner, OsPid),
    New = wait_new_context(Ctx),
    {ok, 3} = py:call(New, operator, add, [1, 2]),
    ok.

owner_killed_while_python_spins(_Config) ->
    Ctx = py:context(1),
    {ok, _, Owner, _} = py_context:lookup(Ctx),
    #{os_pid := OsPid} = py_port:info(Owner),
    Spinner = spin(Ctx),
    kill_owner_and_check(Owner, OsPid),
    receive
        {result, Spinner, {error, {python_died, _}}, _} -> ok;
        {result, Spinner, Other, _} -> ct:fail({spinner_got, Other})
    after ?PROMPT_MS -> ct:fail(spinner_not_answered)
    end,
    New = wait_new_context(Ctx),
    {ok, 3} = py:call(New, operator, add, [1, 2]),
    ok.

%% The BEAM closes the port when its owner dies: the port program reads end of
%% input and must exit within 1 s.
kill_owner_and_check(Owner, OsPid) ->
    Ref = monitor(process, Owner),
    T0 = erlang:monotonic_time(millisecond),
    exit(Owner, kill),
    receive {'DOWN', Ref, process, Owner, killed} -> ok
    after ?PROMPT_MS -> ct:fail(owner_not_killed)
    end,
    Gone = wait_os_pid_gone(OsPid, 1000),
    ct:pal("port program ~p gone: ~p after ~p ms",
           [OsPid, Gone, erlang:monotonic_time(millisecond) - T0]),
    true = Gone.

app_stop_leaves_no_port_program(_Config) ->
    {ok, _} = py_pool:start_pool(failure_workers, 2, #{mode => worker}),
    OsPids = all_port_os_pids(),
    ct:pal("port programs: ~p", [OsPids]),
    %% the default pool's port programs and the extra pool's
    true = length(OsPids) >= length(py_pool:contexts(default)) + 1,
    true = lists:all(fun os_pid_alive/1, OsPids),
    ok = application:stop(erlang_python),
    [] = [P || P <- OsPids, not wait_os_pid_gone(P, 1000)],
    {ok, _} = application:ensure_all_started(erlang_python),
    {ok, 3} = py:call(operator, add, [1, 2]),
    [] = [P || P <- OsPids, lists:member(P, all_port_os_pids())],
    ok.

%% The port program gets the shutdown message while Python is stuck: it exits
%% after at most 1 s of grace, and application:stop/1 returns.
app_stop_while_python_spins(_Config) ->
    Ctx = py:context(1),
    OsPids = all_port_os_pids(),
    true = length(OsPids) >= 1,
    {ok, _, Owner, _} = py_context:lookup(Ctx),
    #{os_pid := CtxOsPid} = py_port:info(Owner),
    true = lists:member(CtxOsPid, OsPids),
    Spinner = spin(Ctx),
    T0 = erlang:monotonic_time(millisecond),
    ok = application:stop(erlang_python),
    Took = erlang:monotonic_time(millisecond) - T0,
    ct:pal("application:stop/1 took ~p ms", [Took]),
    [] = [P || P <- OsPids, not wait_os_pid_gone(P, 1000)],
    true = Took < 4000,
    receive
        {result, Spinner, {error, _}, _} -> ok;
        {result, Spinner, Other, _} -> ct:fail({spinner_got, Other})
    after ?PROMPT_MS -> ct:fail(spinner_not_answered)
    end,
    {ok, _} = application:ensure_all_started(erlang_python),
    {ok, 3} = py:call(operator, add, [1, 2]),
    ok.

%% A caller stuck in `while True: pass' in Ctx; returns once Python runs it.
spin(Ctx) ->
    Parent = self(),
    Marker = <<"spinning_", (integer_to_binary(erlang:unique_integer([positive])))/binary>>,
    Pid = spawn(fun() ->
                        R = py:exec(Ctx, <<"print('", Marker/binary, "')\nwhile True: pass\n">>,
                                    60000),
                        Parent ! {result, self(), R, erlang:monotonic_time(millisecond)}
                end),
    wait_log(Marker),
    Pid.

%%====================================================================
%% bad frames
%%====================================================================

malformed_frames_are_harmless(_Config) ->
    Ctx = py:context(1),
    {ok, Port, Owner, _} = py_context:lookup(Ctx),
    ok = shared_exec(Ctx, <<"survivor = 42">>),
    %% garbage msgpack, a reserved byte, a truncated array, an empty frame
    Garbage = [<<1, 2, 3>>, <<16#c1>>, <<16#dc>>, <<>>, <<16#92, 16#ff, 1>>],
    [true = erlang:port_command(Port, G) || G <- Garbage],
    %% each one is reported through the owner's log as a protocol error
    [wait_log(<<"protocol error">>) || _ <- Garbage],
    true = is_process_alive(Owner),
    {ok, 42} = py:eval(Ctx, <<"survivor">>),
    {ok, 3} = py:call(Ctx, operator, add, [1, 2]),
    {ok, _, Owner, _} = py_context:lookup(Ctx),
    ok.

%% Frames whose request ID can be read but that are otherwise bad get a
%% ProtocolError reply to their caller (written here straight to the port, with
%% a process alias as the request ID, as PROTOCOL.md describes).
bad_requests_get_protocol_errors(_Config) ->
    Ctx = py:context(1),
    {ok, Port, _Owner, Local} = py_context:lookup(Ctx),
    Call = ?PY_MSG_CALL,
    Bad = [fun(Id) -> [Call, Id] end,                                          % too short
           fun(Id) -> [Call, Id, 9999, <<"operator">>, <<"add">>, [1, 2], #{}] end,
           fun(Id) -> [Call, Id, -1, <<"operator">>, <<"add">>, [1, 2], #{}] end,
           fun(Id) -> [Call, Id, Local, 42, <<"add">>, [1, 2], #{}] end,     % module not str
           fun(Id) -> [Call, Id, Local, <<"operator">>, <<"add">>, 7, #{}] end,
           fun(Id) -> [?PY_MSG_EVAL, Id, Local, 42, #{}] end,                % code not str
           fun(Id) -> [13, Id, Local] end],                % unknown type (13 is unused)
    lists:foreach(
      fun(Build) ->
              Id = alias(),
              true = erlang:port_command(Port, py_msgpack:encode(Build(Id))),
              Reply = py_request:wait(Id, 10000),
              unalias(Id),
              case Reply of
                  {error, {'ProtocolError', Reason}} when is_binary(Reason) ->
                      ct:pal("~p: ~ts", [Build(id), Reason]);
                  Other ->
                      ct:fail({expected_protocol_error, Build(id), Other})
              end
      end, Bad),
    {ok, 3} = py:call(Ctx, operator, add, [1, 2]),
    {messages, Msgs} = process_info(self(), messages),
    [] = [M || M <- Msgs, element(1, M) =/= captured_log],
    ok.

oversized_frame(_Config) ->
    Ctx = py:context(1),
    {ok, _, Owner, _} = py_context:lookup(Ctx),
    #{os_pid := OsPid} = py_port:info(Owner),
    Half = binary:copy(<<"a">>, ?MAX_FRAME div 2),
    {ok, ?MAX_FRAME div 2} = py:call(Ctx, builtins, len, [Half]),
    Big = binary:copy(<<"b">>, 2 * ?MAX_FRAME),
    {error, Reason} = py:call(Ctx, builtins, len, [Big]),
    ct:pal("2 MiB argument with max_frame 1 MiB: ~p", [Reason]),
    {'ProtocolError', _} = Reason,
    {ok, 3} = py:call(Ctx, operator, add, [1, 2]),
    {error, {'ProtocolError', _}} = py:call(Ctx, builtins, len, [{bytes, Big}]),
    {error, {'ProtocolError', _}} = py:eval(Ctx, <<"len(x)">>, #{x => Big}),
    {ok, ?MAX_FRAME div 2} = py:call(Ctx, builtins, len, [Half]),
    %% the same port program throughout
    {ok, _, Owner, _} = py_context:lookup(Ctx),
    #{os_pid := OsPid} = py_port:info(Owner),
    ok.

%%====================================================================
%% logger handler (this module is the handler)
%%====================================================================

log(#{level := Level, msg := Msg, meta := Meta}, #{config := #{pid := Pid}}) ->
    Text = try format_msg(Msg)
           catch _:_ -> iolist_to_binary(io_lib:format("~p", [Msg]))
           end,
    Pid ! {captured_log, Level, Meta, Text},
    ok.

format_msg({string, S}) -> unicode:characters_to_binary(S);
format_msg({report, R}) -> iolist_to_binary(io_lib:format("~p", [R]));
format_msg({Format, Args}) -> unicode:characters_to_binary(io_lib:format(Format, Args)).

wait_log(Needle) ->
    wait_log(Needle, erlang:monotonic_time(millisecond) + ?PROMPT_MS).

wait_log(Needle, Deadline) ->
    Left = max(0, Deadline - erlang:monotonic_time(millisecond)),
    receive
        {captured_log, _Level, Meta, Text} ->
            case binary:match(Text, Needle) of
                nomatch -> wait_log(Needle, Deadline);
                _ -> {Meta, Text}
            end
    after Left ->
        ct:fail({no_log_event_containing, Needle})
    end.

%%====================================================================
%% helpers
%%====================================================================

%% OS pids of the port programs of the pools the application starts (and of
%% the pool a test starts).
all_port_os_pids() ->
    Pools = [default, io, failure_workers],
    Owners = lists:usort([Owner || Pool <- Pools, Ctx <- py_pool:contexts(Pool),
                                   {ok, _, Owner, _} <- [py_context:lookup(Ctx)]]),
    [maps:get(os_pid, py_port:info(O)) || O <- Owners].

%% A running (not zombie) process with this OS pid exists.
os_pid_alive(OsPid) ->
    case file:read_file("/proc/" ++ integer_to_list(OsPid) ++ "/stat") of
        {ok, Stat} ->
            %% "pid (comm) S ...": the state follows the last ')'
            [_, After] = string:split(Stat, <<")">>, trailing),
            case string:trim(After, leading) of
                <<"Z", _/binary>> -> false;
                <<"X", _/binary>> -> false;
                _ -> true
            end;
        {error, _} ->
            false
    end.

%% Polls (the only way to watch an OS process that is not ours) at most for
%% TimeoutMs; true if the process is gone by then.
wait_os_pid_gone(OsPid, TimeoutMs) ->
    Deadline = erlang:monotonic_time(millisecond) + TimeoutMs,
    wait_os_pid_gone_until(OsPid, Deadline).

wait_os_pid_gone_until(OsPid, Deadline) ->
    case os_pid_alive(OsPid) of
        false -> true;
        true ->
            case erlang:monotonic_time(millisecond) >= Deadline of
                true -> false;
                false ->
                    receive after 5 -> ok end,
                    wait_os_pid_gone_until(OsPid, Deadline)
            end
    end.

%% After a crash the supervisor starts a new port program; the context keeps
%% its pid (py:context(1) is still Ctx): wait (bounded polling) until its
%% route names a live owner and an open port, and return the context.
wait_new_context(Old) ->
    wait_new_context(Old, 1000).

wait_new_context(Old, 0) ->
    ct:fail({no_new_context, Old, py:context(1)});
wait_new_context(Old, N) ->
    Old = py:context(1),
    case py_context:lookup(Old) of
        {ok, Port, Owner, _} when is_port(Port) ->
            case is_process_alive(Owner) andalso erlang:port_info(Port) =/= undefined of
                true -> Old;
                false -> retry_new_context(Old, N)
            end;
        _ ->
            retry_new_context(Old, N)
    end.

retry_new_context(Old, N) ->
    receive after 10 -> ok end,
    wait_new_context(Old, N - 1).

%% Helpers other processes call (callback handlers, spawned callers): in the
%% context's shared namespace, which every process's namespace sees.
shared_exec(Ctx, Code) ->
    py_context:exec(Ctx, Code, shared).
