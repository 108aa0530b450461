%% @doc Hostile data from Python and from port programs: the bound on the
%% atoms port data may create (py_atoms: an atom flood, exception classes,
%% messages, callback arguments, opaque terms), and bad frames from a port
%% program (each closes that port program; its owner never crashes), with the
%% codec under PropEr on random and corrupted binaries.
-module(py_hostile_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("proper/include/proper.hrl").
-include("py_protocol.hrl").

-export([all/0, suite/0, init_per_suite/1, end_per_suite/1,
         init_per_testcase/2, end_per_testcase/2]).

-export([atom_flood/1, existing_atoms_always_decode/1, exception_class_names/1,
         messages_and_callbacks_bounded/1, opaque_terms_create_no_atoms/1,
         bad_frames_close_the_port_program/1, codec_random_binaries/1,
         codec_corrupted_frames/1, owner_random_frames/1]).

-define(APP, erlang_python).
-define(POOL, hostile).
-define(PROMPT_MS, 5000).
%% Atoms the rest of the VM may make while a test runs (code loading, logs).
-define(SLACK, 200).

suite() ->
    [{timetrap, {seconds, 300}}].

all() ->
    [atom_flood, existing_atoms_always_decode, exception_class_names,
     messages_and_callbacks_bounded, opaque_terms_create_no_atoms,
     bad_frames_close_the_port_program, codec_random_binaries, codec_corrupted_frames,
     owner_random_frames].

init_per_suite(Config) ->
    {ok, _} = application:ensure_all_started(?APP),
    Config.

end_per_suite(Config) ->
    Config.

init_per_testcase(_Case, Config) ->
    {ok, [_]} = py_context_router:start_pool(?POOL, 1, process),
    ok = py:exec(ctx(), python_helpers()),
    [{max_new_atoms, application:get_env(?APP, max_new_atoms)} | Config].

end_per_testcase(_Case, Config) ->
    ok = py_context_router:stop_pool(?POOL),
    _ = py:unregister_function(hostile_echo),
    case ?config(max_new_atoms, Config) of
        {ok, Old} -> application:set_env(?APP, max_new_atoms, Old);
        undefined -> application:unset_env(?APP, max_new_atoms)
    end,
    ok.

python_helpers() ->
    <<"
import erlang

def atoms(prefix, n):
    return [erlang.Atom(prefix + str(i)) for i in range(n)]

def raise_class(name):
    raise type(name, (Exception,), {})('boom')
">>.

ctx() ->
    py_context_router:get_context(?POOL).

%% Allows `N' more atoms from port data than made so far.
allow_new_atoms(N) ->
    ok = application:set_env(?APP, max_new_atoms, py_atoms:created() + N).

atom_count() ->
    erlang:system_info(atom_count).

%%====================================================================
%% The atom bound
%%====================================================================

%% The issue's flood: 20 calls returning 100,000 distinct new atoms each
%% (2,000,000 would fill the default atom table and kill the VM). Each call
%% gets `{error, {atom_limit, Limit}}'; the table grows by the budget at most.
atom_flood(_Config) ->
    Budget = 2000,
    allow_new_atoms(Budget),
    Limit = py_atoms:limit(),
    Count0 = atom_count(),
    T0 = erlang:monotonic_time(millisecond),
    Prefix = <<"flood_", (integer_to_binary(erlang:unique_integer([positive])))/binary, "_">>,
    Results = [py:call(ctx(), '__main__', atoms, [<<Prefix/binary, (integer_to_binary(I))/binary, "_">>,
                                                  100000], #{timeout => 60000})
               || I <- lists:seq(1, 20)],
    Took = erlang:monotonic_time(millisecond) - T0,
    Grown = atom_count() - Count0,
    ct:pal("20 calls x 100,000 new atoms: ~p ms, atom table grew by ~p (budget ~p)",
           [Took, Grown, Budget]),
    [] = [R || R <- Results, R =/= {error, {atom_limit, Limit}}],
    true = Grown =< Budget + ?SLACK,
    true = Grown >= Budget,     % the budget was used before refusing
    Limit = py_atoms:created(),
    %% the context and the node go on
    {ok, 3} = py:call(ctx(), operator, add, [1, 2]),
    ok.

%% Atoms that exist decode as atoms whatever the budget.
existing_atoms_always_decode(_Config) ->
    allow_new_atoms(0),
    Names = [<<"ok">>, <<"error">>, <<"erlang_python">>, <<"py_atoms">>, <<"ünïcode_exists"/utf8>>],
    _ = binary_to_atom(<<"ünïcode_exists"/utf8>>, utf8),
    Expected = [binary_to_atom(N, utf8) || N <- Names],
    {ok, Expected} = py:eval(ctx(), <<"[erlang.Atom(n) for n in names]">>, #{names => Names}),
    Fresh = <<"fresh_", (integer_to_binary(erlang:unique_integer([positive])))/binary>>,
    {error, {atom_limit, _}} = py:eval(ctx(), <<"erlang.Atom(n)">>, #{n => Fresh}),
    %% within a budget it becomes an atom
    allow_new_atoms(1),
    {ok, Atom} = py:eval(ctx(), <<"erlang.Atom(n)">>, #{n => Fresh}),
    Fresh = atom_to_binary(Atom, utf8),
    %% and then exists: no budget needed any more
    allow_new_atoms(0),
    {ok, Atom} = py:eval(ctx(), <<"erlang.Atom(n)">>, #{n => Fresh}),
    ok.

%% Python names exception classes at will: a new name is an atom within the
%% budget, a binary beyond it; known classes stay atoms.
exception_class_names(_Config) ->
    allow_new_atoms(1),
    Tag = integer_to_binary(erlang:unique_integer([positive])),
    First = <<"HostileError", Tag/binary, "_0">>,
    {error, {Atom, <<"boom">>}} = py:call(ctx(), '__main__', raise_class, [First]),
    First = atom_to_binary(Atom, utf8),
    Count0 = atom_count(),
    Names = [<<"HostileError", Tag/binary, "_", (integer_to_binary(I))/binary>>
             || I <- lists:seq(1, 3000)],
    [{error, {Name, <<"boom">>}} = py:call(ctx(), '__main__', raise_class, [Name])
     || Name <- Names],
    true = atom_count() - Count0 =< ?SLACK,
    {error, {'ZeroDivisionError', _}} = py:call(ctx(), operator, truediv, [1, 0]),
    ok.

%% Other ways port data reaches Erlang: erlang.send (a checked send, a
%% callback: a message holding a new atom raises, naming the bound), callback
%% arguments (the erlang.call raises, naming the bound).
messages_and_callbacks_bounded(_Config) ->
    allow_new_atoms(0),
    Fresh = <<"fresh_msg_", (integer_to_binary(erlang:unique_integer([positive])))/binary>>,
    Count0 = atom_count(),
    ok = py:exec(ctx(), <<"def send_atom(pid, name):\n"
                          "    erlang.send(pid, (erlang.Atom('hostile_msg'), erlang.Atom(name)))\n">>),
    {error, {'RuntimeError', Raised}} = py:call(ctx(), '__main__', send_atom, [self(), Fresh]),
    true = binary:match(Raised, <<"max_new_atoms">>) =/= nomatch,
    {ok, none} = py:call(ctx(), '__main__', send_atom, [self(), <<"ok">>]),
    %% the first message was never sent
    receive {hostile_msg, What} -> ok = What
    after ?PROMPT_MS -> ct:fail(no_message)
    end,
    ok = py:register_function(hostile_echo, fun([X]) -> X end),
    {error, {'RuntimeError', Msg}} =
        py:eval(ctx(), <<"erlang.call('hostile_echo', erlang.Atom(n))">>, #{n => Fresh}),
    ct:pal("callback with a new atom: ~ts", [Msg]),
    {match, _} = re:run(Msg, <<"max_new_atoms">>),
    {ok, ok} = py:eval(ctx(), <<"erlang.call('hostile_echo', erlang.Atom('ok'))">>),
    true = atom_count() - Count0 =< ?SLACK,
    {error, badarg} = try binary_to_existing_atom(Fresh, utf8) catch error:badarg -> {error, badarg} end,
    ok.

%% Pids, references and opaque terms carry external-format bytes that Python
%% may forge: bytes naming an atom that does not exist are refused.
opaque_terms_create_no_atoms(_Config) ->
    Fresh = <<"fresh_opaque_", (integer_to_binary(erlang:unique_integer([positive])))/binary>>,
    Node = <<Fresh/binary, "@nowhere">>,
    Count0 = atom_count(),
    AtomExt = <<119, (byte_size(Fresh)), Fresh/binary>>,
    PidExt = <<88, 119, (byte_size(Node)), Node/binary, 1:32, 0:32, 1:32>>,
    {error, {bad_reply, {bad_ext, 7}}} =
        py:eval(ctx(), <<"erlang.OpaqueTerm(b)">>, #{b => {bytes, AtomExt}}),
    {error, {bad_reply, {bad_ext, 3}}} =
        py:eval(ctx(), <<"erlang.Pid(b)">>, #{b => {bytes, PidExt}}),
    true = atom_count() - Count0 =< ?SLACK,
    %% a real pid and fun still round-trip
    Self = self(),
    F = fun() -> ok end,
    {ok, [Self, F]} = py:eval(ctx(), <<"[p, f]">>, #{p => Self, f => F}),
    ok.

%%====================================================================
%% Bad frames from a port program
%%====================================================================

%% Frames that do not decode, or decode to values of the wrong types, as if
%% the port program had sent them: the owner closes that port program (its
%% callers get `{error, {python_died, {bad_frame, _}}}'), exits with a
%% `shutdown' reason, and the context restarts.
bad_frames_close_the_port_program(_Config) ->
    Frames = [<<16#c1>>, <<16#93, ?PY_MSG_REPLY_OK>>,
              <<16#93, ?PY_MSG_REPLY_OK, 16#c7, 3, ?PY_EXT_REF, 1, 2, 3>>,
              <<16#95, ?PY_MSG_CALLBACK, 16#c1>>, <<16#95, ?PY_MSG_CALLBACK, 5, 16#c1>>,
              iolist_to_binary(py_msgpack:encode([?PY_MSG_OUTPUT, ?PY_STDOUT, none, 42])),
              <<16#dc>>],
    [begin
         {Owner, Port, OsPid} = owner(),
         Ref = monitor(process, Owner),
         Owner ! {Port, {data, Frame}},
         receive
             {'DOWN', Ref, process, Owner, {shutdown, {python_died, {bad_frame, Why}}}} ->
                 ct:pal("~p: ~0p", [Frame, Why]);
             {'DOWN', Ref, process, Owner, Other} ->
                 ct:fail({owner_exit, Frame, Other})
         after ?PROMPT_MS -> ct:fail({owner_alive_after, Frame})
         end,
         true = wait_os_pid_gone(OsPid, 2000),
         {ok, 3} = retry_call()
     end || Frame <- Frames],
    ok.

%%====================================================================
%% PropEr on the codec and on a real owner
%%====================================================================

codec_random_binaries(_Config) ->
    allow_new_atoms(0),
    warm_up_proper(),
    Count0 = atom_count(),
    true = proper:quickcheck(prop_decode_any_binary(), [{numtests, 20000}, {to_file, user}]),
    true = proper:quickcheck(prop_decode_any_ext(), [{numtests, 20000}, {to_file, user}]),
    Grown = atom_count() - Count0,
    ct:pal("40,000 random binaries: atom table grew by ~p", [Grown]),
    true = Grown =< ?SLACK,
    ok.

codec_corrupted_frames(_Config) ->
    allow_new_atoms(0),
    warm_up_proper(),
    Count0 = atom_count(),
    true = proper:quickcheck(prop_decode_corrupted(), [{numtests, 10000}, {to_file, user}]),
    true = atom_count() - Count0 =< ?SLACK,
    ok.

%% Random messages at a real owner: it either goes on (and still serves) or
%% exits with a `shutdown' reason, closing its port program; never a crash.
owner_random_frames(_Config) ->
    allow_new_atoms(0),
    true = proper:quickcheck(prop_owner_survives(), [{numtests, 30}, {to_file, user}]),
    ok.

%% PropEr's own modules make atoms as they load: load them before counting.
warm_up_proper() ->
    true = proper:quickcheck(?FORALL(T, term_gen(), is_binary(iolist_to_binary(py_msgpack:encode(T)))),
                             [{numtests, 50}, {to_file, user}]).

prop_decode_any_binary() ->
    ?FORALL(Bin, binary(), clean(Bin)).

%% ext headers with random type and payload, atoms (ext 1) with random names
prop_decode_any_ext() ->
    ?FORALL({Type, Payload}, {oneof([?PY_EXT_ATOM, ?PY_EXT_ATOM, ?PY_EXT_ATOM, ?PY_EXT_TUPLE,
                                       ?PY_EXT_PID, ?PY_EXT_REF, ?PY_EXT_BIGINT, ?PY_EXT_OPAQUE,
                                       integer(-128, 127)]), binary()},
            begin
                N = byte_size(Payload),
                Ext = if N < 256 -> <<16#c7, N, Type:8/signed, Payload/binary>>;
                         true -> <<16#c8, N:16, Type:8/signed, Payload/binary>>
                      end,
                clean(Ext) andalso clean(<<16#92, ?PY_MSG_REPLY_OK, Ext/binary>>)
            end).

prop_decode_corrupted() ->
    ?FORALL({Term, Cuts}, {term_gen(), list({non_neg_integer(), byte()})},
            begin
                Bin = iolist_to_binary(py_msgpack:encode(Term)),
                Corrupt = corrupt(Bin, Cuts),
                clean(Corrupt) andalso clean(binary:part(Corrupt, 0, byte_size(Corrupt) div 2))
            end).

%% The codec's contract: {ok, _} or {error, _}, nothing raised, and only
%% existing atoms (the budget is 0 here).
clean(Bin) ->
    R1 = py_msgpack:decode_all(Bin),
    R2 = py_msgpack:decode_reply(Bin),
    (element(1, R1) =:= ok orelse element(1, R1) =:= error)
        andalso (tuple_size(R2) =:= 3 orelse element(1, R2) =:= error).

corrupt(Bin, []) ->
    Bin;
corrupt(<<>>, _) ->
    <<>>;
corrupt(Bin, [{Pos, Byte} | Rest]) ->
    P = Pos rem byte_size(Bin),
    <<Before:P/binary, _, After/binary>> = Bin,
    corrupt(<<Before/binary, Byte, After/binary>>, Rest).

term_gen() ->
    ?SIZED(S, term_gen(min(S, 12))).

term_gen(S) when S < 2 ->
    oneof([integer(), float(), small_binary(), oneof([ok, error, true, false, none]),
           {bytes, small_binary()}, exactly(self()), exactly(make_ref()),
           integer(1 bsl 64, 1 bsl 80)]);
term_gen(S) ->
    Sub = term_gen(S div 3),
    Elems = ?LET(N, integer(0, 5), vector(N, Sub)),
    oneof([term_gen(0), Elems, ?LET(L, Elems, list_to_tuple(L)),
           ?LET(L, ?LET(N, integer(0, 4), vector(N, {Sub, Sub})), maps:from_list(L))]).

small_binary() ->
    ?LET(N, integer(0, 40), binary(N)).

prop_owner_survives() ->
    ?FORALL(Frame, frame_gen(),
            begin
                {Owner, Port, _OsPid} = owner(),
                Ref = monitor(process, Owner),
                Owner ! {Port, {data, Frame}},
                %% a call to the pool: served by this owner, or by the
                %% restarted context if the owner went
                Outcome = case py:call(?POOL, operator, add, [1, 2]) of
                              {ok, 3} -> ok;
                              {error, {python_died, _}} -> died;
                              Other -> {unexpected, Other}
                          end,
                Wait = case Outcome of
                           died -> ?PROMPT_MS;
                           _ -> 0
                       end,
                Exit = receive
                           {'DOWN', Ref, process, Owner, R} -> R
                       after Wait -> alive
                       end,
                demonitor(Ref, [flush]),
                case {Outcome, Exit} of
                    {ok, alive} -> true;
                    {_, {shutdown, _}} -> {ok, 3} =:= retry_call();
                    _ -> ct:pal("frame ~p: ~p / ~p", [Frame, Outcome, Exit]), false
                end
            end).

%% Messages of the protocol's types with arguments of random types, and
%% random bytes.
frame_gen() ->
    oneof([binary(),
           ?LET({Type, Args}, {oneof([?PY_MSG_HELLO, ?PY_MSG_REPLY_OK, ?PY_MSG_REPLY_ERROR,
                                      ?PY_MSG_OUTPUT, ?PY_MSG_LOG, ?PY_MSG_PROTOCOL_ERROR,
                                      ?PY_MSG_CALLBACK, ?PY_MSG_SEND, ?PY_MSG_CHANNEL_ACK,
                                      ?PY_MSG_CHANNEL_CLOSE, ?PY_MSG_CHANNEL_BYTES,
                                      ?PY_MSG_CHANNEL_RETURN, integer(0, 127)]),
                               list(term_gen(0))},
                iolist_to_binary(py_msgpack:encode([Type | Args]))),
           ?LET({Type, Args, Cut}, {oneof([?PY_MSG_REPLY_OK, ?PY_MSG_REPLY_ERROR, ?PY_MSG_CALLBACK]),
                                   list(term_gen(0)), non_neg_integer()},
                begin
                    B = iolist_to_binary(py_msgpack:encode([Type | Args])),
                    binary:part(B, 0, min(byte_size(B), 2 + Cut))
                end)]).

%%====================================================================
%% helpers
%%====================================================================

owner() ->
    {ok, 3} = retry_call(),
    {ok, Port, Owner, _} = py_context:lookup(ctx()),
    #{os_pid := OsPid} = py_port:info(Owner),
    {Owner, Port, OsPid}.

%% The pool's context is back (a call waits for it within its timeout).
retry_call() ->
    py:call(?POOL, operator, add, [1, 2]).

wait_os_pid_gone(OsPid, TimeoutMs) ->
    py_test_util:wait_until(
      fun() -> not filelib:is_file("/proc/" ++ integer_to_list(OsPid) ++ "/status")
                   orelse zombie(OsPid) end, TimeoutMs).

zombie(OsPid) ->
    case file:read_file("/proc/" ++ integer_to_list(OsPid) ++ "/stat") of
        {ok, Stat} ->
            [_, After] = binary:split(Stat, <<") ">>),
            binary:first(After) =:= $Z;
        {error, _} ->
            true
    end.
