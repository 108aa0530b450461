%% @doc Holds one child per started pool: a py_pool_sup for a pool on this
%% node (or this node's share of a node pool), a py_node_pool for a node pool.
-module(py_pools_sup).
-behaviour(supervisor).

-export([start_link/0, start_pool/2, stop_pool/1, init/1]).

-spec start_link() -> {ok, pid()} | {error, term()}.
start_link() ->
    supervisor:start_link({local, ?MODULE}, ?MODULE, []).

%% @doc Starts the supervisor (or, for a node pool, the owner) of pool `Pool'.
-spec start_pool(atom() | py_pool:member_key(), py_pool:spec()) -> {ok, pid()} | {error, term()}.
start_pool(Pool, Spec) ->
    Child = case Spec of
                #{nodes := _} ->
                    %% Stopping it stops its members on every node.
                    #{id => Pool,
                      start => {py_node_pool, start_link, [Pool, Spec]},
                      restart => permanent,
                      shutdown => 30000,
                      type => worker};
                #{member := _} ->
                    %% A node pool's member is not restarted here: its owner
                    %% sees it go and starts a new one.
                    #{id => Pool,
                      start => {py_pool_sup, start_link, [Pool, Spec]},
                      restart => temporary,
                      type => supervisor};
                _ ->
                    #{id => Pool,
                      start => {py_pool_sup, start_link, [Pool, Spec]},
                      restart => permanent,
                      type => supervisor}
            end,
    case supervisor:start_child(?MODULE, Child) of
        {error, already_present} ->
            _ = supervisor:delete_child(?MODULE, Pool),
            supervisor:start_child(?MODULE, Child);
        Other ->
            Other
    end.

-spec stop_pool(atom() | py_pool:member_key()) -> ok | {error, not_found}.
stop_pool(Pool) ->
    case supervisor:terminate_child(?MODULE, Pool) of
        ok -> supervisor:delete_child(?MODULE, Pool);
        Error -> Error
    end.

-spec init([]) -> {ok, {supervisor:sup_flags(), []}}.
init([]) ->
    %% Restarted (more than 10 pools failed within 10 s): no pool it held
    %% survived it, and their rows would make starting them again (the
    %% default pools, restarted after it) `{error, {already_started, _}}'.
    _ = ets:info(py_pools) =/= undefined andalso ets:delete_all_objects(py_pools),
    {ok, {#{strategy => one_for_one, intensity => 10, period => 10}, []}}.
