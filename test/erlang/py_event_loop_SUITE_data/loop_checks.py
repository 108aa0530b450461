"""Checks of ErlangEventLoop run inside a port program by py_event_loop_SUITE.

Each check returns a value the suite matches, or raises.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import signal
import socket
import sys
import tempfile
import threading
import time
import warnings

import erlang

LOOP_NAMES = ["run", "new_event_loop", "ErlangEventLoop", "EventLoopPolicy",
              "ErlangEventLoopPolicy", "install", "detect_mode", "ExecutionMode",
              "sleep", "spawn_task"]


def names_are_real():
    out = []
    for name in LOOP_NAMES:
        value = getattr(erlang, name)
        assert hasattr(erlang, name)
        assert value.__module__.startswith("erlang._"), (name, value)
        out.append(name)
    assert erlang.ErlangEventLoopPolicy is erlang.EventLoopPolicy
    assert issubclass(erlang.ErlangEventLoop, asyncio.BaseEventLoop)
    assert erlang.detect_mode() is erlang.ExecutionMode.SHARED_GIL
    from erlang import run, new_event_loop  # noqa: F401  (from-imports too)
    return len(out)


async def _main(x):
    loop = asyncio.get_running_loop()
    await asyncio.sleep(0.01)
    return (type(loop).__name__, x)


def pattern_1():
    return erlang.run(_main(1))


def pattern_2():
    with asyncio.Runner(loop_factory=erlang.new_event_loop) as runner:
        return runner.run(_main(2))


def pattern_3():
    old = asyncio.get_event_loop_policy()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no DeprecationWarning on 3.11
            erlang.install()
        return asyncio.run(_main(3))
    finally:
        asyncio.set_event_loop_policy(old)


def pattern_4():
    loop = erlang.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        return loop.run_until_complete(_main(4))
    finally:
        loop.close()
        asyncio.set_event_loop(None)


PATTERNS = [pattern_1, pattern_2, pattern_3, pattern_4]


def patterns_here():
    return [p() for p in PATTERNS]


def patterns_on_threads():
    """Patterns 1, 2 and 4 on Python threads at once (3 changes the global policy)."""
    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        futures = [pool.submit(p) for p in (pattern_1, pattern_2, pattern_4) * 4]
        return [f.result(timeout=30) for f in futures]


def loops_isolated():
    """The seed's multi-threaded example: each loop sees only its own callbacks."""
    results = {}

    def run_tasks(loop_id):
        loop = erlang.ErlangEventLoop()
        got = []
        loop.call_soon(got.append, loop_id)
        loop.call_later(0.01, got.append, loop_id)
        deadline = time.time() + 5
        while time.time() < deadline and len(got) < 2:
            loop._run_once()
        loop.close()
        results[loop_id] = got

    threads = [threading.Thread(target=run_tasks, args=(n,)) for n in ("loop_a", "loop_b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results == {"loop_a": ["loop_a"] * 2, "loop_b": ["loop_b"] * 2}


def policy_on_any_thread():
    old = asyncio.get_event_loop_policy()
    asyncio.set_event_loop_policy(erlang.EventLoopPolicy())
    try:
        out = []

        def body():
            loop = asyncio.get_event_loop()
            out.append(type(loop).__name__)
            loop.close()

        t = threading.Thread(target=body)
        t.start()
        t.join()
        return out[0]
    finally:
        asyncio.set_event_loop_policy(old)


async def _tcp_echo():
    async def handle(reader, writer):
        writer.write(await reader.readexactly(5))
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"hello")
    data = await reader.read()
    writer.close()
    server.close()
    await server.wait_closed()
    return data


async def _unix_echo():
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "s")

        async def handle(reader, writer):
            writer.write(await reader.readexactly(4))
            writer.close()

        server = await asyncio.start_unix_server(handle, path)
        reader, writer = await asyncio.open_unix_connection(path)
        writer.write(b"unix")
        data = await reader.read()
        writer.close()
        server.close()
        await server.wait_closed()
        return data


