"""The pure-Python parts of the erlang package added for erlang_python
drop-in users (issue 16), outside a port program: names, spans, SharedDict
handles, logging handler, stream helpers."""

from __future__ import annotations

import logging

import pytest

import erlang
from erlang import _stream, _trace
from erlang._types import Atom


def test_documented_names_and_misspelt_ones() -> None:
    for name in erlang.__all__:
        assert getattr(erlang, name) is not None
    with pytest.raises(AttributeError):
        erlang.state_gett  # noqa: B018
    with pytest.raises(ImportError):
        from erlang import SharedDcit  # noqa: F401
    with pytest.raises(AttributeError):
        erlang._anything  # noqa: B018
    assert erlang.byte_channel.ByteChannel is erlang.ByteChannel


def test_span_structure_nesting_and_errors() -> None:
    with erlang.Span("outer", key="value") as outer:
        with erlang.Span("inner") as inner:
            inner.event("checkpoint", items_processed=10)
    term = inner.as_term()
    assert term[Atom("parent_id")] == outer.span_id
    assert outer.as_term()[Atom("parent_id")] == "undefined"
    assert term[Atom("status")] == "ok"
    assert term[Atom("duration_us")] == term[Atom("end_time")] - term[Atom("start_time")]
    (event,) = term[Atom("events")]
    assert event[Atom("name")] == "checkpoint" and event[Atom("attrs")] == {"items_processed": 10}
    assert outer.as_term()[Atom("attributes")] == {"key": "value"}
    assert 0 <= outer.span_id < 2**64
    with pytest.raises(ValueError):
        with erlang.Span("risky") as risky:
            raise ValueError("something went wrong")
    assert risky.status == "error"
    assert risky.end_attrs == {"exception": "something went wrong"}
    assert _trace._stack() == []


def test_trace_decorator_keeps_the_function() -> None:
    @erlang.trace()
    def f(x: int) -> int:
        return x + 1

    @erlang.trace(name="custom-name")
    def g() -> None:
        pass

    assert f(1) == 2 and f.__name__ == "f"
    assert g() is None


def test_shared_dict_rejects_bad_handles() -> None:
    for bad in [None, ("py_shared_dict",), ("other", 1), ("py_shared_dict", "x")]:
        with pytest.raises(TypeError):
            erlang.SharedDict(bad)
    sd = erlang.SharedDict((Atom("py_shared_dict"), 5))
    assert erlang.SharedDict(sd).handle == sd.handle


def test_setup_logging_replaces_its_handler() -> None:
    root = logging.getLogger()
    try:
        first = erlang.setup_logging(level=20)
        second = erlang.setup_logging(level=10, format="%(name)s: %(message)s")
        handlers = [h for h in root.handlers if isinstance(h, erlang.ErlangHandler)]
        assert handlers == [second] and first not in root.handlers
        assert root.level == 10
        logging.getLogger("t").debug("no port program: dropped, no error")
    finally:
        for h in [h for h in root.handlers if isinstance(h, erlang.ErlangHandler)]:
            root.removeHandler(h)


def test_stream_helpers() -> None:
    scope = {"gen": lambda n: (i for i in range(n))}
    assert _stream.collect("__main__", "gen", [3], {}, scope) == [0, 1, 2]
    assert _stream.collect("itertools", "repeat", ["x", 2], {}, {}) == ["x", "x"]
    assert _stream.collect_eval("(x * k for x in xs)", {"xs": [1, 2], "k": 3}, {}) == [3, 6]
    assert _stream.collect_eval("import math\n(math.floor(v) for v in [1.5])", None, {}) == [1]
    with pytest.raises(NameError):
        _stream.collect("__main__", "nope", [], {}, {})
    with pytest.raises(TypeError, match="py:stream"):
        _stream.collect_eval("42", None, {})
    with pytest.raises(ValueError):
        _stream.collect_eval("x = 1", None, {})


def test_function_and_whereis_arguments() -> None:
    assert erlang.Function("a") == erlang.Function("a")
    assert hash(erlang.Function("a")) == hash(erlang.Function("a"))
    with pytest.raises(TypeError):
        erlang.Function("")
    with pytest.raises(TypeError):
        erlang.whereis(1)
    with pytest.raises(TypeError):
        erlang.send("not a pid", 1)
    assert issubclass(erlang.ProcessError, Exception)
