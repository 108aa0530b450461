"""detect_mode(): how this Python runs (free-threaded, subinterpreter, shared GIL)."""

from __future__ import annotations

import enum
import sys
import sysconfig

__all__ = ["ExecutionMode", "detect_mode"]


class ExecutionMode(enum.Enum):
    FREE_THREADED = "free_threaded"  # 3.13+ built with Py_GIL_DISABLED, GIL off
    SUBINTERP = "subinterp"  # 3.12+ in a subinterpreter (per-interpreter GIL)
    SHARED_GIL = "shared_gil"  # one GIL for the whole process


def detect_mode() -> ExecutionMode:
    if sysconfig.get_config_var("Py_GIL_DISABLED"):
        is_gil_enabled = getattr(sys, "_is_gil_enabled", None)
        if is_gil_enabled is not None and not is_gil_enabled():
            return ExecutionMode.FREE_THREADED
    if sys.version_info >= (3, 12):
        try:
            import _interpreters as interpreters  # 3.13+
        except ImportError:
            try:
                import _xxsubinterpreters as interpreters  # type: ignore[no-redef]
            except ImportError:
                interpreters = None  # type: ignore[assignment]
        if interpreters is not None and interpreters.get_current() != interpreters.get_main():
            return ExecutionMode.SUBINTERP
    return ExecutionMode.SHARED_GIL
