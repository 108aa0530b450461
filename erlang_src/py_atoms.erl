%% @doc The bound on the atoms that data from port programs may create.
%%
%% Atoms are never garbage collected, and the VM dies when its atom table is
%% full (1,048,576 by default). Python can make any number of distinct
%% `erlang.Atom' values or exception classes, so an atom name arriving from a
%% port program becomes an atom only if that atom already exists, or while the
%% node's budget of new atoms lasts: app env `max_new_atoms' (default 10,000
%% for the node's lifetime, counted over every port program and pool). Beyond
%% it, decoding such a value fails with `{atom_limit, Limit}' (a call gets
%% `{error, {atom_limit, Limit}}') and an exception class name stays a binary.
%%
%% The budget is one `atomics' cell reached through `persistent_term': the
%% common case (an existing atom) never touches it.
-module(py_atoms).

-export([existing_or_new/1, class_name/1, created/0, limit/0]).

-define(KEY, {?MODULE, created}).
-define(DEFAULT_LIMIT, 10000).

%% @doc `Name' (UTF-8) as an atom: an existing atom, else a new one charged to
%% the budget. Throws `{atom_limit, Limit}' when the budget is spent and
%% `{bad_ext, 1}' when `Name' cannot be an atom (not UTF-8, too long).
-spec existing_or_new(binary()) -> atom().
existing_or_new(Name) ->
    try
        binary_to_existing_atom(Name, utf8)
    catch
        error:_ -> new(Name)
    end.

%% @doc An exception class name: an atom as `existing_or_new/1' makes it, or
%% the name itself (a binary) once the budget is spent.
-spec class_name(binary()) -> atom() | binary().
class_name(Name) ->
    try
        existing_or_new(Name)
    catch
        throw:_ -> Name
    end.

%% @doc How many atoms port data has created on this node so far.
-spec created() -> non_neg_integer().
created() ->
    atomics:get(counter(), 1).

%% @doc The budget of new atoms (app env `max_new_atoms').
-spec limit() -> non_neg_integer().
limit() ->
    case application:get_env(erlang_python, max_new_atoms, ?DEFAULT_LIMIT) of
        N when is_integer(N), N >= 0 -> N;
        _ -> ?DEFAULT_LIMIT
    end.

%% Internal

new(Name) ->
    Limit = limit(),
    Counter = counter(),
    %% Two processes creating the same atom both pay: the bound errs low.
    case atomics:add_get(Counter, 1, 1) of
        N when N =< Limit ->
            try
                binary_to_atom(Name, utf8)
            catch
                error:_ ->
                    atomics:sub(Counter, 1, 1),
                    throw({bad_ext, 1})
            end;
        _ ->
            atomics:sub(Counter, 1, 1),
            throw({atom_limit, Limit})
    end.

counter() ->
    case persistent_term:get(?KEY, undefined) of
        undefined -> create_counter();
        Counter -> Counter
    end.

%% Once per node: a global lock keeps two first users from each putting a
%% counter (the second would lose the first one's count).
create_counter() ->
    global:trans({?KEY, self()},
                 fun() ->
                         case persistent_term:get(?KEY, undefined) of
                             undefined ->
                                 Counter = atomics:new(1, []),
                                 persistent_term:put(?KEY, Counter),
                                 Counter;
                             Counter ->
                                 Counter
                         end
                 end, [node()]).
