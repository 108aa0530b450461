%% @doc Pools of Python contexts: how they map onto port programs, and choosing
%% a context without a message to any server (ETS and atomics only).
%%
%% A pool started with option `nodes' (a node pool) has its contexts on those
%% nodes: see py_node_pool. Its entry here holds the tuple of its live contexts
%% instead of a size, so that choosing one is still a lookup on the caller's node.
-module(py_pool).

-export([init_tables/0, start_default/0, start_pool/3, start_private/2, stop_pool/1,
         pool_started/1, checkout/1, checkout/2, call/3, call/4,
         get_context/1, context/2, contexts/1, num_contexts/1, spec/1]).
%% Node pools (used by py_node_pool)
-export([start_member/1, member_contexts/1, set_live/2, generation_cell/3, slots_changed/1]).
-export_type([spec/0, mode/0, member/0, member_key/0]).

-type mode() :: process | worker.
%% The key of a pool without a name: a node pool's member, or the private
%% pool of one py_context:new/1 context.
-type member_key() :: {py_nodes, atom(), pid(), integer()} | {py_context, integer()}.
-type spec() :: #{size := pos_integer(),
                  mode := mode(),
                  ports := [[non_neg_integer()]],
                  python_path := [file:filename_all()],
                  max_memory := pos_integer() | undefined,
                  env := [{string(), string() | false}],
                  interrupt_grace => timeout(),
                  backend := py_driver:backend(),
                  %% a node pool's member: who owns it
                  owner => pid(),
                  member => member_key(),
                  watch => boolean()}
              | #{size := pos_integer(),
                  mode := mode(),
                  nodes := [node()],
                  retry := timeout(),
                  opts := map()}.

%% A node pool's share on one node: `Size' contexts, in slots
%% `Base'..`Base + Size - 1' of the node pool.
-type member() :: #{key := member_key(),
                    base := non_neg_integer(),
                    size := pos_integer(),
                    opts := map(),
                    owner := pid(),
                    counters => atomics:atomics_ref()}.

%% {Pool, Size, Counters, Spec}; for a node pool {Pool, Live, Counters, Spec},
%% Live being the tuple of its live contexts as {Ctx, CounterIndex}, rewritten
%% by the pool's owner when a context or a node comes or goes.
-define(POOLS, py_pools).
-define(SLOTS, py_pool_slots).   %% {{Pool, Slot}, ContextPid, py_request:route()}

%% @doc Creates the tables shared by pools and contexts (owned by the top supervisor).
-spec init_tables() -> ok.
init_tables() ->
    Opts = [named_table, public, set, {read_concurrency, true}],
    _ = [ets:new(T, Opts) || T <- [?POOLS, ?SLOTS, py_contexts, py_ports, py_functions, py_pool_routes,
                                   py_context_handles, py_registry],
                             ets:info(T) =:= undefined],
    %% {Caller, Counters, Mark} of every process that called a pool (py_inflight)
    _ = [ets:new(py_inflight, [named_table, public, set, {write_concurrency, true}])
         || ets:info(py_inflight) =:= undefined],
    ok = py_context_router:reset_routes(),
    ok.

%% @doc Starts the `default' and `io' pools from the application environment; `ignore'
%% keeps the supervisor child slot so a restart of the pools recreates it.
-spec start_default() -> ignore | {error, term()}.
start_default() ->
    Env = fun(K, D) -> application:get_env(erlang_python, K, D) end,
    Default = py_context_router:start_pool(default, py_config:default_pool_size(),
                                           py_config:default_pool_mode()),
    IO = py_context_router:start_pool(io, Env(io_pool_size, 10), Env(io_pool_mode, auto)),
    case {Default, IO} of
        {{ok, _}, {ok, _}} -> ignore;
        {{error, _} = Error, _} -> Error;
        {_, Error} -> Error
    end.

