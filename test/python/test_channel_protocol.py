"""The Python side of channels (spec/PROTOCOL.md, Channels), driven with raw frames."""

from __future__ import annotations

import msgpack

from conftest import PortProgram
from wire import CALL, CALLBACK_OK, EXEC, EXT_ATOM, EXT_PID, EXT_REF, EXT_TUPLE, PROTOCOL_ERROR
from wire import CHANNEL_ACK as ACK
from wire import CHANNEL_BYTES as BYTES
from wire import CHANNEL_CLOSE as CLOSE
from wire import CHANNEL_CLOSED as CLOSED
from wire import CHANNEL_DATA as DATA
from wire import CHANNEL_PROBE as PROBE
from wire import CHANNEL_PROBE_DATA as PROBE_DATA
from wire import CHANNEL_RETURN as RETURN
from wire import CHANNEL_RETURNED as RETURNED
from wire import REPLY_ERROR as ERROR
from wire import REPLY_OK as OK

PID = msgpack.ExtType(EXT_PID, b"X\x77\x0dnonode@nohost\x00\x00\x00\x55\x00\x00\x00\x00\x00\x00\x00\x00")
REF = msgpack.ExtType(EXT_REF, b"Z\x00\x03\x77\x0dnonode@nohost\x00\x00\x00\x00" + bytes(12))
SETUP = """
from erlang.channel import Channel, ByteChannel
def take(h, n):
    ch = Channel(h)
    return [ch.receive() for _ in range(n)]
def try_take(h):
    return Channel(h).try_receive()
def try_take_all(h, n):
    ch = Channel(h)
    return [ch.try_receive() for _ in range(n)]
def want_take(h):
    import _erlang_channel
    ch = Channel(h)
    value = _erlang_channel.take(ch._id)
    return None if value is _erlang_channel.EMPTY else value
def close(h):
    Channel(h).close()
def send_bytes(h, b):
    ByteChannel(h).send_bytes(b)
"""


def atom(name: str) -> msgpack.ExtType:
    return msgpack.ExtType(EXT_ATOM, name.encode())


def handle(cid: int, tag: str = "py_channel", max_size: object = None) -> msgpack.ExtType:
    limit = atom("infinity") if max_size is None else max_size
    return msgpack.ExtType(EXT_TUPLE, msgpack.packb([atom(tag), cid, PID, REF, limit]))


def define_helpers(port: PortProgram) -> None:
    port.send([EXEC, 0, 0, SETUP])
    assert port.recv_reply() == [OK, 0, None]


def test_want_data_ack_then_reply(port: PortProgram) -> None:
    define_helpers(port)
    port.send([CALL, 1, 0, "__main__", "take", [handle(5), 2], {}])
    assert port.recv_reply() == [ACK, 5, PID, REF, 0, 0, True]
    port.send([DATA, 5, "a", "bc"])
    # half of the batch taken: the next want goes out early, with the ack of "a"
    assert port.recv_reply() == [ACK, 5, PID, REF, 1, 2, True]
    # the buffer ran empty: "bc" (1 message, 3 encoded bytes) is acknowledged
    assert port.recv_reply() == [ACK, 5, PID, REF, 1, 3, False]
    # the Channel object is gone with the want outstanding: withdrawn, before the reply
    assert port.recv_reply() == [RETURN, 5, PID, REF, 0, 0]
    assert port.recv_reply() == [OK, 1, ["a", "bc"]]


def test_withdrawn_want_drops_its_answer_until_confirmed(port: PortProgram) -> None:
    define_helpers(port)
    port.send([CALL, 1, 0, "__main__", "want_take", [handle(6)], {}])
    assert port.recv_reply() == [ACK, 6, PID, REF, 0, 0, True]
    # the temporary Channel object is gone: the want is withdrawn
    assert port.recv_reply() == [RETURN, 6, PID, REF, 0, 0]
    assert port.recv_reply() == [OK, 1, None]
    # the answer to the withdrawn want (the server requeued it) is dropped ...
    port.send([DATA, 6, "stale"])
    # ... until the server confirms the return
    port.send([RETURNED, 6])
    port.send([CALL, 3, 0, "__main__", "take", [handle(6), 3], {}])
    assert port.recv_reply() == [ACK, 6, PID, REF, 0, 0, True]
    port.send([DATA, 6, 1, 2, 3])
    assert port.recv_reply() == [ACK, 6, PID, REF, 2, 2, True]  # 1 of 3 left: next want
    assert port.recv_reply() == [ACK, 6, PID, REF, 1, 1, False]  # drained
    assert port.recv_reply() == [RETURN, 6, PID, REF, 0, 0]
    assert port.recv_reply() == [OK, 3, [1, 2, 3]]


def test_released_channel_returns_what_was_not_taken(port: PortProgram) -> None:
    define_helpers(port)
    port.send([CALL, 1, 0, "__main__", "take", [handle(11), 1], {}])
    assert port.recv_reply() == [ACK, 11, PID, REF, 0, 0, True]
    port.send([DATA, 11, "a", "b", "c"])
    # one taken, two left when the object goes: acked with the return
    assert port.recv_reply() == [RETURN, 11, PID, REF, 1, 2]
    assert port.recv_reply() == [OK, 1, ["a"]]


def test_closed_while_waiting(port: PortProgram) -> None:
    define_helpers(port)
    port.send([CALL, 1, 0, "__main__", "take", [handle(7), 1], {}])
    assert port.recv_reply() == [ACK, 7, PID, REF, 0, 0, True]
    port.send([CLOSED, 7])
    kind, reqid, cls, _message, _tb = port.recv_reply()
    assert (kind, reqid, cls) == (ERROR, 1, "ChannelClosed")


