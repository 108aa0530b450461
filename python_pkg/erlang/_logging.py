"""Python ``logging`` to the Erlang logger (``py:configure_logging/0,1``).

``ErlangHandler`` sends each record it accepts as a ``[7, ...]`` frame, fire
and forget: the port owner logs it with ``logger:log/3`` at the mapped level
(10 debug, 20 info, 30 warning, 40 error, 50 critical) and metadata
``domain => [python]``, ``py_logger`` (the logger's name) and ``py_meta``
(``module``, ``lineno``, ``funcName``). Python never waits for Erlang.
"""

from __future__ import annotations

import logging

try:
    from _erlang import log as _log
except ImportError:  # plain Python: records are dropped
    _log = None

__all__ = ["ErlangHandler", "setup_logging"]


class ErlangHandler(logging.Handler):
    """A ``logging.Handler`` whose records go to the Erlang logger."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = self.format(record)
            meta = {"module": record.module, "lineno": record.lineno, "funcName": record.funcName}
            if _log is not None:
                _log(int(record.levelno), str(record.name), message, meta)
        except Exception:
            self.handleError(record)


def setup_logging(level: int = logging.DEBUG, format: str | None = None) -> ErlangHandler:
    """Route the root logger to Erlang at ``level`` and up (replacing an
    ErlangHandler installed before); returns the handler."""
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, ErlangHandler)]:
        root.removeHandler(old)
    handler = ErlangHandler(level)
    handler.setFormatter(logging.Formatter(format or "%(message)s"))
    root.addHandler(handler)
    root.setLevel(level)
    return handler
