"""Raw objects as the API server returns them, for the insight tests (times as offsets from T)."""

from __future__ import annotations

from typing import Any

from kubatch.api.records import COLUMNS
from kubatch.timefmt import rfc3339

T = 1_800_000_000.0
Obj = dict[str, Any]


def ts(offset: float) -> str:
    return rfc3339(T + offset)


def batchjob(
    name: str,
    created: float = 0,
    phase: str | None = "Runnable",
    *,
    queue: str = "q",
    definition: str = "d",
    attempts: list[Obj] | None = None,
    array: int | None = None,
    stopped: float | None = None,
    reason: str | None = None,
    namespace: str = "ns",
    **status: Any,
) -> Obj:
    st: Obj = {"createdAt": ts(created), "attempts": attempts or [], **status}
    if phase:
        st["phase"] = phase
    if stopped is not None:
        st["stoppedAt"] = ts(stopped)
    if reason:
        st["reason"] = reason
    spec: Obj = {"jobQueue": queue, "jobDefinition": definition}
    if array:
        spec["arrayProperties"] = {"size": array}
    return {
        "apiVersion": "kubatch.io/v1alpha1",
        "kind": "BatchJob",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": f"{name}-uid",
            "creationTimestamp": ts(created),
        },
        "spec": spec,
        "status": st,
    }


def attempt(
    n: int,
    started: float,
    stopped: float | None,
    *,
    ce: str = "ce",
    capacity_type: str = "OnDemand",
    exit_code: int | None = 0,
    interrupted: bool = False,
    job_name: str | None = None,
    pod_name: str | None = None,
) -> Obj:
    out: Obj = {
        "number": n,
        "startedAt": ts(started),
        "computeEnvironment": ce,
        "capacityType": capacity_type,
        "interrupted": interrupted,
        "nodeName": f"node-{n}",
    }
    if stopped is not None:
        out["stoppedAt"] = ts(stopped)
        out["exitCode"] = exit_code
    if job_name:
        out["jobName"] = job_name
    if pod_name:
        out["podName"] = pod_name
    return out


def k8s_job(
    owner: str,
    attempt_no: int,
    created: float,
    *,
    index: int | None = None,
    ce: str = "ce",
    capacity: str = "on-demand",
    queue: str = "q",
    ended: float | None = None,
    name: str | None = None,
) -> Obj:
    labels = {
        "kubatch.io/batchjob-uid": f"{owner}-uid",
        "kubatch.io/batchjob": owner,
        "kubatch.io/attempt": str(attempt_no),
        "kubatch.io/compute-environment": ce,
        "kubatch.io/capacity-type": capacity,
        "kubatch.io/queue": queue,
        "app.kubernetes.io/managed-by": "kubatch",
    }
    if index is not None:
        labels["kubatch.io/array-index"] = str(index)
    st: Obj = {}
    if ended is not None:
        st = {"completionTime": ts(ended)}
    return {
        "metadata": {
            "name": name or f"{owner}-{index}-{attempt_no}",
            "namespace": "ns",
            "creationTimestamp": ts(created),
            "labels": labels,
        },
        "status": st,
    }


def pod(
    owner: str,
    attempt_no: int,
    started: float | None,
    finished: float | None = None,
    *,
    index: int | None = None,
    exit_code: int = 0,
    reason: str | None = None,
    job_name: str | None = None,
    name: str | None = None,
    created: float = 0,
) -> Obj:
    labels = {
        "kubatch.io/batchjob-uid": f"{owner}-uid",
        "kubatch.io/attempt": str(attempt_no),
        "job-name": job_name or f"{owner}-{index}-{attempt_no}",
    }
    if index is not None:
        labels["kubatch.io/array-index"] = str(index)
    if started is None:
        state: Obj = {"waiting": {"reason": "ContainerCreating"}}
        phase = "Pending"
    elif finished is None:
        state = {"running": {"startedAt": ts(started)}}
        phase = "Running"
    else:
        state = {
            "terminated": {
                "startedAt": ts(started),
                "finishedAt": ts(finished),
                "exitCode": exit_code,
            }
        }
        phase = "Succeeded" if exit_code == 0 else "Failed"
    st: Obj = {"phase": phase, "containerStatuses": [{"name": "main", "state": state}]}
    if reason:
        st["reason"] = reason
        st["phase"] = "Failed"
    return {
        "metadata": {
            "name": name or f"pod-{owner}-{index}-{attempt_no}",
            "namespace": "ns",
            "labels": labels,
            "creationTimestamp": ts(created),
        },
        "spec": {"nodeName": "n1", "containers": [{"name": "main"}, {"name": "side"}]},
        "status": st,
    }


