%% @doc Calling Python from Erlang.
%%
%% Every function returns `{ok, Value}' or `{error, Reason}'. A Python exception
%% is `{error, {ExceptionClass, Message}}' (for example
%% `{error, {'ZeroDivisionError', <<"division by zero">>}}'), and its traceback
%% is kept: see {@link last_traceback/0}. A timeout is `{error, timeout}'; a port
%% program that died while the call ran is `{error, {python_died, Status}}'.
%%
%% A context (a pid) is one Python namespace: state made by `exec' in it stays
%% there. Calls without a context go to a context of the `default' pool.
-module(py).

-include("py_protocol.hrl").

-export([call/3, call/4, call/5, eval/1, eval/2, eval/3, eval/4, exec/1, exec/2, exec/3,
         cast/3, cast/4, spawn_call/3, spawn_call/4, await/1, await/2,
         context/1, version/0, last_traceback/0,
         register_function/2, register_function/3, unregister_function/1,
         register_pool/2, unregister_pool/1]).
%% The reference's API beyond the calls (drop-in part 1): contexts and
%% affinity, scalability, references, interrupts. Implemented in py_compat.
-export([context/0, start_contexts/0, start_contexts/1, stop_contexts/0, contexts_started/0,
         execution_mode/0, subinterp_supported/0, parallel/1, interrupt/1, reload/1,
         call_method/3, getattr/2, to_term/1, is_ref/1, cast/5, spawn_call/5]).
%% for py_compat, py_ref and py_ns, not for users
-export([request/3, call_msg/4, code/1]).
%% dropin2: streams, shared state, SharedDict, logging and tracing, memory, venvs
-export([stream/3, stream/4, stream_eval/1, stream_eval/2,
         stream_start/3, stream_start/4, stream_cancel/1,
         state_fetch/1, state_store/2, state_remove/1, state_keys/0, state_clear/0,
         state_incr/1, state_incr/2, state_decr/1, state_decr/2,
         shared_dict_new/0, shared_dict_get/2, shared_dict_get/3, shared_dict_set/3,
         shared_dict_del/2, shared_dict_keys/1, shared_dict_destroy/1,
         configure_logging/0, configure_logging/1,
         enable_tracing/0, disable_tracing/0, get_traces/0, clear_traces/0,
         memory_stats/0, gc/0, gc/1, tracemalloc_start/0, tracemalloc_start/1,
         tracemalloc_stop/0,
         ensure_venv/2, ensure_venv/3, activate_venv/1, deactivate_venv/0, venv_info/0]).
%% Async calls on the event loop pool (py_event_loop_pool)
-export([async_call/3, async_call/4, async_await/1, async_await/2,
         async_gather/1, async_gather/2]).

-type context() :: pid().
-type pool() :: atom().
%% where code runs: a context, a pool, or (internal) the calling process's own
%% context of a pool, where its namespace lives
-type target() :: context() | pool() | {sticky, pool()}.
-type name() :: atom() | binary().
-type kwargs() :: #{atom() | binary() => term()} | [{atom(), term()}].
%% A map, or a keyword list (Elixir's `reverse: true').
-type call_opts() :: #{kwargs => kwargs(), timeout => timeout(), return => value | ref,
                       env => py_context:env()}.
-type result() :: {ok, term()} | {error, term()}.
-export_type([context/0, pool/0, result/0, name/0]).

-define(IS_TIMEOUT(T), (T =:= infinity orelse (is_integer(T) andalso T >= 0))).
-define(IS_KWARGS(K), (is_map(K) orelse is_list(K))).

%% @doc Calls `Module.Function(*Args)'.
-spec call(name(), name(), list()) -> result().
call(Module, Function, Args) ->
    call(Module, Function, Args, #{}).

%% @doc `call(Module, Function, Args, Kwargs)' passes keyword arguments;
%% `call(Ctx | Pool, Module, Function, Args)' picks the context or pool.
-spec call(name(), name(), list(), kwargs()) -> result();
          (context() | pool(), name(), name(), list()) -> result().
call(Module, Function, Args, Kwargs) when is_map(Kwargs); is_list(Args) ->
    request(target(Module, Function), call_msg(Module, Function, Args, Kwargs),
            py_config:call_timeout());
call(Target, Module, Function, Args) ->
    request(Target, call_msg(Module, Function, Args, #{}), py_config:call_timeout()).

%% @doc `call(Module, Function, Args, Kwargs, Timeout)',
%% `call(Ctx, Module, Function, Args, #{kwargs => ..., timeout => ...})' or
%% `call(Pool, Module, Function, Args, Kwargs)'.
-spec call(name(), name(), list(), kwargs(), timeout()) -> result();
          (context(), name(), name(), list(), call_opts()) -> result();
          (pool(), name(), name(), list(), kwargs()) -> result().
