%% @doc The erlang_python benchmark (`make bench`).
%%
%% Measures a raw baseline (a minimal C++ {packet,4} echo port program,
%% bench/echo_port.cpp) and the `py' API side by side, and prints one Markdown
%% table with the ratios ours / raw next to the targets.
%%
%% Adding a benchmark: write a section function `fun(Env) -> #{Key => Value}'
%% (use measure_seq/1, measure_concurrent/3, ms_stats/1 for the figures), list it
%% in sections/0 with the keys it produces, and add one row per figure to rows/0.
%% Each section runs in its own process with a time limit; a section that
%% crashes or times out marks its figures as errors and the run goes on.
-module(py_bench).

-export([main/1]).

%% Interleaved sequential figures: rounds of one block per variant.
-define(IL_WARMUP, 1000).
-define(IL_BLOCK, 250).
-define(IL_ROUNDS, 24).
%% Concurrent figures: ?CALLERS processes call in a loop; calls completed in
%% the ?CONC_MS after a ?CONC_WARMUP_MS warm-up are counted.
-define(CALLERS, 8).
-define(CONC_WARMUP_MS, 300).
-define(CONC_MS, 2000).
%% Start-up: runs (median reported) and the pause after each stop.
-define(STARTUP_RUNS, 5).
-define(STARTUP_PAUSE_MS, 200).
-define(SECTION_TIMEOUT_MS, 20000).
%% Callbacks (Python -> registered Erlang function -> Python): the same counts
%% and windows as above, but the loops run in Python and are timed there.
-define(CB_THREADS, 8).
-define(CB_MANY_THREADS, 16).
-define(CB_ROUNDS, 3).  % rounds rotate the 1-, 8- and 16-thread windows: each goes first once
-define(CB_WARMUP_MS, 200).
-define(CB_MS, 800).
%% /proc/PID/stat counts CPU time in clock ticks of 10 ms (USER_HZ = 100).
-define(TICK_US, 10000).
%% Pools: ?CPU_CALLERS processes make ?CPU_CALLS calls each of a pure-Python
%% function calibrated to ?CPU_CALL_MS; routing overhead is ?ROUTE_ROUNDS
%% interleaved rounds of ?CALLERS callers (?ROUTE_WARMUP_MS + ?ROUTE_MS each).
-define(CPU_CALLERS, 2).
-define(CPU_CALLS, 80).
-define(CPU_CALL_MS, 5).
-define(CPU_ROUNDS, 3).
-define(ROUTE_ROUNDS, 6).  % a multiple of the 3 variants: each goes first as often
-define(ROUTE_WARMUP_MS, 200).
-define(ROUTE_MS, 600).

-define(APP, erlang_python).
-define(SMALL_PAYLOAD, 32).
-define(LARGE_PAYLOAD, 1024).

%% Env: #{echo_port := string(), bench_dir := string()}.
%% Figure values: {us, Stats} | {rate, CallsPerSecond} | {ms, Stats}
%%              | {cpu, {BeamUserUs, BeamSysUs}, {PortUserUs, PortSysUs}}
%%              | {na, Why :: string()} | {error, Why :: string()}.

%%====================================================================
%% Entry point
%%====================================================================

main([EchoPort]) ->
    main([EchoPort, default_bench_dir()]);
main([EchoPort, BenchDir]) ->
    ok = io:setopts([{encoding, unicode}]),
    ok = io:setopts(standard_error, [{encoding, unicode}]),
    %% The start-up bench stops the app: keep its "exited: stopped" reports out.
    ok = logger:set_module_level(application_controller, warning),
    try
        Env = #{echo_port => to_list(EchoPort), bench_dir => to_list(BenchDir)},
        T0 = now_ns(),
        Figures = run_sections(selected_sections(), Env),
        Header = header(),
        io:format("~n~ts~n~n", [Header]),
        print_table(rows(), Figures),
        io:format("~nSequential: median / mean of ~b rounds x ~b round trips (one caller, "
                  "timed per call), after ~b warm-up ones; raw echo, py and callback blocks "
                  "alternate, so all of them see the same machine.~n"
                  "Concurrent: ~b callers, calls completed in ~b ms after ~b ms warm-up.~n"
                  "Start-up: median of ~b runs of application start + first py:call.~n"
                  "Callbacks: timed in Python with time.perf_counter; sequential from the "
                  "context's own thread inside one py:call per block; calls/s from 1 and ~b "
                  "(and 16) Python threads of one context: median of ~b interleaved rounds (~b ms after "
                  "~b ms warm-up each); CPU from /proc/PID/stat over the ~b-thread rounds.~n"
                  "Pools, CPU-bound: ~b callers x ~b calls of bench_helpers.spin (~~~b ms each); "
                  "wall time of the whole batch, ratio = throughput vs one context.~n"
                  "Pools, routing: ~b callers, mean calls/s of ~b interleaved rounds "
                  "(~b ms after ~b ms warm-up each).~n"
                  "Total bench time: ~.1f s.~n",
                  [?IL_ROUNDS, ?IL_BLOCK, ?IL_WARMUP, ?CALLERS, ?CONC_MS, ?CONC_WARMUP_MS, ?STARTUP_RUNS,
                   ?CB_THREADS, ?CB_ROUNDS, ?CB_MS, ?CB_WARMUP_MS, ?CB_THREADS, ?CPU_CALLERS, ?CPU_CALLS, ?CPU_CALL_MS, ?CALLERS, ?ROUTE_ROUNDS,
                   ?ROUTE_MS, ?ROUTE_WARMUP_MS, (now_ns() - T0) / 1.0e9]),
        halt(0)
    catch
        Class:Reason:Stack ->
            io:format(standard_error, "py_bench crashed: ~p:~p~n~p~n", [Class, Reason, Stack]),
            halt(1)
    end.

