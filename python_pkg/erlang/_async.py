"""erlang.async_call: an awaitable Erlang call that never blocks the event loop.

The port program completes async calls by queueing the reply and signalling an
eventfd; each event loop watches its own eventfd with add_reader, so the reply
is picked up by the loop thread itself, on any asyncio loop. An ErlangEventLoop
does better while replies are due: it reads the port program's input itself
before it sleeps, and gets its replies without the eventfd (spec/EVENT_LOOP.md,
"While async_call replies are due").

A loop running on a context's executor thread (a called coroutine) also watches
the context's queue while one of its async calls is pending, and runs nested
the requests that arrive meanwhile from the chain of a pending call, as
erlang.call does: an Erlang function called with async_call may call back into
the same context without deadlock. Other requests run in their turn.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import os
import weakref
from typing import Any

try:
    import _erlang
except ImportError:  # plain Python
    _erlang = None


class _Bridge:
    """The eventfd of one event loop and the futures waiting on it: async call
    results, and channel receivers waiting for a wake-up (erlang.channel).

    The loop holds its bridge (an attribute, and the reader callback); the
    bridge holds the loop only weakly and forgets a call once its future is
    done (a cancelled one included). So a loop that is done with, e.g. one of
    many ``asyncio.run`` calls, is freed with its bridge, and its eventfd is
    closed then.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = weakref.ref(loop)
        self.fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self.futures: dict[int, tuple[str, asyncio.Future[Any], int]] = {}
        self._wakeups: list[asyncio.Future[None]] = []
        self._tokens = itertools.count(1)
        loop.add_reader(self.fd, self._drain)
        weakref.finalize(loop, _close, self.fd)
        # An ErlangEventLoop reads the port program's input itself for a
        # while before it sleeps when replies to this eventfd are due: the
        # reply then costs it no wake-up (core/selector_spin.cpp).
        uv = getattr(getattr(loop, "_selector", None), "_uv", None)
        if uv is not None and hasattr(uv, "set_reply_fd"):
            uv.set_reply_fd(self.fd)
        # -1 unless this loop runs on a context's executor thread
        self.nested_fd = _erlang.nested_fd()
        if self.nested_fd >= 0:
            loop.add_reader(self.nested_fd, self._nested)

    def start(self, loop: asyncio.AbstractEventLoop, name: str, args: tuple) -> asyncio.Future[Any]:
        future = loop.create_future()
        token = next(self._tokens)
        self.futures[token] = (name, future, 0)
        try:
            call_id = _erlang.call_async(name, args, self.fd, token)
        except BaseException:
            del self.futures[token]
            raise
        self.futures[token] = (name, future, call_id)
        if self.nested_fd >= 0 and len(self.futures) == 1:
            _erlang.nested_watch(True)
        future.add_done_callback(functools.partial(self._forget, token))
        return future

    def _forget(self, token: int, _future: "asyncio.Future[Any]") -> None:
        """A call's future is done: a reply still to come is dropped."""
        pending = self.futures.pop(token, None)
        if pending is None:
            return  # its reply came (_drain)
        # Done before its reply (cancelled): the reply is dropped, and the
        # requests of its chain no longer run nested.
        _erlang.async_drop(pending[2])
        if self.nested_fd >= 0 and not self.futures:
            _erlang.nested_watch(False)

    def wakeup(self) -> "asyncio.Future[None]":
        """Done at the next signal of the eventfd (which the caller armed)."""
        loop = self._loop()
        assert loop is not None, "wakeup() runs on the bridge's loop"
        future = loop.create_future()
        self._wakeups.append(future)
        return future

    def _drain(self) -> None:
        wakeups, self._wakeups = self._wakeups, []
        # The eventfd is cleared natively before the results are taken: when a
        # reply signalled it, when a channel receiver waits (its channel may
        # have), or when nothing came (a stale signal). An ErlangEventLoop that
        # read the input itself while waiting got its replies unsignalled.
        results = _erlang.async_drain(self.fd, bool(wakeups))
        for future in wakeups:
            if not future.done():
                future.set_result(None)
        for token, ok, value in results:
            name, future, _ = self.futures.pop(token, (None, None, 0))
            if future is None or future.done():
                continue
            if ok:
                future.set_result(value)
            else:
                future.set_exception(RuntimeError(f"erlang.async_call('{name}') failed: {value}"))
        if self.nested_fd >= 0 and not self.futures:
            _erlang.nested_watch(False)

    def _nested(self) -> None:
        """Requests queued for this executor's context while an async call waits."""
        try:
            os.eventfd_read(self.nested_fd)
        except BlockingIOError:
            pass
        if self.futures and _erlang.run_nested():
            # The Erlang caller of the request running this loop gave up: fail
            # its pending async calls, as erlang.call's wait would be.
            for name, future, _ in self.futures.values():
                if not future.done():
                    future.set_exception(
                        RuntimeError(
                            f"erlang.async_call('{name}') cancelled: "
                            "the Erlang caller of this Python call gave up"
                        )
                    )


def _close(fd: int) -> None:
    if _erlang is not None:
        _erlang.async_forget(fd)
        import _erlang_channel

        _erlang_channel.forget_fd(fd)
    os.close(fd)


# Bridges of loops that take no attributes (every asyncio and uvloop loop does).
_bridges: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Bridge]" = weakref.WeakKeyDictionary()


def async_call(name: str, *args: Any) -> "asyncio.Future[Any]":
    """Call the registered Erlang function `name`; await the result.

    Must be called with a running event loop (from a coroutine). Errors raise
    RuntimeError when awaited.
    """
    if _erlang is None:
        raise RuntimeError("erlang.async_call needs the erlang_python port program")
    if not isinstance(name, str):
        raise TypeError(f"async_call: the function name must be str, not {type(name).__name__}")
    loop = asyncio.get_running_loop()
    return bridge(loop).start(loop, name, args)


def bridge(loop: asyncio.AbstractEventLoop) -> _Bridge:
    """The bridge of `loop`, made on first use."""
    found = getattr(loop, "_erlang_bridge", None) or _bridges.get(loop)
    if found is None:
        found = _Bridge(loop)
        try:
            loop._erlang_bridge = found  # type: ignore[attr-defined]
        except AttributeError:
            _bridges[loop] = found
    return found