call(Module, Function, Args, Kwargs, Timeout) when is_list(Args), ?IS_KWARGS(Kwargs) ->
    request(target(Module, Function), call_msg(Module, Function, Args, Kwargs), Timeout);
call(Ctx, Module, Function, Args, Opts) when is_pid(Ctx), is_map(Opts) ->
    py_compat:call_opts(Ctx, Module, Function, Args, Opts);
call(Pool, Module, Function, Args, Kwargs) when is_atom(Pool), ?IS_KWARGS(Kwargs) ->
    request(Pool, call_msg(Module, Function, Args, Kwargs), py_config:call_timeout());
call(A, B, C, D, E) ->
    {error, {badarg, [A, B, C, D, E]}}.

%% @doc Evaluates Python code and returns the value of its last expression.
-spec eval(iodata()) -> result().
eval(Code) ->
    eval(Code, #{}).

%% @doc `eval(Code, Locals)' or `eval(Ctx, Code)'.
-spec eval(iodata(), map()) -> result();
          (context(), iodata()) -> result().
eval(Ctx, Code) when is_pid(Ctx) ->
    eval(Ctx, Code, #{}, py_config:call_timeout());
eval(Code, Locals) ->
    eval(Code, Locals, py_config:call_timeout()).

%% @doc `eval(Code, Locals, Timeout)' or `eval(Ctx, Code, Locals)'.
-spec eval(iodata(), map(), timeout()) -> result();
          (context(), iodata(), map()) -> result().
eval(Ctx, Code, Locals) when is_pid(Ctx) ->
    eval(Ctx, Code, Locals, py_config:call_timeout());
eval(Code, Locals, Timeout) ->
    eval(py_compat:sticky_target(), Code, Locals, Timeout).

%% @doc Evaluates in context `Ctx' with a timeout.
-spec eval(target(), iodata(), map(), timeout()) -> result().
eval(Target, Code, Locals, Timeout) ->
    case {code(Code), Locals} of
        {{ok, Bin}, #{}} ->
            request(Target, {ns, fun(Ctx) -> fun(Ref) -> [?PY_MSG_EVAL, Ref, Ctx, Bin, Locals] end end},
                    Timeout);
        {{ok, _}, _} -> {error, {badarg, Locals}};
        {Error, _} -> Error
    end.

%% @doc Executes Python statements; definitions stay in the context.
-spec exec(iodata()) -> ok | {error, term()}.
exec(Code) ->
    exec(py_compat:sticky_target(), Code).

%% @doc Executes in context `Ctx'.
-spec exec(target(), iodata()) -> ok | {error, term()}.
exec(Target, Code) ->
    exec(Target, Code, py_config:call_timeout()).

%% @doc Executes in context `Ctx' with a timeout.
-spec exec(target(), iodata(), timeout()) -> ok | {error, term()}.
exec(Target, Code, Timeout) ->
    case code(Code) of
        {ok, Bin} ->
            Build = fun(Ctx) -> fun(Ref) -> [?PY_MSG_EXEC, Ref, Ctx, Bin] end end,
            case request(Target, {ns, Build}, Timeout) of
                {ok, _} -> ok;
                Error -> Error
            end;
        Error ->
            Error
    end.

%% @doc Calls without waiting for, or receiving, a result.
-spec cast(name(), name(), list()) -> ok | {error, term()}.
cast(Module, Function, Args) ->
    cast(Module, Function, Args, #{}).

-spec cast(name(), name(), list(), kwargs()) -> ok | {error, term()};
          (context(), name(), name(), list()) -> ok | {error, term()}.
cast(Ctx, Module, Function, Args) when is_pid(Ctx) ->
    cast(Ctx, Module, Function, Args, #{});
cast(Module, Function, Args, Kwargs) ->
    case {context_of(target(Module, Function)), call_msg(Module, Function, Args, Kwargs)} of
        {Ctx, Build} when is_pid(Ctx), is_function(Build) -> py_request:cast(Ctx, Build);
        {Ctx, {ns, Build}} when is_pid(Ctx) -> py_request:cast(Ctx, own_ns(Ctx, Build));
        {{error, _} = Error, _} -> Error;
        {_, Error} -> Error
    end.

%% @doc Starts a call and returns a reference to {@link await/2} its result.
-spec spawn_call(name(), name(), list()) -> reference().
spawn_call(Module, Function, Args) ->
    spawn_call(Module, Function, Args, #{}).

-spec spawn_call(name(), name(), list(), kwargs()) -> reference();
                (context(), name(), name(), list()) -> reference().
spawn_call(Ctx, Module, Function, Args) when is_pid(Ctx) ->
    spawn_call(Ctx, Module, Function, Args, #{});
spawn_call(Module, Function, Args, Kwargs) ->
    case send(target(Module, Function), call_msg(Module, Function, Args, Kwargs)) of
        {ok, Ref} -> Ref;
        {error, Reason} -> py_request:failed(Reason)
    end.

%% @doc Waits for the result of {@link spawn_call/3}.
-spec await(reference()) -> result().
await(Ref) ->
    await(Ref, py_config:call_timeout()).

-spec await(reference(), timeout()) -> result().
await(Ref, Timeout) when is_reference(Ref), ?IS_TIMEOUT(Timeout) ->
    case get({'$py_task', Ref}) of
        undefined -> py_request:wait(Ref, Timeout);
        _ -> py_event_loop:await(Ref, Timeout)  % a task of async_call
    end;
await(Ref, Timeout) when is_reference(Ref) ->
    {error, {badarg, {timeout, Timeout}}};
await(Ref, _Timeout) ->
    {error, {badarg, Ref}}.

%% @doc Context `N' (1-based) of the default pool (a pid that stays valid
%% across restarts of its port program).
-spec context(pos_integer()) -> context() | {error, term()}.
context(N) ->
    py_pool:context(default, N).

%% @doc The embedded Python's version, e.g. `{ok, <<"3.11.2">>}'.
-spec version() -> result().
version() ->
    call(platform, python_version, []).

%% @doc Makes `Fun' callable from Python: `erlang.call(Name, *Args)' calls
%% `Fun(Args)'. Registration is node-wide and seen by every context at once.
-spec register_function(atom() | binary(), fun((list()) -> term())) -> ok | {error, term()}.
register_function(Name, Fun) ->
    py_callback:register_function(Name, Fun).

%% @doc `erlang.call(Name, *Args)' calls `Module:Function(Args)'.
-spec register_function(atom() | binary(), module(), atom()) -> ok | {error, term()}.
register_function(Name, Module, Function) ->
    py_callback:register_function(Name, {Module, Function}).

-spec unregister_function(atom() | binary()) -> ok | {error, term()}.
unregister_function(Name) ->
    py_callback:unregister_function(Name).

%% @doc Routes calls of `Module' (or of one `{Module, Function}') to `Pool'.
-spec register_pool(pool(), module() | {module(), atom()}) -> ok | {error, term()}.
register_pool(Pool, Target) ->
    py_context_router:register_pool(Pool, Target).

-spec unregister_pool(module() | {module(), atom()}) -> ok.
unregister_pool(Target) ->
    py_context_router:unregister_pool(Target).

%% @doc The formatted traceback of the last Python exception this process got.
%%% Async calls: coroutines (or plain functions) on the event loop pool.

%% @doc Starts `Module.Function(*Args)' on the caller's loop of
%% py_event_loop_pool; collect the result with async_await/1,2 (or await/1,2).
-spec async_call(name(), name(), list()) -> reference().
async_call(Module, Function, Args) ->
    py_event_loop_pool:create_marked_task(Module, Function, Args, #{}).

-spec async_call(name(), name(), list(), kwargs()) -> reference().
async_call(Module, Function, Args, Kwargs) ->
    py_event_loop_pool:create_marked_task(Module, Function, Args, Kwargs).

%% @doc The result of an async_call (default timeout: app env `call_timeout');
%% on timeout the task is cancelled.
-spec async_await(reference()) -> result().
async_await(Ref) ->
    py_event_loop:await(Ref, py_config:call_timeout()).

-spec async_await(reference(), timeout()) -> result().
async_await(Ref, Timeout) ->
    py_event_loop:await(Ref, Timeout).

%% @doc Runs every `{Module, Function, Args}' or `{Module, Function, Args,
%% Kwargs}' concurrently → `{ok, Results}' in the order given, or the first
%% error in that order (the other tasks are then cancelled).
-spec async_gather([{name(), name(), list()} | {name(), name(), list(), kwargs()}]) -> result().
async_gather(Calls) ->
    async_gather(Calls, py_config:call_timeout()).

-spec async_gather([{name(), name(), list()} | {name(), name(), list(), kwargs()}], timeout()) ->
          result().
async_gather(Calls, Timeout) when is_list(Calls), ?IS_TIMEOUT(Timeout) ->
    case lists:all(fun(C) -> is_tuple(C) andalso (tuple_size(C) =:= 3 orelse
                                                  tuple_size(C) =:= 4) end, Calls) of
        true ->
            Refs = py_event_loop_pool:create_tasks(Calls),  % one write per 256
            Deadline = case Timeout of
                           infinity -> infinity;
                           _ -> erlang:monotonic_time(millisecond) + Timeout
                       end,
            gather(Refs, Deadline, []);
        false ->
            {error, {badarg, Calls}}
    end;
async_gather(Calls, Timeout) when is_list(Calls) ->
    {error, {badarg, {timeout, Timeout}}};
async_gather(Calls, _Timeout) ->
    {error, {badarg, Calls}}.

gather([], _Deadline, Acc) ->
    {ok, lists:reverse(Acc)};
gather([Ref | Rest], Deadline, Acc) ->
    Left = case Deadline of
               infinity -> infinity;
               _ -> max(0, Deadline - erlang:monotonic_time(millisecond))
           end,
    case py_event_loop:await(Ref, Left) of
        {ok, Value} ->
            gather(Rest, Deadline, [Value | Acc]);
        Error ->
            [py_event_loop:await(R, 0) || R <- Rest],  % cancels what still runs
            Error
    end.

-spec last_traceback() -> binary() | undefined.
last_traceback() ->
    get('$py_last_traceback').

%%--------------------------------------------------------------------
%% dropin2: streams (py_stream), shared state (py_state), SharedDict
%% (py_shared_dict), logging and tracing (py_logging), memory (py_memory),
%% virtual environments (py_venv). Each delegates; see those modules.
%%--------------------------------------------------------------------

%% @doc Every value of the generator `Module.Function(*Args)', as a list.
-spec stream(name(), name(), list()) -> result().
stream(Module, Function, Args) -> py_stream:stream(Module, Function, Args).

-spec stream(name(), name(), list(), kwargs()) -> result().
stream(Module, Function, Args, Kwargs) -> py_stream:stream(Module, Function, Args, Kwargs).

%% @doc Every value of the iterable that `Code' evaluates to, as a list.
-spec stream_eval(iodata()) -> result().
stream_eval(Code) -> py_stream:stream_eval(Code).

-spec stream_eval(iodata(), map()) -> result().
stream_eval(Code, Locals) -> py_stream:stream_eval(Code, Locals).

%% @doc Streams `{py_stream, Ref, {data, V}}', then `done' or `{error, R}', to
%% the caller as the generator yields.
-spec stream_start(name(), name(), list()) -> {ok, reference()} | {error, term()}.
stream_start(Module, Function, Args) -> py_stream:stream_start(Module, Function, Args).

%% @doc Options: `owner', `kwargs', `pool', `context'.
-spec stream_start(name(), name(), list(), map()) -> {ok, reference()} | {error, term()}.
stream_start(Module, Function, Args, Opts) ->
    py_stream:stream_start(Module, Function, Args, Opts).

-spec stream_cancel(reference()) -> ok | {error, term()}.
stream_cancel(Ref) -> py_stream:stream_cancel(Ref).

-spec state_fetch(term()) -> {ok, term()} | {error, not_found}.
state_fetch(Key) -> py_state:fetch(Key).

-spec state_store(term(), term()) -> ok.
state_store(Key, Value) -> py_state:store(Key, Value).

-spec state_remove(term()) -> ok.
state_remove(Key) -> py_state:remove(Key).

-spec state_keys() -> [term()].
state_keys() -> py_state:keys().

-spec state_clear() -> ok.
state_clear() -> py_state:clear().

%% @doc Atomically adds 1; the new value.
-spec state_incr(term()) -> integer().
state_incr(Key) -> py_state:incr(Key, 1).

-spec state_incr(term(), integer()) -> integer().
state_incr(Key, By) -> py_state:incr(Key, By).

-spec state_decr(term()) -> integer().
state_decr(Key) -> py_state:incr(Key, -1).

-spec state_decr(term(), integer()) -> integer().
state_decr(Key, By) when is_integer(By) -> py_state:incr(Key, -By);
state_decr(Key, By) -> py_state:incr(Key, By).

-spec shared_dict_new() -> {ok, py_shared_dict:handle()}.
shared_dict_new() -> py_shared_dict:new().

-spec shared_dict_get(py_shared_dict:handle(), term()) -> term().
shared_dict_get(SD, Key) -> py_shared_dict:get(SD, Key).

-spec shared_dict_get(py_shared_dict:handle(), term(), term()) -> term().
shared_dict_get(SD, Key, Default) -> py_shared_dict:get(SD, Key, Default).

-spec shared_dict_set(py_shared_dict:handle(), term(), term()) -> ok.
shared_dict_set(SD, Key, Value) -> py_shared_dict:set(SD, Key, Value).

-spec shared_dict_del(py_shared_dict:handle(), term()) -> ok.
shared_dict_del(SD, Key) -> py_shared_dict:del(SD, Key).

-spec shared_dict_keys(py_shared_dict:handle()) -> [term()].
shared_dict_keys(SD) -> py_shared_dict:keys(SD).

-spec shared_dict_destroy(py_shared_dict:handle()) -> ok.
shared_dict_destroy(SD) -> py_shared_dict:destroy(SD).

-spec configure_logging() -> ok | {error, term()}.
configure_logging() -> py_logging:configure_logging().

-spec configure_logging(map()) -> ok | {error, term()}.
configure_logging(Opts) -> py_logging:configure_logging(Opts).

-spec enable_tracing() -> ok | {error, term()}.
enable_tracing() -> py_logging:enable_tracing().

-spec disable_tracing() -> ok | {error, term()}.
disable_tracing() -> py_logging:disable_tracing().

-spec get_traces() -> {ok, [map()]}.
get_traces() -> py_logging:get_traces().

-spec clear_traces() -> ok.
clear_traces() -> py_logging:clear_traces().

-spec memory_stats() -> result().
memory_stats() -> py_memory:memory_stats().

-spec gc() -> result().
gc() -> py_memory:gc().

-spec gc(0..2) -> result().
gc(Generation) -> py_memory:gc(Generation).

-spec tracemalloc_start() -> ok | {error, term()}.
tracemalloc_start() -> py_memory:tracemalloc_start().

-spec tracemalloc_start(pos_integer()) -> ok | {error, term()}.
tracemalloc_start(Frames) -> py_memory:tracemalloc_start(Frames).

-spec tracemalloc_stop() -> ok | {error, term()}.
tracemalloc_stop() -> py_memory:tracemalloc_stop().

-spec ensure_venv(file:filename_all(), file:filename_all()) -> ok | {error, term()}.
ensure_venv(Path, Deps) -> py_venv:ensure_venv(Path, Deps).

-spec ensure_venv(file:filename_all(), file:filename_all(), list()) -> ok | {error, term()}.
ensure_venv(Path, Deps, Opts) -> py_venv:ensure_venv(Path, Deps, Opts).

-spec activate_venv(file:filename_all()) -> ok | {error, term()}.
activate_venv(Path) -> py_venv:activate_venv(Path).

-spec deactivate_venv() -> ok | {error, term()}.
deactivate_venv() -> py_venv:deactivate_venv().

-spec venv_info() -> {ok, map()} | {error, term()}.
venv_info() -> py_venv:venv_info().

%% Internal

request(_Target, Build, Timeout) when (is_function(Build) orelse element(1, Build) =:= ns),
                                      not ?IS_TIMEOUT(Timeout) ->
    {error, {badarg, {timeout, Timeout}}};
request(Target, {ns, Build}, Timeout) ->
    %% the caller's own namespace: on the process's own context of a pool
    case context_of(sticky(Target)) of
        Ctx when is_pid(Ctx) ->
            py_schedule:continued(Ctx, py_request:call(Ctx, own_ns(Ctx, Build), Timeout), Timeout);
        Error -> Error
    end;
request({sticky, Pool}, Build, Timeout) ->
    request(py_affinity:sticky(Pool), Build, Timeout);
request(Pool, Build, Timeout) when is_atom(Pool), is_function(Build) ->
    %% py_schedule: a handler that returned a schedule marker continues on its
    %% context; a process bound to a context of the pool (py_affinity) uses it.
    Then = fun(Ctx, Reply) -> py_schedule:continued(Ctx, Reply, Timeout) end,
    case py_affinity:bound(Pool) of
        undefined -> py_pool:call(Pool, Build, Timeout, Then);
        Ctx -> Then(Ctx, py_request:call(Ctx, Build, Timeout))
    end;
request(Target, Build, Timeout) when is_function(Build) ->
    case context_of(Target) of
        Ctx when is_pid(Ctx) ->
            py_schedule:continued(Ctx, py_request:call(Ctx, Build, Timeout), Timeout);
        Error -> Error
    end;
request(_Target, Error, _Timeout) ->
    Error.

send(Target, {ns, Build}) ->
    case context_of(sticky(Target)) of
        Ctx when is_pid(Ctx) -> py_request:send(Ctx, own_ns(Ctx, Build));
        Error -> Error
    end;
send(Target, Build) when is_function(Build) ->
    case context_of(Target) of
        Ctx when is_pid(Ctx) -> py_request:send(Ctx, Build);
        Error -> Error
    end;
send(_Target, Error) ->
    Error.

sticky(Pool) when is_atom(Pool) -> {sticky, Pool};
sticky(Target) -> Target.

own_ns(Ctx, Build) ->
    py_ns:extend(Build, py_ns:own_trailer(Ctx)).

context_of(Ctx) when is_pid(Ctx) -> Ctx;
context_of({sticky, Pool}) -> py_affinity:sticky(Pool);
context_of({error, _} = Error) -> Error;
context_of(Pool) when is_atom(Pool) -> py_context_router:get_context(Pool);
context_of(Other) -> {error, {badarg, Other}}.

%% The pool serving Module.Function: registration routing.
target(Module, Function) when Module =:= '__main__'; Module =:= <<"__main__">> ->
    %% the caller's namespace: the same context every time
    {sticky, py_context_router:lookup_pool(Module, Function)};
target(Module, Function) when (is_atom(Module) orelse is_binary(Module)),
                              (is_atom(Function) orelse is_binary(Function)) ->
    py_context_router:lookup_pool(Module, Function);
target(_Module, _Function) ->
    default.

call_msg(Module, Function, Args, Kwargs0) ->
    %% length/1 fails in a guard on an improper list: Args must be a proper one.
    Kwargs = kwargs_map(Kwargs0),
    case {name(Module), name(Function)} of
        {{ok, <<"__main__">> = M}, {ok, F}} when is_list(Args), length(Args) >= 0, is_map(Kwargs) ->
            %% resolved in the caller's namespace (py_ns)
            {ns, fun(Ctx) -> fun(Ref) -> [?PY_MSG_CALL, Ref, Ctx, M, F, Args, Kwargs] end end};
        {{ok, M}, {ok, F}} when is_list(Args), length(Args) >= 0, is_map(Kwargs) ->
            fun(Ctx) -> fun(Ref) -> [?PY_MSG_CALL, Ref, Ctx, M, F, Args, Kwargs] end end;
        {{ok, _}, {ok, _}} when is_list(Args), length(Args) >= 0 ->
            {error, {badarg, Kwargs0}};
        {{ok, _}, {ok, _}} ->
            {error, {badarg, Args}};
        {{ok, _}, Error} ->
            Error;
        {Error, _} ->
            Error
    end.

%% A keyword list ([{atom(), term()}], keys unique) as the kwargs map; anything
%% else is returned as it is (call_msg/4 rejects what is not a map).
kwargs_map(Kwargs) when is_list(Kwargs) ->
    try maps:from_list(Kwargs) of
        Map when map_size(Map) =:= length(Kwargs) ->
            case lists:all(fun is_atom/1, maps:keys(Map)) of
                true -> Map;
                false -> Kwargs
            end;
        _ -> Kwargs
    catch
        error:badarg -> Kwargs
    end;
kwargs_map(Kwargs) ->
    Kwargs.

name(Name) when is_atom(Name) -> {ok, atom_to_binary(Name, utf8)};
name(Name) when is_binary(Name) -> {ok, Name};
name(Name) -> {error, {badarg, Name}}.

code(Code) when is_binary(Code) -> {ok, Code};
code(Code) ->
    try iolist_to_binary(Code) of
        Bin -> {ok, Bin}
    catch
        error:badarg -> {error, {badarg, Code}}
    end.

%%--------------------------------------------------------------------
%% The reference's API beyond the calls (drop-in part 1): see py_compat
%%--------------------------------------------------------------------

%% @doc The context of this process in the default pool: the bound one, else
%% the one its `exec'/`eval' go to (the same for the process's life).
-spec context() -> context() | {error, term()}.
context() -> py_compat:context().

%% @doc Starts the default pool if it is not running; its contexts.
-spec start_contexts() -> {ok, [context()]} | {error, term()}.
start_contexts() -> py_context_router:start().

-spec start_contexts(#{contexts => pos_integer(), mode => atom()}) ->
          {ok, [context()]} | {error, term()}.
start_contexts(Opts) -> py_context_router:start(Opts).

-spec stop_contexts() -> ok.
stop_contexts() -> py_context_router:stop().

-spec contexts_started() -> boolean().
contexts_started() -> py_context_router:is_started().

%% @doc `owngil' when the default pool gives each context a GIL of its own
%% (a port program each: mode `process'), `worker' when they share one.
-spec execution_mode() -> worker | owngil.
execution_mode() -> py_config:execution_mode().

%% @doc True: contexts with a GIL of their own (`owngil', a port program
%% each) work on any Python version here.
-spec subinterp_supported() -> boolean().
subinterp_supported() -> true.

%% @doc Runs the calls concurrently, each on a context of the default pool;
%% `{ok, Results}' in order, or `{error, {overloaded, Current, Max}}' when
%% py_semaphore cannot take them all.
-spec parallel([{name(), name(), list()} | {name(), name(), list(), kwargs()}]) ->
          {ok, [result()]} | {error, term()}.
parallel(Calls) -> py_compat:parallel(Calls).

%% @doc Interrupts the Python code context `Ctx' runs now: that call returns
%% `{error, interrupted}'. `not_running' if it runs none.
-spec interrupt(context()) -> ok | not_running | {error, term()}.
interrupt(Ctx) -> py_ns:interrupt(Ctx).

%% @doc Reloads Python module `Module' in every context that imported it.
-spec reload(name()) -> ok | {error, term()}.
reload(Module) -> py_compat:reload(Module).

%% @doc `Ref.Method(*Args)' for a reference (`#{return => ref}').
-spec call_method(py_ref:ref(), name(), list()) -> result().
call_method(Ref, Method, Args) -> py_ref:call_method(Ref, Method, Args).

%% @doc `Ref.Name'.
-spec getattr(py_ref:ref(), name()) -> result().
getattr(Ref, Name) -> py_ref:getattr(Ref, Name).

%% @doc The value a reference stands for, converted as a call's result.
-spec to_term(py_ref:ref()) -> result().
to_term(Ref) -> py_ref:to_term(Ref).

-spec is_ref(term()) -> boolean().
is_ref(Term) -> py_ref:is_ref(Term).

%% @doc cast/4 on a context, with keyword arguments.
-spec cast(context(), name(), name(), list(), kwargs()) -> ok | {error, term()}.
cast(Ctx, Module, Function, Args, Kwargs) when is_pid(Ctx) ->
    case call_msg(Module, Function, Args, Kwargs) of
        Build when is_function(Build) -> py_request:cast(Ctx, Build);
        {ns, Build} -> py_request:cast(Ctx, own_ns(Ctx, Build));
        Error -> Error
    end;
cast(Ctx, _Module, _Function, _Args, _Kwargs) ->
    {error, {badarg, Ctx}}.

%% @doc spawn_call/4 on a context, with keyword arguments.
-spec spawn_call(context(), name(), name(), list(), kwargs()) -> reference().
spawn_call(Ctx, Module, Function, Args, Kwargs) ->
    case send(Ctx, call_msg(Module, Function, Args, Kwargs)) of
        {ok, Ref} -> Ref;
        {error, Reason} -> py_request:failed(Reason)
    end.
