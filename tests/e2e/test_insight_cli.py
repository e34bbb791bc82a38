"""``kubectl batch plan``, ``timeline``, ``top`` and ``terminate`` (of many) on the real plane
with the operator and simulated pools: each verb's answer checked against what the cluster
holds and what then happens."""

from __future__ import annotations

import contextlib
import io
import json
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml
from tests.e2e.conftest import Stack
from tests.e2e.factories import make_ce, make_definition, make_job, make_queue

from kubatch.core.catalogue import DEFAULT
from kubatch.plugin.cli import main as kubectl_batch

pytestmark = pytest.mark.timeout(300)


def run(stack: Stack, *argv: str, code: int = 0) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err):
        got = kubectl_batch(["--kubeconfig", str(stack.plane.kubeconfig), *argv], out=out)
    assert got == code, f"exit {got}: {out.getvalue()}{err.getvalue()}"
    return out.getvalue(), err.getvalue()


def phase(stack: Stack, ns: str, name: str) -> str:
    return str(((stack.get("batchjob", name, ns) or {}).get("status") or {}).get("phase"))


def test_plan_says_where_what_and_when_and_creates_nothing(
    stack: Stack, namespace: str, tmp_path: Path
) -> None:
    ns = namespace
    small, big, q = f"{ns}-small", f"{ns}-big", f"{ns}-q"
    stack.apply(
        [
            make_ce(small, max_vcpus=2, instance_types=("m5.large",)),
            make_ce(big, max_vcpus=16, instance_types=("m5.large", "m5.xlarge", "c5.xlarge")),
            make_queue(q, [small, big]),
        ]
    )
    stack.apply([make_definition("wide", cpu="4", memory="8Gi", timeout=600)], ns)
    job = make_job("planned", q, "wide")
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(job))
    out, _ = run(
        stack, "-n", ns, "plan", "-f", str(tmp_path / "job.yaml"), "--duration", "30m", "-o", "json"
    )
    plan = json.loads(out)
    first, second = plan["computeEnvironments"]
    assert first["name"] == small
    assert first["canEverRun"] is False
    assert "maxvCpus 2" in first["why"]
    assert second["canEverRun"] is True
    assert second["hasRoomNow"] is True
    assert second["instanceType"] == "c5.xlarge"  # the cheapest of its types holding 4 vCPU/8Gi
    price = DEFAULT["c5.xlarge"].on_demand_price
    assert second["pricePerHour"] == pytest.approx(price)
    assert plan["estimatedAttemptCost"] == pytest.approx(price * 0.5)
    assert plan["likelyComputeEnvironment"] == big
    assert plan["estimatedStart"] == pytest.approx(time.time(), abs=30)
    assert plan["problems"] == []
    assert stack.list("batchjobs", ns) == []  # nothing was created

    # The text form, with the timeout as the duration.
    text, _ = run(stack, "-n", ns, "plan", "-f", str(tmp_path / "job.yaml"))
    assert "never" in text
    assert "c5.xlarge" in text
    assert "timeout" in text
    assert "Start:         now" in text

    # A definition that is only in the file, and a job too big for every CE of the queue.
    defn = make_definition("huge", cpu="32", memory="8Gi")
    (tmp_path / "huge.yaml").write_text(yaml.safe_dump_all([defn, make_job("h", q, "huge")]))
    out, _ = run(stack, "-n", ns, "plan", "-f", str(tmp_path / "huge.yaml"), "-o", "json")
    plan = json.loads(out)
    assert any("NoComputeEnvironmentCanFit" in p for p in plan["problems"]), plan
    assert plan["estimatedStart"] is None

    # The API server checks the job (dryRun=All): what the schema rejects is said.
    bad = make_job("bad", q, "wide", timeout={"attemptDurationSeconds": 5})
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(bad))
    _, err = run(stack, "-n", ns, "plan", "-f", str(tmp_path / "bad.yaml"), code=1)
    assert "attemptDurationSeconds" in err
    assert stack.list("batchjobs", ns) == []


