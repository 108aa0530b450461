%% @doc The msgpack codec of the erlang_python wire protocol.
%%
%% Implements the type mapping and canonical encoding rules of
%% `spec/PROTOCOL.md':
%%
%% <table>
%%   <tr><th>Erlang</th><th>msgpack</th></tr>
%%   <tr><td>integer in [-2^63, 2^64)</td><td>int / uint, shortest form</td></tr>
%%   <tr><td>other integer</td><td>ext 5 (bigint)</td></tr>
%%   <tr><td>float</td><td>float64 (float32 accepted on input)</td></tr>
%%   <tr><td>binary</td><td>str</td></tr>
%%   <tr><td>`{bytes, Binary}'</td><td>bin (decodes to a plain binary)</td></tr>
%%   <tr><td>`true', `false'</td><td>bool</td></tr>
%%   <tr><td>`none', `nil', `undefined'</td><td>nil (decodes to `none', or to
%%       `nil' with the application env `none_as' set to `nil': see
%%       {@link set_none_as/1})</td></tr>
%%   <tr><td>other atom</td><td>ext 1 (atom)</td></tr>
%%   <tr><td>proper list</td><td>array</td></tr>
%%   <tr><td>tuple</td><td>ext 2 (payload: msgpack array of the elements)</td></tr>
%%   <tr><td>map</td><td>map, in `maps:to_list/1' order</td></tr>
%%   <tr><td>pid</td><td>ext 3</td></tr>
%%   <tr><td>reference</td><td>ext 4</td></tr>
%%   <tr><td>anything else (funs, ports, improper lists, bitstrings)</td>
%%       <td>ext 7 (opaque term)</td></tr>
%% </table>
%%
%% Ext 3, 4 and 7 carry the external term format without the leading
%% version byte 131. It is produced with `{minor_version, 2}' (UTF-8 atoms,
%% the default from OTP 26 on) so that OTP 25 writes the same bytes as later
%% releases.
%%
%% Every term can be encoded. Decoding never raises on malformed input: it
%% returns `{error, Reason}'. Decoding stops with `{error, too_deep}' when
%% containers (arrays, maps, tuples) are nested more than 10,000 levels deep;
%% encoding has no depth limit. An atom (ext 1) that does not exist yet is
%% created only within the node's budget (py_atoms); pids, references and
%% opaque terms (ext 3, 4, 7) never create atoms.
%%
%% Encoding returns iodata built head-first; decoding uses binary matching
%% and builds lists head-first with counted body recursion.
-module(py_msgpack).

-include("py_protocol.hrl").

-export([encode/1, decode/1, decode_all/1, decode_reply/1, set_none_as/1, none_as/0]).

-export_type([decode_error/0]).

-type decode_error() ::
    truncated
    | too_deep
    | trailing_bytes
    | {invalid_byte, byte()}
    | {unknown_ext, integer()}
    | {bad_ext, integer()}
    | {bad_reply, binary()}
    | {atom_limit, non_neg_integer()}
    | {malformed, term()}.
%% Why a decode failed: `truncated' (the input ends inside a value),
%% `too_deep' (nesting deeper than 10,000), `trailing_bytes' (only from
%% {@link decode_all/1}), `{invalid_byte, 16#c1}' (the reserved byte),
%% `{unknown_ext, Type}', `{bad_ext, Type}' (a known ext type whose payload
%% is invalid), `{bad_reply, Prefix}' (only from {@link decode_reply/1}: the
%% message is not an array of at least two elements starting with a
%% positive fixint; `Prefix' is its first bytes), `{atom_limit, Limit}' (an
%% atom that does not exist yet, with the node's budget of atoms created from
%% decoded data spent: see py_atoms).

%% The atom msgpack nil decodes to: a persistent term, read only when a nil is
%% decoded (a lookup of a few nanoseconds), written when the application starts.
-define(NONE_AS, {?MODULE, none_as}).
-define(T2B_OPTS, [{minor_version, 2}]).

-compile({inline, [enc_str/1, enc_bin/1, enc_int/1, enc_atom/1, enc_opaque/2,
                   arr_hdr/1, arr_hdr_size/1, map_hdr/1, map_hdr_size/1,
                   ext_hdr/2, ext_hdr_size/1, iosize/1, t2b/1,
                   dec_str/2]}).

%%====================================================================
%% Encoding
%%====================================================================

%% @doc Encodes `Term' as one msgpack value in canonical form.
%%
%% Never fails: terms with no msgpack counterpart are encoded as ext 7
%% (opaque term).
-spec encode(term()) -> iodata().
encode(Term) ->
    case enc(Term) of
        Byte when is_integer(Byte) -> [Byte];
        IoData -> IoData
    end.

%% enc/1 returns an iolist element: a byte, a binary or an iolist
%% (possibly with a binary tail).
enc(B) when is_binary(B) -> enc_str(B);
enc(I) when is_integer(I) -> enc_int(I);
enc([]) -> 16#90;
enc(L) when is_list(L) ->
    try length(L) of
        N -> [arr_hdr(N) | enc_elems(L)]
    catch
        error:badarg -> enc_opaque(?PY_EXT_OPAQUE, L)
    end;
enc(A) when is_atom(A) -> enc_atom(A);
enc(M) when is_map(M) ->
    [map_hdr(map_size(M)) | enc_pairs(maps:to_list(M))];
enc({bytes, B}) when is_binary(B) -> enc_bin(B);
enc(T) when is_tuple(T) ->
    {Payload, Size} = tuple_payload(T),
    [ext_hdr(?PY_EXT_TUPLE, Size), Payload];
enc(F) when is_float(F) -> <<16#cb, F/float>>;
enc(P) when is_pid(P) -> enc_opaque(?PY_EXT_PID, P);
enc(R) when is_reference(R) -> enc_opaque(?PY_EXT_REF, R);
enc(X) -> enc_opaque(?PY_EXT_OPAQUE, X).

enc_elems([H | T]) -> [enc(H) | enc_elems(T)];
enc_elems([]) -> [].

enc_pairs([{K, V} | T]) -> [enc(K), enc(V) | enc_pairs(T)];
enc_pairs([]) -> [].

enc_str(B) ->
    case byte_size(B) of
        N when N < 32 -> [16#a0 + N, B];
        N when N < 256 -> [16#d9, N, B];
        N when N < 16#10000 -> [<<16#da, N:16>>, B];
        N -> [<<16#db, N:32>>, B]
    end.

enc_bin(B) ->
    case byte_size(B) of
        N when N < 256 -> [16#c4, N, B];
        N when N < 16#10000 -> [<<16#c5, N:16>>, B];
        N -> [<<16#c6, N:32>>, B]
    end.

enc_int(I) when I >= 0 ->
    if
        I < 16#80 -> I;
        I < 16#100 -> <<16#cc, I>>;
        I < 16#10000 -> <<16#cd, I:16>>;
        I < 16#100000000 -> <<16#ce, I:32>>;
        I < 16#10000000000000000 -> <<16#cf, I:64>>;
        true -> enc_bigint(0, I)
    end;
enc_int(I) ->
    if
        I >= -32 -> I + 256;
        I >= -16#80 -> <<16#d0, I:8>>;
        I >= -16#8000 -> <<16#d1, I:16>>;
        I >= -16#80000000 -> <<16#d2, I:32>>;
        I >= -16#8000000000000000 -> <<16#d3, I:64>>;
        true -> enc_bigint(1, -I)
    end.

enc_bigint(Sign, Magnitude) ->
    Payload = <<Sign, (binary:encode_unsigned(Magnitude))/binary>>,
    [ext_hdr(?PY_EXT_BIGINT, byte_size(Payload)), Payload].

enc_atom(true) -> 16#c3;
enc_atom(false) -> 16#c2;
enc_atom(none) -> 16#c0;
enc_atom(nil) -> 16#c0;
enc_atom(undefined) -> 16#c0;
enc_atom(A) ->
    Name = atom_to_binary(A, utf8),
    [ext_hdr(?PY_EXT_ATOM, byte_size(Name)), Name].

enc_opaque(Type, X) ->
    Payload = t2b(X),
    [ext_hdr(Type, byte_size(Payload)), Payload].

t2b(X) ->
    <<131, Payload/binary>> = term_to_binary(X, ?T2B_OPTS),
    Payload.

%% The payload of a tuple ext (an array of the elements) and its size.
%% Everything below a tuple is encoded by es/1, which also returns the
%% size, so that nested tuples cost linear time.
tuple_payload(T) ->
    N = tuple_size(T),
    {Elems, Size} = es_telems(1, N, T),
    {[arr_hdr(N) | Elems], Size + arr_hdr_size(N)}.

es_telems(I, N, T) when I =< N ->
    {E, S} = es(element(I, T)),
    {Rest, RestSize} = es_telems(I + 1, N, T),
    {[E | Rest], S + RestSize};
es_telems(_, _, _) ->
    {[], 0}.

%% Sized encoding: {IoData, byte size}.
es(B) when is_binary(B) ->
    N = byte_size(B),
    if
        N < 32 -> {[16#a0 + N, B], N + 1};
        N < 256 -> {[16#d9, N, B], N + 2};
        N < 16#10000 -> {[<<16#da, N:16>>, B], N + 3};
        true -> {[<<16#db, N:32>>, B], N + 5}
    end;
es(I) when is_integer(I) ->
    E = enc_int(I),
    {E, iosize(E)};
es(A) when is_atom(A) -> es_atom(A);
es([]) -> {16#90, 1};
es(L) when is_list(L) ->
    try length(L) of
        N ->
            {Elems, Size} = es_elems(L),
            {[arr_hdr(N) | Elems], Size + arr_hdr_size(N)}
    catch
        error:badarg -> es_scalar(L)
    end;
es(M) when is_map(M) ->
    N = map_size(M),
    {Pairs, Size} = es_pairs(maps:to_list(M)),
    {[map_hdr(N) | Pairs], Size + map_hdr_size(N)};
es({bytes, B}) when is_binary(B) -> es_scalar({bytes, B});
es(T) when is_tuple(T) ->
    {Payload, Size} = tuple_payload(T),
    {[ext_hdr(?PY_EXT_TUPLE, Size), Payload], Size + ext_hdr_size(Size)};
es(F) when is_float(F) -> {<<16#cb, F/float>>, 9};
es(X) -> es_scalar(X).

es_atom(true) -> {16#c3, 1};
es_atom(false) -> {16#c2, 1};
es_atom(none) -> {16#c0, 1};
es_atom(nil) -> {16#c0, 1};
es_atom(undefined) -> {16#c0, 1};
es_atom(A) ->
    Name = atom_to_binary(A, utf8),
    N = byte_size(Name),
    {[ext_hdr(?PY_EXT_ATOM, N), Name], N + ext_hdr_size(N)}.

es_scalar(X) ->
    E = enc(X),
    {E, iosize(E)}.

es_elems([H | T]) ->
    {E, S} = es(H),
    {Rest, RestSize} = es_elems(T),
    {[E | Rest], S + RestSize};
es_elems([]) ->
    {[], 0}.

es_pairs([{K, V} | T]) ->
    {EK, SK} = es(K),
    {EV, SV} = es(V),
    {Rest, RestSize} = es_pairs(T),
    {[EK, EV | Rest], SK + SV + RestSize};
es_pairs([]) ->
    {[], 0}.

iosize(B) when is_integer(B) -> 1;
iosize(B) when is_binary(B) -> byte_size(B);
iosize(IoData) -> iolist_size(IoData).

arr_hdr(N) when N < 16 -> 16#90 + N;
arr_hdr(N) when N < 16#10000 -> <<16#dc, N:16>>;
arr_hdr(N) -> <<16#dd, N:32>>.

arr_hdr_size(N) when N < 16 -> 1;
arr_hdr_size(N) when N < 16#10000 -> 3;
arr_hdr_size(_) -> 5.

map_hdr(N) when N < 16 -> 16#80 + N;
map_hdr(N) when N < 16#10000 -> <<16#de, N:16>>;
map_hdr(N) -> <<16#df, N:32>>.

map_hdr_size(N) -> arr_hdr_size(N).

ext_hdr(Type, 1) -> <<16#d4, Type>>;
ext_hdr(Type, 2) -> <<16#d5, Type>>;
ext_hdr(Type, 4) -> <<16#d6, Type>>;
ext_hdr(Type, 8) -> <<16#d7, Type>>;
ext_hdr(Type, 16) -> <<16#d8, Type>>;
ext_hdr(Type, N) when N < 16#100 -> <<16#c7, N, Type>>;
ext_hdr(Type, N) when N < 16#10000 -> <<16#c8, N:16, Type>>;
ext_hdr(Type, N) -> <<16#c9, N:32, Type>>.

ext_hdr_size(N) when N =:= 1; N =:= 2; N =:= 4; N =:= 8; N =:= 16 -> 2;
ext_hdr_size(N) when N < 16#100 -> 3;
ext_hdr_size(N) when N < 16#10000 -> 4;
ext_hdr_size(_) -> 6.

%%====================================================================
%% Decoding
%%====================================================================

%% @doc Sets the atom that msgpack nil (Python's None) decodes to from now on:
%% `none' (the default) or `nil' (Elixir's nil). erlang_python_app calls it with
%% the application env `none_as' when the application starts.
-spec set_none_as(none | nil) -> ok | {error, {badarg, {none_as, term()}}}.
set_none_as(Atom) when Atom =:= none; Atom =:= nil ->
    case persistent_term:get(?NONE_AS, none) of
        Atom -> ok;  % unchanged: no global garbage collection for nothing
        _ -> persistent_term:put(?NONE_AS, Atom)
    end;
set_none_as(Other) ->
    {error, {badarg, {none_as, Other}}}.

%% @doc The atom msgpack nil decodes to.
-spec none_as() -> none | nil.
none_as() ->
    persistent_term:get(?NONE_AS, none).

%% @doc Decodes one msgpack value from the front of `Binary'.
%%
%% Returns the term and the bytes that follow it.
-spec decode(binary()) -> {ok, term(), binary()} | {error, decode_error()}.
decode(Bin) when is_binary(Bin) ->
    try dec(Bin, 0) of
        {Term, Rest} -> {ok, Term, Rest}
    catch
        throw:Reason -> {error, Reason};
        error:Reason -> {error, {malformed, Reason}}
    end.

%% @doc Decodes `Binary', which must hold exactly one msgpack value.
-spec decode_all(binary()) -> {ok, term()} | {error, decode_error()}.
decode_all(Bin) when is_binary(Bin) ->
    case decode(Bin) of
        {ok, Term, <<>>} -> {ok, Term};
        {ok, _, _} -> {error, trailing_bytes};
        {error, _} = Error -> Error
    end.

%% @doc Splits a message without decoding its body.
%%
%% `Message' is a whole message (a msgpack array whose first element is the
%% message type, a positive fixint). Only the type and the second element
%% (the request id of replies) are decoded; `Rest' holds the bytes of the
%% remaining elements, undecoded.
-spec decode_reply(binary()) ->
    {Type :: 0..127, ReqId :: term(), Rest :: binary()} | {error, decode_error()}.
decode_reply(<<H, Type, Rest/binary>>) when H >= 16#92, H =< 16#9f, Type < 16#80 ->
    reply_id(Type, Rest);
decode_reply(<<16#dc, N:16, Type, Rest/binary>>) when N >= 2, Type < 16#80 ->
    reply_id(Type, Rest);
decode_reply(<<16#dd, N:32, Type, Rest/binary>>) when N >= 2, Type < 16#80 ->
    reply_id(Type, Rest);
decode_reply(Bin) when is_binary(Bin) ->
    {error, {bad_reply, binary:part(Bin, 0, min(byte_size(Bin), 16))}}.

reply_id(Type, Bin) ->
    try dec(Bin, 1) of
        {ReqId, Rest} -> {Type, ReqId, Rest}
    catch
        throw:Reason -> {error, Reason};
        error:Reason -> {error, {malformed, Reason}}
    end.

%% dec(Bin, Depth) -> {Term, Rest}; throws a decode_error() on bad input.
%% Depth is the number of containers around the value.
%%
%% Every clause matches `<<Byte, R/binary>>' so that the first byte is
%% read once and dispatched on; the helpers start by matching their binary
%% argument so that the compiler can hand them the match context instead
%% of a new sub-binary.
dec(<<B, R/binary>>, _) when B < 16#80 -> {B, R};
dec(<<B, R/binary>>, _) when B >= 16#e0 -> {B - 256, R};
dec(<<B, R/binary>>, _) when B >= 16#a0, B < 16#c0 -> dec_str(B - 16#a0, R);
dec(<<B, R/binary>>, D) when B >= 16#91, B < 16#a0, D < ?PY_MAX_DEPTH ->
    dec_elems(B - 16#90, R, D + 1);
dec(<<B, R/binary>>, D) when B >= 16#81, B < 16#90, D < ?PY_MAX_DEPTH -> dec_map(B - 16#80, R, D + 1);
dec(<<16#90, R/binary>>, D) when D < ?PY_MAX_DEPTH -> {[], R};
dec(<<16#80, R/binary>>, D) when D < ?PY_MAX_DEPTH -> {#{}, R};
dec(<<B, _/binary>>, _) when B >= 16#80, B < 16#a0 -> throw(too_deep);
dec(<<16#c0, R/binary>>, _) -> {persistent_term:get(?NONE_AS, none), R};
dec(<<16#c2, R/binary>>, _) -> {false, R};
dec(<<16#c3, R/binary>>, _) -> {true, R};
dec(<<16#cc, R/binary>>, _) -> case R of <<I, T/binary>> -> {I, T}; _ -> throw(truncated) end;
dec(<<16#cd, R/binary>>, _) -> case R of <<I:16, T/binary>> -> {I, T}; _ -> throw(truncated) end;
dec(<<16#ce, R/binary>>, _) -> case R of <<I:32, T/binary>> -> {I, T}; _ -> throw(truncated) end;
dec(<<16#cf, R/binary>>, _) -> case R of <<I:64, T/binary>> -> {I, T}; _ -> throw(truncated) end;
dec(<<16#d0, R/binary>>, _) ->
    case R of <<I:8/signed, T/binary>> -> {I, T}; _ -> throw(truncated) end;
dec(<<16#d1, R/binary>>, _) ->
    case R of <<I:16/signed, T/binary>> -> {I, T}; _ -> throw(truncated) end;
dec(<<16#d2, R/binary>>, _) ->
    case R of <<I:32/signed, T/binary>> -> {I, T}; _ -> throw(truncated) end;
dec(<<16#d3, R/binary>>, _) ->
    case R of <<I:64/signed, T/binary>> -> {I, T}; _ -> throw(truncated) end;
dec(<<16#cb, R/binary>>, _) ->
    case R of
        <<F:64/float, T/binary>> -> {F, T};
        <<_:64, _/binary>> -> throw({malformed, float64});
        _ -> throw(truncated)
    end;
dec(<<16#ca, R/binary>>, _) ->
    case R of
        <<F:32/float, T/binary>> -> {F, T};
        <<_:32, _/binary>> -> throw({malformed, float32});
        _ -> throw(truncated)
    end;
dec(<<16#d9, R/binary>>, _) ->
    case R of <<N, T/binary>> -> dec_str(N, T); _ -> throw(truncated) end;
dec(<<16#da, R/binary>>, _) ->
    case R of <<N:16, T/binary>> -> dec_str(N, T); _ -> throw(truncated) end;
dec(<<16#db, R/binary>>, _) ->
    case R of <<N:32, T/binary>> -> dec_str(N, T); _ -> throw(truncated) end;
dec(<<16#c4, R/binary>>, _) ->
    case R of <<N, T/binary>> -> dec_str(N, T); _ -> throw(truncated) end;
dec(<<16#c5, R/binary>>, _) ->
    case R of <<N:16, T/binary>> -> dec_str(N, T); _ -> throw(truncated) end;
dec(<<16#c6, R/binary>>, _) ->
    case R of <<N:32, T/binary>> -> dec_str(N, T); _ -> throw(truncated) end;
dec(<<16#dc, R/binary>>, D) when D < ?PY_MAX_DEPTH ->
    case R of <<N:16, T/binary>> -> dec_array(N, T, D + 1); _ -> throw(truncated) end;
dec(<<16#dd, R/binary>>, D) when D < ?PY_MAX_DEPTH ->
    case R of <<N:32, T/binary>> -> dec_array(N, T, D + 1); _ -> throw(truncated) end;
dec(<<16#de, R/binary>>, D) when D < ?PY_MAX_DEPTH ->
    case R of <<N:16, T/binary>> -> dec_map_n(N, T, D + 1); _ -> throw(truncated) end;
dec(<<16#df, R/binary>>, D) when D < ?PY_MAX_DEPTH ->
    case R of <<N:32, T/binary>> -> dec_map_n(N, T, D + 1); _ -> throw(truncated) end;
dec(<<B, _/binary>>, _) when B >= 16#dc, B =< 16#df -> throw(too_deep);
dec(<<H, R/binary>>, D) when H >= 16#d4, H =< 16#d8 ->  % fixext 1, 2, 4, 8, 16
    dec_ext(1 bsl (H - 16#d4), R, D);
dec(<<16#c7, N, R/binary>>, D) -> dec_ext(N, R, D);
dec(<<16#c8, N:16, R/binary>>, D) -> dec_ext(N, R, D);
dec(<<16#c9, N:32, R/binary>>, D) -> dec_ext(N, R, D);
dec(<<H, _/binary>>, _) when H >= 16#c7, H =< 16#c9 -> throw(truncated);
dec(<<16#c1, _/binary>>, _) -> throw({invalid_byte, 16#c1});
dec(<<>>, _) -> throw(truncated).

%% An ext of N payload bytes: its type byte, then the payload.
dec_ext(N, R, D) ->
    case R of
        <<X:8/signed, P:N/binary, T/binary>> -> {ext_term(X, P, D), T};
        _ -> throw(truncated)
    end.

%% array16/32 and map16/32 may hold zero elements (not canonical, accepted).
dec_array(0, R, _) -> {[], R};
dec_array(N, R, D) -> dec_elems(N, R, D).

dec_map_n(0, R, _) -> {#{}, R};
dec_map_n(N, R, D) -> dec_map(N, R, D).

dec_str(N, R) ->
    case R of
        <<S:N/binary, T/binary>> -> {S, T};
        _ -> throw(truncated)
    end.

%% dec_elems(N, Bin, D): N > 0 elements at depth D. Body recursion builds
%% the list head-first. The common scalars (positive fixint, fixstr) are
%% decoded in place so that the match context runs on without a sub-binary
%% per element; nested fixarrays and fixmaps skip the dispatch of dec/2; and
%% the last element returns the rest directly instead of recursing once more
%% on an empty count.
dec_elems(N, <<B, R/binary>>, D) when B < 16#80 ->
    if
        N =:= 1 ->
            {[B], R};
        true ->
            {T, Rest} = dec_elems(N - 1, R, D),
            {[B | T], Rest}
    end;
dec_elems(N, <<B, R0/binary>>, D) when B >= 16#a0, B < 16#c0 ->
    L = B - 16#a0,
    case R0 of
        <<S:L/binary, R/binary>> when N =:= 1 ->
            {[S], R};
        <<S:L/binary, R/binary>> ->
            {T, Rest} = dec_elems(N - 1, R, D),
            {[S | T], Rest};
        _ ->
            throw(truncated)
    end;
dec_elems(N, <<B, R/binary>>, D) when B >= 16#91, B < 16#a0, D < ?PY_MAX_DEPTH ->
    {H, R1} = dec_elems(B - 16#90, R, D + 1),
    if
        N =:= 1 ->
            {[H], R1};
        true ->
            {T, Rest} = dec_elems(N - 1, R1, D),
            {[H | T], Rest}
    end;
dec_elems(N, <<B, R/binary>>, D) when B >= 16#81, B < 16#90, D < ?PY_MAX_DEPTH ->
    {H, R1} = dec_map(B - 16#80, R, D + 1),
    if
        N =:= 1 ->
            {[H], R1};
        true ->
            {T, Rest} = dec_elems(N - 1, R1, D),
            {[H | T], Rest}
    end;
dec_elems(1, R0, D) ->
    {H, R} = dec(R0, D),
    {[H], R};
dec_elems(N, R0, D) ->
    {H, R} = dec(R0, D),
    {T, Rest} = dec_elems(N - 1, R, D),
    {[H | T], Rest}.

%% dec_map(N, Bin, D): N > 0 pairs; D is the depth of the keys and values.
dec_map(N, R, D) ->
    {Pairs, Rest} = dec_pairs(N, R, D),
    {maps:from_list(Pairs), Rest}.

dec_pairs(N, <<B, R0/binary>>, D) when B >= 16#a0, B < 16#c0 ->
    L = B - 16#a0,
    case R0 of
        <<K:L/binary, R/binary>> -> dec_value(K, N, R, D);
        _ -> throw(truncated)
    end;
dec_pairs(N, R0, D) ->
    {K, R} = dec(R0, D),
    dec_value(K, N, R, D).

dec_value(K, N, <<B, R/binary>>, D) when B < 16#80 ->
    if
        N =:= 1 ->
            {[{K, B}], R};
        true ->
            {T, Rest} = dec_pairs(N - 1, R, D),
            {[{K, B} | T], Rest}
    end;
dec_value(K, N, <<B, R0/binary>>, D) when B >= 16#a0, B < 16#c0 ->
    L = B - 16#a0,
    case R0 of
        <<V:L/binary, R/binary>> when N =:= 1 ->
            {[{K, V}], R};
        <<V:L/binary, R/binary>> ->
            {T, Rest} = dec_pairs(N - 1, R, D),
            {[{K, V} | T], Rest};
        _ ->
            throw(truncated)
    end;
dec_value(K, 1, R0, D) ->
    {V, R} = dec(R0, D),
    {[{K, V}], R};
dec_value(K, N, R0, D) ->
    {V, R} = dec(R0, D),
    {T, Rest} = dec_pairs(N - 1, R, D),
    {[{K, V} | T], Rest}.

ext_term(?PY_EXT_ATOM, Name, _) ->
    %% An atom that exists costs one lookup; a new one is charged to the
    %% node's budget (py_atoms), as port data must not fill the atom table.
    try binary_to_existing_atom(Name, utf8)
    catch error:_ -> py_atoms:existing_or_new(Name)
    end;
ext_term(?PY_EXT_TUPLE, Payload, D) when D < ?PY_MAX_DEPTH ->
    {N, Elems} =
        case Payload of
            <<H, E/binary>> when H >= 16#90, H < 16#a0 -> {H - 16#90, E};
            <<16#dc, Len:16, E/binary>> -> {Len, E};
            <<16#dd, Len:32, E/binary>> -> {Len, E};
            _ -> throw({bad_ext, ?PY_EXT_TUPLE})
        end,
    case dec_tuple_elems(N, Elems, D + 1) of
        {List, <<>>} -> list_to_tuple(List);
        _ -> throw({bad_ext, ?PY_EXT_TUPLE})
    end;
ext_term(?PY_EXT_TUPLE, _, _) ->
    throw(too_deep);
ext_term(?PY_EXT_PID, Payload, _) ->
    case b2t(Payload) of
        {ok, Pid} when is_pid(Pid) -> Pid;
        _ -> throw({bad_ext, ?PY_EXT_PID})
    end;
ext_term(?PY_EXT_REF, Payload, _) ->
    case b2t(Payload) of
        {ok, Ref} when is_reference(Ref) -> Ref;
        _ -> throw({bad_ext, ?PY_EXT_REF})
    end;
ext_term(?PY_EXT_BIGINT, <<Sign, Magnitude/binary>>, _) when Sign =< 1, Magnitude =/= <<>> ->
    case binary:decode_unsigned(Magnitude) of
        I when Sign =:= 0 -> I;
        I -> -I
    end;
ext_term(?PY_EXT_BIGINT, _, _) ->
    throw({bad_ext, ?PY_EXT_BIGINT});
ext_term(?PY_EXT_OPAQUE, Payload, _) ->
    case b2t(Payload) of
        {ok, Term} -> Term;
        error -> throw({bad_ext, ?PY_EXT_OPAQUE})
    end;
ext_term(Type, _, _) ->
    throw({unknown_ext, Type}).

%% A truncated element inside a tuple payload is a bad payload, not a
%% truncated input.
dec_tuple_elems(N, Elems, D) ->
    try
        dec_array(N, Elems, D)
    catch
        throw:truncated -> throw({bad_ext, ?PY_EXT_TUPLE})
    end.

%% The whole payload must be one term in external format.
b2t(Payload) ->
    Size = byte_size(Payload) + 1,
    %% `safe': pids, references and opaque terms were made by a node, whose
    %% atoms exist; bytes that would create atoms are not such a term.
    try binary_to_term(<<131, Payload/binary>>, [safe, used]) of
        {Term, Size} -> {ok, Term};
        _ -> error
    catch
        error:_ -> error
    end.
