%% @doc The stable identity of a context: the pid users hold (py:context/1,
%% py_context:new/1, py_context_router:contexts/1). It lives in the pool's
%% supervisor beside the port programs, so it outlives a port program's
%% restart: the new incarnation (py_context, under py_port_sup) publishes its
%% route under this pid, and a pid taken before a crash keeps working after it.
%%
%% It is on no call path: callers read the route from ETS (`py_contexts').
%% It also keeps what belongs to the context rather than to one incarnation:
%% the process linked by py_context:start_link/2 (its exit stops the context).
-module(py_context_handle).
-behaviour(gen_server).

-export([start_link/2, lookup/1, of_slot/2, link_owner/2]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2, terminate/2]).

-define(TABLE, py_context_handles).  %% {{Pool, Slot}, Handle} and {Handle, Pool, Slot}

-record(state, {pool :: term(), slot :: non_neg_integer(), linked = none :: pid() | none,
                on_exit = none :: fun(() -> term()) | none}).

%% @doc Starts the handle of slot `Slot' of pool `Pool'.
-spec start_link(term(), non_neg_integer()) -> {ok, pid()} | {error, term()}.
start_link(Pool, Slot) ->
    gen_server:start_link(?MODULE, {Pool, Slot}, []).

%% @doc The pool and slot of a handle.
-spec lookup(pid()) -> {ok, term(), non_neg_integer()} | error.
lookup(Handle) ->
    case ets:lookup(?TABLE, Handle) of
        [{_, Pool, Slot}] -> {ok, Pool, Slot};
        [] -> error
    end.

%% @doc The handle of a pool's slot, if that pool has handles.
-spec of_slot(term(), non_neg_integer()) -> {ok, pid()} | error.
of_slot(Pool, Slot) ->
    case ets:lookup(?TABLE, {Pool, Slot}) of
        [{_, Handle}] -> {ok, Handle};
        [] -> error
    end.

%% @doc Links `Pid' to the context: when it exits, `OnExit' runs (in a
%% process of its own).
-spec link_owner(pid(), {pid(), fun(() -> term())}) -> ok.
link_owner(Handle, {Pid, OnExit}) ->
    gen_server:call(Handle, {link_owner, Pid, OnExit}).

-spec init({term(), non_neg_integer()}) -> {ok, #state{}}.
init({Pool, Slot}) ->
    process_flag(trap_exit, true),
    ets:insert(?TABLE, [{{Pool, Slot}, self()}, {self(), Pool, Slot}]),
    %% A handle restarted while its port program runs: take over the route.
    case ets:lookup(py_pool_slots, {Pool, Slot}) of
        [{Key, _Old, {Port, Owner, Local, Load} = Route}] ->
            ets:insert(py_contexts, {self(), Port, Owner, Local, Load}),
            ets:insert(py_pool_slots, {Key, self(), Route});
        [] ->
            ok
    end,
    {ok, #state{pool = Pool, slot = Slot}}.

-spec handle_call(term(), gen_server:from(), #state{}) -> {reply, term(), #state{}}.
handle_call({link_owner, Pid, OnExit}, _From, State) ->
    link(Pid),
    {reply, ok, State#state{linked = Pid, on_exit = OnExit}};
handle_call(_Request, _From, State) ->
    {reply, {error, unknown_call}, State}.

-spec handle_cast(term(), #state{}) -> {noreply, #state{}}.
handle_cast(_Msg, State) ->
    {noreply, State}.

-spec handle_info(term(), #state{}) -> {noreply, #state{}}.
handle_info({py_ns_watch, Pid, Key}, State) ->
    ok = py_ns:watch(Pid, Key),
    {noreply, State};
handle_info({'DOWN', _, process, Pid, _}, State) ->
    _ = py_ns:down(Pid, self()),
    {noreply, State};
handle_info({'EXIT', Pid, _Reason}, #state{linked = Pid, on_exit = OnExit} = State) ->
    %% Stopping the context goes through its supervisor, which waits for
    %% this process: not from here.
    _ = spawn(OnExit),
    {noreply, State#state{linked = none}};
handle_info(_Msg, State) ->
    {noreply, State}.

-spec terminate(term(), #state{}) -> ok.
terminate(_Reason, #state{pool = Pool, slot = Slot}) ->
    ets:delete(?TABLE, self()),
    ets:delete_object(?TABLE, {{Pool, Slot}, self()}),
    ets:delete(py_contexts, self()),
    ets:match_delete(py_pool_slots, {{Pool, Slot}, self(), '_'}),
    ok.
