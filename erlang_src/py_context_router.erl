%% @doc Pools of contexts and the routing of calls to them.
%%
%% Two pools start with the application: `default' (CPU work, one port program
%% per context so Python runs on every core) and `io' (slow I/O, contexts as
%% threads of one port program). `py:call/3,4,5' without a pool goes to the pool
%% registered for the function, else for its module, else `default'. Every
%% lookup here is ETS or atomics: no message to a server on the call path.
%%
%% A pool may hold contexts on other connected nodes: option `nodes' (see
%% {@link start_pool/3} and py_node_pool).
-module(py_context_router).

-export([start_pool/2, start_pool/3, stop_pool/1, pool_started/1, pool_nodes/1,
         get_context/0, get_context/1, num_contexts/1, contexts/1,
         %% the reference's default-pool API (context affinity)
         start/0, start/1, stop/0, is_started/0, bind_context/1, bind_context/2,
         unbind_context/0, unbind_context/1, num_contexts/0, contexts/0,
         register_pool/2, register_pool/3, unregister_pool/1, unregister_pool/2,
         lookup_pool/2, list_pool_registrations/0, reset_routes/0]).

-define(ROUTES, py_pool_routes).  %% {{ModuleBin, FuncBin | '_'}, Pool, {Module, Func | '_'}}
%% The same routes as a persistent term, read on every call:
%% #{ModuleBin => #{FuncBin | '_' => Pool}}, absent when there are none.
-define(ROUTE_MAP, '$py_pool_routes').

-type pool() :: atom().
-type mode() :: auto | process | worker | subinterp | owngil.
-type pool_opts() :: #{mode => mode(),
                       python_path => [file:filename_all()],
                       venv => file:filename_all(),
                       env => #{atom() | string() | binary() => string() | binary()},
                       max_memory => pos_integer(),
                       interrupt_grace => timeout(),
                       backend => py_driver:backend(),
                       nodes => [node()],
                       node_retry => timeout()}.
-export_type([pool/0, mode/0, pool_opts/0]).

%% @doc Starts a pool of `Size' contexts in the pool's default mode.
-spec start_pool(pool(), pos_integer()) -> {ok, [pid()]} | {error, term()}.
start_pool(Pool, Size) ->
    start_pool(Pool, Size, auto).

%% @doc Starts a pool; the third argument is a mode or an options map.
%%
%% With `nodes => Nodes' the pool's contexts run on those connected nodes:
%% `Size' contexts on each listed node (in the pool's mode there), and on this
%% node only if it is listed. Every listed node must have the erlang_python
%% application running. The call fails if no listed node can start its
%% contexts; nodes that cannot are left out, logged, and tried again when they
%% connect and every `node_retry' ms (default 5000, or `infinity'). Calls
%% choose among the live contexts only; when a node goes down its callers get
%% `{error, {nodedown, Node}}' at once and its contexts leave the pool
%% (contexts/1, num_contexts/1 and get_context/1 show only live ones); when it
%% is back and runs erlang_python, new contexts take their place.
%% Python's `erlang.call' in a context runs the functions registered on the
%% context's node, and its output is logged there.
-spec start_pool(pool(), pos_integer(), mode() | pool_opts()) -> {ok, [pid()]} | {error, term()}.
start_pool(Pool, Size, Mode) when is_atom(Mode) ->
    start_pool(Pool, Size, #{mode => Mode});
start_pool(Pool, Size, Opts) when is_map(Opts) ->
    case {maps:get(mode, Opts, auto), check_opts(Opts)} of
        {_, {error, _} = Error} ->
            Error;
        {Mode, ok} when Mode =:= auto; Mode =:= process; Mode =:= worker; Mode =:= subinterp;
                        Mode =:= owngil ->
            case py_driver:backend(Mode, Opts) of
                {ok, Backend} ->
                    py_pool:start_pool(Pool, Size, Opts#{mode => resolve_mode(Pool, Mode),
                                                         backend => Backend});
                {error, _} = Error ->
                    Error
            end;
        {Mode, ok} ->
            {error, {badarg, {mode, Mode}}}
    end;
start_pool(Pool, Size, Other) ->
    {error, {badarg, {Pool, Size, Other}}}.

%% @doc Stops a pool; calls routed to it get `{error, {pool_not_started, Pool}}'.
-spec stop_pool(pool()) -> ok.
stop_pool(Pool) ->
    py_pool:stop_pool(Pool).

-spec pool_started(pool()) -> boolean().
pool_started(Pool) ->
    py_pool:pool_started(Pool).

%% @doc The listed nodes of a pool started with option `nodes', each `up'
%% (its contexts are in the pool) or `{down, Why}'. Asks the pool's owner:
%% for monitoring, not for the call path.
-spec pool_nodes(pool()) -> [{node(), up | {down, term()}}] | {error, term()}.
pool_nodes(Pool) ->
    py_node_pool:node_status(Pool).

%% @doc The context bound to this process for the default pool, else a
%% context of the default pool.
-spec get_context() -> pid() | {error, term()}.
get_context() ->
    get_context(default).

%% @doc `get_context(N)': context `N' (1-based) of the default pool;
%% `get_context(Pool)': the context bound to this process for `Pool', else one
%% chosen without messaging any process (an idle one preferred).
-spec get_context(pos_integer() | pool()) -> pid() | {error, term()}.
get_context(N) when is_integer(N) ->
    py_pool:context(default, N);
