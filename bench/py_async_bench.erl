%% Figures of py_event_loop / py_event_loop_pool (issue 14), printed as a
%% Markdown table: `make bench-async'.
%%
%% - round trip: create_task + await of a function vs py:call of the same
%%   function, and a raw {packet,4} echo through bench_echo_port, in
%%   interleaved blocks (the VM's wake-up cost drifts; blocks taken over the
%%   same seconds are comparable), median us;
%% - fire-and-collect: one process creates 10,000 trivial coroutine tasks, then
%%   awaits them all: tasks/s (median of rounds);
%% - the same with one scheduler online (set for that row only), and with
%%   the collecting process's heap presized (min_heap_size);
%% - the same with create_tasks (a batch: one port_command per 256 tasks);
%% - 50 processes each create and collect 2,000 tasks at once: tasks/s (one
%%   by one, and with create_tasks);
%% - 10,000 concurrent asyncio.sleep(0.01) tasks from one process: wall ms.
-module(py_async_bench).

-export([main/1]).

-define(BLOCK, 500).
-define(ROUNDS, 5).
-define(FIRE_ROUNDS, 15).  % a round is about 70 ms, and rounds vary by +-20%
-define(CPU_ROUNDS, 5).    % /proc's CPU times tick every 10 ms
-define(TASKS, 10000).
-define(PROCS, 50).
-define(PER_PROC, 2000).

-spec main([string()]) -> no_return().
main([EchoPort | _]) ->
    {ok, _} = application:ensure_all_started(erlang_python),
    define_helpers(),
    Loops = length(py_event_loop_pool:get_all_loops()),
    io:format("~n## py_event_loop (~b loops, ~b schedulers)~n~n", [Loops,
                                                                  erlang:system_info(schedulers)]),
    io:format("| figure | value |~n| --- | --- |~n"),
    RT = round_trips(EchoPort),
    [row(Label, io_lib:format("~.1f us", [maps:get(K, RT)]))
     || {K, Label} <- [{echo, "raw echo round trip, 32 B"},
                       {call_plain, "py:call of a plain function"},
                       {task_plain, "create_task + await of the same plain function"},
                       {call_coro, "py:call of a coroutine function (a new loop per call)"},
                       {task_coro, "create_task + await of the same coroutine function"}]],
    row("create_task + await / py:call, plain function (target <= 1.2)",
        io_lib:format("~.2f", [maps:get(task_plain, RT) / maps:get(call_plain, RT)])),
    %% Each path's round trip is bimodal, and each keeps its mode for seconds
    %% on its own (bench/README.md, "Session 10"): the ratio of medians can
    %% compare one path's slow mode with the other's fast one. The 10th
    %% percentiles compare both in their fast mode.
    row("the same, 10th percentiles (both paths in their fast mode)",
        io_lib:format("~.2f us / ~.2f us = ~.2f",
                      [maps:get({p10, task_plain}, RT), maps:get({p10, call_plain}, RT),
                       maps:get({p10, task_plain}, RT) / maps:get({p10, call_plain}, RT)])),
    Fire = median([fire_and_collect() || _ <- lists:seq(1, ?FIRE_ROUNDS)]),
    row("fire-and-collect, 10,000 coroutines from one process (target >= 150k)",
        io_lib:format("~s tasks/s", [k(Fire)])),
    %% The same with one scheduler online: on 2 vCPUs the BEAM's share of a
    %% task (submit, the owner's forward, await) then runs on one scheduler
    %% and the loop's thread has the other CPU (bench/README.md, "Session 8").
    Online = erlang:system_info(schedulers_online),
    erlang:system_flag(schedulers_online, 1),
    Fire1 = median([fire_and_collect() || _ <- lists:seq(1, ?FIRE_ROUNDS)]),
    erlang:system_flag(schedulers_online, Online),
    row("the same with one scheduler online (schedulers_online 1)",
        io_lib:format("~s tasks/s", [k(Fire1)])),
    %% The same in a process whose heap is made big enough at once: its
    %% 10,000 references and replies otherwise grow it in steps, each new
    %% heap in fresh pages (about 14.5 us each on these VMs), and past
    %% 128k words every collection runs on a dirty scheduler.
    FireH = median([in_process(fun fire_and_collect/0, [{min_heap_size, 2000000}])
                    || _ <- lists:seq(1, ?FIRE_ROUNDS)]),
    row("the same in a process spawned with {min_heap_size, 2000000}",
        io_lib:format("~s tasks/s", [k(FireH)])),
    FireB = median([fire_and_collect_batch() || _ <- lists:seq(1, ?FIRE_ROUNDS)]),
    row("fire-and-collect, the same with create_tasks (one write per 256)",
        io_lib:format("~s tasks/s", [k(FireB)])),
    row("CPU per fire-and-collect task: BEAM / loop's port program",
        cpu_cell(cpu_per_task(fun fire_and_collect/0))),
    row("CPU per task with create_tasks: BEAM / loop's port program",
        cpu_cell(cpu_per_task(fun fire_and_collect_batch/0))),
    Conc = median([concurrent(single) || _ <- lists:seq(1, ?ROUNDS)]),
    row("50 processes submitting concurrently (target >= 100k)",
        io_lib:format("~s tasks/s", [k(Conc)])),
    ConcB = median([concurrent(batch) || _ <- lists:seq(1, ?ROUNDS)]),
    row("50 processes, each with create_tasks",
        io_lib:format("~s tasks/s", [k(ConcB)])),
    Sleep = median([sleeps() || _ <- lists:seq(1, 3)]),
    row("10,000 concurrent asyncio.sleep(0.01), wall time", io_lib:format("~b ms", [Sleep])),
    io:format("~n"),
    halt(0).

row(Label, Value) ->
    io:format("| ~ts | ~ts |~n", [Label, Value]).

k(Rate) -> io_lib:format("~.1fk", [Rate / 1000]).

median(L) ->
    lists:nth((length(L) + 1) div 2, lists:sort(L)).

percentile(L, P) ->
    lists:nth(max(1, length(L) * P div 100), lists:sort(L)).

define_helpers() ->
    Src = <<"
import sys, types
m = types.ModuleType('async_bench')
exec('''
def ident(x):
    return x
async def coro_ident(x):
    return x
''', m.__dict__)
sys.modules['async_bench'] = m
">>,
    [{ok, _} = py:eval(C, <<"exec(src, {})">>, #{src => Src})
     || Pool <- [default, py_event_loops], C <- py_context_router:contexts(Pool)],
    ok.

round_trips(EchoPort) ->
    Port = open_port({spawn_executable, EchoPort}, [{packet, 4}, binary, use_stdio]),
    Payload = binary:copy(<<"a">>, 32),
    Variants =
        [{echo, fun() -> true = port_command(Port, Payload), receive {Port, {data, _}} -> ok end end},
         {call_plain, fun() -> {ok, 1} = py:call(async_bench, ident, [1]) end},
         {task_plain, fun() ->
                              {ok, 1} = py_event_loop_pool:await(
                                          py_event_loop_pool:create_task(async_bench, ident, [1]))
                      end},
         {call_coro, fun() -> {ok, 1} = py:call(async_bench, coro_ident, [1]) end},
         {task_coro, fun() ->
                             {ok, 1} = py_event_loop_pool:await(
                                         py_event_loop_pool:create_task(async_bench, coro_ident,
                                                                        [1]))
                     end}],
    [timed(F, 200) || {_, F} <- Variants],
    Rounds = [[{K, timed(F, ?BLOCK)} || {K, F} <- Variants] || _ <- lists:seq(1, ?ROUNDS)],
    port_close(Port),
    Samples = [{K, lists:append([S || R <- Rounds, {K2, S} <- R, K2 =:= K])} || {K, _} <- Variants],
    maps:from_list([{K, median(S)} || {K, S} <- Samples] ++
                   [{{p10, K}, percentile(S, 10)} || {K, S} <- Samples]).

timed(F, N) ->
    [begin
         T0 = erlang:monotonic_time(nanosecond),
         F(),
         (erlang:monotonic_time(nanosecond) - T0) / 1000
     end || _ <- lists:seq(1, N)].

%% CPU time (user + system) per task of one fire-and-collect round, of the
%% BEAM and of the port program of the caller's loop: what a task costs
%% whatever else the machine runs.
cpu_per_task(Round0) ->
    Round = fun() -> [Round0() || _ <- lists:seq(1, ?CPU_ROUNDS)] end,
    {ok, {py_loop, Slot}} = py_event_loop_pool:get_loop(),
    Ctx = py_pool:context(py_event_loops, Slot),
    {ok, _, Owner, _} = py_context:lookup(Ctx),
    BeamOs = list_to_integer(os:getpid()),
    case py_port:info(Owner) of
        #{os_pid := PortOs} when is_integer(PortOs) ->
            B0 = cpu_us(BeamOs), P0 = cpu_us(PortOs),
            Round(),
            B1 = cpu_us(BeamOs), P1 = cpu_us(PortOs),
            {(B1 - B0) / (?CPU_ROUNDS * ?TASKS), (P1 - P0) / (?CPU_ROUNDS * ?TASKS)};
        _ ->
            %% the linked-in driver: Python runs inside the VM
            B0 = cpu_us(BeamOs),
            Round(),
            {(cpu_us(BeamOs) - B0) / (?CPU_ROUNDS * ?TASKS), in_vm}
    end.

cpu_cell({Beam, in_vm}) -> io_lib:format("~.1f us (the driver: Python in the VM)", [Beam]);
cpu_cell({Beam, Port}) -> io_lib:format("~.1f us / ~.1f us", [Beam, Port]).

cpu_us(OsPid) ->
    {ok, Stat} = file:read_file("/proc/" ++ integer_to_list(OsPid) ++ "/stat"),
    [_, AfterComm] = binary:split(Stat, <<") ">>),
    Fields = binary:split(AfterComm, <<" ">>, [global]),
    %% utime and stime are fields 14 and 15 of stat, 12 and 13 after the comm
    Ticks = binary_to_integer(lists:nth(12, Fields)) + binary_to_integer(lists:nth(13, Fields)),
    Ticks * 1000000 div 100.  % USER_HZ is 100 on Linux

%% F's result, run in a new process spawned with Opts.
in_process(F, Opts) ->
    Self = self(),
    {Pid, Mon} = spawn_opt(fun() -> Self ! {self(), F()} end, [monitor | Opts]),
    receive {Pid, Result} -> ok end,
    receive {'DOWN', Mon, process, Pid, _} -> Result end.

%% tasks/s
fire_and_collect() ->
    T0 = erlang:monotonic_time(microsecond),
    Refs = [py_event_loop_pool:create_task(async_bench, coro_ident, [I])
            || I <- lists:seq(1, ?TASKS)],
    [{ok, _} = py_event_loop_pool:await(R) || R <- Refs],
    ?TASKS * 1000000 / (erlang:monotonic_time(microsecond) - T0).

fire_and_collect_batch() ->
    T0 = erlang:monotonic_time(microsecond),
    Refs = py_event_loop_pool:create_tasks([{async_bench, coro_ident, [I]}
                                            || I <- lists:seq(1, ?TASKS)]),
    [{ok, _} = py_event_loop_pool:await(R) || R <- Refs],
    ?TASKS * 1000000 / (erlang:monotonic_time(microsecond) - T0).

concurrent(How) ->
    Parent = self(),
    T0 = erlang:monotonic_time(microsecond),
    Pids = [spawn_link(fun() ->
                               Refs = submit(How, ?PER_PROC),
                               [{ok, _} = py_event_loop_pool:await(R, 60000) || R <- Refs],
                               Parent ! {done, self()}
                       end) || _ <- lists:seq(1, ?PROCS)],
    [receive {done, P} -> ok end || P <- Pids],
    ?PROCS * ?PER_PROC * 1000000 / (erlang:monotonic_time(microsecond) - T0).

submit(single, N) ->
    [py_event_loop_pool:create_task(async_bench, coro_ident, [I]) || I <- lists:seq(1, N)];
submit(batch, N) ->
    py_event_loop_pool:create_tasks([{async_bench, coro_ident, [I]} || I <- lists:seq(1, N)]).

%% ms
sleeps() ->
    T0 = erlang:monotonic_time(millisecond),
    Refs = [py_event_loop_pool:create_task(asyncio, sleep, [0.01, I])
            || I <- lists:seq(1, ?TASKS)],
    [{ok, _} = py_event_loop_pool:await(R, 60000) || R <- Refs],
    erlang:monotonic_time(millisecond) - T0.
