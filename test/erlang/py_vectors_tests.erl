%% @doc The golden vectors of `spec/vectors/' against py_msgpack: every
%% `NAME.mp' decodes to the term of `NAME.term', and that term encodes to
%% exactly the bytes of `NAME.mp'.
%%
%% The directory is `$EP_SPEC_DIR/vectors' (or `$EP_SPEC_DIR' itself if it
%% holds the `.mp' files) when `EP_SPEC_DIR' is set, else `spec/vectors'
%% under the current directory, else `spec/vectors' found by walking up from
%% this module's beam.
-module(py_vectors_tests).

-include_lib("eunit/include/eunit.hrl").

%% At least this many vectors must be found: a missing directory is a failure.
-define(MIN_VECTORS, 90).

vectors_test_() ->
    Dir = vector_dir(),
    Names = vector_names(Dir),
    [?_assert(length(Names) >= ?MIN_VECTORS),
     ?_assertEqual([], unpaired(Dir))
     | [{Name, fun() -> check(Dir, Name) end} || Name <- Names]].

check(Dir, Name) ->
    {ok, Bytes} = file:read_file(filename:join(Dir, Name ++ ".mp")),
    {ok, [Text]} = file:consult(filename:join(Dir, Name ++ ".term")),
    Term = from_text(Text),
    ?assertEqual({ok, decoded(Term)}, py_msgpack:decode_all(Bytes)),
    ?assertEqual(Bytes, iolist_to_binary(py_msgpack:encode(Term))),
    %% Every vector is a message: decode_reply splits off the type and the
    %% second element, leaving the other elements' bytes untouched.
    case Term of
        [Type, Second | Others] ->
            Rest = iolist_to_binary([py_msgpack:encode(O) || O <- Others]),
            ?assertEqual({Type, decoded(Second), Rest}, py_msgpack:decode_reply(Bytes));
        [_] ->
            ?assertMatch({error, _}, py_msgpack:decode_reply(Bytes))
    end.

vector_dir() ->
    Candidates =
        case os:getenv("EP_SPEC_DIR") of
            false -> [];
            Spec -> [filename:join(Spec, "vectors"), Spec]
        end
        ++ ["spec/vectors"]
        ++ up_from(filename:dirname(code:which(?MODULE)), 5),
    case [D || D <- Candidates, vector_names(D) =/= []] of
        [Dir | _] -> Dir;
        [] -> hd(Candidates)
    end.

up_from(_, 0) -> [];
up_from(Dir, N) ->
    [filename:join([Dir, "spec", "vectors"]) | up_from(filename:dirname(Dir), N - 1)].

vector_names(Dir) ->
    lists:sort([filename:basename(F, ".mp") || F <- filelib:wildcard(filename:join(Dir, "*.mp"))]).

unpaired(Dir) ->
    Mp = vector_names(Dir),
    Term = lists:sort([filename:basename(F, ".term")
                       || F <- filelib:wildcard(filename:join(Dir, "*.term"))]),
    (Mp -- Term) ++ (Term -- Mp).

%% Placeholders of the .term files (see spec/vectors/README.md).
from_text({'$pid', B}) -> external(B, fun is_pid/1);
from_text({'$ref', B}) -> external(B, fun is_reference/1);
from_text({'$port', B}) -> external(B, fun is_port/1);
from_text({'$fun', {M, F, A}}) -> fun M:F/A;
from_text([H | T]) -> [from_text(H) | from_text(T)];
from_text(T) when is_tuple(T) -> list_to_tuple(from_text(tuple_to_list(T)));
from_text(M) when is_map(M) ->
    maps:from_list([{from_text(K), from_text(V)} || {K, V} <- maps:to_list(M)]);
from_text(X) -> X.

external(Bytes, Is) ->
    Term = binary_to_term(<<131, Bytes/binary>>),
    true = Is(Term),
    Term.

%% What decoding gives back: {bytes, B} decodes to B, nil and undefined to
%% none. Improper lists are opaque terms and come back untouched.
decoded({bytes, B}) when is_binary(B) -> B;
decoded(nil) -> none;
decoded(undefined) -> none;
decoded(L) when is_list(L) ->
    case is_proper(L) of
        true -> [decoded(X) || X <- L];
        false -> L
    end;
decoded(T) when is_tuple(T) -> list_to_tuple(decoded(tuple_to_list(T)));
decoded(M) when is_map(M) ->
    maps:from_list([{decoded(K), decoded(V)} || {K, V} <- maps:to_list(M)]);
decoded(X) -> X.

is_proper([_ | T]) -> is_proper(T);
is_proper([]) -> true;
is_proper(_) -> false.