async def _udp_echo():
    loop = asyncio.get_running_loop()

    class Echo(asyncio.DatagramProtocol):
        def connection_made(self, transport):
            self.transport = transport

        def datagram_received(self, data, addr):
            self.transport.sendto(data, addr)

    class Client(asyncio.DatagramProtocol):
        def __init__(self):
            self.got = loop.create_future()

        def datagram_received(self, data, addr):
            self.got.set_result(data)

    server, _ = await loop.create_datagram_endpoint(Echo, local_addr=("127.0.0.1", 0))
    addr = server.get_extra_info("sockname")
    client, proto = await loop.create_datagram_endpoint(Client, remote_addr=addr)
    client.sendto(b"udp")
    data = await asyncio.wait_for(proto.got, 5)
    client.close()
    server.close()
    return data


def echoes():
    return [erlang.run(_tcp_echo()), erlang.run(_unix_echo()), erlang.run(_udp_echo())]


async def _subprocesses():
    proc = await asyncio.create_subprocess_exec(
        "cat", stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
    out, _ = await proc.communicate(b"through cat")
    shell = await asyncio.create_subprocess_shell("exit 7")
    code = await shell.wait()
    return [out, proc.returncode, code]


def subprocesses():
    """On this (non-main) thread, and on a Python thread."""
    assert threading.current_thread() is not threading.main_thread()
    here = erlang.run(_subprocesses())
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        there = pool.submit(erlang.run, _subprocesses()).result(timeout=30)
    return [here, there]


async def _signals():
    loop = asyncio.get_running_loop()
    got = loop.create_future()
    loop.add_signal_handler(signal.SIGUSR1, got.set_result, "usr1")
    os.kill(os.getpid(), signal.SIGUSR1)
    value = await asyncio.wait_for(got, 5)
    removed = [loop.remove_signal_handler(signal.SIGUSR1),
               loop.remove_signal_handler(signal.SIGUSR1)]
    try:
        loop.add_signal_handler(signal.SIGKILL, print)
    except RuntimeError:
        removed.append("sigkill refused")
    return [value] + removed


def signals():
    assert threading.current_thread() is not threading.main_thread()
    here = erlang.run(_signals())
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        there = pool.submit(erlang.run, _signals()).result(timeout=30)
    return [here, there]


def threadsafe_wakeup():
    """A loop waiting with nothing scheduled wakes for another thread's call."""
    loop = erlang.new_event_loop()
    started = threading.Event()
    loop.call_soon(started.set)
    t = threading.Thread(target=loop.run_forever)
    t.start()
    started.wait(5)
    time.sleep(0.05)  # let it block in its wait
    t0 = time.monotonic()
    fut = asyncio.run_coroutine_threadsafe(asyncio.sleep(0, "woken"), loop)
    value = fut.result(timeout=5)
    elapsed = time.monotonic() - t0
    loop.call_soon_threadsafe(loop.stop)
    t.join(5)
    loop.close()
    return [value, elapsed < 1.0]


def async_call(n):
    async def calls():
        return await asyncio.gather(*(erlang.async_call("loop_double", i) for i in range(n)))

    return erlang.run(calls())


def async_calls_spin(n, slow_ms):
    """n+ sequential async_calls checked one by one on an ErlangEventLoop,
    after one cancelled while pending (its late reply comes meanwhile); the
    loop's spin counters (core/selector_spin.cpp)."""

    async def pings(sock, stop):
        # A socket ping-pong on the same loop: other descriptors keep their
        # turn while the loop reads the input for its replies.
        loop = asyncio.get_running_loop()
        count = 0
        while not stop.is_set():
            await loop.sock_sendall(sock, b"p")
            await loop.sock_recv(sock, 1)
            count += 1
            await asyncio.sleep(0.002)  # the loop is mostly waiting for replies
        return count

    async def echo(sock):
        loop = asyncio.get_running_loop()
        while data := await loop.sock_recv(sock, 1):
            await loop.sock_sendall(sock, data)

    async def calls():
        loop = asyncio.get_running_loop()
        a, b = socket.socketpair()
        a.setblocking(False)
        b.setblocking(False)
        stop = asyncio.Event()
        echoer = loop.create_task(echo(b))
        pinger = loop.create_task(pings(a, stop))
        try:
            return await spin_calls(loop) + [await finish(stop, pinger)]
        finally:
            echoer.cancel()
            a.close()
            b.close()

    async def finish(stop, pinger):
        stop.set()
        return await pinger

    async def spin_calls(loop):
        try:
            await asyncio.wait_for(erlang.async_call("spin_slow", slow_ms), 0.02)
            cancelled = "not cancelled"
        except asyncio.TimeoutError:
            cancelled = "cancelled"
        # Until the slow call's reply has come (and been dropped) and longer.
        t0 = time.monotonic()
        done = 0
        while done < n or time.monotonic() - t0 < 2 * slow_ms / 1000:
            got = await erlang.async_call("spin_ident", [done, done * 3])
            assert got == [done, done * 3], (done, got)
            done += 1
        # Nothing left in flight: the dropped reply did not land anywhere.
        bridge = loop._erlang_bridge
        idle = not bridge.futures and not _erlang_results(bridge.fd)
        spins, caught = loop._selector._uv.spin_stats()
        return [done, idle, cancelled, spins, caught]

    loop = erlang.new_event_loop()
    try:
        return loop.run_until_complete(calls())
    finally:
        loop.close()


def _erlang_results(fd):
    import _erlang

    return _erlang.async_results(fd)


def sleeps():
    t0 = time.monotonic()
    sync_result = erlang.sleep(0.05)
    sync_elapsed = time.monotonic() - t0

    async def main():
        t1 = time.monotonic()
        await erlang.sleep(0.05)
        return time.monotonic() - t1

    async_elapsed = erlang.run(main())
    return [sync_result, sync_elapsed >= 0.05, async_elapsed >= 0.05]


def sleep_releases_the_gil():
    """A sync erlang.sleep blocks only its own thread."""
    counted = []

    def count():
        n = 0
        deadline = time.monotonic() + 0.2
        while time.monotonic() < deadline:
            n += 1
        counted.append(n)

    t = threading.Thread(target=count)
    t.start()
    erlang.sleep(0.3)
    t.join()
    return counted[0] > 1000


async def _tell(pid, term, delay):
    await asyncio.sleep(delay)
    erlang.send(pid, term)


def spawn_from_sync(pid):
    task = erlang.spawn_task(_tell(pid, "from_sync", 0.01))
    return isinstance(task, asyncio.Task)


def spawn_from_async(pid):
    async def main():
        task = erlang.spawn_task(_tell(pid, "from_async", 0))
        await task
        return asyncio.get_running_loop() is task.get_loop()

    return erlang.run(main())


def slow_callback_warning():
    records = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record.getMessage())

    logger = logging.getLogger("asyncio")
    handler = Keep()
    logger.addHandler(handler)
    old_level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        loop = erlang.new_event_loop()
        loop.set_debug(True)
        loop.slow_callback_duration = 0.01
        loop.call_soon(time.sleep, 0.05)
        loop.run_until_complete(asyncio.sleep(0.01))
        loop.close()
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
    return any("took" in r for r in records)


