"""How the console's index behaves with many jobs: memory per job and the time to answer the
job list (first page, a deep page, filters) and the overview's counts. Writes JSON
(docs/console/index-bench.json by default); ``make bench-console``. Not a test: figures."""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

from kubatch.console.index import Filters, Index

ROOT = Path(__file__).resolve().parents[2]
PHASES = ("Runnable", "Running", "Succeeded", "Failed")


def job(i: int) -> dict[str, Any]:
    return {
        "metadata": {
            "namespace": f"team-{i % 20}",
            "name": f"job-{i:06d}",
            "uid": f"00000000-0000-0000-0000-{i:012d}",
            "creationTimestamp": f"2026-01-{1 + i // 86400 % 28:02d}T"
            f"{i // 3600 % 24:02d}:{i // 60 % 60:02d}:{i % 60:02d}Z",
        },
        "spec": {"jobQueue": f"queue-{i % 5}", "jobDefinition": "work",
                 "dependsOn": [{"jobName": f"job-{i - 1:06d}"}] if i % 10 == 0 and i else []},
        "status": {"phase": PHASES[i % 4], "reason": "Succeeded" if i % 4 == 2 else "",
                   "attempts": [{"number": 1}], "computeEnvironment": "ce-1", "cost": 0.001},
    }  # fmt: skip


def timed(fn: Any, repeat: int = 20) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return round(statistics.median(times) * 1000, 2)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--jobs", type=int, default=100_000)
    p.add_argument("--json", default=str(ROOT / "docs" / "console" / "index-bench.json"))
    args = p.parse_args(argv)
    items = [job(i) for i in range(args.jobs)]
    gc.collect()
    t0 = time.perf_counter()
    Index().sync("jobs", items)  # the first list, timed without tracemalloc's overhead
    sync_s = time.perf_counter() - t0
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    ix = Index()
    ix.sync("jobs", items)
    gc.collect()
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    team = {"team-3", "team-7"}
    one = items[args.jobs // 2]
    flip = [one, {**one, "status": {**one["status"], "phase": "Running", "reason": "Running"}}]

    def phase_change() -> None:
        flip.reverse()
        ix.apply("jobs", "MODIFIED", flip[0])

    failed = Filters(queue="queue-2", phase="Failed")
    result = {
        "jobs": args.jobs,
        "syncSeconds": round(sync_s, 2),
        "indexMiB": round(held / 2**20, 1),
        "bytesPerJob": held // args.jobs,
        "medianMs": {
            "firstPage": timed(lambda: ix.query(Filters(), None, 1, 50)),
            "page1000": timed(lambda: ix.query(Filters(), None, 1000, 50)),
            "byName": timed(lambda: ix.query(Filters(name="job-0421"), None)),
            "byQueueAndPhase": timed(lambda: ix.query(failed, None)),
            "twoNamespacesVisible": timed(lambda: ix.query(Filters(), team, 1, 50)),
            "overviewCounts": timed(lambda: ix.counts_by_queue(team)),
            "onePhaseChange": timed(phase_change, repeat=200),
        },
    }  # fmt: skip
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
