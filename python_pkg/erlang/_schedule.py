"""Schedule markers: a handler returns one to end its Python part and have the
Erlang side continue (asyncio.md, "Explicit Scheduling API").

A marker is a tuple ``('$py_schedule', Kind, ...)`` that crosses as an Erlang
tuple; the process that made the ``py:call`` sees it in the reply and continues
with the named Erlang function (``schedule``) or with another call on the same
context (``schedule_py``, ``schedule_inline``). Between the steps the context's
thread serves other requests. A marker that is not returned is just a value.
"""

from __future__ import annotations

import threading
from typing import Any, Sequence

from ._types import Atom

_TAG = Atom("$py_schedule")


class ScheduleMarker(tuple):  # type: ignore[type-arg]
    """What ``schedule`` and ``schedule_py`` return; must be the handler's result."""

    __slots__ = ()

    def __new__(cls, kind: str, *parts: Any) -> "ScheduleMarker":
        return super().__new__(cls, (_TAG, Atom(kind), *parts))

    def __repr__(self) -> str:
        return f"{type(self).__name__}{tuple.__repr__(self)}"


class InlineScheduleMarker(ScheduleMarker):
    """What ``schedule_inline`` returns."""

    __slots__ = ()


def _args(args: Sequence[Any] | None) -> list[Any]:
    return [] if args is None else list(args)


def _kwargs(kwargs: dict[str, Any] | None) -> dict[str, Any]:
    return {} if kwargs is None else dict(kwargs)


def schedule(callback_name: str, *args: Any) -> ScheduleMarker:
    """Continue with the registered Erlang function ``callback_name(*args)``;
    its result is the result of the original ``py:call``."""
    if not isinstance(callback_name, str):
        raise TypeError("schedule: the callback name must be a str")
    return ScheduleMarker("erlang", str(callback_name), list(args))


def schedule_py(module: str, func: str, args: Sequence[Any] | None = None,
                kwargs: dict[str, Any] | None = None) -> ScheduleMarker:
    """Continue with ``module.func(*args, **kwargs)`` on the same context, through
    Erlang; other requests for the context run in between."""
    return ScheduleMarker("py", str(module), str(func), _args(args), _kwargs(kwargs))


def schedule_inline(module: str, func: str, args: Sequence[Any] | None = None,
                    kwargs: dict[str, Any] | None = None) -> InlineScheduleMarker:
    """As ``schedule_py``; in a port program every continuation is one request,
    so the two cost the same."""
    return InlineScheduleMarker("inline", str(module), str(func), _args(args), _kwargs(kwargs))


_slice = threading.local()


def consume_time_slice(percent: int) -> bool:
    """Account ``percent`` (1-100) of a time slice to the calling thread: True
    once a whole slice is used (then a new one starts), False while time is left."""
    if isinstance(percent, bool) or not isinstance(percent, int) or not 1 <= percent <= 100:
        raise ValueError("consume_time_slice: percent must be an int in 1..100")
    used = getattr(_slice, "used", 0) + percent
    if used >= 100:
        _slice.used = 0
        return True
    _slice.used = used
    return False