%% @doc Starts pool `Pool' of `Size' contexts; with option `nodes', `Size'
%% contexts on each of those nodes (see py_node_pool).
-spec start_pool(atom(), pos_integer(), map()) -> {ok, [pid()]} | {error, term()}.
start_pool(Pool, Size, Opts) when is_atom(Pool), is_integer(Size), Size > 0, is_map(Opts) ->
    case ets:lookup(?POOLS, Pool) of
        [{_, Size, _, #{mode := Mode} = Spec}] when Mode =:= map_get(mode, Opts),
                                                     not is_map_key(nodes, Spec) ->
            %% Already running as asked: starting it again is a no-op.
            {ok, contexts(Pool)};
        [_] ->
            {error, {already_started, Pool}};
        [] ->
            start_new_pool(Pool, Size, Opts)
    end;
start_pool(Pool, Size, Opts) ->
    {error, {badarg, {Pool, Size, Opts}}}.

%% @doc Starts a context of its own (py_context:new/1): a pool of one
%% context in one port program, under key `Key'.
-spec start_private({py_context, integer()}, map()) -> {ok, pid()} | {error, term()}.
start_private(Key, Opts) ->
    Spec = make_spec(0, 1, Opts#{mode => process}),
    ets:insert(?POOLS, {Key, 1, atomics:new(3, []), Spec}),
    case py_pools_sup:start_pool(Key, Spec) of
        {ok, _} ->
            [Ctx] = contexts(Key),
            {ok, Ctx};
        {error, _} = Error ->
            ets:delete(?POOLS, Key),
            Error
    end.

start_new_pool(Pool, Size, Opts) ->
    {Entry, Spec} =
        case Opts of
            #{nodes := Nodes} ->
                S = #{size => Size, mode => maps:get(mode, Opts, process), nodes => Nodes,
                      retry => maps:get(node_retry, Opts, py_config:node_retry()),
                      opts => maps:without([nodes, node_retry], Opts)},
                {{Pool, {}, atomics:new(Size * length(Nodes) + 1, []), S}, S};
            _ ->
                %% Counters: 1 is the round-robin position, Slot + 2 the
                %% calls in flight on that slot, Size + 2 the slots'
                %% generation (generation_cell/3).
                S = make_spec(0, Size, Opts),
                {{Pool, Size, atomics:new(Size + 2, []), S}, S}
        end,
    ets:insert(?POOLS, Entry),
    case py_pools_sup:start_pool(Pool, Spec) of
        {ok, _} ->
            {ok, contexts(Pool)};
        {error, {{no_nodes, _} = Reason, _Child}} ->
            ets:delete(?POOLS, Pool),
            {error, Reason};
        {error, _} = Error ->
            ets:delete(?POOLS, Pool),
            Error
    end.

%% @doc Starts a node pool's share on this node for its owner (a py_node_pool).
%% On another node than the owner's, the member is a pool of its own, named by
%% its key, under this node's `py_pools_sup', with a watcher that stops it when
%% the owner goes or the owner's node disconnects. Called by the owner itself
%% (on its own node), the member's supervisor is linked to the owner instead,
%% and the owner passes its counters, so that local callers' in-flight counts
%% are the ones get_context/1 reads. Returns the member's supervisor, its key
%% and its contexts.
-spec start_member(member()) ->
          {ok, pid(), member_key(), [{non_neg_integer(), pid(), pid(), non_neg_integer()}]}
          | {error, term()}.
start_member(#{key := Key, base := Base, size := Size, opts := Opts, owner := Owner} = M) ->
    Supervised = self() =/= Owner,
    case whereis(py_pools_sup) of
        undefined ->
            {error, {not_started, erlang_python}};
        _ ->
            Spec = (make_spec(Base, Size, Opts))#{owner => Owner, member => Key,
                                                   watch => Supervised},
            Counters = case M of
                           #{counters := C} -> C;
                           _ -> atomics:new(Base + Size + 1, [])
                       end,
            ets:insert(?POOLS, {Key, Size, Counters, Spec}),
            Started = case Supervised of
                          true -> py_pools_sup:start_pool(Key, Spec);
                          false -> py_pool_sup:start_link(Key, Spec)
                      end,
            case Started of
                {ok, Sup} ->
                    {ok, Sup, Key, member_contexts(Key)};
                {error, _} = Error ->
                    ets:delete(?POOLS, Key),
                    Error
            end
    end.

%% @doc A member's contexts on this node, as `{Slot, Ctx, PortOwner, Local}'.
-spec member_contexts(member_key()) -> [{non_neg_integer(), pid(), pid(), non_neg_integer()}].
member_contexts(Key) ->
    [{Slot, Ctx, Owner, Local}
     || [Slot, Ctx] <- ets:match(?SLOTS, {{Key, '$1'}, '$2', '_'}),
        {ok, _, Owner, Local} <- [py_context:lookup(Ctx)]].