def selector_errors():
    loop = erlang.new_event_loop()
    out = []
    with tempfile.TemporaryFile() as f:
        try:
            loop.add_reader(f.fileno(), print)
        except PermissionError:
            out.append("regular file refused")
    r, w = os.pipe()
    os.close(r)
    os.close(w)
    try:
        loop.add_reader(r, print)
    except OSError:
        out.append("closed fd refused")
    # A closed descriptor that was watched: removing it is quiet.
    a, b = socket.socketpair()
    loop.add_reader(a.fileno(), print)
    fd = a.fileno()
    a.close()
    out.append(loop.remove_reader(fd))
    b.close()
    loop.close()
    out.append(loop.is_closed())
    return out


# -- idle CPU --------------------------------------------------------------

_idle = {}


def idle_server_start():
    """A loop on a thread of its own with a listening server, left idle."""
    loop = erlang.new_event_loop()
    ready = threading.Event()

    async def serve():
        server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        _idle["server"] = server
        ready.set()
        await server.serve_forever()

    def body():
        try:
            loop.run_until_complete(serve())
        except asyncio.CancelledError:
            pass

    t = threading.Thread(target=body, daemon=True)
    t.start()
    assert ready.wait(5)
    _idle.update(loop=loop, thread=t)
    return os.getpid()


def idle_server_stop():
    loop = _idle["loop"]
    loop.call_soon_threadsafe(_idle["server"].close)
    _idle["thread"].join(5)
    alive = _idle["thread"].is_alive()
    if not alive:
        loop.close()
    return not alive


def version():
    return sys.version_info[:2]


