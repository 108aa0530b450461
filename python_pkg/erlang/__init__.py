"""The ``erlang`` package: what Python code running under erlang_python imports.

Values from Erlang arrive as ordinary Python values; the few Erlang terms with
no Python equivalent arrive as :class:`Atom`, :class:`Pid`, :class:`Ref` and
:class:`OpaqueTerm`.

Channels from ``py_channel`` / ``py_byte_channel`` are read with
:class:`Channel` and :class:`ByteChannel` (module :mod:`erlang.channel`).

Asyncio on the port program's libuv: ``erlang.run(coro)``,
``erlang.new_event_loop()``, :class:`ErlangEventLoop`, :class:`EventLoopPolicy`,
``erlang.install()``, ``erlang.sleep(s)``, ``erlang.spawn_task(coro)`` and
``erlang.detect_mode()`` (modules ``_loop``, ``_policy``, ``_tasks``, ``_mode``).

Registered Erlang functions (``py:register_function/2,3``) are called with
``erlang.call(name, *args)``, ``await erlang.async_call(name, *args)``, or as
attributes: ``erlang.my_function(*args)`` and ``from erlang import my_function``.
"""

from __future__ import annotations

from typing import Any, Callable

from ._async import async_call
from ._types import Atom, OpaqueTerm, Pid, Ref

try:
    from _erlang import call, send
except ImportError:  # plain Python: the types are usable, the calls are not

    def call(name: str, *args: Any) -> Any:
        raise RuntimeError("erlang.call needs the erlang_python port program")

    def send(pid: Pid, term: Any) -> None:
        raise RuntimeError("erlang.send needs the erlang_python port program")


__all__ = [
    "Atom",
    "ByteChannel",
    "ByteChannelClosed",
    "Channel",
    "ChannelClosed",
    "ErlangEventLoop",
    "ErlangEventLoopPolicy",
    "EventLoopPolicy",
    "ExecutionMode",
    "OpaqueTerm",
    "Pid",
    "Ref",
    "async_call",
    "call",
    "detect_mode",
    "install",
    "new_event_loop",
    "run",
    "send",
    "sleep",
    "spawn_task",
]

# Imported on first use (start-up time): the names of erlang.channel.
_CHANNEL_NAMES = frozenset({"ByteChannel", "ByteChannelClosed", "Channel", "ChannelClosed"})

# Imported on first use too (asyncio is not cheap): the event loop's names.
_LOOP_NAMES = {
    "ErlangEventLoop": "._loop",
    "ErlangEventLoopPolicy": "._policy",
    "EventLoopPolicy": "._policy",
    "install": "._policy",
    "new_event_loop": "._policy",
    "run": "._policy",
    "ExecutionMode": "._mode",
    "detect_mode": "._mode",
    "sleep": "._tasks",
    "spawn_task": "._tasks",
}


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


def __getattr__(name: str) -> Any:
    """``erlang.my_function(*args)`` is ``erlang.call('my_function', *args)``."""
    if name.startswith("__"):
        raise AttributeError(name)
    if name in _CHANNEL_NAMES or name == "channel":
        import importlib

        channel = importlib.import_module(".channel", __name__)
        return channel if name == "channel" else getattr(channel, name)
    if name in _LOOP_NAMES:
        import importlib

        value = getattr(importlib.import_module(_LOOP_NAMES[name], __name__), name)
        globals()[name] = value
        return value

    def registered_function(*args: Any) -> Any:
        return call(name, *args)

    registered_function.__name__ = registered_function.__qualname__ = name
    return registered_function
