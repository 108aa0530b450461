%% @doc Node-wide Python setup: code that every context of the node runs, now
%% and in every port program started later (logging configuration, tracing,
%% an activated virtual environment).
%%
%% `put(Key, Code)' stores `Code' under `Key' in `py_setup' and runs it in
%% every context of this node; a port program starting later runs the stored
%% code of each key, in key order, in each of its contexts before any request
%% (py_port sends it right after its hello). The code must therefore be
%% idempotent. `delete(Key, Undo)' forgets it and runs `Undo' everywhere.
-module(py_setup).

-include("py_protocol.hrl").

-export([put/2, delete/2, run_everywhere/1, codes/0, local_contexts/0]).

-define(TABLE, py_setup).

-spec put(atom(), binary()) -> ok | {error, term()}.
put(Key, Code) when is_binary(Code) ->
    true = ets:insert(?TABLE, {Key, Code}),
    run_everywhere(Code).

-spec delete(atom(), binary()) -> ok | {error, term()}.
delete(Key, Undo) when is_binary(Undo) ->
    true = ets:delete(?TABLE, Key),
    run_everywhere(Undo).

%% @doc Runs `Code' in every context of this node, concurrently; `ok' or the
%% first error.
-spec run_everywhere(binary()) -> ok | {error, term()}.
run_everywhere(Code) ->
    Timeout = py_config:call_timeout(),
    Refs = [{Ctx, py_request:send(Ctx, fun(C) -> fun(R) -> [?PY_MSG_EXEC, R, C, Code] end end)}
            || Ctx <- local_contexts()],
    Results = [case Sent of
                   {ok, Ref} -> py_request:wait(Ref, Timeout);
                   Error -> Error
               end || {_, Sent} <- Refs],
    case [E || {error, Reason} = E <- Results, not gone(Reason)] of
        [] -> ok;
        [Error | _] -> Error
    end.

%% @doc The stored code, in key order (for a port program that starts).
-spec codes() -> [binary()].
codes() ->
    try [Code || {_, Code} <- ets:tab2list(?TABLE)]
    catch error:badarg -> []
    end.

%% @doc The contexts of every pool whose port program runs on this node.
-spec local_contexts() -> [pid()].
local_contexts() ->
    [Ctx || {Ctx, Port, _, _, _} <- ets:tab2list(py_contexts), is_port(Port)].

%% A context that stopped meanwhile (a pool stopped) is not a failure: a new
%% one runs the stored code when it starts.
gone({python_died, _}) -> true;
gone({no_context, _}) -> true;
gone(noproc) -> true;
gone(_) -> false.
