"""The ``erlang`` package: what Python code running under erlang_python imports.

Values from Erlang arrive as ordinary Python values; the few Erlang terms with
no Python equivalent arrive as :class:`Atom`, :class:`Pid`, :class:`Ref` and
:class:`OpaqueTerm`.

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


__all__ = ["Atom", "OpaqueTerm", "Pid", "Ref", "async_call", "call", "send"]


def __getattr__(name: str) -> Callable[..., Any]:
    """``erlang.my_function(*args)`` is ``erlang.call('my_function', *args)``."""
    if name.startswith("__"):
        raise AttributeError(name)

    def registered_function(*args: Any) -> Any:
        return call(name, *args)

    registered_function.__name__ = registered_function.__qualname__ = name
    return registered_function
