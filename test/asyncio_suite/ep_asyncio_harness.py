"""Run CPython's test_asyncio on one loop kind, one module at a time.

``run_module(loop, module, results_path)`` runs the module's tests with the
loop kind's policy set (counting the loops it makes) and its per-loop classes
re-based on the loop (ep_rebase), appending one JSON line per test to
``results_path``:

    {"id": ..., "outcome": "passed" | "failed" | "skipped" | "timeout" | "crashed",
     "loop": true when the test made a loop of the kind (or is a re-based test),
     "secs": ..., "detail": the exception's last line}

Tests already in the file are not run again: after a crash or a hang (a C-level
faulthandler timer ends the process after ``test_timeout`` seconds, GIL or
not) the driver calls it again and it resumes after the test that broke, which
is recorded as "timeout" or "crashed". Full tracebacks go to
``results_path + '.tb'``.

Runs inside a port program (test/asyncio_suite/py_asyncio_harness.erl) or in a
plain interpreter (``python3 ep_asyncio_harness.py``, stdlib and uvloop only).
"""

from __future__ import annotations

import asyncio
import faulthandler
import json
import os
import sys
import time
import traceback
import unittest
from pathlib import Path
from typing import Any, Callable, TextIO

import ep_loops
import ep_rebase

OUTCOME_RANK = {"passed": 0, "skipped": 1, "failed": 2}


class LoopCounter:
    """How many loops of one class the current test made."""

    def __init__(self, loop_class: type) -> None:
        self.loop_class = loop_class
        self.count = 0
        self.on_first: Callable[[], None] = lambda: None

    def note(self, loop: Any) -> Any:
        if isinstance(loop, self.loop_class):
            self.count += 1
            if self.count == 1:
                self.on_first()
        return loop


def counting_policy(kind: ep_loops.LoopKind, counter: LoopCounter) -> asyncio.AbstractEventLoopPolicy:
    class CountingPolicy(kind.policy_class):  # type: ignore[misc,name-defined]
        def new_event_loop(self) -> asyncio.AbstractEventLoop:
            return counter.note(super().new_event_loop())

    return CountingPolicy()


class RecordingResult(unittest.TestResult):
    """Writes one line per test as it ends; re-installs the policy before each test."""

    def __init__(
        self,
        out: TextIO,
        tb_out: TextIO,
        policy: asyncio.AbstractEventLoopPolicy,
        counter: LoopCounter,
        rebased: type | None,
        test_timeout: float,
        hang_file: TextIO,
    ) -> None:
        super().__init__()
        self.out, self.tb_out, self.policy, self.counter = out, tb_out, policy, counter
        self.rebased, self.test_timeout, self.hang_file = rebased, test_timeout, hang_file
        self.current: dict[str, Any] = {}
        counter.on_first = lambda: self._line({"loop_made": self.current.get("id")})

    def _line(self, record: dict[str, Any]) -> None:
        self.out.write(json.dumps(record) + "\n")
        self.out.flush()

    def startTest(self, test: unittest.TestCase) -> None:
        super().startTest(test)
        asyncio.set_event_loop_policy(self.policy)
        self.counter.count = 0
        self.current = {"id": test.id(), "outcome": "passed", "detail": "", "t0": time.monotonic()}
        self._line({"start": test.id()})
        faulthandler.dump_traceback_later(self.test_timeout, exit=True, file=self.hang_file)

    def _set(self, outcome: str, test: Any, err: Any = None) -> None:
        cur = self.current
        if cur.get("id") != test.id():  # a class or module fixture (_ErrorHolder)
            detail = self._detail(test, err)
            self._line({"id": test.id(), "outcome": outcome, "loop": True, "secs": 0, "detail": detail})
            return
        if OUTCOME_RANK[outcome] >= OUTCOME_RANK[cur["outcome"]]:
            cur["outcome"] = outcome
            cur["detail"] = self._detail(test, err)

    def _detail(self, test: Any, err: Any) -> str:
        if err is None:
            return ""
        if isinstance(err, str):  # a skip reason
            return err[:300]
        text = "".join(traceback.format_exception(*err))
        self.tb_out.write(f"==== {test.id()}\n{text}\n")
        self.tb_out.flush()
        last = traceback.format_exception_only(err[0], err[1])[-1].strip()
        return last[:300]

    def addSuccess(self, test: unittest.TestCase) -> None:
        self._set("passed", test)

    def addFailure(self, test: Any, err: Any) -> None:
        self._set("failed", test, err)

    def addError(self, test: Any, err: Any) -> None:
        self._set("failed", test, err)

    def addSkip(self, test: Any, reason: str) -> None:
        self._set("skipped", test, reason)

    def addExpectedFailure(self, test: Any, err: Any) -> None:
        self._set("passed", test)

    def addUnexpectedSuccess(self, test: Any) -> None:
        self._set("failed", test, "unexpected success")

    def addSubTest(self, test: Any, subtest: Any, err: Any) -> None:
        if err is not None:
            failed = issubclass(err[0], test.failureException) or not issubclass(
                err[0], unittest.SkipTest
            )
            self._set("failed" if failed else "skipped", test, err)

    def stopTest(self, test: unittest.TestCase) -> None:
        faulthandler.cancel_dump_traceback_later()
        cur = self.current
        used = self.counter.count > 0 or (self.rebased is not None and isinstance(test, self.rebased))
        secs = round(time.monotonic() - cur.pop("t0"), 3)
        self._line({**cur, "loop": used, "secs": secs})
        super().stopTest(test)


