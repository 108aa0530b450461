%% The linked-in driver backend on its own terms (the rest of the suites run
%% against it with `make test-ct-driver'): selecting it per pool, how pools
%% map onto the VM's one CPython, replies that go straight to the caller, and
%% what a Python crash does (the node goes down, as with a NIF).
-module(py_driver_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0, init_per_suite/1, end_per_suite/1]).
-export([driver_pool_runs_in_the_vm/1, port_and_driver_pools_side_by_side/1,
         pools_share_one_interpreter/1, callbacks_and_channels/1,
         owngil_and_caps_need_a_process/1, timeout_leaves_no_stray_reply/1,
         many_callers/1, stop_pool_while_busy/1, python_crash_takes_the_node_down/1,
         replies_bypass_the_owner/1, python_path_joins_the_shared_sys_path/1,
         sends_come_before_the_reply/1, short_replies_come_with_the_request/1,
         callbacks_stop_the_poll/1]).

-define(APP, erlang_python).

all() ->
    [driver_pool_runs_in_the_vm, port_and_driver_pools_side_by_side,
     pools_share_one_interpreter, callbacks_and_channels, owngil_and_caps_need_a_process,
     timeout_leaves_no_stray_reply, many_callers, stop_pool_while_busy,
     replies_bypass_the_owner, python_path_joins_the_shared_sys_path,
     sends_come_before_the_reply, short_replies_come_with_the_request,
     callbacks_stop_the_poll,
     python_crash_takes_the_node_down].

init_per_suite(Config) ->
    {ok, _} = application:ensure_all_started(?APP),
    Config.

end_per_suite(Config) ->
    Config.

start(Pool, Size, Opts) ->
    _ = py_context_router:stop_pool(Pool),
    {ok, Ctxs} = py_context_router:start_pool(Pool, Size, Opts),
    Ctxs.

owner(Ctx) ->
    [{_, _Port, Owner, _, _}] = ets:lookup(py_contexts, Ctx),
    Owner.

%% Python runs in this VM's OS process, on a driver port.
driver_pool_runs_in_the_vm(_Config) ->
    [Ctx] = start(drv_vm, 1, #{backend => driver}),
    VmPid = list_to_integer(os:getpid()),
    {ok, VmPid} = py:call(Ctx, os, getpid, []),
    #{backend := driver, os_pid := undefined} = py_port:info(owner(Ctx)),
    {ok, Port, _, _} = py_context:lookup(Ctx),
    true = py_driver:is_driver(Port),
    {ok, 4.0} = py:call(Ctx, math, sqrt, [16]),
    {error, {'ZeroDivisionError', _}} = py:eval(Ctx, <<"1/0">>),
    ok = py_context_router:stop_pool(drv_vm).

%% One pool per backend, the same calls on both.
port_and_driver_pools_side_by_side(_Config) ->
    [P] = start(side_port, 1, #{backend => port}),
    [D] = start(side_drv, 1, #{backend => driver}),
    #{backend := port} = py_port:info(owner(P)),
    #{backend := driver} = py_port:info(owner(D)),
    Big = binary:copy(<<"x">>, 1 bsl 20),
    [{ok, Big} = py:call(C, operator, concat, [Big, <<>>]) || C <- [P, D]],
    {ok, PortPid} = py:call(P, os, getpid, []),
    ?assertNotEqual(list_to_integer(os:getpid()), PortPid),
    ok = py_context_router:stop_pool(side_port),
    ok = py_context_router:stop_pool(side_drv).

%% Two driver pools (and the contexts of one) are contexts of the same
%% interpreter: namespaces are their own, modules are shared.
pools_share_one_interpreter(_Config) ->
    [A1, A2] = start(share_a, 2, #{backend => driver, mode => worker}),
    [B] = start(share_b, 1, #{backend => driver}),
    ok = py:exec(A1, <<"x = 1">>),
    {error, {'NameError', _}} = py:eval(A2, <<"x">>),
    ok = py:exec(A1, <<"import sys; sys.ep_driver_mark = 42">>),
    {ok, 42} = py:eval(B, <<"__import__('sys').ep_driver_mark">>),
    ok = py_context_router:stop_pool(share_a),
    ok = py_context_router:stop_pool(share_b).

callbacks_and_channels(_Config) ->
    [Ctx] = start(drv_cb, 1, #{backend => driver}),
    py:register_function(drv_double, fun([X]) -> 2 * X end),
    {ok, 42} = py:eval(Ctx, <<"__import__('erlang').call('drv_double', 21)">>),
    %% a callback that calls back into the same context
    py:register_function(drv_reenter, fun([X]) -> {ok, V} = py:call(Ctx, builtins, abs, [X]), V end),
    {ok, 5} = py:eval(Ctx, <<"__import__('erlang').call('drv_reenter', -5)">>),
    {ok, Ch} = py_channel:new(),
    [ok = py_channel:send(Ch, N) || N <- lists:seq(1, 100)],
    ok = py:exec(Ctx, <<"from erlang import Channel\n"
                        "def take(ch, n):\n"
                        "    c = Channel(ch)\n"
                        "    return sum(c.receive() for _ in range(n))\n">>),
    {ok, 5050} = py:eval(Ctx, <<"take(ch, 100)">>, #{ch => Ch}),
    py_channel:close(Ch),
    ok = py_context_router:stop_pool(drv_cb).

%% A GIL of its own, a memory cap and environment variables need an OS
%% process: asked of the driver explicitly, an error.
owngil_and_caps_need_a_process(_Config) ->
    {error, {badarg, {backend, driver, owngil}}} =
        py_context_router:start_pool(cap1, 1, #{backend => driver, mode => owngil}),
    {error, {badarg, {backend, driver, max_memory}}} =
        py_context_router:start_pool(cap2, 1, #{backend => driver, max_memory => 1 bsl 30}),
    {error, {badarg, {backend, bogus}}} =
        py_context_router:start_pool(cap3, 1, #{backend => bogus}),
    {ok, port} = py_driver:backend(owngil, #{}),
    {ok, port} = py_driver:backend(process, #{env => #{"A" => "1"}}),
    false = py_context_router:pool_started(cap1).

%% The driver replies to the caller's pid, not its alias: after a timeout
%% the cancellation is synchronous and what came before it is flushed.
timeout_leaves_no_stray_reply(_Config) ->
    [Ctx] = start(drv_to, 1, #{backend => driver}),
    [{error, timeout} = py:call(Ctx, time, sleep, [T], #{timeout => 1}) || T <- [0.01, 0.02, 0.05]],
    {ok, _} = py:call(Ctx, time, sleep, [0.1]),
    {messages, []} = process_info(self(), messages),
    %% and no monitor of the owner is left per call
    {monitors, Before} = process_info(self(), monitors),
    [{ok, 1} = py:call(Ctx, builtins, abs, [-1]) || _ <- lists:seq(1, 100)],
    {monitors, Before} = process_info(self(), monitors),
    ok = py_context_router:stop_pool(drv_to).

many_callers(_Config) ->
    Ctxs = start(drv_many, 2, #{backend => driver}),
    Self = self(),
    Pids = [spawn_link(fun() ->
                               Ctx = lists:nth(1 + I rem 2, Ctxs),
                               [{ok, N} = py:call(Ctx, builtins, abs, [-N]) || N <- lists:seq(1, 500)],
                               Self ! {done, self()}
                       end) || I <- lists:seq(1, 8)],
    [receive {done, P} -> ok after 30000 -> ct:fail(timeout) end || P <- Pids],
    ok = py_context_router:stop_pool(drv_many).

%% Closing a driver port while its context runs Python: the caller learns at
%% once, the port's contexts stop off the schedulers, the VM goes on.
stop_pool_while_busy(_Config) ->
    [Ctx] = start(drv_busy, 1, #{backend => driver}),
    Self = self(),
    spawn(fun() -> Self ! {result, py:call(Ctx, time, sleep, [1])} end),
    timer:sleep(100),
    ok = py_context_router:stop_pool(drv_busy),
    receive {result, R} -> {error, _} = R after 5000 -> ct:fail(no_result) end,
    [C] = start(drv_busy, 1, #{backend => driver}),
    {ok, 3} = py:call(C, builtins, abs, [-3]),
    ok = py_context_router:stop_pool(drv_busy).

%% A reply goes from the driver to the caller, not through the port's owner:
%% calls complete while the owner is suspended (a port program's would wait).
replies_bypass_the_owner(_Config) ->
    [Ctx] = start(drv_direct, 1, #{backend => driver}),
    Owner = owner(Ctx),
    true = erlang:suspend_process(Owner),
    try
        {ok, 4.0} = py:call(Ctx, math, sqrt, [16]),
        {error, {'ValueError', _}} = py:call(Ctx, math, sqrt, [-1]),
        {ok, 3} = py:eval(Ctx, <<"1 + 2">>)
    after
        true = erlang:resume_process(Owner)
    end,
    ok = py_context_router:stop_pool(drv_direct).

%% What Python sent through the owner during a call (erlang.send here, a
%% channel close in py_channel_SUITE) reaches Erlang before the call's
%% reply, as through a port program's one pipe: the reply then follows the
%% same way.
sends_come_before_the_reply(_Config) ->
    [Ctx] = start(drv_order, 1, #{backend => driver}),
    Self = self(),
    [begin
         {ok, true} = py:eval(Ctx, <<"__import__('erlang').send(p, ('m', n)) or True">>,
                              #{p => Self, n => N}),
         receive {<<"m">>, N} -> ok after 0 -> ct:fail({send_after_reply, N}) end
     end || N <- lists:seq(1, 50)],
    %% and the next call's reply goes straight to the caller again
    Owner = owner(Ctx),
    true = erlang:suspend_process(Owner),
    try {ok, 2} = py:eval(Ctx, <<"1 + 1">>)
    after true = erlang:resume_process(Owner)
    end,
    ok = py_context_router:stop_pool(drv_order).

%% The caller's scheduler polls a moment for a short call's reply and sends
%% it itself (driver/call_spin.hpp): the reply is in the caller's mailbox by
%% the time the request is written. A call longer than the poll gets its
%% reply the usual way, and the polls that follow are right too.
short_replies_come_with_the_request(_Config) ->
    [Ctx] = start(drv_poll, 1, #{backend => driver}),
    Short = fun(N) ->
                    Ref = py:spawn_call(Ctx, builtins, abs, [-N]),
                    {message_queue_len, Len} = process_info(self(), message_queue_len),
                    {ok, N} = py:await(Ref, 5000),
                    min(Len, 1)
            end,
    Polled = lists:sum([Short(N) || N <- lists:seq(1, 300)]),
    ct:pal("~p of 300 replies came with their request", [Polled]),
    ?assert(Polled > 0),
    [{ok, _} = py:call(Ctx, time, sleep, [0.005]) || _ <- lists:seq(1, 5)],
    [{ok, N} = py:call(Ctx, builtins, abs, [-N]) || N <- lists:seq(1, 100)],
    {error, timeout} = py:call(Ctx, time, sleep, [0.05], #{timeout => 1}),
    {ok, 7} = py:call(Ctx, builtins, abs, [-7]),
    {messages, []} = process_info(self(), messages),
    ok = py_context_router:stop_pool(drv_poll).

%% A call that calls back into Erlang cannot be answered while its
%% caller's scheduler polls (the callback request leaves through the port
%% that scheduler holds): the poll stops as soon as the callback request is
%% queued, so it does not run out, and the next call polls again (after a
%% poll that ran out, a port's next 16 calls would not).
callbacks_stop_the_poll(_Config) ->
    [Ctx] = start(drv_cb_poll, 1, #{backend => driver}),
    ok = py:register_function(drv_cb_poll_f, fun([X]) -> X + 1 end),
    Polled = lists:sum(
               [begin
                    {ok, 2} = py:eval(Ctx, <<"__import__('erlang').call('drv_cb_poll_f', 1)">>),
                    Ref = py:spawn_call(Ctx, builtins, abs, [-N]),
                    {message_queue_len, Len} = process_info(self(), message_queue_len),
                    {ok, N} = py:await(Ref, 5000),
                    min(Len, 1)
                end || N <- lists:seq(1, 40)]),
    ct:pal("~p of 40 calls after a callback polled their reply", [Polled]),
    %% (a poll that runs out after each callback leaves ~4 of 40)
    ?assert(Polled >= 20),
    ok = py:unregister_function(drv_cb_poll_f),
    ok = py_context_router:stop_pool(drv_cb_poll).

%% A driver pool's python_path goes on the one sys.path (the README says
%% so): what it holds is importable from every driver pool.
python_path_joins_the_shared_sys_path(Config) ->
    Dir = filename:join(?config(priv_dir, Config), "drv_path"),
    ok = filelib:ensure_dir(filename:join(Dir, "x")),
    ok = file:write_file(filename:join(Dir, "drv_mod.py"), <<"def f():\n    return 'drv_mod'\n">>),
    [A] = start(drv_path_a, 1, #{backend => driver, python_path => [Dir]}),
    [B] = start(drv_path_b, 1, #{backend => driver}),
    {ok, <<"drv_mod">>} = py:call(A, drv_mod, f, []),
    {ok, <<"drv_mod">>} = py:call(B, drv_mod, f, []),
    ok = py_context_router:stop_pool(drv_path_a),
    ok = py_context_router:stop_pool(drv_path_b).

%% A segfault in Python code is a segfault of the VM: the node goes down (as
%% with the reference NIF). Run on a peer node.
python_crash_takes_the_node_down(_Config) ->
    true = is_alive() orelse begin
                                 _ = os:cmd("epmd -daemon"),
                                 {ok, _} = net_kernel:start([list_to_atom(
                                                               "drv_ct_" ++ os:getpid()), shortnames]),
                                 true
                             end,
    Ebin = filename:dirname(code:which(py)),
    {ok, Peer, Node} = peer:start(#{name => peer:random_name(drv_crash),
                                    args => ["-pa", Ebin,
                                             "-erlang_python", "default_pool_size", "1",
                                             "-erlang_python", "io_pool_size", "1",
                                             "-erlang_python", "backend", "driver"]}),
    {ok, _} = erpc:call(Node, application, ensure_all_started, [?APP]),
    VmPid = list_to_integer(erpc:call(Node, os, getpid, [])),
    {ok, VmPid} = erpc:call(Node, py, call, [os, getpid, []]),
    true = erlang:monitor_node(Node, true),
    _ = catch erpc:call(Node, py, call, [ctypes, string_at, [0]], 10000),
    receive {nodedown, Node} -> ok after 10000 -> ct:fail(node_still_up) end,
    catch peer:stop(Peer),
    ok.