def native_run_once():
    """The native _run_once keeps Handle._run's and the timer heap's contract."""
    import contextvars

    out = []
    loop = erlang.new_event_loop()
    errors = []
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    loop.call_soon(lambda: 1 / 0)
    var = contextvars.ContextVar("var", default="outside")
    ctx = contextvars.copy_context()
    ctx.run(var.set, "inside")
    seen = []
    loop.call_soon(lambda: seen.append(var.get()), context=ctx)
    loop.call_soon(lambda: seen.append(var.get()))
    fired = []
    timers = [loop.call_later(0.001 * (i % 10), fired.append, i) for i in range(200)]
    for t in timers[:150]:
        t.cancel()
    loop.run_until_complete(asyncio.sleep(0.05))
    out.append(len(errors) == 1 and isinstance(errors[0]["exception"], ZeroDivisionError)
               and errors[0]["message"].startswith("Exception in callback")
               and errors[0]["handle"] is not None)
    out.append(seen == ["inside", "outside"])
    out.append(sorted(fired) == list(range(150, 200)))
    out.append(len(loop._scheduled) == 0)

    def leave():
        raise SystemExit(3)

    loop.call_soon(leave)
    try:
        loop.run_until_complete(asyncio.sleep(0.01))
    except SystemExit as exc:
        out.append(exc.code)
    loop.close()
    return out


def native_scheduling():
    """call_soon / call_at / call_later made natively keep their contract."""
    import random

    loop = erlang.new_event_loop()
    out = []
    h = loop.call_soon(print)
    t = loop.call_at(loop.time() + 10, print)
    out.append(type(h) is asyncio.Handle and type(t) is asyncio.TimerHandle)
    out.append(t.when() > loop.time() and t in loop._scheduled)
    h.cancel()
    t.cancel()
    for bad in (lambda: loop.call_later(None, print), lambda: loop.call_at(None, print),
                lambda: loop.call_soon(print, context=None, other=1), lambda: loop.call_soon()):
        try:
            bad()
        except TypeError:
            out.append("TypeError")
    # Timers fire in the order of their time, whatever the order of scheduling.
    fired = []
    rng = random.Random(7)
    delays = [rng.random() * 0.05 for _ in range(300)]
    base = loop.time()
    for d in delays:
        loop.call_at(base + d, fired.append, d)
    loop.run_until_complete(asyncio.sleep(0.1))
    out.append(fired == sorted(delays))
    loop.set_debug(True)  # the standard library's methods, with their checks
    try:
        loop.call_soon(asyncio.sleep(0))
    except TypeError:
        out.append("debug TypeError")
    loop.set_debug(False)
    loop.close()
    try:
        loop.call_soon(print)
    except RuntimeError as exc:
        out.append(str(exc))
    return out


def native_create_task():
    """create_task made natively keeps BaseEventLoop.create_task's contract:
    names, contexts, a task factory, debug mode, a closed loop."""
    import contextvars

    var = contextvars.ContextVar("var", default="unset")

    async def read_var():
        return var.get()

    loop = erlang.new_event_loop()
    out = []
    t = loop.create_task(read_var())
    out.append(type(t) is asyncio.Task and t.get_loop() is loop and t.get_name().startswith("Task-"))
    ctx = contextvars.copy_context()
    ctx.run(var.set, "in ctx")
    named = loop.create_task(read_var(), name="named", context=ctx)
    loop.run_until_complete(asyncio.gather(t, named))
    out.append([t.result(), named.get_name(), named.result()])
    try:
        loop.create_task(read_var(), other=1)
    except TypeError:
        out.append("TypeError")
    made = []

    def factory(lp, coro, **kw):
        made.append(sorted(kw))
        return asyncio.Task(coro, loop=lp, **kw)

    loop.set_task_factory(factory)
    by_factory = loop.create_task(read_var(), name="from factory", context=ctx)
    loop.run_until_complete(by_factory)
    out.append([made, by_factory.get_name(), by_factory.result()])
    loop.set_task_factory(None)
    loop.set_debug(True)  # the standard library's method: the source traceback is trimmed
    debug_task = loop.create_task(read_var())
    out.append(debug_task._source_traceback is not None)
    loop.run_until_complete(debug_task)
    loop.set_debug(False)
    loop.close()
    coro = read_var()
    try:
        loop.create_task(coro)
    except RuntimeError as exc:
        out.append(str(exc))
    coro.close()
    return out


async def called_coroutine():
    """Called by py:call: run on a new ErlangEventLoop."""
    await asyncio.sleep(0.01)
    return type(asyncio.get_running_loop()).__name__


