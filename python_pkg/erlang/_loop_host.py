"""The event loops a port program hosts for ``py_event_loop``.

The port program starts a thread per loop and calls :func:`serve` on it. Task
requests arrive in the loop's inbox (filled by the thread that reads the
protocol, which signals an eventfd this loop watches); :meth:`_Host.drain`
takes the whole inbox at once. Replies are framed as they complete and leave in
one write per loop iteration.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import sys
import types
from typing import Any, Callable

import _erlang_loop_host

from ._runtime import compile_eval, format_exception


def new_loop() -> asyncio.AbstractEventLoop:
    """The one place that chooses the loop class of py_event_loop's loops."""
    import erlang

    return erlang.new_event_loop()


# The kinds of the inbox's requests: message types of the protocol, as the port
# program numbers them (core/protocol.hpp).
_TASK, _EXEC, _EVAL, _FORGET, _CANCEL = (
    _erlang_loop_host.TASK,
    _erlang_loop_host.EXEC,
    _erlang_loop_host.EVAL,
    _erlang_loop_host.FORGET,
    _erlang_loop_host.CANCEL,
)
_Coroutine = types.CoroutineType
# Results that are never awaitable: no inspect.isawaitable() (an ABC check) for them.
_PLAIN = frozenset({int, float, str, bytes, bool, type(None), list, dict, tuple})

# The host of the loop running on this thread, by loop (for stats()).
_hosts: dict[asyncio.AbstractEventLoop, "_Host"] = {}


