%% @doc Pools across nodes: `py_context_router:start_pool(Pool, Size,
%% #{nodes => Nodes})' with contexts on two peer nodes (OTP's `peer'), each
%% running erlang_python from this build's ebin.
%%
%% Covered: calls routed to contexts on both peers return to the caller here
%% (values, exceptions with their traceback, big payloads, eval/exec/cast,
%% spawn_call); registration routing to a node pool; a peer stopped or killed
%% while calls on it are blocked in Python (the callers get
%% `{error, {nodedown, Node}}' at once, the pool keeps serving from the other
%% peer, the peer's port programs do not outlive it); a peer that comes back
%% rejoins; stop_pool stops the port programs on every node; this node in the
%% list; timeouts and late replies on a remote context; bad options.
%%
%% Blocked calls wait in Python on a `threading.Event' after telling the test
%% (`erlang.send'); nothing waits on a sleep. The suite starts distribution
%% itself when the node is not alive (and epmd if needed), and skips if it
%% cannot.
-module(py_nodes_SUITE).

-include_lib("common_test/include/ct.hrl").

-export([all/0, suite/0, init_per_suite/1, end_per_suite/1,
         init_per_testcase/2, end_per_testcase/2]).
-export([calls_reach_both_nodes/1, registration_routes_to_node_pool/1,
         peer_stopped_mid_call/1, peer_killed_mid_call/1, node_comes_back/1,
         stop_pool_stops_remote_port_programs/1, local_node_listed/1,
         remote_timeout_drops_late_reply/1, remote_crash_restarts_in_pool/1,
         start_errors/1, channel_of_another_node/1]).

-define(APP, erlang_python).
-define(POOLS, [n_both, n_reg, n_kill, n_back, n_stop, n_local, n_timeout, n_crash, n_err,
                n_part, n_chan]).
%% How long an answer that should be prompt may take (the suite also runs
%% under ASan, about 3x slower); calls that must fail promptly have a timeout
%% far above it.
-define(PROMPT_MS, 5000).
-define(LONG_TIMEOUT, 60000).

suite() ->
    [{timetrap, {seconds, 120}}].

all() ->
    [calls_reach_both_nodes, registration_routes_to_node_pool, peer_stopped_mid_call,
     peer_killed_mid_call, node_comes_back, stop_pool_stops_remote_port_programs,
     local_node_listed, remote_timeout_drops_late_reply, remote_crash_restarts_in_pool,
     start_errors, channel_of_another_node].

init_per_suite(Config) ->
    case {code:ensure_loaded(peer), ensure_distribution()} of
        {{module, peer}, {ok, StartedDist}} ->
            _ = application:stop(?APP),
            Helpers = filename:join(?config(priv_dir, Config), "helpers"),
            ok = filelib:ensure_dir(filename:join(Helpers, "x")),
            ok = file:write_file(filename:join(Helpers, "nodes_probe.py"), probe_module()),
            OldPath = application:get_env(?APP, python_path),
            ok = application:set_env(?APP, python_path, [Helpers]),
            {ok, _} = application:ensure_all_started(?APP),
            [{helpers, Helpers}, {old_python_path, OldPath}, {started_dist, StartedDist} | Config];
        {{module, peer}, {error, Reason}} ->
            {skip, lists:flatten(io_lib:format("Erlang distribution cannot start (~p): "
                                               "pools across nodes need it", [Reason]))};
        {_, _} ->
            {skip, "OTP's peer module (OTP 25+) is missing"}
    end.

end_per_suite(Config) ->
    _ = application:stop(?APP),
    case ?config(old_python_path, Config) of
        {ok, Old} -> application:set_env(?APP, python_path, Old);
        _ -> application:unset_env(?APP, python_path)
    end,
    ?config(started_dist, Config) =:= true andalso net_kernel:stop(),
    Config.

%% Two fresh peers per test: some tests stop or kill one.
init_per_testcase(_Case, Config) ->
    {ok, _} = application:ensure_all_started(?APP),
    Peers = [start_peer(peer:random_name(Prefix)) || Prefix <- [nodes_a, nodes_b]],
    [{peers, Peers} | Config].

end_per_testcase(_Case, Config) ->
    [ok = py_context_router:stop_pool(P) || P <- ?POOLS],
    [ok = py_context_router:unregister_pool(T)
     || {T, _} <- py_context_router:list_pool_registrations()],
    [catch peer:stop(Peer) || {Peer, _} <- ?config(peers, Config)],
    [catch peer:stop(Peer) || Peer <- get_extra_peers()],
    ok.

%%====================================================================
%% Tests
%%====================================================================

%% Size contexts on each listed node; calls through the pool reach both peers
%% and every kind of request returns to the caller on this node.
calls_reach_both_nodes(Config) ->
    [{_, N1}, {_, N2}] = ?config(peers, Config),
    {ok, Ctxs} = start_pool(n_both, 2, #{nodes => [N1, N2]}, Config),
    4 = length(Ctxs),
    Ctxs = py_context_router:contexts(n_both),
    4 = py_context_router:num_contexts(n_both),
    [N1, N1, N2, N2] = [node(C) || C <- Ctxs],
    [{N1, up}, {N2, up}] = lists:sort(py_context_router:pool_nodes(n_both)),
    %% Each context learns which node it is on; concurrent callers through the
    %% pool get answers from both.
    [ok = py_context:exec(C, [<<"def where(): return '">>, atom_to_binary(node(C)), <<"'">>], shared)
     || C <- Ctxs],
    Self = self(),
    Callers = [spawn_link(fun() ->
                                  Self ! {where, self(), py:call(n_both, '__main__', where, [])}
                          end) || _ <- lists:seq(1, 40)],
    Answers = [receive {where, C, {ok, W}} -> binary_to_atom(W) after ?PROMPT_MS -> ct:fail(no_answer) end
               || C <- Callers],
    [N1, N2] = lists:usort(Answers),
    %% Values, exceptions with their traceback, big payloads, eval/exec.
    Remote = hd(Ctxs),
    {ok, 3} = py:call(Remote, operator, add, [1, 2]),
    {error, {'ZeroDivisionError', _}} = py:call(Remote, operator, truediv, [1, 0]),
    <<_, _/binary>> = py:last_traceback(),
    Big = binary:copy(<<"xyz">>, 400000),
    {ok, 1200000} = py:call(Remote, builtins, len, [Big]),
    BigOut = <<Big/binary, "!">>,
    {ok, BigOut} = py:call(Remote, operator, add, [Big, <<"!">>]),
    {ok, 42} = py:eval(Remote, <<"x * y">>, #{x => 6, y => 7}),
    ok = py:exec(Remote, <<"def f(x): return [x, x]">>),
    {ok, [<<1, 2>>, <<1, 2>>]} = py:call(Remote, '__main__', f, [{bytes, <<1, 2>>}]),
    {ok, Self} = py:eval(Remote, <<"p">>, #{p => Self}),
    %% Every pool call ran on a peer's port program (one per node: the pool
    %% is in worker mode, the default for pools other than `default').
    PeerPids = os_pids(n_both),
    2 = length(PeerPids),
    [true = lists:member(P, PeerPids)
     || _ <- lists:seq(1, 8), {ok, P} <- [py:call(n_both, nodes_probe, pid, [])]],
    ok.

%% Channels are served on their own node: a handle passed to a context on a
%% peer gives ChannelClosed there at once (no hang), and the peer's port
%% program lives on.
channel_of_another_node(Config) ->
    [{_, N1}, _] = ?config(peers, Config),
    {ok, [Remote]} = start_pool(n_chan, 1, #{nodes => [N1]}, Config),
    ok = py:exec(Remote, <<"
from erlang.channel import Channel, ChannelClosed
def first(h):
    try:
        return Channel(h).receive()
    except ChannelClosed:
        return 'closed'
">>),
    {ok, Ch} = py_channel:new(),
    ok = py_channel:send(Ch, hello),
    {ok, <<"closed">>} = py:call(Remote, '__main__', first, [Ch], #{timeout => ?PROMPT_MS}),
    {ok, 3} = py:call(Remote, operator, add, [1, 2]),
    [Remote] = py_context_router:contexts(n_chan),
    ok = py_channel:close(Ch).

%% py:register_pool routes a module to a node pool: call, cast, spawn_call.
registration_routes_to_node_pool(Config) ->
    [{_, N1}, {_, N2}] = ?config(peers, Config),
    {ok, _} = start_pool(n_reg, 1, #{nodes => [N1, N2]}, Config),
    PeerPids = os_pids(n_reg),
    2 = length(PeerPids),
    ok = py:register_pool(n_reg, nodes_probe),
    n_reg = py_context_router:lookup_pool(nodes_probe, pid),
    Seen = [begin {ok, P} = py:call(nodes_probe, pid, []), P end || _ <- lists:seq(1, 10)],
    PeerPids = lists:usort(Seen),
    ok = py:cast(nodes_probe, report_pid, [self()]),
    receive {pool_pid, P1} -> true = lists:member(P1, PeerPids)
    after ?PROMPT_MS -> ct:fail(cast_not_run)
    end,
    {ok, P2} = py:await(py:spawn_call(nodes_probe, pid, [])),
    true = lists:member(P2, PeerPids),
    %% A function registration to the node pool wins over the module's to default.
    ok = py:unregister_pool(nodes_probe),
    {ok, Local} = py:call(nodes_probe, pid, []),
    false = lists:member(Local, PeerPids),
    ok = py:register_pool(n_reg, {nodes_probe, pid}),
    {ok, P3} = py:call(nodes_probe, pid, []),
    true = lists:member(P3, PeerPids),
    ok.

%% peer:stop/1 (the peer halts) while calls wait on it.
peer_stopped_mid_call(Config) ->
    [{Peer1, _}, _] = ?config(peers, Config),
    node_lost_mid_call(Config, fun() -> peer:stop(Peer1) end).

%% The peer's VM is killed with SIGKILL while calls wait on it.
peer_killed_mid_call(Config) ->
    [{_, N1}, _] = ?config(peers, Config),
    OsPid = erpc:call(N1, os, getpid, []),
    node_lost_mid_call(Config, fun() -> os:cmd("kill -9 " ++ OsPid) end).

%% Calls blocked in Python on peer 1 (two running, one queued behind them)
%% get {error, {nodedown, N1}} at once, far before their timeout; the pool
%% then serves from peer 2 only, and peer 1's port program is gone.
node_lost_mid_call(Config, Lose) ->
    [{_, N1}, {_, N2}] = ?config(peers, Config),
    {ok, _} = start_pool(n_kill, 2, #{nodes => [N1, N2], mode => worker}, Config),
    [C1a, C1b, C2a, C2b] = py_context_router:contexts(n_kill),
    [N1, N1, N2, N2] = [node(C) || C <- [C1a, C1b, C2a, C2b]],
    [PortPid1] = os_pids([C1a]),
    Self = self(),
    Call = fun(Ctx, Args) ->
                   spawn_link(fun() ->
                                      Self ! {result, self(),
                                              py:call(Ctx, nodes_probe, wait_event, Args,
                                                      #{timeout => ?LONG_TIMEOUT})}
                              end)
           end,
    Blocked = [Call(C, [<<"never">>, Self, none]) || C <- [C1a, C1b]],
    [receive {waiting, <<"never">>, PortPid1} -> ok after ?PROMPT_MS -> ct:fail(not_blocked) end
     || _ <- Blocked],
    Queued = Call(C1a, [<<"never">>, none, none]),
    T0 = erlang:monotonic_time(millisecond),
    Lose(),
    [receive {result, Caller, Result} -> {error, {nodedown, N1}} = Result
     after ?PROMPT_MS -> ct:fail({no_prompt_error, Caller})
     end || Caller <- [Queued | Blocked]],
    Elapsed = erlang:monotonic_time(millisecond) - T0,
    ct:log("callers on the lost node failed after ~p ms", [Elapsed]),
    true = Elapsed < ?PROMPT_MS,
    %% The pool keeps serving with the other node's contexts.
    py_test_util:wait_until(fun() -> py_context_router:num_contexts(n_kill) =:= 2 end, ?PROMPT_MS),
    [C2a, C2b] = py_context_router:contexts(n_kill),
    [{N1, {down, _}}, {N2, up}] = lists:sort(py_context_router:pool_nodes(n_kill)),
    Peer2Pids = os_pids(n_kill),
    [true = lists:member(P, Peer2Pids)
     || _ <- lists:seq(1, 20), {ok, P} <- [py:call(n_kill, nodes_probe, pid, [])]],
    [true = is_pid(py_context_router:get_context(n_kill)) || _ <- lists:seq(1, 10)],
    [] = [C || {C, _, _, _, _} <- ets:tab2list(py_contexts), node(C) =:= N1],
    %% No orphan: the lost node's port program exits with it.
    py_test_util:wait_until(fun() -> not os_alive(PortPid1) end, ?PROMPT_MS),
    ok.

%% A node that comes back (here: a new peer of the same name running
%% erlang_python) gets new contexts in the pool.
node_comes_back(Config) ->
    [{_, N1}, {Peer2, N2}] = ?config(peers, Config),
    {ok, _} = start_pool(n_back, 1, #{nodes => [N1, N2], node_retry => 200}, Config),
    [_, Old2] = py_context_router:contexts(n_back),
    peer:stop(Peer2),
    py_test_util:wait_until(fun() -> py_context_router:num_contexts(n_back) =:= 1 end, ?PROMPT_MS),
    [N1] = [node(C) || C <- py_context_router:contexts(n_back)],
    %% The pool forgot the old context: a call to it is an error at once.
    {error, {no_context, Old2}} = py:call(Old2, operator, add, [1, 2]),
    [Name, _Host] = string:split(atom_to_list(N2), "@"),
    {Peer2b, N2} = start_peer(list_to_atom(Name)),
    put_extra_peer(Peer2b),
    py_test_util:wait_until(fun() -> py_context_router:num_contexts(n_back) =:= 2 end, ?PROMPT_MS * 2),
    [_, New2] = py_context_router:contexts(n_back),
    N2 = node(New2),
    true = New2 =/= Old2,
    {ok, 3} = py:call(New2, operator, add, [1, 2]),
    [{N1, up}, {N2, up}] = lists:sort(py_context_router:pool_nodes(n_back)),
    1 = length(members(N2)),
    ok.

%% stop_pool returns once the port programs on every node have exited, and
%% leaves nothing behind on the peers.
stop_pool_stops_remote_port_programs(Config) ->
    [{_, N1}, {_, N2}] = ?config(peers, Config),
    {ok, _} = start_pool(n_stop, 2, #{nodes => [N1, N2], mode => process}, Config),
    OsPids = os_pids(n_stop),
    4 = length(OsPids),
    [true = os_alive(P) || P <- OsPids],
    [1, 1] = [length(members(N)) || N <- [N1, N2]],
    %% The peers' own pools are untouched.
    PeerOwn = [erpc:call(N, py_context_router, contexts, [default]) || N <- [N1, N2]],
    ok = py_context_router:stop_pool(n_stop),
    [] = [P || P <- OsPids, os_alive(P)],
    [[], []] = [members(N) || N <- [N1, N2]],
    [[], []] = [[K || {{py_nodes, _, _, _} = K, _, _, _} <- erpc:call(N, ets, tab2list, [py_pools])]
                || N <- [N1, N2]],
    PeerOwn = [erpc:call(N, py_context_router, contexts, [default]) || N <- [N1, N2]],
    [] = [C || {C, _, _, _, _} <- ets:tab2list(py_contexts), node(C) =/= node()],
    false = py_context_router:pool_started(n_stop),
    {error, {pool_not_started, n_stop}} = py:call(n_stop, operator, add, [1, 2]),
    ok.

%% This node takes part only when listed; its contexts use the port directly.
local_node_listed(Config) ->
    [{_, N1}, _] = ?config(peers, Config),
    {ok, Ctxs} = start_pool(n_local, 1, #{nodes => [node(), N1]}, Config),
    [Local, Remote] = Ctxs,
    {Here, N1} = {node(Local), node(Remote)},
    Here = node(),
    {ok, Port, _, _} = py_context:lookup(Local),
    true = is_port(Port),
    {ok, Remote, _, _} = py_context:lookup(Remote),
    {ok, 3} = py:call(Local, operator, add, [1, 2]),
    {ok, 3} = py:call(Remote, operator, add, [1, 2]),
    OsPids = os_pids(n_local),
    2 = length(OsPids),
    Seen = lists:usort([P || _ <- lists:seq(1, 6), {ok, P} <- [py:call(n_local, nodes_probe, pid, [])]]),
    OsPids = Seen,
    ok = py_context_router:stop_pool(n_local),
    [] = [P || P <- OsPids, os_alive(P)],
    [] = [K || {{py_nodes, _, _, _} = K, _, _, _} <- ets:tab2list(py_pools)],
    ok.

%% A timeout on a remote context is `{error, timeout}'; its late reply never
%% reaches the caller, and the context serves on.
remote_timeout_drops_late_reply(Config) ->
    [{_, N1}, _] = ?config(peers, Config),
    {ok, [Ctx, Other]} = start_pool(n_timeout, 2, #{nodes => [N1], mode => worker}, Config),
    Self = self(),
    %% Python is up (a request still in the pipe at its timeout is dropped
    %% unstarted, and would not test the late reply).
    {ok, _} = py:call(Ctx, nodes_probe, pid, []),
    {error, timeout} = py:call(Ctx, nodes_probe, wait_event, [<<"late">>, Self, none],
                               #{timeout => 1000}),
    receive {waiting, <<"late">>, _} -> ok after ?PROMPT_MS -> ct:fail(not_blocked) end,
    {ok, true} = py:call(Other, nodes_probe, set_event, [<<"late">>]),
    {ok, 3} = py:call(Ctx, operator, add, [1, 2]),
    receive Stray -> ct:fail({stray_message, Stray}) after 200 -> ok end.

%% A port program dying on a peer: its caller gets `{error, {python_died, _}}'
%% at once, the peer restarts it, and the new contexts take the old ones'
%% places in the pool.
remote_crash_restarts_in_pool(Config) ->
    [{_, N1}, {_, N2}] = ?config(peers, Config),
    {ok, [Old1, Old2] = Old} = start_pool(n_crash, 1, #{nodes => [N1, N2]}, Config),
    {error, {python_died, _}} = py:call(Old1, os, '_exit', [3], #{timeout => ?LONG_TIMEOUT}),
    [New1, Old2] = py_test_util:wait_until(fun() ->
                                      case py_context_router:contexts(n_crash) of
                                          [C, _] = Cs when C =/= Old1 -> Cs;
                                          _ -> false
                                      end
                              end, ?PROMPT_MS),
    N1 = node(New1),
    {ok, 3} = py:call(New1, operator, add, [1, 2]),
    [true = is_pid(C) || C <- Old -- [Old1]],
    [{ok, _} = py:call(n_crash, nodes_probe, pid, []) || _ <- lists:seq(1, 6)],
    [{N1, up}, {N2, up}] = lists:sort(py_context_router:pool_nodes(n_crash)),
    ok.

start_errors(Config) ->
    [{_, N1}, _] = ?config(peers, Config),
    {error, {badarg, {nodes, []}}} = py_context_router:start_pool(n_err, 1, #{nodes => []}),
    {error, {badarg, {nodes, [N1, N1]}}} =
        py_context_router:start_pool(n_err, 1, #{nodes => [N1, N1]}),
    {error, {badarg, {nodes, x}}} = py_context_router:start_pool(n_err, 1, #{nodes => x}),
    {error, {badarg, {node_retry, 0}}} =
        py_context_router:start_pool(n_err, 1, #{nodes => [N1], node_retry => 0}),
    Nobody = list_to_atom("nodes_nobody@" ++ lists:last(string:split(atom_to_list(node()), "@"))),
    {error, {no_nodes, [{Nobody, _}]}} =
        py_context_router:start_pool(n_err, 1, #{nodes => [Nobody]}),
    false = py_context_router:pool_started(n_err),
    %% Some nodes are enough; the others are reported.
    {ok, [Ctx]} = start_pool(n_part, 1, #{nodes => [N1, Nobody], node_retry => infinity}, Config),
    N1 = node(Ctx),
    [{N1, up}, {Nobody, {down, _}}] = lists:sort(py_context_router:pool_nodes(n_part)),
    {error, {not_a_node_pool, default}} = py_context_router:pool_nodes(default),
    ok.

%%====================================================================
%% Helpers
%%====================================================================

ensure_distribution() ->
    case is_alive() of
        true -> {ok, false};
        false ->
            Name = list_to_atom("nodes_ct_" ++ integer_to_list(erlang:unique_integer([positive]))),
            case net_kernel:start([Name, shortnames]) of
                {ok, _} -> {ok, true};
                {error, _} ->
                    %% epmd is started by `erl -sname'; not by net_kernel:start/1.
                    _ = os:cmd("epmd -daemon"),
                    case net_kernel:start([Name, shortnames]) of
                        {ok, _} -> {ok, true};
                        {error, Reason} -> {error, Reason}
                    end
            end
    end.

%% A peer running erlang_python from this build, with small own pools.
start_peer(Name) ->
    Ebin = filename:dirname(code:which(py)),
    {ok, Peer, Node} = peer:start(#{name => Name,
                                    args => ["-pa", Ebin,
                                             "-erlang_python", "default_pool_size", "1",
                                             "-erlang_python", "io_pool_size", "1"]}),
    {ok, _} = erpc:call(Node, application, ensure_all_started, [?APP]),
    {Peer, Node}.

put_extra_peer(Peer) -> put(extra_peers, [Peer | get_extra_peers()]).
get_extra_peers() -> case get(extra_peers) of undefined -> []; L -> L end.

start_pool(Pool, Size, Opts, Config) ->
    py_context_router:start_pool(Pool, Size, Opts#{python_path => [?config(helpers, Config)]}).

%% The OS pids of the port programs behind a pool's (or a list of) contexts.
os_pids(Pool) when is_atom(Pool) ->
    os_pids(py_context_router:contexts(Pool));
os_pids(Ctxs) ->
    lists:usort([maps:get(os_pid, erpc:call(node(Owner), py_port, info, [Owner]))
                 || Ctx <- Ctxs, {ok, _, Owner, _} <- [py_context:lookup(Ctx)]]).

%% Node pool members running on `Node'.
members(Node) ->
    [Id || {{py_nodes, _, _, _} = Id, _, _, _} <- erpc:call(Node, supervisor, which_children,
                                                           [py_pools_sup])].

%% Alive and not a zombie.
os_alive(OsPid) ->
    case file:read_file("/proc/" ++ integer_to_list(OsPid) ++ "/stat") of
        {ok, Stat} ->
            [_, After] = string:split(Stat, ")", trailing),
            binary:first(string:trim(After, leading)) =/= $Z;
        {error, _} ->
            false
    end.

probe_module() ->
    [<<"\"\"\"Helpers of py_nodes_SUITE.\"\"\"
import os
import threading

import erlang


def pid():
    return os.getpid()


def report_pid(to):
    erlang.send(to, (erlang.Atom('pool_pid'), os.getpid()))
">>, py_test_util:events_py()].
