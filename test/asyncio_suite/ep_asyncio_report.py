"""The per-module table of an asyncio harness run, checked against the listed exceptions.

Exceptions (tests that cannot pass, and why) live in test/README.md, in rows
of the form ``| `test_events.RebasedLoopTests.test_name` | erlang, stdlib | why |``
(ids relative to ``test.test_asyncio``; ``*`` and ``?`` match as in fnmatch).
"""

from __future__ import annotations

import fnmatch
import json
import re
from pathlib import Path
from typing import Any

PREFIX = "test.test_asyncio."
ROW = re.compile(r"^\|\s*`([^`]+)`\s*\|\s*([a-z, ]+?)\s*\|")


def default_readme() -> str:
    return str(Path(__file__).resolve().parent.parent / "README.md")


def exceptions(readme: str, loop: str) -> list[str]:
    """The id patterns test/README.md lists as exceptions for loop kind ``loop``."""
    out: list[str] = []
    if not Path(readme).exists():
        return out
    for line in Path(readme).read_text().splitlines():
        m = ROW.match(line)
        if m and loop in [s.strip() for s in m.group(2).split(",")]:
            out.append(m.group(1))
    return out


def _short(test_id: str) -> str:
    return test_id[len(PREFIX):] if test_id.startswith(PREFIX) else test_id


def _records(path: Path) -> list[dict[str, Any]]:
    recs: dict[str, dict[str, Any]] = {}
    for raw in path.read_text().splitlines():
        try:
            rec = json.loads(raw)
        except ValueError:
            continue
        if "id" in rec:
            recs[rec["id"]] = rec  # a resumed run's record replaces none: ids are unique
    return list(recs.values())


def report(results_dir: str, loop: str, readme: str, module_list: list[str] | None = None
           ) -> tuple[str, int, int, list[str]]:
    """(table text, passed, failed, unexpected failures) of the loop-dependent tests."""
    patterns = exceptions(readme, loop)
    rows = []
    total = {"passed": 0, "failed": 0, "skipped": 0, "other": 0}
    unexpected: list[str] = []
    excepted = 0
    files = sorted(Path(results_dir, loop).glob("*.jsonl"))
    if module_list:
        files = [f for f in files if f.stem in module_list]
    for f in files:
        counts = {"passed": 0, "failed": 0, "skipped": 0, "other": 0}
        for rec in _records(f):
            if not rec.get("loop"):
                counts["other"] += 1
                continue
            outcome = rec["outcome"]
            key = "failed" if outcome in ("failed", "timeout", "crashed") else outcome
            counts[key] += 1
            if key == "failed":
                short = _short(rec["id"])
                if any(fnmatch.fnmatchcase(short, p) for p in patterns):
                    excepted += 1
                else:
                    unexpected.append(f"{short} [{outcome}] {rec.get('detail', '')}")
        rows.append((f.stem, counts))
        for k in total:
            total[k] += counts[k]
    width = max([len(m) for m, _ in rows] + [len("module")])
    lines = [f"asyncio on loop '{loop}': loop-dependent tests per module "
             f"(other: tests of the module that made no loop of this kind)",
             f"{'module':<{width}}  {'passed':>6}  {'failed':>6}  {'skipped':>7}  {'other':>5}"]
    for name, c in rows + [("total", total)]:
        lines.append(f"{name:<{width}}  {c['passed']:>6}  {c['failed']:>6}  {c['skipped']:>7}  {c['other']:>5}")
    if unexpected:
        lines.append(f"failures not listed as exceptions in test/README.md ({len(unexpected)}):")
        lines.extend("  " + u for u in unexpected)
    lines.append(f"{excepted} failures are listed exceptions, {len(unexpected)} are not")
    lines.append(f"{total['passed']} passed, {total['failed']} failed")
    return "\n".join(lines), total["passed"], total["failed"], unexpected
