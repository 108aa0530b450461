"""The event loop's names in plain Python (no port program): real attributes,
not the catch-all's Erlang-function stubs; what needs the port program fails
with a clear error when used, not when looked up."""

from __future__ import annotations

import asyncio
import time

import pytest

import erlang

NAMES = ["run", "new_event_loop", "ErlangEventLoop", "EventLoopPolicy", "ErlangEventLoopPolicy",
         "install", "detect_mode", "ExecutionMode", "sleep", "spawn_task"]


@pytest.mark.parametrize("name", NAMES)
def test_name_is_real(name: str) -> None:
    assert hasattr(erlang, name)
    assert getattr(erlang, name).__module__.startswith("erlang._")
    assert name in erlang.__all__ and name in dir(erlang)


def test_detect_mode() -> None:
    assert erlang.detect_mode() is erlang.ExecutionMode.SHARED_GIL


def test_sync_sleep_blocks_and_returns_none() -> None:
    t0 = time.monotonic()
    assert erlang.sleep(0.02) is None
    assert time.monotonic() - t0 >= 0.02
    with pytest.raises(ValueError):
        erlang.sleep(-1)


def test_async_sleep_on_any_loop() -> None:
    async def main() -> str:
        await erlang.sleep(0.01)
        task = erlang.spawn_task(asyncio.sleep(0, "spawned"))
        return await task

    assert asyncio.run(main()) == "spawned"


def test_spawn_task_needs_a_coroutine() -> None:
    with pytest.raises(TypeError):
        erlang.spawn_task(lambda: None)  # type: ignore[arg-type]


def test_loop_needs_the_port_program() -> None:
    with pytest.raises(RuntimeError, match="port program"):
        erlang.new_event_loop()
    assert issubclass(erlang.ErlangEventLoop, asyncio.AbstractEventLoop)
    assert erlang.ErlangEventLoopPolicy is erlang.EventLoopPolicy
