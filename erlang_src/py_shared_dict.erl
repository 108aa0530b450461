%% @doc SharedDict: a dictionary owned by an Erlang process, shared by that
%% process, any other Erlang process and Python code in every context of the
%% node (`erlang.SharedDict(handle)'). Stored in ETS: one row per key in
%% `py_shared_dict_data' (`{{Id, Key}, Value}'), one per dict in
%% `py_shared_dicts' (`{Id, Owner}'). Each operation is one ETS operation, so
%% concurrent readers and writers from any thread are safe.
%%
%% The handle `{py_shared_dict, Id}' is a plain term: pass it to Python as an
%% argument. Keys: atoms are stored as their names (binaries), like Python's
%% str keys. The dict is destroyed by `destroy/1', by Python's `destroy()', or
%% when its owner exits (this server monitors owners); using it afterwards
%% raises `error({shared_dict_destroyed, Handle})' (a `RuntimeError' in Python).
-module(py_shared_dict).
-behaviour(gen_server).

-export([new/0, get/2, get/3, set/3, del/2, keys/1, destroy/1]).
-export([lookup/2, take/2]).
-export([start_link/0, init/1, handle_call/3, handle_cast/2, handle_info/2]).

-define(DICTS, py_shared_dicts).
-define(DATA, py_shared_dict_data).

-type handle() :: {py_shared_dict, pos_integer()}.
-export_type([handle/0]).

%% @doc A new dict owned by the calling process.
-spec new() -> {ok, handle()}.
new() ->
    Id = erlang:unique_integer([positive]),
    true = ets:insert(?DICTS, {Id, self()}),
    ok = gen_server:call(?MODULE, {watch, self()}),
    {ok, {py_shared_dict, Id}}.

%% @doc The value under `Key', or `undefined'.
-spec get(handle(), term()) -> term().
get(Dict, Key) ->
    get(Dict, Key, undefined).

%% @doc The value under `Key', or `Default'.
-spec get(handle(), term(), term()) -> term().
get(Dict, Key, Default) ->
    case lookup(Dict, Key) of
        [Value] -> Value;
        [] -> Default
    end.

-spec set(handle(), term(), term()) -> ok.
set(Dict, Key, Value) ->
    Id = id(Dict),
    true = ets:insert(?DATA, {{Id, key(Key)}, Value}),
    %% Destroyed meanwhile: take the row back out.
    case ets:member(?DICTS, Id) of
        true -> ok;
        false -> ets:delete(?DATA, {Id, key(Key)}), destroyed(Dict)
    end.

%% @doc Deletes `Key'; `ok' also if it was not there.
-spec del(handle(), term()) -> ok.
del(Dict, Key) ->
    _ = take(Dict, Key),
    ok.

-spec keys(handle()) -> [term()].
keys(Dict) ->
    Id = id(Dict),
    lists:sort(ets:select(?DATA, [{{{Id, '$1'}, '_'}, [], ['$1']}])).

%% @doc Destroys the dict and its contents; idempotent.
-spec destroy(handle()) -> ok.
destroy({py_shared_dict, Id}) when is_integer(Id) ->
    true = ets:delete(?DICTS, Id),
    _ = ets:select_delete(?DATA, [{{{Id, '_'}, '_'}, [], [true]}]),
    ok;
destroy(Other) ->
    error({badarg, Other}).

%% @private `[Value]' or `[]'.
-spec lookup(handle(), term()) -> [term()].
lookup(Dict, Key) ->
    Id = id(Dict),
    case ets:lookup(?DATA, {Id, key(Key)}) of
        [{_, Value}] -> [Value];
        [] -> []
    end.

%% @private Deletes `Key'; whether it was there.
-spec take(handle(), term()) -> boolean().
take(Dict, Key) ->
    ets:take(?DATA, {id(Dict), key(Key)}) =/= [].

id({py_shared_dict, Id} = Dict) when is_integer(Id) ->
    case ets:member(?DICTS, Id) of
        true -> Id;
        false -> destroyed(Dict)
    end;
id(Other) ->
    error({badarg, Other}).

-spec destroyed(handle()) -> no_return().
destroyed(Dict) ->
    error({shared_dict_destroyed, Dict}).

key(Key) when is_atom(Key) -> atom_to_binary(Key, utf8);
key(Key) -> Key.

%% gen_server: destroys a process's dicts when it exits.

-spec start_link() -> {ok, pid()} | {error, term()}.
start_link() ->
    gen_server:start_link({local, ?MODULE}, ?MODULE, [], []).

-spec init([]) -> {ok, #{pid() => reference()}}.
init([]) ->
    %% After a restart: watch the owners of the dicts that exist, drop the rest.
    Owners = lists:usort([O || {_, O} <- ets:tab2list(?DICTS)]),
    State = lists:foldl(fun(O, S) -> watch(O, S) end, #{}, Owners),
    {ok, State}.

-spec handle_call(term(), gen_server:from(), map()) -> {reply, term(), map()}.
handle_call({watch, Owner}, _From, State) ->
    {reply, ok, watch(Owner, State)};
handle_call(_Request, _From, State) ->
    {reply, {error, unknown_call}, State}.

-spec handle_cast(term(), map()) -> {noreply, map()}.
handle_cast(_Msg, State) ->
    {noreply, State}.

-spec handle_info(term(), map()) -> {noreply, map()}.
handle_info({'DOWN', _, process, Owner, _}, State) ->
    Ids = ets:select(?DICTS, [{{'$1', Owner}, [], ['$1']}]),
    _ = [destroy({py_shared_dict, Id}) || Id <- Ids],
    {noreply, maps:remove(Owner, State)};
handle_info(_Info, State) ->
    {noreply, State}.

watch(Owner, State) when is_map_key(Owner, State) ->
    State;
watch(Owner, State) ->
    State#{Owner => erlang:monitor(process, Owner)}.
