%% @doc The built-in callback functions the Python package `erlang' uses:
%% `erlang.call("_py.<name>", ...)' reaches them like a registered function
%% (py_callback:lookup/1 falls back to this module), but they cannot be
%% unregistered or replaced, and `erlang.<name>' never finds them.
-module(py_builtins).

-export([lookup/1]).

%% @doc The built-in function named `Name', if any.
-spec lookup(binary()) -> {ok, fun((list()) -> term())} | error.
lookup(<<"_py.", Name/binary>>) ->
    case builtin(Name) of
        undefined -> error;
        Fun -> {ok, Fun}
    end;
lookup(_) ->
    error.

%% Shared state (erlang.state_*)
builtin(<<"state_get">>) -> fun([K]) -> case py_state:fetch(K) of {ok, V} -> V; _ -> none end end;
builtin(<<"state_set">>) -> fun([K, V]) -> py_state:store(K, V) end;
builtin(<<"state_delete">>) -> fun([K]) -> py_state:remove(K) end;
builtin(<<"state_keys">>) -> fun([]) -> py_state:keys() end;
builtin(<<"state_clear">>) -> fun([]) -> py_state:clear() end;
builtin(<<"state_incr">>) -> fun([K, N]) -> py_state:incr(K, N) end;
%% SharedDict
builtin(<<"sd_get">>) -> fun([D, K]) -> py_shared_dict:lookup(D, K) end;
builtin(<<"sd_set">>) -> fun([D, K, V]) -> py_shared_dict:set(D, K, V) end;
builtin(<<"sd_del">>) -> fun([D, K]) -> py_shared_dict:take(D, K) end;
builtin(<<"sd_keys">>) -> fun([D]) -> py_shared_dict:keys(D) end;
builtin(<<"sd_destroy">>) -> fun([D]) -> py_shared_dict:destroy(D) end;
%% Streams (erlang._stream)
builtin(<<"stream_wanted">>) -> fun([Ref]) -> py_stream:wanted(Ref) end;
builtin(<<"stream_finished">>) -> fun([Ref]) -> py_stream:finished(Ref) end;
%% Tracing (erlang.Span)
builtin(<<"trace_span">>) -> fun([Span]) -> py_logging:record_span(Span) end;
%% Processes (erlang.whereis, erlang.send)
builtin(<<"whereis">>) -> fun([Name]) -> py_process:whereis_name(Name) end;
builtin(<<"send">>) -> fun([Pid, Term]) -> py_process:send(Pid, Term) end;
builtin(<<"registered">>) -> fun([Name]) -> py_callback:lookup(Name) =/= error end;
builtin(_) -> undefined.