def threadsafe_storm(threads, each):
    """Many threads' call_soon_threadsafe into a running loop: none lost."""
    loop = erlang.new_event_loop()
    total = threads * each
    count = [0]
    done = loop.create_future()

    def bump():
        count[0] += 1
        if count[0] == total:
            done.set_result(None)

    def producer():
        for _ in range(each):
            loop.call_soon_threadsafe(bump)
            if _ % 97 == 0:
                time.sleep(0.0005)  # let the loop go back to waiting now and then

    async def main():
        workers = [threading.Thread(target=producer) for _ in range(threads)]
        for w in workers:
            w.start()
        await asyncio.wait_for(done, 30)
        for w in workers:
            w.join()
        return count[0]

    try:
        return loop.run_until_complete(main())
    finally:
        loop.close()


def due_timers():
    """call_later(delay <= 0) skips the heap but keeps the standard order."""
    loop = erlang.new_event_loop()
    out = []
    order = []
    now = loop.time()
    loop.call_at(now - 0.5, order.append, "heap -0.5")
    a = loop.call_later(0, order.append, "later 0")
    loop.call_at(now - 0.2, order.append, "heap -0.2")
    loop.call_later(-1, order.append, "later -1")  # earlier than the due list's last
    gone = loop.call_later(0, order.append, "cancelled")
    loop.call_soon(order.append, "soon")
    gone.cancel()
    out.append(type(a) is asyncio.TimerHandle and a.when() <= loop.time())

    def first():
        loop.call_later(0, order.append, "later 0 from a callback")
        loop.call_soon(order.append, "soon from a callback")

    loop.call_soon(first)
    loop.run_until_complete(asyncio.sleep(0.01))
    out.append(order)
    out.append(loop._timer_cancelled_count == 0 and not loop._scheduled)
    # Debug mode (the standard library's _run_once) still runs pending ones.
    ran = []
    loop.call_later(0, ran.append, 1)
    loop.set_debug(True)
    loop.run_until_complete(asyncio.sleep(0))
    loop.set_debug(False)
    out.append(ran == [1])
    # A loop whose time() is replaced: the heap, as the standard library does.
    loop.time = lambda: 1000.0
    t = loop.call_later(0, ran.append, 2)
    out.append(t in loop._scheduled and t.when() == 1000.0)
    del loop.time
    loop.call_later(0, ran.append, 3)
    loop.close()
    out.append(loop._due_timers == [] and ran == [1])
    return out


def pooled_selectors_start_clean():
    """A closed loop's libuv loop is reused by the next one: nothing of the
    old loop's watches reaches it, and the new loop makes no self-pipe."""
    import socket

    a, b = socket.socketpair()
    old = erlang.new_event_loop()
    seen_old = []
    old.add_reader(a.fileno(), seen_old.append, "old")  # left registered
    old.close()
    out = []
    for _ in range(3):
        loop = erlang.new_event_loop()
        out.append(loop._ssock is None and loop._csock is None)
        b.send(b"x")  # `a` readable: only a loop watching it may see it
        events = loop._selector._uv.select(0.05)  # raw: (fd, events) libuv saw
        out.append(events == [])
        got = []
        loop.add_reader(a.fileno(), lambda: got.append(a.recv(10)))
        loop.run_until_complete(asyncio.sleep(0.01))
        loop.remove_reader(a.fileno())
        out.append(got == [b"x"])
        loop.close()
    a.close()
    b.close()
    return all(out) and seen_old == [] and len(out) == 9


