"""Event loops compared in one port program (bench/py_loop_bench.erl, `make bench-loop`).

``run(kinds, rounds)`` measures every figure of FIGURES on every loop kind
(test/asyncio_suite/ep_loops.py: erlang, uvloop, stdlib), in interleaved
rounds: each round runs every kind once, on a fresh loop, the kinds in a
rotated order, so all of them see the same machine. It returns, per figure and
kind, the median of the rounds (None when the kind could not run it).
"""

from __future__ import annotations

import asyncio
import random
import socket
import statistics
import time
from typing import Any, Callable

import ep_loops

CALLBACKS = 200_000
TIMERS = 100_000
RANDOM_TIMERS = 50_000
RANDOM_MAX_DELAY = 0.01
PINGS = 2_000
PING_SIZE = 64
BULK_SIZE = 16 * 1024
BULK_ROUNDS = 2_000
QUEUE_MSGS = 100_000
ASYNC_CALLS = 2_000


# -- callbacks and timers -----------------------------------------------------


def _burst(loop: asyncio.AbstractEventLoop, n: int, schedule: Callable[[Callable[[], None]], Any]) -> float:
    """Seconds for ``n`` callbacks scheduled with ``schedule``, in batches, to run."""
    left = n
    done = loop.create_future()

    def tick() -> None:
        nonlocal left
        left -= 1
        if left == 0:
            done.set_result(None)

    async def go() -> float:
        t0 = time.perf_counter()
        for _ in range(n):
            schedule(tick)
        await done
        return time.perf_counter() - t0

    return loop.run_until_complete(go())


def call_soon_rate(loop: asyncio.AbstractEventLoop) -> float:
    return CALLBACKS / _burst(loop, CALLBACKS, loop.call_soon)


def call_later0_rate(loop: asyncio.AbstractEventLoop) -> float:
    return TIMERS / _burst(loop, TIMERS, lambda cb: loop.call_later(0, cb))


def random_timer_rate(loop: asyncio.AbstractEventLoop) -> float:
    rnd = random.Random(42)
    delays = [rnd.uniform(0, RANDOM_MAX_DELAY) for _ in range(RANDOM_TIMERS)]
    it = iter(delays)
    return RANDOM_TIMERS / _burst(loop, RANDOM_TIMERS, lambda cb: loop.call_later(next(it), cb))


# -- TCP and UDP echo ---------------------------------------------------------


class EchoServer(asyncio.Protocol):
    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)


class PingClient(asyncio.Protocol):
    """Sends ``size`` bytes, waits for all of them to come back, ``rounds`` times."""

    def __init__(self, loop: asyncio.AbstractEventLoop, size: int, rounds: int) -> None:
        self.payload = b"x" * size
        self.rounds, self.got, self.t0 = rounds, 0, 0.0
        self.done: asyncio.Future[float] = loop.create_future()

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.t0 = time.perf_counter()
        transport.write(self.payload)

    def data_received(self, data: bytes) -> None:
        self.got += len(data)
        if self.got < len(self.payload):
            return
        self.got = 0
        self.rounds -= 1
        if self.rounds == 0:
            self.done.set_result(time.perf_counter() - self.t0)
        else:
            self.transport.write(self.payload)


