"""The loop's socket and datagram transports: the standard library's, reading
into one buffer per loop; the socket transport's hot methods are native.

``sock.recv(256 KiB)`` allocates a 256 KiB bytes object per read, above
glibc's mmap threshold: an mmap, an mremap to the size read and a munmap per
read, and fresh pages are slow to touch (about 20 µs each read on this
machine, half a TCP round trip). Reading into the loop's buffer and copying
out what was read, as uvloop does, costs a copy of the bytes that arrived.
"""

from __future__ import annotations

from asyncio import selector_events
from typing import Any

BUFFER_SIZE = 256 * 1024


class ReadBuffer:
    """One per loop: its transports read on the loop's thread, one at a time."""

    __slots__ = ("data", "view")

    def __init__(self) -> None:
        self.data = bytearray(BUFFER_SIZE)
        self.view = memoryview(self.data)


# Buffers of closed loops, for the next loops that use sockets. A fresh 256 KiB
# buffer is an mmap and 64 page faults: ~1 ms inside the VM (the linked-in
# driver), where glibc keeps its mmap threshold low, against a coroutine call's
# ~60 us; so a loop takes one only when it makes its first transport.
_SPARE_BUFFERS = 4
_spare: list[ReadBuffer] = []


def take_read_buffer() -> ReadBuffer:
    try:
        return _spare.pop()  # atomic under the GIL: loops of any thread
    except IndexError:
        return ReadBuffer()


def give_back_read_buffer(buffer: ReadBuffer) -> None:
    """`buffer`'s loop is closed: none of its transports reads again."""
    if len(_spare) < _SPARE_BUFFERS:
        _spare.append(buffer)


_SocketTransport = selector_events._SelectorSocketTransport  # type: ignore[attr-defined]
_DatagramTransport = selector_events._SelectorDatagramTransport  # type: ignore[attr-defined]


try:
    import _erlang_loop

    _SocketTransportCore = _erlang_loop.SocketTransportCore
except ImportError:  # plain Python: the class exists, the loop cannot be made
    _erlang_loop = None

    class _SocketTransportCore:  # type: ignore[no-redef]
        pass


class ErlangSocketTransport(_SocketTransportCore, _SocketTransport):  # type: ignore[misc,valid-type]
    """The standard library's socket transport (TCP and unix stream sockets)
    with its per-read and per-write methods native (core/socket_transport.cpp):
    ``_read_ready``, ``_read_ready__data_received`` (into the loop's buffer),
    ``_read_ready__get_buffer`` (BufferedProtocol) and ``write`` (sends at once
    when nothing is buffered). Everything else is _SelectorSocketTransport's.

    The attributes those methods read are slots, which they read directly."""

    __slots__ = ("_conn_lost", "_sock_fd", "_read_buffer_data", "_protocol", "_read_ready_cb",
                 "_eof", "_empty_waiter", "_buffer", "max_size")

    # The standard library's methods, for what the native ones hand back.
    _base_write = _SocketTransport.write
    _base_read_ready__data_received = _SocketTransport._read_ready__data_received

    def __init__(self, loop: Any, sock: Any, protocol: Any, waiter: Any = None,
                 extra: Any = None, server: Any = None) -> None:
        self._read_buffer_data = loop._read_buffer.data
        self.max_size = _SocketTransport.max_size  # the class attribute, as a slot
        super().__init__(loop, sock, protocol, waiter, extra, server)

    def _write_rest(self, data: Any, sent: int) -> None:
        """write() sent ``sent`` bytes of ``data`` at once (the socket's buffer
        is full): the standard library's write buffers the rest and registers
        the writer (after one more send attempt)."""
        self._base_write(memoryview(data)[sent:])


if _erlang_loop is not None:
    _erlang_loop.set_socket_transport(ErlangSocketTransport)


class ErlangDatagramTransport(_DatagramTransport):  # type: ignore[misc,valid-type]
    def _read_ready(self) -> None:
        if self._conn_lost:
            return
        if self.max_size != BUFFER_SIZE:
            super()._read_ready()
            return
        view = self._loop._read_buffer.view
        try:
            n, addr = self._sock.recvfrom_into(view)
        except (BlockingIOError, InterruptedError):
            pass
        except OSError as exc:
            self._protocol.error_received(exc)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fatal_error(exc, "Fatal read error on datagram transport")
        else:
            self._protocol.datagram_received(bytes(view[:n]), addr)


def socket_transport(loop: Any, sock: Any, protocol: Any, waiter: Any = None, *,
                     extra: Any = None, server: Any = None) -> ErlangSocketTransport:
    return ErlangSocketTransport(loop, sock, protocol, waiter, extra, server)


def datagram_transport(loop: Any, sock: Any, protocol: Any, address: Any = None,
                       waiter: Any = None, extra: Any = None) -> ErlangDatagramTransport:
    return ErlangDatagramTransport(loop, sock, protocol, address, waiter, extra)
