%% @doc The import and path registry: modules to import and directories to
%% put on `sys.path' in every context, the running ones at once and every
%% context started or restarted later (before its first request).
%%
%% App env `imports' (`[Module | {Module, Function}]') and `paths' are
%% registered at start. Names and paths are kept as binaries, in the order
%% they were registered.
-module(py_import).

-export([ensure_imported/1, ensure_imported/2, is_imported/1, is_imported/2,
         all_imports/0, import_list/0, clear_imports/0,
         add_path/1, add_paths/1, all_paths/0, is_path_added/1, clear_paths/0,
         load_env/0]).

-define(TABLE, py_registry).  %% {{import, Mod, Fun | all}, Seq}, {{path, Path}, Seq}, {preload, Code}

-type name() :: atom() | binary() | string().

%% @doc Imports `Module' in every context.
-spec ensure_imported(name()) -> ok | {error, term()}.
ensure_imported(Module) ->
    register_import(Module, all).

%% @doc Imports `Module' and looks `Function' up in every context.
-spec ensure_imported(name(), name()) -> ok | {error, term()}.
ensure_imported(Module, Function) ->
    register_import(Module, Function).

-spec is_imported(name()) -> boolean().
is_imported(Module) ->
    case bin(Module) of
        {ok, M} -> ets:select_count(?TABLE, [{{{import, M, '_'}, '_'}, [], [true]}]) > 0;
        _ -> false
    end.

-spec is_imported(name(), name()) -> boolean().
is_imported(Module, Function) ->
    case {bin(Module), bin(Function)} of
        {{ok, M}, {ok, F}} -> ets:member(?TABLE, {import, M, F});
        _ -> false
    end.

%% @doc The registered imports in registration order: `{Module, all}' for a
%% whole module, `{Module, Function}' for a function.
-spec all_imports() -> [{binary(), binary() | all}].
all_imports() ->
    [{M, F} || {{import, M, F}, _} <- ordered(import)].

%% @doc The registered imports grouped by module.
-spec import_list() -> {ok, #{binary() => [binary()]}}.
import_list() ->
    {ok, lists:foldl(fun({M, all}, Acc) -> maps:update_with(M, fun(Fs) -> Fs end, [], Acc);
                        ({M, F}, Acc) -> maps:update_with(M, fun(Fs) -> Fs ++ [F] end, [F], Acc)
                     end, #{}, all_imports())}.

%% @doc Forgets the imports (contexts keep what they imported).
-spec clear_imports() -> ok.
clear_imports() ->
    ets:match_delete(?TABLE, {{import, '_', '_'}, '_'}),
    ok.

%% @doc Puts `Path' on `sys.path' in every context.
-spec add_path(name()) -> ok | {error, term()}.
add_path(Path) ->
    add_paths([Path]).

%% @doc Puts `Paths' on `sys.path' in every context, in their order.
-spec add_paths([name()]) -> ok | {error, term()}.
add_paths(Paths) when is_list(Paths) ->
    case lists:foldr(fun(P, {ok, Acc}) ->
                             case bin(P) of
                                 {ok, B} -> {ok, [B | Acc]};
                                 error -> {error, {badarg, P}}
                             end;
                        (_, Error) -> Error
                     end, {ok, []}, Paths) of
        {ok, Bins} ->
            New = [B || B <- Bins, not ets:member(?TABLE, {path, B})],
            [ets:insert(?TABLE, {{path, B}, seq()}) || B <- New],
            broadcast(py_context_init:paths_request(New));
        Error ->
            Error
    end;
add_paths(Paths) ->
    {error, {badarg, Paths}}.

%% @doc The registered paths in registration order.
-spec all_paths() -> [binary()].
all_paths() ->
    [P || {{path, P}, _} <- ordered(path)].

-spec is_path_added(name()) -> boolean().
is_path_added(Path) ->
    case bin(Path) of
        {ok, B} -> ets:member(?TABLE, {path, B});
        error -> false
    end.

%% @doc Forgets the paths (contexts keep their `sys.path').
-spec clear_paths() -> ok.
clear_paths() ->
    ets:match_delete(?TABLE, {{path, '_'}, '_'}),
    ok.

%% @doc Registers the app env `imports' and `paths' (at application start).
-spec load_env() -> ok.
load_env() ->
    Env = fun(K) -> application:get_env(erlang_python, K, []) end,
    _ = add_paths(Env(paths)),
    _ = [case I of
             {M, F} -> ensure_imported(M, F);
             M -> ensure_imported(M)
         end || I <- Env(imports)],
    ok.

%% Internal

register_import(Module, Function) ->
    case {bin(Module), Function =:= all orelse bin(Function)} of
        {{ok, <<"__main__">>}, _} ->
            {error, main_not_cacheable};
        {{ok, M}, Fun} when Fun =:= true; element(1, Fun) =:= ok ->
            F = case Fun of true -> all; {ok, B} -> B end,
            case ets:member(?TABLE, {import, M, F}) of
                true -> ok;
                false ->
                    ets:insert(?TABLE, {{import, M, F}, seq()}),
                    broadcast(py_context_init:imports_request([{M, F}]))
            end;
        _ ->
            {error, {badarg, {Module, Function}}}
    end.

%% To every context running now (a new one gets the registry when it starts).
broadcast(Build) ->
    _ = [py_context_init:send(Port, Local, Build)
         || [Port, Local] <- ets:match(py_contexts, {'_', '$1', '_', '$2', '_'}), is_port(Port)],
    ok.

ordered(Kind) ->
    Rows = ets:select(?TABLE, [{{{Kind, '_'}, '_'}, [], ['$_']},
                               {{{Kind, '_', '_'}, '_'}, [], ['$_']}]),
    lists:keysort(2, Rows).

seq() ->
    erlang:unique_integer([monotonic]).

bin(A) when is_atom(A) -> {ok, atom_to_binary(A, utf8)};
bin(B) when is_binary(B) -> {ok, B};
bin(L) when is_list(L) ->
    case unicode:characters_to_binary(L) of
        B when is_binary(B) -> {ok, B};
        _ -> error
    end;
bin(_) -> error.
