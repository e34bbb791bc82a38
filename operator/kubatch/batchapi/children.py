"""Array children ``<jobId>:<index>``: one lookup behind :func:`array_children`.

The parent keeps a bounded ``arrayStatusSummary``; each child's phase, attempts, last exit
code and node are in the array's child records (``kubatch.api.records``: ConfigMaps written by
the operator), which survive the retention of Kubernetes Jobs and pods. The records decide a
child's status; the Kubernetes Jobs of its attempts and their pods, while they exist, add the
per-attempt details AWS shows (pod, start and stop times).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from kubatch.adapters.kube import CONFIGMAPS, JOBS, PODS, Resource
from kubatch.api import labels as L
from kubatch.api.records import DATA_KEY, ChildRow, parse_rows

JsonDict = dict[str, Any]


class Lister(Protocol):
    async def list(
        self, res: Resource, *, namespace: str | None = None, labels: str | None = None
    ) -> list[JsonDict]: ...


@dataclass
class Child:
    index: int
    status: str
    """AWS status (``RUNNABLE``, ``RUNNING``, …)."""
    attempts: list[JsonDict] = field(default_factory=list)
    """``status.attempts``-like dicts (number, podName, nodeName, startedAt, stoppedAt, …)."""
    started_at: str | None = None
    stopped_at: str | None = None
    status_reason: str | None = None


def _terminated(pod: Mapping[str, Any]) -> Mapping[str, Any] | None:
    for cs in (pod.get("status") or {}).get("containerStatuses") or []:
        term = (cs.get("state") or {}).get("terminated")
        if term:
            return term  # type: ignore[no-any-return]
    return None


def _running(pod: Mapping[str, Any]) -> str | None:
    for cs in (pod.get("status") or {}).get("containerStatuses") or []:
        run = (cs.get("state") or {}).get("running")
        if run:
            return str(run.get("startedAt") or "") or None
    return None


def _attempt(job: Mapping[str, Any], pods: Sequence[Mapping[str, Any]]) -> JsonDict:
    """Pure: a ``status.attempts``-like record of one attempt's Job and pods."""
    meta = job.get("metadata") or {}
    labels = meta.get("labels") or {}
    out: JsonDict = {"number": int(labels.get(L.ATTEMPT, "1")), "jobName": meta.get("name")}
    pod = pods[-1] if pods else None
    if pod is not None:
        out["podName"] = (pod.get("metadata") or {}).get("name")
        out["nodeName"] = (pod.get("spec") or {}).get("nodeName")
        term = _terminated(pod)
        if term is not None:
            out["exitCode"] = term.get("exitCode")
            out["reason"] = term.get("reason")
            out["startedAt"] = term.get("startedAt")
            out["stoppedAt"] = term.get("finishedAt")
            if term.get("exitCode"):
                out["statusReason"] = term.get("message") or None
        else:
            out["startedAt"] = _running(pod)
        status = pod.get("status") or {}
        if status.get("reason") in ("Terminated", "NodeShutdown", "Evicted", "NodeLost") or any(
            c.get("type") == "DisruptionTarget" and c.get("status") == "True"
            for c in status.get("conditions") or []
        ):
            out["interrupted"] = True
            out.setdefault("stoppedAt", out.get("startedAt"))
    for c in (job.get("status") or {}).get("conditions") or []:
        if c.get("status") != "True":
            continue
        if c.get("type") == "Complete":
            out.setdefault("exitCode", 0)
            out["stoppedAt"] = out.get("stoppedAt") or (job.get("status") or {}).get(
                "completionTime"
            )
        elif c.get("type") == "Failed":
            if c.get("reason") == "DeadlineExceeded":
                out["reason"] = "DeadlineExceeded"
            out["stoppedAt"] = out.get("stoppedAt") or c.get("lastTransitionTime")
            out.setdefault("exitCode", None)
            out["failed"] = True
    return out


