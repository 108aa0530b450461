%% @doc Python code every context runs when it starts (or restarts), before
%% any request: its imports, functions and variables are in the context's
%% shared namespace, which every process's namespace starts as a copy of.
%% Setting or clearing it affects contexts started later, not running ones.
-module(py_preload).

-export([set_code/1, get_code/0, clear_code/0, has_preload/0]).

-define(TABLE, py_registry).

%% @doc Sets the preload code.
-spec set_code(iodata()) -> ok | {error, term()}.
set_code(Code) ->
    try iolist_to_binary(Code) of
        Bin -> ets:insert(?TABLE, {preload, Bin}), ok
    catch
        error:badarg -> {error, {badarg, Code}}
    end.

%% @doc The preload code, or `undefined'.
-spec get_code() -> binary() | undefined.
get_code() ->
    case ets:lookup(?TABLE, preload) of
        [{_, Code}] -> Code;
        [] -> undefined
    end.

-spec clear_code() -> ok.
clear_code() ->
    ets:delete(?TABLE, preload),
    ok.

-spec has_preload() -> boolean().
has_preload() ->
    ets:member(?TABLE, preload).
