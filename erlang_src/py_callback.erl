%% @doc Python calling Erlang: registered functions, and the handler processes
%% that run them.
%%
%% Each Python thread that calls `erlang.call' has its own handler process
%% (started on its first call, kept while the port program lives, reused when
%% the port program reuses the thread's slot), so a slow function blocks only
%% the thread that called it. Handlers are linked to the port owner: when the
%% port program dies they go with it. `erlang.async_call' requests run in
%% short-lived processes, so that many of them run concurrently.
%%
%% A handler counts the requests it finished in an atomics cell the port owner
%% reads (see py_port): the count goes up before the reply is written, so the
%% owner never sees a handler as busy once Python has its reply. A handler whose
%% request Python abandoned is retired by the owner: it finishes that request,
%% then exits.
%%
%% While a process runs a callback it keeps `{Owner, CbId}' in its process
%% dictionary (`$py_callback'): a request it sends to a context of that port
%% program carries `CbId' as its chain marker (py_request), so that it runs
%% nested if a thread of that context waits for this callback, and in its turn
%% otherwise (spec/PROTOCOL.md, "Callbacks: waits, nesting, cancellation").
-module(py_callback).

-include("py_protocol.hrl").

-export([register_function/2, unregister_function/1, lookup/1]).
%% the reference's names (its seeds call py_callback:register/2)
-export([register/2, unregister/1]).
-export([start_link/3, retire/1, run/4, write_reply/3, init/3]).
-export([chain/0, join_chain/1]).

-define(TABLE, py_functions).

-type callable() :: fun((list()) -> term()) | {module(), atom()}.
%% The callback a process serves: its port owner and callback ID.
-opaque chain() :: {pid(), non_neg_integer()}.
-export_type([callable/0, chain/0]).

%% @doc The reference's name of register_function/2.
-spec register(atom() | binary(), callable()) -> ok | {error, term()}.
register(Name, Callable) ->
    register_function(Name, Callable).

%% @doc The reference's name of unregister_function/1.
-spec unregister(atom() | binary()) -> ok | {error, term()}.
unregister(Name) ->
    unregister_function(Name).

%% @doc Makes `Callable' callable from Python as `erlang.call(Name, ...)'. It is
%% given the list of arguments.
-spec register_function(atom() | binary(), callable()) -> ok | {error, term()}.
register_function(Name, Callable) ->
    case {key(Name), Callable} of
        {{ok, Key}, Fun} when is_function(Fun, 1) ->
            ets:insert(?TABLE, {Key, Fun}), ok;
        {{ok, Key}, {M, F}} when is_atom(M), is_atom(F) ->
            ets:insert(?TABLE, {Key, {M, F}}), ok;
        {{ok, _}, _} ->
            {error, {badarg, Callable}};
        {Error, _} ->
            Error
    end.

-spec unregister_function(atom() | binary()) -> ok | {error, term()}.
unregister_function(Name) ->
    case key(Name) of
        {ok, Key} -> ets:delete(?TABLE, Key), ok;
        Error -> Error
    end.

-spec lookup(binary()) -> {ok, callable()} | error.
lookup(Key) ->
    case ets:lookup(?TABLE, Key) of
        [{_, Callable}] -> {ok, Callable};
        [] -> py_builtins:lookup(Key)  % "_py.*": the package's own (dropin2)
    end.

