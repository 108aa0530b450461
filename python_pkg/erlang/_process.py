"""Erlang processes from Python: ``send``/``reply`` (checked), ``whereis``,
``ProcessError`` and ``Function`` (a registered Erlang function as an object).
"""

from __future__ import annotations

from typing import Any

from ._types import Pid

try:
    from _erlang import call as _call
except ImportError:  # plain Python

    def _call(name: str, *args: Any) -> Any:
        raise RuntimeError("erlang.call needs the erlang_python port program")


__all__ = ["Function", "ProcessError", "reply", "send", "whereis"]


class ProcessError(Exception):
    """The Erlang process a message was sent to does not exist (it has exited)."""


def send(pid: Pid, term: Any) -> None:
    """Send ``term`` to the Erlang process ``pid``; no reply.

    The message is in the process's mailbox when this returns. Raises
    ProcessError if ``pid`` (a process of this node) has exited; a process of
    another node is not checked, as in Erlang.
    """
    if not isinstance(pid, Pid):
        raise TypeError(f"send(pid, term): pid must be an erlang.Pid, not {type(pid).__name__}")
    if not _call("_py.send", pid, term):
        raise ProcessError(f"no process {pid!r}: it has exited")


def reply(pid: Pid, term: Any) -> None:
    """Send ``term`` to ``pid`` (e.g. the sender of a channel request): ``send``."""
    send(pid, term)


def whereis(name: str) -> Pid | None:
    """The pid of the process registered as ``name`` in this node, or None."""
    if not isinstance(name, str):
        raise TypeError(f"whereis(name): name must be a str, not {type(name).__name__}")
    return _call("_py.whereis", name)


class Function:
    """A registered Erlang function (``py:register_function/2,3``) as a callable
    object: ``Function('double_it')(21)`` is ``erlang.call('double_it', 21)``."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        if not isinstance(name, str) or not name:
            raise TypeError(f"Function(name): name must be a non-empty str, not {name!r:.100}")
        self.name = name

    def __call__(self, *args: Any) -> Any:
        return _call(self.name, *args)

    def __eq__(self, other: object) -> bool:
        return type(other) is Function and other.name == self.name  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash(("erlang.Function", self.name))

    def __repr__(self) -> str:
        return f"erlang.Function({self.name!r})"
