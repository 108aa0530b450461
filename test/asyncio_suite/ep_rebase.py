"""Load one test_asyncio module with its per-loop test classes re-based on a loop.

Most of test_asyncio builds its loops through the event loop policy
(``asyncio.new_event_loop()``, ``asyncio.run``, ``IsolatedAsyncioTestCase``):
setting the policy is enough for those. A few modules hard-code one class per
selector (``SelectEventLoopTests`` ...) over a mixin that holds the tests; for
those the selector classes are dropped and one class per module is made that
builds its loop with the loop kind's factory.
"""

from __future__ import annotations

import importlib
import unittest
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Callable, Iterator

PACKAGE = "test.test_asyncio"


@dataclass(frozen=True)
class Rebase:
    mixin: str  # the module attribute holding the tests
    hook: str  # the method that makes the loop: create_event_loop or new_loop
    concrete: str | None  # the selector class to derive from (keeps its extra tests)
    bases: tuple[str, ...] = ()  # or explicit bases, when the concrete class does too much


# test_events' SelectEventLoopTests adds UnixEventLoopTestsMixin, whose
# SafeChildWatcher needs signal handlers on the main thread: the issue asks for
# EventLoopTestsMixin + SubprocessTestsMixin, with the policy's child watcher.
REBASES: dict[str, Rebase] = {
    "test_events": Rebase(
        "EventLoopTestsMixin",
        "create_event_loop",
        None,
        ("EventLoopTestsMixin", "SubprocessTestsMixin", "test_utils.TestCase"),
    ),
    "test_sendfile": Rebase("SendfileTestsBase", "create_event_loop", "SelectEventLoopTests"),
    "test_sock_lowlevel": Rebase("BaseSockTestsMixin", "create_event_loop", "SelectEventLoopTests"),
    "test_server": Rebase("BaseStartServer", "new_loop", "SelectorStartServerTests"),
    "test_sslproto": Rebase("BaseStartTLS", "new_loop", "SelectorStartTLSTests"),
    "test_buffered_proto": Rebase(
        "BaseTestBufferedProtocol", "new_loop", "BufferedProtocolSelectorTests"
    ),
}

REBASED_CLASS = "RebasedLoopTests"

# Tests not run at all, because they hang in any port program (test/README.md).
NOT_RUN: dict[str, str] = {
    f"{PACKAGE}.test_runners.RunTests.test_asyncio_run_without_uncancel":
        "_thread.interrupt_main() cannot reach the test's thread: it would wait forever",
}


def _attr(module: ModuleType, dotted: str) -> type:
    obj: object = module
    for part in dotted.split("."):
        obj = getattr(obj, part)
    assert isinstance(obj, type)
    return obj


def _flatten(suite: unittest.TestSuite) -> Iterator[unittest.TestCase]:
    for item in suite:
        if isinstance(item, unittest.TestSuite):
            yield from _flatten(item)
        else:
            yield item


def _rebased_class(module: ModuleType, spec: Rebase, factory: Callable[[], object]) -> type:
    if spec.concrete is not None:
        bases: tuple[type, ...] = (_attr(module, spec.concrete),)
    else:
        bases = tuple(_attr(module, name) for name in spec.bases)

    def make_loop(self: object) -> object:
        return factory()

    return type(REBASED_CLASS, bases, {spec.hook: make_loop, "__module__": module.__name__})


def load_module(name: str, factory: Callable[[], object]) -> tuple[list[unittest.TestCase], type | None]:
    """The tests of test_asyncio module ``name`` in run order, and the re-based class (if any)."""
    module = importlib.import_module(f"{PACKAGE}.{name}")
    loader = unittest.TestLoader()
    tests = list(_flatten(loader.loadTestsFromModule(module)))
    spec = REBASES.get(name)
    if spec is None:
        return tests, None
    mixin = _attr(module, spec.mixin)
    kept = [t for t in tests if not isinstance(t, mixin)]
    cls = _rebased_class(module, spec, factory)
    return kept + list(_flatten(loader.loadTestsFromTestCase(cls))), cls


def modules() -> list[str]:
    """Every test_asyncio module that can run on Linux."""
    package = importlib.import_module(PACKAGE)
    names = sorted(p.stem for p in Path(package.__file__).parent.glob("test_*.py"))
    return [n for n in names if not n.startswith(("test_windows", "test_proactor"))]
