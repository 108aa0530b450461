%% @doc References to Python objects (to be completed).
-module(py_ref).
-export([wrap/3, call_method/3, getattr/2, to_term/1, is_ref/1]).
-export_type([ref/0]).
-type ref() :: tuple().
-spec wrap(pid(), map(), py:result()) -> py:result().
wrap(_Ctx, _Opts, Result) -> Result.
-spec call_method(ref(), py:name(), list()) -> py:result().
call_method(_, _, _) -> {error, not_supported}.
-spec getattr(ref(), py:name()) -> py:result().
getattr(_, _) -> {error, not_supported}.
-spec to_term(ref()) -> py:result().
to_term(_) -> {error, not_supported}.
-spec is_ref(term()) -> boolean().
is_ref(_) -> false.
