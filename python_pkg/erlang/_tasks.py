"""erlang.sleep and erlang.spawn_task: one call for sync and async code."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any, Coroutine, Optional

__all__ = ["sleep", "spawn_task"]


def sleep(seconds: float) -> Any:
    """In async code (a running loop on this thread): ``await erlang.sleep(s)``
    is ``asyncio.sleep(s)``. In sync code: blocks the calling thread only, the
    GIL released, and returns None."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        if seconds < 0:
            raise ValueError("sleep length must be non-negative") from None
        time.sleep(seconds)
        return None
    return asyncio.sleep(seconds)


# Tasks spawned are kept until done (asyncio keeps only weak references).
_spawned: set["asyncio.Task[Any]"] = set()


def spawn_task(
    coro: Coroutine[Any, Any, Any], *, name: Optional[str] = None
) -> "asyncio.Task[Any]":
    """Start `coro` as a task and return it.

    With a running loop on this thread, on that loop. From sync code (no
    running loop, e.g. a function called by Erlang), on the port program's
    background ErlangEventLoop, which runs on a thread of its own.
    """
    if not asyncio.iscoroutine(coro):
        raise TypeError(f"spawn_task() needs a coroutine, not {type(coro).__name__}")
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        loop = _background_loop()
        task = loop.create_task(coro, name=name)
        loop._write_to_self()  # the task's first step is queued: wake the loop
    else:
        task = loop.create_task(coro, name=name)
    _spawned.add(task)
    task.add_done_callback(_spawned.discard)
    return task


_lock = threading.Lock()
_background: Optional[asyncio.AbstractEventLoop] = None


def _background_loop() -> asyncio.AbstractEventLoop:
    global _background
    with _lock:
        if _background is None or _background.is_closed():
            from ._loop import ErlangEventLoop

            loop = ErlangEventLoop()
            ready = threading.Event()

            def run() -> None:
                asyncio.set_event_loop(loop)
                loop.call_soon(ready.set)
                loop.run_forever()

            threading.Thread(target=run, name="erlang-background-loop", daemon=True).start()
            ready.wait()
            _background = loop
        return _background
