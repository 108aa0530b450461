"""Namespaces, references, interrupts and watches at the protocol level
(spec/PROTOCOL.md, "Request trailer", "Namespaces", "Interrupts"), against the
real port program."""

from __future__ import annotations

import threading
import time

from conftest import PortProgram
from wire import CALL, CANCEL, EVAL, EXEC, INTERRUPT, REF_OP, WATCH_END
from wire import DROP_NAMESPACE as DROP
from wire import REPLY_ERROR as ERROR
from wire import REPLY_OK as OK


def test_namespaces_are_separate_and_see_the_shared_one(port: PortProgram) -> None:
    port.send([EXEC, 1, 0, "x = 'a'", None, "ns-a"])
    assert port.recv_reply() == [OK, 1, None]
    port.send([EXEC, 2, 0, "x = 'b'", None, "ns-b"])
    assert port.recv_reply() == [OK, 2, None]
    port.send([EVAL, 3, 0, "x", {}, None, "ns-a"])
    assert port.recv_reply() == [OK, 3, "a"]
    port.send([EXEC, 4, 0, "SHARED = 7\ndef f(): return 'shared f'", None, None])
    assert port.recv_reply() == [OK, 4, None]
    port.send([EVAL, 5, 0, "SHARED + 1", {}, None, "ns-b"])
    assert port.recv_reply() == [OK, 5, 8]
    port.send([CALL, 6, 0, "__main__", "f", [], {}, None, "ns-b"])
    assert port.recv_reply() == [OK, 6, "shared f"]
    # the shared namespace does not see a process namespace
    port.send([EVAL, 7, 0, "x", {}])
    assert port.recv_reply()[:3] == [ERROR, 7, "NameError"]


def test_drop_frees_the_namespace(port: PortProgram) -> None:
    port.send([EXEC, 1, 0, "y = 1", None, "gone"])
    assert port.recv_reply() == [OK, 1, None]
    port.send([DROP, 0, "gone"])
    port.send([EVAL, 2, 0, "y", {}, None, "gone"])
    assert port.recv_reply()[:3] == [ERROR, 2, "NameError"]


def test_return_ref_and_reference_operations(port: PortProgram) -> None:
    port.send([CALL, 1, 0, "builtins", "list", [[1, 2]], {}, None, "owner", True])
    kind, _, ref = port.recv_reply()
    assert kind == OK and isinstance(ref, int) and ref > 0
    port.send([REF_OP, 2, 0, 0, ref, "append", [3], {}, None, "owner"])
    assert port.recv_reply() == [OK, 2, None]
    port.send([REF_OP, 3, 0, 2, ref, "", [], {}, None, "owner"])
    assert port.recv_reply() == [OK, 3, [1, 2, 3]]
    port.send([REF_OP, 4, 0, 1, ref, "__class__", [], {}, None, "owner", True])
    kind, _, cls = port.recv_reply()
    port.send([REF_OP, 5, 0, 1, cls, "__name__", [], {}, None, "owner"])
    assert port.recv_reply() == [OK, 5, "list"]
    port.send([REF_OP, 6, 0, 3, ref, "", [], {}, None, "owner"])
    assert port.recv_reply() == [OK, 6, None]
    port.send([REF_OP, 7, 0, 2, ref, "", [], {}, None, "owner"])
    assert port.recv_reply()[:3] == [ERROR, 7, "ReferenceError"]
    port.send([DROP, 0, "owner"])
    port.send([REF_OP, 8, 0, 2, cls, "", [], {}, None, "owner"])
    assert port.recv_reply()[:3] == [ERROR, 8, "ReferenceError"]


def test_interrupt_running_and_idle(port: PortProgram) -> None:
    port.send([INTERRUPT, 1, 0])
    assert port.recv_reply() == [OK, 1, False]
    port.send([EXEC, 2, 0, "while True: pass"])
    deadline = time.monotonic() + 5
    while True:
        port.send([INTERRUPT, 3, 0])
        reply = port.recv_reply()
        if reply != [OK, 3, False]:
            break
        assert time.monotonic() < deadline
        threading.Event().wait(0.01)
    # The executor may write its error before the reading thread writes the
    # interrupt's answer: the two replies come from different threads.
    replies = [reply, port.recv_reply()]
    replies.sort(key=lambda r: r[1])
    assert replies[0][:3] == [ERROR, 2, "KeyboardInterrupt"]
    assert replies[1] == [OK, 3, True]
    port.send([EVAL, 4, 0, "2 + 2", {}])
    assert port.recv_reply() == [OK, 4, 4]


def test_watch_answers_when_the_request_has_ended(port: PortProgram) -> None:
    # a request that is neither queued nor running: at once
    port.send([WATCH_END, "gone", 0, 99])
    assert port.recv_reply() == [OK, "gone", True]
    # a running one and a queued one: each right after its own reply
    port.send([EXEC, 2, 0, "import time\ntime.sleep(0.3)"])
    port.send([EXEC, 3, 0, "x = 1"])
    port.send([WATCH_END, "w2", 0, 2])
    port.send([WATCH_END, "w3", 0, 3])
    assert [port.recv_reply() for _ in range(4)] == [
        [OK, 2, None],
        [OK, "w2", True],
        [OK, 3, None],
        [OK, "w3", True],
    ]
    # the other context's requests are not this one's
    port.send([EXEC, 4, 1, "import time\ntime.sleep(0.3)"])
    port.send([WATCH_END, "w4", 0, 4])
    assert port.recv_reply() == [OK, "w4", True]
    assert port.recv_reply() == [OK, 4, None]


def test_watch_of_a_cancelled_request(port: PortProgram) -> None:
    # running: the cancel interrupts it, the watch answers after its reply
    port.send([EXEC, 1, 0, "print('in', flush=True)\nwhile True: pass"])
    assert port.recv()[0] == 6  # it runs
    port.send([CANCEL, 1, 0])
    port.send([WATCH_END, "w1", 0, 1])
    assert port.recv_reply()[:3] == [ERROR, 1, "KeyboardInterrupt"]
    assert port.recv_reply() == [OK, "w1", True]
    # queued: the cancel drops it (no reply), the watch answers at once
    port.send([EXEC, 2, 0, "import time\ntime.sleep(0.3)"])
    port.send([EXEC, 3, 0, "y = 1"])
    port.send([CANCEL, 3, 0])
    port.send([WATCH_END, "w3", 0, 3])
    assert port.recv_reply() == [OK, "w3", True]
    assert port.recv_reply() == [OK, 2, None]
    port.send([EVAL, 4, 0, "'y' in globals()", {}])
    assert port.recv_reply() == [OK, 4, False]