%% @doc Publishes the live contexts of node pool `Pool' (its owner calls this).
-spec set_live(atom(), tuple()) -> boolean().
set_live(Pool, Live) ->
    ets:update_element(?POOLS, Pool, {2, Live}).

%% @doc Stops a pool: its port programs exit (on every node of a node pool),
%% new calls to it get an error.
-spec stop_pool(atom() | member_key()) -> ok.
stop_pool(Pool) ->
    case ets:lookup(?POOLS, Pool) of
        [{_, _, Counters, Spec}] -> slots_changed(generation_cell(Pool, Spec, Counters));
        [] -> ok
    end,
    ets:delete(?POOLS, Pool),
    _ = py_pools_sup:stop_pool(Pool),
    ets:match_delete(?SLOTS, {{Pool, '_'}, '_', '_'}),
    ok.

-spec pool_started(atom()) -> boolean().
pool_started(Pool) ->
    ets:member(?POOLS, Pool).

%% @doc A context of the pool: the one this process used last if it is idle
%% (a caller calling in a loop stays with one port program, whose reading
%% thread is then still awake), else round-robin, skipping to an idle context
%% when the next one in turn has calls in flight. A slot whose context is
%% restarting is skipped; `{error, {context_starting, Pool}}' only when every
%% slot is (checkout/2 waits instead). A node pool chooses among
%% its live contexts round-robin the same way.
-spec get_context(atom()) -> pid() | {error, term()}.
get_context(Pool) ->
    case checkout(Pool) of
        {Ctx, _Route} when is_pid(Ctx) -> Ctx;
        Error -> Error
    end.

%% @doc get_context/1 with, for a context of this node's pool, its route
%% (what py_request would otherwise look up); `none' for a node pool's.
%% A process keeps the routes of the pools it calls in its dictionary, checked
%% against the pool's generation cell (one `atomics' read): no ETS per call.
-spec checkout(atom()) -> {pid(), py_request:route() | none} | {error, term()}.
checkout(Pool) ->
    case get({'$py_pool_routes', Pool}) of
        {Counters, Cell, Generation, Routes} ->
            case atomics:get(Counters, Cell) of
                Generation -> pick(Pool, Routes, Counters);
                _ -> checkout_fresh(Pool)
            end;
        _ ->
            checkout_fresh(Pool)
    end.

%% @doc A request to a context of the pool (py:call/eval/exec): it goes to a
%% live context, waiting within `Timeout' while every context is restarting.
%% A request that could not be written because its port program had just died
%% (nothing reached Python) goes to another context.
-spec call(atom(), py_request:builder(), timeout()) -> {ok, term()} | {error, term()}.
call(Pool, Build, Timeout) ->
    call(Pool, Build, Timeout, fun(_Ctx, Reply) -> Reply end).

%% @doc call/3 whose reply goes through `Then' with the context that gave it
%% (a schedule marker continues on that context: py_schedule).
-spec call(atom(), py_request:builder(), timeout(),
           fun((pid(), {ok, term()} | {error, term()}) -> Result)) -> Result | {error, term()}.
call(Pool, Build, Timeout, Then) ->
    call(Pool, Build, Timeout, Then, deadline(Timeout), 1).

call(Pool, Build, Timeout, Then, Deadline, Backoff) ->
    case checkout(Pool, Timeout) of
        {Ctx, {_, _, _, _} = Route, Left} ->
            case py_request:try_route(Route, Build, Left) of
                not_sent ->
                    %% The slot's port program is gone (its context's route
                    %% stays until the restart): choose again, not stuck to it.
                    erase({'$py_pool_routes', Pool}),
                    erase({'$py_pool_slot', Pool}),
                    case time_left(Deadline) of
                        0 -> {error, timeout};
                        Left1 ->
                            receive after min(Backoff, Left1) -> ok end,
                            call(Pool, Build, time_left(Deadline), Then, Deadline,
                                 min(Backoff * 2, 10))
                    end;
                Reply ->
                    Then(Ctx, Reply)
            end;
        {Ctx, none, Left} ->
            Then(Ctx, py_request:call(Ctx, Build, Left));
        Error ->
            Error
    end.

