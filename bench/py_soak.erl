%% Soak (issue 18; not part of `make test'): `make soak' makes SOAK_CALLS
%% (default 1,000,000) mixed calls from 8 processes: payloads of 0 B to 1 MiB
%% (mostly small), Python exceptions, callbacks into Erlang, channel traffic
%% and streams (a generator's values as a list, and as messages). It samples the resident memory of the VM and of every port
%% program at each tenth of the run and prints it; after the first tenth
%% (warm-up) every sample must stay within 10% of the warm-up figure.
-module(py_soak).

-export([main/1]).

-define(WORKERS, 8).

-spec main([string()]) -> no_return().
main(Args) ->
    Calls = case Args of
                [N | _] -> list_to_integer(N);
                [] -> 1000000
            end,
    {ok, _} = application:ensure_all_started(erlang_python),
    ok = py:register_function(soak_echo, fun([X]) -> X end),
    %% in the shared namespace: every process sees it
    [ok = py_context:exec(Ctx, python_code(), shared) || Ctx <- py_context_router:contexts(default)],
    {ok, Ch} = py_channel:new(#{max_size => 10000000}),
    Samples = run(Calls, Ch),
    [{_, Warm} | _] = Rest = tl(Samples),
    io:format("~nresident memory (MiB), sample after each tenth of ~p calls:~n", [Calls]),
    io:format("~-10s ~-8s ~-16s ~s~n", ["calls", "VM", "erlang:memory", "port programs"]),
    [io:format("~-10w ~-8.1f ~-16s ~w~n",
               [Done, mib(maps:get(vm, S)),
                io_lib:format("~.1f (bin ~.1f)", [mib(maps:get(total, S)), mib(maps:get(binary, S))]),
                [round(mib(R)) || R <- maps:get(ports, S)]])
     || {Done, S} <- Samples],
    Worst = lists:max([abs(maps:get(vm, S) - maps:get(vm, Warm)) / maps:get(vm, Warm)
                       || {_, S} <- Rest]),
    PortWorst = lists:max([0.0 | [abs(P - W) / W || {_, S} <- Rest,
                                                    {P, W} <- lists:zip(maps:get(ports, S),
                                                                        maps:get(ports, Warm)),
                                                    W > 0]]),
    io:format("largest drift after warm-up: VM ~.1f%, port programs ~.1f% (bound 10%)~n",
              [Worst * 100, PortWorst * 100]),
    halt(case Worst =< 0.10 andalso PortWorst =< 0.10 of true -> 0; false -> 1 end).

run(Calls, Ch) ->
    Tenth = max(1, Calls div 10),
    Counter = counters:new(1, []),
    Parent = self(),
    Workers = [spawn_link(fun() -> worker(I, Calls, Counter, Ch), Parent ! {done, self()} end)
               || I <- lists:seq(1, ?WORKERS)],
    Samples = sample(Counter, Tenth, Calls, 0, [{0, rss(Workers)}], Workers),
    [receive {done, W} -> ok end || W <- Workers],
    Samples.

sample(Counter, Tenth, Calls, Last, Acc, Ws) ->
    Done = counters:get(Counter, 1),
    if
        Done >= Calls -> lists:reverse([{Done, rss(Ws)} | Acc]);
        Done >= Last + Tenth -> sample(Counter, Tenth, Calls, Done, [{Done, rss(Ws)} | Acc], Ws);
        true -> receive after 20 -> ok end, sample(Counter, Tenth, Calls, Last, Acc, Ws)
    end.

worker(I, Calls, Counter, Ch) ->
    rand:seed(exsss, {I, I * 7, I * 13}),
    loop(Calls, Counter, Ch).

loop(Calls, Counter, Ch) ->
    case counters:get(Counter, 1) >= Calls of
        true -> ok;
        false ->
            one(rand:uniform(100), Ch),
            counters:add(Counter, 1, 1),
            loop(Calls, Counter, Ch)
    end.

one(R, _Ch) when R =< 60 ->
    {ok, 3} = py:call(operator, add, [1, 2]);
one(R, _Ch) when R =< 80 ->
    Size = payload_size(),
    Bin = binary:copy(<<"x">>, Size),
    {ok, Size} = py:call(builtins, len, [Bin]);
one(R, _Ch) when R =< 85 ->
    Size = payload_size(),
    {ok, Size} = py:eval(<<"len(soak_make(n))">>, #{n => Size});
one(R, _Ch) when R =< 92 ->
    {error, {'ZeroDivisionError', _}} = py:call(operator, truediv, [1, 0]);
one(R, _Ch) when R =< 95 ->
    {ok, 42} = py:eval(<<"erlang.call('soak_echo', 42)">>);
one(R, _Ch) when R =< 96 ->
    {ok, [0, 1, 2]} = py:stream_eval(<<"(x for x in range(3))">>);
one(R, _Ch) when R =< 97 ->
    {ok, Ref} = py:stream_start(builtins, iter, [[0, 1, 2]]),
    [receive {py_stream, Ref, {data, I}} -> ok after 10000 -> error({stream_stuck, I}) end
     || I <- [0, 1, 2]],
    receive {py_stream, Ref, done} -> ok after 10000 -> error(stream_not_done) end;
one(_, Ch) ->
    ok = py_channel:send(Ch, <<"msg">>),
    {ok, <<"msg">>} = py:call('__main__', soak_take, [Ch]).

%% 0 B to 1 MiB, mostly small: 1 in 1000 calls is 1 MiB
payload_size() ->
    case rand:uniform(1000) of
        1 -> 1 bsl 20;
        N when N =< 50 -> rand:uniform(65536);
        _ -> rand:uniform(256) - 1
    end.

python_code() ->
    <<"from erlang.channel import Channel\n"
      "def soak_make(n):\n"
      "    return 'y' * n\n"
      "def soak_take(ch):\n"
      "    return Channel(ch).receive()\n">>.

%% The soak's own processes are collected first: a worker that last built a
%% 1 MiB binary keeps it (and the VM its memory) until its next GC, which
%% makes the VM's figure depend on when a sample falls. erlang:memory/1 is
%% printed beside the VM's resident memory.
rss(Workers) ->
    [erlang:garbage_collect(W) || W <- [self() | Workers]],
    Ports = lists:usort([maps:get(os_pid, py_port:info(Owner))
                         || {_, Owner, _} <- ets:tab2list(py_ports)]),
    #{vm => rss_of(os:getpid()), ports => [rss_of(integer_to_list(P)) || P <- Ports],
      total => erlang:memory(total), binary => erlang:memory(binary)}.

rss_of(Pid) ->
    {ok, Status} = file:read_file("/proc/" ++ Pid ++ "/status"),
    {match, [Kb]} = re:run(Status, <<"VmRSS:\\s+(\\d+) kB">>, [{capture, all_but_first, binary}]),
    binary_to_integer(Kb) * 1024.

mib(Bytes) -> Bytes / 1048576.
