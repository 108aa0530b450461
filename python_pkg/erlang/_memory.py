"""Memory helpers behind ``py:memory_stats/0``, ``py:gc/0,1`` and
``py:tracemalloc_start/0,1`` / ``tracemalloc_stop/0``."""

from __future__ import annotations

import gc
from typing import Any

from ._types import Atom


def stats() -> dict[Atom, Any]:
    """gc_stats, gc_count, gc_threshold; traced_memory_current/peak while
    tracemalloc traces."""
    out: dict[Atom, Any] = {
        Atom("gc_stats"): gc.get_stats(),
        Atom("gc_count"): gc.get_count(),
        Atom("gc_threshold"): gc.get_threshold(),
    }
    import sys

    tracemalloc = sys.modules.get("tracemalloc")
    if tracemalloc is not None and tracemalloc.is_tracing():
        current, peak = tracemalloc.get_traced_memory()
        out[Atom("traced_memory_current")] = current
        out[Atom("traced_memory_peak")] = peak
    return out


def collect(generation: int = 2) -> int:
    return gc.collect(generation)


def tracemalloc_start(frames: int = 1) -> None:
    import tracemalloc

    if not tracemalloc.is_tracing():
        tracemalloc.start(frames)


def tracemalloc_stop() -> None:
    import tracemalloc

    tracemalloc.stop()
