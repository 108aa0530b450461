"""Running coroutines on ErlangEventLoop: run, new_event_loop, the policy, install."""

from __future__ import annotations

import asyncio
import sys
from asyncio import runners
import warnings
from typing import Any, Coroutine, Optional, TypeVar

from ._loop import ErlangEventLoop

__all__ = ["ErlangEventLoopPolicy", "EventLoopPolicy", "install", "new_event_loop", "run"]

T = TypeVar("T")


def new_event_loop() -> ErlangEventLoop:
    """A new ErlangEventLoop (a loop factory for ``asyncio.Runner``)."""
    return ErlangEventLoop()


class _Runner(asyncio.Runner):
    """asyncio.Runner whose close() skips the loop turns that have nothing to
    do: shutting down async generators when none were made, the default
    executor when none was (4 of the 6 loop iterations of a short
    ``erlang.run``, i.e. of a ``py:call`` of a coroutine function)."""

    def close(self) -> None:
        loop = self._loop
        if self._state is not runners._State.INITIALIZED or loop is None or loop.is_closed():
            super().close()
            return
        try:
            runners._cancel_all_tasks(loop)  # type: ignore[attr-defined]
            if loop._asyncgens:
                loop.run_until_complete(loop.shutdown_asyncgens())
            else:
                loop._asyncgens_shutdown_called = True
            if loop._default_executor is not None:
                loop.run_until_complete(loop.shutdown_default_executor())
            else:
                loop._executor_shutdown_called = True
        finally:
            if self._set_event_loop:
                asyncio.set_event_loop(None)
            loop.close()
            self._loop = None
            self._state = runners._State.CLOSED


def run(main: Coroutine[Any, Any, T], *, debug: Optional[bool] = None) -> T:
    """Run `main` to completion on a new ErlangEventLoop, as ``asyncio.run`` does."""
    with _Runner(loop_factory=new_event_loop, debug=debug) as runner:
        return runner.run(main)


class EventLoopPolicy(asyncio.DefaultEventLoopPolicy):  # type: ignore[misc,valid-type]
    """The standard policy making ErlangEventLoops.

    One loop per thread: unlike the standard policy, ``get_event_loop()`` makes
    one on any thread that asks (Python code under erlang_python runs on the
    port program's threads, never on Python's main thread).
    """

    _loop_factory = ErlangEventLoop

    def get_event_loop(self) -> asyncio.AbstractEventLoop:
        local = self._local
        if local._loop is None and not local._set_called:
            self.set_event_loop(self.new_event_loop())
        return super().get_event_loop()


ErlangEventLoopPolicy = EventLoopPolicy


def install() -> None:
    """Make ErlangEventLoop asyncio's default (``asyncio.run`` included, up to 3.11).

    Deprecated from Python 3.12 on, where ``asyncio.run`` ignores the policy:
    use :func:`erlang.run` or ``asyncio.Runner(loop_factory=erlang.new_event_loop)``.
    """
    if sys.version_info >= (3, 12):
        warnings.warn(
            "erlang.install() is deprecated in Python 3.12+; use erlang.run() instead",
            DeprecationWarning,
            stacklevel=2,
        )
    asyncio.set_event_loop_policy(EventLoopPolicy())
