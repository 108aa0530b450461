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

-export([call/3, call/4, call/5, eval/1, eval/2, eval/3, eval/4, exec/1, exec/2, exec/3,
         cast/3, cast/4, spawn_call/3, spawn_call/4, await/1, await/2,
         context/1, version/0, last_traceback/0,
         register_function/2, register_function/3, unregister_function/1,
         register_pool/2, unregister_pool/1]).

-type context() :: pid().
-type pool() :: atom().
-type name() :: atom() | binary().
-type kwargs() :: #{atom() | binary() => term()}.
-type call_opts() :: #{kwargs => kwargs(), timeout => timeout()}.
-type result() :: {ok, term()} | {error, term()}.
-export_type([context/0, pool/0, result/0]).

-define(IS_TIMEOUT(T), (T =:= infinity orelse (is_integer(T) andalso T >= 0))).

%% @doc Calls `Module.Function(*Args)'.
-spec call(name(), name(), list()) -> result().
call(Module, Function, Args) ->
    call(Module, Function, Args, #{}).

%% @doc `call(Module, Function, Args, Kwargs)' passes keyword arguments;
%% `call(Ctx | Pool, Module, Function, Args)' picks the context or pool.
-spec call(name(), name(), list(), kwargs()) -> result();
          (context() | pool(), name(), name(), list()) -> result().
call(Module, Function, Args, Kwargs) when is_map(Kwargs) ->
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
call(Module, Function, Args, Kwargs, Timeout) when is_list(Args), is_map(Kwargs) ->
    request(target(Module, Function), call_msg(Module, Function, Args, Kwargs), Timeout);
call(Ctx, Module, Function, Args, Opts) when is_pid(Ctx), is_map(Opts) ->
    request(Ctx, call_msg(Module, Function, Args, maps:get(kwargs, Opts, #{})),
            maps:get(timeout, Opts, py_config:call_timeout()));
call(Pool, Module, Function, Args, Kwargs) when is_atom(Pool), is_map(Kwargs) ->
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
    eval(target('__main__', eval), Code, Locals, Timeout).

%% @doc Evaluates in context `Ctx' with a timeout.
-spec eval(context() | pool(), iodata(), map(), timeout()) -> result().
eval(Target, Code, Locals, Timeout) ->
    case {code(Code), Locals} of
        {{ok, Bin}, #{}} -> request(Target, fun(Ctx) -> fun(Ref) -> [2, Ref, Ctx, Bin, Locals] end end,
                                    Timeout);
        {{ok, _}, _} -> {error, {badarg, Locals}};
        {Error, _} -> Error
    end.

%% @doc Executes Python statements; definitions stay in the context.
-spec exec(iodata()) -> ok | {error, term()}.
exec(Code) ->
    exec(target('__main__', exec), Code).

%% @doc Executes in context `Ctx'.
-spec exec(context() | pool(), iodata()) -> ok | {error, term()}.
exec(Target, Code) ->
    exec(Target, Code, py_config:call_timeout()).

%% @doc Executes in context `Ctx' with a timeout.
-spec exec(context() | pool(), iodata(), timeout()) -> ok | {error, term()}.
exec(Target, Code, Timeout) ->
    case code(Code) of
        {ok, Bin} ->
            case request(Target, fun(Ctx) -> fun(Ref) -> [3, Ref, Ctx, Bin] end end, Timeout) of
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

-spec cast(name(), name(), list(), kwargs()) -> ok | {error, term()}.
cast(Module, Function, Args, Kwargs) ->
    case {context_of(target(Module, Function)), call_msg(Module, Function, Args, Kwargs)} of
        {Ctx, Build} when is_pid(Ctx), is_function(Build) -> py_request:cast(Ctx, Build);
        {{error, _} = Error, _} -> Error;
        {_, Error} -> Error
    end.

%% @doc Starts a call and returns a reference to {@link await/2} its result.
-spec spawn_call(name(), name(), list()) -> reference().
spawn_call(Module, Function, Args) ->
    spawn_call(Module, Function, Args, #{}).

-spec spawn_call(name(), name(), list(), kwargs()) -> reference().
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
    py_request:wait(Ref, Timeout);
await(Ref, Timeout) when is_reference(Ref) ->
    {error, {badarg, {timeout, Timeout}}};
await(Ref, _Timeout) ->
    {error, {badarg, Ref}}.

%% @doc Context `N' (1-based) of the default pool.
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
-spec last_traceback() -> binary() | undefined.
last_traceback() ->
    get('$py_last_traceback').

%% Internal

request(_Target, Build, Timeout) when is_function(Build), not ?IS_TIMEOUT(Timeout) ->
    {error, {badarg, {timeout, Timeout}}};
request(Pool, Build, Timeout) when is_atom(Pool), is_function(Build) ->
    py_pool:call(Pool, Build, Timeout);
request(Target, Build, Timeout) when is_function(Build) ->
    case context_of(Target) of
        Ctx when is_pid(Ctx) -> py_request:call(Ctx, Build, Timeout);
        Error -> Error
    end;
request(_Target, Error, _Timeout) ->
    Error.

send(Target, Build) when is_function(Build) ->
    case context_of(Target) of
        Ctx when is_pid(Ctx) -> py_request:send(Ctx, Build);
        Error -> Error
    end;
send(_Target, Error) ->
    Error.

context_of(Ctx) when is_pid(Ctx) -> Ctx;
context_of(Pool) when is_atom(Pool) -> py_pool:get_context(Pool);
context_of(Other) -> {error, {badarg, Other}}.

%% The pool serving Module.Function: registration routing.
target(Module, Function) when (is_atom(Module) orelse is_binary(Module)),
                              (is_atom(Function) orelse is_binary(Function)) ->
    py_context_router:lookup_pool(Module, Function);
target(_Module, _Function) ->
    default.

call_msg(Module, Function, Args, Kwargs) ->
    %% length/1 fails in a guard on an improper list: Args must be a proper one.
    case {name(Module), name(Function)} of
        {{ok, M}, {ok, F}} when is_list(Args), length(Args) >= 0, is_map(Kwargs) ->
            fun(Ctx) -> fun(Ref) -> [1, Ref, Ctx, M, F, Args, Kwargs] end end;
        {{ok, _}, {ok, _}} when is_list(Args), length(Args) >= 0 ->
            {error, {badarg, Kwargs}};
        {{ok, _}, {ok, _}} ->
            {error, {badarg, Args}};
        {{ok, _}, Error} ->
            Error;
        {Error, _} ->
            Error
    end.

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
