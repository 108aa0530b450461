"""The event loops the asyncio harness and the loop benchmark compare.

A loop kind names a policy class and a loop factory:

* ``stdlib``: asyncio's own (``DefaultEventLoopPolicy``, a selector loop on epoll);
* ``uvloop``: Debian's python3-uvloop;
* ``erlang``: ``erlang.ErlangEventLoop``, which exists only inside an
  erlang_python port program (its hot paths are builtins of that program).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Callable

KINDS = ("stdlib", "uvloop", "erlang")


@dataclass(frozen=True)
class LoopKind:
    name: str
    policy_class: type
    factory: Callable[[], asyncio.AbstractEventLoop]
    loop_class: type


def _erlang() -> LoopKind:
    import erlang

    # erlang.__getattr__ answers any name with a stub function: only a real
    # class means the loop is there.
    loop_class = getattr(erlang, "ErlangEventLoop", None)
    if not isinstance(loop_class, type):
        raise RuntimeError("erlang.ErlangEventLoop is not available in this build")
    return LoopKind("erlang", erlang.EventLoopPolicy, erlang.new_event_loop, loop_class)


def _uvloop() -> LoopKind:
    import uvloop

    return LoopKind("uvloop", uvloop.EventLoopPolicy, uvloop.new_event_loop, uvloop.Loop)


def _stdlib() -> LoopKind:
    policy_class = asyncio.DefaultEventLoopPolicy
    factory = policy_class._loop_factory  # type: ignore[attr-defined]
    return LoopKind("stdlib", policy_class, factory, factory)


def _uvloop_for_tests() -> LoopKind:
    """uvloop with the one attribute test_asyncio's cleanup reads.

    ``test_asyncio.utils.TestCase.close_loop`` reads ``loop._default_executor``,
    an attribute of asyncio's BaseEventLoop that uvloop does not have (every
    test that closes its loop that way would fail on the AttributeError, not on
    the loop). ``None`` makes it just call ``loop.close()``, which shuts
    uvloop's executor down itself. Nothing else of uvloop changes.
    """
    import uvloop

    class Loop(uvloop.Loop):  # type: ignore[misc]
        _default_executor = None

    class Policy(uvloop.EventLoopPolicy):  # type: ignore[misc]
        def _loop_factory(self) -> Loop:
            return Loop()

    return LoopKind("uvloop", Policy, Loop, Loop)


def test_loop_kind(name: str) -> LoopKind:
    """The loop kind as test_asyncio runs it (uvloop gets ``_default_executor``)."""
    return _uvloop_for_tests() if name == "uvloop" else loop_kind(name)


def loop_kind(name: str) -> LoopKind:
    """The loop kind called ``name`` (one of KINDS); RuntimeError if absent."""
    makers = {"stdlib": _stdlib, "uvloop": _uvloop, "erlang": _erlang}
    if name not in makers:
        raise ValueError(f"unknown loop kind {name!r}: expected one of {KINDS}")
    return makers[name]()


def available() -> list[str]:
    """The loop kinds this interpreter can run."""
    out = []
    for name in KINDS:
        try:
            loop_kind(name)
        except (ImportError, RuntimeError):
            continue
        out.append(name)
    return out
