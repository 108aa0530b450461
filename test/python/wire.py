"""The wire protocol's numbers (spec/PROTOCOL.md) for the Python tests, mirroring
port_program/core/protocol.hpp name for name (``kCallbackOk`` is ``CALLBACK_OK``).
test_protocol_vocabulary.py checks this module, protocol.hpp,
erlang_src/py_protocol.hrl and the spec's tables agree."""

from __future__ import annotations

from typing import Final

VERSION: Final = 1
MAX_DEPTH: Final = 10000
DEFAULT_MAX_FRAME: Final = 64 << 20

# Message types. core: 0-15
HELLO: Final = 0
CALL: Final = 1
EVAL: Final = 2
EXEC: Final = 3
REPLY_OK: Final = 4
REPLY_ERROR: Final = 5
OUTPUT: Final = 6
LOG: Final = 7
CANCEL: Final = 8
DROP_NAMESPACE: Final = 9
INTERRUPT: Final = 10
WATCH_END: Final = 11
REF_OP: Final = 12
PROTOCOL_ERROR: Final = 14
SHUTDOWN: Final = 15
# callbacks, Python calls Erlang: 16-29
CALLBACK: Final = 16
SEND: Final = 17
CALLBACK_OK: Final = 20
CALLBACK_ERROR: Final = 21
# channels: 30-47
CHANNEL_ACK: Final = 30
CHANNEL_DATA: Final = 31
CHANNEL_CLOSE: Final = 32
CHANNEL_CLOSED: Final = 33
CHANNEL_BYTES: Final = 34
CHANNEL_PROBE: Final = 35
CHANNEL_RETURN: Final = 36
CHANNEL_RETURNED: Final = 37
CHANNEL_PROBE_DATA: Final = 38
# event loops: 48-63
LOOP_TASK: Final = 48
LOOP_EXEC: Final = 49
LOOP_EVAL: Final = 50
LOOP_FORGET: Final = 51
LOOP_CANCEL: Final = 52
BATCH: Final = 53

# Operations of REF_OP.
REF_CALL_METHOD: Final = 0
REF_GETATTR: Final = 1
REF_TO_TERM: Final = 2
REF_RELEASE: Final = 3

# Ext types.
EXT_ATOM: Final = 1
EXT_TUPLE: Final = 2
EXT_PID: Final = 3
EXT_REF: Final = 4
EXT_BIGINT: Final = 5
EXT_OPAQUE: Final = 7

# Streams of OUTPUT.
STDOUT: Final = 1
STDERR: Final = 2
