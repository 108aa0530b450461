%% @doc The pools' in-flight counters (read by py_pool:get_context/1 to prefer
%% an idle context), kept right when a caller dies in the middle of a call.
%%
%% A caller raises its slot's counter before it sends a request and lowers it
%% when it has the reply. A caller killed meanwhile (exit(Pid, kill), a linked
%% process exiting) runs no `after' clause, so each calling process has a
%% one-cell atomics array, its *mark*, holding the counter index of the call it
%% has in flight (0: none), and a row `{Caller, Counters, Mark}' in the
%% `py_inflight' table, written when the process first calls a pool (and again
%% when it moves to another pool): no ETS write per call. This process monitors
%% every process that ever made a pool call (once per process). Whoever swaps
%% the mark to 0, the caller at the end of its call or this process on the
%% caller's 'DOWN', lowers the counter: exactly once.
-module(py_inflight).
-behaviour(gen_server).

-export([start_link/0, begin_call/1, end_call/1]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2]).

-define(TABLE, py_inflight).
-define(WATCHED, '$py_inflight_janitor').
-define(MARK, '$py_inflight_mark').  % {Counters, Mark} in the caller's dictionary

-type load() :: {atomics:atomics_ref(), pos_integer()} | none.
-export_type([load/0]).

-spec start_link() -> {ok, pid()} | {error, term()}.
start_link() ->
    gen_server:start_link({local, ?MODULE}, ?MODULE, [], []).

%% @doc The calling process starts a call on the slot whose counter is `Load'.
-spec begin_call(load()) -> ok.
begin_call(none) ->
    ok;
begin_call({Counters, Index}) ->
    Mark = mark(Counters),
    atomics:add(Counters, Index, 1),
    atomics:put(Mark, 1, Index),
    ok.

%% @doc The calling process has the reply of the call it started.
-spec end_call(load()) -> ok.
end_call(none) ->
    ok;
end_call({Counters, _Index}) ->
    case get(?MARK) of
        {Counters, Mark} -> release(Counters, atomics:exchange(Mark, 1, 0));
        _ -> ok
    end.

-spec init([]) -> {ok, #{}}.
init([]) ->
    %% After a restart: every process that has called a pool.
    _ = [erlang:monitor(process, Pid) || [Pid] <- ets:match(?TABLE, {'$1', '_', '_'})],
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
    case ets:take(?TABLE, Pid) of
        [{_, Counters, Mark}] -> release(Counters, atomics:exchange(Mark, 1, 0));
        [] -> ok
    end,
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

release(Counters, Index) when Index > 0 ->
    atomics:sub(Counters, Index, 1),
    py_semaphore:release();
release(_Counters, _None) ->
    ok.

%% This process's mark, its row naming the pool counters it is for.
mark(Counters) ->
    case get(?MARK) of
        {Counters, Mark} ->
            Mark;
        Other ->
            Mark = case Other of
                       {_, M} -> M;
                       _ -> atomics:new(1, [])
                   end,
            watch(),
            ets:insert(?TABLE, {self(), Counters, Mark}),
            put(?MARK, {Counters, Mark}),
            Mark
    end.