def test_plan_estimates_a_later_start_behind_a_backlog(
    stack: Stack, namespace: str, tmp_path: Path
) -> None:
    ns = namespace
    ce, q = f"{ns}-ce", f"{ns}-q"
    stack.apply([make_ce(ce, max_vcpus=2, instance_types=("m5.large",)), make_queue(q, [ce])])
    stack.apply([make_definition("short", duration=3, cpu="1", memory="1Gi")], ns)
    stack.apply([make_job(f"j{i}", q, "short") for i in range(8)], ns)
    for i in range(8):
        stack.wait_phase(ns, f"j{i}", ("Succeeded",), timeout=120)
    # ten waiting jobs of 3 s on 2 slots: a backlog of at least 15 s, seen by one list per probe
    # (a probe of one kubectl call per job took longer than the backlog lasted under load)
    stack.apply([make_job(f"w{i}", q, "short") for i in range(10)], ns)

    def backlog() -> bool:
        # plan's "room now" reads the CE's published status (every 2 s): wait for it too
        allocated = ((stack.get("computeenvironment", ce) or {}).get("status") or {}).get(
            "allocatedvCpus"
        )
        phases = [(j.get("status") or {}).get("phase") for j in stack.list("batchjobs", ns)]
        waiting = phases.count("Runnable")
        return waiting >= 3 and allocated is not None and float(allocated) >= 2

    stack.wait("a backlog", backlog, timeout=30, every=0.2)
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(make_job("next", q, "short")))
    out, _ = run(stack, "-n", ns, "plan", "-f", str(tmp_path / "job.yaml"), "-o", "json")
    plan = json.loads(out)
    assert plan["computeEnvironments"][0]["hasRoomNow"] is False
    assert plan["queuePosition"] >= 3
    assert plan["estimatedStart"] is not None
    assert plan["estimatedStart"] > time.time()
    assert "waiting ahead" in plan["startBasis"]


def test_terminate_many_by_queue_phase_and_label(stack: Stack, namespace: str) -> None:
    ns = namespace
    ce, qa, qb = f"{ns}-ce", f"{ns}-a", f"{ns}-b"
    stack.apply(
        [
            make_ce(ce, max_vcpus=2, instance_types=("m5.large",)),
            make_queue(qa, [ce]),
            make_queue(qb, [ce]),
        ]
    )
    stack.apply([make_definition("long", duration=120, cpu="1", memory="512Mi")], ns)
    jobs = [make_job(f"a{i}", qa, "long") for i in range(5)]
    labelled = [make_job(f"b{i}", qb, "long") for i in range(2)]
    for j in labelled:
        j["metadata"]["labels"] = {"team": "x"}
    stack.apply([*jobs, *labelled], ns)

    def settled() -> bool:
        phases = [phase(stack, ns, f"a{i}") for i in range(5)]
        return (
            phases.count("Running") + phases.count("Starting") >= 1
            and phases.count("Runnable") >= 2
        )

    stack.wait("some of queue a running, some waiting", settled, timeout=60)
    waiting = [f"a{i}" for i in range(5) if phase(stack, ns, f"a{i}") == "Runnable"]
    out, _ = run(
        stack,
        "-n",
        ns,
        "terminate",
        "-q",
        qa,
        "--phase",
        "Runnable",
        "--reason",
        "freeze",
        "--dry-run",
    )
    assert sorted(line.split("/")[1].split()[0] for line in out.splitlines()) == sorted(waiting)
    assert all(phase(stack, ns, n) == "Runnable" for n in waiting)  # a dry run changes nothing

    out, _ = run(
        stack, "-n", ns, "terminate", "-q", qa, "--phase", "Runnable", "--reason", "freeze"
    )
    assert out.count("terminated") == len(waiting)
    for name in waiting:
        bj = stack.wait_phase(ns, name, ("Failed",), timeout=60)
        assert bj["status"]["reason"] == "Terminated"
        assert "freeze" in bj["status"]["message"]
    survivors = [f"a{i}" for i in range(5) if f"a{i}" not in waiting]
    assert all(phase(stack, ns, n) not in ("Failed",) for n in survivors)

    run(stack, "-n", ns, "terminate", "-l", "team=x", "--reason", "by label")
    for j in labelled:
        assert stack.wait_phase(ns, j["metadata"]["name"], ("Failed",), timeout=60)
    _, err = run(stack, "-n", ns, "terminate", "nope", "--reason", "x", code=1)
    assert "nope" in err
    _, err = run(stack, "-n", ns, "terminate", "--reason", "x", code=1)
    assert "say which jobs" in err
    run(stack, "-n", ns, "terminate", "--all", "--reason", "clean up")
    for name in survivors:
        stack.wait_phase(ns, name, ("Failed",), timeout=60)


