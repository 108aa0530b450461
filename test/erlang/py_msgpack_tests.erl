%% @doc EUnit and PropEr tests of py_msgpack: the type mapping of
%% spec/PROTOCOL.md both ways, canonical (shortest) headers at every
%% boundary, exact round trips, malformed input and the depth limit.
%%
%% The PropEr properties call proper_types directly instead of using the
%% macros of proper.hrl, so that they build without the PropEr headers
%% (Debian ships them in erlang-proper-dev).
-module(py_msgpack_tests).

-include_lib("eunit/include/eunit.hrl").

-define(PROPER_OPTS(N), [{numtests, N}, {to_file, user}]).

enc(T) -> iolist_to_binary(py_msgpack:encode(T)).

dec(B) -> py_msgpack:decode_all(B).

%% Encodes to exactly Bytes and decodes back to Decoded.
both(Term, Bytes, Decoded) ->
    ?assertEqual(Bytes, enc(Term)),
    ?assertEqual({ok, Decoded}, dec(Bytes)).

both(Term, Bytes) -> both(Term, Bytes, Term).

%%--------------------------------------------------------------------
%% Integers
%%--------------------------------------------------------------------

int_boundaries_test_() ->
    Cases =
        [{0, <<16#00>>},
         {1, <<16#01>>},
         {127, <<16#7f>>},
         {128, <<16#cc, 128>>},
         {255, <<16#cc, 255>>},
         {256, <<16#cd, 1, 0>>},
         {65535, <<16#cd, 255, 255>>},
         {65536, <<16#ce, 0, 1, 0, 0>>},
         {(1 bsl 32) - 1, <<16#ce, 255, 255, 255, 255>>},
         {1 bsl 32, <<16#cf, 0, 0, 0, 1, 0, 0, 0, 0>>},
         {(1 bsl 63) - 1, <<16#cf, 16#7f, 255, 255, 255, 255, 255, 255, 255>>},
         {1 bsl 63, <<16#cf, 16#80, 0, 0, 0, 0, 0, 0, 0>>},
         {(1 bsl 64) - 1, <<16#cf, 255, 255, 255, 255, 255, 255, 255, 255>>},
         {-1, <<16#ff>>},
         {-32, <<16#e0>>},
         {-33, <<16#d0, 16#df>>},
         {-128, <<16#d0, 16#80>>},
         {-129, <<16#d1, 16#ff, 16#7f>>},
         {-32768, <<16#d1, 16#80, 0>>},
         {-32769, <<16#d2, 16#ff, 16#ff, 16#7f, 16#ff>>},
         {-(1 bsl 31), <<16#d2, 16#80, 0, 0, 0>>},
         {-(1 bsl 31) - 1, <<16#d3, 255, 255, 255, 255, 16#7f, 255, 255, 255>>},
         {-(1 bsl 63), <<16#d3, 16#80, 0, 0, 0, 0, 0, 0, 0>>}],
    [{integer_to_list(I), ?_test(both(I, B))} || {I, B} <- Cases].

bigint_test_() ->
    Cases =
        [{1 bsl 64, <<16#c7, 10, 5, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0>>},
         {(1 bsl 64) + 1, <<16#c7, 10, 5, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1>>},
         {-(1 bsl 63) - 1, <<16#c7, 9, 5, 1, 16#80, 0, 0, 0, 0, 0, 0, 1>>},
         {-(1 bsl 64), <<16#c7, 10, 5, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0>>},
         %% 15-byte magnitude: a 16-byte payload uses fixext 16.
         {1 bsl 112, <<16#d8, 5, 0, 1, 0:112>>},
         {-(1 bsl 112), <<16#d8, 5, 1, 1, 0:112>>},
         {1 bsl 1000, <<16#c7, 127, 5, 0, 1, 0:1000>>},
         {-(1 bsl 2040), <<16#c8, 1, 1, 5, 1, 1, 0:2040>>}],
    [{integer_to_list(I), ?_test(both(I, B))} || {I, B} <- Cases]
    ++ [?_assertEqual({ok, 5}, dec(<<16#d5, 5, 0, 5>>)),         % not canonical, accepted
        ?_assertEqual({ok, -5}, dec(<<16#d5, 5, 1, 5>>)),
        ?_assertEqual({ok, 1 bsl 64}, dec(<<16#c7, 11, 5, 0, 0, 1, 0:64>>))].

%%--------------------------------------------------------------------
%% Floats, booleans, nil
%%--------------------------------------------------------------------

float_test_() ->
    [?_test(both(F, <<16#cb, F/float>>))
     || F <- [0.0, -0.0, 1.0, -1.5, math:pi(), 1.0e300, -1.0e-300, 5.0e-324,
              1.7976931348623157e308]]
    ++ [?_assertEqual(<<16#cb, 0:64>>, enc(0.0)),
        ?_assertEqual(<<16#cb, 16#80, 0:56>>, enc(-0.0)),
        ?_assertEqual({ok, 1.5}, dec(<<16#ca, 1.5:32/float>>)),
        ?_assertEqual({ok, -0.25}, dec(<<16#ca, -0.25:32/float>>)),
        ?_assertEqual({ok, [1.5, 2]}, dec(<<16#92, 16#ca, 1.5:32/float, 2>>))].

bool_nil_test_() ->
    [?_test(both(true, <<16#c3>>)),
     ?_test(both(false, <<16#c2>>)),
     ?_test(both(none, <<16#c0>>)),
     ?_test(both(nil, <<16#c0>>, none)),
     ?_test(both(undefined, <<16#c0>>, none))].

%%--------------------------------------------------------------------
%% str, bin, array, map headers
%%--------------------------------------------------------------------

str_test_() ->
    Cases = [{0, <<16#a0>>}, {1, <<16#a1>>}, {31, <<16#bf>>},
             {32, <<16#d9, 32>>}, {255, <<16#d9, 255>>},
             {256, <<16#da, 1, 0>>}, {65535, <<16#da, 255, 255>>},
             {65536, <<16#db, 0, 1, 0, 0>>}, {100000, <<16#db, 100000:32>>}],
    [{integer_to_list(N), ?_test(both(S, <<H/binary, S/binary>>))}
     || {N, H} <- Cases, S <- [binary:copy(<<"x">>, N)]]
    ++ [?_test(both(<<"héllo ✓"/utf8>>, <<16#aa, "héllo ✓"/utf8>>)),
        %% str need not be UTF-8 on the Erlang side.
        ?_test(both(<<255, 0>>, <<16#a2, 255, 0>>))].

bin_test_() ->
    Cases = [{0, <<16#c4, 0>>}, {1, <<16#c4, 1>>}, {255, <<16#c4, 255>>},
             {256, <<16#c5, 1, 0>>}, {65535, <<16#c5, 255, 255>>},
             {65536, <<16#c6, 0, 1, 0, 0>>}],
    [{integer_to_list(N), ?_test(both({bytes, B}, <<H/binary, B/binary>>, B))}
     || {N, H} <- Cases, B <- [binary:copy(<<7>>, N)]]
    ++ [?_test(both({bytes, not_binary}, <<16#c7, 22, 2, 16#92, 16#c7, 5, 1, "bytes",
                                         16#c7, 10, 1, "not_binary">>))].

array_test_() ->
    Cases = [{0, <<16#90>>}, {1, <<16#91>>}, {15, <<16#9f>>},
             {16, <<16#dc, 0, 16>>}, {65535, <<16#dc, 255, 255>>},
             {65536, <<16#dd, 0, 1, 0, 0>>}],
    [{integer_to_list(N),
      ?_test(both(lists:duplicate(N, 1), <<H/binary, (binary:copy(<<1>>, N))/binary>>))}
     || {N, H} <- Cases]
    ++ [?_test(both([<<"a">>, [], [[1]]], <<16#93, 16#a1, $a, 16#90, 16#91, 16#91, 1>>)),
        %% strings are lists of integers
        ?_test(both("abc", <<16#93, $a, $b, $c>>))].

map_test_() ->
    Cases = [{0, <<16#80>>}, {1, <<16#81>>}, {15, <<16#8f>>},
             {16, <<16#de, 0, 16>>}, {65535, <<16#de, 255, 255>>},
             {65536, <<16#df, 0, 1, 0, 0>>}],
    [{integer_to_list(N), ?_test(map_case(N, H))} || {N, H} <- Cases]
    ++ [?_test(both(#{<<"a">> => 1, <<"b">> => [true]},
                    <<16#82, 16#a1, $a, 1, 16#a1, $b, 16#91, 16#c3>>)),
        %% any key order is accepted on input; duplicate keys: the last wins
        ?_assertEqual({ok, #{1 => 2, 3 => 4}}, dec(<<16#82, 3, 4, 1, 2>>)),
        ?_assertEqual({ok, #{1 => 3}}, dec(<<16#82, 1, 2, 1, 3>>))].

%% Pairs come in maps:to_list/1 order (for more than 32 keys that is not
%% the key order, nor the order of maps:iterator/1 on OTP 25).
map_case(N, Header) ->
    M = maps:from_list([{I, -1} || I <- lists:seq(1, N)]),
    Body = << <<(enc(K))/binary, 16#ff>> || {K, _} <- maps:to_list(M) >>,
    both(M, <<Header/binary, Body/binary>>).

%%--------------------------------------------------------------------
%% Ext types
%%--------------------------------------------------------------------

atom_test_() ->
    Long = list_to_atom(lists:duplicate(255, $z)),
    Wide = list_to_atom(lists:duplicate(255, $é)),                % 510 bytes
    [?_test(both(a, <<16#d4, 1, "a">>)),
     ?_test(both(ok, <<16#d5, 1, "ok">>)),
     ?_test(both(abc, <<16#c7, 3, 1, "abc">>)),
     ?_test(both(atom, <<16#d6, 1, "atom">>)),
     ?_test(both(hello, <<16#c7, 5, 1, "hello">>)),
     ?_test(both(infinity, <<16#d7, 1, "infinity">>)),
     ?_test(both('sixteen_chars_ab', <<16#d8, 1, "sixteen_chars_ab">>)),
     ?_test(both('seventeen_chars_a', <<16#c7, 17, 1, "seventeen_chars_a">>)),
     ?_test(both('', <<16#c7, 0, 1>>)),
     ?_test(both('héllo', <<16#c7, 6, 1, "héllo"/utf8>>)),
     ?_test(both(Long, <<16#c7, 255, 1, (atom_to_binary(Long))/binary>>)),
     ?_test(both(Wide, <<16#c8, 510:16, 1, (atom_to_binary(Wide))/binary>>)),
     %% the reserved atoms are only special as values of the mapping
     ?_test(both([true, false, none], <<16#93, 16#c3, 16#c2, 16#c0>>))].

tuple_test_() ->
    Big = binary:copy(<<"y">>, 70000),
    [?_test(both({}, <<16#d4, 2, 16#90>>)),
     ?_test(both({1}, <<16#d5, 2, 16#91, 1>>)),
     ?_test(both({1, 2, 3}, <<16#d6, 2, 16#93, 1, 2, 3>>)),
     ?_test(both({ok, 1}, <<16#c7, 6, 2, 16#92, 16#d5, 1, "ok", 1>>)),
     ?_test(both({{}}, <<16#d6, 2, 16#91, 16#d4, 2, 16#90>>)),
     ?_test(both(list_to_tuple(lists:seq(1, 16)),
                 <<16#c7, 19, 2, 16#dc, 16:16, (list_to_binary(lists:seq(1, 16)))/binary>>)),
     ?_test(both({Big}, <<16#c9, 70006:32, 2, 16#91, 16#db, 70000:32, Big/binary>>)),
     ?_test(both({binary:copy(<<"y">>, 300)},
                 <<16#c8, 304:16, 2, 16#91, 16#da, 300:16, (binary:copy(<<"y">>, 300))/binary>>)),
     ?_test(both({a, [{b, #{c => {}}}], {bytes, <<1>>}},
                 enc({a, [{b, #{c => {}}}], {bytes, <<1>>}}),
                 {a, [{b, #{c => {}}}], <<1>>}))].

pid_ref_test_() ->
    Remote = binary_to_term(<<131, 88, 119, 6, "py@box", 42:32, 1:32, 123456789:32>>),
    RemoteRef = binary_to_term(<<131, 90, 3:16, 119, 6, "py@box", 7:32, 1:32, 2:32, 3:32>>),
    Spawned = spawn(fun() -> ok end),
    [?_test(exact(3, self())),
     ?_test(exact(3, Spawned)),
     ?_test(exact(3, Remote)),
     ?_test(exact(4, make_ref())),
     ?_test(exact(4, alias())),
     ?_test(exact(4, RemoteRef)),
     ?_assertEqual(<<16#c7, 21, 3, 88, 119, 6, "py@box", 42:32, 1:32, 123456789:32>>, enc(Remote)),
     %% OTP 25 writes node names as ATOM_EXT by default: accepted too.
     ?_assertEqual({ok, Remote},
                   dec(<<16#c7, 22, 3, 88, 100, 6:16, "py@box", 42:32, 1:32, 123456789:32>>))].

%% Type T, payload = external format without 131, and an exact round trip.
exact(Type, X) ->
    <<131, Payload/binary>> = term_to_binary(X, [{minor_version, 2}]),
    Bin = enc(X),
    ?assertEqual(<<(ext_header(Type, byte_size(Payload)))/binary, Payload/binary>>, Bin),
    {ok, Y} = dec(Bin),
    ?assert(X =:= Y),
    ?assertEqual(term_to_binary(X), term_to_binary(Y)).

ext_header(Type, 1) -> <<16#d4, Type>>;
ext_header(Type, 2) -> <<16#d5, Type>>;
ext_header(Type, 4) -> <<16#d6, Type>>;
ext_header(Type, 8) -> <<16#d7, Type>>;
ext_header(Type, 16) -> <<16#d8, Type>>;
ext_header(Type, N) when N < 256 -> <<16#c7, N, Type>>;
ext_header(Type, N) when N < 65536 -> <<16#c8, N:16, Type>>;
ext_header(Type, N) -> <<16#c9, N:32, Type>>.

opaque_test_() ->
    X = 42,
    Closure = fun(Y) -> X + Y end,
    Port = binary_to_term(<<131, 89, 119, 13, "nonode@nohost", 3:32, 0:32>>),
    [?_test(exact(7, fun lists:sort/1)),
     ?_test(exact(7, Closure)),
     ?_test(exact(7, Port)),
     ?_test(exact(7, [1 | 2])),
     ?_test(exact(7, [1, 2, {bytes, <<1>>} | <<"tail">>])),
     ?_test(exact(7, <<1:3>>)),
     ?_test(exact(7, <<"abc", 5:4>>)),
     ?_test(both([<<1:1>>], <<16#91, 16#c7, 7, 7, 77, 1:32, 1, 16#80>>)),
     ?_test(both([1 | 2], <<16#c7, 9, 7, 108, 1:32, 97, 1, 97, 2>>))].

%% Large payloads of ext 7 use ext16 / ext32 headers.
opaque_large_test() ->
    Big = [<<0:8000>> | tail],                                   % improper: opaque
    <<131, Payload/binary>> = term_to_binary(Big, [{minor_version, 2}]),
    ?assertEqual(<<16#c8, (byte_size(Payload)):16, 7, Payload/binary>>, enc(Big)),
    Huge = [<<0:800000>> | tail],
    <<131, HugePayload/binary>> = term_to_binary(Huge, [{minor_version, 2}]),
    ?assertEqual(<<16#c9, (byte_size(HugePayload)):32, 7, HugePayload/binary>>, enc(Huge)),
    ?assertEqual({ok, Huge}, dec(enc(Huge))).

%%--------------------------------------------------------------------
%% API shape
%%--------------------------------------------------------------------

api_test_() ->
    [?_assertEqual({ok, 1, <<2, 3>>}, py_msgpack:decode(<<1, 2, 3>>)),
     ?_assertEqual({ok, [1], <<>>}, py_msgpack:decode(<<16#91, 1>>)),
     ?_assertEqual({error, trailing_bytes}, dec(<<1, 2>>)),
     ?_assertEqual({error, truncated}, py_msgpack:decode(<<>>)),
     %% encode/1 always returns iodata, also for a single byte
     ?_assert(is_iodata(py_msgpack:encode(5))),
     ?_assert(is_iodata(py_msgpack:encode(-1))),
     ?_assert(is_iodata(py_msgpack:encode(true))),
     ?_assert(is_iodata(py_msgpack:encode([1, <<"x">>, {bytes, <<>>}, #{a => 1}]))),
     ?_assertEqual(<<5>>, enc(5))].

is_iodata(X) ->
    try iolist_size(X) of
        _ -> true
    catch
        error:badarg -> false
    end.

decode_reply_test_() ->
    Ref = make_ref(),
    Value = enc({ok, [1, 2, 3]}),
    Reply = enc([4, Ref, {ok, [1, 2, 3]}]),
    Error = enc([5, Ref, <<"ValueError">>, <<"bad">>, <<"tb">>]),
    Long = enc([5, Ref | lists:seq(1, 20)]),
    [?_assertEqual({4, Ref, Value}, py_msgpack:decode_reply(Reply)),
     ?_assertEqual({5, Ref, iolist_to_binary([enc(<<"ValueError">>), enc(<<"bad">>),
                                              enc(<<"tb">>)])},
                   py_msgpack:decode_reply(Error)),
     ?_assertEqual({5, Ref, iolist_to_binary([enc(I) || I <- lists:seq(1, 20)])},
                   py_msgpack:decode_reply(Long)),
     ?_assertEqual({4, none, <<1>>}, py_msgpack:decode_reply(<<16#93, 4, 16#c0, 1>>)),
     ?_assertEqual({14, <<"why">>, <<>>}, py_msgpack:decode_reply(enc([14, <<"why">>]))),
     ?_assertEqual({4, 7, <<1>>}, py_msgpack:decode_reply(<<16#dc, 3:16, 4, 7, 1>>)),
     ?_assertEqual({4, 7, <<1>>}, py_msgpack:decode_reply(<<16#dd, 3:32, 4, 7, 1>>)),
     %% the body is not looked at, even when it is malformed
     ?_assertEqual({4, 7, <<16#c1, 16#c1>>},
                   py_msgpack:decode_reply(<<16#93, 4, 7, 16#c1, 16#c1>>)),
     ?_assertMatch({error, _}, py_msgpack:decode_reply(enc([15]))),
     ?_assertMatch({error, _}, py_msgpack:decode_reply(<<>>)),
     ?_assertMatch({error, _}, py_msgpack:decode_reply(enc(#{1 => 2}))),
     ?_assertMatch({error, _}, py_msgpack:decode_reply(enc([-1, 2]))),
     ?_assertMatch({error, _}, py_msgpack:decode_reply(enc([128, 2]))),
     ?_assertMatch({error, _}, py_msgpack:decode_reply(<<16#93, 4>>)),
     ?_assertMatch({error, truncated}, py_msgpack:decode_reply(binary:part(Reply, 0, 10))),
     ?_assertMatch({error, {invalid_byte, 16#c1}},
                   py_msgpack:decode_reply(<<16#93, 4, 16#c1, 1>>))].

%%--------------------------------------------------------------------
%% Malformed input
%%--------------------------------------------------------------------

malformed_test_() ->
    Ref = make_ref(),
    <<131, RefPayload/binary>> = term_to_binary(Ref),
    <<131, PidPayload/binary>> = term_to_binary(self()),
    Cases =
        [{<<>>, truncated},
         {<<16#c1>>, {invalid_byte, 16#c1}},
         {<<16#92, 1, 16#c1>>, {invalid_byte, 16#c1}},
         {<<16#cc>>, truncated},
         {<<16#cd, 1>>, truncated},
         {<<16#ce, 1, 2, 3>>, truncated},
         {<<16#cf, 1, 2, 3, 4, 5, 6, 7>>, truncated},
         {<<16#d0>>, truncated},
         {<<16#d3, 1>>, truncated},
         {<<16#cb, 1, 2, 3>>, truncated},
         {<<16#ca, 1, 2, 3>>, truncated},
         {<<16#a5, "abc">>, truncated},
         {<<16#d9>>, truncated},
         {<<16#d9, 3, "ab">>, truncated},
         {<<16#da, 0>>, truncated},
         {<<16#db, 0, 0, 0, 9, "abc">>, truncated},
         {<<16#c4, 3, 1>>, truncated},
         {<<16#c6, 255, 255, 255, 255>>, truncated},
         {<<16#93, 1, 2>>, truncated},
         {<<16#dc, 0, 3, 1>>, truncated},
         {<<16#dd, 255, 255, 255, 255>>, truncated},
         {<<16#82, 1, 2, 3>>, truncated},
         {<<16#81, 16#a1, "k">>, truncated},
         {<<16#de, 0>>, truncated},
         {<<16#df, 255, 255, 255, 255, 1>>, truncated},
         {<<16#d4, 1>>, truncated},
         {<<16#d4>>, truncated},
         {<<16#c7, 5, 1, "ab">>, truncated},
         {<<16#c8, 0>>, truncated},
         {<<16#c9, 0, 0, 1, 0, 2, 1, 2>>, truncated},
         %% bad ext payloads
         {<<16#d5, 1, 255, 254>>, {bad_ext, 1}},                         % not UTF-8
         {<<16#c8, 1, 0, 1, (binary:copy(<<"a">>, 256))/binary>>, {bad_ext, 1}}, % > 255 chars
         {<<16#d4, 2, 1>>, {bad_ext, 2}},                                 % not an array
         {<<16#d4, 2, 16#91>>, {bad_ext, 2}},                             % elements missing
         {<<16#d5, 2, 16#90, 1>>, {bad_ext, 2}},                          % trailing bytes
         {<<16#d5, 2, 16#91, 16#c1>>, {invalid_byte, 16#c1}},
         {<<16#c7, 0, 2>>, {bad_ext, 2}},
         {<<16#d4, 3, 0>>, {bad_ext, 3}},
         {ext(3, RefPayload), {bad_ext, 3}},                              % a ref, not a pid
         {ext(4, PidPayload), {bad_ext, 4}},                              % a pid, not a ref
         {ext(4, <<RefPayload/binary, 0>>), {bad_ext, 4}},                % trailing byte
         {ext(4, binary:part(RefPayload, 0, 20)), {bad_ext, 4}},
         {<<16#c7, 0, 5>>, {bad_ext, 5}},                                 % empty
         {<<16#d4, 5, 0>>, {bad_ext, 5}},                                 % no magnitude
         {<<16#d5, 5, 2, 1>>, {bad_ext, 5}},                              % bad sign
         {<<16#d4, 7, 0>>, {bad_ext, 7}},
         {ext(7, <<97>>), {bad_ext, 7}},
         {<<16#d4, 6, 0>>, {unknown_ext, 6}},
         {<<16#d4, 8, 0>>, {unknown_ext, 8}},
         {<<16#d4, 0, 0>>, {unknown_ext, 0}},
         {<<16#d6, 255, 0, 0, 0, 0>>, {unknown_ext, -1}},                 % msgpack timestamp
         {<<16#c7, 3, 127, 1, 2, 3>>, {unknown_ext, 127}},
         {<<16#c7, 3, 128, 1, 2, 3>>, {unknown_ext, -128}}],
    [{lists:flatten(io_lib:format("~w", [B])), ?_assertEqual({error, R}, dec(B))}
     || {B, R} <- Cases]
    ++ [%% NaN and infinities are not Erlang floats
        ?_assertMatch({error, _}, dec(<<16#cb, 16#7ff8:16, 0:48>>)),
        ?_assertMatch({error, _}, dec(<<16#cb, 16#7ff0:16, 0:48>>)),
        ?_assertMatch({error, _}, dec(<<16#ca, 16#7fc0:16, 0:16>>)),
        ?_assertMatch({error, _}, dec(<<16#ca, 16#ff80:16, 0:16>>))].

ext(Type, Payload) -> <<(ext_header(Type, byte_size(Payload)))/binary, Payload/binary>>.

%%--------------------------------------------------------------------
%% Depth limit
%%--------------------------------------------------------------------

deep_list_test_() ->
    {timeout, 60,
     fun() ->
             Deep = nest(100000, fun(X) -> [X] end, []),
             Bin = enc(Deep),
             ?assertEqual(100001, byte_size(Bin)),
             ?assertEqual({error, too_deep}, dec(Bin))
     end}.

depth_limit_test_() ->
    Kinds = [{"list", fun(X) -> [X] end},
             {"tuple", fun(X) -> {X} end},
             {"map", fun(X) -> #{k => X} end},
             {"map key", fun(X) -> #{X => 1} end},
             {"mixed", fun([_] = X) -> {X}; ({_} = X) -> #{1 => X}; (X) -> [X] end}],
    [{Name, ?_test(depth_case(Wrap))} || {Name, Wrap} <- Kinds].

%% 10,000 nested containers decode, 10,001 do not.
depth_case(Wrap) ->
    Ok = nest(10000, Wrap, 1),
    ?assertEqual({ok, Ok}, dec(enc(Ok))),
    ?assertEqual({error, too_deep}, dec(enc(Wrap(Ok)))),
    ?assertEqual({error, too_deep}, dec(enc(nest(20000, Wrap, <<"x">>)))),
    %% empty containers count as a level too
    ?assertEqual({ok, nest(9999, Wrap, [])}, dec(enc(nest(9999, Wrap, [])))),
    ?assertEqual({error, too_deep}, dec(enc(nest(10000, Wrap, [])))).

%% Deep tuples encode in linear time (the tuple ext needs its payload size).
deep_tuple_test_() ->
    {timeout, 60,
     fun() ->
             Deep = nest(100000, fun(X) -> {X} end, x),
             Bin = enc(Deep),
             ?assertEqual({error, too_deep}, dec(Bin)),
             Mixed = nest(3000, fun(X) -> {a, [X, <<"s">>], #{k => {}}} end, 1),
             ?assertEqual({ok, Mixed}, dec(enc(Mixed)))
     end}.

nest(0, _, X) -> X;
nest(N, Wrap, X) -> nest(N - 1, Wrap, Wrap(X)).

%%--------------------------------------------------------------------
%% Properties
%%--------------------------------------------------------------------

proper_roundtrip_test_() ->
    {timeout, 600, ?_assert(proper:quickcheck(prop_roundtrip(), ?PROPER_OPTS(2000)))}.

proper_truncated_test_() ->
    {timeout, 600, ?_assert(proper:quickcheck(prop_truncated(), ?PROPER_OPTS(300)))}.

proper_corrupted_test_() ->
    {timeout, 600, ?_assert(proper:quickcheck(prop_corrupted(), ?PROPER_OPTS(1000)))}.

proper_random_bytes_test_() ->
    {timeout, 600, ?_assert(proper:quickcheck(prop_random_bytes(), ?PROPER_OPTS(1000)))}.

%% Random terms round-trip exactly (up to the one-way parts of the mapping)
%% and their encoding is canonical: decoding a canonical encoding and
%% encoding again gives the same bytes.
prop_roundtrip() ->
    proper:forall(
      term_gen(),
      fun(T) ->
              Bin = enc(T),
              Expected = expected(T),
              case dec(Bin) of
                  {ok, Got} when Got =:= Expected ->
                      true;
                  Other ->
                      io:format("~p~n  encoded ~w~n  decoded ~p~n", [T, Bin, Other]),
                      false
              end
      end).

%% Every strict prefix of an encoding is an error, never a crash.
prop_truncated() ->
    proper:forall(
      term_gen(),
      fun(T) ->
              Bin = enc(T),
              Size = byte_size(Bin),
              Step = max(1, Size div 64),
              lists:all(fun(N) -> is_error(py_msgpack:decode(binary:part(Bin, 0, N))) end,
                        lists:seq(0, Size - 1, Step))
      end).

%% Changing one byte never crashes the decoder.
prop_corrupted() ->
    proper:forall(
      {term_gen(), proper_types:non_neg_integer(), proper_types:byte()},
      fun({T, Pos0, Byte}) ->
              Bin = enc(T),
              Pos = Pos0 rem byte_size(Bin),
              <<Pre:Pos/binary, _, Post/binary>> = Bin,
              is_result(py_msgpack:decode(<<Pre/binary, Byte, Post/binary>>))
      end).

prop_random_bytes() ->
    proper:forall(
      proper_types:binary(),
      fun(B) -> is_result(py_msgpack:decode(B)) andalso is_result(py_msgpack:decode_reply(B)) end).

is_error({error, _}) -> true;
is_error(_) -> false.

is_result({ok, _, Rest}) -> is_binary(Rest);
is_result({error, _}) -> true;
is_result({Type, _, Rest}) -> is_integer(Type) andalso is_binary(Rest);
is_result(_) -> false.

%% What decoding gives back for T.
expected({bytes, B}) when is_binary(B) -> B;
expected(nil) -> none;
expected(undefined) -> none;
expected(L) when is_list(L) ->
    case is_proper(L) of
        true -> [expected(X) || X <- L];
        false -> L                                    % opaque: untouched
    end;
expected(T) when is_tuple(T) -> list_to_tuple([expected(X) || X <- tuple_to_list(T)]);
expected(M) when is_map(M) ->
    maps:from_list([{expected(K), expected(V)} || {K, V} <- maps:to_list(M)]);
expected(X) -> X.

is_proper([_ | T]) -> is_proper(T);
is_proper([]) -> true;
is_proper(_) -> false.

%% Generators (proper_types without the proper.hrl macros).

term_gen() ->
    Leaf = leaf_gen(fixed_terms()),
    proper_types:sized(fun(Size) -> term_gen(Size, Leaf) end).

%% The types are built eagerly: the size shrinks by 3 at each level.
term_gen(Size, Leaf) when Size =< 1 ->
    Leaf;
term_gen(Size, Leaf) ->
    Sub = term_gen(Size div 3, Leaf),
    List = list_of(Sub),
    proper_types:frequency(
      [{4, Leaf},
       {1, List},
       {1, let_(List, fun list_to_tuple/1)},
       {1, let_(list_of(proper_types:tuple([Sub, Sub])), fun maps:from_list/1)},
       %% often an improper list
       {1, let_(proper_types:tuple([List, Sub]), fun({L, Tail}) -> L ++ Tail end)}]).

list_of(Type) ->
    let_(proper_types:range(0, 12), fun(N) -> proper_types:vector(N, Type) end).

leaf_gen(Fixed) ->
    proper_types:frequency(
      [{3, proper_types:integer()},
       {1, proper_types:largeint()},
       {1, let_(proper_types:tuple([proper_types:integer(), proper_types:range(0, 300)]),
                fun({I, Shift}) -> I bsl Shift end)},
       {1, proper_types:elements(int_boundaries())},
       {2, proper_types:float()},
       {1, let_(proper_types:binary(8), fun float_from_bits/1)},
       {1, proper_types:elements([0.0, -0.0, 5.0e-324, 1.7976931348623157e308, 1.0e21])},
       {3, proper_types:binary()},
       {1, let_(proper_types:range(0, 70000), fun(N) -> binary:copy(<<"z">>, N) end)},
       {1, let_(proper_types:range(0, 300), fun(N) -> lists:seq(1, N) end)},
       {1, proper_unicode:utf8()},
       {1, let_(proper_types:binary(), fun(B) -> {bytes, B} end)},
       {2, proper_types:atom()},
       {1, let_(proper_types:list(proper_types:range(0, 16#2fff)), fun unicode_atom/1)},
       {1, proper_types:elements([true, false, none, nil, undefined, bytes, ok, error])},
       {1, proper_types:bitstring()},
       {1, proper_types:elements(Fixed)}]).

let_(Type, Fun) -> proper_types:bind(Type, Fun, false).

int_boundaries() ->
    lists:usort(lists:append(
                  [[B - 1, B, B + 1, -B - 1, -B, -B + 1]
                   || B <- [0, 32, 128, 256, 32768, 65536,
                            1 bsl 31, 1 bsl 32, 1 bsl 63, 1 bsl 64]])).

float_from_bits(<<F:64/float>>) -> F;
float_from_bits(_) -> 1.0.                                      % NaN, infinity

unicode_atom(Chars) ->
    list_to_atom(lists:sublist([C || C <- Chars, C < 16#d800 orelse C > 16#dfff], 255)).

%% Pids, references, ports and funs: built once, picked at random.
fixed_terms() ->
    Remote = binary_to_term(<<131, 88, 119, 6, "py@box", 42:32, 1:32, 123456789:32>>),
    RemoteRef = binary_to_term(<<131, 90, 3:16, 119, 6, "py@box", 7:32, 1:32, 2:32, 3:32>>),
    Port = binary_to_term(<<131, 89, 119, 13, "nonode@nohost", 3:32, 0:32>>),
    X = 7,
    [self(), spawn(fun() -> ok end), Remote, make_ref(), alias(), RemoteRef, Port,
     fun lists:sort/1, fun(Y) -> X + Y end, [a | b], <<1:7>>].
