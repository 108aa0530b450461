%% @doc Pools of Python contexts: how they map onto port programs, and choosing
%% a context without a message to any server (ETS and atomics only).
-module(py_pool).

-export([init_tables/0, start_default/0, start_pool/3, stop_pool/1, pool_started/1,
         get_context/1, context/2, contexts/1, num_contexts/1, spec/1]).
-export_type([spec/0, mode/0]).

-type mode() :: process | worker.
-type spec() :: #{size := pos_integer(),
                  mode := mode(),
                  ports := [[non_neg_integer()]],
                  python_path := [file:filename_all()],
                  max_memory := pos_integer() | undefined,
                  env := [{string(), string() | false}]}.

-define(POOLS, py_pools).        %% {Pool, Size, Counter, Spec}
-define(SLOTS, py_pool_slots).   %% {{Pool, Slot}, ContextPid}

%% @doc Creates the tables shared by pools and contexts (owned by the top supervisor).
-spec init_tables() -> ok.
init_tables() ->
    Opts = [named_table, public, set, {read_concurrency, true}],
    _ = [ets:new(T, Opts) || T <- [?POOLS, ?SLOTS, py_contexts, py_ports, py_functions, py_pool_routes],
                             ets:info(T) =:= undefined],
    %% {Caller, Load} of every pool call in flight (py_inflight)
    _ = [ets:new(py_inflight, [named_table, public, set, {write_concurrency, true}])
         || ets:info(py_inflight) =:= undefined],
    ok.

%% @doc Starts the `default' and `io' pools from the application environment; `ignore'
%% keeps the supervisor child slot so a restart of the pools recreates it.
-spec start_default() -> ignore | {error, term()}.
start_default() ->
    Env = fun(K, D) -> application:get_env(erlang_python, K, D) end,
    Default = py_context_router:start_pool(
                default, Env(default_pool_size, erlang:system_info(schedulers)),
                Env(default_pool_mode, auto)),
    IO = py_context_router:start_pool(io, Env(io_pool_size, 10), Env(io_pool_mode, auto)),
    case {Default, IO} of
        {{ok, _}, {ok, _}} -> ignore;
        {{error, _} = Error, _} -> Error;
        {_, Error} -> Error
    end.

%% @doc Starts pool `Pool' of `Size' contexts.
-spec start_pool(atom(), pos_integer(), map()) -> {ok, [pid()]} | {error, term()}.
start_pool(Pool, Size, Opts) when is_atom(Pool), is_integer(Size), Size > 0, is_map(Opts) ->
    case pool_started(Pool) of
        true ->
            {error, {already_started, Pool}};
        false ->
            Spec = make_spec(Size, Opts),
            %% Counters: 1 is the round-robin position, Slot + 2 the calls in
            %% flight on that slot.
            ets:insert(?POOLS, {Pool, Size, atomics:new(Size + 1, []), Spec}),
            case py_pools_sup:start_pool(Pool, Spec) of
                {ok, _} ->
                    {ok, contexts(Pool)};
                {error, _} = Error ->
                    ets:delete(?POOLS, Pool),
                    Error
            end
    end;
start_pool(Pool, Size, Opts) ->
    {error, {badarg, {Pool, Size, Opts}}}.

%% @doc Stops a pool: its port programs exit, new calls to it get an error.
-spec stop_pool(atom()) -> ok.
stop_pool(Pool) ->
    ets:delete(?POOLS, Pool),
    _ = py_pools_sup:stop_pool(Pool),
    ets:match_delete(?SLOTS, {{Pool, '_'}, '_'}),
    ok.

-spec pool_started(atom()) -> boolean().
pool_started(Pool) ->
    ets:member(?POOLS, Pool).

%% @doc A context of the pool: round-robin, skipping to an idle context when
%% the next one in turn has calls in flight.
-spec get_context(atom()) -> pid() | {error, term()}.
get_context(Pool) ->
    case ets:lookup(?POOLS, Pool) of
        [{_, Size, Counters, _}] ->
            Start = atomics:add_get(Counters, 1, 1) rem Size,
            Slot = idle_slot(Counters, Start, Size, 0, min(Size, 4), {Start, infinity}),
            case ets:lookup(?SLOTS, {Pool, Slot}) of
                [{_, Pid}] -> Pid;
                [] -> {error, {context_starting, Pool}}
            end;
        [] ->
            {error, {pool_not_started, Pool}}
    end.

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

%% @doc The context in slot `N' (1-based) of the pool.
-spec context(atom(), pos_integer()) -> pid() | {error, term()}.
context(Pool, N) when is_integer(N), N >= 1 ->
    case ets:lookup(?SLOTS, {Pool, N - 1}) of
        [{_, Pid}] -> Pid;
        [] -> {error, {no_context, Pool, N}}
    end.

-spec contexts(atom()) -> [pid()].
contexts(Pool) ->
    Slots = ets:match(?SLOTS, {{Pool, '$1'}, '$2'}),
    [Pid || {_, Pid} <- lists:keysort(1, [{Slot, Pid} || [Slot, Pid] <- Slots])].

-spec num_contexts(atom()) -> non_neg_integer().
num_contexts(Pool) ->
    case ets:lookup(?POOLS, Pool) of
        [{_, Size, _, _}] -> Size;
        [] -> 0
    end.

-spec spec(atom()) -> {ok, spec()} | error.
spec(Pool) ->
    case ets:lookup(?POOLS, Pool) of
        [{_, _, _, Spec}] -> {ok, Spec};
        [] -> error
    end.

%% Internal

make_spec(Size, Opts) ->
    Mode = maps:get(mode, Opts, process),
    Slots = lists:seq(0, Size - 1),
    Ports = case Mode of
                worker -> [Slots];
                _ -> [[S] || S <- Slots]
            end,
    #{size => Size,
      mode => Mode,
      ports => Ports,
      python_path => maps:get(python_path, Opts,
                              application:get_env(erlang_python, python_path, []))
                     ++ venv_site_packages(maps:get(venv, Opts, undefined)),
      max_memory => maps:get(max_memory, Opts, undefined),
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