def read_buffers_on_demand():
    """A loop takes its 256 KiB read buffer with its first transport (a
    coroutine call makes none), loops alive at once have their own, and a
    closed loop's buffer serves a later loop; data arrives intact either way."""

    class Echo(asyncio.Protocol):
        def connection_made(self, transport):
            self.transport = transport

        def data_received(self, data):
            self.transport.write(data)

    async def echo_once(payload):
        server = await asyncio.get_running_loop().create_server(Echo, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(payload)
        got = await reader.readexactly(len(payload))
        writer.close()
        await writer.wait_closed()
        server.close()
        await server.wait_closed()
        return got

    out = []
    plain = erlang.new_event_loop()
    plain.run_until_complete(asyncio.sleep(0))
    out.append(plain._own_read_buffer is None)
    plain.close()
    a, b = erlang.new_event_loop(), erlang.new_event_loop()
    payload = bytes(range(256)) * 300
    out.append(a.run_until_complete(echo_once(payload)) == payload)
    out.append(b.run_until_complete(echo_once(payload[::-1])) == payload[::-1])
    first = a._own_read_buffer
    out.append(first is not None and b._own_read_buffer is not None and first is not b._own_read_buffer)
    a.close()
    out.append(a._own_read_buffer is None)
    c = erlang.new_event_loop()
    out.append(c.run_until_complete(echo_once(payload)) == payload)
    out.append(c._own_read_buffer is first)  # a's, given back at close
    b.close()
    c.close()
    return out


def run_shuts_down():
    """erlang.run skips the shutdown turns with nothing to do, never the others:
    left-over tasks are cancelled, async generators closed, the executor shut down."""
    out = []
    closed = []
    seen = {}

    async def agen():
        try:
            yield 1
        finally:
            closed.append("agen")

    async def forever():
        try:
            await asyncio.sleep(3600)
        finally:
            closed.append("task")

    async def main():
        loop = asyncio.get_running_loop()
        seen["loop"] = loop
        g = agen()
        await g.__anext__()
        seen["g"] = g
        asyncio.ensure_future(forever())
        await asyncio.sleep(0)
        await loop.run_in_executor(None, lambda: None)
        seen["executor"] = loop._default_executor
        return 5

    out.append(erlang.run(main()))
    out.append(sorted(closed) == ["agen", "task"])
    out.append(seen["executor"]._shutdown and seen["loop"].is_closed())

    async def plain():
        return asyncio.get_running_loop()

    loop = erlang.run(plain())
    out.append(loop.is_closed() and loop._asyncgens_shutdown_called
               and loop._executor_shutdown_called)
    return out


def pending_wakeup_ends_a_wait():
    """A wake-up sent before the wait ends it at once, though the first,
    non-blocking turn of the wait is what consumes it."""
    import time

    loop = erlang.new_event_loop()
    uv = loop._selector._uv
    rescue = threading.Timer(3.0, uv.wakeup)  # a lost wake-up would block forever
    rescue.start()
    out = []
    for _ in range(3):
        uv.wakeup()
        t0 = time.monotonic()
        uv.select(None)
        out.append(time.monotonic() - t0 < 1.0)
    rescue.cancel()
    rescue.join()
    loop.close()
    return out


def turn_after_a_sleep():
    """run_once's one rule for skipping a wait: a zero-timeout wait right
    after the previous iteration's wait is skipped, once, unless the loop is
    stopping; run_forever's first iteration polls; the selector's select()
    itself never skips. create_future and get_debug, native, keep their
    contract."""
    a, b = socket.socketpair()
    loop = erlang.new_event_loop()
    reads: list[int] = []

    def on_read() -> None:  # leaves the byte unread: `a` stays readable
        reads.append(1)
        loop.call_soon(lambda: None)  # the next iteration has a callback ready

    loop.add_reader(a.fileno(), on_read)
    sender = threading.Timer(0.05, b.send, (b"x",))
    sender.start()
    loop._run_once()  # sleeps until `a` is readable, runs on_read
    counts = [len(reads)]
    loop._run_once()  # a callback is ready, the last iteration waited: no poll
    counts.append(len(reads))
    loop.call_soon(lambda: None)
    loop._run_once()  # the last iteration did not wait: polls
    counts.append(len(reads))
    loop.stop()
    loop._run_once()  # right after a wait, but stopping: polls
    counts.append(len(reads))
    loop._stopping = False
    loop.call_soon(loop.stop)
    loop.run_forever()  # the first iteration polls
    counts.append(len(reads))
    sender.join()
    loop.remove_reader(a.fileno())
    uv = loop._selector._uv
    uv.watch(a.fileno(), 1)
    first = uv.select(None)
    again = uv.select(0)  # select() does not skip
    uv.watch(a.fileno(), 0)
    fut = loop.create_future()
    out = [counts == [1, 1, 2, 3, 4], first == again == [(a.fileno(), 1)],
           type(fut) is asyncio.Future and fut.get_loop() is loop,
           loop.get_debug() is False]
    loop.set_debug(True)
    out.append(loop.get_debug() is True)
    loop.set_debug(False)
    loop.close()
    a.close()
    b.close()
    return out
