"""Real asyncio clients and servers on a given loop kind, for py_event_loop_clients_SUITE.

Servers (aiohttp, uvicorn + FastAPI) run on a loop of the kind in a Python
thread of the port program; the aiohttp client runs on a loop of the kind on
the calling context's own thread. Handlers and the client await
``erlang.async_call('clients_double', n)`` on every other request.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from typing import Any, Callable

import erlang

KIND_CLASS_NAMES = {"erlang": "ErlangEventLoop", "stdlib": "_UnixSelectorEventLoop"}


def factory(kind: str) -> Callable[[], asyncio.AbstractEventLoop]:
    if kind == "erlang":
        if not isinstance(getattr(erlang, "ErlangEventLoop", None), type):
            raise RuntimeError("erlang.ErlangEventLoop is not in this build")
        return erlang.new_event_loop
    if kind == "stdlib":
        return asyncio.SelectorEventLoop
    raise ValueError(f"unknown loop kind {kind!r}")


def has_loop(kind: str) -> bool:
    try:
        factory(kind)
    except RuntimeError:
        return False
    return True


def _loop_name() -> str:
    return type(asyncio.get_running_loop()).__name__


class LoopThread:
    """A loop of one kind running forever in a thread of its own."""

    def __init__(self, kind: str) -> None:
        self.loop = factory(kind)()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def run(self, coro: Any, timeout: float = 60) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> bool:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        alive = self.thread.is_alive()
        if not alive:
            self.loop.close()
        return not alive


def _listening_socket() -> socket.socket:
    """Listening before the server runs: a client that connects early waits in the backlog.

    Made with proto IPPROTO_TCP, as ``loop.create_server(host, port)`` makes
    it: asyncio sets TCP_NODELAY only on accepted sockets of that proto, and
    uvicorn does not set it itself, so with ``socket.socket()`` (proto 0)
    every response's body waited ~40 ms for the client's delayed ACK.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    sock.listen(512)
    return sock


# -- aiohttp server -----------------------------------------------------------

_servers: dict[str, Any] = {}


async def _aiohttp_start(sock: socket.socket) -> Any:
    from aiohttp import web

    async def plain(request: web.Request) -> web.Response:
        n = int(request.match_info["n"])
        return web.json_response({"n": n, "loop": _loop_name()})

    async def call(request: web.Request) -> web.Response:
        n = int(request.match_info["n"])
        doubled = await erlang.async_call("clients_double", n)
        return web.json_response({"n": n, "doubled": doubled, "loop": _loop_name()})

    app = web.Application()
    app.add_routes([web.get("/plain/{n}", plain), web.get("/call/{n}", call)])
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    return runner


def aiohttp_server_start(kind: str) -> int:
    sock = _listening_socket()
    lt = LoopThread(kind)
    runner = lt.run(_aiohttp_start(sock))
    _servers["aiohttp"] = (lt, runner)
    return sock.getsockname()[1]


def aiohttp_server_stop() -> bool:
    lt, runner = _servers.pop("aiohttp")
    lt.run(runner.cleanup())
    return lt.close()


# -- uvicorn + FastAPI --------------------------------------------------------


def _fastapi_app() -> Any:
    from fastapi import FastAPI

    app = FastAPI()

    @app.get("/plain/{n}")
    async def plain(n: int) -> dict[str, Any]:
        return {"n": n, "loop": _loop_name()}

    @app.get("/call/{n}")
    async def call(n: int) -> dict[str, Any]:
        return {"n": n, "doubled": await erlang.async_call("clients_double", n), "loop": _loop_name()}

    return app


def uvicorn_start(kind: str) -> int:
    import uvicorn

    sock = _listening_socket()
    config = uvicorn.Config(_fastapi_app(), log_level="warning", lifespan="off", loop="none",
                            access_log=False)
    server = uvicorn.Server(config)
    lt = LoopThread(kind)
    done = asyncio.run_coroutine_threadsafe(server.serve(sockets=[sock]), lt.loop)
    _servers["uvicorn"] = (lt, server, done)
    return sock.getsockname()[1]


def uvicorn_stop() -> bool:
    lt, server, done = _servers.pop("uvicorn")
    server.should_exit = True
    done.result(30)
    return lt.close()


# -- aiohttp client -----------------------------------------------------------


async def _client(port: int, n: int, concurrency: int) -> dict[str, Any]:
    import aiohttp

    errors: list[str] = []
    ok = 0
    next_i = 0

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal ok, next_i
        while next_i < n:
            i = next_i
            next_i += 1
            value = await erlang.async_call("clients_double", i) if i % 2 else i
            try:
                async with session.get(f"http://127.0.0.1:{port}/echo/{value}") as resp:
                    body = await resp.text()
                if resp.status == 200 and body == f"echo {value}":
                    ok += 1
                else:
                    errors.append(f"{i}: {resp.status} {body[:80]}")
            except Exception as exc:  # counted as an error, the run goes on
                errors.append(f"{i}: {type(exc).__name__}: {exc}")

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    return {"ok": ok, "errors": len(errors), "first_errors": errors[:5], "loop": _loop_name()}


def aiohttp_client_run(kind: str, port: int, n: int, concurrency: int) -> dict[str, Any]:
    """``n`` GETs from an aiohttp client on a loop of ``kind`` on this thread."""
    loop = factory(kind)()
    try:
        return loop.run_until_complete(_client(port, n, concurrency))
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
