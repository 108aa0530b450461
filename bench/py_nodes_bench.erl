%% @doc Latency of a call to a context on another node (a node pool) next to a
%% local one and to the obvious alternative, erpc:call of py:call on the other
%% node. Starts distribution (and epmd) and one peer itself:
%%
%%   erlc -o _build/bench bench/py_nodes_bench.erl
%%   erl -noshell -pa ebin _build/bench -s py_nodes_bench main -s init stop
-module(py_nodes_bench).
-export([main/0]).

-spec main() -> ok.
main() ->
    case net_kernel:start([py_nodes_bench, shortnames]) of
        {ok, _} -> ok;
        {error, _} -> os:cmd("epmd -daemon"), {ok, _} = net_kernel:start([py_nodes_bench, shortnames])
    end,
    Ebin = filename:dirname(code:which(py)),
    {ok, Peer, Node} = peer:start(#{name => peer:random_name(py_nodes_bench),
                                    args => ["-pa", Ebin,
                                             "-erlang_python", "default_pool_size", "1",
                                             "-erlang_python", "io_pool_size", "1"]}),
    {ok, _} = erpc:call(Node, application, ensure_all_started, [erlang_python]),
    application:set_env(erlang_python, default_pool_size, 1),
    {ok, _} = application:ensure_all_started(erlang_python),
    {ok, [Local, Remote]} = py_context_router:start_pool(bench_nodes, 1, #{nodes => [node(), Node]}),
    [PeerDefault] = erpc:call(Node, py_context_router, contexts, [default]),
    Big = binary:copy(<<"x">>, 100000),
    Rows = [{"py:call, context on this node", fun() -> {ok, 2} = py:call(Local, operator, add, [1, 1]) end},
            {"py:call, context on the peer", fun() -> {ok, 2} = py:call(Remote, operator, add, [1, 1]) end},
            {"erpc:call(Peer, py, call, ...)",
             fun() -> {ok, 2} = erpc:call(Node, py, call, [PeerDefault, operator, add, [1, 1]]) end},
            {"erpc:call(Peer, erlang, self, []) (no Python)", fun() -> erpc:call(Node, erlang, self, []) end},
            {"py:call len(100 kB str), this node", fun() -> {ok, 100000} = py:call(Local, builtins, len, [Big]) end},
            {"py:call len(100 kB str), the peer", fun() -> {ok, 100000} = py:call(Remote, builtins, len, [Big]) end}],
    io:format("| call | median us | p90 us |~n| --- | --- | --- |~n"),
    [begin {Med, P90} = latency(F, 2000), io:format("| ~s | ~b | ~b |~n", [Name, Med, P90]) end
     || {Name, F} <- Rows],
    ok = py_context_router:stop_pool(bench_nodes),
    peer:stop(Peer).

latency(F, N) ->
    [F() || _ <- lists:seq(1, 200)],
    Ts = lists:sort([begin T0 = erlang:monotonic_time(nanosecond), F(),
                           erlang:monotonic_time(nanosecond) - T0 end || _ <- lists:seq(1, N)]),
    {lists:nth(N div 2, Ts) div 1000, lists:nth(N * 9 div 10, Ts) div 1000}.
