%% @doc A Python context: one namespace and executor thread in a port program.
%% The process is the context's identity (what py:call/4 takes); the call path
%% on its own node reads its port and number from ETS and never messages this
%% process. Callers on other nodes cannot write to the port (port_command/2
%% works on local ports only): they send the encoded request to this process,
%% which writes it (see py_request). In a node pool's member, the context also
%% tells the pool's owner that it is up.
-module(py_context).
-behaviour(gen_server).

-export([start_link/4, lookup/1]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2, terminate/2]).

-record(state, {pool :: atom() | py_pool:member_key(),
                slot :: non_neg_integer(),
                port :: port(),
                %% bumped when this slot gets or loses its context
                generation = none :: {atomics:atomics_ref(), pos_integer()} | none}).

%% @doc Starts the context numbered `Local' in port program `PortIndex' of `Pool',
%% which serves the pool's slot `Slot'.
-spec start_link(atom() | py_pool:member_key(), non_neg_integer(), non_neg_integer(),
                 non_neg_integer()) -> {ok, pid()} | {error, term()}.
start_link(Pool, PortIndex, Slot, Local) ->
    gen_server:start_link(?MODULE, {Pool, PortIndex, Slot, Local}, []).

%% @doc The port (for a context on another node: the process that writes to
%% it), its owner and the context's number in it.
-spec lookup(pid()) -> {ok, port() | pid(), pid(), non_neg_integer()} | error.
lookup(Ctx) ->
    case ets:lookup(py_contexts, Ctx) of
        [{_, Port, Owner, Local, _Load}] -> {ok, Port, Owner, Local};
        [] -> error
    end.

-spec init({atom() | py_pool:member_key(), non_neg_integer(), non_neg_integer(),
            non_neg_integer()}) -> {ok, #state{}} | {stop, term()}.
init({Pool, PortIndex, Slot, Local}) ->
    process_flag(trap_exit, true),
    case ets:lookup(py_ports, {Pool, PortIndex}) of
        [{_, Owner, Port}] ->
            %% In-flight counter of this slot, read by py_pool:get_context/1.
            {Load, Spec, Generation} =
                case ets:lookup(py_pools, Pool) of
                    [{_, _, Counters, S}] ->
                        {{Counters, Slot + 2}, S, py_pool:generation_cell(Pool, S, Counters)};
                    [] ->
                        {none, #{}, none}
                end,
            ets:insert(py_contexts, {self(), Port, Owner, Local, Load}),
            %% The slot's row carries the same route, which callers may cache:
            %% their caches go stale first, so whoever sees this row refreshes.
            ok = py_pool:slots_changed(Generation),
            ets:insert(py_pool_slots, {{Pool, Slot}, self(), {Port, Owner, Local, Load}}),
            case Spec of
                #{owner := PoolOwner} ->
                    PoolOwner ! {py_member_context, Pool, Slot, self(), Owner, Local};
                _ -> ok
            end,
            {ok, #state{pool = Pool, slot = Slot, port = Port, generation = Generation}};
        [] ->
            {stop, no_port_program}
    end.

-spec handle_call(term(), gen_server:from(), #state{}) -> {reply, term(), #state{}}.
handle_call(_Request, _From, State) ->
    {reply, {error, unknown_call}, State}.

-spec handle_cast(term(), #state{}) -> {noreply, #state{}}.
handle_cast(_Msg, State) ->
    {noreply, State}.

%% A request from a caller on another node, already encoded. If the port is
%% closed, the port owner is exiting and the caller's monitor of it says so.
-spec handle_info(term(), #state{}) -> {noreply, #state{}}.
handle_info({'$py_write', Frame}, #state{port = Port} = State) ->
    catch erlang:port_command(Port, Frame),
    {noreply, State};
handle_info(_Msg, State) ->
    {noreply, State}.

-spec terminate(term(), #state{}) -> ok.
terminate(_Reason, #state{pool = Pool, slot = Slot, generation = Generation}) ->
    ets:delete(py_contexts, self()),
    ets:match_delete(py_pool_slots, {{Pool, Slot}, self(), '_'}),
    py_pool:slots_changed(Generation).
