"""Pure conversions and status builders of the controller layer."""

from __future__ import annotations

from typing import Any

import pytest

from kubatch.controller import convert
from kubatch.controller import status as st
from kubatch.core.lifecycle import Phase
from kubatch.core.resources import sum_requests


def pod(phase: str, *, exit_code: int | None = None, reason: str | None = None,
        pod_reason: str | None = None, disrupted: bool = False) -> dict[str, Any]:  # fmt: skip
    status: dict[str, Any] = {"phase": phase, "conditions": []}
    if exit_code is not None:
        status["containerStatuses"] = [
            {"name": "main", "state": {"terminated": {
                "exitCode": exit_code, "reason": reason or "Error",
                "startedAt": "2026-01-01T00:00:00Z", "finishedAt": "2026-01-01T00:00:05Z"}}}
        ]  # fmt: skip
    if pod_reason:
        status["reason"] = pod_reason
        status["message"] = "node sim-1 was reclaimed"
    if disrupted:
        status["conditions"].append({"type": "DisruptionTarget", "status": "True"})
    return {"metadata": {"name": "p"}, "spec": {"nodeName": "sim-1"}, "status": status}


@pytest.mark.parametrize(
    ("body", "exit_code", "reason", "interrupted"),
    [
        pytest.param(pod("Succeeded", exit_code=0, reason="Completed"), 0, "Completed", False,
                     id="succeeded"),
        pytest.param(pod("Failed", exit_code=3), 3, "Error", False, id="exit-3"),
        pytest.param(pod("Failed", exit_code=137, reason="OOMKilled"), 137, "OOMKilled", False,
                     id="oom"),
        pytest.param(pod("Failed", exit_code=143, pod_reason="Terminated", disrupted=True), 143,
                     "Error", True, id="spot-reclaim"),
    ],
)  # fmt: skip
def test_pod_outcome(body: dict[str, Any], exit_code: int, reason: str, interrupted: bool) -> None:
    out = convert.pod_outcome(body)
    assert (out.exit_code, out.reason, out.interrupted) == (exit_code, reason, interrupted)
    assert out.stopped_at is not None
    assert out.started_at is not None
    assert out.stopped_at - out.started_at == 5
    if interrupted:
        assert "sim-1" in (out.status_reason or "")


@pytest.mark.parametrize(
    ("conditions", "expected"),
    [
        pytest.param([], None, id="running"),
        pytest.param([{"type": "Complete", "status": "True"}], True, id="complete"),
        pytest.param([{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}],
                     False, id="failed"),
        pytest.param([{"type": "Failed", "status": "True", "reason": "DeadlineExceeded"}],
                     None, id="deadline-is-not-a-verdict"),
    ],
)  # fmt: skip
def test_job_finished(conditions: list[dict[str, str]], expected: bool | None) -> None:
    job = {"status": {"conditions": conditions}}
    assert convert.job_finished(job) is expected
    deadline = any(c.get("reason") == "DeadlineExceeded" for c in conditions)
    assert convert.job_deadline_exceeded(job) is deadline


def test_attempt_labels_round_trip() -> None:
    body = {"metadata": {"namespace": "ns", "labels": {
        "kubatch.io/batchjob": "a", "kubatch.io/batchjob-uid": "u", "kubatch.io/attempt": "2",
        "kubatch.io/array-index": "7", "kubatch.io/compute-environment": "ce"}}}  # fmt: skip
    lab = convert.attempt_labels(body)
    assert lab is not None
    assert (lab.key, lab.attempt, lab.index, lab.compute_environment) == ("ns/a", 2, 7, "ce")
    assert convert.attempt_labels({"metadata": {"labels": {"app": "x"}}}) is None


@pytest.mark.parametrize(
    ("patch", "written", "expected"),
    [
        # a merge-patch null removes a written field (queuePosition is absent once the job
        # stops waiting, SEMANTICS §4; checked against a 1.20 API server), and is never sent
        # for a field that was not written
        pytest.param({"queuePosition": None}, {"queuePosition": 4}, {"queuePosition": None},
                     id="clears-a-written-position"),
        pytest.param({"queuePosition": None}, {}, {}, id="nothing-to-clear"),
        pytest.param({"message": None, "phase": "Running"}, {"reason": "X"}, {"phase": "Running"},
                     id="no-null-for-unwritten"),
    ],
)  # fmt: skip
def test_without_nulls(
    patch: dict[str, Any], written: dict[str, Any], expected: dict[str, Any]
) -> None:
    out = st.without_nulls(patch, written)
    assert out == expected
    assert all(v is not None or k in written for k, v in out.items())


def test_job_conditions_follow_kstatus() -> None:
    running = st.job_conditions(Phase.RUNNING, "Running", "on node", 3, "t1")
    types = {c["type"]: c["status"] for c in running}
    assert types == {"Ready": "False", "Reconciling": "True"}
    assert all(c["observedGeneration"] == 3 for c in running)
    failed = st.job_conditions(Phase.FAILED, "RetriesExhausted", "exit 1", 3, "t2", running)
    types = {c["type"]: c["status"] for c in failed}
    assert types == {"Ready": "False", "Reconciling": "False", "Stalled": "True"}
    ready = next(c for c in failed if c["type"] == "Ready")
    assert ready["lastTransitionTime"] == "t1", "unchanged status keeps its transition time"


def _pod_template(*resources: Any) -> dict[str, Any]:
    return {"spec": {"containers": [{"name": f"c{i}", **({"resources": r} if r is not None
                                                          else {})}
                                    for i, r in enumerate(resources)]}}  # fmt: skip


@pytest.mark.parametrize(
    "resources",
    [
        ({"requests": {"cpu": "2", "memory": "1Gi"}},),
        ({"limits": {"cpu": "500m", "nvidia.com/gpu": 1}},),  # a request defaults to its limit
        ({"requests": {"cpu": "1"}, "limits": {"cpu": "2", "memory": "2Gi"}}, None),
        ({"requests": {"cpu": "1"}}, {"requests": {"cpu": "250m", "memory": "64Mi"}}),
        (None,),
        ({"requests": ["cpu"]},),  # not a mapping: summed as it is (validation says why)
    ],
    ids=[
        "requests",
        "limits-only",
        "both-and-none",
        "two-containers",
        "no-resources",
        "requests-not-a-mapping",
    ],
)
def test_job_size_remembered_per_requests_is_the_sum_of_requests(resources: Any) -> None:
    template = _pod_template(*resources)
    want = sum_requests(template["spec"]["containers"])
    assert convert.job_size(template) == want
    assert convert.job_size(_pod_template(*resources)) == want, "again: from the memo"