async def _tcp_protocols(size: int, rounds: int) -> float:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(EchoServer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    transport, client = await loop.create_connection(
        lambda: PingClient(loop, size, rounds), "127.0.0.1", port)
    secs = await client.done
    transport.close()
    server.close()
    await server.wait_closed()
    return secs


async def _tcp_streams(size: int, rounds: int) -> float:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        while data := await reader.read(65536):
            writer.write(data)
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    payload = b"x" * size
    t0 = time.perf_counter()
    for _ in range(rounds):
        writer.write(payload)
        await reader.readexactly(size)
    secs = time.perf_counter() - t0
    writer.close()
    await writer.wait_closed()
    server.close()
    await server.wait_closed()
    return secs


def tcp_rtt_protocols(loop: asyncio.AbstractEventLoop) -> float:
    return loop.run_until_complete(_tcp_protocols(PING_SIZE, PINGS)) / PINGS * 1e6


def tcp_rtt_streams(loop: asyncio.AbstractEventLoop) -> float:
    return loop.run_until_complete(_tcp_streams(PING_SIZE, PINGS)) / PINGS * 1e6


def tcp_bulk_protocols(loop: asyncio.AbstractEventLoop) -> float:
    secs = loop.run_until_complete(_tcp_protocols(BULK_SIZE, BULK_ROUNDS))
    return BULK_SIZE * BULK_ROUNDS / secs / 1e6


def tcp_bulk_streams(loop: asyncio.AbstractEventLoop) -> float:
    secs = loop.run_until_complete(_tcp_streams(BULK_SIZE, BULK_ROUNDS))
    return BULK_SIZE * BULK_ROUNDS / secs / 1e6


class UdpEcho(asyncio.DatagramProtocol):
    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.transport.sendto(data, addr)


class UdpPing(asyncio.DatagramProtocol):
    def __init__(self, loop: asyncio.AbstractEventLoop, rounds: int) -> None:
        self.rounds, self.t0 = rounds, 0.0
        self.done: asyncio.Future[float] = loop.create_future()

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.t0 = time.perf_counter()
        transport.sendto(b"x" * PING_SIZE)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.rounds -= 1
        if self.rounds == 0:
            self.done.set_result(time.perf_counter() - self.t0)
        else:
            self.transport.sendto(data)


async def _udp(rounds: int) -> float:
    loop = asyncio.get_running_loop()
    server, _ = await loop.create_datagram_endpoint(UdpEcho, local_addr=("127.0.0.1", 0))
    addr = server.get_extra_info("sockname")
    client, ping = await loop.create_datagram_endpoint(lambda: UdpPing(loop, rounds), remote_addr=addr)
    secs = await ping.done
    client.close()
    server.close()
    return secs


def udp_rtt(loop: asyncio.AbstractEventLoop) -> float:
    return loop.run_until_complete(_udp(PINGS)) / PINGS * 1e6


# -- queue and erlang.async_call ----------------------------------------------


async def _queue(n: int) -> float:
    q: asyncio.Queue[int] = asyncio.Queue(maxsize=100)

    async def produce() -> None:
        for i in range(n):
            await q.put(i)

    async def consume() -> None:
        for _ in range(n):
            await q.get()

    t0 = time.perf_counter()
    await asyncio.gather(produce(), consume())
    return time.perf_counter() - t0


def queue_rate(loop: asyncio.AbstractEventLoop) -> float:
    return QUEUE_MSGS / loop.run_until_complete(_queue(QUEUE_MSGS))


async def _async_calls(n: int) -> float:
    import erlang

    t0 = time.perf_counter()
    for i in range(n):
        if await erlang.async_call("bench_loop_ident", i) != i:
            raise AssertionError("bench_loop_ident returned another value")
    return time.perf_counter() - t0


def async_call_rtt(loop: asyncio.AbstractEventLoop) -> float:
    return loop.run_until_complete(_async_calls(ASYNC_CALLS)) / ASYNC_CALLS * 1e6


# (key, label, unit, function, higher is better)
FIGURES: list[tuple[str, str, str, Callable[[asyncio.AbstractEventLoop], float], bool]] = [
    ("call_soon", "call_soon callbacks", "/s", call_soon_rate, True),
    ("call_later0", "call_later(0) timers", "/s", call_later0_rate, True),
    ("random_timers", "random-delay timers (0-10 ms)", "/s", random_timer_rate, True),
    ("tcp_rtt_proto", "TCP echo round trip, protocols", "us", tcp_rtt_protocols, False),
    ("tcp_rtt_streams", "TCP echo round trip, streams", "us", tcp_rtt_streams, False),
    ("tcp_bulk_proto", "TCP 16 KiB echo, protocols", "MB/s", tcp_bulk_protocols, True),
    ("tcp_bulk_streams", "TCP 16 KiB echo, streams", "MB/s", tcp_bulk_streams, True),
    ("udp_rtt", "UDP echo round trip", "us", udp_rtt, False),
    ("queue", "asyncio.Queue messages", "/s", queue_rate, True),
    ("async_call", "erlang.async_call round trip", "us", async_call_rtt, False),
]


def _one_round(kind: ep_loops.LoopKind, only: list[str]) -> dict[str, float | str]:
    out: dict[str, float | str] = {}
    for key, _label, _unit, fun, _hib in FIGURES:
        if only and key not in only:
            continue
        loop = kind.factory()
        try:
            asyncio.set_event_loop(loop)
            out[key] = fun(loop)
        except Exception as exc:  # a loop that cannot do it: reported, the run goes on
            out[key] = f"{type(exc).__name__}: {exc}"[:80]
        finally:
            asyncio.set_event_loop(None)
            loop.close()
    return out


def run(kinds: list[str], rounds: int = 5, only: list[str] | None = None) -> dict[str, Any]:
    """Interleaved rounds over ``kinds``; per figure and kind: the median, or an error text."""
    loop_kinds = []
    for name in kinds:
        try:
            loop_kinds.append(ep_loops.loop_kind(name))
        except (ImportError, RuntimeError):
            continue
    samples: dict[tuple[str, str], list[float]] = {}
    errors: dict[tuple[str, str], str] = {}
    for r in range(rounds):
        order = loop_kinds[r % len(loop_kinds):] + loop_kinds[:r % len(loop_kinds)]
        for kind in order:
            for key, value in _one_round(kind, only or []).items():
                if isinstance(value, str):
                    errors[(key, kind.name)] = value
                else:
                    samples.setdefault((key, kind.name), []).append(value)
    return {"kinds": [k.name for k in loop_kinds], "rounds": rounds,
            "medians": {f"{k}/{n}": statistics.median(v) for (k, n), v in samples.items()},
            "errors": {f"{k}/{n}": e for (k, n), e in errors.items()}}


def _cell(value: float | None, unit: str) -> str:
    if value is None:
        return "error"
    if unit == "/s":
        return f"{value / 1000:.0f}k/s"
    if unit == "MB/s":
        return f"{value:.0f} MB/s"
    return f"{value:.1f} µs"


def table(result: dict[str, Any]) -> str:
    """A Markdown table of ``run``'s result, with each kind's ratio to uvloop (>1 is better)."""
    kinds = result["kinds"]
    med, errs = result["medians"], result["errors"]
    with_ratio = {"erlang", "uvloop"} <= set(kinds)
    head = "| figure | " + " | ".join(kinds) + " |" + (" erlang / uvloop |" if with_ratio else "")
    lines = [head, "|" + " --- |" * (head.count("|") - 1)]
    for key, label, unit, _fun, higher in FIGURES:
        cells = [_cell(med.get(f"{key}/{k}"), unit) for k in kinds]
        row = f"| {label} | " + " | ".join(cells) + " |"
        e, u = med.get(f"{key}/erlang"), med.get(f"{key}/uvloop")
        if with_ratio:
            ratio = "—" if e is None or u is None else f"{(e / u if higher else u / e):.2f}×"
            row += f" {ratio} |"
        lines.append(row)
    lines.append(f"\nMedians of {result['rounds']} interleaved rounds; ratios are 'times as good' "
                 "(rates: erlang/uvloop, round trips: uvloop/erlang).")
    for k, e in sorted(errs.items()):
        lines.append(f"error {k}: {e}")
    return "\n".join(lines)


def run_table(kinds: list[str], rounds: int = 5, only: list[str] | None = None) -> str:
    """``table(run(...))``: what bench/py_loop_bench.erl prints."""
    return table(run(kinds, rounds, only))
