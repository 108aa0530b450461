"""UvSelector: a selectors.BaseSelector over the port program's libuv loop.

Each ErlangEventLoop owns one: its own ``uv_loop_t`` with a ``uv_poll`` per
registered file descriptor, a ``uv_async`` that any thread may signal to end a
wait (:meth:`wakeup`), a ``uv_timer`` bounding each wait, and ``uv_signal``
watches for the loop's signal handlers (any thread, not only the main one).
"""

from __future__ import annotations

import selectors
from typing import Any, Callable, Optional

try:
    import _erlang_loop
except ImportError:  # plain Python: see UvSelector()
    _erlang_loop = None

_EVENTS = selectors.EVENT_READ | selectors.EVENT_WRITE


class UvSelector(selectors._BaseSelectorImpl):  # type: ignore[name-defined,misc]
    """Readiness from libuv; registration bookkeeping as the stdlib's selectors."""

    # Read by the native run_once at their offsets (core/loop_attrs.cpp).
    __slots__ = ("_uv", "on_signal", "_fd_to_key")

    def __init__(self) -> None:
        if _erlang_loop is None:
            raise RuntimeError("UvSelector needs the erlang_python port program")
        super().__init__()
        self._uv = _erlang_loop.Selector()
        # Set by the loop while it has signal handlers: called with each signal
        # number received, on the loop's thread, after a wait.
        self.on_signal: Optional[Callable[[int], None]] = None

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        key = super().register(fileobj, events, data)
        try:
            self._uv.watch(key.fd, events)
        except BaseException:
            super().unregister(fileobj)
            raise
        return key

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        key = super().unregister(fileobj)
        try:
            self._uv.watch(key.fd, 0)
        except OSError:
            pass  # the descriptor may be closed already
        return key

    def modify(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        try:
            key = self._fd_to_key[self._fileobj_lookup(fileobj)]
        except KeyError:
            raise KeyError(f"{fileobj!r} is not registered") from None
        changed = False
        if events != key.events:
            if not events or events & ~_EVENTS:
                raise ValueError(f"Invalid events: {events!r}")
            self._uv.watch(key.fd, events)
            changed = True
        if data is not key.data:
            changed = True
        if changed:
            key = key._replace(events=events, data=data)
            self._fd_to_key[key.fd] = key
        return key

    def select(self, timeout: Optional[float] = None) -> list[tuple[selectors.SelectorKey, int]]:
        fd_to_key = self._fd_to_key
        ready = []
        for fd, events in self._uv.select(timeout):
            key = fd_to_key.get(fd)
            if key is not None:
                ready.append((key, events & key.events))
        if self.on_signal is not None:
            for signum in self._uv.signals():
                self.on_signal(signum)
        return ready

    def wakeup(self) -> None:
        """Ends a select() in progress, or makes the next one return at once. Any thread."""
        self._uv.wakeup()

    def watch_signal(self, signum: int, on: bool) -> None:
        self._uv.signal(signum, on)

    def close(self) -> None:
        super().close()
        self._uv.close()
