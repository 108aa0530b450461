%% @doc Namespaces and interrupts (to be completed).
-module(py_ns).

-export([trailer/1, extend/2, eval/5, exec/4, interrupt/1, new_env/0]).

-spec trailer(map()) -> {ok, list()} | {error, term()}.
trailer(_Opts) -> {ok, []}.

-spec extend(fun(), list()) -> fun().
extend(Build, []) -> Build.

-spec eval(pid(), iodata(), map(), timeout(), term()) -> py:result().
eval(Ctx, Code, Locals, Timeout, _Env) -> py:eval(Ctx, Code, Locals, Timeout).

-spec exec(pid(), iodata(), timeout(), term()) -> ok | {error, term()}.
exec(Ctx, Code, Timeout, _Env) -> py:exec(Ctx, Code, Timeout).

-spec interrupt(pid()) -> ok | not_running | {error, term()}.
interrupt(_Ctx) -> {error, not_supported}.

-spec new_env() -> {py_env, reference()}.
new_env() -> {py_env, make_ref()}.
