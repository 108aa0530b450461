"""ErlangEventLoop: asyncio's Unix selector loop over the port program's libuv.

The loop derives from the standard library's ``SelectorEventLoop`` (so from
``BaseEventLoop``): CPython's test_asyncio reaches into those internals
(``_run_once``, ``_stop_serving``, ``_sock_sendfile_native`` ...), and every
transport, ``sock_*`` method, sendfile and start_tls of the standard library
keeps its exact behaviour. What is ours:

- readiness, wake-ups and waits come from a libuv loop of its own (UvSelector);
- ``_run_once``, ``call_soon(_threadsafe)``, ``call_at``, ``call_later`` are native
  (``_erlang_loop.LoopCore``), on the same ``_ready`` deque, ``_scheduled``
  heap and asyncio Handles, so what reaches into them still works;
- ``call_soon_threadsafe`` wakes it through a ``uv_async`` (no socket write
  when a wake-up is already pending);
- signal handlers work on a loop of any thread (``uv_signal``); on Python's
  main thread they stay the standard library's (``signal.set_wakeup_fd``);
- socket and datagram transports read into one buffer per loop (_transports);
- subprocesses work on a loop of any thread: each child is watched with a
  pidfd on the loop itself, no watcher thread and no SIGCHLD handler (unless
  a child watcher was set, which is then used as the standard loop does).
"""

from __future__ import annotations

import errno
import heapq
import os
import sys
import threading
import warnings
from asyncio import coroutines, events, format_helpers, unix_events
from typing import Any, Callable

try:
    import _erlang_loop

    _LoopCore = _erlang_loop.LoopCore
except ImportError:  # plain Python: the class exists, making a loop fails
    _erlang_loop = None

    class _LoopCore:  # type: ignore[no-redef]
        pass


from ._transports import (ReadBuffer, datagram_transport, give_back_read_buffer, socket_transport,
                          take_read_buffer)
from ._selector import UvSelector

__all__ = ["ErlangEventLoop"]