%% @doc The callback the calling process runs (`none' outside a callback): a
%% process that calls Python on its behalf takes it with {@link join_chain/1},
%% so that its requests run nested in the waiting thread as the callback's own
%% would.
-spec chain() -> chain() | none.
chain() ->
    case get('$py_callback') of
        undefined -> none;
        Chain -> Chain
    end.

%% @doc Makes the calling process's requests part of `Chain' (see chain/0);
%% `none' leaves any chain.
-spec join_chain(chain() | none) -> ok.
join_chain(none) ->
    erase('$py_callback'),
    ok;
join_chain({Owner, Id} = Chain) when is_pid(Owner), is_integer(Id) ->
    put('$py_callback', Chain),
    ok.

%% @doc Starts a handler serving callbacks of the port program owned by `Owner'.
-spec start_link(pid(), port(), atomics:atomics_ref()) -> {ok, pid()}.
start_link(Owner, Port, Done) ->
    proc_lib:start_link(?MODULE, init, [Owner, Port, Done]).

%% @doc Tells a handler to exit once it has finished what it is running.
-spec retire(pid()) -> ok.
retire(Handler) ->
    Handler ! py_callback_retire,
    ok.

%% @doc Runs one callback of the port program owned by `Owner' (`Request' is
%% the still-encoded name and arguments) and writes the reply to `Port'.
-spec run(pid(), port(), non_neg_integer(), binary()) -> ok.
run(Owner, Port, Id, Request) ->
    put('$py_callback', {Owner, Id}),
    write_reply(Port, Id, reply(Request)).

reply(Request) ->
    Reply = try decode_request(Request) of
                {ok, Name, Args} -> invoke(Name, Args);
                {error, {atom_limit, Limit}} ->
                    {error, iolist_to_binary(
                              ["the arguments hold more new atoms than the node allows "
                               "(max_new_atoms ", integer_to_list(Limit), ")"])};
                {error, _} -> {error, <<"malformed callback request">>}
            catch
                _:_ -> {error, <<"callback handler failed">>}
            end,
    Reply.

%% @doc Writes the reply to callback `Id' to `Port': the one place that builds
%% callback replies (the port owner uses it too, for callbacks nobody serves).
-spec write_reply(port(), non_neg_integer(), {ok, term()} | {error, binary()}) -> ok.
write_reply(Port, Id, Reply) ->
    Frame = case Reply of
                {ok, Value} -> py_msgpack:encode([?PY_MSG_CALLBACK_OK, Id, Value]);
                {error, Reason} -> py_msgpack:encode([?PY_MSG_CALLBACK_ERROR, Id, Reason])
            end,
    catch erlang:port_command(Port, Frame),
    ok.

%% @private
-spec init(pid(), port(), atomics:atomics_ref()) -> ok.
init(Owner, Port, Done) ->
    link(Owner),
    proc_lib:init_ack({ok, self()}),
    loop(Owner, Port, Done).

%% Internal

loop(Owner, Port, Done) ->
    receive
        {py_callback, Id, Request} ->
            put('$py_callback', {Owner, Id}),
            Reply = reply(Request),
            erase('$py_callback'),
            atomics:add(Done, 1, 1),
            write_reply(Port, Id, Reply),
            loop(Owner, Port, Done);
        py_callback_retire ->
            ok
    end.

decode_request(Bin) ->
    case py_msgpack:decode(Bin) of
        {ok, Name, Rest} when is_binary(Name) ->
            case py_msgpack:decode_all(Rest) of
                {ok, Args} when is_list(Args) -> {ok, Name, Args};
                {ok, _} -> {error, args};
                {error, _} = Error -> Error
            end;
        {ok, _, _} ->
            {error, name};
        {error, _} = Error ->
            Error
    end.

invoke(Name, Args) ->
    case lookup(Name) of
        {ok, Callable} ->
            try {ok, apply_callable(Callable, Args)}
            catch
                Class:Reason ->
                    {error, reason_text(Class, Reason)}
            end;
        error ->
            {error, <<"function '", Name/binary, "' is not registered">>}
    end.

%% An Elixir exception (`raise ArgumentError, "bad"') reads as Elixir prints it:
%% `ArgumentError: bad'; anything else as `Class:Reason'.
reason_text(error, #{'__exception__' := true, '__struct__' := Module} = Exception)
  when is_atom(Module) ->
    Name = case atom_to_binary(Module, utf8) of
               <<"Elixir.", Short/binary>> -> Short;
               Full -> Full
           end,
    <<Name/binary, ": ", (exception_message(Module, Exception))/binary>>;
reason_text(Class, Reason) ->
    case unicode:characters_to_binary(io_lib:format("~p:~0tp", [Class, Reason])) of
        Bin when is_binary(Bin) -> Bin;
        _ -> <<"error">>
    end.

%% Module:message/1 is the exception's own text (Exception.message/1 calls it).
exception_message(Module, Exception) ->
    try Module:message(Exception) of
        Text when is_binary(Text) -> Text;
        Other -> unicode:characters_to_binary(io_lib:format("~0tp", [Other]))
    catch
        _:_ ->
            case Exception of
                #{message := Text} when is_binary(Text) -> Text;
                _ -> unicode:characters_to_binary(io_lib:format("~0tp", [Exception]))
            end
    end.

apply_callable(Fun, Args) when is_function(Fun, 1) -> Fun(Args);
apply_callable({M, F}, Args) -> M:F(Args).

key(Name) when is_atom(Name) -> {ok, atom_to_binary(Name, utf8)};
key(Name) when is_binary(Name) -> {ok, Name};
key(Name) -> {error, {badarg, Name}}.
