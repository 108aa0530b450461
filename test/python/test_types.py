"""The pure-Python parts of the `erlang` package."""

from __future__ import annotations

import pickle

import pytest

from erlang import Atom, OpaqueTerm, Pid, Ref
from erlang._runtime import compile_eval


def test_atom_is_a_str() -> None:
    a = Atom("foo")
    assert isinstance(a, str) and a == "foo" and hash(a) == hash("foo")
    assert {"foo": 1}[a] == 1
    assert repr(a) == "Atom('foo')"


def test_pid_equality_hash_and_pickle() -> None:
    a, b, c = Pid(b"\x58abc"), Pid(b"\x58abc"), Pid(b"\x58abd")
    assert a == b and a != c and len({a, b, c}) == 2
    assert pickle.loads(pickle.dumps(a)) == a
    assert Ref(b"\x58abc") != a  # a ref and a pid with the same bytes differ
    assert OpaqueTerm(b"x") == OpaqueTerm(b"x")


def test_wrappers_take_bytes_only() -> None:
    with pytest.raises(TypeError):
        Pid("not bytes")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "source, expected",
    [
        ("1 + 1", 2),
        ("import math\nmath.floor(2.5)", 2),
        ("x = 3\nx * 2", 6),
        ("y = 1", None),
    ],
)
def test_compile_eval_returns_last_expression(source: str, expected: object) -> None:
    head, tail = compile_eval(source)
    scope: dict = {}
    if head is not None:
        exec(head, scope)
    assert (eval(tail, scope) if tail is not None else None) == expected


def test_compile_eval_reports_syntax_errors() -> None:
    with pytest.raises(SyntaxError):
        compile_eval("1 +")
