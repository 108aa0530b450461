"""Shared state (``erlang.state_*``) and ``SharedDict``: node-wide ETS tables on
the Erlang side (modules ``py_state``, ``py_shared_dict``), reached through
built-in callbacks. Every context of the node, in any port program, sees the
same data; counters are atomic.

Keys are str (they are binaries in Erlang; an Erlang atom key is stored as its
name). Values cross with the usual type mapping: what has no Erlang form (a
``set``, an arbitrary object) raises ``TypeError``.
"""

from __future__ import annotations

from typing import Any, Iterator

from ._types import Atom

try:
    from _erlang import call as _call
except ImportError:  # plain Python

    def _call(name: str, *args: Any) -> Any:
        raise RuntimeError("shared state needs the erlang_python port program")


def state_get(key: Any) -> Any:
    """The value stored under ``key``, or None."""
    return _call("_py.state_get", key)


def state_set(key: Any, value: Any) -> None:
    _call("_py.state_set", key, value)


def state_delete(key: Any) -> None:
    _call("_py.state_delete", key)


def state_keys() -> list[Any]:
    return _call("_py.state_keys")


def state_clear() -> None:
    _call("_py.state_clear")


def state_incr(key: Any, amount: int = 1) -> int:
    """Atomically add ``amount`` to the counter ``key`` (0 if missing); the new value."""
    if not isinstance(amount, int) or isinstance(amount, bool):
        raise TypeError(f"state_incr amount must be an int, not {type(amount).__name__}")
    return _call("_py.state_incr", key, amount)


def state_decr(key: Any, amount: int = 1) -> int:
    """Atomically subtract ``amount`` from the counter ``key``; the new value."""
    if not isinstance(amount, int) or isinstance(amount, bool):
        raise TypeError(f"state_decr amount must be an int, not {type(amount).__name__}")
    return _call("_py.state_incr", key, -amount)


_MISSING = object()


class SharedDict:
    """A dict shared with Erlang: wraps the handle from ``py:shared_dict_new/0``.

    Every operation reads or writes the Erlang side at once (one callback), so
    all holders of the handle see the same contents. A destroyed dict raises
    RuntimeError.
    """

    __slots__ = ("_handle",)

    def __init__(self, handle: Any) -> None:
        if isinstance(handle, SharedDict):
            handle = handle._handle
        if not (isinstance(handle, tuple) and len(handle) == 2
                and handle[0] == "py_shared_dict" and isinstance(handle[1], int)):
            raise TypeError(
                f"SharedDict() takes the handle from py:shared_dict_new/0, not {handle!r:.200}"
            )
        self._handle = (Atom("py_shared_dict"), handle[1])

    def __getitem__(self, key: Any) -> Any:
        found = _call("_py.sd_get", self._handle, key)
        if not found:
            raise KeyError(key)
        return found[0]

    def get(self, key: Any, default: Any = None) -> Any:
        found = _call("_py.sd_get", self._handle, key)
        return found[0] if found else default

    def __setitem__(self, key: Any, value: Any) -> None:
        _call("_py.sd_set", self._handle, key, value)

    def __delitem__(self, key: Any) -> None:
        if not _call("_py.sd_del", self._handle, key):
            raise KeyError(key)

    def __contains__(self, key: Any) -> bool:
        return bool(_call("_py.sd_get", self._handle, key))

    def keys(self) -> list[Any]:
        return _call("_py.sd_keys", self._handle)

    def __iter__(self) -> Iterator[Any]:
        return iter(self.keys())

    def __len__(self) -> int:
        return len(self.keys())

    def destroy(self) -> None:
        """Destroy the dict for every holder (safe to call more than once)."""
        _call("_py.sd_destroy", self._handle)

    @property
    def handle(self) -> tuple[Atom, int]:
        return self._handle

    def __repr__(self) -> str:
        return f"<erlang.SharedDict {self._handle[1]}>"
