"""Generators streamed to Erlang: ``py:stream/3,4``, ``py:stream_eval/1,2``
and ``py:stream_start/3,4`` (module ``py_stream`` on the Erlang side).

Batch streams collect every value into a list. A started stream runs the
generator on a thread of its own (the context stays free for other requests)
and sends ``{py_stream, Ref, {data, V}}`` for each value, then ``done`` or
``{error, {Class, Message}}``, to its owner with ``erlang.send``. Before a
value is taken, and at most every ``_CHECK_S`` seconds, the thread asks
Erlang whether the stream is still wanted (cancelled, or its owner gone):
if not the generator is closed (its ``finally`` blocks run) and nothing more
is sent.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any, Callable

from ._types import Atom

try:
    from _erlang import call as _call, send as _send
except ImportError:  # plain Python: nothing to stream to
    _call = _send = None  # type: ignore[assignment]

_CHECK_S = 0.01
_PY_STREAM, _DATA, _DONE, _ERROR = Atom("py_stream"), Atom("data"), Atom("done"), Atom("error")


def _target(module: str, function: str, scope: dict[str, Any]) -> Callable[..., Any]:
    """What ``py:call(module, function, ...)`` would call: ``__main__`` is ``scope``."""
    parts = function.split(".")
    if module == "__main__":
        if parts[0] not in scope:
            raise NameError(f"name '{parts[0]}' is not defined")
        obj = scope[parts.pop(0)]
    else:
        import importlib

        obj = importlib.import_module(module)
    for part in parts:
        obj = getattr(obj, part)
    return obj


def _collect(value: Any) -> list[Any]:
    if hasattr(value, "__aiter__"):
        async def drain() -> list[Any]:
            return [v async for v in value]

        return asyncio.run(drain())
    try:
        return list(value)
    except TypeError:
        raise TypeError(
            f"py:stream needs an iterable (a generator, an iterator), not {type(value).__name__}"
        ) from None


def collect(module: str, function: str, args: list[Any], kwargs: dict[str, Any],
            scope: dict[str, Any]) -> list[Any]:
    """``py:stream``: every value of ``module.function(*args, **kwargs)``."""
    return _collect(_target(module, function, scope)(*args, **kwargs))


def collect_eval(code: str, local_vars: dict[str, Any] | None, scope: dict[str, Any]) -> list[Any]:
    """``py:stream_eval``: every value of the last expression of ``code``."""
    from ._runtime import compile_eval

    head, tail = compile_eval(code)
    if tail is None:
        raise ValueError("py:stream_eval needs code ending with an expression")
    # Locals join a copy of the namespace, so a generator expression sees them.
    where = scope if local_vars is None else {**scope, **local_vars}
    if head is not None:
        exec(head, where)
    return _collect(eval(tail, where))


def start(module: str, function: str, args: list[Any], kwargs: dict[str, Any],
          owner: Any, ref: Any, scope: dict[str, Any]) -> None:
    """``py:stream_start``: call the function here, drive it on a new thread."""
    source = _target(module, function, scope)(*args, **kwargs)
    if hasattr(source, "__anext__"):
        run: Callable[[], None] = lambda: asyncio.run(_drive_async(source, owner, ref))
    elif hasattr(source, "__iter__"):
        iterator = iter(source)
        run = lambda: _drive(iterator, owner, ref)
    else:
        raise TypeError(
            f"py:stream_start needs a generator or an iterable, not {type(source).__name__}"
        )
    threading.Thread(target=run, name=f"py_stream {ref!r}", daemon=True).start()


class _Checker:
    """Asks Erlang whether the stream is still wanted, at most every _CHECK_S."""

    def __init__(self, ref: Any) -> None:
        self._ref = ref
        self._next = 0.0

    def wanted(self) -> bool:
        now = time.monotonic()
        if now < self._next:
            return True
        self._next = now + _CHECK_S
        return bool(_call("_py.stream_wanted", self._ref))


def _event(owner: Any, ref: Any, event: Any) -> None:
    _send(owner, (_PY_STREAM, ref, event))


def _error(exc: BaseException) -> tuple[Atom, tuple[Atom, str]]:
    return (_ERROR, (Atom(type(exc).__name__), str(exc)))


def _drive(iterator: Any, owner: Any, ref: Any) -> None:
    checker = _Checker(ref)
    try:
        while checker.wanted():
            try:
                value = next(iterator)
            except StopIteration:
                _event(owner, ref, _DONE)
                return
            _event(owner, ref, (_DATA, value))
        close = getattr(iterator, "close", None)
        if close is not None:
            close()
    except BaseException as exc:  # the generator raised, or a value did not convert
        try:
            _event(owner, ref, _error(exc))
        except BaseException:
            pass
    finally:
        _finish(ref)


async def _drive_async(agen: Any, owner: Any, ref: Any) -> None:
    checker = _Checker(ref)
    try:
        while checker.wanted():
            try:
                value = await agen.__anext__()
            except StopAsyncIteration:
                _event(owner, ref, _DONE)
                return
            _event(owner, ref, (_DATA, value))
        aclose = getattr(agen, "aclose", None)
        if aclose is not None:
            await aclose()
    except BaseException as exc:
        try:
            _event(owner, ref, _error(exc))
        except BaseException:
            pass
    finally:
        _finish(ref)


def _finish(ref: Any) -> None:
    try:
        _call("_py.stream_finished", ref)
    except BaseException:
        pass
