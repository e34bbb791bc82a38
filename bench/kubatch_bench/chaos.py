"""Chaos run: ``kubatch bench chaos [--fast] [--scenario NAME ...] [--jobs N] [--json PATH]``.

A local plane of its own (started in a temporary directory, stopped by PID at the end), the
simulator and two operators (leader election, each behind a TCP proxy), a mixed workload of
BatchJobs per scenario and the seven faults of docs/reliability.md ("Faults"); the invariants
are checked from the cluster (``kubatch.devkit.chaos``). Writes JSON (per scenario: jobs,
faults, lost, duplicate attempts, orphans, retries used by interruptions, recovery p50/max,
whether the metrics agree with the statuses), prints a table, and exits 1 when an invariant
broke. ``make chaos`` is this at full size; ``tests/chaos`` runs the ``--fast`` subset.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import faulthandler
import json
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from kubatch.devkit.chaos.run import run
from kubatch.devkit.chaos.scenarios import FAST, FULL, SCENARIOS
from kubatch_bench.common import write_json

COLUMNS = (
    ("scenario", "scenario"),
    ("jobs", "jobs"),
    ("array_children", "children"),
    ("faults_injected", "faults"),
    ("lost", "lost"),
    ("duplicate_attempts", "dup"),
    ("orphans", "orphans"),
    ("retries_used_by_interruptions", "retries used"),
    ("interrupted_attempts", "interrupted"),
    ("recovery_p50_s", "recovery p50 s"),
    ("recovery_max_s", "max s"),
    ("metrics_agree", "metrics"),
    ("seconds", "s"),
    ("ok", "ok"),
)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="kubatch bench chaos", description=__doc__.split("\n")[0])
    p.add_argument("--fast", action="store_true", help="the subset of `make test`: fewer jobs, "
                   "two kills, a 15 s black hole, no timeout jobs")  # fmt: skip
    p.add_argument("--scenario", action="append", choices=list(SCENARIOS),
                   help="run only these (repeatable; default: all, in order)")  # fmt: skip
    p.add_argument("--jobs", type=int, default=None, help="BatchJobs per scenario")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--json", type=Path, default=None, help="write the results here")
    p.add_argument("--keep-workdir", action="store_true", help="keep the logs (path printed)")
    return p


def table(result: dict[str, Any]) -> str:
    """Pure: one row per scenario."""
    rows = [tuple(title for _, title in COLUMNS)]
    for r in result["scenarios"]:
        rows.append(tuple("-" if r.get(k) is None else str(r.get(k)) for k, _ in COLUMNS))
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _say(msg: str) -> None:
    print(f"[chaos {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    faulthandler.register(signal.SIGUSR1)  # `kill -USR1 <pid>`: where a long run waits
    size = FAST if args.fast else FULL
    if args.jobs is not None:
        if args.jobs < 10:
            print("kubatch bench chaos: --jobs must be at least 10", file=sys.stderr)
            return 2
        size = dataclasses.replace(size, jobs=args.jobs)
    work = Path(tempfile.mkdtemp(prefix="kubatch-chaos-"))
    try:
        result = asyncio.run(
            run(work, size, args.scenario or tuple(SCENARIOS), seed=args.seed, say=_say)
        )
    finally:
        if args.keep_workdir:
            _say(f"logs kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    write_json(result, args.json)
    print(table(result))
    if not result["ok"]:
        bad = {r["scenario"]: r["problems"] for r in result["scenarios"] if not r["ok"]}
        print(json.dumps(bad, indent=1), file=sys.stderr)
    verdict = "all invariants hold" if result["ok"] else "FAILED"
    print(f"{result['jobs']} BatchJobs ({result['array_children']} array children) in "
          f"{result['seconds']:.0f}s: {verdict}")  # fmt: skip
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
