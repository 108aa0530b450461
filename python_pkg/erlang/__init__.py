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
attributes: ``erlang.my_function(*args)`` and ``from erlang import my_function``
(looked up when the attribute is: a name that is neither one of this module's
nor registered then is an AttributeError).
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
    from _erlang import call
except ImportError:  # plain Python: the types are usable, the calls are not

    def call(name: str, *args: Any) -> Any:
        raise RuntimeError("erlang.call needs the erlang_python port program")


# --- dropin2: the rest of erlang_python's module (state, SharedDict, processes,
# logging, tracing, streams). Every public name is listed; `erlang.<name>` for
# any other name is a registered Erlang function or an AttributeError.
from ._process import Function, ProcessError, reply, send, whereis
from ._state import (
    SharedDict,
    state_clear,
    state_decr,
    state_delete,
    state_get,
    state_incr,
    state_keys,
    state_set,
)

__all__ = [
    "Atom",
    "ByteChannel",
    "ByteChannelClosed",
    "Channel",
    "ChannelClosed",
    "ErlangEventLoop",
    "ErlangEventLoopPolicy",
    "ErlangHandler",
    "EventLoopPolicy",
    "ExecutionMode",
    "Function",
    "InlineScheduleMarker",
    "OpaqueTerm",
    "Pid",
    "ProcessError",
    "Ref",
    "ScheduleMarker",
    "SharedDict",
    "Span",
    "async_call",
    "call",
    "consume_time_slice",
    "detect_mode",
    "install",
    "new_event_loop",
    "reply",
    "run",
    "schedule",
    "schedule_inline",
    "schedule_py",
    "send",
    "setup_logging",
    "sleep",
    "spawn_task",
    "state_clear",
    "state_decr",
    "state_delete",
    "state_get",
    "state_incr",
    "state_keys",
    "state_set",
    "trace",
    "whereis",
]

# Imported on first use (start-up time): name -> (module, attribute or None).
_LAZY: dict[str, tuple[str, str | None]] = {
    "ByteChannel": (".channel", "ByteChannel"),
    "ByteChannelClosed": (".channel", "ByteChannelClosed"),
    "Channel": (".channel", "Channel"),
    "ChannelClosed": (".channel", "ChannelClosed"),
    "ErlangHandler": ("._logging", "ErlangHandler"),
    "setup_logging": ("._logging", "setup_logging"),
    "Span": ("._trace", "Span"),
    "trace": ("._trace", "trace"),
    "channel": (".channel", None),
    "byte_channel": (".byte_channel", None),
    "_stream": ("._stream", None),
    "_trace": ("._trace", None),
    "_logging": ("._logging", None),
}


def _is_registered(name: str) -> bool:
    try:
        return bool(call("_py.registered", name))
    except RuntimeError:  # plain Python, or Erlang unreachable
        return False


# The event loop's names, imported on first use too (asyncio is not cheap).
_LAZY.update(
    {
        name: (module, name)
        for name, module in {
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
        }.items()
    }
)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


def __getattr__(name: str) -> Any:
    """The lazily imported names; else ``erlang.my_function(*args)`` is
    ``erlang.call('my_function', *args)`` for a function registered (with
    py:register_function/2,3) when the attribute is looked up. Any other name
    is an AttributeError (so ``from erlang import misspelt`` fails at import)."""
    if name in _LAZY:
        import importlib

        module_name, attr = _LAZY[name]
        module = importlib.import_module(module_name, __name__)
        value = module if attr is None else getattr(module, attr)
        if not name.startswith("_"):
            globals()[name] = value
        return value
    if name.startswith("_") or not _is_registered(name):
        raise AttributeError(
            f"module 'erlang' has no attribute {name!r} "
            f"(and no Erlang function of that name is registered)"
        )

    def registered_function(*args: Any) -> Any:
        return call(name, *args)

    registered_function.__name__ = registered_function.__qualname__ = name
    return registered_function
