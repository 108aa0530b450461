%% Figures for the erlang_python drop-in API (issue 16), run on its own:
%%
%%   erlc -o _build/bench bench/py_dropin_bench.erl
%%   erl -noshell -pa ebin _build/bench -s py_dropin_bench main -s init stop
%%
%% - py:state_incr/1 ops/s from 8 Erlang processes, and erlang.state_incr
%%   from 8 Python threads of one context (one callback each);
%% - SharedDict set and get ops/s from one Python thread;
%% - a stream of 100,000 small integers Python -> Erlang (py:stream_start,
%%   values/s, start to `done'), beside a channel of the same values
%%   Erlang -> Python (py_channel:send to a Python consumer), and py:stream
%%   (the batch form: one list).
%% Each figure is the median of ?ROUNDS rounds.
-module(py_dropin_bench).

-export([main/0]).

-define(ROUNDS, 3).
-define(N, 100000).

-spec main() -> ok.
main() ->
    {ok, _} = application:ensure_all_started(erlang_python),
    Ctx = py:context(1),
    ok = py:exec(Ctx, python()),
    Rows = [{"py:state_incr, 8 Erlang processes", "ops/s", median(fun() -> incr_erlang(8, 20000) end)},
            {"erlang.state_incr, 8 Python threads (one context)", "ops/s",
             median(fun() -> rate(py:call(Ctx, '__main__', incr_threads, [8, 2500])) end)},
            {"erlang.state_incr, 1 Python thread", "ops/s",
             median(fun() -> rate(py:call(Ctx, '__main__', incr_threads, [1, 10000])) end)},
            {"SharedDict set, 1 Python thread", "ops/s",
             median(fun() -> sd_rate(Ctx, sd_set) end)},
            {"SharedDict get, 1 Python thread", "ops/s",
             median(fun() -> sd_rate(Ctx, sd_get) end)},
            {"py:stream_start, 100,000 ints Python -> Erlang", "values/s",
             median(fun() -> stream_start(Ctx) end)},
            {"py:stream (batch list), 100,000 ints", "values/s",
             median(fun() -> stream_batch() end)},
            {"py_channel, 100,000 ints Erlang -> Python", "values/s",
             median(fun() -> channel(Ctx) end)}],
    io:format("| figure | unit | median of ~p |~n| --- | --- | --- |~n", [?ROUNDS]),
    [io:format("| ~s | ~s | ~s |~n", [L, U, fmt(V)]) || {L, U, V} <- Rows],
    ok.

python() ->
    <<"
import threading, time
def incr_threads(threads, n):
    def work():
        for _ in range(n):
            erlang.state_incr('bench_py')
    ts = [threading.Thread(target=work) for _ in range(threads)]
    t0 = time.perf_counter()
    for t in ts: t.start()
    for t in ts: t.join()
    return threads * n / (time.perf_counter() - t0)

def sd_set(h, n):
    sd = erlang.SharedDict(h)
    t0 = time.perf_counter()
    for i in range(n):
        sd['k'] = i
    return n / (time.perf_counter() - t0)

def sd_get(h, n):
    sd = erlang.SharedDict(h)
    sd['k'] = 1
    t0 = time.perf_counter()
    for i in range(n):
        sd['k']
    return n / (time.perf_counter() - t0)

def consume(h):
    n = 0
    for _ in erlang.Channel(h):
        n += 1
    return n
">>.

incr_erlang(Procs, N) ->
    Self = self(),
    T0 = erlang:monotonic_time(),
    Pids = [spawn_link(fun() -> [py:state_incr(bench_erl) || _ <- lists:seq(1, N)],
                                Self ! {done, self()} end) || _ <- lists:seq(1, Procs)],
    [receive {done, P} -> ok end || P <- Pids],
    Procs * N / seconds(T0).

sd_rate(Ctx, Fun) ->
    {ok, SD} = py:shared_dict_new(),
    {ok, Rate} = py:call(Ctx, '__main__', Fun, [SD, 10000]),
    ok = py:shared_dict_destroy(SD),
    Rate.

stream_start(Ctx) ->
    T0 = erlang:monotonic_time(),
    {ok, Ref} = py:stream_start(builtins, range, [?N], #{context => Ctx}),
    ?N = count(Ref, 0),
    ?N / seconds(T0).

count(Ref, N) ->
    receive
        {py_stream, Ref, {data, _}} -> count(Ref, N + 1);
        {py_stream, Ref, done} -> N
    end.

stream_batch() ->
    T0 = erlang:monotonic_time(),
    {ok, L} = py:stream(builtins, range, [?N]),
    ?N = length(L),
    ?N / seconds(T0).

channel(Ctx) ->
    {ok, Ch} = py_channel:new(),
    T0 = erlang:monotonic_time(),
    Ref = make_ref(),
    Self = self(),
    spawn_link(fun() -> Self ! {Ref, py:call(Ctx, '__main__', consume, [Ch])} end),
    [ok = py_channel:send(Ch, I) || I <- lists:seq(1, ?N)],
    ok = py_channel:close(Ch),
    receive {Ref, {ok, ?N}} -> ok end,
    ?N / seconds(T0).

rate({ok, R}) -> R.

seconds(T0) ->
    erlang:convert_time_unit(erlang:monotonic_time() - T0, native, microsecond) / 1.0e6.

median(F) ->
    Rs = lists:sort([F() || _ <- lists:seq(1, ?ROUNDS)]),
    lists:nth((?ROUNDS + 1) div 2, Rs).

fmt(V) when V >= 1000 -> integer_to_list(round(V / 1000)) ++ "k";
fmt(V) -> integer_to_list(round(V)).