class _Host:
    def __init__(self, loop_id: int, loop: asyncio.AbstractEventLoop) -> None:
        self.id = loop_id
        self.loop = loop
        self.tasks: dict[bytes, asyncio.Task[Any]] = {}  # by request ID: to cancel
        self.namespaces: dict[Any, dict[str, Any]] = {}  # by caller pid
        self.draining = False  # in drain(): pump() flushes what it answers
        self.submitted = 0
        self.completed = 0
        self.failed = 0
        self.cancelled = 0
        # for pump(): it starts a coroutine's task itself, as started() does
        self._calls = (loop, self.handle, self.started, self.fail, self.finish, self.tasks,
                       loop.create_task)

    # Replies -----------------------------------------------------------------

    def _framed(self, first: bool) -> None:
        # The first reply since the last write: drain() sends it (pump()
        # writes what is framed, then waits briefly for the next request).
        if first and not self.draining:  # inside drain(), pump() writes it anyway
            self.loop.call_soon(self.drain)

    def ok(self, reqid: bytes | None, value: Any) -> None:
        self.completed += 1
        if reqid is None:
            return
        try:
            self._framed(_erlang_loop_host.reply(self.id, reqid, value))
        except BaseException as exc:  # no Erlang term for the value
            self.fail(reqid, exc, count=False)

    def fail(self, reqid: bytes | None, exc: BaseException, count: bool = True) -> None:
        if count:
            self.failed += 1
        cls, msg, tb = type(exc).__name__, str(exc), format_exception(exc)
        if reqid is None:
            sys.stderr.write(f"{cls}: {msg}\n{tb}")
            return
        self._framed(_erlang_loop_host.reply_error(self.id, reqid, cls, msg, tb))

    # Requests ----------------------------------------------------------------

    def drain(self) -> None:
        """Runs what the inbox holds (``_erlang_loop_host.pump``): a task
        calling a function of an imported module runs in the port program's
        C code, which frames its plain result; the rest comes back here
        (handle, started, fail). Replies leave at once, and a request that
        comes while the loop spins after them is taken in the same call (a
        few times: timers and I/O of the loop are not held up for long)."""
        self.draining = True
        try:
            more = _erlang_loop_host.pump(self.id, self._calls)
        finally:
            self.draining = False
        if more:
            self.loop.call_soon(self.drain)

    def handle(self, item: tuple[Any, ...]) -> None:
        """One request of the inbox that pump() did not run itself."""
        kind = item[0]
        try:
            if kind == _TASK:
                self.start(item[1], item[2], item[3], item[4], item[5], item[6])
            elif kind == _CANCEL:
                task = self.tasks.pop(item[1], None)
                if task is not None:
                    self.cancelled += 1
                    task.cancel()
            elif kind == _EXEC:
                exec(item[3], self.namespace(item[2]))
                self.ok(item[1], None)
            elif kind == _EVAL:
                self.ok(item[1], self.eval(item[2], item[3]))
            elif kind == _FORGET:
                self.namespaces.pop(item[2], None)
            else:  # a request the port program could not read
                self.failed += 1
                self._framed(_erlang_loop_host.reply_error(self.id, item[1], item[2], item[3], ""))
        except BaseException as exc:
            self.fail(item[1], exc)

    def namespace(self, owner: Any) -> dict[str, Any]:
        ns = self.namespaces.get(owner)
        if ns is None:
            import erlang

            ns = {"__builtins__": __builtins__, "__name__": "__main__", "erlang": erlang}
            self.namespaces[owner] = ns
        return ns

    def eval(self, owner: Any, code: str) -> Any:
        head, tail = compile_eval(code)
        ns = self.namespace(owner)
        if head is not None:
            exec(head, ns)
        return None if tail is None else eval(tail, ns)

    def lookup(self, owner: Any, module: str, function: str) -> Callable[..., Any]:
        if module != "__main__" and "." not in function:  # the common case
            mod = sys.modules.get(module)
            if mod is None:
                mod = importlib.import_module(module)
            return getattr(mod, function)
        names = function.split(".")
        if module == "__main__":
            ns = self.namespaces.get(owner, {})
            if names[0] not in ns:
                raise NameError(f"name '{names[0]}' is not defined")
            target = ns[names[0]]
        else:
            mod = sys.modules.get(module)
            if mod is None:
                mod = importlib.import_module(module)
            target = getattr(mod, names[0])
        for name in names[1:]:
            target = getattr(target, name)
        return target

    def start(self, reqid: bytes | None, owner: Any, module: str, function: str,
              args: tuple[Any, ...], kwargs: dict[str, Any] | None) -> None:
        self.submitted += 1
        fn = self.lookup(owner, module, function)
        self.started(reqid, fn(*args, **kwargs) if kwargs else fn(*args))

    def started(self, reqid: bytes | None, result: Any) -> None:
        """A task's function returned ``result``: its value, or an awaitable
        that becomes an asyncio task of the loop."""
        try:
            kind = type(result)
            if kind in _PLAIN:
                self.ok(reqid, result)
            elif kind is _Coroutine or inspect.isawaitable(result):
                task = self.loop.create_task(self.finish(reqid, result))
                if reqid is not None:
                    self.tasks[reqid] = task
            else:
                self.ok(reqid, result)
        except BaseException as exc:
            self.fail(reqid, exc)

    async def finish(self, reqid: bytes | None, awaitable: Any) -> None:
        try:
            value = await awaitable
        except asyncio.CancelledError:
            return  # its caller gave up: nobody waits for a reply
        except BaseException as exc:
            if reqid is not None:
                self.tasks.pop(reqid, None)
            self.fail(reqid, exc)
            return
        # ok() and _framed(), inline: this is every coroutine task's last step
        self.completed += 1
        if reqid is None:
            return
        self.tasks.pop(reqid, None)
        try:
            first = _erlang_loop_host.reply(self.id, reqid, value)
        except BaseException as exc:  # no Erlang term for the value
            self.fail(reqid, exc, count=False)
            return
        if first and not self.draining:
            self.loop.call_soon(self.drain)


def serve(loop_id: int, fd: int) -> None:
    """Runs loop ``loop_id`` forever on the calling thread (the port program's)."""
    loop = new_loop()
    asyncio.set_event_loop(loop)
    host = _Host(loop_id, loop)
    _hosts[loop] = host
    loop.add_reader(fd, host.drain)
    loop.call_soon(host.drain)  # what arrived before the reader was added
    loop.run_forever()


def stats() -> dict[Any, int]:
    """Counters of the loop this runs on (a task of py_event_loop_pool:get_stats/0)."""
    host = _hosts[asyncio.get_running_loop()]
    from ._types import Atom

    submitted, completed, spins, spin_hits = _erlang_loop_host.counts(host.id)
    return {
        Atom("running"): len(host.tasks),
        Atom("submitted"): host.submitted + submitted,
        Atom("completed"): host.completed + completed,
        Atom("failed"): host.failed,
        Atom("cancelled"): host.cancelled,
        Atom("namespaces"): len(host.namespaces),
        Atom("spins"): spins,
        Atom("spin_hits"): spin_hits,
    }