default_bench_dir() ->
    %% The directory this module was compiled from (bench/).
    case proplists:get_value(source, ?MODULE:module_info(compile)) of
        Src when is_list(Src) -> filename:dirname(Src);
        _ -> filename:absname("bench")
    end.

%%====================================================================
%% What is measured and shown
%%====================================================================

%% {Name, NeedsApp, Keys, Fun}: Fun(Env) returns #{Key => Value} for its Keys.
sections() ->
    [{"sequential round trips, raw echo and py interleaved", true,
      [raw_seq_32, raw_seq_1k, call, call_io, ident_1k, eval, cb_seq, call_bound, call_ns],
      fun interleaved_sequential/1},
     {"raw baseline: 8 concurrent callers", false, [raw_conc], fun raw_concurrent/1},
     {"py: start-up", true, [startup], fun ours_startup/1},
     {"py: 8 concurrent callers", true, [conc, conc_ctx], fun ours_concurrent/1},
     {"py: callbacks (Python calls Erlang)", true, [cb_rate_1, cb_rate_8, cb_rate_many, cb_cpu_8],
      fun ours_callbacks/1},
     {"py: pools, CPU-bound calls", true,
      [cpu_call, cpu_single, cpu_worker, cpu_process, raw_cpu_1, raw_cpu_2],
      fun ours_pools_cpu/1},
     {"py: pools, routing overhead", true, [route_direct, route_pool, route_registered],
      fun ours_pools_routing/1},
     {"channels, Erlang → Python, and raw one-way pipe, interleaved", true,
      [list_to_atom(lists:concat([chan_, K, "_", S]))
       || K <- [raw, term, bytes], S <- py_channel_bench:sizes()],
      fun(Env) -> ok = start_app(Env), py_channel_bench:all(Env) end}].

%% EP_BENCH_ONLY=call,conc runs only the sections producing those keys (for
%% quick measurements while working); figures of the others show "not measured".
selected_sections() ->
    case os:getenv("EP_BENCH_ONLY") of
        Only when Only =:= false; Only =:= "" ->
            sections();
        Only ->
            Keys = [list_to_atom(K) || K <- string:lexemes(Only, ", ")],
            [S || {_, _, SKeys, _} = S <- sections(),
                  lists:any(fun(K) -> lists:member(K, SKeys) end, Keys)]
    end.