time_left(infinity) -> infinity;
time_left(Deadline) -> max(0, Deadline - erlang:monotonic_time(millisecond)).

%% @doc checkout/1 that, while every context of the pool is restarting (a
%% one-context pool whose port program died), waits up to `Timeout' ms for
%% one; returns the time left of `Timeout', or `{error, timeout}'.
-spec checkout(atom(), timeout()) ->
          {pid(), py_request:route() | none, timeout()} | {error, term()}.
checkout(Pool, Timeout) ->
    case checkout(Pool) of
        {Ctx, Route} when is_pid(Ctx) -> {Ctx, Route, Timeout};
        {error, {context_starting, _}} -> wait_checkout(Pool, deadline(Timeout), 1);
        Error -> Error
    end.

deadline(infinity) -> infinity;
deadline(Timeout) -> erlang:monotonic_time(millisecond) + Timeout.

%% A restart takes a few milliseconds (the port program answers requests only
%% once Python is up, but its contexts are routable as soon as it is spawned):
%% poll, backing off to 10 ms.
wait_checkout(Pool, Deadline, Sleep) ->
    Left = case Deadline of
               infinity -> infinity;
               _ -> Deadline - erlang:monotonic_time(millisecond)
           end,
    case Left of
        _ when is_integer(Left), Left =< 0 -> ok;
        _ -> receive after min(Sleep, Left) -> ok end  % an integer is less than infinity
    end,
    case checkout(Pool) of
        {Ctx, Route} when is_pid(Ctx) ->
            {Ctx, Route, time_left(Deadline)};
        {error, {context_starting, _}} when Left =:= infinity; Left > 0 ->
            wait_checkout(Pool, Deadline, min(Sleep * 2, 10));
        {error, {context_starting, _}} ->
            {error, timeout};
        Error ->
            Error
    end.

checkout_fresh(Pool) ->
    case ets:lookup(?POOLS, Pool) of
        [{_, Size, Counters, Spec}] when is_integer(Size) ->
            %% The generation first: a change after it shows at the next call.
            Generation = case generation_cell(Pool, Spec, Counters) of
                             {_, Cell} -> {Cell, atomics:get(Counters, Cell)};
                             none -> none
                         end,
            Routes = [case ets:lookup(?SLOTS, {Pool, Slot}) of
                          [{_, Pid, Route}] -> {Pid, Route};
                          [] -> {error, {context_starting, Pool}}
                      end || Slot <- lists:seq(0, Size - 1)],
            RoutesT = list_to_tuple(Routes),
            case {Generation, lists:keymember(error, 1, Routes)} of
                {{Cell1, Gen}, false} ->
                    put({'$py_pool_routes', Pool}, {Counters, Cell1, Gen, RoutesT}),
                    pick(Pool, RoutesT, Counters);
                {_, false} ->
                    erase({'$py_pool_routes', Pool}),
                    pick(Pool, RoutesT, Counters);
                {_, true} ->
                    %% A member is restarting: never choose its empty slot.
                    erase({'$py_pool_routes', Pool}),
                    pick_live(Pool, RoutesT, Counters)
            end;
        [{_, {}, _, _}] ->
            {error, {no_contexts, Pool}};
        [{_, Live, Counters, _}] ->
            Size = tuple_size(Live),
            Start = atomics:add_get(Counters, 1, 1) rem Size,
            I = idle_live(Live, Counters, Start, Size, 0, min(Size, 4), {Start, infinity}),
            {element(1, element(I + 1, Live)), none};
        [] ->
            {error, {pool_not_started, Pool}}
    end.

%% A process running a callback (py_callback) whose pick is busy goes to the
%% context of the callback's own port program instead, if the pool has it:
%% that context's thread waits for the callback and runs the request nested at
%% once, where a busy other context would queue it (and, if that context in
%% turn waited for a callback calling this pool, neither would ever finish).
pick(Pool, Routes, Counters) ->
    Slot = pick_slot(Pool, tuple_size(Routes), Counters),
    case get('$py_callback') of
        undefined ->
            element(Slot + 1, Routes);
        {Owner, _} ->
            case atomics:get(Counters, Slot + 2) of
                0 -> element(Slot + 1, Routes);
                _ -> own_route(Owner, Routes, tuple_size(Routes), element(Slot + 1, Routes))
            end
    end.

