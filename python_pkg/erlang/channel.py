"""Channels: messages streamed from Erlang (``py_channel``, ``py_byte_channel``).

A channel handle arrives as an argument (``py:call(mod, worker, [Ch])``) and is
wrapped here: ``Channel(handle)`` for Erlang terms, ``ByteChannel(handle)`` for
raw bytes. Several receivers, in this or other contexts and port programs, may
share one channel: each message goes to exactly one of them, in send order.

``receive()`` blocks with the GIL released; ``await async_receive()`` waits on
an eventfd that the running asyncio loop watches, so it works on any loop and
never polls.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any, AsyncIterator, Iterator

try:
    import _erlang_channel as _native
except ImportError:  # plain Python: the classes exist, using them fails clearly
    _native = None

from ._async import bridge
from ._types import Pid, Ref

__all__ = ["ByteChannel", "ByteChannelClosed", "Channel", "ChannelClosed", "reply"]


class ChannelClosed(Exception):
    """The channel is closed and every message sent before the close was received."""


class ByteChannelClosed(ChannelClosed):
    """The byte channel is closed and drained."""


def reply(pid: Pid, term: Any) -> None:
    """Send `term` to the Erlang process `pid` (no reply expected): ``erlang.send``,
    so a process that has exited raises ``erlang.ProcessError``."""
    from ._process import send

    send(pid, term)


_TERM, _BYTES = 0, 1


class _Base:
    _tag = ""
    _kind = _TERM
    _closed_error: type[ChannelClosed] = ChannelClosed

    def __init__(self, handle: Any) -> None:
        if _native is None:
            raise RuntimeError("channels need the erlang_python port program")
        if isinstance(handle, _Base):
            handle = handle._handle
        if not (isinstance(handle, tuple) and len(handle) == 5 and handle[0] == self._tag):
            raise TypeError(
                f"{type(self).__name__}() takes the handle from {self._tag}:new/0,1, "
                f"not {handle!r:.200}"
            )
        _, cid, server, counters, max_size = handle
        if not (isinstance(cid, int) and isinstance(server, Pid) and isinstance(counters, Ref)):
            raise TypeError(f"malformed {self._tag} handle: {handle!r:.200}")
        limit = max_size if isinstance(max_size, int) else -1
        _native.open(cid, self._kind, server, counters, limit)
        self._handle = handle
        self._id: int = cid

    def __del__(self) -> None:
        cid = getattr(self, "_id", None)
        if cid is not None and _native is not None:
            _native.release(cid)

    def __iter__(self) -> Iterator[Any]:
        # A C-level iterator: receive() until it returns CLOSED. It keeps the
        # channel object (and so the channel's state here) alive.
        receive = functools.partial(_native.receive, self._id)
        receive.channel = self  # type: ignore[attr-defined]
        return iter(receive, _native.CLOSED)

    def __next__(self) -> Any:
        value = _native.receive(self._id)
        if value is _native.CLOSED:
            raise StopIteration
        return value

    def __aiter__(self) -> AsyncIterator[Any]:
        return self

    async def __anext__(self) -> Any:
        try:
            return await self._async_receive()
        except self._closed_error:
            raise StopAsyncIteration from None

    def _receive(self) -> Any:
        value = _native.receive(self._id)
        if value is _native.CLOSED:
            raise self._closed_error(f"{self._tag} {self._id} is closed")
        return value

    def _receive_within(self, timeout_ms: int | float | None) -> Any:
        if timeout_ms is None:
            return self._receive()
        if isinstance(timeout_ms, bool) or not isinstance(timeout_ms, (int, float)) or timeout_ms < 0:
            raise ValueError(f"timeout_ms must be a number >= 0 or None, not {timeout_ms!r:.50}")
        value = _native.try_receive(self._id)
        if value is _native.EMPTY and timeout_ms > 0:
            # Wait on an eventfd the channel signals when data or the close comes
            # (select releases the GIL); nested requests do not run meanwhile.
            import os
            import select
            import time

            deadline = time.monotonic() + timeout_ms / 1000
            fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
            try:
                while (value := _native.poll(self._id, fd)) is _native.EMPTY:
                    left = deadline - time.monotonic()
                    if left <= 0 or not select.select([fd], [], [], left)[0]:
                        break
                    os.eventfd_read(fd)
            finally:
                _native.forget_fd(fd)
                os.close(fd)
        if value is _native.EMPTY:
            raise TimeoutError(f"{self._tag} {self._id}: nothing received within {timeout_ms} ms")
        if value is _native.CLOSED:
            raise self._closed_error(f"{self._tag} {self._id} is closed")
        return value

    def _try_receive(self) -> Any:
        value = _native.try_receive(self._id)
        if value is _native.EMPTY:
            return None
        if value is _native.CLOSED:
            raise self._closed_error(f"{self._tag} {self._id} is closed")
        return value

    async def _async_receive(self) -> Any:
        value = _native.take(self._id)  # what is here already; never waits
        if value is _native.EMPTY:
            loop_bridge = bridge(asyncio.get_running_loop())
            # Take only when running again: a receive cancelled while it waits
            # (a timeout) has taken nothing, so no message is lost with it.
            while (value := _native.poll(self._id, loop_bridge.fd)) is _native.EMPTY:
                await loop_bridge.wakeup()
        if value is _native.CLOSED:
            raise self._closed_error(f"{self._tag} {self._id} is closed")
        return value

    def close(self) -> None:
        """Close the channel for every receiver (safe to call more than once).

        Receivers get the messages already sent, then the closed error.
        """
        _native.close(self._id)

    def __enter__(self) -> "_Base":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._id}>"


class Channel(_Base):
    """Receives the Erlang terms sent with ``py_channel:send/2``."""

    _tag = "py_channel"
    _kind = _TERM
    _closed_error = ChannelClosed

    def receive(self, timeout_ms: int | float | None = None) -> Any:
        """The next message; blocks (GIL released), at most ``timeout_ms``
        milliseconds if given (then TimeoutError). Raises ChannelClosed."""
        return self._receive_within(timeout_ms)

    def try_receive(self) -> Any:
        """The next message, or None when the channel is empty. Raises ChannelClosed.

        A message that ``send/2`` accepted before this call is returned: with
        nothing buffered here it asks the channel's server (one round trip).
        """
        return self._try_receive()

    async def async_receive(self) -> Any:
        """The next message, without blocking the event loop. Raises ChannelClosed."""
        return await self._async_receive()


class ByteChannel(_Base):
    """Raw bytes both ways: ``py_byte_channel:send/2`` in, ``send_bytes`` out."""

    _tag = "py_byte_channel"
    _kind = _BYTES
    _closed_error = ByteChannelClosed

    def receive_bytes(self, timeout_ms: int | float | None = None) -> bytes:
        """The next chunk; blocks (GIL released), at most ``timeout_ms``
        milliseconds if given (then TimeoutError). Raises ByteChannelClosed."""
        return self._receive_within(timeout_ms)

    def receive(self, timeout_ms: int | float | None = None) -> bytes:
        """The same as receive_bytes."""
        return self._receive_within(timeout_ms)

    def try_receive_bytes(self) -> bytes | None:
        """The next chunk, or None when the channel is empty. Raises ByteChannelClosed."""
        return self._try_receive()

    async def async_receive_bytes(self) -> bytes:
        """The next chunk, without blocking the event loop. Raises ByteChannelClosed."""
        return await self._async_receive()

    def send_bytes(self, data: bytes | bytearray | memoryview) -> bool:
        """Queue `data` for ``py_byte_channel:recv/1,2`` on the Erlang side; True."""
        if _native.is_closed(self._id):
            raise ByteChannelClosed(f"py_byte_channel {self._id} is closed")
        _native.send_bytes(self._id, data)
        return True