%% One row per figure: the `py' figure, the raw figure it is compared with and
%% the target on ours / raw (or on the absolute value).
rows() ->
    [#{label => "sequential py:call(operator, add, [1, 2]), µs median / mean",
       raw_label => "echo 32 B", raw => raw_seq_32, ours => call, target => {max_ratio, 1.3}},
     #{label => "sequential py:call(operator, add, [1, 2]) on a bound context, µs median / mean",
       raw_label => "unbound py:call", raw => call, ours => call_bound, target => {max_ratio, 1.05}},
     #{label => "sequential py:call(Ctx, '__main__', add, [1, 2]) (process-bound namespace), µs",
       raw_label => "py:call(operator, add)", raw => call, ours => call_ns,
       target => {max_ratio, 1.05}},
     #{label => "sequential py:call(io, operator, add, [1, 2]) (worker pool, 10 contexts), µs",
       raw_label => "echo 32 B", raw => raw_seq_32, ours => call_io, target => none},
     #{label => "sequential py:call(bench_helpers, ident, [1 KiB str]), µs median / mean",
       raw_label => "echo 1 KiB", raw => raw_seq_1k, ours => ident_1k, target => none},
     #{label => "sequential py:eval(<<\"1+1\">>), µs median / mean",
       raw_label => "echo 32 B", raw => raw_seq_32, ours => eval, target => {max_ratio, 1.5}},
     #{label => "8 callers py:call(operator, add, [1, 2]), calls/s",
       raw_label => "echo 32 B, 8 callers", raw => raw_conc, ours => conc,
       target => {min_ratio, 0.6}},
     #{label => "8 callers py:call(Ctx, operator, add, [1, 2]), one context, calls/s",
       raw_label => "echo 32 B, 8 callers", raw => raw_conc, ours => conc_ctx, target => none},
     #{label => "sequential callback Python → Erlang ident → Python, µs median / mean",
       raw_label => "echo 32 B", raw => raw_seq_32, ours => cb_seq, target => {max_ratio, 1.25}},
     #{label => "callbacks/s, 8 Python threads (vs raw echo, 8 callers)",
       raw_label => "echo 32 B, 8 callers", raw => raw_conc, ours => cb_rate_8, target => none},
     #{label => "callbacks/s, 8 Python threads (vs 1 Python thread)",
       raw_label => "1 Python thread", raw => cb_rate_1, ours => cb_rate_8,
       target => {min_ratio, 3}},
     #{label => "callbacks/s, 16 Python threads (what the machine can do)",
       raw_label => "1 Python thread", raw => cb_rate_1, ours => cb_rate_many, target => none},
     #{label => "CPU per callback, 8 Python threads, µs: BEAM + port program (user / system)",
       raw_label => "", raw => none, ours => cb_cpu_8, target => none},
     #{label => "CPU-bound call bench_helpers.spin (calibrated ~5 ms), µs median / mean",
       raw_label => "", raw => none, ours => cpu_call, target => none},
     #{label => "2 callers × 80 CPU-bound calls, 2-context process pool, wall ms (calls/s)",
       raw_label => "1 context", raw => cpu_single, ours => cpu_process,
       target => {min_ratio, 1.8}},
     #{label => "2 callers × 80 CPU-bound calls, 2-context worker pool, wall ms (calls/s)",
       raw_label => "1 context", raw => cpu_single, ours => cpu_worker, target => none},
     #{label => "machine ceiling: 2 python3 processes × 80 spin vs 1 × 160, wall ms (calls/s)",
       raw_label => "1 python3 process", raw => raw_cpu_1, ours => raw_cpu_2, target => none},
     #{label => "8 callers py:call(default, operator, add, [1, 2]), calls/s",
       raw_label => "8 callers, context pids", raw => route_direct, ours => route_pool,
       target => {min_ratio, 0.9}},
     #{label => "8 callers py:call(operator, add, [1, 2]) with registrations, calls/s",
       raw_label => "8 callers, context pids", raw => route_direct, ours => route_registered,
       target => {min_ratio, 0.9}},
     #{label => "Channel 64 B, Erlang send → Python receive, msgs/s (MB/s)",
       raw_label => "raw pipe, 64 B frames", raw => chan_raw_64, ours => chan_term_64,
       target => {min_abs_rate, 1000000}},
     #{label => "Channel 1 KiB, msgs/s (MB/s)",
       raw_label => "raw pipe, 1 KiB frames", raw => chan_raw_1024, ours => chan_term_1024,
       target => none},
     #{label => "Channel 16 KiB, msgs/s (MB/s)",
       raw_label => "raw pipe, 16 KiB frames", raw => chan_raw_16384, ours => chan_term_16384,
       target => {min_ratio, 0.7}},
     #{label => "ByteChannel 64 B, msgs/s (MB/s)",
       raw_label => "raw pipe, 64 B frames", raw => chan_raw_64, ours => chan_bytes_64,
       target => {min_abs_rate, 1000000}},
     #{label => "ByteChannel 1 KiB, msgs/s (MB/s)",
       raw_label => "raw pipe, 1 KiB frames", raw => chan_raw_1024, ours => chan_bytes_1024,
       target => none},
     #{label => "ByteChannel 16 KiB, msgs/s (MB/s)",
       raw_label => "raw pipe, 16 KiB frames", raw => chan_raw_16384, ours => chan_bytes_16384,
       target => {min_ratio, 0.7}},
     #{label => "start-up: app start to first result, ms median (min–max)",
       raw_label => "", raw => none, ours => startup, target => {max_abs, 170}}].

%%====================================================================
%% Sections: raw baseline
%%====================================================================

%% The sequential figures that are compared with each other, measured in
%% alternating blocks: on a shared VM the cost of a thread wake-up drifts by
%% several times within minutes, so figures taken one after the other are not
%% comparable, while blocks interleaved over the same seconds are.
interleaved_sequential(#{echo_port := Path} = Env) ->
    Port = open_echo(Path),
    ok = start_app(Env),
    ok = py:register_function(bench_ident, fun([X]) -> X end),
    Ctx = py:context(1),
    try
        ok = py:exec(Ctx, callback_helpers()),
        %% this process's own namespace on Ctx (process-bound namespaces)
        ok = py:exec(Ctx, <<"from operator import add">>),
        Echo = fun(Payload) ->
                       fun() ->
                               true = erlang:port_command(Port, Payload),
                               receive {Port, {data, _}} -> ok end
                       end
               end,
        Bin = binary:copy(<<"a">>, ?LARGE_PAYLOAD),
        Timed = fun(Fun) -> fun(N) -> timed_calls(Fun, N) end end,
        Variants0 =
            [{raw_seq_32, Timed(Echo(payload(?SMALL_PAYLOAD)))},
             {raw_seq_1k, Timed(Echo(payload(?LARGE_PAYLOAD)))},
             {call, Timed(fun() -> {ok, 3} = py:call(operator, add, [1, 2]) end)},
             {call_io, Timed(fun() -> {ok, 3} = py:call(io, operator, add, [1, 2]) end)},
             {eval, Timed(fun() -> {ok, 2} = py:eval(<<"1+1">>) end)},
             {call_bound, fun(N) ->
                                  ok = py_context_router:bind_context(Ctx),
                                  try timed_calls(fun() -> {ok, 3} = py:call(operator, add, [1, 2]) end, N)
                                  after py_context_router:unbind_context()
                                  end
                          end},
             {call_ns, Timed(fun() -> {ok, 3} = py:call(Ctx, '__main__', add, [1, 2]) end)},
             {cb_seq, fun(N) ->
                              {ok, Samples} = py:call(Ctx, '__main__', bench_cb_seq, [0, N, 60.0]),
                              Samples
                      end}],
        Variants = case ident_fun() of
                       {ok, IdentFun} ->
                           Variants0 ++ [{ident_1k, Timed(fun() -> {ok, Bin} = IdentFun(Bin) end)}];
                       {error, _} ->
                           Variants0
                   end,
        [F(?IL_WARMUP) || {_, F} <- Variants],
        %% Each round starts one variant further on: a variant's neighbours
        %% (what ran just before it on the same threads) change from round to
        %% round, so no variant inherits a fixed advantage from the order.
        Rounds = [[{K, F(?IL_BLOCK)} || {K, F} <- rotate(R, Variants)]
                  || R <- lists:seq(0, ?IL_ROUNDS - 1)],
        maps:from_list([{K, {us, stats(lists:append([S || Round <- Rounds, {K2, S} <- Round,
                                                          K2 =:= K]))}}
                        || {K, _} <- Variants])
    after
        py:unregister_function(bench_ident),
        port_close(Port)
    end.

rotate(N, List) ->
    {Front, Back} = lists:split(N rem length(List), List),
    Back ++ Front.

%% N round trips of Fun, each timed: µs.
timed_calls(Fun, N) ->
    [begin
         T0 = now_ns(),
         Fun(),
         (now_ns() - T0) / 1000
     end || _ <- lists:seq(1, N)].

%% Each caller writes its own request with port_command; one owner process
%% holds the port, reads the 8-byte request ID at the start of each echoed
%% payload and forwards the payload, untouched, to that caller.
%% Request ID = <<CallerIndex:16, Seq:48>>.
raw_concurrent(#{echo_port := Path}) ->
    Port = open_echo(Path),
    Owner = spawn_link(fun() -> receive {callers, Callers} -> echo_owner(Port, Callers) end end),
    true = erlang:port_connect(Port, Owner),
    unlink(Port),
    Pad = payload(?SMALL_PAYLOAD - 8),
    MakeCall = fun(I) ->
                       fun(Seq) ->
                               true = erlang:port_command(Port, <<I:16, Seq:48, Pad/binary>>),
                               receive {echo_reply, <<I:16, Seq:48, _/binary>>} -> ok end
                       end
               end,
    Rate = measure_concurrent(?CALLERS, MakeCall,
                              fun(Pids) -> Owner ! {callers, list_to_tuple(Pids)} end),
    unlink(Owner),
    exit(Owner, kill),
    #{raw_conc => Rate}.

echo_owner(Port, Callers) ->
    receive
        {Port, {data, <<Id:64, _/binary>> = Payload}} ->
            element((Id bsr 48) + 1, Callers) ! {echo_reply, Payload},
            echo_owner(Port, Callers)
    end.

open_echo(Path) ->
    open_port({spawn_executable, Path}, [{packet, 4}, binary, use_stdio]).

%%====================================================================
%% Sections: the py API
%%====================================================================

ours_startup(Env) ->
    Samples = [startup_once(Env) || _ <- lists:seq(1, ?STARTUP_RUNS)],
    #{startup => ms_stats(Samples)}.

startup_once(Env) ->
    _ = application:stop(?APP),
    timer:sleep(?STARTUP_PAUSE_MS),
    ok = configure_app(Env),
    T0 = now_ns(),
    ok = ensure_started(),
    {ok, 3} = py:call(operator, add, [1, 2]),
    (now_ns() - T0) / 1.0e6.

%% bench/bench_helpers.py, importable through the app env python_path; else an
%% ident defined in context 1's namespace.
ident_fun() ->
    Bin = <<"probe">>,
    case catch py:call(bench_helpers, ident, [Bin]) of
        {ok, Bin} ->
            {ok, fun(X) -> py:call(bench_helpers, ident, [X]) end};
        Other ->
            case erlang:function_exported(py, context, 1) of
                true ->
                    Ctx = case py:context(1) of
                              {ok, C} -> C;
                              C -> C
                          end,
                    {ok, _} = py:exec(Ctx, <<"def ident(x): return x">>),
                    {ok, fun(X) -> py:call(Ctx, '__main__', ident, [X]) end};
                false ->
                    {error, flat("bench_helpers not importable: ~0p", [Other])}
            end
    end.

%% Also all 8 callers on one context (one port program): on 2 vCPUs the
%% default pool's two port programs and the BEAM compete for the CPUs.
ours_concurrent(Env) ->
    ok = start_app(Env),
    MakeCall = fun(_I) -> fun(_Seq) -> {ok, 3} = py:call(operator, add, [1, 2]) end end,
    Conc = measure_concurrent(?CALLERS, MakeCall, fun(_) -> ok end),
    Ctx = py:context(1),
    OneCtx = fun(_I) -> fun(_Seq) -> {ok, 3} = py:call(Ctx, operator, add, [1, 2]) end end,
    #{conc => Conc, conc_ctx => measure_concurrent(?CALLERS, OneCtx, fun(_) -> ok end)}.

%% Python calling a registered Erlang identity function. Sequential: one loop
%% of calls on the context's own thread inside one py:call, each call timed
%% in Python with time.perf_counter. Rates: N Python threads call in a loop;
%% the calls completed in the window after the warm-up are counted. The 1-, 8-
%% and 16-thread windows are interleaved over ?CB_ROUNDS rounds and each figure
%% is the median round: the one-thread rate follows the machine's wake-up cost,
%% which drifts by several times within minutes. 16 threads show the most
%% callbacks/s the machine gives, whatever the concurrency.
%% The CPU the BEAM and the port program used during the 8-thread windows, per
%% callback, shows what bounds that rate (both processes share 2 vCPUs).
ours_callbacks(Env) ->
    ok = start_app(Env),
    ok = py:register_function(bench_ident, fun([X]) -> X end),
    Ctx = py:context(1),
    try
        ok = py:exec(Ctx, callback_helpers()),
        {ok, PortOsPid} = py:call(Ctx, os, getpid, []),
        Procs = [os:getpid(), integer_to_list(PortOsPid)],
        Window = fun(Threads) ->
                         Cpu0 = [cpu_ticks(P) || P <- Procs],
                         {ok, [Rate, Calls]} =
                             py:call(Ctx, '__main__', bench_cb_rate,
                                     [Threads, ?CB_WARMUP_MS / 1000, ?CB_MS / 1000]),
                         Cpu = [{U1 - U0, S1 - S0}
                                || {{U0, S0}, {U1, S1}} <- lists:zip(Cpu0, [cpu_ticks(P) || P <- Procs])],
                         {Threads, Rate, Calls, Cpu}
                 end,
        Variants = [1, ?CB_THREADS, ?CB_MANY_THREADS],
        Rotate = fun(K) -> {A, B} = lists:split(K rem length(Variants), Variants), B ++ A end,
        Rounds = figure(fun() -> [Window(T) || R <- lists:seq(0, ?CB_ROUNDS - 1), T <- Rotate(R)] end),
        callback_figures(Rounds)
    after
        py:unregister_function(bench_ident)
    end.

callback_figures({error, _} = Error) ->
    #{cb_rate_1 => Error, cb_rate_8 => Error, cb_rate_many => Error, cb_cpu_8 => Error};
callback_figures(Windows) ->
    Rates = fun(T) -> [R || {T2, R, _, _} <- Windows, T2 =:= T] end,
    io:format(standard_error, " ~0p", [[{T, [round(R) || R <- Rates(T)]}
                                        || T <- [1, ?CB_THREADS, ?CB_MANY_THREADS]]]),
    Median = fun(L) -> maps:get(median, stats(L)) end,
    Eight = [W || {?CB_THREADS, _, _, _} = W <- Windows],
    Calls = lists:sum([C || {_, _, C, _} <- Eight]),
    PerCall = fun(Ticks) -> Ticks * ?TICK_US / Calls end,
    [Beam, Port] = [{PerCall(lists:sum([U || {_, _, _, Cpu} <- Eight, {U, _} <- [lists:nth(I, Cpu)]])),
                     PerCall(lists:sum([S || {_, _, _, Cpu} <- Eight, {_, S} <- [lists:nth(I, Cpu)]]))}
                    || I <- [1, 2]],
    #{cb_rate_1 => {rate, Median(Rates(1))},
      cb_rate_8 => {rate, Median(Rates(?CB_THREADS))},
      cb_rate_many => {rate, Median(Rates(?CB_MANY_THREADS))},
      cb_cpu_8 => {cpu, Beam, Port}}.

%% User and system CPU of an OS process so far, in clock ticks (/proc/PID/stat).
cpu_ticks(OsPid) ->
    {ok, Stat} = file:read_file(["/proc/", OsPid, "/stat"]),
    [_, AfterName] = string:split(Stat, ") ", trailing),
    Fields = string:lexemes(AfterName, " "),
    {binary_to_integer(lists:nth(12, Fields)), binary_to_integer(lists:nth(13, Fields))}.

callback_helpers() ->
    <<"
import threading
import time

def bench_cb_seq(warmup, n, max_s):
    call = erlang.call
    pc = time.perf_counter
    for i in range(warmup):
        call('bench_ident', i)
    samples = []
    deadline = pc() + max_s
    for i in range(n):
        t0 = pc()
        call('bench_ident', i)
        t1 = pc()
        samples.append((t1 - t0) * 1e6)
        if t1 > deadline:
            break
    return samples

def bench_cb_rate(nthreads, warm_s, window_s):
    counts = [0] * nthreads
    totals = [0] * nthreads
    go = threading.Barrier(nthreads + 1)
    window = []
    def worker(k):
        call = erlang.call
        pc = time.perf_counter
        go.wait()
        warm_end, end = window
        c = n = 0
        while True:
            call('bench_ident', k)
            n += 1
            now = pc()
            if now >= end:
                break
            if now >= warm_end:
                c += 1
        counts[k] = c
        totals[k] = n
    threads = [threading.Thread(target=worker, args=(k,)) for k in range(nthreads)]
    for t in threads:
        t.start()
    now = time.perf_counter()
    window.extend([now + warm_s, now + warm_s + window_s])
    go.wait()
    for t in threads:
        t.join()
    return [sum(counts) / window_s, sum(totals)]
">>.

%% CPU-bound pure Python (bench_helpers.spin, calibrated to ?CPU_CALL_MS) from
%% ?CPU_CALLERS processes: on one context, a 2-context worker pool (one GIL)
%% and a 2-context process pool (one port program, so one GIL, per context).
%% The machine's own ceiling: the same loops in 1 and in 2 plain python3
%% processes (on a shared VM two busy processes rarely get two whole cores).
%% Rounds interleave the variants; each figure is the median round.
ours_pools_cpu(#{bench_dir := BenchDir} = Env) ->
    ok = start_app(Env),
    Pools = [{bench_single, 1, process}, {bench_worker, 2, worker}, {bench_process, 2, process}],
    try
        [{ok, _} = py_context_router:start_pool(P, S, M) || {P, S, M} <- Pools],
        %% every port program is up and has imported bench_helpers before timing
        [{ok, 0} = py:call(C, bench_helpers, spin, [1])
         || {P, _, _} <- Pools, C <- py_context_router:contexts(P)],
        N = calibrate_spin(bench_single),
        Spin = fun() -> {ok, _} = py:call(bench_single, bench_helpers, spin, [N]) end,
        Call = figure(fun() -> measure_few(Spin, 3, 20) end),
        Python = os:find_executable("python3"),
        Variants = [{cpu_single, fun() -> cpu_wall(bench_single, N) end},
                    {cpu_worker, fun() -> cpu_wall(bench_worker, N) end},
                    {cpu_process, fun() -> cpu_wall(bench_process, N) end},
                    {raw_cpu_1, fun() -> raw_cpu_wall(Python, BenchDir, N, 1) end},
                    {raw_cpu_2, fun() -> raw_cpu_wall(Python, BenchDir, N, ?CPU_CALLERS) end}],
        Rounds = [[{K, figure(Fun)} || {K, Fun} <- Variants] || _ <- lists:seq(1, ?CPU_ROUNDS)],
        io:format(standard_error, " ~0p",
                  [[[round(Ms) || {_, {wall, Ms, _}} <- Round] || Round <- Rounds]]),
        Walls = maps:from_list([{K, median_wall([W || Round <- Rounds, {K2, W} <- Round, K2 =:= K])}
                                || {K, _} <- Variants]),
        Walls#{cpu_call => Call}
    after
        [py_context_router:stop_pool(P) || {P, _, _} <- Pools]
    end.

%% The n for which spin(n) takes about ?CPU_CALL_MS (timed in Python).
calibrate_spin(Pool) ->
    Probe = 100000,
    Secs = lists:sort([S || _ <- lists:seq(1, 7),
                            {ok, S} <- [py:call(Pool, bench_helpers, spin_timed, [Probe])]]),
    N = max(1000, round(Probe * ?CPU_CALL_MS / 1000 / lists:nth(4, Secs))),
    io:format(standard_error, " [spin(~b)]", [N]),
    N.

%% Times Count calls of Fun one by one after Warmup untimed ones.
measure_few(Fun, Warmup, Count) ->
    [Fun() || _ <- lists:seq(1, Warmup)],
    {us, stats([begin T0 = now_ns(), Fun(), (now_ns() - T0) / 1000 end
                || _ <- lists:seq(1, Count)])}.

median_wall(Walls) ->
    case lists:sort([W || {wall, _, _} = W <- Walls]) of
        [] -> hd(Walls);
        Sorted -> lists:nth((length(Sorted) + 1) div 2, Sorted)
    end.

%% ?CPU_CALLERS * ?CPU_CALLS spin(N) calls split over Procs python3 processes.
raw_cpu_wall(false, _BenchDir, _N, _Procs) ->
    {na, "no python3"};
raw_cpu_wall(Python, BenchDir, N, Procs) ->
    Calls = ?CPU_CALLERS * ?CPU_CALLS div Procs,
    Code = flat("import sys; sys.path.insert(0, ~p); import bench_helpers as b; "
                "[b.spin(~b) for _ in range(~b)]", [BenchDir, N, Calls]),
    T0 = now_ns(),
    Ports = [open_port({spawn_executable, Python}, [{args, ["-c", Code]}, exit_status])
             || _ <- lists:seq(1, Procs)],
    [receive {P, {exit_status, 0}} -> ok end || P <- Ports],
    {wall, (now_ns() - T0) / 1.0e6, Calls * Procs}.

cpu_wall(Pool, N) ->
    Parent = self(),
    Callers = [spawn_link(fun() ->
                                  receive go -> ok end,
                                  [{ok, _} = py:call(Pool, bench_helpers, spin, [N])
                                   || _ <- lists:seq(1, ?CPU_CALLS)],
                                  Parent ! {cpu_done, self()}
                          end) || _ <- lists:seq(1, ?CPU_CALLERS)],
    T0 = now_ns(),
    [P ! go || P <- Callers],
    [receive {cpu_done, P} -> ok end || P <- Callers],
    {wall, (now_ns() - T0) / 1.0e6, ?CPU_CALLERS * ?CPU_CALLS}.

%% Small calls through the router vs straight to a context pid: ?CALLERS
%% callers, caller I bound to context I rem Size of the default pool (direct),
%% py:call(default, ...) (pool: get_context), and py:call/3 with a few
%% registrations in place (lookup_pool + get_context). The three are
%% interleaved over ?ROUTE_ROUNDS rounds, in a rotated order each round, so
%% that load drifts hit them alike.
ours_pools_routing(Env) ->
    ok = start_app(Env),
    Ctxs = list_to_tuple(py_context_router:contexts(default)),
    Regs = [{io, json}, {io, {urllib, urlopen}}, {default, {json, dumps}}, {io, requests}],
    [ok = py:register_pool(P, T) || {P, T} <- Regs],
    try
        Direct = fun(I) ->
                         Ctx = element(I rem tuple_size(Ctxs) + 1, Ctxs),
                         fun(_) -> {ok, 3} = py:call(Ctx, operator, add, [1, 2]) end
                 end,
        Pool = fun(_) -> fun(_) -> {ok, 3} = py:call(default, operator, add, [1, 2]) end end,
        Routed = fun(_) -> fun(_) -> {ok, 3} = py:call(operator, add, [1, 2]) end end,
        Variants = [{route_direct, Direct}, {route_pool, Pool}, {route_registered, Routed}],
        Rotate = fun(L, K) -> {A, B} = lists:split(K rem length(L), L), B ++ A end,
        Rounds = [lists:sort([{K, measure_concurrent(?CALLERS, Make, fun(_) -> ok end,
                                                     ?ROUTE_WARMUP_MS, ?ROUTE_MS)}
                              || {K, Make} <- Rotate(Variants, Round)])
                  || Round <- lists:seq(0, ?ROUTE_ROUNDS - 1)],
        io:format(standard_error, " ~0p", [[[round(R) || {_, {rate, R}} <- Rd] || Rd <- Rounds]]),
        maps:from_list([{K, {rate, lists:sum([R || Rd <- Rounds, {K2, {rate, R}} <- Rd, K2 =:= K])
                                / ?ROUTE_ROUNDS}}
                        || {K, _} <- Variants])
    after
        [py:unregister_pool(T) || {_, T} <- Regs]
    end.

start_app(Env) ->
    case lists:keymember(?APP, 1, application:which_applications()) of
        true ->
            ok;
        false ->
            ok = configure_app(Env),
            ensure_started()
    end.

ensure_started() ->
    case application:ensure_all_started(?APP) of
        {ok, _} -> ok;
        {error, Reason} -> error({app_start_failed, Reason})
    end.

%% Puts bench/ on Python's sys.path (for bench_helpers.py). The app is loaded
%% first so that its .app defaults do not overwrite the setting.
configure_app(#{bench_dir := Dir}) ->
    case application:load(?APP) of
        ok -> ok;
        {error, {already_loaded, ?APP}} -> ok
    end,
    application:set_env(?APP, python_path, [Dir]).

%%====================================================================
%% Running sections
%%====================================================================

run_sections(Sections, Env) ->
    AppBuilt = code:which(py) =/= non_existing,
    lists:foldl(fun(Section, Acc) -> maps:merge(Acc, run_section(Section, Env, AppBuilt)) end,
                #{}, Sections).

run_section({_Name, true, Keys, _Fun}, _Env, false) ->
    maps:from_list([{K, {na, "(app not built)"}} || K <- Keys]);
run_section({Name, _NeedsApp, Keys, Fun}, Env, _AppBuilt) ->
    io:format(standard_error, "~ts ...", [Name]),
    T0 = now_ns(),
    {Pid, Ref} = spawn_monitor(fun() ->
                                       exit(try {section_result, Fun(Env)}
                                            catch C:R:St -> {section_crash, {C, R}, St}
                                            end)
                               end),
    Result = receive
                 {'DOWN', Ref, process, Pid, {section_result, Map}} when is_map(Map) ->
                     Map;
                 {'DOWN', Ref, process, Pid, {section_crash, {Class, Reason}, Stack}} ->
                     io:format(standard_error, " crashed: ~0P~n  ~0P~n",
                               [{Class, Reason}, 20, Stack, 20]),
                     error_figures(Keys, cell_reason(Reason));
                 {'DOWN', Ref, process, Pid, Reason} ->
                     io:format(standard_error, " died: ~0P~n", [Reason, 20]),
                     error_figures(Keys, "died: " ++ cell_reason(short_reason(Reason)))
             after ?SECTION_TIMEOUT_MS ->
                     exit(Pid, kill),
                     receive {'DOWN', Ref, process, Pid, _} -> ok end,
                     io:format(standard_error, " timed out", []),
                     error_figures(Keys, "timed out")
             end,
    io:format(standard_error, " ~.1f s~n", [(now_ns() - T0) / 1.0e9]),
    maps:merge(maps:from_list([{K, {na, "not measured"}} || K <- Keys]), Result).

error_figures(Keys, Why) ->
    maps:from_list([{K, {error, Why}} || K <- Keys]).

%% The reason without the stack trace, for a table cell.
short_reason({Reason, [{M, F, _, _} | _]}) when is_atom(M), is_atom(F) ->
    Reason;
short_reason(Reason) ->
    Reason.

cell_reason({app_start_failed, _}) -> "app failed to start (see stderr)";
cell_reason(Reason) -> flat("~0P", [Reason, 8]).

%%====================================================================
%% Measuring
%%====================================================================

%% N callers; MakeCall(Index) runs in caller Index (0-based) and returns
%% fun(Seq) making one call. BeforeGo(Pids) runs once all callers exist.
%% Returns {rate, CallsPerSecond}.
measure_concurrent(N, MakeCall, BeforeGo) ->
    measure_concurrent(N, MakeCall, BeforeGo, ?CONC_WARMUP_MS, ?CONC_MS).

measure_concurrent(N, MakeCall, BeforeGo, WarmupMs, WindowMs) ->
    Parent = self(),
    Pids = [spawn_link(fun() ->
                               Call = MakeCall(I),
                               receive
                                   {go, WarmEnd, End} ->
                                       Count = caller_loop(Call, 0, WarmEnd, End, 0),
                                       Parent ! {calls, self(), Count}
                               end
                       end)
            || I <- lists:seq(0, N - 1)],
    BeforeGo(Pids),
    WarmEnd = now_ns() + WarmupMs * 1000000,
    End = WarmEnd + WindowMs * 1000000,
    [P ! {go, WarmEnd, End} || P <- Pids],
    Total = lists:sum([receive {calls, P, C} -> C end || P <- Pids]),
    {rate, Total / (WindowMs / 1000)}.

caller_loop(Call, Seq, WarmEnd, End, Count) ->
    Call(Seq),
    Now = now_ns(),
    if
        Now >= End -> Count;
        Now >= WarmEnd -> caller_loop(Call, Seq + 1, WarmEnd, End, Count + 1);
        true -> caller_loop(Call, Seq + 1, WarmEnd, End, Count)
    end.

%% Runs Fun() (which returns a figure); a crash becomes {error, Why}, so that
%% one failing figure does not lose the others of its section.
figure(Fun) ->
    try
        Fun()
    catch
        Class:Reason:Stack ->
            io:format(standard_error, "~n  figure failed: ~0P~n  ~0P~n",
                      [{Class, Reason}, 20, Stack, 20]),
            {error, cell_reason(Reason)}
    end.

ms_stats(Samples) ->
    {ms, stats(Samples)}.

stats(Samples) ->
    Sorted = lists:sort(Samples),
    N = length(Sorted),
    #{n => N,
      median => median(Sorted, N),
      mean => lists:sum(Sorted) / N,
      min => hd(Sorted),
      max => lists:last(Sorted),
      p99 => lists:nth(max(1, ceil(N * 0.99)), Sorted)}.

median(Sorted, N) when N rem 2 =:= 1 ->
    lists:nth(N div 2 + 1, Sorted);
median(Sorted, N) ->
    (lists:nth(N div 2, Sorted) + lists:nth(N div 2 + 1, Sorted)) / 2.

now_ns() ->
    erlang:monotonic_time(nanosecond).

payload(Size) ->
    binary:copy(<<"x">>, Size).

%%====================================================================
%% Output
%%====================================================================

header() ->
    {ok, Host} = inet:gethostname(),
    Nproc = string:trim(os:cmd("nproc")),
    Cpu = cpu_model(),
    Otp = erlang:system_info(otp_release),
    Erts = erlang:system_info(version),
    flat("erlang_python bench on ~ts: nproc ~ts~ts, OTP ~ts (erts ~ts, ~b schedulers), "
         "Python ~ts",
         [Host, Nproc, Cpu, Otp, Erts, erlang:system_info(schedulers_online),
          python_version()]).

cpu_model() ->
    case file:read_file("/proc/cpuinfo") of
        {ok, Info} ->
            case re:run(Info, "^model name\\s*:\\s*(.*)$", [multiline, {capture, [1], binary}]) of
                {match, [Model]} -> flat(" (~ts)", [Model]);
                nomatch -> ""
            end;
        _ ->
            ""
    end.

python_version() ->
    case code:ensure_loaded(py) of
        {module, py} ->
            case erlang:function_exported(py, version, 0) of
                true ->
                    case catch py:version() of
                        {ok, V} -> to_text(V);
                        V when is_binary(V); is_list(V) -> to_text(V);
                        _ -> "unknown (py:version() failed)"
                    end;
                false ->
                    "unknown (no py:version/0)"
            end;
        _ ->
            "unknown (app not built)"
    end.

print_table(Rows, Figures) ->
    Head = ["figure", "raw baseline", "raw", "ours", "ours / raw", "target", "met"],
    Lines = [table_row(Row, Figures) || Row <- Rows],
    Widths = [lists:max([string:length(Cell) || Cell <- Col]) || Col <- transpose([Head | Lines])],
    Fmt = fun(Cells) ->
                  ["|", [[" ", string:pad(C, W), " |"] || {C, W} <- lists:zip(Cells, Widths)], "\n"]
          end,
    io:format("~ts", [Fmt(Head)]),
    io:format("~ts", [["|", [[lists:duplicate(W + 2, $-), "|"] || W <- Widths], "\n"]]),
    [io:format("~ts", [Fmt(L)]) || L <- Lines],
    ok.

table_row(#{label := Label, raw_label := RawLabel, raw := RawKey, ours := OursKey,
            target := Target}, Figures) ->
    Raw = case RawKey of
              none -> none;
              _ -> maps:get(RawKey, Figures, {na, "not measured"})
          end,
    Ours = maps:get(OursKey, Figures, {na, "not measured"}),
    Ratio = ratio(Ours, Raw),
    [Label, RawLabel, fmt_value(Raw), fmt_value(Ours), fmt_ratio(Ratio), fmt_target(Target),
     verdict(Target, Ratio, Ours)].

ratio({us, #{median := O}}, {us, #{median := R}}) -> O / R;
ratio({rate, O}, {rate, R}) when R > 0 -> O / R;
ratio({chan_rate, O, _}, {chan_rate, R, _}) when R > 0 -> O / R;
%% wall times of batches: the ratio of throughputs (the speed-up)
ratio({wall, O, NO}, {wall, R, NR}) when O > 0, R > 0 -> (NO / O) / (NR / R);
ratio(_, _) -> none.

verdict({max_ratio, Max}, Ratio, _) when is_number(Ratio) -> yes_no(Ratio =< Max);
verdict({min_ratio, Min}, Ratio, _) when is_number(Ratio) -> yes_no(Ratio >= Min);
verdict({max_abs, Max}, _, {ms, #{median := V}}) -> yes_no(V =< Max);
verdict({min_abs_rate, Min}, _, {chan_rate, V, _}) -> yes_no(V >= Min);
verdict(_, _, _) -> "".

yes_no(true) -> "yes";
yes_no(false) -> "NO".

fmt_value(none) -> "—";
fmt_value({us, #{median := M, mean := A}}) -> flat("~.1f / ~.1f", [float(M), float(A)]);
fmt_value({rate, R}) -> thousands(round(R));
fmt_value({chan_rate, R, Size}) -> flat("~ts (~b MB/s)", [thousands(round(R)), round(R * Size / 1.0e6)]);
fmt_value({wall, Ms, Calls}) -> flat("~ts ms (~ts calls/s)", [thousands(round(Ms)),
                                                          thousands(round(Calls * 1000 / Ms))]);
fmt_value({ms, #{median := M, min := Lo, max := Hi}}) ->
    flat("~.1f (~.1f–~.1f)", [float(M), float(Lo), float(Hi)]);
fmt_value({cpu, {BeamUser, BeamSys}, {PortUser, PortSys}}) ->
    flat("~.1f (~.1f / ~.1f) + ~.1f (~.1f / ~.1f)",
         [BeamUser + BeamSys, BeamUser, BeamSys, PortUser + PortSys, PortUser, PortSys]);
fmt_value({na, Why}) -> Why;
fmt_value({error, Why}) -> "error: " ++ Why.

fmt_ratio(none) -> "—";
fmt_ratio(R) -> flat("~.2f×", [float(R)]).

fmt_target(none) -> "—";
fmt_target({max_ratio, X}) -> flat("≤ ~s×", [num(X)]);
fmt_target({min_ratio, X}) -> flat("≥ ~s×", [num(X)]);
fmt_target({max_abs, X}) -> flat("≤ ~s ms", [num(X)]);
fmt_target({min_abs_rate, X}) -> flat("≥ ~ts msgs/s", [thousands(X)]).

num(X) when is_integer(X) -> integer_to_list(X);
num(X) -> float_to_list(X, [{decimals, 2}, compact]).

thousands(N) ->
    Digits = integer_to_list(N),
    Groups = group3(lists:reverse(Digits)),
    lists:reverse(lists:flatten(lists:join($,, Groups))).

group3([A, B, C | Rest]) when Rest =/= [] -> [[A, B, C] | group3(Rest)];
group3(Rest) -> [Rest].

transpose([[] | _]) -> [];
transpose(Rows) -> [[hd(R) || R <- Rows] | transpose([tl(R) || R <- Rows])].

flat(Fmt, Args) ->
    unicode:characters_to_list(io_lib:format(Fmt, Args)).

to_text(V) when is_binary(V) -> unicode:characters_to_list(V);
to_text(V) when is_list(V) -> V;
to_text(V) -> flat("~0p", [V]).

to_list(V) when is_binary(V) -> binary_to_list(V);
to_list(V) when is_atom(V) -> atom_to_list(V);
to_list(V) -> V.