def read_results(path: Path) -> tuple[list[dict[str, Any]], str | None, bool]:
    """The finished tests of a results file, and a test started but never finished
    (with whether it had made a loop of the kind)."""
    done: list[dict[str, Any]] = []
    started: str | None = None
    made_loop = False
    if not path.exists():
        return done, None, False
    for raw in path.read_text().splitlines():
        try:
            rec = json.loads(raw)
        except ValueError:  # a line cut short by a crash
            continue
        if "start" in rec:
            started, made_loop = rec["start"], False
        elif "loop_made" in rec:
            made_loop = True
        else:
            done.append(rec)
            if rec["id"] == started:
                started = None
    return done, started, made_loop


def _record_broken(path: Path, test_id: str, made_loop: bool) -> None:
    """The test that ended the previous process: a hang (faulthandler dumped) or a crash."""
    hang = Path(str(path) + ".hang")
    dump = hang.read_text(errors="replace") if hang.exists() else ""
    outcome = "timeout" if dump.strip() else "crashed"
    with open(str(path) + ".tb", "a") as tb:
        tb.write(f"==== {test_id}\n{outcome}\n{dump}\n")
    hang.write_text("")
    with open(path, "a") as out:
        out.write(json.dumps({"id": test_id, "outcome": outcome, "loop": made_loop, "secs": 0,
                              "detail": outcome}) + "\n")


def run_module(loop: str, module: str, results_path: str, test_timeout: float = 120.0) -> int:
    """Run (or resume) test_asyncio module ``module`` on loop kind ``loop``; the number of tests run."""
    path = Path(results_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    done, broken, made_loop = read_results(path)
    if broken is not None:
        rebased = ep_rebase.REBASED_CLASS + "." in broken and broken.split(".")[2] in ep_rebase.REBASES
        _record_broken(path, broken, made_loop or rebased)
        done.append({"id": broken})
    finished = {rec["id"] for rec in done}
    kind = ep_loops.test_loop_kind(loop)
    counter = LoopCounter(kind.loop_class)
    tests, rebased = ep_rebase.load_module(module, lambda: counter.note(kind.factory()))
    with open(path, "a") as out:
        for test_id, why in ep_rebase.NOT_RUN.items():
            if test_id not in finished and any(t.id() == test_id for t in tests):
                out.write(json.dumps({"id": test_id, "outcome": "skipped", "loop": False,
                                      "secs": 0, "detail": f"not run: {why}"}) + "\n")
                finished.add(test_id)
    todo = unittest.TestSuite(t for t in tests if t.id() not in finished)
    policy = counting_policy(kind, counter)
    with open(path, "a") as out, open(str(path) + ".tb", "a") as tb_out, \
            open(str(path) + ".hang", "w") as hang_file:
        result = RecordingResult(out, tb_out, policy, counter, rebased, test_timeout, hang_file)
        try:
            todo.run(result)
        finally:
            faulthandler.cancel_dump_traceback_later()
            asyncio.set_event_loop_policy(None)
    return todo.countTestCases()


def main(argv: list[str]) -> int:
    """Plain-interpreter driver: ``ep_asyncio_harness.py LOOP OUTDIR [MODULE...]``."""
    import subprocess

    loop, outdir, *mods = argv
    for module in mods or ep_rebase.modules():
        path = os.path.join(outdir, loop, module + ".jsonl")
        for _ in range(50):  # each pass resumes after the test that broke the last one
            code = (f"import ep_asyncio_harness as h; "
                    f"h.run_module({loop!r}, {module!r}, {path!r})")
            proc = subprocess.run([sys.executable, "-c", code], cwd=os.path.dirname(__file__) or ".",
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if proc.returncode == 0:
                break
    import ep_asyncio_report

    text, _, _, unexpected = ep_asyncio_report.report(outdir, loop, ep_asyncio_report.default_readme())
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
