%% @doc One port program: its owner (py_port) and its contexts (py_context).
%% one_for_all: contexts are meaningless without their port program.
-module(py_port_sup).
-behaviour(supervisor).

-export([start_link/3, init/1]).

-spec start_link(atom() | py_pool:member_key(), non_neg_integer(), py_pool:spec()) -> {ok, pid()} | {error, term()}.
start_link(Pool, PortIndex, Spec) ->
    supervisor:start_link(?MODULE, {Pool, PortIndex, Spec}).

-spec init({atom() | py_pool:member_key(), non_neg_integer(), py_pool:spec()}) ->
          {ok, {supervisor:sup_flags(), [supervisor:child_spec()]}}.
init({Pool, PortIndex, #{ports := Ports} = Spec}) ->
    Slots = lists:nth(PortIndex + 1, Ports),
    Port = #{id => port,
             start => {py_port, start_link, [Pool, PortIndex, length(Slots), Spec]},
             shutdown => 3000},
    Contexts = [#{id => {context, Local},
                  start => {py_context, start_link, [Pool, PortIndex, Slot, Local]}}
                || {Local, Slot} <- lists:zip(lists:seq(0, length(Slots) - 1), Slots)],
    {ok, {#{strategy => one_for_all, intensity => 10, period => 10}, [Port | Contexts]}}.
