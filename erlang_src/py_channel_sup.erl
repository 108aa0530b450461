%% @doc Supervisor of the channel servers (py_channel_server), one per channel.
-module(py_channel_sup).
-behaviour(supervisor).

-export([start_link/0, start_server/1, init/1]).

-spec start_link() -> {ok, pid()} | {error, term()}.
start_link() ->
    supervisor:start_link({local, ?MODULE}, ?MODULE, []).

%% @doc Starts the server of a new channel.
-spec start_server(map()) -> {ok, pid()} | {error, term()}.
start_server(Args) ->
    supervisor:start_child(?MODULE, [Args]).

-spec init([]) -> {ok, {supervisor:sup_flags(), [supervisor:child_spec()]}}.
init([]) ->
    Server = #{id => py_channel_server,
               start => {py_channel_server, start_link, []},
               restart => temporary},
    {ok, {#{strategy => simple_one_for_one, intensity => 100, period => 10}, [Server]}}.
