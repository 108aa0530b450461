%% @doc The pools' in-flight counters (read by py_pool:get_context/1 to prefer
%% an idle context), kept right when a caller dies in the middle of a call.
%%
%% A caller raises its slot's counter before it sends a request and lowers it
%% when it has the reply. A caller killed meanwhile (exit(Pid, kill), a linked
%% process exiting) runs no `after' clause, so each call also leaves a row
%% `{Caller, Load}' in the `py_inflight' table, and this process monitors every
%% process that ever made a pool call (once per process, not per call). Whoever
%% takes the row, the caller at the end of its call or this process on the
%% caller's 'DOWN', lowers the counter: exactly once.
-module(py_inflight).
-behaviour(gen_server).

-export([start_link/0, begin_call/1, end_call/1]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2]).

-define(TABLE, py_inflight).
-define(WATCHED, '$py_inflight_janitor').

-type load() :: {atomics:atomics_ref(), pos_integer()} | none.
-export_type([load/0]).

-spec start_link() -> {ok, pid()} | {error, term()}.
start_link() ->
    gen_server:start_link({local, ?MODULE}, ?MODULE, [], []).

%% @doc The calling process starts a call on the slot whose counter is `Load'.
-spec begin_call(load()) -> ok.
begin_call(none) ->
    ok;
begin_call({Counters, Index} = Load) ->
    watch(),
    atomics:add(Counters, Index, 1),
    ets:insert(?TABLE, {self(), Load}),
    ok.

%% @doc The calling process has the reply of the call it started.
-spec end_call(load()) -> ok.
end_call(none) ->
    ok;
end_call(_Load) ->
    release(ets:take(?TABLE, self())).

%% gen_server callbacks

-spec init([]) -> {ok, #{}}.
init([]) ->
    %% After a restart: the callers that still have a call in flight.
    _ = [erlang:monitor(process, Pid) || [Pid] <- ets:match(?TABLE, {'$1', '_'})],
    {ok, #{}}.

-spec handle_call(term(), gen_server:from(), map()) -> {reply, term(), map()}.
handle_call(_Request, _From, State) ->
    {reply, {error, unknown_call}, State}.

-spec handle_cast(term(), map()) -> {noreply, map()}.
handle_cast({watch, Pid}, State) ->
    _ = erlang:monitor(process, Pid),
    {noreply, State};
handle_cast(_Msg, State) ->
    {noreply, State}.

-spec handle_info(term(), map()) -> {noreply, map()}.
handle_info({'DOWN', _, process, Pid, _}, State) ->
    release(ets:take(?TABLE, Pid)),
    {noreply, State};
handle_info(_Other, State) ->
    {noreply, State}.

%% Internal

%% Once per process (and again if this server restarted).
watch() ->
    case whereis(?MODULE) of
        undefined ->
            ok;
        Janitor ->
            case get(?WATCHED) of
                Janitor -> ok;
                _ ->
                    gen_server:cast(Janitor, {watch, self()}),
                    put(?WATCHED, Janitor),
                    ok
            end
    end.

release([{_, {Counters, Index}}]) ->
    atomics:sub(Counters, Index, 1),
    ok;
release([]) ->
    ok.
