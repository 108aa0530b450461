"""Span tracing (``py:enable_tracing/0``, ``py:get_traces/0``).

``with erlang.Span(name, **attrs) as span`` times a block; ``span.event(name,
**attrs)`` records a point in it; ``@erlang.trace()`` wraps a function in a
span. Spans nest per thread (a thread-local stack gives each its parent). A
finished span is sent to Erlang (one callback) only while tracing is enabled
(the flag is set in every context by py_setup), as a map:
``name, span_id, parent_id (or undefined), start_time, end_time, duration_us``
(microseconds, monotonic), ``status`` (ok | error), ``attributes``,
``end_attrs`` (``exception`` on error) and ``events``.
"""

from __future__ import annotations

import functools
import random
import threading
import time
from typing import Any, Callable, TypeVar

from ._types import Atom

try:
    from _erlang import call as _call
except ImportError:  # plain Python
    _call = None

__all__ = ["Span", "trace", "set_enabled"]

_enabled = False
_local = threading.local()
_F = TypeVar("_F", bound=Callable[..., Any])
_OK, _ERROR, _UNDEFINED = Atom("ok"), Atom("error"), Atom("undefined")


def set_enabled(on: bool) -> None:
    global _enabled
    _enabled = bool(on)


def _now_us() -> int:
    return time.monotonic_ns() // 1000


def _stack() -> list["Span"]:
    stack = getattr(_local, "stack", None)
    if stack is None:
        stack = _local.stack = []
    return stack


class Span:
    """A timed, named block with attributes and events."""

    def __init__(self, name: str, **attributes: Any) -> None:
        self.name = str(name)
        self.attributes = dict(attributes)
        self.end_attrs: dict[str, Any] = {}
        self.events: list[dict[Atom, Any]] = []
        self.span_id = random.getrandbits(64)
        self.parent_id: int | None = None
        self.start_time = 0
        self.end_time = 0
        self.status = _OK

    def event(self, name: str, **attrs: Any) -> None:
        """Record a point in time inside the span."""
        self.events.append({Atom("name"): str(name), Atom("attrs"): dict(attrs),
                            Atom("time"): _now_us()})

    def set_attribute(self, key: str, value: Any) -> None:
        self.attributes[key] = value

    def __enter__(self) -> "Span":
        stack = _stack()
        self.parent_id = stack[-1].span_id if stack else None
        stack.append(self)
        self.start_time = _now_us()
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> bool:
        self.end_time = _now_us()
        stack = _stack()
        if stack and stack[-1] is self:
            stack.pop()
        elif self in stack:
            stack.remove(self)
        if exc is not None:
            self.status = _ERROR
            self.end_attrs["exception"] = str(exc)
        if _enabled and _call is not None:
            try:
                _call("_py.trace_span", self.as_term())
            except Exception:
                pass  # tracing never breaks the traced code
        return False

    def as_term(self) -> dict[Atom, Any]:
        return {
            Atom("name"): self.name,
            Atom("span_id"): self.span_id,
            Atom("parent_id"): _UNDEFINED if self.parent_id is None else self.parent_id,
            Atom("start_time"): self.start_time,
            Atom("end_time"): self.end_time,
            Atom("duration_us"): self.end_time - self.start_time,
            Atom("status"): self.status,
            Atom("attributes"): self.attributes,
            Atom("end_attrs"): self.end_attrs,
            Atom("events"): self.events,
        }


def trace(name: str | None = None, **attributes: Any) -> Callable[[_F], _F]:
    """Decorator: each call of the function runs in a Span (default name: the
    function's qualified name)."""

    def wrap(fn: _F) -> _F:
        span_name = name or getattr(fn, "__qualname__", getattr(fn, "__name__", "function"))

        @functools.wraps(fn)
        def traced(*args: Any, **kwargs: Any) -> Any:
            with Span(span_name, **attributes):
                return fn(*args, **kwargs)

        return traced  # type: ignore[return-value]

    return wrap
