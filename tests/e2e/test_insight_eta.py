"""How good is ``kubectl batch plan``'s estimated start? Checked against the actual start of
the same job in a run with steady arrivals.

A compute environment of 2 vCPUs runs 1-vCPU jobs of 4 s (about one admission every 2 s once
busy); a job arrives every 1.5 s, so a backlog builds up steadily. Every 8 s a probe: plan
the job (its estimated start), then submit exactly that job and, once it ran, compare. The
errors (actual minus estimated start) are printed and bounded; docs/observability.md reports
a measured run.
"""

from __future__ import annotations

import contextlib
import io
import json
import statistics
import time
from pathlib import Path

import pytest
import yaml
from tests.e2e.conftest import Stack
from tests.e2e.factories import make_ce, make_definition, make_job, make_queue

from kubatch.plugin.cli import main as kubectl_batch
from kubatch.timefmt import parse_time

pytestmark = pytest.mark.timeout(400)

ARRIVAL_EVERY = 1.5
RUN_SECONDS = 4
ARRIVALS = 40
PROBE_EVERY = 5  # arrivals


def plan(stack: Stack, ns: str, path: Path) -> dict[str, object]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err):
        code = kubectl_batch(
            [
                "--kubeconfig",
                str(stack.plane.kubeconfig),
                "-n",
                ns,
                "plan",
                "-f",
                str(path),
                "-o",
                "json",
                "--window",
                "60",
            ],
            out=out,
        )
    assert code == 0, err.getvalue()
    doc: dict[str, object] = json.loads(out.getvalue())
    return doc


def test_estimated_start_against_the_actual_start(
    stack: Stack, namespace: str, tmp_path: Path
) -> None:
    ns = namespace
    ce, q = f"{ns}-ce", f"{ns}-q"
    stack.apply([make_ce(ce, max_vcpus=2, instance_types=("m5.large",)), make_queue(q, [ce])])
    stack.apply([make_definition("work", duration=RUN_SECONDS, cpu="1", memory="1Gi")], ns)
    probes: dict[str, tuple[float, float]] = {}  # name -> (planned at, estimated start)
    t0 = time.monotonic()
    for i in range(ARRIVALS):
        name = f"job-{i:03d}"
        if i >= 10 and i % PROBE_EVERY == 0:
            path = tmp_path / f"{name}.yaml"
            path.write_text(yaml.safe_dump(make_job(name, q, "work")))
            doc = plan(stack, ns, path)
            assert doc["estimatedStart"] is not None, doc
            probes[name] = (time.time(), float(doc["estimatedStart"]))  # type: ignore[arg-type]
        stack.apply([make_job(name, q, "work")], ns)
        time.sleep(max(0.0, t0 + (i + 1) * ARRIVAL_EVERY - time.monotonic()))
    rows = []
    for name, (planned, estimated) in probes.items():
        bj = stack.wait_phase(ns, name, ("Succeeded",), timeout=240)
        started = parse_time(bj["status"]["startedAt"])
        assert started is not None
        rows.append(
            {
                "job": name,
                "estimatedWait": estimated - planned,
                "actualWait": started - planned,
                "error": started - estimated,
            }
        )
    errors = [r["error"] for r in rows]
    waits = [r["actualWait"] for r in rows]
    report = {
        "probes": rows,
        "meanAbsoluteError": statistics.fmean(abs(e) for e in errors),
        "meanError": statistics.fmean(errors),
        "meanActualWait": statistics.fmean(waits),
        "relativeError": statistics.fmean(abs(e) for e in errors)
        / max(1.0, statistics.fmean(waits)),
    }
    print("\nETA accuracy:", json.dumps(report, indent=1))
    assert len(rows) >= 5
    assert max(waits) > 10, "no backlog built up: the test measures nothing"
    # The estimate is within a third of the wait on average, and no probe is off by more
    # than 20 s plus half its wait.
    assert report["relativeError"] <= 0.35, report
    for r in rows:
        assert abs(r["error"]) <= 20 + 0.5 * r["actualWait"], r