get_context(Pool) ->
    case py_affinity:bound(Pool) of
        undefined -> py_pool:get_context(Pool);
        Ctx -> Ctx
    end.

%% @doc Starts the default pool with as many contexts as schedulers (app env
%% `num_contexts' when set); returns its contexts if it runs already.
-spec start() -> {ok, [pid()]} | {error, term()}.
start() ->
    start(#{}).

%% @doc `start(#{contexts => N, mode => worker | owngil | ...})'.
-spec start(#{contexts => pos_integer(), mode => mode()}) -> {ok, [pid()]} | {error, term()}.
start(Opts) when is_map(Opts) ->
    case pool_started(default) andalso not is_map_key(contexts, Opts)
        andalso not is_map_key(mode, Opts) of
        true ->
            {ok, contexts(default)};
        false ->
            Size = maps:get(contexts, Opts, py_config:default_pool_size()),
            start_pool(default, Size, maps:get(mode, Opts, py_config:default_pool_mode()))
    end;
start(Opts) ->
    {error, {badarg, Opts}}.

%% @doc Stops the default pool.
-spec stop() -> ok.
stop() ->
    stop_pool(default).

-spec is_started() -> boolean().
is_started() ->
    pool_started(default).

%% @doc Binds `Ctx' to the calling process: its calls routed to the default
%% pool (py:call/3, py:exec/1, py:eval/1, ...) go to `Ctx'.
-spec bind_context(pid()) -> ok | {error, term()}.
bind_context(Ctx) ->
    bind_context(default, Ctx).

%% @doc Binds `Ctx' for calls routed to `Pool'.
-spec bind_context(pool(), pid()) -> ok | {error, term()}.
bind_context(Pool, Ctx) ->
    py_affinity:bind(Pool, Ctx).

-spec unbind_context() -> ok.
unbind_context() ->
    unbind_context(default).

-spec unbind_context(pool()) -> ok.
unbind_context(Pool) ->
    py_affinity:unbind(Pool).

%% @doc The size of the default pool.
-spec num_contexts() -> non_neg_integer().
num_contexts() ->
    num_contexts(default).

%% @doc The contexts of the default pool.
-spec contexts() -> [pid()].
contexts() ->
    contexts(default).

-spec num_contexts(pool()) -> non_neg_integer().
num_contexts(Pool) ->
    py_pool:num_contexts(Pool).

-spec contexts(pool()) -> [pid()].
contexts(Pool) ->
    py_pool:contexts(Pool).

%% @doc Routes every function of `Module' (or one `{Module, Function}') to `Pool'.
-spec register_pool(pool(), module() | {module(), atom()}) -> ok | {error, term()}.
register_pool(Pool, {Module, Function}) ->
    register_pool(Pool, Module, Function);
register_pool(Pool, Module) ->
    put_route(Pool, Module, '_').

-spec register_pool(pool(), module(), atom()) -> ok | {error, term()}.
register_pool(Pool, Module, Function) ->
    put_route(Pool, Module, Function).

-spec unregister_pool(module() | {module(), atom()}) -> ok.
unregister_pool({Module, Function}) ->
    unregister_pool(Module, Function);
unregister_pool(Module) ->
    unregister_pool(Module, '_').

-spec unregister_pool(module(), atom()) -> ok.
unregister_pool(Module, Function) ->
    case route_key(Module, Function) of
        {ok, Key} -> ets:delete(?ROUTES, Key), publish_routes();
        _ -> ok
    end.

%% @doc The pool a call to `Module.Function' goes to: a function registration
%% wins over its module's; unregistered calls go to `default'.
-spec lookup_pool(atom() | binary(), atom() | binary()) -> pool().
lookup_pool(Module, Function) ->
    case persistent_term:get(?ROUTE_MAP, none) of
        none ->
            default;
        Routes ->
            case maps:find(name(Module), Routes) of
                {ok, Functions} ->
                    case maps:find(name(Function), Functions) of
                        {ok, Pool} -> Pool;
                        error -> maps:get('_', Functions, default)
                    end;
                error ->
                    default
            end
    end.

%% @doc Forgets the routes of a previous run of the application (the table
%% went with it); called when the application's tables are created.
-spec reset_routes() -> ok.
reset_routes() ->
    _ = persistent_term:erase(?ROUTE_MAP),
    ok.

-spec list_pool_registrations() -> [{{atom() | binary(), atom() | binary()}, pool()}].
list_pool_registrations() ->
    lists:sort([{Orig, Pool} || {_, Pool, Orig} <- ets:tab2list(?ROUTES)]).

%% Internal

put_route(Pool, Module, Function) when is_atom(Pool) ->
    case route_key(Module, Function) of
        {ok, Key} -> ets:insert(?ROUTES, {Key, Pool, {Module, Function}}), publish_routes();
        Error -> Error
    end;
put_route(Pool, _, _) ->
    {error, {badarg, Pool}}.

route_key(Module, '_') when is_atom(Module); is_binary(Module) ->
    {ok, {name(Module), '_'}};
route_key(Module, Function) when (is_atom(Module) orelse is_binary(Module)),
                                 (is_atom(Function) orelse is_binary(Function)) ->
    {ok, {name(Module), name(Function)}};
route_key(Module, Function) ->
    {error, {badarg, {Module, Function}}}.

%% Registrations are rare and calls many: the calls read a persistent term,
%% rewritten from the table after each change. A writer that raced another
%% one reads the table again after its write and publishes once more if it
%% changed meanwhile, so the last write always matches the table.
publish_routes() ->
    Routes = route_map(),
    case map_size(Routes) of
        0 -> reset_routes();
        _ -> persistent_term:put(?ROUTE_MAP, Routes)
    end,
    case route_map() of
        Routes -> ok;
        _ -> publish_routes()
    end.

route_map() ->
    lists:foldl(fun({{M, F}, Pool, _}, Acc) ->
                        maps:update_with(M, fun(Fs) -> Fs#{F => Pool} end, #{F => Pool}, Acc)
                end, #{}, ets:tab2list(?ROUTES)).

name(N) when is_atom(N) -> atom_to_binary(N, utf8);
name(N) -> N.

%% The options' types (a bad one would crash the pool's start later).
check_opts(Opts) ->
    Bad = [{K, V} || {K, V} <- maps:to_list(Opts), not valid_opt(K, V)],
    case Bad of
        [] -> check_nodes(Opts);
        [KV | _] -> {error, {badarg, KV}}
    end.

valid_opt(python_path, Paths) -> is_list(Paths) andalso lists:all(fun is_path/1, Paths);
valid_opt(venv, Path) -> is_path(Path);
valid_opt(env, Env) ->
    is_map(Env) andalso
        lists:all(fun({K, V}) -> (is_atom(K) orelse is_path(K)) andalso (V =:= false orelse is_path(V)) end,
                  maps:to_list(Env));
valid_opt(max_memory, Bytes) -> is_integer(Bytes) andalso Bytes > 0;
valid_opt(interrupt_grace, Ms) -> Ms =:= infinity orelse (is_integer(Ms) andalso Ms >= 0);
valid_opt(backend, Backend) -> Backend =:= port orelse Backend =:= driver;
valid_opt(_Key, _Value) -> true.  % mode, nodes and node_retry are checked on their own

is_path(P) when is_binary(P) -> true;
is_path(P) when is_list(P) -> io_lib:char_list(P);
is_path(_) -> false.

check_nodes(#{nodes := Nodes} = Opts) when is_list(Nodes), Nodes =/= [] ->
    Retry = maps:get(node_retry, Opts, py_config:node_retry()),
    case lists:all(fun is_atom/1, Nodes) andalso length(lists:usort(Nodes)) =:= length(Nodes) of
        false ->
            {error, {badarg, {nodes, Nodes}}};
        true when not (Retry =:= infinity orelse (is_integer(Retry) andalso Retry > 0)) ->
            {error, {badarg, {node_retry, Retry}}};
        true ->
            case is_alive() orelse Nodes =:= [node()] of
                true -> ok;
                false -> {error, {not_alive, node()}}
            end
    end;
check_nodes(#{nodes := Nodes}) ->
    {error, {badarg, {nodes, Nodes}}};
check_nodes(#{node_retry := R}) ->
    {error, {badarg, {node_retry, R}}};
check_nodes(_) ->
    ok.

%% `auto': CPU work must use the cores (one port program per context); I/O
%% work shares one. Sub-interpreters with their own GIL need Python 3.12+: on
%% the embedded 3.11 `subinterp' runs as `worker'.
resolve_mode(default, auto) -> process;
resolve_mode(_, auto) -> worker;
resolve_mode(_, subinterp) ->
    logger:notice("erlang_python: the embedded CPython has no per-interpreter GIL; "
                  "subinterp pools run in worker mode", #{domain => [python]}),
    worker;
resolve_mode(_, owngil) -> process;  % a GIL of its own: a port program of its own
resolve_mode(_, Mode) -> Mode.
