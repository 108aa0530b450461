"""The ``erlang`` package: what Python code running under erlang_python imports.

Values from Erlang arrive as ordinary Python values; the few Erlang terms with
no Python equivalent arrive as :class:`Atom`, :class:`Pid`, :class:`Ref` and
:class:`OpaqueTerm`.

Channels from ``py_channel`` / ``py_byte_channel`` are read with
:class:`Channel` and :class:`ByteChannel` (module :mod:`erlang.channel`).

Registered Erlang functions (``py:register_function/2,3``) are called with
``erlang.call(name, *args)``, ``await erlang.async_call(name, *args)``, or as
attributes: ``erlang.my_function(*args)`` and ``from erlang import my_function``.
"""

from __future__ import annotations

from typing import Any, Callable

from ._async import async_call
from ._schedule import (  # explicit scheduling (py:call continues in Erlang)
    InlineScheduleMarker,
    ScheduleMarker,
    consume_time_slice,
    schedule,
    schedule_inline,
    schedule_py,
)
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
    "InlineScheduleMarker",
    "OpaqueTerm",
    "Pid",
    "Ref",
    "ScheduleMarker",
    "async_call",
    "call",
    "consume_time_slice",
    "schedule",
    "schedule_inline",
    "schedule_py",
    "send",
]

# Imported on first use (start-up time): the names of erlang.channel.
_CHANNEL_NAMES = frozenset({"ByteChannel", "ByteChannelClosed", "Channel", "ChannelClosed"})


def __getattr__(name: str) -> Any:
    """``erlang.my_function(*args)`` is ``erlang.call('my_function', *args)``."""
    if name.startswith("__"):
        raise AttributeError(name)
    if name in _CHANNEL_NAMES or name == "channel":
        import importlib

        channel = importlib.import_module(".channel", __name__)
        return channel if name == "channel" else getattr(channel, name)

    def registered_function(*args: Any) -> Any:
        return call(name, *args)

    registered_function.__name__ = registered_function.__qualname__ = name
    return registered_function
