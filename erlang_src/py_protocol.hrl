%% The wire protocol's vocabulary (spec/PROTOCOL.md), mirroring
%% port_program/core/protocol.hpp name for name: every Erlang module that
%% builds or matches a protocol message uses these macros, never a bare
%% number. test/python/test_protocol_vocabulary.py fails if this header,
%% protocol.hpp, test/python/wire.py and the spec's tables disagree.

-define(PY_PROTOCOL_VERSION, 1).
%% Nesting of a term, either direction (kMaxDepth).
-define(PY_MAX_DEPTH, 10000).
%% The largest frame a port program accepts unless told (app env max_frame,
%% `--max-frame'; kDefaultMaxFrame).
-define(PY_DEFAULT_MAX_FRAME, 64 bsl 20).

%% Message types (the first element of every message).
%% core: 0-15
-define(PY_MSG_HELLO, 0).
-define(PY_MSG_CALL, 1).
-define(PY_MSG_EVAL, 2).
-define(PY_MSG_EXEC, 3).
-define(PY_MSG_REPLY_OK, 4).
-define(PY_MSG_REPLY_ERROR, 5).
-define(PY_MSG_OUTPUT, 6).
-define(PY_MSG_LOG, 7).
-define(PY_MSG_CANCEL, 8).
-define(PY_MSG_DROP_NAMESPACE, 9).
-define(PY_MSG_INTERRUPT, 10).
-define(PY_MSG_WATCH_END, 11).
-define(PY_MSG_REF_OP, 12).
-define(PY_MSG_PROTOCOL_ERROR, 14).
-define(PY_MSG_SHUTDOWN, 15).
%% callbacks, Python calls Erlang: 16-29
-define(PY_MSG_CALLBACK, 16).
-define(PY_MSG_SEND, 17).
-define(PY_MSG_CALLBACK_OK, 20).
-define(PY_MSG_CALLBACK_ERROR, 21).
%% channels: 30-47
-define(PY_MSG_CHANNEL_ACK, 30).
-define(PY_MSG_CHANNEL_DATA, 31).
-define(PY_MSG_CHANNEL_CLOSE, 32).
-define(PY_MSG_CHANNEL_CLOSED, 33).
-define(PY_MSG_CHANNEL_BYTES, 34).
-define(PY_MSG_CHANNEL_PROBE, 35).
-define(PY_MSG_CHANNEL_RETURN, 36).
-define(PY_MSG_CHANNEL_RETURNED, 37).
-define(PY_MSG_CHANNEL_PROBE_DATA, 38).
%% event loops: 48-63
-define(PY_MSG_LOOP_TASK, 48).
-define(PY_MSG_LOOP_EXEC, 49).
-define(PY_MSG_LOOP_EVAL, 50).
-define(PY_MSG_LOOP_FORGET, 51).
-define(PY_MSG_LOOP_CANCEL, 52).
-define(PY_MSG_BATCH, 53).

%% Operations of ?PY_MSG_REF_OP.
-define(PY_REF_CALL_METHOD, 0).
-define(PY_REF_GETATTR, 1).
-define(PY_REF_TO_TERM, 2).
-define(PY_REF_RELEASE, 3).

%% Ext types.
-define(PY_EXT_ATOM, 1).
-define(PY_EXT_TUPLE, 2).
-define(PY_EXT_PID, 3).
-define(PY_EXT_REF, 4).
-define(PY_EXT_BIGINT, 5).
-define(PY_EXT_OPAQUE, 7).

%% Streams of ?PY_MSG_OUTPUT.
-define(PY_STDOUT, 1).
-define(PY_STDERR, 2).
