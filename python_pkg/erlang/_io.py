"""sys.stdout and sys.stderr of the port program: text goes to the Erlang logger."""

from __future__ import annotations

import io

try:
    import _erlang
except ImportError:  # plain Python (tests of the pure-Python parts)
    _erlang = None


class OutputStream(io.TextIOBase):
    """A text stream whose lines are forwarded to Erlang as output messages."""

    def __init__(self, stream: int, name: str) -> None:
        super().__init__()
        self._stream = stream
        self._name = name

    @property
    def name(self) -> str:
        return self._name

    @property
    def encoding(self) -> str:
        return "utf-8"

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        if _erlang is not None:
            _erlang.write_output(self._stream, text)
        return len(text)

    def flush(self) -> None:
        if _erlang is not None:
            _erlang.flush_output(self._stream)
