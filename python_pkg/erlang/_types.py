"""Python values for the Erlang terms that have no Python equivalent.

Pids, references and other opaque terms carry the Erlang external term format
bytes they arrived with, so they travel back to Erlang byte for byte.
"""

from __future__ import annotations


class Atom(str):
    """An Erlang atom: behaves as the ``str`` of its name, returns to Erlang as an atom."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"Atom({str.__repr__(self)})"


class _ExternalTerm:
    """Base of the opaque wrappers: equality and hashing by external-format bytes."""

    __slots__ = ("_b",)

    def __init__(self, data: bytes) -> None:
        if not isinstance(data, bytes):
            raise TypeError(f"{type(self).__name__} takes bytes, not {type(data).__name__}")
        self._b = data

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other._b == self._b  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self).__name__, self._b))

    def __repr__(self) -> str:
        return f"<erlang.{type(self).__name__} {self._b.hex()}>"

    def __reduce__(self):  # picklable, e.g. for multiprocessing
        return (type(self), (self._b,))


class Pid(_ExternalTerm):
    """An Erlang process identifier."""

    __slots__ = ()


class Ref(_ExternalTerm):
    """An Erlang reference."""

    __slots__ = ()


class OpaqueTerm(_ExternalTerm):
    """Any other Erlang term (a fun, a port): kept untouched for the way back."""

    __slots__ = ()
