"""Checks of ErlangEventLoop's socket transport (native read/write methods)
run inside a port program by py_socket_transport_SUITE.

Each scenario runs on ErlangEventLoop and on asyncio's own selector loop and
returns a trace of what the protocol and the loop's exception handler saw;
the checks return both traces, which the suite requires to be equal (and
as expected).
"""

from __future__ import annotations

import asyncio
import os
import socket
import struct
import tempfile
from typing import Any, Awaitable, Callable

import erlang


def _on_both(scenario: Callable[[], Awaitable[Any]]) -> list[Any]:
    """[trace on ErlangEventLoop, trace on asyncio's loop]."""
    out = []
    for factory in (erlang.new_event_loop, asyncio.SelectorEventLoop):
        loop = factory()
        handled: list[str] = []
        loop.set_exception_handler(lambda _loop, ctx: handled.append(ctx["message"]))
        try:
            trace = loop.run_until_complete(asyncio.wait_for(scenario(), 30))
        finally:
            loop.close()
        out.append([trace, handled])
    return out


class Recorder(asyncio.Protocol):
    """Records what the transport does to it; `lost` resolves on connection_lost."""

    def __init__(self, keep_open: bool = False, fail_on: bytes | None = None) -> None:
        self.events: list[Any] = []
        self.data = bytearray()
        self.keep_open = keep_open
        self.fail_on = fail_on
        self.lost: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.events.append("made")

    def data_received(self, data: bytes) -> None:
        assert isinstance(data, bytes)
        self.data += data
        if self.fail_on is not None and self.fail_on in self.data:
            raise ValueError("data_received failed")

    def eof_received(self) -> bool:
        self.events.append("eof")
        return self.keep_open

    def pause_writing(self) -> None:
        self.events.append("pause_writing")

    def resume_writing(self) -> None:
        self.events.append("resume_writing")

    def connection_lost(self, exc: Exception | None) -> None:
        self.events.append(("lost", type(exc).__name__ if exc else None, str(exc) if exc else None))
        if not self.lost.done():
            self.lost.set_result(None)


async def _pair(protocol: asyncio.Protocol) -> tuple[Any, socket.socket]:
    """A transport over one end of a TCP connection; the other end, blocking off."""
    loop = asyncio.get_running_loop()
    listener = socket.create_server(("127.0.0.1", 0))
    listener.setblocking(False)
    port = listener.getsockname()[1]
    connect = loop.create_connection(lambda: protocol, "127.0.0.1", port)
    peer_task = loop.create_task(loop.sock_accept(listener))
    transport, _ = await connect
    peer, _ = await peer_task
    listener.close()
    return transport, peer


def transport_types() -> list[str]:
    """The loop's TCP and unix stream transports are the native ones."""

    async def go() -> list[str]:
        loop = asyncio.get_running_loop()
        names = []
        proto = Recorder()
        transport, peer = await _pair(proto)
        names.append(type(transport).__name__)
        names.append(type(transport._read_ready__data_received).__name__)
        names.append(type(transport.write).__name__)
        transport.close()
        await proto.lost
        peer.close()
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "s")
            server = await loop.create_unix_server(asyncio.Protocol, path)
            uproto = Recorder()
            utransport, _ = await loop.create_unix_connection(lambda: uproto, path)
            names.append(type(utransport).__name__)
            utransport.close()
            await uproto.lost
            server.close()
            await server.wait_closed()
        return names

    loop = erlang.new_event_loop()
    try:
        return loop.run_until_complete(go())
    finally:
        loop.close()


async def _write_errors() -> list[Any]:
    proto = Recorder()
    transport, peer = await _pair(proto)
    out: list[Any] = []
    for bad in ("text", 42, None):
        try:
            transport.write(bad)
        except Exception as exc:
            out.append((type(exc).__name__, str(exc)))
    transport.write(b"")
    transport.write(bytearray(b"ab"))
    transport.write(memoryview(b"xcdx")[1:3])
    await asyncio.sleep(0.05)
    out.append(peer.recv(100))
    transport._make_empty_waiter()
    try:
        transport.write(b"x")
    except Exception as exc:
        out.append((type(exc).__name__, str(exc)))
    transport._reset_empty_waiter()
    transport.write_eof()
    try:
        transport.write(b"x")
    except Exception as exc:
        out.append((type(exc).__name__, str(exc)))
    out.append(transport.can_write_eof())
    await asyncio.sleep(0.05)
    out.append(peer.recv(100))  # b"": EOF after write_eof
    peer.close()
    await proto.lost
    out.append(proto.events)
    return out


def write_errors() -> list[Any]:
    return _on_both(_write_errors)


async def _flow_control() -> list[Any]:
    """A peer that does not read: write buffers, pauses the protocol at the high
    water mark, resumes it below the low one; every byte arrives in order."""
    loop = asyncio.get_running_loop()
    proto = Recorder()
    transport, peer = await _pair(proto)
    transport.set_write_buffer_limits(high=64 * 1024, low=16 * 1024)
    transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16384)
    peer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
    # 512 KiB: far above the high mark and the 32 KiB the two socket buffers
    # hold; more only adds zero-window stalls (~200 ms each) on loopback
    payload = bytes(range(256)) * 2048
    for i in range(0, len(payload), 8192):
        transport.write(payload[i:i + 8192])
    buffered = transport.get_write_buffer_size()
    paused = list(proto.events)
    got = bytearray()
    while len(got) < len(payload):
        chunk = await loop.sock_recv(peer, 65536)
        assert chunk
        got += chunk
    await asyncio.sleep(0.05)
    out = [buffered > 0, paused, bytes(got) == payload, transport.get_write_buffer_size(),
           list(proto.events)]
    transport.close()
    await proto.lost
    peer.close()
    return out


