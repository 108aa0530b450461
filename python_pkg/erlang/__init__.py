"""The ``erlang`` package: what Python code running under erlang_python imports.

Values from Erlang arrive as ordinary Python values; the few Erlang terms with
no Python equivalent arrive as :class:`Atom`, :class:`Pid`, :class:`Ref` and
:class:`OpaqueTerm`.
"""

from ._types import Atom, OpaqueTerm, Pid, Ref

__all__ = ["Atom", "OpaqueTerm", "Pid", "Ref"]
