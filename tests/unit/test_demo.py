"""The pure half of ``kubatch demo``: expectations, job views, table, summary."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from kubatch.core.lifecycle import Phase, Reason
from kubatch.demo.report import (
    Expectation,
    JobView,
    examples_ended,
    expected_outcomes,
    job_view,
    outcomes,
    phase_counts,
    progress_line,
    render_summary,
    render_table,
    screen_rows,
    summarize,
)
from kubatch.devkit.promtext import parse_metrics

ROOT = Path(__file__).resolve().parents[2]


def definition(name: str, **annotations: str) -> dict[str, Any]:
    return {
        "kind": "JobDefinition",
        "metadata": {"name": name},
        "spec": {"template": {"metadata": {"annotations": annotations}}},
    }


def batchjob(name: str, jd: str, **spec: Any) -> dict[str, Any]:
    return {"kind": "BatchJob", "metadata": {"name": name}, "spec": {"jobDefinition": jd, **spec}}


# --- expectations ---------------------------------------------------------------------------


def test_expectations_of_the_repository_examples() -> None:
    files = sorted((ROOT / "examples").glob("*.yaml"))
    docs = [d for f in files for d in yaml.safe_load_all(f.read_text()) if d]
    exp = expected_outcomes(docs)
    phases = {name: e.phase for name, e in exp.items()}
    assert phases == {
        "transcode-trailer": Phase.SUCCEEDED,
        "render-frames": Phase.SUCCEEDED,
        "encode-frames": Phase.SUCCEEDED,
        "migrate-shards": Phase.SUCCEEDED,
        "research-report": Phase.SUCCEEDED,
        "nightly-import": Phase.FAILED,
        "nightly-import-cleanup": Phase.SUCCEEDED,
        "nightly-summary": Phase.SUCCEEDED,
        "long-sweep": Phase.FAILED,
        "cancelled-sweep": Phase.FAILED,
        "render-frame-42": Phase.SUCCEEDED,
    }
    assert exp["long-sweep"].terminate_when_running
    assert not exp["cancelled-sweep"].terminate_when_running
    assert exp["cancelled-sweep"].reasons == (Reason.TERMINATED,)
    assert Reason.RETRIES_EXHAUSTED in exp["nightly-import"].reasons


@pytest.mark.parametrize(
    ("condition", "upstream_fails", "phase"),
    [
        pytest.param("Succeeded", True, Phase.FAILED, id="afterok-on-failure"),
        pytest.param(None, False, Phase.SUCCEEDED, id="default-afterok-on-success"),
        pytest.param("Failed", True, Phase.SUCCEEDED, id="afternotok-on-failure"),
        pytest.param("Failed", False, Phase.FAILED, id="afternotok-on-success"),
        pytest.param("Completed", True, Phase.SUCCEEDED, id="afterany"),
    ],
)
def test_dependency_conditions(condition: str | None, upstream_fails: bool, phase: Phase) -> None:
    dep: dict[str, Any] = {"jobName": "up"}
    if condition:
        dep["condition"] = condition
    docs = [
        definition("bad", **{"sim.kubatch.io/exit-code": "3"}),
        definition("ok"),
        batchjob("down", "ok", dependsOn=[dep]),  # listed first: resolved in a later pass
        batchjob("up", "bad" if upstream_fails else "ok"),
    ]
    exp = expected_outcomes(docs)
    assert exp["down"].phase is phase
    if phase is Phase.FAILED:
        assert exp["down"].reasons == (Reason.DEPENDENCY_FAILED,)


def test_dependency_cycle_is_expected_to_fail() -> None:
    docs = [
        definition("ok"),
        batchjob("a", "ok", dependsOn=[{"jobName": "b"}]),
        batchjob("b", "ok", dependsOn=[{"jobName": "a"}]),
    ]
    exp = expected_outcomes(docs)
    assert exp["a"].reasons == exp["b"].reasons == (Reason.DEPENDENCY_CYCLE,)


def test_oom_and_failing_array_index() -> None:
    docs = [
        definition("oom", **{"sim.kubatch.io/oom": "true"}),
        definition("some", **{"sim.kubatch.io/exit-code-by-index": "3=1"}),
        batchjob("o", "oom"),
        batchjob("s", "some", arrayProperties={"size": 4}),
    ]
    exp = expected_outcomes(docs)
    assert exp["o"].phase is Phase.FAILED
    assert exp["s"].reasons == (Reason.ARRAY_CHILD_FAILED,)


# --- views and numbers ----------------------------------------------------------------------


def test_job_view_reads_status() -> None:
    obj = {
        "metadata": {"name": "frames", "creationTimestamp": "1970-01-01T00:00:00Z"},
        "spec": {"jobQueue": "q", "arrayProperties": {"size": 5}},
        "status": {
            "phase": "Running",
            "createdAt": "1970-01-01T00:00:10Z",
            "startedAt": "1970-01-01T00:00:13Z",
            "arrayStatusSummary": {"succeeded": 2, "failed": 1, "running": 2},
            "attempts": [{"interrupted": True}, {"exitCode": 0}],
        },
    }
    v = job_view(obj)
    assert (v.name, v.queue, v.phase) == ("frames", "q", Phase.RUNNING)
    assert v.wait_seconds == 3.0
    assert v.run_seconds is None
    assert (v.array_size, v.children_done, v.attempts, v.interrupted) == (5, 3, 2, 1)


def test_examples_end_only_when_every_expected_job_is_known_and_ended() -> None:
    def job(name: str, phase: str) -> dict[str, Any]:
        return {"metadata": {"name": name}, "spec": {"jobQueue": "q"}, "status": {"phase": phase}}

    expected = {"a": Expectation(Phase.SUCCEEDED), "b": Expectation(Phase.FAILED)}
    assert not examples_ended({}, expected)  # the watch has not delivered anything yet
    assert not examples_ended({"a": job("a", "Succeeded")}, expected)
    assert not examples_ended({"a": job("a", "Succeeded"), "b": job("b", "Running")}, expected)
    assert examples_ended({"a": job("a", "Succeeded"), "b": job("b", "Failed")}, expected)


def test_job_view_without_status_is_submitted_and_uses_creation_time() -> None:
    v = job_view(
        {
            "metadata": {"name": "x", "creationTimestamp": "1970-01-01T00:00:05Z"},
            "spec": {"jobQueue": "q"},
        }
    )
    assert v.phase is Phase.SUBMITTED
    assert v.created == 5.0


def jv(name: str, queue: str, phase: Phase, **kw: Any) -> JobView:
    return JobView(name=name, queue=queue, phase=phase, **kw)


JOBS = [
    jv("a", "high", Phase.SUCCEEDED, created=100.0, started=102.0, stopped=110.0),
    jv("b", "high", Phase.RUNNING, created=100.0, started=104.0),
    jv(
        "c",
        "low",
        Phase.FAILED,
        created=101.0,
        started=101.0,
        stopped=125.0,
        reason="Terminated",
        interrupted=1,
    ),
    jv("d", "low", Phase.RUNNING, created=103.0, array_size=20, children_done=7),
]


def test_phase_counts_per_queue() -> None:
    counts = phase_counts(JOBS)
    assert list(counts) == ["high", "low"]
    assert counts["high"][Phase.SUCCEEDED] == 1
    assert counts["high"][Phase.RUNNING] == 1
    assert counts["low"][Phase.FAILED] == 1
    assert sum(counts["low"].values()) == 2
    assert set(counts["low"]) == set(Phase)


def test_render_table_plain() -> None:
    lines = render_table(JOBS, 12.3)
    assert lines[0].split()[:3] == ["QUEUE", "SUBMIT", "PEND"]
    high = next(line for line in lines if line.startswith("high"))
    low = next(line for line in lines if line.startswith("low"))
    assert high.split()[1:8] == ["0", "0", "0", "0", "1", "1", "0"]
    assert low.endswith("7/20")
    assert high.endswith("-")
    assert lines[-1] == "2/4 jobs finished after 12s"
    assert not any("\x1b[" in line for line in lines)


def test_render_table_colors_only_when_asked() -> None:
    assert any("\x1b[" in line for line in render_table(JOBS, 1.0, color=True))


def test_progress_line() -> None:
    assert progress_line(JOBS, 3.0) == "[    3s] 4 jobs: Running=2 Succeeded=1 Failed=1"


METRICS = """\
# HELP kubatch_estimated_cost_dollars_total estimated spend
# TYPE kubatch_estimated_cost_dollars_total counter
kubatch_estimated_cost_dollars_total{capacity_type="Spot",queue="high"} 0.25
kubatch_estimated_cost_dollars_total{capacity_type="OnDemand",queue="high"} 0.5
kubatch_estimated_cost_dollars_total{capacity_type="Spot",queue="low"} 0.125
# HELP kubatch_job_retries_total retries
# TYPE kubatch_job_retries_total counter
kubatch_job_retries_total{queue="high"} 2.0
kubatch_job_retries_total{queue="low"} 1.0
# HELP kubatch_job_interruptions_total interruptions
# TYPE kubatch_job_interruptions_total counter
kubatch_job_interruptions_total{capacity_type="Spot",queue="low"} 4.0
"""


def test_summary_numbers_and_verdict() -> None:
    expected = {
        "a": Expectation(Phase.SUCCEEDED),
        "c": Expectation(Phase.FAILED, (Reason.TERMINATED,)),
    }
    stats = {
        "reclaims": 2,
        "reclaims_by_compute_environment": {"spot": 2},
        "pods_disrupted": 3,
        "cost_by_compute_environment": {"spot": 0.01, "od": 0.02},
    }
    s = summarize(JOBS, parse_metrics(METRICS), stats, expected)
    assert s.makespan == 25.0  # created 100 -> last stopped 125
    assert s.wait_p50 == 2.0  # waits 2, 4, 0
    assert s.wait_max == 4.0
    assert s.run_p50 == 8.0  # runs 8, 24: nearest rank, never a value between them
    assert s.run_max == 24.0
    assert s.cost_by_queue == {"high": 0.75, "low": 0.125}
    assert s.cost_by_ce == {"od": 0.02, "spot": 0.01}
    assert s.retries == 3.0
    assert s.interruptions == 4.0
    assert s.interrupted_jobs == ["c"]
    assert (s.reclaims, s.pods_disrupted) == (2, 3)
    assert s.ok
    text = "\n".join(render_summary(s))
    for needle in (
        "high",
        "low",
        "Makespan          25.0s",
        "$0.7500",
        "2/2 example jobs",
        "Spot reclaims     2 node(s) (spot: 2)",
        "Retries           3",
    ):
        assert needle in text, needle


def test_summary_fails_on_mismatch_or_missing_job() -> None:
    expected = {
        "b": Expectation(Phase.SUCCEEDED),  # still running
        "zz": Expectation(Phase.SUCCEEDED),  # never created
        "c": Expectation(Phase.FAILED, (Reason.RETRIES_EXHAUSTED,)),  # phase ok, reason differs
    }
    s = summarize(JOBS, {}, {}, expected)
    by_name = {o.name: o for o in s.outcomes}
    assert not by_name["b"].ok
    assert by_name["zz"].phase is None
    assert by_name["c"].ok
    assert not by_name["c"].reason_ok
    assert not s.ok
    text = "\n".join(render_summary(s))
    assert "MISMATCH" in text
    assert "missing" in text
    assert "1/3 example jobs" in text
    assert "(no cost recorded)" in text


def test_outcomes_with_no_expectations_is_not_ok() -> None:
    assert outcomes(JOBS, {}) == []
    assert not summarize(JOBS, {}, {}, {}).ok


@pytest.mark.parametrize(
    ("line", "columns", "rows"),
    [
        pytest.param("", 80, 1, id="empty"),
        pytest.param("x" * 80, 80, 1, id="exact"),
        pytest.param("x" * 81, 80, 2, id="wraps"),
        pytest.param("\x1b[32m" + "x" * 80 + "\x1b[0m", 80, 1, id="ansi-takes-no-room"),
    ],
)
def test_screen_rows(line: str, columns: int, rows: int) -> None:
    assert screen_rows(line, columns) == rows
