"""What must hold after a fault, checked from the cluster's objects — pure.

Inputs are what the API server lists (BatchJobs, kubatch's Jobs and pods of the namespace)
and the wave's plans with their expected outcomes (:mod:`.workload`); nothing comes from the
operator's memory. Each check returns the offending names, so a failure says what broke.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kubatch.api import labels as L
from kubatch.devkit.chaos.workload import Outcome, Plan, failures_given

JsonDict = dict[str, Any]
TERMINAL = ("Succeeded", "Failed")


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


def _labels(obj: Mapping[str, Any]) -> Mapping[str, str]:
    return _meta(obj).get("labels") or {}


def _status(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("status") or {}


def started(pod: Mapping[str, Any]) -> bool:
    """Pure: did a container of this pod start (it ran, however briefly)?"""
    for cs in _status(pod).get("containerStatuses") or []:
        state = cs.get("state") or {}
        if "running" in state or (state.get("terminated") or {}).get("startedAt"):
            return True
    return False


@dataclass
class Findings:
    """The result of the checks for one wave (every list empty: all invariants hold)."""

    jobs: int = 0
    children: int = 0
    lost: list[str] = field(default_factory=list)
    """BatchJobs gone or not finished."""
    wrong_phase: list[str] = field(default_factory=list)
    duplicate_attempts: list[str] = field(default_factory=list)
    """Attempts with two Kubernetes Jobs, or whose Job ran two pods."""
    orphans: list[str] = field(default_factory=list)
    """Jobs without their BatchJob, pods without their Job, work still running for a
    finished job."""
    untracked: list[str] = field(default_factory=list)
    """Jobs of an attempt the BatchJob's status does not record."""
    retries_used: list[str] = field(default_factory=list)
    """Jobs whose counted failures differ from their spec's: an interruption used a retry
    (or a failure was not counted)."""
    interruptions: int = 0
    """Attempts recorded as interrupted (they must not count as failures)."""
    attempts: int = 0
    k8s_jobs: int = 0

    @property
    def ok(self) -> bool:
        return not (self.lost or self.wrong_phase or self.duplicate_attempts or self.orphans
                    or self.untracked or self.retries_used)  # fmt: skip

    def summary(self) -> JsonDict:
        return {
            "jobs": self.jobs,
            "array_children": self.children,
            "lost": len(self.lost),
            "wrong_phase": len(self.wrong_phase),
            "duplicate_attempts": len(self.duplicate_attempts),
            "orphans": len(self.orphans),
            "untracked_jobs": len(self.untracked),
            "retries_used_by_interruptions": len(self.retries_used),
            "interrupted_attempts": self.interruptions,
            "attempts": self.attempts,
            "kubernetes_jobs": self.k8s_jobs,
        }

    def problems(self) -> JsonDict:
        """The offending names (at most 20 per check)."""
        out: JsonDict = {}
        for key in ("lost", "wrong_phase", "duplicate_attempts", "orphans", "untracked",
                    "retries_used"):  # fmt: skip
            names = getattr(self, key)
            if names:
                out[key] = names[:20] + ([f"... {len(names) - 20} more"] if len(names) > 20 else [])
        return out


