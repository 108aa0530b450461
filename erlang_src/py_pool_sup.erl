%% @doc One pool: a py_port_sup per port program. A node pool's member also
%% has a watcher of the pool's owner, which stops the member when the owner
%% goes (or its node disconnects).
-module(py_pool_sup).
-behaviour(supervisor).

-export([start_link/2, init/1]).

-spec start_link(atom() | py_pool:member_key(), py_pool:spec()) -> {ok, pid()} | {error, term()}.
start_link(Pool, Spec) ->
    supervisor:start_link(?MODULE, {Pool, Spec}).

-spec init({atom() | py_pool:member_key(), py_pool:spec()}) ->
          {ok, {supervisor:sup_flags(), [supervisor:child_spec()]}}.
init({Pool, #{ports := Ports} = Spec}) ->
    Watcher = case Spec of
                  #{watch := true, owner := Owner} ->
                      [#{id => owner_watcher,
                         start => {py_node_pool, start_watcher, [Pool, Owner]},
                         restart => temporary}];
                  _ -> []
              end,
    %% The contexts' stable pids (py_context_handle), first: an incarnation
    %% publishes its route under its slot's handle. A node pool's member has
    %% none (its owner follows restarts by the pids its contexts report).
    Handles = case Spec of
                  #{owner := _} -> [];
                  _ -> [#{id => {handle, Slot},
                          start => {py_context_handle, start_link, [Pool, Slot]}}
                        || Slot <- lists:append(Ports)]
              end,
    Children = Handles ++ [#{id => {port, I},
                  start => {py_port_sup, start_link, [Pool, I, Spec]},
                  type => supervisor} || I <- lists:seq(0, length(Ports) - 1)],
    %% A crashing Python is restarted; only a port program that cannot start at
    %% all (bad path, broken interpreter) exhausts this and fails the pool.
    {ok, {#{strategy => one_for_one, intensity => 50, period => 10}, Watcher ++ Children}}.
