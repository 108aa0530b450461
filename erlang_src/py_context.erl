%% @doc A Python context: one namespace and executor thread in a port program.
%% The process is the context's identity (what py:call/4 takes); the call path
%% reads its port and number from ETS and never messages this process.
-module(py_context).
-behaviour(gen_server).

-export([start_link/4, lookup/1]).
-export([init/1, handle_call/3, handle_cast/2, terminate/2]).

-record(state, {pool :: atom(), slot :: non_neg_integer()}).

%% @doc Starts the context numbered `Local' in port program `PortIndex' of `Pool',
%% which serves the pool's slot `Slot'.
-spec start_link(atom(), non_neg_integer(), non_neg_integer(), non_neg_integer()) ->
          {ok, pid()} | {error, term()}.
start_link(Pool, PortIndex, Slot, Local) ->
    gen_server:start_link(?MODULE, {Pool, PortIndex, Slot, Local}, []).

%% @doc The port, its owner and the context's number in it.
-spec lookup(pid()) -> {ok, port(), pid(), non_neg_integer()} | error.
lookup(Ctx) ->
    case ets:lookup(py_contexts, Ctx) of
        [{_, Port, Owner, Local, _Load}] -> {ok, Port, Owner, Local};
        [] -> error
    end.

-spec init({atom(), non_neg_integer(), non_neg_integer(), non_neg_integer()}) ->
          {ok, #state{}} | {stop, term()}.
init({Pool, PortIndex, Slot, Local}) ->
    process_flag(trap_exit, true),
    case ets:lookup(py_ports, {Pool, PortIndex}) of
        [{_, Owner, Port}] ->
            %% In-flight counter of this slot, read by py_pool:get_context/1.
            Load = case ets:lookup(py_pools, Pool) of
                       [{_, _, Counters, _}] -> {Counters, Slot + 2};
                       [] -> none
                   end,
            ets:insert(py_contexts, {self(), Port, Owner, Local, Load}),
            ets:insert(py_pool_slots, {{Pool, Slot}, self()}),
            {ok, #state{pool = Pool, slot = Slot}};
        [] ->
            {stop, no_port_program}
    end.

-spec handle_call(term(), gen_server:from(), #state{}) -> {reply, term(), #state{}}.
handle_call(_Request, _From, State) ->
    {reply, {error, unknown_call}, State}.

-spec handle_cast(term(), #state{}) -> {noreply, #state{}}.
handle_cast(_Msg, State) ->
    {noreply, State}.

-spec terminate(term(), #state{}) -> ok.
terminate(_Reason, #state{pool = Pool, slot = Slot}) ->
    ets:delete(py_contexts, self()),
    ets:delete_object(py_pool_slots, {{Pool, Slot}, self()}),
    ok.
