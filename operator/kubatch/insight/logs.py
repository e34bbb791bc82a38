"""Which pod holds the log of an attempt (or of an array child's attempt). Pure.

An attempt runs as one Kubernetes Job whose name is deterministic
(``kubatch.core.naming.job_name_for_attempt``: the BatchJob's name and uid, the child's index,
the attempt number); the Job controller labels its pod ``job-name=<that name>``. So the pod of
any attempt — the last one by default, or an earlier one after retries — is found without
searching, for plain jobs (whose status also records each attempt's Job and pod) and for
array children (whose attempts the parent's status does not list: their count is in the
child's record row, or in the attempt labels of their Jobs).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kubatch.api import labels as L
from kubatch.api.records import ChildRow
from kubatch.core.naming import job_name_for_attempt
from kubatch.insight.objects import InsightError, created_at, labels_of, phase_of, status_of

JOB_NAME_LABEL = "job-name"
"""The label the Job controller puts on a Job's pods."""


@dataclass(frozen=True, slots=True)
class LogTarget:
    """The Kubernetes Job (and, when the status knows it, the pod) of one attempt."""

    namespace: str
    batchjob: str
    index: int | None
    attempt: int
    attempts: int  # how many attempts there are so far
    k8s_job: str
    pod: str | None = None

    @property
    def what(self) -> str:
        child = f"[{self.index}]" if self.index is not None else ""
        return f"{self.batchjob}{child} attempt {self.attempt} of {self.attempts}"

    @property
    def pod_selector(self) -> str:
        return f"{JOB_NAME_LABEL}={self.k8s_job}"


def child_attempts(k8s_jobs: Iterable[Mapping[str, Any]], index: int) -> int:
    """Pure: the highest attempt number among the Jobs labelled with child ``index``."""
    best = 0
    for job in k8s_jobs:
        labels = labels_of(job)
        if labels.get(L.ARRAY_INDEX) == str(index) and str(labels.get(L.ATTEMPT, "")).isdigit():
            best = max(best, int(labels[L.ATTEMPT]))
    return best


def log_target(
    job: Mapping[str, Any],
    *,
    attempt: int | None = None,
    index: int | None = None,
    row: ChildRow | None = None,
    child_jobs: Sequence[Mapping[str, Any]] = (),
) -> LogTarget:
    """Pure: the attempt whose log to show (the last one unless ``attempt`` says which).

    ``row`` (the child's record) or ``child_jobs`` (the Kubernetes Jobs of the child) tell how
    many attempts an array child had. Raises :class:`InsightError` with what is wrong: an
    index for a plain job, none for an array, an index outside it, an attempt that never was.
    """
    meta, spec, st = job.get("metadata") or {}, job.get("spec") or {}, status_of(job)
    name, ns, uid = (
        str(meta.get("name", "")),
        str(meta.get("namespace", "")),
        str(meta.get("uid", "")),
    )
    size = (spec.get("arrayProperties") or {}).get("size")
    if attempt is not None and attempt < 1:
        raise InsightError(f"--attempt {attempt}: attempts are numbered from 1")
    if size is None:
        if index is not None:
            raise InsightError(f"{name} is not an array job: it has no child {index}")
        entries = [a for a in st.get("attempts") or [] if isinstance(a, Mapping)]
        if not entries:
            phase = phase_of(job)
            why = f" ({st['reason']})" if st.get("reason") else ""
            raise InsightError(f"{name} has no attempt yet: it is {phase.value}{why}")
        by_number = {int(a.get("number") or i + 1): a for i, a in enumerate(entries)}
        n = attempt if attempt is not None else max(by_number)
        if n not in by_number:
            raise InsightError(f"{name} has {len(by_number)} attempt(s); there is no attempt {n}")
        entry = by_number[n]
        k8s = str(entry.get("jobName") or job_name_for_attempt(name, uid, None, n))
        pod = entry.get("podName")
        return LogTarget(ns, name, None, n, max(by_number), k8s, str(pod) if pod else None)
    if index is None:
        raise InsightError(
            f"{name} is an array job of {size} children: say which one with --index I (or {name}:I)"
        )
    if not 0 <= index < int(size):
        raise InsightError(f"index {index} is outside the array {name} (size {size})")
    known = max(row.attempts if row is not None else 0, child_attempts(child_jobs, index))
    if known == 0:
        state = row.phase.value if row is not None else "waiting"
        raise InsightError(f"{name}[{index}] has no attempt yet ({state})")
    n = attempt if attempt is not None else known
    if n > known:
        raise InsightError(f"{name}[{index}] has {known} attempt(s); there is no attempt {n}")
    return LogTarget(ns, name, index, n, known, job_name_for_attempt(name, uid, index, n))


def choose_pod(pods: Iterable[Mapping[str, Any]], target: LogTarget) -> Mapping[str, Any]:
    """Pure: the pod of the target's Job (the newest, should the Job have made several);
    raises :class:`InsightError` when there is none any more."""
    mine = [
        p
        for p in pods
        if labels_of(p).get(JOB_NAME_LABEL) == target.k8s_job
        or (target.pod and (p.get("metadata") or {}).get("name") == target.pod)
    ]
    if not mine:
        raise InsightError(
            f"the pod of {target.what} (Job {target.k8s_job}) is gone: "
            "Kubernetes removed it, or the attempt never got one"
        )
    return max(
        mine, key=lambda p: (created_at(p) or 0.0, str((p.get("metadata") or {}).get("name")))
    )


def container_of(pod: Mapping[str, Any], wanted: str | None = None) -> str:
    """Pure: the container to read (``wanted``, else the pod's only or first container)."""
    names = [str(c.get("name")) for c in (pod.get("spec") or {}).get("containers") or []]
    if wanted is not None:
        if wanted not in names:
            raise InsightError(
                f"container {wanted!r} is not in the pod (it has {', '.join(names) or 'none'})"
            )
        return wanted
    if not names:
        raise InsightError("the pod has no containers")
    return names[0]


def pod_waiting(pod: Mapping[str, Any]) -> str | None:
    """Pure: why the pod's containers have no log yet (Pending and not running), or None."""
    st = status_of(pod)
    if st.get("phase") not in (None, "Pending"):
        return None
    for cs in st.get("containerStatuses") or []:
        waiting = (cs.get("state") or {}).get("waiting")
        if waiting:
            return f"{waiting.get('reason') or 'waiting'}: {waiting.get('message') or ''}".strip()
    for c in st.get("conditions") or []:
        if c.get("type") == "PodScheduled" and c.get("status") == "False":
            return f"not scheduled: {c.get('message') or c.get('reason') or ''}".strip()
    return "the pod has not started yet"
