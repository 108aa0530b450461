%% @doc Process-bound namespaces, environments and interrupts.
%%
%% `py:exec/eval' and calls of `'__main__'' run in a namespace of the calling
%% process on that context (spec/PROTOCOL.md, "Namespaces"): the request
%% carries the caller's pid as its namespace key, the port program makes the
%% namespace on first use (a copy of the context's shared namespace) and
%% drops it on `[9, Ctx, Key]'. That frame is sent by the context's process
%% (its stable handle, or for a node pool's member its incarnation), which
%% monitors each process once, when the process first uses the context (it
%% tells it once: a flag in its dictionary). An environment of
%% py_context:create_local_env/1 is a namespace under a reference of its own,
%% dropped when the process that created it exits. Env `shared' is the
%% context's shared namespace (preload code runs there).
-module(py_ns).

-include("py_protocol.hrl").

-export([trailer/1, own_trailer/1, extend/2, eval/5, exec/4, interrupt/1, new_env/1,
         watch/2, down/2]).

-define(WATCHED(Ctx), {'$py_ns_watched', Ctx}).
-define(TABLE, '$py_ns_keys').  %% in the context process: #{Pid => [Key]}

%% @doc The trailing elements of a request made with options `Opts' for
%% context `Ctx' (`env', `return'): `[]' when it needs no namespace.
-spec trailer(map()) -> {ok, list()} | {error, term()}.
trailer(#{ctx := Ctx} = Opts) ->
    Ret = case maps:get(return, Opts, value) of
              ref -> [true];
              value -> [];
              Other -> {error, {badarg, {return, Other}}}
          end,
    case {maps:get(env, Opts, undefined), Ret} of
        {_, {error, _} = Error} -> Error;
        {undefined, []} ->
            case maps:get(main, Opts, false) of
                true -> {ok, own_trailer(Ctx)};
                false -> {ok, []}
            end;
        {undefined, _} -> {ok, own_trailer(Ctx) ++ Ret};
        {shared, _} -> {ok, [nil, nil | Ret]};
        {{py_env, Ctx, Ref}, _} -> {ok, [nil, Ref | Ret]};
        {Env, _} -> {error, {badarg, {env, Env}}}
    end.

%% @doc The trailer naming the caller's own namespace on `Ctx' (which then
%% watches the caller, once).
-spec own_trailer(pid()) -> list().
own_trailer(Ctx) ->
    case get(?WATCHED(Ctx)) of
        undefined ->
            Ctx ! {py_ns_watch, self(), self()},
            put(?WATCHED(Ctx), true);
        _ ->
            ok
    end,
    [nil, self()].

%% @doc A request builder with `Trailer' after the message's own elements.
-spec extend(py_request:builder(), list()) -> py_request:builder().
extend(Build, []) ->
    Build;
extend(Build, Trailer) ->
    fun(Local) ->
            Inner = Build(Local),
            fun(Ref) -> Inner(Ref) ++ Trailer end
    end.

%% @doc eval in an environment (py_context:eval/5).
-spec eval(pid(), iodata(), map(), timeout(), py_context:env() | shared) -> py:result().
eval(Ctx, Code, Locals, Timeout, Env) ->
    case {py:code(Code), trailer(#{ctx => Ctx, env => Env})} of
        {{ok, Bin}, {ok, Trailer}} when is_map(Locals) ->
            py:request(Ctx, fun(L) -> fun(R) -> [?PY_MSG_EVAL, R, L, Bin, Locals | Trailer] end end, Timeout);
        {{ok, _}, {ok, _}} -> {error, {badarg, Locals}};
        {{ok, _}, Error} -> Error;
        {Error, _} -> Error
    end.

%% @doc exec in an environment (py_context:exec/3).
-spec exec(pid(), iodata(), timeout(), py_context:env() | shared) -> ok | {error, term()}.
exec(Ctx, Code, Timeout, Env) ->
    case {py:code(Code), trailer(#{ctx => Ctx, env => Env})} of
        {{ok, Bin}, {ok, Trailer}} ->
            case py:request(Ctx, fun(L) -> fun(R) -> [?PY_MSG_EXEC, R, L, Bin | Trailer] end end, Timeout) of
                {ok, _} -> ok;
                Error -> Error
            end;
        {{ok, _}, Error} -> Error;
        {Error, _} -> Error
    end.

%% @doc py:interrupt/1: `[10, ReqId, Ctx]', answered by the port program's
%% reading thread at once (not queued behind the running request).
-spec interrupt(pid()) -> ok | not_running | {error, term()}.
interrupt(Ctx) when is_pid(Ctx) ->
    case py_request:send(Ctx, fun(L) -> fun(R) -> [?PY_MSG_INTERRUPT, R, L] end end) of
        {ok, Ref} ->
            case py_request:wait(Ref, 5000) of
                {ok, true} -> ok;
                {ok, false} -> not_running;
                Error -> Error
            end;
        Error ->
            Error
    end;
interrupt(Ctx) ->
    {error, {badarg, Ctx}}.

%% @doc A new environment on `Ctx', dropped when the calling process exits.
-spec new_env(pid()) -> py_context:env().
new_env(Ctx) ->
    Ref = make_ref(),
    Ctx ! {py_ns_watch, self(), Ref},
    {py_env, Ctx, Ref}.

%% @doc In a context's process: `Pid' uses namespace `Key' here.
-spec watch(pid(), term()) -> ok.
watch(Pid, Key) ->
    Keys = case get(?TABLE) of undefined -> #{}; K -> K end,
    case Keys of
        #{Pid := Ks} ->
            put(?TABLE, Keys#{Pid := lists:usort([Key | Ks])});
        _ ->
            _ = erlang:monitor(process, Pid),
            put(?TABLE, Keys#{Pid => [Key]})
    end,
    ok.

%% @doc In a context's process (`Ctx' its pid as users hold it): `Pid'
%% exited; its namespaces are dropped. False if `Pid' was not watched.
-spec down(pid(), pid()) -> boolean().
down(Pid, Ctx) ->
    Keys = case get(?TABLE) of undefined -> #{}; K -> K end,
    case maps:take(Pid, Keys) of
        {Ks, Rest} ->
            put(?TABLE, Rest),
            case py_context:lookup(Ctx) of
                {ok, Port, _Owner, Local} when is_port(Port) ->
                    [catch erlang:port_command(Port, py_msgpack:encode([?PY_MSG_DROP_NAMESPACE, Local, K])) || K <- Ks];
                _ ->
                    ok
            end,
            true;
        error ->
            false
    end.