own_route(_Owner, _Routes, 0, Picked) ->
    Picked;
own_route(Owner, Routes, I, Picked) ->
    case element(I, Routes) of
        {_, {_, Owner, _, _}} = Own -> Own;
        _ -> own_route(Owner, Routes, I - 1, Picked)
    end.

%% A slot of `Routes' that has a context: the first idle one in round-robin
%% order, else the least loaded; else the error of an empty slot.
pick_live(Pool, Routes, Counters) ->
    Size = tuple_size(Routes),
    Start = atomics:add_get(Counters, 1, 1) rem Size,
    case live_slot(Routes, Counters, Start, Size, 0, none) of
        none ->
            {error, {context_starting, Pool}};
        {_, Slot} ->
            put({'$py_pool_slot', Pool}, Slot),
            element(Slot + 1, Routes)
    end.

live_slot(_Routes, _Counters, _Start, Size, Size, Best) ->
    Best;
live_slot(Routes, Counters, Start, Size, I, Best) ->
    Slot = (Start + I) rem Size,
    case element(Slot + 1, Routes) of
        {Pid, _} when is_pid(Pid) ->
            case {atomics:get(Counters, Slot + 2), Best} of
                {0, _} -> {0, Slot};
                {Load, {BestLoad, _}} when BestLoad =< Load ->
                    live_slot(Routes, Counters, Start, Size, I + 1, Best);
                {Load, _} ->
                    live_slot(Routes, Counters, Start, Size, I + 1, {Load, Slot})
            end;
        _ ->
            live_slot(Routes, Counters, Start, Size, I + 1, Best)
    end.

pick_slot(Pool, Size, Counters) ->
    Slot = case get({'$py_pool_slot', Pool}) of
               Last when is_integer(Last), Last < Size ->
                   case atomics:get(Counters, Last + 2) of
                       0 -> Last;
                       _ -> next_slot(Counters, Size)
                   end;
               _ ->
                   next_slot(Counters, Size)
           end,
    put({'$py_pool_slot', Pool}, Slot),
    Slot.

%% @doc The cell of a pool's counters that changes whenever one of its slots
%% gets or loses a context (callers' cached routes are then stale); `none' for
%% a node pool's member, whose counters are laid out by its owner.
-spec generation_cell(atom() | member_key(), spec() | map(), atomics:atomics_ref()) ->
          {atomics:atomics_ref(), pos_integer()} | none.
