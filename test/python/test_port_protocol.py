"""The port program's protocol behaviour, driven directly (no BEAM)."""

from __future__ import annotations

import struct
import time

import msgpack

from conftest import PortProgram
from wire import CALL, CALLBACK, CALLBACK_OK, EVAL, EXEC, HELLO, OUTPUT, PROTOCOL_ERROR, SHUTDOWN
from wire import STDERR, STDOUT, VERSION
from wire import REPLY_ERROR as ERROR
from wire import REPLY_OK as OK


def test_hello(port: PortProgram) -> None:
    assert port.hello[0] == HELLO and port.hello[1] == VERSION
    assert port.hello[2]["contexts"] == 2 and port.hello[2]["python"].startswith("3.")


def test_call_eval_exec_and_request_ids_echoed(port: PortProgram) -> None:
    port.send([CALL, 7, 0, "operator", "add", [1, 2], {}])
    assert port.recv_reply() == [OK, 7, 3]
    port.send([EXEC, "id-x", 1, "x = 41"])
    assert port.recv_reply() == [OK, "id-x", None]
    port.send([EVAL, [1, 2], 1, "x + 1", {}])
    assert port.recv_reply() == [OK, [1, 2], 42]


def test_python_exception_reply(port: PortProgram) -> None:
    port.send([EVAL, 1, 0, "1 / 0", {}])
    kind, reqid, cls, message, traceback = port.recv_reply()
    assert (kind, reqid, cls) == (ERROR, 1, "ZeroDivisionError")
    assert "division" in message and "Traceback" in traceback


def test_many_frames_in_one_write_and_split_frames(port: PortProgram) -> None:
    frames = b""
    for i in range(50):
        payload = msgpack.packb([CALL, i, 0, "operator", "mul", [i, 2], {}])
        frames += struct.pack(">I", len(payload)) + payload
    port.send_raw(frames[:7])
    port.send_raw(frames[7:])
    assert [port.recv_reply() for _ in range(50)] == [[OK, i, i * 2] for i in range(50)]


def test_malformed_message_with_readable_id_gets_error_reply(port: PortProgram) -> None:
    # A call whose arguments are not an array.
    port.send([CALL, 5, 0, "operator", "add", "not a list", {}])
    reply = port.recv_reply()
    assert reply[:3] == [ERROR, 5, "ProtocolError"]
    port.send([CALL, 6, 9, "operator", "add", [1, 1], {}])  # no context 9
    assert port.recv_reply()[:4] == [ERROR, 6, "ProtocolError", "no context 9"]
    port.send([CALL, 7, -1, "operator", "add", [1, 1], {}])  # a negative context number
    assert port.recv_reply()[:4] == [ERROR, 7, "ProtocolError", "no context -1"]
    port.send([CALL, 8, 0, "operator", "add", [1, 1], {}])
    assert port.recv_reply() == [OK, 8, 2]


def test_garbage_gets_protocol_error_and_later_frames_work(port: PortProgram) -> None:
    port.send_raw(struct.pack(">I", 3) + b"\xc1\xc1\xc1")
    assert port.recv_reply()[0] == PROTOCOL_ERROR
    port.send([CALL, 1, 0, "operator", "add", [2, 2], {}])
    assert port.recv_reply() == [OK, 1, 4]


def test_oversized_frame_is_rejected_without_losing_the_next() -> None:
    port = PortProgram("--max-frame", "1024")
    try:
        port.send([CALL, 11, 0, "builtins", "len", ["x" * 4096], {}])
        port.send([CALL, 12, 0, "builtins", "len", ["x" * 100], {}])
        reply = port.recv_reply()
        assert reply[:3] == [ERROR, 11, "ProtocolError"] and "exceeds" in reply[3]
        assert port.recv_reply() == [OK, 12, 100]
    finally:
        port.close()


def test_output_never_corrupts_the_stream(port: PortProgram) -> None:
    port.send([EXEC, 1, 0, "import os, sys\nprint('hello')\nos.write(1, b'raw fd write\\n')\n"
               "sys.stderr.write('err line\\n')"])
    seen, reply = [], None
    while reply is None or len(seen) < 3:
        message = port.recv()
        if message[0] == OUTPUT:
            seen.append((message[1], message[2], message[3]))
        else:
            reply = message
    assert reply == [OK, 1, None]
    assert (STDOUT, 0, b"hello") in seen and (STDERR, 0, b"err line") in seen
    assert any(stream == STDOUT and ctx is None and b"raw fd write" in data for stream, ctx, data in seen)


def test_exits_promptly_on_eof_even_when_python_is_stuck(port: PortProgram) -> None:
    port.send([EXEC, 1, 0, "print('spinning')\nwhile True: pass"])
    assert port.recv()[:3] == [OUTPUT, STDOUT, 0]  # the loop is running now
    start = time.monotonic()
    assert port.close() == 0
    assert time.monotonic() - start < 1.0


def test_shutdown_message(port: PortProgram) -> None:
    port.send([SHUTDOWN])
    assert port.proc.wait(timeout=2) == 0


def test_only_the_waiting_callbacks_chain_runs_nested(port: PortProgram) -> None:
    """While context 0 waits in erlang.call, a request whose chain marker (a
    trailing element) names that callback runs nested; one without a marker,
    or naming another callback, runs after the waiting request."""
    port.send([EXEC, "def", 0, "import erlang\nlog = []\ndef f():\n    log.append('f')\n"
               "    r = erlang.call('x')\n    log.append('f-done')\n    return r"])
    assert port.recv_reply() == [OK, "def", None]
    port.send([CALL, "f", 0, "__main__", "f", [], {}])
    callback = port.recv_reply()
    assert callback[0] == CALLBACK and callback[3] == "x"
    cb_id = callback[1]
    port.send([EVAL, "plain", 0, "log.append('plain')", {}])
    port.send([EVAL, "other", 0, "log.append('other')", {}, cb_id + 1])
    port.send([EVAL, "none", 0, "log.append('none')", {}, None])
    port.send([EVAL, "chain", 0, "log.append('chain')", {}, cb_id])
    assert port.recv_reply() == [OK, "chain", None]
    port.send([CALLBACK_OK, cb_id, 5])
    replies = [port.recv_reply() for _ in range(4)]
    assert replies == [[OK, "f", 5], [OK, "plain", None], [OK, "other", None], [OK, "none", None]]
    port.send([EVAL, "log", 0, "log", {}])
    assert port.recv_reply() == [OK, "log", ["f", "chain", "f-done", "plain", "other", "none"]]
    # a marker that is not an integer is a protocol error of that request
    port.send([EVAL, "bad", 0, "1", {}, "x"])
    assert port.recv_reply()[:3] == [ERROR, "bad", "ProtocolError"]