def flow_control() -> list[Any]:
    return _on_both(_flow_control)


async def _reading() -> list[Any]:
    """pause/resume_reading, a smaller max_size, eof_received keeping the
    transport open (and writable), then close."""
    proto = Recorder(keep_open=True)
    transport, peer = await _pair(proto)
    out: list[Any] = [transport.is_reading()]
    transport.pause_reading()
    out.append(transport.is_reading())
    peer.sendall(b"0123456789" * 10)
    await asyncio.sleep(0.05)
    out.append(bytes(proto.data))
    transport.resume_reading()
    await asyncio.sleep(0.05)
    out.append(bytes(proto.data))
    sizes: list[int] = []
    transport.max_size = 7
    orig = proto.data_received
    proto.data_received = lambda d: (sizes.append(len(d)), orig(d))  # type: ignore[method-assign]
    peer.sendall(b"x" * 30)
    await asyncio.sleep(0.05)
    out.append(max(sizes) <= 7 and sum(sizes) == 30)
    peer.shutdown(socket.SHUT_WR)
    await asyncio.sleep(0.05)
    transport.write(b"after eof")
    await asyncio.sleep(0.05)
    out.append(peer.recv(100))
    transport.close()
    await proto.lost
    peer.close()
    out.append(proto.events)
    return out


def reading() -> list[Any]:
    return _on_both(_reading)


async def _failures() -> list[Any]:
    """data_received raising, and a connection reset by the peer."""
    out: list[Any] = []
    proto = Recorder(fail_on=b"boom")
    transport, peer = await _pair(proto)
    peer.sendall(b"boom")
    await proto.lost
    out.append(proto.events)
    peer.close()
    proto2 = Recorder()
    transport2, peer2 = await _pair(proto2)
    peer2.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    peer2.close()  # RST
    await proto2.lost
    out.append(proto2.events)
    proto3 = Recorder()
    transport3, peer3 = await _pair(proto3)
    peer3.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport3.pause_reading()
    peer3.close()
    await asyncio.sleep(0.05)
    transport3.write(b"to a reset peer")  # the write fails: connection_lost
    await proto3.lost
    out.append(proto3.events[-1][0:2])
    return out


def failures() -> list[Any]:
    return _on_both(_failures)


class Buffered(asyncio.BufferedProtocol):
    def __init__(self, size: int, empty_after: int = -1) -> None:
        self.buf = bytearray(size)
        self.data = bytearray()
        self.calls = 0
        self.empty_after = empty_after
        self.lost: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.exc: Any = None

    def get_buffer(self, sizehint: int) -> Any:
        self.calls += 1
        if self.calls == self.empty_after:
            return bytearray()
        return self.buf

    def buffer_updated(self, nbytes: int) -> None:
        self.data += self.buf[:nbytes]

    def connection_lost(self, exc: Exception | None) -> None:
        self.exc = (type(exc).__name__, str(exc)) if exc else None
        self.lost.set_result(None)


async def _buffered() -> list[Any]:
    proto = Buffered(7)
    transport, peer = await _pair(proto)
    payload = os.urandom(1000)
    peer.sendall(payload)
    peer.shutdown(socket.SHUT_WR)
    await proto.lost
    out: list[Any] = [bytes(proto.data) == payload, proto.calls >= 1000 // 7, proto.exc]
    peer.close()
    proto2 = Buffered(64, empty_after=2)
    transport2, peer2 = await _pair(proto2)
    peer2.sendall(b"a" * 10)
    await asyncio.sleep(0.05)
    peer2.sendall(b"b" * 10)
    await proto2.lost
    out.append(proto2.exc)
    peer2.close()
    return out


def buffered() -> list[Any]:
    return _on_both(_buffered)


def io_polled_while_busy() -> list[Any]:
    """run_once skips a zero-timeout wait right after a wait: I/O is still
    polled at least every other iteration while callbacks keep coming, and
    stop() before run_forever() still polls once (asyncio's documented
    behaviour)."""
    loop = erlang.new_event_loop()
    a, b = socket.socketpair()
    a.setblocking(False)
    try:
        ticks: list[int] = []
        seen: list[int] = []
        spinning = [True]

        def spin() -> None:
            ticks.append(1)
            if spinning[0]:
                loop.call_soon(spin)

        def readable() -> None:
            a.recv(100)
            seen.append(len(ticks))

        loop.add_reader(a.fileno(), readable)
        gaps = []
        for _ in range(20):
            loop.call_soon(spin)
            loop._run_once()
            loop._run_once()  # spinning: the ready queue is never empty
            start = len(ticks)
            b.send(b"x")
            while len(seen) < len(gaps) + 1 and len(ticks) - start < 10:
                loop._run_once()
            gaps.append(seen[-1] - start if len(seen) == len(gaps) + 1 else None)
            spinning[0] = False
            loop._run_once()
            spinning[0] = True
        loop.remove_reader(a.fileno())
        stopped: list[bytes] = []
        b.send(b"y")
        loop.add_reader(a.fileno(), lambda: stopped.append(a.recv(100)))
        loop.stop()
        loop.run_forever()
        loop.remove_reader(a.fileno())
        return [max(g for g in gaps if g is not None) <= 2, None not in gaps, stopped]
    finally:
        a.close()
        b.close()
        loop.close()
