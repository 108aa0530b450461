%% @doc Supervisor of the per-thread callback handlers (py_callback).
-module(py_callback_sup).
-behaviour(supervisor).

-export([start_link/0, start_handler/3, init/1]).

-spec start_link() -> {ok, pid()} | {error, term()}.
start_link() ->
    supervisor:start_link({local, ?MODULE}, ?MODULE, []).

%% @doc A handler for one Python thread of the port program owned by `Owner';
%% it counts the requests it finished in `Done'.
-spec start_handler(pid(), port(), atomics:atomics_ref()) -> {ok, pid()} | {error, term()}.
start_handler(Owner, Port, Done) ->
    supervisor:start_child(?MODULE, [Owner, Port, Done]).

-spec init([]) -> {ok, {supervisor:sup_flags(), [supervisor:child_spec()]}}.
init([]) ->
    Handler = #{id => py_callback,
                start => {py_callback, start_link, []},
                restart => temporary},
    {ok, {#{strategy => simple_one_for_one, intensity => 100, period => 10}, [Handler]}}.
