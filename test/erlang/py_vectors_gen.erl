%% @doc Writes the golden vectors of `spec/vectors/'.
%%
%% Each vector is a message: `NAME.mp' holds its msgpack bytes (no length
%% prefix) and `NAME.term' the Erlang term, as text for `file:consult/1'.
%% Single values are wrapped in a reply `[4, 1, Value]' so that every file is
%% a whole message. Terms that have no text form are written as placeholders:
%% `{'$pid', Bytes}', `{'$ref', Bytes}' and `{'$port', Bytes}' (external term
%% format without the version byte 131) and `{'$fun', {M, F, A}}' (an
%% external fun).
%%
%% Regenerate from the repository root with
%% ```
%% erlc -o ebin erlang_src/py_msgpack.erl
%% erlc -o _build/test test/erlang/py_vectors_gen.erl
%% erl -noshell -pa ebin _build/test -eval 'py_vectors_gen:main(), halt().'
%% '''
%% The directory is `$EP_SPEC_DIR/vectors' when `EP_SPEC_DIR' is set, else
%% `spec/vectors'.
-module(py_vectors_gen).

-export([main/0, main/1, vectors/0, from_text/1]).

-define(NODE, "nonode@nohost").

%% @doc Writes every vector into the default directory.
-spec main() -> ok.
main() ->
    Dir = case os:getenv("EP_SPEC_DIR") of
              false -> "spec/vectors";
              Spec -> filename:join(Spec, "vectors")
          end,
    main(Dir).

%% @doc Writes every vector into `Dir', replacing the `.mp' and `.term'
%% files already there.
-spec main(file:filename()) -> ok.
main(Dir) ->
    ok = filelib:ensure_dir(filename:join(Dir, "x")),
    [ok = file:delete(F) || F <- filelib:wildcard(filename:join(Dir, "*.mp"))
                                 ++ filelib:wildcard(filename:join(Dir, "*.term"))],
    Vectors = vectors(),
    Names = [N || {N, _, _} <- Vectors],
    Count = length(Names),
    Count = length(lists:usort(Names)),
    lists:foreach(fun(V) -> write(Dir, V) end, Vectors),
    io:format("wrote ~b vectors to ~ts~n", [Count, Dir]).

write(Dir, {Name, Comment, Text}) ->
    Bytes = iolist_to_binary(py_msgpack:encode(from_text(Text))),
    TermFile = filename:join(Dir, Name ++ ".term"),
    ok = file:write_file(filename:join(Dir, Name ++ ".mp"), Bytes),
    ok = file:write_file(TermFile, unicode:characters_to_binary(
                                     ["%% ", Comment, "\n", io_lib:format("~tp.~n", [Text])])),
    {ok, [Text]} = file:consult(TermFile),
    ok.

%% @doc Replaces the placeholders of a `.term' file by the real terms.
-spec from_text(term()) -> term().
from_text({'$pid', B}) -> binary_to_term(<<131, B/binary>>);
from_text({'$ref', B}) -> binary_to_term(<<131, B/binary>>);
from_text({'$port', B}) -> binary_to_term(<<131, B/binary>>);
from_text({'$fun', {M, F, A}}) -> fun M:F/A;
from_text(L) when is_list(L) -> from_list(L);
from_text(T) when is_tuple(T) -> list_to_tuple(from_text(tuple_to_list(T)));
from_text(M) when is_map(M) ->
    maps:from_list([{from_text(K), from_text(V)} || {K, V} <- maps:to_list(M)]);
from_text(X) -> X.

from_list([H | T]) -> [from_text(H) | from_list(T)];
from_list([]) -> [];
from_list(Tail) -> from_text(Tail).

%% External term format bytes (without 131), UTF-8 atoms as OTP 26+ writes.
atom_bytes(Name) -> <<119, (length(Name)), (list_to_binary(Name))/binary>>.

pid(Node, Id, Serial, Creation) ->
    {'$pid', <<88, (atom_bytes(Node))/binary, Id:32, Serial:32, Creation:32>>}.

