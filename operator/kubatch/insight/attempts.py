"""One attempt of a job or array child, read from what records it. Pure.

Three sources, each optional, merged with the status winning: the BatchJob's
``status.attempts[]`` entry (plain jobs only), the attempt's Kubernetes Job (when it was
admitted; its compute environment and capacity type from its labels; when it ended) and its
pod (when the container ran, how it ended, whether its node took it away). Used by
:mod:`kubatch.insight.timeline`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kubatch.api import labels as L
from kubatch.insight.objects import created_at, labels_of, status_of
from kubatch.timefmt import parse_time

INTERRUPTION_REASONS = frozenset(
    {"Terminated", "NodeShutdown", "Shutdown", "Evicted", "NodeLost", "DeletionByTaintManager"}
)
"""``status.reason`` of a pod its node took away (as the operator reads it)."""


@dataclass(slots=True)
class Attempt:
    number: int
    admitted: float | None = None
    started: float | None = None
    stopped: float | None = None
    ce: str = ""
    capacity_type: str = ""
    node: str = ""
    exit_code: int | None = None
    reason: str = ""
    interrupted: bool | None = None
    ended: bool = False


def capacity_type_of(label_value: object) -> str:
    """Pure: a node/pod capacity-type label (``spot``/``on-demand``) as the API says it."""
    text = str(label_value or "").lower()
    if text == L.SPOT:
        return "Spot"
    return "OnDemand" if text in (L.ON_DEMAND, "ondemand") else ""


def as_int(value: object) -> int | None:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return None


def _job_ended_at(job: Mapping[str, Any]) -> float | None:
    st = status_of(job)
    done = parse_time(st.get("completionTime"))
    if done is not None:
        return done
    for c in st.get("conditions") or []:
        if c.get("status") == "True" and c.get("type") in ("Complete", "Failed"):
            return parse_time(c.get("lastTransitionTime")) or parse_time(c.get("lastProbeTime"))
    return None


def _from_job(a: Attempt, job: Mapping[str, Any]) -> None:
    labels = labels_of(job)
    a.admitted = a.admitted or created_at(job)
    a.ce = a.ce or str(labels.get(L.COMPUTE_ENVIRONMENT, ""))
    a.capacity_type = a.capacity_type or capacity_type_of(labels.get(L.CAPACITY_TYPE))
    ended = _job_ended_at(job)
    if ended is not None:
        a.ended = True
        a.stopped = a.stopped or ended


def _from_pod(a: Attempt, pod: Mapping[str, Any]) -> None:
    st = status_of(pod)
    labels = labels_of(pod)
    a.ce = a.ce or str(labels.get(L.COMPUTE_ENVIRONMENT, ""))
    a.capacity_type = a.capacity_type or capacity_type_of(labels.get(L.CAPACITY_TYPE))
    a.node = a.node or str((pod.get("spec") or {}).get("nodeName") or "")
    for cs in st.get("containerStatuses") or []:
        state = cs.get("state") or {}
        running, term = state.get("running"), state.get("terminated")
        if running and a.started is None:
            a.started = parse_time(running.get("startedAt"))
        if term:
            a.started = a.started or parse_time(term.get("startedAt"))
            a.stopped = a.stopped or parse_time(term.get("finishedAt"))
            if a.exit_code is None and term.get("exitCode") is not None:
                a.exit_code = as_int(term.get("exitCode"))
                a.reason = a.reason or str(term.get("reason") or "")
            a.ended = True
    disrupted = any(
        c.get("type") == "DisruptionTarget" and c.get("status") == "True"
        for c in st.get("conditions") or []
    )
    if disrupted or st.get("reason") in INTERRUPTION_REASONS:
        a.interrupted = True
        a.ended = True
        a.reason = a.reason or str(st.get("reason") or "Interrupted")
    elif st.get("phase") in ("Succeeded", "Failed"):
        a.ended = True
        if a.interrupted is None:
            a.interrupted = False


def _from_status(a: Attempt, entry: Mapping[str, Any]) -> None:
    a.started = parse_time(entry.get("startedAt")) or a.started
    a.stopped = parse_time(entry.get("stoppedAt")) or a.stopped
    a.ce = str(entry.get("computeEnvironment") or a.ce)
    a.capacity_type = str(entry.get("capacityType") or a.capacity_type)
    a.node = str(entry.get("nodeName") or a.node)
    if entry.get("exitCode") is not None:
        a.exit_code = as_int(entry.get("exitCode"))
    a.reason = str(entry.get("reason") or a.reason)
    if entry.get("interrupted"):
        a.interrupted = True
    if a.stopped is not None:
        a.ended = True
        if a.interrupted is None:
            a.interrupted = bool(entry.get("interrupted"))


def attempt_key(obj: Mapping[str, Any]) -> tuple[int | None, int] | None:
    """Pure: ``(array index or None, attempt number)`` of a kubatch-made Job or pod."""
    labels = labels_of(obj)
    attempt = as_int(labels.get(L.ATTEMPT))
    if attempt is None:
        return None
    index = labels.get(L.ARRAY_INDEX)
    return (as_int(index) if index is not None else None, attempt)


def collect(
    entries: Sequence[Mapping[str, Any]],
    jobs: Iterable[Mapping[str, Any]],
    pods: Iterable[Mapping[str, Any]],
    index: int | None,
) -> list[Attempt]:
    by_number: dict[int, Attempt] = {}

    def get(n: int) -> Attempt:
        return by_number.setdefault(n, Attempt(n))

    for job in jobs:
        key = attempt_key(job)
        if key is not None and key[0] == index:
            _from_job(get(key[1]), job)
    for pod in pods:
        key = attempt_key(pod)
        if key is not None and key[0] == index:
            _from_pod(get(key[1]), pod)
    for i, entry in enumerate(entries):
        n = as_int(entry.get("number")) or i + 1
        _from_status(get(n), entry)
    return [by_number[n] for n in sorted(by_number)]
