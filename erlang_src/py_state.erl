%% @doc Shared state: a node-wide key-value store in ETS, reached from Erlang
%% (`py:state_*') and from Python (`erlang.state_get' ...) through built-in
%% callback functions (see py_builtins). Every context of the node, whatever
%% port program it lives in, sees the same store.
%%
%% Keys: an atom is stored as its name (a binary), so `py:state_fetch(hits)'
%% and Python's `state_get("hits")' name the same entry; any other term is a
%% key as it is. Counters are `ets:update_counter/4': atomic under any
%% concurrency, a missing key counting from 0.
%%
%% This module also creates the tables of the other node-wide helpers (streams,
%% shared dicts, node-wide Python setup, trace spans); they are owned by the top
%% supervisor, so they outlive a restart of any server.
-module(py_state).

-export([init_tables/0]).
-export([fetch/1, store/2, remove/1, keys/0, clear/0, incr/2]).

-define(TABLE, py_state).

%% @doc Creates the tables, if missing (called by erlang_python_sup).
-spec init_tables() -> ok.
init_tables() ->
    Concurrent = [named_table, public, {read_concurrency, true}, {write_concurrency, true}],
    New = fun(Name, Opts) ->
                  _ = [ets:new(Name, Opts) || ets:info(Name) =:= undefined],
                  ok
          end,
    ok = New(?TABLE, [set | Concurrent]),
    ok = New(py_streams, [set | Concurrent]),
    ok = New(py_shared_dicts, [set | Concurrent]),
    ok = New(py_shared_dict_data, [set | Concurrent]),
    ok = New(py_setup, [ordered_set, named_table, public]),
    ok = New(py_traces, [duplicate_bag, named_table, public, {write_concurrency, true}]),
    ok.

-spec fetch(term()) -> {ok, term()} | {error, not_found}.
fetch(Key) ->
    case ets:lookup(?TABLE, key(Key)) of
        [{_, Value}] -> {ok, Value};
        [] -> {error, not_found}
    end.

-spec store(term(), term()) -> ok.
store(Key, Value) ->
    true = ets:insert(?TABLE, {key(Key), Value}),
    ok.

-spec remove(term()) -> ok.
remove(Key) ->
    true = ets:delete(?TABLE, key(Key)),
    ok.

-spec keys() -> [term()].
keys() ->
    lists:sort(ets:select(?TABLE, [{{'$1', '_'}, [], ['$1']}])).

-spec clear() -> ok.
clear() ->
    true = ets:delete_all_objects(?TABLE),
    ok.

%% @doc Adds `By' (an integer) to the counter `Key' and returns the new value;
%% a missing key counts from 0. Fails with `badarg' if the value stored under
%% `Key' is not an integer.
-spec incr(term(), integer()) -> integer().
incr(Key, By) when is_integer(By) ->
    K = key(Key),
    ets:update_counter(?TABLE, K, {2, By}, {K, 0});
incr(_Key, By) ->
    error({badarg, By}).

key(Key) when is_atom(Key) -> atom_to_binary(Key, utf8);
key(Key) -> Key.