def record(owner: str, rows: list[tuple[int, str, int, int, int]]) -> Obj:
    """A child-record ConfigMap: rows of (index, phase, attempts, failures, interruptions)."""
    header = "\t".join(COLUMNS)
    lines = [header] + [f"{i}\t{p}\t{a}\t{f}\t{x}\t0\t\tn1\tce\t" for i, p, a, f, x in rows]
    return {
        "metadata": {
            "name": f"{owner}-children-0",
            "namespace": "ns",
            "labels": {"kubatch.io/array-record": "", "kubatch.io/batchjob": owner},
            "ownerReferences": [{"kind": "BatchJob", "uid": f"{owner}-uid"}],
        },
        "data": {"children.tsv": "\n".join(lines) + "\n"},
    }


def ce(
    name: str,
    *,
    capacity_type: str = "OnDemand",
    max_vcpus: int = 16,
    instance_types: tuple[str, ...] = ("m5.large", "m5.xlarge"),
    state: str = "Enabled",
    allocated: float | None = None,
    kind: str = "Managed",
    bid: int | None = None,
) -> Obj:
    cr: Obj = {
        "capacityType": capacity_type,
        "minvCpus": 0,
        "maxvCpus": max_vcpus,
        "instanceTypes": list(instance_types),
    }
    if bid is not None:
        cr["bidPercentage"] = bid
    out: Obj = {
        "apiVersion": "kubatch.io/v1alpha1",
        "kind": "ComputeEnvironment",
        "metadata": {"name": name},
        "spec": {"type": kind, "state": state, "computeResources": cr},
        "status": {},
    }
    if allocated is not None:
        out["status"]["allocatedvCpus"] = allocated
    return out


def queue(name: str, ces: list[str], *, state: str = "Enabled", **spec: Any) -> Obj:
    return {
        "apiVersion": "kubatch.io/v1alpha1",
        "kind": "JobQueue",
        "metadata": {"name": name},
        "spec": {
            "priority": 1,
            "state": state,
            "computeEnvironmentOrder": [
                {"order": i + 1, "computeEnvironment": c} for i, c in enumerate(ces)
            ],
            **spec,
        },
        "status": {},
    }


def definition(
    name: str = "d", cpu: str = "2", memory: str = "4Gi", timeout: int | None = None, **extra: Any
) -> Obj:
    spec: Obj = {
        "template": {
            "spec": {
                "containers": [
                    {
                        "name": "main",
                        "image": "busybox",
                        "resources": {"requests": {"cpu": cpu, "memory": memory, **extra}},
                    }
                ]
            }
        }
    }
    if timeout:
        spec["timeout"] = {"attemptDurationSeconds": timeout}
    return {
        "apiVersion": "kubatch.io/v1alpha1",
        "kind": "JobDefinition",
        "metadata": {"name": name, "namespace": "ns"},
        "spec": spec,
    }


def node(
    name: str,
    ce_name: str,
    cpu: str,
    memory: str,
    *,
    price: float = 0.0,
    itype: str = "m5.large",
    ready: bool = True,
    capacity: str = "on-demand",
) -> Obj:
    return {
        "metadata": {
            "name": name,
            "labels": {
                "kubatch.io/compute-environment": ce_name,
                "node.kubernetes.io/instance-type": itype,
                "kubatch.io/capacity-type": capacity,
            },
            "annotations": {"kubatch.io/price-per-hour": str(price)},
        },
        "spec": {},
        "status": {
            "allocatable": {"cpu": cpu, "memory": memory, "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }
