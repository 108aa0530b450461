"""The loop's socket and datagram transports: the standard library's, reading
into one buffer per loop.

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


_SocketTransport = selector_events._SelectorSocketTransport  # type: ignore[attr-defined]
_DatagramTransport = selector_events._SelectorDatagramTransport  # type: ignore[attr-defined]


class ErlangSocketTransport(_SocketTransport):  # type: ignore[misc,valid-type]
    def _read_ready__data_received(self) -> None:
        if self._conn_lost:
            return
        if self.max_size != BUFFER_SIZE:  # changed on this transport: as the stdlib
            super()._read_ready__data_received()
            return
        view = self._loop._read_buffer.view
        try:
            n = self._sock.recv_into(view)
        except (BlockingIOError, InterruptedError):
            return
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fatal_error(exc, "Fatal read error on socket transport")
            return
        if not n:
            self._read_ready__on_eof()
            return
        try:
            self._protocol.data_received(bytes(view[:n]))
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fatal_error(exc, "Fatal error: protocol.data_received() call failed.")


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
