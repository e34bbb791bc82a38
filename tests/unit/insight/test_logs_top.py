"""insight.logs (which pod holds an attempt's log) and insight.top (queues and CEs now)."""

from __future__ import annotations

import re

import pytest
from tests.unit.insight.factories import (
    T,
    attempt,
    batchjob,
    ce,
    k8s_job,
    node,
    pod,
    queue,
)

from kubatch.api.records import ChildRow
from kubatch.core.catalogue import DEFAULT
from kubatch.core.lifecycle import Phase
from kubatch.core.naming import job_name_for_attempt
from kubatch.insight.logs import choose_pod, container_of, log_target, pod_waiting
from kubatch.insight.objects import InsightError
from kubatch.insight.top import bar, format_top, node_cost_per_ce, top_view


def retried() -> dict[str, object]:
    return batchjob(
        "job",
        0,
        "Succeeded",
        attempts=[
            attempt(1, 1, 5, exit_code=1, job_name="job-aaaa-1", pod_name="job-aaaa-1-x"),
            attempt(2, 6, 9, job_name="job-aaaa-2", pod_name="job-aaaa-2-y"),
        ],
    )


def test_the_last_attempt_by_default_any_attempt_on_request() -> None:
    last = log_target(retried())
    assert (last.attempt, last.attempts, last.k8s_job, last.pod) == (
        2,
        2,
        "job-aaaa-2",
        "job-aaaa-2-y",
    )
    first = log_target(retried(), attempt=1)
    assert first.k8s_job == "job-aaaa-1"
    assert first.pod_selector == "job-name=job-aaaa-1"
    assert first.what == "job attempt 1 of 2"


def test_an_attempt_without_a_recorded_job_name_gets_the_deterministic_one() -> None:
    job = batchjob("job", 0, "Running", attempts=[attempt(1, 1, None)])
    assert log_target(job).k8s_job == job_name_for_attempt("job", "job-uid", None, 1)


def test_array_children_by_index_from_the_record_or_the_jobs() -> None:
    arr = batchjob("arr", 0, "Running", array=5)
    row = ChildRow(3, Phase.RUNNING, 2, 1, 0, None, "", "n1", "ce", "")
    target = log_target(arr, index=3, row=row)
    assert (target.attempt, target.attempts) == (2, 2)
    assert target.k8s_job == job_name_for_attempt("arr", "arr-uid", 3, 2)
    assert target.what == "arr[3] attempt 2 of 2"
    from_jobs = log_target(
        arr, index=4, child_jobs=[k8s_job("arr", 1, 0, index=4), k8s_job("arr", 3, 9, index=4)]
    )
    assert from_jobs.attempt == 3
    assert log_target(arr, index=3, row=row, attempt=1).k8s_job == job_name_for_attempt(
        "arr", "arr-uid", 3, 1
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"job": "plain", "index": 1}, "not an array"),
        ({"job": "arr"}, "say which one"),
        ({"job": "arr", "index": 9}, "outside the array"),
        ({"job": "arr", "index": 1}, "no attempt yet"),
        ({"job": "plain", "attempt": 3}, "no attempt 3"),
        ({"job": "plain", "attempt": 0}, "numbered from 1"),
        ({"job": "waiting"}, "no attempt yet: it is Runnable (InsufficientCapacity)"),
    ],
    ids=[
        "index-of-plain",
        "array-without-index",
        "index-outside",
        "child-not-started",
        "attempt-that-never-was",
        "attempt-zero",
        "job-not-started",
    ],
)
def test_what_cannot_be_shown_is_said(kwargs: dict[str, object], message: str) -> None:
    jobs = {
        "plain": retried(),
        "arr": batchjob("arr", 0, "Running", array=5),
        "waiting": batchjob("w", 0, "Runnable", reason="InsufficientCapacity"),
    }
    job = jobs[str(kwargs.pop("job"))]
    with pytest.raises(InsightError, match=re.escape(message)):
        log_target(job, **kwargs)  # type: ignore[arg-type]


def test_choose_pod_container_and_why_no_log_yet() -> None:
    target = log_target(retried(), attempt=1)
    old = pod("job", 1, 1, 5, job_name="job-aaaa-1", name="p-old", created=1)
    new = pod("job", 1, 2, 5, job_name="job-aaaa-1", name="p-new", created=2)
    other = pod("job", 2, 6, 9, job_name="job-aaaa-2", name="p-other", created=3)
    assert choose_pod([old, other, new], target)["metadata"]["name"] == "p-new"
    with pytest.raises(InsightError, match="is gone"):
        choose_pod([other], target)
    assert container_of(new) == "main"
    assert container_of(new, "side") == "side"
    with pytest.raises(InsightError, match="not in the pod"):
        container_of(new, "nope")
    assert pod_waiting(new) is None
    assert pod_waiting(pod("job", 1, None)) == "ContainerCreating:"


def test_top_view_counts_rates_waits_and_node_costs() -> None:
    q1 = queue("q", ["a"], priority=5)
    q1["status"] = {"jobCounts": {"submitted": 1, "runnable": 3, "running": 2, "succeeded": 7}}
    q2 = queue("other", ["b"], priority=50)
    ces = [ce("a", max_vcpus=8, allocated=6), ce("b", capacity_type="Spot")]
    nodes = [
        node("n1", "a", "4", "16Gi", price=0.2),
        node("n2", "a", "4", "16Gi", price=0.2),
        node("n3", "b", "2", "8Gi", itype="m5.large", capacity="spot"),
    ]
    admitted = [k8s_job("x", 1, t) for t in (200, 250, 290)]
    jobs = [
        batchjob("w1", 100, "Runnable"),
        batchjob("w2", 250, "Runnable"),
        batchjob("done", 0, "Succeeded"),
    ]
    view = top_view(
        [q1, q2], ces, now=T + 300, nodes=nodes, k8s_jobs=admitted, jobs=jobs, window=300
    )
    assert [r["name"] for r in view["queues"]] == ["other", "q"]
    row = view["queues"][1]
    assert (row["waiting"], row["running"], row["succeeded"]) == (4, 2, 7)
    assert row["admissionsPerMinute"] == pytest.approx(3 / 100 * 60)  # since the first one
    assert row["oldestWaitSeconds"] == 200
    a, b = view["computeEnvironments"]
    assert a["dollarsPerHour"] == pytest.approx(0.4)
    assert b["dollarsPerHour"] == pytest.approx(DEFAULT["m5.large"].spot_price)
    text = format_top(view)
    assert "6/8" in text
    assert bar(6, 8) in text
    assert "3m20s" in text


def test_bar_and_node_costs() -> None:
    assert bar(0, 8) == "░" * 10
    assert bar(8, 8) == "█" * 10
    assert bar(3, 0) == "░" * 10
    assert node_cost_per_ce([node("n", "a", "2", "8Gi", price=0.3)]) == {"a": (1, 0.3)}
