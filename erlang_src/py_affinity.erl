%% @doc Which context a process's calls go to when it names no context.
%%
%% - A process may *bind* a context for a pool
%%   (py_context_router:bind_context/1,2): every call it routes to that pool
%%   goes there, until it unbinds.
%% - Otherwise requests that use the caller's namespace (py:exec/1,
%%   py:eval/1,2,3, calls of `'__main__'') go to the process's *sticky*
%%   context of the pool: chosen on its first such request and kept for the
%%   process's life (while that context exists), so that what `exec' defined
%%   is there for the next `eval' whatever the load. Stateless calls
%%   (`py:call(math, sqrt, [2])') keep the load-balanced choice of py_pool.
%%
%% Both live in the process dictionary: no server, no ETS write.
-module(py_affinity).

-export([bind/2, unbind/1, bound/1, sticky/1]).

-define(BOUND(Pool), {py_bound_context, Pool}).
-define(STICKY(Pool), {'$py_sticky_context', Pool}).

%% @doc Binds `Ctx' for `Pool' in the calling process.
-spec bind(atom(), pid()) -> ok | {error, term()}.
bind(Pool, Ctx) when is_atom(Pool), is_pid(Ctx) ->
    put(?BOUND(Pool), Ctx),
    ok;
bind(Pool, Ctx) ->
    {error, {badarg, {Pool, Ctx}}}.

-spec unbind(atom()) -> ok.
unbind(Pool) ->
    erase(?BOUND(Pool)),
    ok.

%% @doc The context bound for `Pool', or `undefined'.
-spec bound(atom()) -> pid() | undefined.
bound(Pool) ->
    get(?BOUND(Pool)).

%% @doc The bound context, else this process's sticky context of `Pool'.
-spec sticky(atom()) -> pid() | {error, term()}.
sticky(Pool) ->
    case get(?BOUND(Pool)) of
        undefined ->
            case get(?STICKY(Pool)) of
                Ctx when is_pid(Ctx) ->
                    case ets:member(py_contexts, Ctx) of
                        true -> Ctx;
                        false -> choose(Pool)
                    end;
                _ ->
                    choose(Pool)
            end;
        Ctx ->
            Ctx
    end.

choose(Pool) ->
    case py_pool:get_context(Pool) of
        Ctx when is_pid(Ctx) -> put(?STICKY(Pool), Ctx), Ctx;
        Error -> Error
    end.
