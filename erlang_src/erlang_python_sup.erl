%% @doc Top supervisor: callback handlers, channel servers, the pools, the
%% default pool, then the keeper of the in-flight counters (last: its restart
%% touches nothing else).
-module(erlang_python_sup).
-behaviour(supervisor).

-export([start_link/0, init/1]).

-spec start_link() -> {ok, pid()} | {error, term()}.
start_link() ->
    supervisor:start_link({local, ?MODULE}, ?MODULE, []).

-spec init([]) -> {ok, {supervisor:sup_flags(), [supervisor:child_spec()]}}.
init([]) ->
    py_pool:init_tables(),
    ok = py_state:init_tables(),  % dropin2: state, streams, shared dicts, setup, traces
    ok = py_semaphore:init(),
    ok = py_config:check_env(),
    ok = py_import:load_env(),
    Callbacks = #{id => py_callback_sup,
                  start => {py_callback_sup, start_link, []},
                  type => supervisor},
    Channels = #{id => py_channel_sup,
                 start => {py_channel_sup, start_link, []},
                 type => supervisor},
    Pools = #{id => py_pools_sup,
              start => {py_pools_sup, start_link, []},
              type => supervisor},
    Default = #{id => default_pool,
                start => {py_pool, start_default, []},
                restart => transient,
                type => worker},
    InFlight = #{id => py_inflight,
                 start => {py_inflight, start_link, []},
                 type => worker},
    %% dropin2: owners of running streams, owners of shared dicts
    Streams = #{id => py_stream, start => {py_stream, start_link, []}, type => worker},
    SharedDicts = #{id => py_shared_dict, start => {py_shared_dict, start_link, []},
                    type => worker},
    %% py_event_loop, py_event_loop_pool: the loops' pool, the namespace server
    EventLoops = #{id => event_loop_pool,
                   start => {py_event_loop_pool, start_pool, []},
                   restart => transient,
                   type => worker},
    LoopNamespaces = #{id => py_event_loop,
                       start => {py_event_loop, start_link, []},
                       type => worker},
    %% py_pools_sup restarts every pool it held (the py_pools table names
    %% them): a storm of its deaths, each waited out, is survived (CT
    %% pools_supervisor_killed, 100 in a row in `make stress', ~0.2-2 s each).
    {ok, {#{strategy => rest_for_one, intensity => 100, period => 10},
          [Callbacks, Channels, Pools, Default, InFlight, Streams, SharedDicts,
           EventLoops, LoopNamespaces]}}.