def child_states(
    parent: Mapping[str, Any], jobs: Sequence[Mapping[str, Any]], pods: Sequence[Mapping[str, Any]]
) -> dict[int, Child]:
    """Pure: every child's state from the parent and its attempts' Jobs and pods."""
    spec = parent.get("spec") or {}
    status = parent.get("status") or {}
    uid = (parent.get("metadata") or {}).get("uid")
    size = int((spec.get("arrayProperties") or {}).get("size") or 0)
    phase = status.get("phase")
    terminal = phase in ("Succeeded", "Failed")
    retry = spec.get("retryStrategy") or (status.get("jobDefinition") or {}).get("retryStrategy")
    max_attempts = int((retry or {}).get("attempts") or 1)
    ordered = any(d.get("type") in ("N_TO_N", "SEQUENTIAL") for d in spec.get("dependsOn") or [])
    pods_by_job: dict[str, list[Mapping[str, Any]]] = {}
    for pod in pods:
        owner = ((pod.get("metadata") or {}).get("labels") or {}).get("job-name")
        if owner:
            pods_by_job.setdefault(str(owner), []).append(pod)
    by_index: dict[int, list[JsonDict]] = {}
    for job in jobs:
        labels = (job.get("metadata") or {}).get("labels") or {}
        if uid and labels.get(L.BATCHJOB_UID) not in (None, uid):
            continue
        idx = labels.get(L.ARRAY_INDEX)
        if idx is None or not str(idx).isdigit():
            continue
        name = str((job.get("metadata") or {}).get("name"))
        by_index.setdefault(int(idx), []).append(_attempt(job, pods_by_job.get(name, [])))
    out: dict[int, Child] = {}
    for i in range(size):
        attempts = sorted(by_index.get(i, []), key=lambda a: int(a["number"]))
        out[i] = _state(i, attempts, phase, terminal, max_attempts, ordered)
    return out


def _state(
    index: int,
    attempts: list[JsonDict],
    phase: str | None,
    terminal: bool,
    max_attempts: int,
    ordered: bool,
) -> Child:
    if not attempts:
        if terminal:
            status = "SUCCEEDED" if phase == "Succeeded" else "FAILED"
        elif phase in (None, "Submitted", "Pending") or ordered:
            status = "PENDING"
        else:
            status = "RUNNABLE"
        return Child(index, status)
    last = attempts[-1]
    first_start = next((a.get("startedAt") for a in attempts if a.get("startedAt")), None)
    child = Child(index, "RUNNABLE", attempts, first_start, last.get("stoppedAt"))
    if last.get("exitCode") == 0 and not last.get("failed"):
        child.status = "SUCCEEDED"
    elif last.get("stoppedAt") or last.get("failed") or last.get("exitCode"):
        failures = sum(1 for a in attempts if not a.get("interrupted"))
        child.status = "FAILED" if terminal or failures >= max_attempts else "RUNNABLE"
        child.status_reason = last.get("statusReason") or (
            "Job attempt duration exceeded timeout"
            if last.get("reason") == "DeadlineExceeded"
            else "Essential container in task exited"
        )
    elif last.get("startedAt"):
        child.status = "RUNNING"
    else:
        child.status = "STARTING"
    if child.status not in ("SUCCEEDED", "FAILED"):
        child.stopped_at = None
    return child


AWS_STATUS = {
    "Submitted": "SUBMITTED",
    "Pending": "PENDING",
    "Runnable": "RUNNABLE",
    "Starting": "STARTING",
    "Running": "RUNNING",
    "Succeeded": "SUCCEEDED",
    "Failed": "FAILED",
}


def with_records(children: dict[int, Child], rows: Sequence[ChildRow]) -> dict[int, Child]:
    """Pure: the records decide each child's status (and carry what its Jobs no longer can);
    the attempts read from the Jobs and pods stay as details."""
    for row in rows:
        child = children.get(row.index)
        if child is None:
            continue
        child.status = AWS_STATUS.get(str(row.phase), child.status)
        if not child.attempts and row.attempts:
            last: JsonDict = {"number": row.attempts, "exitCode": row.exit_code}
            if row.node:
                last["nodeName"] = row.node
            if row.reason:
                last["reason"] = row.reason
            if row.message:
                last["statusReason"] = row.message
            child.attempts = [last]
        if child.status == "FAILED" and not child.status_reason:
            child.status_reason = row.message or "Essential container in task exited"
        if child.status not in ("SUCCEEDED", "FAILED"):
            child.stopped_at = None
    return children


async def array_children(
    kube: Lister, namespace: str, parent: Mapping[str, Any]
) -> dict[int, Child]:
    """Every child of an array job: its record, with the attempts' Jobs and pods as details."""
    name = (parent.get("metadata") or {}).get("name")
    selector = f"{L.BATCHJOB}={name}"
    jobs = await kube.list(JOBS, namespace=namespace, labels=selector)
    pods = await kube.list(PODS, namespace=namespace, labels=selector)
    records = await kube.list(CONFIGMAPS, namespace=namespace,
                              labels=f"{L.ARRAY_RECORD},{selector}")  # fmt: skip
    rows = [r for cm in records for r in parse_rows(str((cm.get("data") or {}).get(DATA_KEY, "")))]
    return with_records(child_states(parent, jobs, pods), rows)
