%% @doc What every context runs before any request: the paths and imports of
%% py_import, then the code of py_preload. Sent by each new incarnation of a
%% context (py_context:init/1) straight to its port, before its route is
%% published, so nothing a caller sends can overtake it. Each is a cast: a
%% failure is written to the context's stderr (the Erlang log).
-module(py_context_init).

-include("py_protocol.hrl").

-export([apply_all/2, send/3, paths_request/1, imports_request/1]).

-type builder() :: fun((non_neg_integer()) -> list()).

%% @doc Sends the registered set-up to context `Local' of `Port'.
-spec apply_all(port(), non_neg_integer()) -> ok.
apply_all(Port, Local) ->
    Requests = [case py_import:all_paths() of
                    [] -> none;
                    Paths -> paths_request(Paths)
                end,
                case py_import:all_imports() of
                    [] -> none;
                    Imports -> imports_request(Imports)
                end,
                case py_preload:get_code() of
                    undefined -> none;
                    Code -> fun(L) -> [?PY_MSG_EXEC, none, L, Code] end
                end],
    _ = [send(Port, Local, B) || B <- Requests, B =/= none],
    ok.

%% @doc Writes a cast built by `Build' to context `Local' of `Port'.
-spec send(port(), non_neg_integer(), builder()) -> ok.
send(Port, Local, Build) ->
    catch erlang:port_command(Port, py_msgpack:encode(Build(Local))),
    ok.

-spec paths_request([binary()]) -> builder().
paths_request(Paths) ->
    setup_call(<<"add_paths">>, [Paths]).

-spec imports_request([{binary(), binary() | all}]) -> builder().
imports_request(Imports) ->
    setup_call(<<"import_modules">>,
               [[{M, case F of all -> none; _ -> F end} || {M, F} <- Imports]]).

setup_call(Function, Args) ->
    fun(L) -> [?PY_MSG_CALL, none, L, <<"erlang._setup">>, Function, Args, #{}] end.