generation_cell(Pool, #{size := Size, ports := _} = Spec, Counters) when is_atom(Pool) ->
    case Spec of
        #{owner := _} -> none;
        _ -> {Counters, Size + 2}
    end;
generation_cell(_Pool, _Spec, _Counters) ->
    none.

%% @doc Marks a pool's slots changed (see generation_cell/3).
-spec slots_changed({atomics:atomics_ref(), pos_integer()} | none) -> ok.
slots_changed(none) ->
    ok;
slots_changed({Counters, Cell}) ->
    atomics:add(Counters, Cell, 1).

next_slot(Counters, Size) ->
    Start = atomics:add_get(Counters, 1, 1) rem Size,
    idle_slot(Counters, Start, Size, 0, min(Size, 4), {Start, infinity}).

%% The first of up to `Probes' slots from `Start' with no call in flight, else
%% the least loaded of them.
idle_slot(_Counters, _Start, _Size, Probes, Probes, {Best, _}) ->
    Best;
idle_slot(Counters, Start, Size, I, Probes, {_, BestLoad} = Best) ->
    Slot = (Start + I) rem Size,
    case atomics:get(Counters, Slot + 2) of
        0 -> Slot;
        Load when Load < BestLoad -> idle_slot(Counters, Start, Size, I + 1, Probes, {Slot, Load});
        _ -> idle_slot(Counters, Start, Size, I + 1, Probes, Best)
    end.

%% idle_slot/6 over the live contexts of a node pool.
idle_live(_Live, _Counters, _Start, _Size, Probes, Probes, {Best, _}) ->
    Best;
idle_live(Live, Counters, Start, Size, I, Probes, {_, BestLoad} = Best) ->
    N = (Start + I) rem Size,
    case atomics:get(Counters, element(2, element(N + 1, Live))) of
        0 -> N;
        Load when Load < BestLoad -> idle_live(Live, Counters, Start, Size, I + 1, Probes, {N, Load});
        _ -> idle_live(Live, Counters, Start, Size, I + 1, Probes, Best)
    end.

%% @doc The context in slot `N' (1-based) of the pool; of a node pool, its
%% `N'th live context.
-spec context(atom(), pos_integer()) -> pid() | {error, term()}.
context(Pool, N) when is_integer(N), N >= 1 ->
    case live(Pool) of
        Live when is_tuple(Live), N =< tuple_size(Live) ->
            element(1, element(N, Live));
        Live when is_tuple(Live) ->
            {error, {no_context, Pool, N}};
        local ->
            case ets:lookup(?SLOTS, {Pool, N - 1}) of
                [{_, Pid, _}] -> Pid;
                [] ->
                    %% restarting (no route): its handle, the pid that stays
                    case py_context_handle:of_slot(Pool, N - 1) of
                        {ok, Handle} -> Handle;
                        error -> {error, {no_context, Pool, N}}
                    end
            end
    end.

%% @doc The pool's contexts in slot order; of a node pool, only the live ones.
-spec contexts(atom()) -> [pid()].
contexts(Pool) ->
    case live(Pool) of
        Live when is_tuple(Live) ->
            [Ctx || {Ctx, _} <- tuple_to_list(Live)];
        local ->
            %% a restarting slot has no route: its handle stands for it
            Handles = ets:match(py_context_handles, {{Pool, '$1'}, '$2'}),
            Slots = ets:match(?SLOTS, {{Pool, '$1'}, '$2', '_'}),
            BySlot = maps:from_list([{Slot, Pid} || [Slot, Pid] <- Handles ++ Slots]),
            [Pid || {_, Pid} <- lists:keysort(1, maps:to_list(BySlot))]
    end.

%% @doc The pool's size; of a node pool, how many of its contexts are live.
-spec num_contexts(atom()) -> non_neg_integer().
num_contexts(Pool) ->
    case ets:lookup(?POOLS, Pool) of
        [{_, Size, _, _}] when is_integer(Size) -> Size;
        [{_, Live, _, _}] -> tuple_size(Live);
        [] -> 0
    end.

-spec spec(atom()) -> {ok, spec()} | error.
spec(Pool) ->
    case ets:lookup(?POOLS, Pool) of
        [{_, _, _, Spec}] -> {ok, Spec};
        [] -> error
    end.

%% Internal

live(Pool) ->
    try ets:lookup_element(?POOLS, Pool, 2) of
        Live when is_tuple(Live) -> Live;
        _ -> local
    catch
        error:badarg -> local
    end.

make_spec(Base, Size, Opts) ->
    Mode = maps:get(mode, Opts, process),
    Slots = lists:seq(Base, Base + Size - 1),
    Ports = case Mode of
                worker -> [Slots];
                _ -> [[S] || S <- Slots]
            end,
    (maps:with([interrupt_grace], Opts))#{
      size => Size,
      mode => Mode,
      ports => Ports,
      python_path => maps:get(python_path, Opts,
                              application:get_env(erlang_python, python_path, []))
                     ++ venv_site_packages(maps:get(venv, Opts, undefined)),
      max_memory => maps:get(max_memory, Opts, undefined),
      backend => case py_driver:backend(Mode, Opts) of
                     {ok, Backend} -> Backend;
                     {error, _} -> port
                 end,
      env => [{to_list(K), to_list(V)} || {K, V} <- maps:to_list(maps:get(env, Opts, #{}))]}.

%% A virtualenv's packages are its lib/pythonX.Y/site-packages.
venv_site_packages(undefined) -> [];
venv_site_packages(Venv) ->
    filelib:wildcard(filename:join([to_list(Venv), "lib", "python3*", "site-packages"])).

to_list(false) -> false;
to_list(V) when is_binary(V) -> binary_to_list(V);
to_list(V) when is_atom(V) -> atom_to_list(V);
to_list(V) when is_integer(V) -> integer_to_list(V);
to_list(V) -> V.
