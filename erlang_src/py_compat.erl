%% @doc The parts of the reference's `py' API that are more than a call:
%% call options, the process's own context, parallel/1, reload/1.
-module(py_compat).

-export([call_opts/5, sticky_target/0, context/0, parallel/1, reload/1]).

%% @doc py:call(Ctx, Module, Function, Args, Opts): `kwargs', `timeout',
%% `return' (`value', or `ref' for a reference to the result) and `env' (an
%% environment of py_context:create_local_env/1).
-spec call_opts(pid(), py:name(), py:name(), list(), map()) -> py:result().
call_opts(Ctx, Module, Function, Args, Opts) ->
    Timeout = maps:get(timeout, Opts, py_config:call_timeout()),
    {Msg, Main} = case py:call_msg(Module, Function, Args, maps:get(kwargs, Opts, #{})) of
                      {ns, B} -> {B, true};
                      Other -> {Other, false}
                  end,
    case {Msg, py_ns:trailer(Opts#{ctx => Ctx, main => Main})} of
        {Build, {ok, Trailer}} when is_function(Build) ->
            Result = py:request(Ctx, py_ns:extend(Build, Trailer), Timeout),
            py_ref:wrap(Ctx, Opts, Result);
        {Build, Error} when is_function(Build) ->
            Error;
        {Error, _} ->
            Error
    end.

%% @doc Where a request that uses the caller's namespace goes when it names
%% no context: the process's context of the default pool (py_affinity).
-spec sticky_target() -> {sticky, atom()}.
sticky_target() ->
    {sticky, default}.

%% @doc py:context/0.
-spec context() -> pid() | {error, term()}.
context() ->
    py_affinity:sticky(default).

%% @doc py:parallel/1: one process per call, each on a context of the pool
%% its function routes to (the default pool unless registered otherwise).
-spec parallel(list()) -> {ok, [py:result()]} | {error, term()}.
parallel(Calls) when is_list(Calls) ->
    case [C || C <- Calls, not valid_call(C)] of
        [] ->
            Max = py_semaphore:max_concurrent(),
            Current = py_semaphore:current(),
            case Current + length(Calls) > Max of
                true ->
                    {error, {overloaded, Current, Max}};
                false ->
                    Pids = [spawn_monitor(fun() -> exit({result, run(Call)}) end)
                            || Call <- Calls],
                    {ok, [receive
                              {'DOWN', Ref, process, Pid, {result, R}} -> R;
                              {'DOWN', Ref, process, Pid, Reason} -> {error, Reason}
                          end || {Pid, Ref} <- Pids]}
            end;
        [Bad | _] ->
            {error, {badarg, Bad}}
    end;
parallel(Calls) ->
    {error, {badarg, Calls}}.

valid_call({_, _, Args}) -> is_list(Args);
valid_call({_, _, Args, Kwargs}) -> is_list(Args) andalso is_map(Kwargs);
valid_call(_) -> false.

run({M, F, A}) -> py:call(M, F, A);
run({M, F, A, K}) -> py:call(M, F, A, K).

%% @doc py:reload/1: reloads `Module' in every port program of this node
%% that has imported it (each once).
-spec reload(py:name()) -> ok | {error, term()}.
reload(Module) when is_atom(Module); is_binary(Module) ->
    Name = case Module of
               A when is_atom(A) -> atom_to_binary(A, utf8);
               B -> B
           end,
    %% one context per port program: modules are per port program
    Ctxs = maps:values(maps:from_list(
                         [{Owner, Ctx} || [Ctx, Port, Owner] <- ets:match(py_contexts, {'$1', '$2', '$3', '_', '_'}),
                                          is_port(Port)])),
    Errors = [E || Ctx <- Ctxs,
                   {error, _} = E <- [py:call(Ctx, 'erlang._setup', reload, [Name])],
                   element(2, E) =/= {no_context, Ctx}],
    case Errors of
        [] -> ok;
        [E | _] -> E
    end;
reload(Module) ->
    {error, {badarg, Module}}.
