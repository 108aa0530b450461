%% @doc Schedule markers (asyncio.md, "Explicit Scheduling API"): a Python
%% handler of a `py:call' that returns `erlang.schedule(...)',
%% `erlang.schedule_py(...)' or `erlang.schedule_inline(...)' ends its Python
%% part; the caller's own process continues with the named registered Erlang
%% function, or with another call on the same context, until a result that is
%% not a marker comes back. Between the steps the context serves other requests.
%% Markers cross as the tuples `{'$py_schedule', erlang, Name, Args}' and
%% `{'$py_schedule', py | inline, Module, Function, Args, Kwargs}'.
-module(py_schedule).

-include("py_protocol.hrl").

-export([continued/3]).

%% @doc The final result of a call to context `Ctx' that returned `Result':
%% `Result' itself unless it is a marker. Each step has `Timeout'.
-spec continued(pid(), {ok, term()} | {error, term()}, timeout()) ->
          {ok, term()} | {error, term()}.
continued(_Ctx, {ok, {'$py_schedule', erlang, Name, Args}}, _Timeout)
  when is_binary(Name), is_list(Args) ->
    case py_callback:lookup(Name) of
        {ok, Fun} when is_function(Fun, 1) -> apply_step(Name, Fun, [Args]);
        {ok, {M, F}} -> apply_step(Name, fun M:F/1, [Args]);
        error -> {error, {not_registered, Name}}
    end;
continued(Ctx, {ok, {'$py_schedule', Kind, M, F, Args, Kwargs}}, Timeout)
  when (Kind =:= py orelse Kind =:= inline), is_binary(M), is_binary(F), is_list(Args),
       is_map(Kwargs) ->
    Build0 = fun(Local) -> fun(Ref) -> [?PY_MSG_CALL, Ref, Local, M, F, Args, Kwargs] end end,
    %% `__main__' is the caller's own namespace (py_ns), as for py:call
    Build = case M of
                <<"__main__">> -> py_ns:extend(Build0, py_ns:own_trailer(Ctx));
                _ -> Build0
            end,
    continued(Ctx, py_request:call(Ctx, Build, Timeout), Timeout);
continued(_Ctx, Result, _Timeout) ->
    Result.

apply_step(Name, Fun, Args) ->
    try {ok, apply(Fun, Args)}
    catch
        Class:Reason -> {error, {callback_failed, Name, {Class, Reason}}}
    end.
