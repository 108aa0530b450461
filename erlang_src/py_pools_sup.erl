%% @doc Holds one py_pool_sup per started pool.
-module(py_pools_sup).
-behaviour(supervisor).

-export([start_link/0, start_pool/2, stop_pool/1, init/1]).

-spec start_link() -> {ok, pid()} | {error, term()}.
start_link() ->
    supervisor:start_link({local, ?MODULE}, ?MODULE, []).

%% @doc Starts the supervisor of pool `Pool' with the given spec.
-spec start_pool(atom(), py_pool:spec()) -> {ok, pid()} | {error, term()}.
start_pool(Pool, Spec) ->
    Child = #{id => Pool,
              start => {py_pool_sup, start_link, [Pool, Spec]},
              restart => permanent,
              type => supervisor},
    case supervisor:start_child(?MODULE, Child) of
        {error, already_present} ->
            _ = supervisor:delete_child(?MODULE, Pool),
            supervisor:start_child(?MODULE, Child);
        Other ->
            Other
    end.

-spec stop_pool(atom()) -> ok | {error, not_found}.
stop_pool(Pool) ->
    case supervisor:terminate_child(?MODULE, Pool) of
        ok -> supervisor:delete_child(?MODULE, Pool);
        Error -> Error
    end.

-spec init([]) -> {ok, {supervisor:sup_flags(), []}}.
init([]) ->
    {ok, {#{strategy => one_for_one, intensity => 10, period => 10}, []}}.