def test_close_and_send_bytes_frames(port: PortProgram) -> None:
    define_helpers(port)
    port.send([CALL, 1, 0, "__main__", "send_bytes", [handle(8, "py_byte_channel"), b"\x00\xff"], {}])
    assert port.recv_reply() == [BYTES, 8, PID, b"\x00\xff"]
    assert port.recv_reply() == [OK, 1, None]
    port.send([CALL, 2, 0, "__main__", "close", [handle(9)], {}])
    assert port.recv_reply() == [CLOSE, 9, PID, REF]
    assert port.recv_reply() == [OK, 2, None]


def test_bounded_channel_acks_every_quarter(port: PortProgram) -> None:
    define_helpers(port)
    port.send([CALL, 1, 0, "__main__", "take", [handle(10, max_size=8), 2], {}])
    assert port.recv_reply() == [ACK, 10, PID, REF, 0, 0, True]
    port.send([DATA, 10, "abc", "def", "ghi"])  # 4 bytes each; a quarter of 8 is 2
    assert port.recv_reply() == [ACK, 10, PID, REF, 1, 4, False]
    assert port.recv_reply() == [ACK, 10, PID, REF, 1, 4, True]  # and 1 of 3 left: next want
    # "ghi" was not taken: it goes back when the Channel object is gone
    assert port.recv_reply() == [RETURN, 10, PID, REF, 0, 0]
    assert port.recv_reply() == [OK, 1, ["abc", "def"]]


def test_blocking_receiver_acknowledges_what_it_took(port: PortProgram) -> None:
    define_helpers(port)
    port.send([CALL, 1, 0, "__main__", "take", [handle(12), 4], {}])
    assert port.recv_reply() == [ACK, 12, PID, REF, 0, 0, True]
    port.send([DATA, 12, 1, 2, 3])
    assert port.recv_reply() == [ACK, 12, PID, REF, 2, 2, True]
    # the third is taken, the fourth must wait: the third is acknowledged first
    assert port.recv_reply() == [ACK, 12, PID, REF, 1, 1, False]
    port.send([DATA, 12, 4])
    assert port.recv_reply() == [ACK, 12, PID, REF, 1, 1, False]
    assert port.recv_reply() == [OK, 1, [1, 2, 3, 4]]


def test_malformed_data_frame_is_a_protocol_error(port: PortProgram) -> None:
    define_helpers(port)
    port.send_raw(b"\x00\x00\x00\x03\x93" + bytes([DATA, 5]))  # [DATA, 5, <missing>]
    assert port.recv_reply()[0] == PROTOCOL_ERROR
    port.send([CALL, 1, 0, "operator", "add", [1, 2], {}])
    assert port.recv_reply() == [OK, 1, 3]


def test_try_receive_asks_the_server_and_waits_for_its_answer(port: PortProgram) -> None:
    """try_receive with nothing here sends a probe (an ack that asks what is
    queued now) and returns what the answer [38] brings, or None when it
    brings nothing; it never sends a want."""
    define_helpers(port)
    port.send([CALL, 1, 0, "__main__", "try_take_all", [handle(20), 3], {}])
    assert port.recv_reply() == [PROBE, 20, PID, REF, 0, 0]
    port.send([PROBE_DATA, 20, "m", "n"])
    # "m" taken: half of the batch gone, a want goes out early (as for receive)
    assert port.recv_reply() == [ACK, 20, PID, REF, 1, 2, True]
    # "n" taken, drained: acknowledged
    assert port.recv_reply() == [ACK, 20, PID, REF, 1, 2, False]
    # the third asks again: nothing queued
    assert port.recv_reply() == [PROBE, 20, PID, REF, 0, 0]
    port.send([PROBE_DATA, 20])
    # the want is still outstanding when the object goes: withdrawn
    assert port.recv_reply() == [RETURN, 20, PID, REF, 0, 0]
    assert port.recv_reply() == [OK, 1, ["m", "n", None]]


def test_try_receive_closed_answer_raises(port: PortProgram) -> None:
    define_helpers(port)
    port.send([CALL, 1, 0, "__main__", "try_take", [handle(21)], {}])
    assert port.recv_reply() == [PROBE, 21, PID, REF, 0, 0]
    port.send([CLOSED, 21])
    kind, reqid, cls, _message, _tb = port.recv_reply()
    assert (kind, reqid, cls) == (ERROR, 1, "ChannelClosed")


def test_probe_answer_does_not_answer_a_want(port: PortProgram) -> None:
    """With a want out, try_receive still asks: an empty probe answer gives
    None and leaves the want outstanding (no second want is sent); its data
    then reaches the next receive()."""
    define_helpers(port)
    port.send([EXEC, 2, 0, "import _erlang_channel, erlang\n"
               "def both(h, pid):\n    ch = Channel(h)\n"
               "    assert _erlang_channel.take(ch._id) is _erlang_channel.EMPTY\n"
               "    first = ch.try_receive()\n    erlang.send(pid, first)\n"
               "    return [first, ch.receive()]\n"])
    assert port.recv_reply() == [OK, 2, None]
    port.send([CALL, 3, 0, "__main__", "both", [handle(22), PID], {}])
    assert port.recv_reply() == [ACK, 22, PID, REF, 0, 0, True]
    assert port.recv_reply() == [PROBE, 22, PID, REF, 0, 0]
    port.send([PROBE_DATA, 22])
    # try_receive returned None: erlang.send asks Erlang to deliver it
    kind, cbid, _handler, name, args = port.recv_reply()
    assert (kind, name, args) == (16, "_py.send", [PID, None])
    port.send([CALLBACK_OK, cbid, True])
    port.send([DATA, 22, "w"])
    assert port.recv_reply() == [ACK, 22, PID, REF, 1, 2, False]
    assert port.recv_reply() == [OK, 3, [None, "w"]]