ref(Node, Creation, Ids) ->
    {'$ref', <<90, (length(Ids)):16, (atom_bytes(Node))/binary, Creation:32,
               << <<I:32>> || I <- Ids >>/binary>>}.

port(Node, Id, Creation) ->
    {'$port', <<89, (atom_bytes(Node))/binary, Id:32, Creation:32>>}.

%% The request IDs of the message vectors: process aliases of the local node.
req_id() -> ref(?NODE, 0, [16#2d1f4, 16#8c03a1e2, 16#5b7d]).
req_id2() -> ref(?NODE, 0, [16#2d1f9, 16#8c03a1e2, 16#5b7d]).

reply(Value) -> [4, 1, Value].

%% @doc Every vector: `{Name, Comment, TermText}'.
-spec vectors() -> [{string(), string(), term()}].
vectors() ->
    messages() ++ values().

messages() ->
    Ref = req_id(),
    Traceback = <<"Traceback (most recent call last):\n"
                  "  File \"<string>\", line 1, in <module>\n"
                  "ZeroDivisionError: division by zero\n">>,
    [%% Erlang -> port program
     {"msg_hello_request", "hello, Erlang -> port program: [0, Version, Options]",
      [0, 1, #{}]},
     {"msg_call", "call: [1, ReqId, Ctx, Module, Function, Args, Kwargs]",
      [1, Ref, 0, <<"operator">>, <<"add">>, [1, 2], #{}]},
     {"msg_call_kwargs", "call with keyword arguments",
      [1, req_id2(), 3, <<"json">>, <<"dumps">>,
       [#{<<"a">> => [1, 2.5, none], <<"b">> => {bytes, <<0, 255>>}}],
       #{<<"indent">> => 2, <<"sort_keys">> => true}]},
     {"msg_call_cast", "call without reply (ReqId nil)",
      [1, none, 0, <<"__main__">>, <<"notify">>, [<<"started">>, {node, 'py@example'}], #{}]},
     {"msg_eval", "eval: [2, ReqId, Ctx, Code, Locals]",
      [2, Ref, 0, <<"x + y * 2">>, #{<<"x">> => 1, <<"y">> => 20}]},
     {"msg_exec", "exec: [3, ReqId, Ctx, Code]",
      [3, Ref, 1, <<"import math\nr = math.sqrt(2)\n">>]},
     {"msg_call_nest", "call with a chain marker: [1, ReqId, Ctx, Module, Function, Args, Kwargs, Nest]",
      [1, Ref, 0, <<"__main__">>, <<"lookup">>, [1], #{}, 16#100000003]},
     {"msg_eval_nest", "eval with a chain marker: [2, ReqId, Ctx, Code, Locals, Nest]",
      [2, Ref, 0, <<"x">>, #{<<"x">> => 1}, 16#8000000000000005]},
     {"msg_exec_nest", "exec with a chain marker: [3, ReqId, Ctx, Code, Nest]",
      [3, Ref, 0, <<"y = 2">>, 12]},
     {"msg_cancel", "cancel: [8, ReqId, Ctx]",
      [8, Ref, 0]},
     {"msg_call_namespace", "call in the caller's namespace: [..., Chain (nil), NsKey]",
      [1, Ref, 0, <<"__main__">>, <<"f">>, [1], #{}, none, pid(?NODE, 85, 0, 0)]},
     {"msg_call_return_ref", "call returning a reference: [..., Chain, NsKey, ReturnRef]",
      [1, Ref, 0, <<"collections">>, <<"OrderedDict">>, [], #{}, none, pid(?NODE, 85, 0, 0), true]},
     {"msg_eval_env", "eval in an environment (NsKey a reference)",
      [2, Ref, 0, <<"x">>, #{}, none, req_id2()]},
     {"msg_exec_shared", "exec in the shared namespace (NsKey nil)",
      [3, Ref, 0, <<"x = 1">>, none, none]},
     {"msg_drop_namespace", "drop a namespace: [9, Ctx, NsKey]",
      [9, 0, pid(?NODE, 85, 0, 0)]},
     {"msg_interrupt", "interrupt: [10, ReqId, Ctx]",
      [10, Ref, 0]},
     {"msg_watch_end", "watch a request's end: [11, WatchId, Ctx, ReqId]",
      [11, req_id2(), 0, Ref]},
     {"msg_ref_op", "reference operation: [12, ReqId, Ctx, Op, RefId, Name, Args, Kwargs, Chain, NsKey]",
      [12, Ref, 0, 0, 1, <<"append">>, [1], #{}, none, pid(?NODE, 85, 0, 0)]},
     {"msg_shutdown", "shutdown: [15]",
      [15]},
     {"msg_callback_reply_ok", "callback reply, success: [20, CbId, Value]",
      [20, 7, {ok, [1, 2, 3]}]},
     {"msg_callback_reply_error", "callback reply, failure: [21, CbId, Reason]",
      [21, 16#100000001, <<"badarg: no such function">>]},
     %% port program -> Erlang
     {"msg_hello_reply", "hello, port program -> Erlang: [0, Version, Info]",
      [0, 1, #{<<"python">> => <<"3.11.2">>, <<"pid">> => 48213, <<"contexts">> => 4}]},
     {"msg_reply_ok", "reply, success: [4, ReqId, Value]",
      [4, Ref, 3]},
     {"msg_reply_ok_nested", "reply, success, with a nested value",
      [4, Ref, {ok, #{<<"sum">> => 3.5, <<"items">> => [<<"a">>, {bytes, <<1, 2, 3>>}, none],
                      <<"big">> => 1 bsl 70}}]},
     {"msg_reply_error", "reply, Python exception: [5, ReqId, Class, Message, Traceback]",
      [5, Ref, <<"ZeroDivisionError">>, <<"division by zero">>, Traceback]},
     {"msg_reply_protocol_error", "reply to a bad frame whose request ID was readable",
      [5, Ref, <<"ProtocolError">>, <<"unknown context 9">>, <<>>]},
     {"msg_output_stdout", "output: [6, Stream, Ctx, Data], stdout of context 0",
      [6, 1, 0, {bytes, <<"hello\n">>}]},
     {"msg_output_unknown_ctx", "output: stderr, writer not known (Ctx nil)",
      [6, 2, none, {bytes, <<"warning: fd-level write\n">>}]},
     {"msg_log", "log record: [7, Level, Logger, Message, Meta]",
      [7, 30, <<"myapp.db">>, <<"disk almost full">>,
       #{<<"filename">> => <<"db.py">>, <<"funcName">> => <<"check">>, <<"lineno">> => 42}]},
     {"msg_protocol_error", "protocol error not tied to a request: [14, Reason]",
      [14, <<"truncated frame: 3 of 12 bytes">>]},
     {"msg_callback", "callback request: [16, CbId, Handler, Name, Args]",
      [16, 12, (1 bsl 24) bor 3, <<"lookup">>, [<<"key">>, 1]]},
     {"msg_callback_async", "callback request from erlang.async_call (Handler nil)",
      [16, 16#100000000, none, <<"notify">>, []]},
     {"msg_send", "erlang.send: [17, Pid, Term]",
      [17, pid(?NODE, 85, 0, 0), {hello, <<"world">>, [1, 2]}]},
     {"msg_channel_data", "channel messages, Erlang -> port program: [31, ChanId, Msg...]",
      [31, 7, {request, pid(?NODE, 90, 0, 0), <<"data">>}, <<"x">>, 42]},
     {"msg_channel_closed", "channel closed and drained: [33, ChanId]", [33, 7]},
     {"msg_channel_ack", "channel ack: [30, ChanId, Server, Counters, Count, Bytes, Want]",
      [30, 7, pid(?NODE, 91, 0, 0), ref(?NODE, 0, [16#3a, 16#b1c2d3e4, 16#5f]), 3, 120, false]},
     {"msg_channel_want", "channel want (nothing taken since the last ack)",
      [30, 7, pid(?NODE, 91, 0, 0), ref(?NODE, 0, [16#3a, 16#b1c2d3e4, 16#5f]), 0, 0, true]},
     {"msg_channel_close", "Python closes a channel: [32, ChanId, Server, Counters]",
      [32, 7, pid(?NODE, 91, 0, 0), ref(?NODE, 0, [16#3a, 16#b1c2d3e4, 16#5f])]},
     {"msg_channel_bytes", "ByteChannel.send_bytes: [34, ChanId, Server, Bytes]",
      [34, 7, pid(?NODE, 91, 0, 0), {bytes, <<1, 2, 3, 255>>}]},
     {"msg_channel_return",
      "channel return (ack, the rest goes back): [36, ChanId, Server, Counters, Count, Bytes]",
      [36, 7, pid(?NODE, 91, 0, 0), ref(?NODE, 0, [16#3a, 16#b1c2d3e4, 16#5f]), 1, 40]},
     {"msg_channel_returned", "a channel return is done: [37, ChanId]", [37, 7]},
     {"msg_channel_probe", "try_receive asks what is queued (an ack too): [35, ChanId, Server, Counters, Count, Bytes]",
      [35, 7, pid(?NODE, 91, 0, 0), ref(?NODE, 0, [16#3a, 16#b1c2d3e4, 16#5f]), 2, 10]},
     {"msg_channel_probe_data", "the answer to a probe: [38, ChanId, Msg...]",
      [38, 7, <<"queued">>, 42]},
     {"msg_channel_probe_empty", "the answer to a probe when nothing is queued: [38, ChanId]",
      [38, 7]},
     {"msg_loop_task",
      "event loop task: [48, ReqId, Loop, Owner, Module, Function, Args, Kwargs]",
      [48, ref(?NODE, 0, [16#3b, 16#b1c2d3e4, 16#5f]), 0, none, <<"asyncio">>, <<"sleep">>,
       [0.01, 1], #{}]},
     {"msg_loop_task_main", "event loop task in the caller's namespace (Owner a pid)",
      [48, ref(?NODE, 0, [16#3b, 16#b1c2d3e4, 16#5f]), 0, pid(?NODE, 92, 0, 0), <<"__main__">>,
       <<"f">>, [21], #{<<"delay">> => 0}]},
     {"msg_loop_spawn_task", "event loop task without reply (ReqId nil)",
      [48, none, 0, none, <<"logging">>, <<"info">>, [<<"message">>], #{}]},
     {"msg_loop_exec", "exec on a loop: [49, ReqId, Loop, Owner, Code]",
      [49, ref(?NODE, 0, [16#3b, 16#b1c2d3e4, 16#5f]), 0, pid(?NODE, 92, 0, 0), <<"x = 1">>]},
     {"msg_loop_eval", "eval on a loop: [50, ReqId, Loop, Owner, Code]",
      [50, ref(?NODE, 0, [16#3b, 16#b1c2d3e4, 16#5f]), 0, pid(?NODE, 92, 0, 0), <<"x">>]},
     {"msg_loop_forget", "an owner's loop namespace is gone: [51, nil, Loop, Owner]",
      [51, none, 0, pid(?NODE, 92, 0, 0)]},
     {"msg_loop_cancel", "a task's caller gave up: [52, ReqId, Loop]",
      [52, ref(?NODE, 0, [16#3b, 16#b1c2d3e4, 16#5f]), 0]},
     {"msg_batch", "several messages in one write: [53, [Message, ...]]",
      [53, [[48, ref(?NODE, 0, [16#3b, 16#b1c2d3e4, 16#5f]), 0, none, <<"asyncio">>,
             <<"sleep">>, [0.01, 1], #{}],
            [52, ref(?NODE, 0, [16#3b, 16#b1c2d3e4, 16#5f]), 0]]]},
     {"msg_reply_schedule_py", "a reply holding a schedule marker (erlang.schedule_py)",
      [4, ref(?NODE, 0, [16#3b, 16#b1c2d3e4, 16#5f]),
       {'$py_schedule', py, <<"__main__">>, <<"compute">>, [5], #{<<"multiplier">> => 3}}]}].

values() ->
    ints() ++ floats() ++ simple() ++ strs() ++ bins() ++ arrays() ++ maps() ++ exts().

value(Name, Comment, Value) ->
    {Name, Comment ++ " (in a reply [4, 1, Value])", reply(Value)}.

ints() ->
    [value("int_" ++ N, C, I) || {N, C, I} <-
        [{"zero", "positive fixint 0", 0},
         {"fixint_max", "positive fixint 127", 127},
         {"uint8_min", "uint8 128", 128},
         {"uint8_max", "uint8 255", 255},
         {"uint16_min", "uint16 256", 256},
         {"uint16_max", "uint16 65535", 65535},
         {"uint32_min", "uint32 65536", 65536},
         {"uint32_max", "uint32 2^32-1", (1 bsl 32) - 1},
         {"uint64_min", "uint64 2^32", 1 bsl 32},
         {"uint64_max", "uint64 2^64-1", (1 bsl 64) - 1},
         {"negfixint_max", "negative fixint -1", -1},
         {"negfixint_min", "negative fixint -32", -32},
         {"int8_max", "int8 -33", -33},
         {"int8_min", "int8 -128", -128},
         {"int16_max", "int16 -129", -129},
         {"int16_min", "int16 -32768", -32768},
         {"int32_max", "int32 -32769", -32769},
         {"int32_min", "int32 -2^31", -(1 bsl 31)},
         {"int64_max", "int64 -2^31-1", -(1 bsl 31) - 1},
         {"int64_min", "int64 -2^63", -(1 bsl 63)}]].

floats() ->
    [value("float_" ++ N, C, F) || {N, C, F} <-
        [{"zero", "float64 0.0", 0.0},
         {"neg_zero", "float64 -0.0", -0.0},
         {"one", "float64 1.0 (never an int)", 1.0},
         {"pi", "float64 pi", math:pi()},
         {"neg_small", "float64 negative, small", -1.5e-7},
         {"large", "float64 1.0e21", 1.0e21},
         {"max", "float64 largest finite", 1.7976931348623157e308},
         {"min_subnormal", "float64 smallest subnormal", 5.0e-324}]].

simple() ->
    [value("nil", "nil (Erlang none)", none),
     value("bool_true", "true", true),
     value("bool_false", "false", false)].

strs() ->
    [value("str_" ++ N, C, S) || {N, C, S} <-
        [{"empty", "fixstr, empty", <<>>},
         {"fixstr_max", "fixstr, 31 bytes", text(31)},
         {"str8_min", "str8, 32 bytes", text(32)},
         {"str8_max", "str8, 255 bytes", text(255)},
         {"str16_min", "str16, 256 bytes", text(256)},
         {"utf8", "fixstr, UTF-8", <<"héllo wörld ✓"/utf8>>}]].

bins() ->
    [value("bin_" ++ N, C, {bytes, B}) || {N, C, B} <-
        [{"empty", "bin8, empty", <<>>},
         {"bin8_max", "bin8, 255 bytes", bytes(255)},
         {"bin16_min", "bin16, 256 bytes", bytes(256)}]].

arrays() ->
    [value("array_" ++ N, C, L) || {N, C, L} <-
        [{"empty", "fixarray, empty", []},
         {"fixarray_max", "fixarray, 15 elements", lists:seq(1, 15)},
         {"array16_min", "array16, 16 elements", lists:seq(1, 16)},
         {"nested", "nested arrays", [[], [[]], [1, [2, [3, []]]]]},
         {"mixed", "array of mixed types",
          [1, -1, 2.5, <<"s">>, {bytes, <<"b">>}, true, false, none, atom, {t}, #{}]}]].

maps() ->
    [value("map_" ++ N, C, M) || {N, C, M} <-
        [{"empty", "fixmap, empty", #{}},
         {"fixmap_max", "fixmap, 15 pairs", maps:from_list([{I, I * I} || I <- lists:seq(1, 15)])},
         {"map16_min", "map16, 16 pairs",
          maps:from_list([{text_key(I), I} || I <- lists:seq(1, 16)])},
         {"nested", "nested maps", #{<<"a">> => #{<<"b">> => #{<<"c">> => []}}}},
         {"mixed_keys", "keys of several types, in maps:to_list/1 order",
          #{1 => <<"int">>, -2 => <<"neg">>, 2.5 => <<"float">>, key => <<"atom">>,
            {1, 2} => <<"tuple">>, [1] => <<"list">>, <<"str">> => <<"str">>}}]].

exts() ->
    LongUnicode = lists:duplicate(255, $é),
    [value("ext_" ++ N, C, X) || {N, C, X} <-
        [{"atom", "ext 1 atom, ext8", hello},
         {"atom_fixext1", "ext 1 atom, fixext 1", a},
         {"atom_fixext2", "ext 1 atom, fixext 2", ok},
         {"atom_fixext4", "ext 1 atom, fixext 4", atom},
         {"atom_fixext8", "ext 1 atom, fixext 8", infinity},
         {"atom_fixext16", "ext 1 atom, fixext 16", fixext_sixteen16},
         {"atom_unicode", "ext 1 atom, UTF-8 name", 'héllo_wörld'},
         {"atom_ext8_max", "ext 1 atom, ext8, 255 bytes", list_to_atom(lists:duplicate(255, $z))},
         {"atom_ext16", "ext 1 atom, ext16, 255 characters = 510 bytes",
          list_to_atom(LongUnicode)},
         {"tuple_empty", "ext 2 tuple, empty (fixext 1)", {}},
         {"tuple_pair", "ext 2 tuple {ok, 1}", {ok, 1}},
         {"tuple_nested", "ext 2 tuples nested", {a, {b, {c}}, [{}], #{{k} => {v}}}},
         {"tuple_array16", "ext 2 tuple of 16 elements (array16 payload)",
          list_to_tuple(lists:seq(1, 16))},
         {"tuple_ext16", "ext 2 tuple, ext16 header", {text(300)}},
         {"pid", "ext 3 pid, local node", pid(?NODE, 85, 0, 0)},
         {"pid_remote", "ext 3 pid, another node", pid("py@example.host", 1234, 7, 1700000000)},
         {"ref", "ext 4 reference, local node",
          ref(?NODE, 0, [16#1a2b3, 16#c4d5e6f7, 16#8091a2b3])},
         {"ref_remote", "ext 4 reference, another node",
          ref("py@example.host", 1700000000, [16#3ffff, 16#ffffffff, 16#12345678])},
         {"bigint_pos", "ext 5 bigint 2^64", 1 bsl 64},
         {"bigint_neg", "ext 5 bigint -2^63-1", -(1 bsl 63) - 1},
         {"bigint_pos_large", "ext 5 bigint 2^200+12345", (1 bsl 200) + 12345},
         {"bigint_neg_large", "ext 5 bigint -(3^150)", -pow(3, 150)},
         {"opaque_fun", "ext 7 opaque term: external fun", {'$fun', {lists, sort, 1}}},
         {"opaque_port", "ext 7 opaque term: port", port(?NODE, 42, 0)},
         {"opaque_improper_list", "ext 7 opaque term: improper list", [1, 2 | 3]},
         {"opaque_bitstring", "ext 7 opaque term: bitstring", <<5:3>>}]].

text(N) -> list_to_binary([$a + I rem 26 || I <- lists:seq(0, N - 1)]).

bytes(N) -> list_to_binary([I rem 256 || I <- lists:seq(0, N - 1)]).

text_key(I) -> list_to_binary(io_lib:format("k~2..0b", [I])).

pow(_, 0) -> 1;
pow(B, E) -> B * pow(B, E - 1).