def check(
    plans: Sequence[Plan],
    outcomes: Mapping[str, Outcome],
    batchjobs: Iterable[JsonDict],
    jobs: Iterable[JsonDict],
    pods: Iterable[JsonDict],
) -> Findings:
    """Pure: every invariant for the wave ``plans``; ``jobs``/``pods``: all of kubatch's in
    the namespace (orphans are looked for among all of them)."""
    bjs = {str(_meta(b).get("name")): b for b in batchjobs}
    uids = {str(_meta(b).get("uid")) for b in bjs.values()}
    wave = {p.name for p in plans}
    f = Findings(jobs=len(plans), children=sum(p.array or 0 for p in plans))
    all_jobs = list(jobs)
    all_pods = list(pods)
    for p in plans:
        _check_job(p, outcomes[p.name], bjs.get(p.name), f)
    # Kubernetes Jobs: one per attempt, each with its BatchJob, each recorded.
    per_attempt: Counter[tuple[str, str, str]] = Counter()
    job_names = set()
    for job in all_jobs:
        lab = _labels(job)
        name = str(_meta(job).get("name"))
        job_names.add(name)
        owner = lab.get(L.BATCHJOB, "")
        if lab.get(L.BATCHJOB_UID) not in uids:
            f.orphans.append(f"Job {name} (its BatchJob {owner} is gone)")
            continue
        if owner not in wave:
            continue
        f.k8s_jobs += 1
        per_attempt[(owner, lab.get(L.ARRAY_INDEX, ""), lab.get(L.ATTEMPT, ""))] += 1
        bj = bjs.get(owner)
        if bj is not None and L.ARRAY_INDEX not in lab:
            numbers = {str(a.get("number")) for a in _status(bj).get("attempts") or []}
            if lab.get(L.ATTEMPT) not in numbers:
                f.untracked.append(f"Job {name} (attempt {lab.get(L.ATTEMPT)} of {owner})")
        if _status(job).get("active") and _finished(bj):
            f.orphans.append(f"Job {name} still active for finished {owner}")
    for (owner, index, attempt), n in sorted(per_attempt.items()):
        if n > 1:
            where = f"[{index}]" if index else ""
            f.duplicate_attempts.append(f"{owner}{where} attempt {attempt}: {n} Jobs")
    # Pods: each with its Job; at most one started per Job; none left running.
    ran: defaultdict[str, int] = defaultdict(int)
    for pod in all_pods:
        lab = _labels(pod)
        name = str(_meta(pod).get("name"))
        job_name = lab.get("job-name", "")
        if job_name not in job_names:
            f.orphans.append(f"pod {name} (its Job {job_name} is gone)")
            continue
        owner = lab.get(L.BATCHJOB, "")
        if owner not in wave:
            continue
        if started(pod):
            ran[job_name] += 1
        phase = _status(pod).get("phase")
        if phase in ("Pending", "Running") and _finished(bjs.get(owner)):
            f.orphans.append(f"pod {name} {phase} for finished {owner}")
    for job_name, n in sorted(ran.items()):
        if n > 1:
            f.duplicate_attempts.append(f"Job {job_name}: {n} pods ran")
    return f


def _finished(bj: Mapping[str, Any] | None) -> bool:
    return bj is not None and _status(bj).get("phase") in TERMINAL


def _check_job(p: Plan, want: Outcome, bj: Mapping[str, Any] | None, f: Findings) -> None:
    if bj is None:
        f.lost.append(f"{p.name} (gone)")
        return
    st = _status(bj)
    phase = st.get("phase")
    if phase not in TERMINAL:
        f.lost.append(f"{p.name} ({phase or 'no status'}: {st.get('reason')})")
        return
    if phase != want.phase:
        f.wrong_phase.append(f"{p.name} ({p.kind}): {phase}/{st.get('reason')}, "
                             f"expected {want.phase}")  # fmt: skip
    attempts = st.get("attempts") or []
    f.attempts += len(attempts)
    interrupted = [a for a in attempts if a.get("interrupted")]
    f.interruptions += len(interrupted)
    if want.failures is None or p.array is not None:
        return
    failed = [a for a in attempts if not a.get("interrupted") and a.get("stoppedAt")
              and (a.get("exitCode") != 0 or a.get("reason") == "DeadlineExceeded")]  # fmt: skip
    expect = want.failures
    if interrupted and not p.depends_on:  # an interruption shifts the attempt numbers
        expect = failures_given(p, (int(a.get("number") or 0) for a in interrupted))
    if len(failed) != expect:
        seen = "; ".join(
            f"#{a.get('number')} exit {a.get('exitCode')} {a.get('reason') or '-'}"
            f"{' interrupted' if a.get('interrupted') else ''}"
            f"{'' if a.get('stoppedAt') else ' not stopped'}"
            f" ({str(a.get('statusReason') or '')[:80]})"
            for a in attempts
        )  # what the next occurrence needs to be understood
        f.retries_used.append(
            f"{p.name} ({p.kind}): {len(failed)} failed attempts counted, expected "
            f"{expect} ({len(interrupted)} interrupted); attempts: {seen}"
        )


def completions(
    batchjobs: Iterable[Mapping[str, Any]], names: set[str]
) -> Counter[tuple[str, str]]:
    """Pure: terminal BatchJobs among ``names`` per (queue, phase) — what the completion
    counters must say."""
    out: Counter[tuple[str, str]] = Counter()
    for bj in batchjobs:
        if str(_meta(bj).get("name")) in names and _finished(bj):
            out[(str((bj.get("spec") or {}).get("jobQueue")), str(_status(bj)["phase"]))] += 1
    return out