class ErlangEventLoop(_LoopCore, unix_events.SelectorEventLoop):  # type: ignore[name-defined,misc]
    """An asyncio event loop whose I/O, timers' waits and wake-ups are libuv's."""

    # BaseEventLoop's attributes that the native run_once and call_soon read
    # every time: slots, read at their offsets (core/loop_attrs.cpp).
    __slots__ = ("_ready", "_scheduled", "_stopping", "_debug", "_closed", "_selector",
                 "_due_timers", "_timer_cancelled_count", "_clock_resolution")

    def __init__(self) -> None:
        if _erlang_loop is None:
            self._closed = True  # nothing for __del__ to close
            raise RuntimeError("ErlangEventLoop needs the erlang_python port program")
        self._uv_signals: set[int] = set()
        self._pidfds: dict[int, int] = {}  # pidfd -> pid
        self._own_read_buffer: ReadBuffer | None = None  # made by the first transport
        # call_later(delay <= 0): due now, run next iteration without the heap
        # (LoopCore; merged with the due heap timers by their when()).
        self._due_timers: list[events.TimerHandle] = []
        super().__init__(UvSelector())

    # -- transports -------------------------------------------------------

    @property
    def _read_buffer(self) -> ReadBuffer:
        buffer = self._own_read_buffer
        if buffer is None:
            buffer = self._own_read_buffer = take_read_buffer()
        return buffer

    def _make_socket_transport(self, sock: Any, protocol: Any, waiter: Any = None, *,
                               extra: Any = None, server: Any = None) -> Any:
        return socket_transport(self, sock, protocol, waiter, extra=extra, server=server)

    def _make_datagram_transport(self, sock: Any, protocol: Any, address: Any = None,
                                 waiter: Any = None, extra: Any = None) -> Any:
        return datagram_transport(self, sock, protocol, address, waiter, extra)

    # -- one iteration -------------------------------------------------
    # _run_once, call_soon, call_at and call_later are LoopCore's (native).

    def run_forever(self) -> None:
        """BaseEventLoop.run_forever (3.11), its ``while`` loop native
        (LoopCore._run_forever_loop): no Python frame turn per iteration."""
        self._check_closed()
        self._check_running()
        self._set_coroutine_origin_tracking(self._debug)
        old_agen_hooks = sys.get_asyncgen_hooks()
        try:
            self._thread_id = threading.get_ident()
            sys.set_asyncgen_hooks(firstiter=self._asyncgen_firstiter_hook,
                                   finalizer=self._asyncgen_finalizer_hook)
            events._set_running_loop(self)
            self._run_forever_loop()
        finally:
            self._stopping = False
            self._thread_id = None
            events._set_running_loop(None)
            self._set_coroutine_origin_tracking(False)
            sys.set_asyncgen_hooks(*old_agen_hooks)

    def _purge_cancelled_timers(self) -> None:
        """Many cancelled timers: dropped all at once (as BaseEventLoop._run_once)."""
        kept = []
        for handle in self._scheduled:
            if handle._cancelled:
                handle._scheduled = False
            else:
                kept.append(handle)
        heapq.heapify(kept)
        self._scheduled = kept
        self._timer_cancelled_count = 0

    # -- wake-ups ---------------------------------------------------------
    # call_soon_threadsafe and _write_to_self are LoopCore's: the selector's
    # uv_async (the self-pipe stays for signal.set_wakeup_fd on the main thread).

    # The self-pipe serves only signal.set_wakeup_fd (main thread): made then.
    # The selector's uv_async is the loop's internal wake-up (_internal_fds).

    def _make_self_pipe(self) -> None:
        self._ssock = self._csock = None
        self._internal_fds += 1

    def _close_self_pipe(self) -> None:
        if self._ssock is not None:
            super()._close_self_pipe()
        else:
            self._internal_fds -= 1

    # -- signals ----------------------------------------------------------

    def add_signal_handler(self, sig: int, callback: Callable[..., Any], *args: Any) -> None:
        if threading.current_thread() is threading.main_thread():
            if self._csock is None:
                self._check_closed()
                super()._make_self_pipe()
                self._internal_fds -= 1  # still the one wake-up
            super().add_signal_handler(sig, callback, *args)
            return
        if coroutines.iscoroutine(callback) or coroutines.iscoroutinefunction(callback):
            raise TypeError("coroutines cannot be used with add_signal_handler()")
        self._check_signal(sig)
        self._check_closed()
        handle = events.Handle(callback, args, self, None)
        try:
            self._selector.watch_signal(sig, True)
        except OSError as exc:
            if exc.errno == errno.EINVAL:
                raise RuntimeError(f"sig {sig} cannot be caught") from None
            raise
        self._signal_handlers[sig] = handle
        self._uv_signals.add(sig)
        self._selector.on_signal = self._handle_signal

    def remove_signal_handler(self, sig: int) -> bool:
        if sig not in self._uv_signals:
            return bool(super().remove_signal_handler(sig))
        self._check_signal(sig)
        self._uv_signals.discard(sig)
        del self._signal_handlers[sig]
        if self._selector is not None:
            self._selector.watch_signal(sig, False)
            if not self._uv_signals:
                self._selector.on_signal = None
        return True

    # -- subprocesses -----------------------------------------------------

    async def _make_subprocess_transport(  # type: ignore[override]
        self,
        protocol: Any,
        args: Any,
        shell: bool,
        stdin: Any,
        stdout: Any,
        stderr: Any,
        bufsize: int,
        extra: Any = None,
        **kwargs: Any,
    ) -> Any:
        if _child_watcher_set():
            # A child watcher set explicitly (asyncio.set_child_watcher, or made
            # by get_child_watcher) is used, as the standard loop does: it may
            # reap every child (FastChildWatcher) or be checked by its owner.
            return await super()._make_subprocess_transport(
                protocol, args, shell, stdin, stdout, stderr, bufsize, extra=extra, **kwargs)
        waiter = self.create_future()
        transp = unix_events._UnixSubprocessTransport(  # type: ignore[attr-defined]
            self, protocol, args, shell, stdin, stdout, stderr, bufsize,
            waiter=waiter, extra=extra, **kwargs,
        )
        self._watch_child(transp.get_pid(), transp)
        try:
            await waiter
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException:
            transp.close()
            await transp._wait()
            raise
        return transp

    def _watch_child(self, pid: int, transp: Any) -> None:
        """The child's exit is a readable pidfd on this loop (any thread)."""
        try:
            pidfd = os.pidfd_open(pid)
        except ProcessLookupError:  # reaped already by someone else
            self.call_soon(transp._process_exited, 255)
            return
        except OSError as exc:  # no pidfd (kernel < 5.3): asyncio's child watcher
            if exc.errno != errno.ENOSYS:
                raise
            with events.get_child_watcher() as watcher:
                watcher.add_child_handler(pid, self._child_watcher_callback, transp)
            return
        self._pidfds[pidfd] = pid
        self.add_reader(pidfd, self._child_exited, pidfd, transp)

    def _child_exited(self, pidfd: int, transp: Any) -> None:
        pid = self._pidfds.pop(pidfd)
        self.remove_reader(pidfd)
        os.close(pidfd)
        try:
            _, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            # Reaped by another waiter (a child watcher, os.wait): as asyncio does.
            warnings.warn(f"child process pid {pid} was reaped by someone else", RuntimeWarning)
            returncode = 255
        else:
            returncode = os.waitstatus_to_exitcode(status)
        transp._process_exited(returncode)

    # -- closing ----------------------------------------------------------

    def close(self) -> None:
        if self.is_running():
            raise RuntimeError("Cannot close a running event loop")
        if self._selector is not None:
            for sig in list(self._uv_signals):
                self.remove_signal_handler(sig)
            for pidfd in list(self._pidfds):
                self.remove_reader(pidfd)
                os.close(pidfd)
            self._pidfds.clear()
        self._due_timers.clear()
        super().close()
        if self._own_read_buffer is not None:
            give_back_read_buffer(self._own_read_buffer)
            self._own_read_buffer = None


def _child_watcher_set() -> bool:
    """The current policy holds a child watcher (asyncio's, 3.11)."""
    policy = events.get_event_loop_policy()
    return getattr(policy, "_watcher", None) is not None


def _callback_failed(handle: events.Handle, exc: BaseException) -> None:
    """A callback run natively raised `exc`: reported as Handle._run does."""
    cb = format_helpers._format_callback_source(handle._callback, handle._args)
    context = {"message": f"Exception in callback {cb}", "exception": exc, "handle": handle}
    if handle._source_traceback:
        context["source_traceback"] = handle._source_traceback
    handle._loop.call_exception_handler(context)


if _erlang_loop is not None:
    _erlang_loop.set_callback_failed(_callback_failed)
    _erlang_loop.set_loop_classes(ErlangEventLoop, UvSelector)
