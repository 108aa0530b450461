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
%% The reference's explicit-context API (see the README, "Explicit contexts")
-export([new/1, start_link/2, stop/1, destroy/1, call/4, call/5, call/6, call/7,
         eval/2, eval/3, eval/4, eval/5, exec/2, exec/3, call_method/4, to_term/1,
         interrupt/1, create_local_env/1, is_subinterp/1, get_interp_id/1]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2, terminate/2]).

-record(state, {pool :: atom() | py_pool:member_key(),
                slot :: non_neg_integer(),
                port :: port(),
                %% bumped when this slot gets or loses its context
                generation = none :: {atomics:atomics_ref(), pos_integer()} | none,
                %% the pid users hold (this process, or the slot's handle)
                id :: pid()}).

-type context() :: pid().
-type env() :: {py_env, pid(), reference()}.
-export_type([context/0, env/0]).

%%--------------------------------------------------------------------
%% Explicit contexts
%%--------------------------------------------------------------------

%% @doc Starts a context of its own: one Python context in a port program of
%% its own, supervised (a crash restarts it; the pid stays valid) until
%% stop/1. Options: `mode' (`worker', `owngil', `process', `subinterp' or
%% `auto': all the same here, a port program has its own GIL),
%% `memory_limit' (bytes of resident memory, the port program's cap, in any
%% mode), `python_path', `venv', `env', `interrupt_grace'.
-spec new(map()) -> {ok, context()} | {error, term()}.
new(Opts) when is_map(Opts) ->
    case maps:get(mode, Opts, worker) of
        Mode when Mode =:= worker; Mode =:= owngil; Mode =:= process; Mode =:= subinterp;
                  Mode =:= auto ->
            PoolOpts0 = maps:with([python_path, venv, env, interrupt_grace, backend], Opts),
            PoolOpts = case Opts of
                           #{memory_limit := N} when is_integer(N), N > 0 ->
                               {ok, PoolOpts0#{max_memory => N}};
                           #{memory_limit := Bad} ->
                               {error, {badarg, {memory_limit, Bad}}};
                           _ ->
                               {ok, PoolOpts0}
                       end,
            %% owngil: a port program of its own, also when the driver is the default
            case {PoolOpts, py_driver:backend(Mode, PoolOpts0)} of
                {{ok, P}, {ok, Backend}} ->
                    py_pool:start_private({?MODULE, erlang:unique_integer([positive])},
                                          P#{backend => Backend});
                {{ok, _}, Error} ->
                    Error;
                {Error, _} ->
                    Error
            end;
        Mode ->
            {error, {badarg, {mode, Mode}}}
    end;
new(Opts) ->
    {error, {badarg, Opts}}.

%% @doc new/1 linked to the caller: the context stops when the caller exits.
%% `Id' is accepted for compatibility and not used (the pid is the identity).
-spec start_link(term(), atom()) -> {ok, context()} | {error, term()}.
start_link(_Id, Mode) ->
    case new(#{mode => Mode}) of
        {ok, Ctx} ->
            {ok, Pool, _} = py_context_handle:lookup(Ctx),
            ok = py_context_handle:link_owner(Ctx, {self(), fun() -> py_pool:stop_pool(Pool) end}),
            {ok, Ctx};
        Error ->
            Error
    end.

%% @doc Stops a context made by new/1 or start_link/2: its port program
%% exits, calls to it get `{error, {no_context, Ctx}}'. A pool's context is
%% stopped with its pool (py_context_router:stop_pool/1), not alone.
-spec stop(context()) -> ok | {error, term()}.
stop(Ctx) when is_pid(Ctx) ->
    case py_context_handle:lookup(Ctx) of
        {ok, {?MODULE, _} = Pool, _} -> py_pool:stop_pool(Pool);
        {ok, Pool, _} -> {error, {pool_context, Pool}};
        error -> ok
    end;
stop(Ctx) ->
    {error, {badarg, Ctx}}.

%% @doc The same as stop/1.
-spec destroy(context()) -> ok | {error, term()}.
destroy(Ctx) ->
    stop(Ctx).

%% @doc `Module.Function(*Args)' in `Ctx' (py:call/4).
-spec call(context(), py:name(), py:name(), list()) -> py:result().
call(Ctx, Module, Function, Args) ->
    py:call(Ctx, Module, Function, Args, #{}).

-spec call(context(), py:name(), py:name(), list(), map()) -> py:result().
call(Ctx, Module, Function, Args, Kwargs) ->
    py:call(Ctx, Module, Function, Args, #{kwargs => Kwargs}).

-spec call(context(), py:name(), py:name(), list(), map(), timeout()) -> py:result().
call(Ctx, Module, Function, Args, Kwargs, Timeout) ->
    py:call(Ctx, Module, Function, Args, #{kwargs => Kwargs, timeout => Timeout}).

%% @doc The last argument is an environment of create_local_env/1 (the call
%% resolves `__main__' in it) or an options map of py:call/5
%% (`#{return => ref}', ...).
-spec call(context(), py:name(), py:name(), list(), map(), timeout(), env() | map()) ->
          py:result().
call(Ctx, Module, Function, Args, Kwargs, Timeout, shared) ->
    py:call(Ctx, Module, Function, Args, #{kwargs => Kwargs, timeout => Timeout, env => shared});
call(Ctx, Module, Function, Args, Kwargs, Timeout, Opts) when is_map(Opts) ->
    py:call(Ctx, Module, Function, Args, Opts#{kwargs => Kwargs, timeout => Timeout});
call(Ctx, Module, Function, Args, Kwargs, Timeout, {py_env, _, _} = Env) ->
    py:call(Ctx, Module, Function, Args, #{kwargs => Kwargs, timeout => Timeout, env => Env});
call(_Ctx, _Module, _Function, _Args, _Kwargs, _Timeout, Other) ->
    {error, {badarg, Other}}.

-spec eval(context(), iodata()) -> py:result().
eval(Ctx, Code) ->
    py:eval(Ctx, Code, #{}, py_config:call_timeout()).

-spec eval(context(), iodata(), map()) -> py:result().
eval(Ctx, Code, Locals) ->
    py:eval(Ctx, Code, Locals, py_config:call_timeout()).

-spec eval(context(), iodata(), map(), timeout()) -> py:result().
eval(Ctx, Code, Locals, Timeout) ->
    py:eval(Ctx, Code, Locals, Timeout).

%% @doc eval/4 in an environment of create_local_env/1.
-spec eval(context(), iodata(), map(), timeout(), env()) -> py:result().
eval(Ctx, Code, Locals, Timeout, Env) when Env =:= shared; element(1, Env) =:= py_env ->
    py_ns:eval(Ctx, Code, Locals, Timeout, Env);
eval(_Ctx, _Code, _Locals, _Timeout, Other) ->
    {error, {badarg, Other}}.

-spec exec(context(), iodata()) -> ok | {error, term()}.
exec(Ctx, Code) ->
    py:exec(Ctx, Code).

%% @doc exec/2 in an environment of create_local_env/1, or with a timeout.
-spec exec(context(), iodata(), env() | timeout()) -> ok | {error, term()}.
exec(Ctx, Code, Env) when Env =:= shared; (is_tuple(Env) andalso element(1, Env) =:= py_env) ->
    py_ns:exec(Ctx, Code, py_config:call_timeout(), Env);
exec(Ctx, Code, Timeout) ->
    py:exec(Ctx, Code, Timeout).

%% @doc `Ref.Method(*Args)' for a reference made in `Ctx' (py:call_method/3).
-spec call_method(context(), py_ref:ref(), py:name(), list()) -> py:result().
call_method(_Ctx, Ref, Method, Args) ->
    py_ref:call_method(Ref, Method, Args).

%% @doc The value a reference stands for (py:to_term/1).
-spec to_term(py_ref:ref()) -> py:result().
to_term(Ref) ->
    py_ref:to_term(Ref).

%% @doc Interrupts the Python code `Ctx' runs (py:interrupt/1).
-spec interrupt(context()) -> ok | not_running | {error, term()}.
interrupt(Ctx) ->
    py_ns:interrupt(Ctx).

%% @doc A namespace of its own in `Ctx', for call/7, eval/5 and exec/3: any
%% process holding it may use it; it lives as long as the process that
%% created it (or until its context restarts).
-spec create_local_env(context()) -> {ok, env()} | {error, term()}.
create_local_env(Ctx) when is_pid(Ctx) ->
    case lookup(Ctx) of
        {ok, _, _, _} -> {ok, py_ns:new_env(Ctx)};
        error -> {error, {no_context, Ctx}}
    end;
create_local_env(Ctx) ->
    {error, {badarg, Ctx}}.

%% @doc Always false: every context runs in the main interpreter of its own
%% port program (whose GIL it shares only with the contexts of that port
%% program), never in a sub-interpreter.
-spec is_subinterp(context()) -> boolean().
is_subinterp(_Ctx) ->
    false.

%% @doc The interpreter of `Ctx': always 0, the main interpreter of its port
%% program (see is_subinterp/1).
-spec get_interp_id(context()) -> {ok, non_neg_integer()} | {error, term()}.
get_interp_id(Ctx) ->
    case lookup(Ctx) of
        {ok, _, _, _} -> {ok, 0};
        error -> {error, {no_context, Ctx}}
    end.

%%--------------------------------------------------------------------
%% The incarnation process
%%--------------------------------------------------------------------

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
            %% The registered paths, imports and preload code run first: they
            %% are in the pipe before any request that reads the route below.
            ok = py_context_init:apply_all(Port, Local),
            %% The pid users hold: the slot's handle (stable across restarts of
            %% the port program) where the pool has handles, else this process.
            Id = case py_context_handle:of_slot(Pool, Slot) of
                     {ok, Handle} -> Handle;
                     error -> self()
                 end,
            ets:insert(py_contexts, {Id, Port, Owner, Local, Load}),
            %% The slot's row carries the same route, which callers may cache:
            %% their caches go stale first, so whoever sees this row refreshes.
            ok = py_pool:slots_changed(Generation),
            ets:insert(py_pool_slots, {{Pool, Slot}, Id, {Port, Owner, Local, Load}}),
            case Spec of
                #{owner := PoolOwner} ->
                    PoolOwner ! {py_member_context, Pool, Slot, self(), Owner, Local};
                _ -> ok
            end,
            {ok, #state{pool = Pool, slot = Slot, port = Port, generation = Generation,
                        id = Id}};
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
%% The linked-in driver replies to the writer: the caller is on another node.
handle_info({Ref, Tag, _} = Reply, State) when is_reference(Ref), (Tag =:= ok orelse Tag =:= error) ->
    Ref ! Reply,
    {noreply, State};
%% process-bound namespaces of a node pool member's context (py_ns)
handle_info({py_ns_watch, Pid, Key}, State) ->
    ok = py_ns:watch(Pid, Key),
    {noreply, State};
handle_info({'DOWN', _, process, Pid, _}, #state{id = Id} = State) ->
    _ = py_ns:down(Pid, Id),
    {noreply, State};
handle_info(_Msg, State) ->
    {noreply, State}.

-spec terminate(term(), #state{}) -> ok.
terminate(_Reason, #state{pool = Pool, slot = Slot, generation = Generation, id = Id}) ->
    case Id =:= self() of
        true ->
            ets:delete(py_contexts, self()),
            ets:match_delete(py_pool_slots, {{Pool, Slot}, self(), '_'});
        false ->
            %% The handle keeps its route until the next incarnation replaces
            %% it: a call to it meanwhile finds the port closed or its owner
            %% gone. The slot's row goes now: a call to the pool then skips
            %% the slot, or waits for the next incarnation, rather than
            %% writing to a port program being shut down (its owner stops
            %% after this process) and getting `{python_died, shutdown}'.
            %% (gone with the top supervisor when the application stops)
            catch ets:match_delete(py_pool_slots, {{Pool, Slot}, Id, '_'})
    end,
    py_pool:slots_changed(Generation).
