"""Shared fixtures: the python_pkg on sys.path and a port program speaking the protocol."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import msgpack
import pytest

from wire import OUTPUT

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "python_pkg"))
PORT_PROGRAM = Path(os.environ.get("EP_PORT_PROGRAM", ROOT / "priv" / "erlang_python_port"))


class PortProgram:
    """The real port program, driven over its stdin/stdout like the BEAM does."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [str(PORT_PROGRAM), "--python-path", str(ROOT / "python_pkg"), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        self.hello = self.recv()

    def send_raw(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def send(self, message: Any) -> None:
        payload = msgpack.packb(message, use_bin_type=True)
        self.send_raw(struct.pack(">I", len(payload)) + payload)

    def recv_raw(self) -> bytes:
        assert self.proc.stdout is not None
        header = self.proc.stdout.read(4)
        assert len(header) == 4, "port program closed its output"
        (length,) = struct.unpack(">I", header)
        return self.proc.stdout.read(length)

    def recv(self) -> Any:
        return msgpack.unpackb(self.recv_raw(), raw=False, strict_map_key=False)

    def recv_reply(self) -> Any:
        """The next reply, skipping output messages."""
        while True:
            message = self.recv()
            if message[0] != OUTPUT:
                return message

    def close(self) -> int:
        if self.proc.stdin:
            self.proc.stdin.close()
        return self.proc.wait(timeout=5)


@pytest.fixture
def port() -> Iterator[PortProgram]:
    p = PortProgram("--contexts", "2")
    yield p
    if p.proc.poll() is None:
        p.close()