def test_timeline_and_top_show_what_happened(stack: Stack, namespace: str, tmp_path: Path) -> None:
    ns = namespace
    od, spot, q = f"{ns}-od", f"{ns}-spot", f"{ns}-q"
    stack.apply(
        [
            make_ce(od, max_vcpus=8),
            make_ce(spot, capacity_type="Spot", max_vcpus=8, bid_percentage=100),
            make_queue(q, [spot, od]),
        ]
    )
    stack.apply(
        [
            make_definition("ok", duration=2, cpu="500m", memory="512Mi"),
            make_definition(
                "flaky", duration=1, cpu="500m", memory="512Mi", exit_code=1, retry={"attempts": 2}
            ),
            make_definition("long", duration=15, cpu="1", memory="512Mi"),
            make_job("one", q, "ok"),
            make_job("flaky", q, "flaky"),
            make_job("arr", q, "ok", arrayProperties={"size": 4, "parallelism": 2}),
            make_job("spotty", q, "long"),
        ],
        ns,
    )

    def spotty_running() -> bool:
        st = (stack.get("batchjob", "spotty", ns) or {}).get("status") or {}
        return st.get("phase") == "Running" and st.get("computeEnvironment") == spot

    stack.wait("spotty running on spot", spotty_running, timeout=60)
    top, _ = run(stack, "top", "-o", "json")
    view = json.loads(top)
    mine = next(r for r in view["queues"] if r["name"] == q)
    assert mine["running"] + mine["starting"] >= 1
    assert mine["admissionsPerMinute"] > 0
    ce_row = next(r for r in view["computeEnvironments"] if r["name"] == spot)
    assert ce_row["allocatedvCpus"] >= 1
    assert ce_row["dollarsPerHour"] > 0
    text, _ = run(stack, "top")
    assert q in text
    assert spot in text

    stack.reclaim(spot, 1.0)
    for name in ("one", "flaky", "arr", "spotty"):
        stack.wait_phase(ns, name, timeout=120)
    svg, page = tmp_path / "t.svg", tmp_path / "t.html"
    out, err = run(
        stack, "-n", ns, "timeline", "--svg", str(svg), "--html", str(page), "-o", "json"
    )
    assert f"wrote {svg}" in err
    lanes = {x["label"]: x for x in json.loads(out)["lanes"]}
    assert set(lanes) == {"one", "flaky", "arr", "spotty"}
    assert lanes["flaky"]["retries"] == 1
    assert lanes["flaky"]["phase"] == "Failed"
    assert lanes["spotty"]["interruptions"] >= 1
    outcomes = [s.get("outcome") for s in lanes["spotty"]["segments"] if s.get("outcome")]
    assert outcomes[0] == "Interrupted"
    assert outcomes[-1] == "Succeeded"
    assert {s.get("capacityType") for s in lanes["spotty"]["segments"]} >= {"Spot"}
    assert [c["label"] for c in lanes["arr"]["children"]] == [f"arr[{i}]" for i in range(4)]
    assert all(c["phase"] == "Succeeded" for c in lanes["arr"]["children"])
    root = ET.fromstring(svg.read_text())
    keys = {g.get("data-key") for g in root.iter() if g.get("class") == "lane"}
    assert {f"{ns}/one", f"{ns}/arr:3", f"{ns}/spotty"} <= keys
    assert page.read_text().startswith("<!doctype html>")
    text, _ = run(stack, "-n", ns, "timeline", "--width", "100")
    assert "↯" in next(line for line in text.splitlines() if line.startswith("spotty"))
    only, _ = run(stack, "-n", ns, "timeline", "flaky", "-o", "yaml")
    assert [x["label"] for x in yaml.safe_load(only)["lanes"]] == ["flaky"]
