%% @doc Holds one child per started pool: a py_pool_sup for a pool on this
%% node (or this node's share of a node pool), a py_node_pool for a node pool.
%%
%% What pools exist is the `py_pools' table (owned by the top supervisor: a
%% row is written before a pool starts and deleted when it is stopped), not
%% this supervisor's children. When this supervisor is restarted (its restart
%% intensity exhausted, or killed) every pool it held is gone with it; the new
%% one starts every pool the table still names again, with its spec, pools
%% started by hand included, so that an escalation costs the pools a restart,
%% not their existence. A pool that cannot start now is logged and forgotten.
%% A node pool's member on this node is left to its owner, which starts it
%% again; a context of py_context:new/1 is not started again (its pid, the
%% one its user holds, is gone).
%%
%% Intensity: a pool's supervisor is restarted here when it dies (it is
%% killed, or its own intensity is exhausted by a port program that cannot
%% start, which takes 50 failed starts). 100 within 10 s lets a storm of pool
%% supervisor kills, each waited out (a port program start), pass without
%% restarting every pool; a pool that cannot start at all still exhausts it
%% at once.
-module(py_pools_sup).
-behaviour(supervisor).

-export([start_link/0, start_pool/2, stop_pool/1, init/1]).

-define(INTENSITY, 100).
-define(PERIOD, 10).

-spec start_link() -> {ok, pid()} | {error, term()}.
start_link() ->
    case supervisor:start_link({local, ?MODULE}, ?MODULE, []) of
        {ok, Pid} ->
            restore(),
            {ok, Pid};
        Other ->
            Other
    end.

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
    {ok, {#{strategy => one_for_one, intensity => ?INTENSITY, period => ?PERIOD}, []}}.

%% After a restart: the pools of the table, started again (at the first
%% start the table is empty). Members first: their rows are dropped, then
%% their owners (restarted here if they are on this node) write new ones.
restore() ->
    Rows = case ets:info(py_pools) of
               undefined -> [];
               _ -> ets:tab2list(py_pools)
           end,
    _ = [ets:delete(py_pools, Pool) || {Pool, _, _, #{member := _}} <- Rows],
    %% A context of its own (py_context:new/1) is known by its handle's pid,
    %% which died with it: started again, nobody could reach or stop it.
    _ = [py_pool:stop_pool(Pool) || {{py_context, _} = Pool, _, _, _} <- Rows],
    _ = [restore(Pool, Spec) || {Pool, _, _, Spec} <- Rows, not is_map_key(member, Spec),
                                not is_tuple(Pool) orelse element(1, Pool) =/= py_context],
    ok.

restore(Pool, Spec) ->
    case start_pool(Pool, Spec) of
        {ok, _} ->
            logger:notice("erlang_python: pool ~p started again after a restart of py_pools_sup",
                          [Pool], #{domain => [erlang_python]});
        {error, Reason} ->
            logger:error("erlang_python: pool ~p could not be started again after a restart "
                         "of py_pools_sup (~0tp); it is gone", [Pool, Reason],
                         #{domain => [erlang_python]}),
            _ = py_pool:stop_pool(Pool),
            ok
    end.
