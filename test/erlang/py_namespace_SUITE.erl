%% @doc Process-bound namespaces (the reference's process-bound-envs.md),
%% references (`#{return => ref}') and interrupts (interrupts.md), against
%% the real port programs.
-module(py_namespace_SUITE).

-include_lib("common_test/include/ct.hrl").

-export([all/0, suite/0, init_per_suite/1, end_per_suite/1]).
-export([processes_are_isolated/1, basic_usage_example/1, same_context_isolation/1,
         freed_when_process_exits/1, actor_example/1, reset_by_restart/1,
         main_calls_use_own_namespace/1, shared_namespace/1, local_env/1,
         local_env_freed_with_creator/1,
         ref_return_and_use/1, ref_other_process/1, ref_released_with_creator/1,
         ref_stale_after_restart/1, ref_release/1,
         timeout_interrupts/1, explicit_interrupt/1, interrupt_caught_in_python/1,
         interrupt_idle/1]).

-define(PROMPT_MS, 5000).

suite() -> [{timetrap, {seconds, 60}}].

all() ->
    [processes_are_isolated, basic_usage_example, same_context_isolation,
     freed_when_process_exits, actor_example, reset_by_restart,
     main_calls_use_own_namespace, shared_namespace, local_env,
     local_env_freed_with_creator,
     ref_return_and_use, ref_other_process, ref_released_with_creator,
     ref_stale_after_restart, ref_release,
     timeout_interrupts, explicit_interrupt, interrupt_caught_in_python, interrupt_idle].

init_per_suite(Config) ->
    {ok, _} = application:ensure_all_started(erlang_python),
    {ok, 2} = py:eval(<<"1 + 1">>),
    Config.

end_per_suite(Config) ->
    ok = application:stop(erlang_python),
    Config.

%%====================================================================
%% Namespaces
%%====================================================================

processes_are_isolated(_Config) ->
    A = in_process(fun() ->
                           Ctx = py:context(1),
                           ok = py:exec(Ctx, <<"state = 'hello'">>),
                           py:eval(Ctx, <<"state">>)
                   end),
    {ok, <<"hello">>} = A,
    {error, {'NameError', _}} = in_process(fun() -> py:eval(py:context(1), <<"state">>) end).

basic_usage_example(_Config) ->
    Ctx = py:context(1),
    ok = py:exec(Ctx, <<"counter = 0">>),
    ok = py:exec(Ctx, <<"counter += 1">>),
    {ok, 1} = py:eval(Ctx, <<"counter">>),
    {ok, 100} = in_process(fun() ->
                                   ok = py:exec(Ctx, <<"counter = 100">>),
                                   py:eval(Ctx, <<"counter">>)
                           end),
    {ok, 1} = py:eval(Ctx, <<"counter">>).

same_context_isolation(_Config) ->
    Ctx = py:context(1),
    {ok, <<"from process B">>} =
        in_process(fun() ->
                           ok = py:exec(Ctx, <<"x = 'from process B'">>),
                           py:eval(Ctx, <<"x">>)
                   end),
    {ok, <<"from process A">>} =
        in_process(fun() ->
                           ok = py:exec(Ctx, <<"x = 'from process A'">>),
                           py:eval(Ctx, <<"x">>)
                   end),
    {error, {'NameError', _}} = py:eval(Ctx, <<"x">>).

%% A process's namespace (and what only it holds) is freed when it exits,
%% normally or killed.
freed_when_process_exits(_Config) ->
    Test = self(),
    Ctx = py:context(1),
    Code = <<"
import erlang
class Tracked:
    def __init__(self, pid, tag):
        self.pid, self.tag = pid, tag
    def __del__(self):
        erlang.send(self.pid, (erlang.Atom('freed'), self.tag))
">>,
    ok = in_process(fun() ->
                            ok = py:exec(Ctx, Code),
                            {ok, none} = py:eval(Ctx, <<"globals().__setitem__('t', Tracked(pid, 'normal'))">>,
                                                 #{pid => Test}),
                            ok
                    end),
    receive {freed, <<"normal">>} -> ok after ?PROMPT_MS -> ct:fail(not_freed) end,
    Killed = spawn(fun() ->
                           ok = py:exec(Ctx, Code),
                           {ok, none} = py:eval(Ctx, <<"globals().__setitem__('t', Tracked(pid, 'killed'))">>,
                                                #{pid => Test}),
                           Test ! {defined, self()},
                           receive never -> ok end
                   end),
    receive {defined, Killed} -> ok after ?PROMPT_MS -> ct:fail(not_defined) end,
    exit(Killed, kill),
    receive {freed, <<"killed">>} -> ok after ?PROMPT_MS -> ct:fail(not_freed) end.

%% The reference's py_counter gen_server, as a plain process.
actor_example(_Config) ->
    Counter = start_counter(),
    1 = counter(Counter, increment),
    2 = counter(Counter, increment),
    1 = counter(Counter, decrement),
    1 = counter(Counter, get),
    Other = start_counter(),
    0 = counter(Other, get),
    Counter ! stop, Other ! stop.

%% "Reset via process termination": a new process starts with a fresh namespace.
reset_by_restart(_Config) ->
    Counter = start_counter(),
    1 = counter(Counter, increment),
    Counter ! stop,
    Again = start_counter(),
    0 = counter(Again, get),
    Again ! stop.

start_counter() ->
    Test = self(),
    Pid = spawn_link(fun() ->
                             Ctx = py:context(),
                             ok = py:exec(Ctx, <<"
class Counter:
    def __init__(self):
        self.value = 0
    def increment(self):
        self.value += 1
        return self.value
    def decrement(self):
        self.value -= 1
        return self.value
    def get(self):
        return self.value

counter = Counter()
">>),
                             Test ! {started, self()},
                             counter_loop(Ctx)
                     end),
    receive {started, Pid} -> Pid after ?PROMPT_MS -> ct:fail(counter_not_started) end.

counter_loop(Ctx) ->
    receive
        {From, Op} ->
            {ok, V} = py:eval(Ctx, <<"counter.", (atom_to_binary(Op))/binary, "()">>),
            From ! {self(), V},
            counter_loop(Ctx);
        stop ->
            ok
    end.

counter(Pid, Op) ->
    Pid ! {self(), Op},
    receive {Pid, V} -> V after ?PROMPT_MS -> ct:fail(no_reply) end.

%% py:call(Ctx, '__main__', F, A) resolves F in the caller's namespace (the
%% session example of context-affinity.md).
main_calls_use_own_namespace(_Config) ->
    Ctx = py:context(),
    ok = py:exec(Ctx, <<"
conversation_history = []
def add_message(role, content):
    conversation_history.append({'role': role, 'content': content})
def get_history():
    return conversation_history
">>),
    {ok, none} = py:call(Ctx, '__main__', add_message, [<<"user">>, <<"hi">>]),
    {ok, [#{<<"role">> := <<"user">>, <<"content">> := <<"hi">>}]} =
        py:call(Ctx, '__main__', get_history, []),
    {ok, [#{}]} = py:call('__main__', get_history, []),
    {error, {'NameError', _}} = in_process(fun() -> py:call(Ctx, '__main__', get_history, []) end).

%% The documented way to share: the context's shared namespace, seen by
%% every process's namespace unless it defines the name itself.
shared_namespace(_Config) ->
    Ctx = py:context(1),
    ok = py_context:exec(Ctx, <<"def shared_fn(x): return x * 3\nSHARED = 'yes'">>, shared),
    {ok, 6} = in_process(fun() -> py:call(Ctx, '__main__', shared_fn, [2]) end),
    {ok, <<"yes">>} = in_process(fun() -> py:eval(Ctx, <<"SHARED">>) end),
    {ok, <<"mine">>} = in_process(fun() ->
                                          ok = py:exec(Ctx, <<"SHARED = 'mine'">>),
                                          py:eval(Ctx, <<"SHARED">>)
                                  end),
    {ok, <<"yes">>} = py_context:eval(Ctx, <<"SHARED">>, #{}, 5000, shared),
    %% a name the shared namespace gets later is seen by a namespace made before
    {ok, 2} = py:eval(Ctx, <<"1 + 1">>),
    ok = py_context:exec(Ctx, <<"LATER = 'later'">>, shared),
    {ok, <<"later">>} = py:eval(Ctx, <<"LATER">>).

%% create_local_env/1: a namespace of its own, usable by any process.
local_env(_Config) ->
    {ok, Ctx} = py_context:new(#{mode => owngil}),
    {ok, Env} = py_context:create_local_env(Ctx),
    ok = py_context:exec(Ctx, <<"
class MyService:
    def __init__(self):
        self.counter = 0
    def increment(self):
        self.counter += 1
        return self.counter

service = MyService()
">>, Env),
    {ok, 1} = py_context:eval(Ctx, <<"service.increment()">>, #{}, 5000, Env),
    {ok, 2} = py_context:eval(Ctx, <<"service.increment()">>, #{}, 5000, Env),
    {ok, 3} = in_process(fun() -> py_context:eval(Ctx, <<"service.increment()">>, #{}, 5000, Env) end),
    {ok, 4} = py_context:call(Ctx, '__main__', 'service.increment', [], #{}, 5000, Env),
    {error, {'NameError', _}} = py_context:eval(Ctx, <<"service">>),
    {ok, EnvB} = py_context:create_local_env(Ctx),
    {error, {'NameError', _}} = py_context:eval(Ctx, <<"service">>, #{}, 5000, EnvB),
    ok = py_context:stop(Ctx).

local_env_freed_with_creator(_Config) ->
    Ctx = py:context(1),
    Test = self(),
    Creator = spawn(fun() ->
                            {ok, Env} = py_context:create_local_env(Ctx),
                            ok = py_context:exec(Ctx, <<"kept = 1">>, Env),
                            Test ! {env, Env},
                            receive stop -> ok end
                    end),
    Env = receive {env, E} -> E after ?PROMPT_MS -> ct:fail(no_env) end,
    {ok, 1} = py_context:eval(Ctx, <<"kept">>, #{}, 5000, Env),
    Creator ! stop,
    py_test_util:wait_until(fun() ->
                                    case py_context:eval(Ctx, <<"kept">>, #{}, 5000, Env) of
                                        {error, {'NameError', _}} -> true;
                                        {ok, 1} -> false
                                    end
                            end, ?PROMPT_MS).

%%====================================================================
%% References
%%====================================================================

ref_return_and_use(_Config) ->
    Ctx = py:context(1),
    {ok, Ref} = py:call(Ctx, collections, 'OrderedDict', [], #{return => ref}),
    true = py:is_ref(Ref),
    false = py:is_ref(make_ref()),
    {ok, none} = py:call_method(Ref, '__setitem__', [<<"a">>, 1]),
    {ok, none} = py_context:call_method(Ctx, Ref, '__setitem__', [<<"b">>, 2]),
    {ok, #{<<"a">> := 1, <<"b">> := 2}} = py:to_term(Ref),
    {ok, #{<<"a">> := 1}} = py_context:to_term(Ref),
    {ok, 2} = py:call_method(Ref, '__len__', []),
    {ok, KeysRef} = py_ref:call_method(Ref, keys, [], #{return => ref}),
    {ok, [<<"a">>, <<"b">>]} = py:call(builtins, list, [[<<"a">>, <<"b">>]]),
    {ok, 2} = py:call_method(KeysRef, '__len__', []),
    {ok, <<"OrderedDict">>} = in_process(fun() ->
                                                 {ok, Cls} = py_ref:call_method(Ref, '__getattribute__',
                                                                                [<<"__class__">>],
                                                                                #{return => ref}),
                                                 py:getattr(Cls, '__name__')
                                         end),
    %% an object with no Erlang mapping stays usable through its reference
    {ok, Obj} = py:call(Ctx, builtins, object, [], #{return => ref}),
    {error, {'TypeError', _}} = py:to_term(Obj),
    {ok, C} = py_ref:call_method(Obj, '__getattribute__', [<<"__class__">>], #{return => ref}),
    {ok, <<"object">>} = py:getattr(C, '__name__'),
    {error, {badarg, not_a_ref}} = py:to_term(not_a_ref).

ref_other_process(_Config) ->
    Ctx = py:context(1),
    {ok, Ref} = py:call(Ctx, builtins, list, [[1, 2, 3]], #{return => ref}),
    {ok, none} = in_process(fun() -> py:call_method(Ref, append, [4]) end),
    {ok, [1, 2, 3, 4]} = py:to_term(Ref).

%% A reference lives as long as the process that made it.
ref_released_with_creator(_Config) ->
    Ctx = py:context(1),
    Test = self(),
    Creator = spawn(fun() ->
                            {ok, Ref} = py:call(Ctx, builtins, list, [[1]], #{return => ref}),
                            Test ! {ref, Ref},
                            receive stop -> ok end
                    end),
    Ref = receive {ref, R} -> R after ?PROMPT_MS -> ct:fail(no_ref) end,
    {ok, [1]} = py:to_term(Ref),
    Creator ! stop,
    py_test_util:wait_until(fun() ->
                                    case py:to_term(Ref) of
                                        {error, {'ReferenceError', _}} -> true;
                                        {ok, [1]} -> false
                                    end
                            end, ?PROMPT_MS).

ref_stale_after_restart(_Config) ->
    {ok, Ctx} = py_context:new(#{mode => worker}),
    {ok, Ref} = py:call(Ctx, builtins, list, [[1]], #{return => ref}),
    {ok, _, Owner, _} = py_context:lookup(Ctx),
    #{os_pid := OsPid} = py_port:info(Owner),
    _ = os:cmd("kill -9 " ++ integer_to_list(OsPid)),
    py_test_util:wait_until(fun() ->
                                    case py_context:lookup(Ctx) of
                                        {ok, _, O, _} when O =/= Owner -> is_process_alive(O);
                                        _ -> false
                                    end
                            end, ?PROMPT_MS),
    {error, {stale_ref, Ctx}} = py:to_term(Ref),
    {ok, 4} = py_context:eval(Ctx, <<"2+2">>),
    ok = py_context:stop(Ctx).

ref_release(_Config) ->
    {ok, Ref} = py:call(py:context(1), builtins, dict, [], #{return => ref}),
    ok = py_ref:release(Ref),
    {error, {'ReferenceError', _}} = py:to_term(Ref),
    {error, {badarg, {return, sometimes}}} =
        py:call(py:context(1), builtins, dict, [], #{return => sometimes}).

%%====================================================================
%% Interrupts
%%====================================================================

timeout_interrupts(_Config) ->
    {ok, Ctx} = py_context:new(#{mode => owngil}),
    {error, timeout} = py_context:eval(Ctx, <<"while True: pass">>, #{}, 500),
    %% the context is free again at once
    {ok, 4} = py_context:eval(Ctx, <<"2+2">>, #{}, 5000),
    ok = py_context:stop(Ctx).

explicit_interrupt(_Config) ->
    Ctx = py:context(),
    Test = self(),
    Caller = spawn(fun() ->
                           Test ! {result, self(),
                                   py_context:eval(Ctx, <<"erlang.send(pid, 'started')\nwhile True: pass">>,
                                                   #{pid => Test}, infinity)}
                   end),
    receive <<"started">> -> ok after ?PROMPT_MS -> ct:fail(not_started) end,
    %% erlang.send waits for Erlang's ack: the loop starts just after it
    interrupt_when_running(fun() -> py:interrupt(Ctx) end),
    receive {result, Caller, R} -> {error, interrupted} = R after ?PROMPT_MS -> ct:fail(not_interrupted) end,
    {ok, 4} = py:eval(Ctx, <<"2+2">>).

interrupt_caught_in_python(_Config) ->
    Ctx = py:context(1),
    Test = self(),
    ok = py_context:exec(Ctx, <<"
def guarded(pid):
    try:
        erlang.send(pid, 'started')
        while True:
            pass
    except Exception:
        return 'swallowed'
    except KeyboardInterrupt:
        return 'cleaned up'
">>, shared),
    spawn(fun() -> Test ! {guarded, py:call(Ctx, '__main__', guarded, [Test])} end),
    receive <<"started">> -> ok after ?PROMPT_MS -> ct:fail(not_started) end,
    interrupt_when_running(fun() -> py_context:interrupt(Ctx) end),
    receive {guarded, R} -> {ok, <<"cleaned up">>} = R after ?PROMPT_MS -> ct:fail(no_result) end.

interrupt_idle(_Config) ->
    not_running = py:interrupt(py:context(2)),
    {error, {no_context, _}} = py:interrupt(spawn(fun() -> ok end)).

%%====================================================================
%% Helpers
%%====================================================================

%% Interrupts once the context runs the code (not_running while it still
%% waits for the ack of its erlang.send).
interrupt_when_running(Interrupt) ->
    py_test_util:wait_until(fun() ->
                                    case Interrupt() of
                                        ok -> true;
                                        not_running -> false
                                    end
                            end, ?PROMPT_MS).

in_process(Fun) ->
    Test = self(),
    Pid = spawn(fun() -> Test ! {in_process, self(), Fun()} end),
    receive {in_process, Pid, R} -> R after ?PROMPT_MS * 2 -> ct:fail(no_result) end.
