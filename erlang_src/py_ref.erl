%% @doc References to Python objects: `py:call(Ctx, M, F, A, #{return => ref})'
%% returns a reference to the result instead of converting it;
%% py:call_method/3, py:getattr/2 and py:to_term/1 use it, py:is_ref/1 tells.
%%
%% The object is kept in the namespace the call ran in (by default the
%% calling process's own, py_ns), so it lives as long as that namespace:
%% until the process that made the call exits (or release/1). Any process may
%% use the reference meanwhile; afterwards it is `{error, {'ReferenceError', _}}'.
%% Erlang has no finalizer for a term without a NIF, and a NIF is what this
%% design keeps out of the VM: see the README, "Differences from erlang_python".
%% A reference of a context whose port program restarted is
%% `{error, {stale_ref, Ctx}}' (its object went with the old Python).
-module(py_ref).

-include("py_protocol.hrl").

-export([wrap/3, call_method/3, call_method/4, getattr/2, to_term/1, release/1, is_ref/1]).

-record(py_ref, {ctx :: pid(), ns :: term(), id :: pos_integer(), owner :: pid()}).
-opaque ref() :: #py_ref{}.
-export_type([ref/0]).

%% @doc The result of a call made with options `Opts': a reference when
%% `#{return => ref}' asked for one.
-spec wrap(pid(), map(), py:result()) -> py:result().
wrap(Ctx, #{return := ref} = Opts, {ok, Id}) when is_integer(Id) ->
    Ns = case maps:get(env, Opts, undefined) of
             undefined -> self();
             shared -> nil;
             {py_env, _, Ref} -> Ref
         end,
    case py_context:lookup(Ctx) of
        {ok, _, Owner, _} -> {ok, #py_ref{ctx = Ctx, ns = Ns, id = Id, owner = Owner}};
        error -> {error, {no_context, Ctx}}
    end;
wrap(_Ctx, _Opts, Result) ->
    Result.

%% @doc `Ref.Method(*Args)', converted.
-spec call_method(ref(), py:name(), list()) -> py:result().
call_method(Ref, Method, Args) ->
    call_method(Ref, Method, Args, #{}).

%% @doc `Ref.Method(*Args)' with options `#{kwargs, timeout, return}'.
-spec call_method(ref(), py:name(), list(), map()) -> py:result().
call_method(Ref, Method, Args, Opts) when is_list(Args), is_map(Opts) ->
    op(Ref, ?PY_REF_CALL_METHOD, Method, Args, Opts);
call_method(_Ref, _Method, Args, Opts) ->
    {error, {badarg, {Args, Opts}}}.

%% @doc `Ref.Name', converted.
-spec getattr(ref(), py:name()) -> py:result().
getattr(Ref, Name) ->
    op(Ref, ?PY_REF_GETATTR, Name, [], #{}).

%% @doc The object itself, converted as a call's result.
-spec to_term(ref()) -> py:result().
to_term(Ref) ->
    op(Ref, ?PY_REF_TO_TERM, <<>>, [], #{}).

%% @doc Lets the object go before its namespace does.
-spec release(ref()) -> ok | {error, term()}.
release(Ref) ->
    case op(Ref, ?PY_REF_RELEASE, <<>>, [], #{}) of
        {ok, none} -> ok;
        Error -> Error
    end.

-spec is_ref(term()) -> boolean().
is_ref(#py_ref{}) -> true;
is_ref(_) -> false.

%% Internal

op(#py_ref{ctx = Ctx, ns = Ns, id = Id, owner = Owner} = Ref, Op, Name, Args, Opts) ->
    case {name(Name), py_context:lookup(Ctx)} of
        {error, _} ->
            {error, {badarg, Name}};
        {_, error} ->
            {error, {no_context, Ctx}};
        {{ok, _}, {ok, _, Other, _}} when Other =/= Owner ->
            {error, {stale_ref, Ctx}};
        {{ok, N}, {ok, _, _, _}} ->
            Kwargs = maps:get(kwargs, Opts, #{}),
            Ret = case maps:get(return, Opts, value) of ref -> [true]; _ -> [] end,
            Timeout = maps:get(timeout, Opts, py_config:call_timeout()),
            Build = fun(L) -> fun(R) -> [?PY_MSG_REF_OP, R, L, Op, Id, N, Args, Kwargs, nil, Ns | Ret] end end,
            case py:request(Ctx, Build, Timeout) of
                {ok, NewId} when Ret =:= [true] -> {ok, Ref#py_ref{id = NewId}};
                Result -> Result
            end
    end;
op(Other, _Op, _Name, _Args, _Opts) ->
    {error, {badarg, Other}}.

name(N) when is_atom(N) -> {ok, atom_to_binary(N, utf8)};
name(N) when is_binary(N) -> {ok, N};
name(_) -> error.
