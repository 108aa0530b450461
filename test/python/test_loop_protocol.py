"""Event loop frames (spec/PROTOCOL.md, Event loops) driven directly, and the
schedule markers and time slices of the ``erlang`` package."""

from __future__ import annotations

import struct

import msgpack
import pytest

from conftest import PortProgram
from wire import BATCH, EXT_PID
from wire import LOOP_CANCEL as CANCEL
from wire import LOOP_EVAL as LEVAL
from wire import LOOP_EXEC as LEXEC
from wire import LOOP_FORGET as FORGET
from wire import LOOP_TASK as TASK
from wire import REPLY_ERROR as ERROR
from wire import REPLY_OK as OK

PID = msgpack.ExtType(EXT_PID, b"X\x77\x0dnonode@nohost\x00\x00\x00\x55\x00\x00\x00\x00\x00\x00\x00\x00")


def replies(port: PortProgram, n: int) -> dict[object, list[object]]:
    out: dict[object, list[object]] = {}
    while len(out) < n:
        message = port.recv_reply()
        out[message[1]] = message
    return out


def test_tasks_plain_and_coroutine(port: PortProgram) -> None:
    port.send([TASK, 1, 0, None, "math", "sqrt", [16.0], {}])
    assert port.recv_reply() == [OK, 1, 4.0]
    port.send([TASK, 2, 0, None, "asyncio", "sleep", [0.01, "done"], {}])
    assert port.recv_reply() == [OK, 2, "done"]
    port.send([TASK, 3, 5, None, "os.path", "join", ["/a", "b"], {}])  # another loop
    assert port.recv_reply() == [OK, 3, "/a/b"]


def test_errors_come_as_replies(port: PortProgram) -> None:
    port.send([TASK, 1, 0, None, "no_such_module", "f", [], {}])
    kind, reqid, cls, _msg, _tb = port.recv_reply()
    assert (kind, reqid, cls) == (ERROR, 1, "ModuleNotFoundError")
    port.send([TASK, 2, 64, None, "math", "sqrt", [1.0], {}])
    kind, reqid, cls, msg, _tb = port.recv_reply()
    assert (kind, reqid, cls) == (ERROR, 2, "ProtocolError") and "no event loop" in msg
    port.send([TASK, 3, 0, None, "math", "sqrt", [1.0], {}])
    assert port.recv_reply() == [OK, 3, 1.0]


def test_many_tasks_in_one_write_all_answered(port: PortProgram) -> None:
    frames = b""
    for i in range(2000):
        payload = msgpack.packb([TASK, i, 0, None, "asyncio", "sleep", [0, i], {}])
        frames += struct.pack(">I", len(payload)) + payload
    port.send_raw(frames)
    got = replies(port, 2000)
    assert all(got[i] == [OK, i, i] for i in range(2000))


def test_batch_runs_its_messages_in_order(port: PortProgram) -> None:
    tasks = [[TASK, i, 0, None, "asyncio", "sleep", [0, i], {}] for i in range(600)]
    port.send([BATCH, tasks])
    got = replies(port, 600)
    assert all(got[i] == [OK, i, i] for i in range(600))
    # any request may be in a batch: a call of context 0, a task, an eval on a loop
    port.send([BATCH, [[1, "c", 0, "operator", "add", [1, 2], {}],
                       [LEXEC, "x", 0, PID, "z = 7"], [LEVAL, "e", 0, PID, "z * 6"]]])
    assert replies(port, 3) == {"c": [OK, "c", 3], "x": [OK, "x", None], "e": [OK, "e", 42]}


def test_batch_errors(port: PortProgram) -> None:
    # a bad message in a batch gets its own error; the others run
    port.send([BATCH, [[TASK, 1, 99, None, "math", "sqrt", [4.0], {}],
                       [TASK, 2, 0, None, "math", "sqrt", [4.0], {}]]])
    got = replies(port, 2)
    assert got[1][:3] == [ERROR, 1, "ProtocolError"] and "no event loop" in got[1][3]
    assert got[2] == [OK, 2, 2.0]
    # a batch inside a batch is refused (its own messages do not run)
    port.send([BATCH, [[BATCH, [[TASK, 3, 0, None, "math", "sqrt", [9.0], {}]]],
                       [TASK, 4, 0, None, "math", "sqrt", [16.0], {}]]])
    kind, reason = port.recv_reply()
    assert kind == 14 and "bad batch" in reason
    assert port.recv_reply() == [OK, 4, 4.0]
    # a batch that is not a list
    port.send([BATCH, 5])
    kind, reason = port.recv_reply()
    assert kind == 14
    port.send([TASK, 6, 0, None, "math", "sqrt", [1.0], {}])
    assert port.recv_reply() == [OK, 6, 1.0]


def test_namespace_exec_eval_task_forget(port: PortProgram) -> None:
    port.send([LEXEC, 1, 0, PID, "async def f(x):\n    return x * 2\ny = 5"])
    assert port.recv_reply() == [OK, 1, None]
    port.send([LEVAL, 2, 0, PID, "y + 1"])
    assert port.recv_reply() == [OK, 2, 6]
    port.send([TASK, 3, 0, PID, "__main__", "f", [21], {}])
    assert port.recv_reply() == [OK, 3, 42]
    port.send([TASK, 4, 0, None, "__main__", "f", [21], {}])  # no owner: no namespace
    assert port.recv_reply()[:3] == [ERROR, 4, "NameError"]
    port.send([FORGET, None, 0, PID])
    port.send([TASK, 5, 0, PID, "__main__", "f", [21], {}])
    assert port.recv_reply()[:3] == [ERROR, 5, "NameError"]


def test_cancel_sends_no_reply(port: PortProgram) -> None:
    port.send([TASK, 1, 0, None, "asyncio", "sleep", [30], {}])
    port.send([CANCEL, 1, 0])
    port.send([TASK, 2, 0, None, "math", "sqrt", [4.0], {}])
    assert port.recv_reply() == [OK, 2, 2.0]  # nothing for task 1 before or after
    port.send([TASK, 3, 0, None, "erlang._loop_host", "stats", [], {}])
    stats = {key.data.decode(): v for key, v in port.recv_reply()[2].items()}  # atom keys
    assert stats["cancelled"] == 1 and stats["running"] == 0


def test_markers_are_tuples() -> None:
    import erlang

    marker = erlang.schedule_py("m", "f", [1], {"k": 2})
    assert isinstance(marker, tuple) and isinstance(marker, erlang.ScheduleMarker)
    assert tuple(marker) == ("$py_schedule", "py", "m", "f", [1], {"k": 2})
    assert isinstance(marker[0], erlang.Atom) and isinstance(marker[1], erlang.Atom)
    assert tuple(erlang.schedule("cb", 1, 2)) == ("$py_schedule", "erlang", "cb", [1, 2])
    inline = erlang.schedule_inline("m", "f")
    assert isinstance(inline, erlang.InlineScheduleMarker)
    assert tuple(inline) == ("$py_schedule", "inline", "m", "f", [], {})
    with pytest.raises(TypeError):
        erlang.schedule(1)


def test_consume_time_slice() -> None:
    import erlang

    erlang.consume_time_slice(100)  # start from a fresh slice
    assert [erlang.consume_time_slice(30) for _ in range(4)] == [False, False, False, True]
    for bad in (0, 101, 1.5, True, "1"):
        with pytest.raises(ValueError):
            erlang.consume_time_slice(bad)
