"""Pure builders of status patches (BatchJob, JobQueue, ComputeEnvironment).

Conditions follow Kubernetes API conventions and kstatus: ``Ready`` (and ``Stalled`` for an
invalid spec), each with ``observedGeneration``; ``lastTransitionTime`` only moves when the
condition's status changes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from kubatch.controller.convert import rfc3339
from kubatch.core.budget import BudgetState
from kubatch.core.decisions import Admit, Fail, Retry, SetWaiting, Succeed, UpdateArraySummary
from kubatch.core.lifecycle import Phase

if TYPE_CHECKING:
    from kubatch.api.models import ComputeEnvironment, JobQueue
    from kubatch.controller.records import EventNote, ObjectNote

JsonDict = dict[str, Any]


def condition(
    ctype: str,
    status: bool,
    reason: str,
    message: str,
    generation: int | None,
    now_iso: str,
    previous: Sequence[Mapping[str, Any]] = (),
) -> JsonDict:
    """Pure: one condition; keeps the old ``lastTransitionTime`` if the status is unchanged."""
    value = "True" if status else "False"
    since = now_iso
    for c in previous:
        if c.get("type") == ctype and c.get("status") == value and c.get("lastTransitionTime"):
            since = str(c["lastTransitionTime"])
    out: JsonDict = {
        "type": ctype,
        "status": value,
        "reason": reason,
        "message": message,
        "lastTransitionTime": since,
    }
    if generation is not None:
        out["observedGeneration"] = generation
    return out


def job_conditions(
    phase: Phase,
    reason: str | None,
    message: str,
    generation: int | None,
    now_iso: str,
    previous: Sequence[Mapping[str, Any]] = (),
) -> list[JsonDict]:
    """Pure: kstatus conditions of a BatchJob in ``phase``.

    ``Ready`` is True once the job finished successfully; ``Reconciling`` while it is on its
    way; ``Stalled`` when it failed (kstatus reads that as a failed rollout).
    """
    done = phase is Phase.SUCCEEDED
    failed = phase is Phase.FAILED
    why = reason or str(phase)
    conds = [
        condition("Ready", done, why, message or str(phase), generation, now_iso, previous),
        condition(
            "Reconciling",
            not phase.terminal,
            why,
            message or str(phase),
            generation,
            now_iso,
            previous,
        ),
    ]
    if failed:
        conds.append(condition("Stalled", True, why, message, generation, now_iso, previous))
    return conds


def invalid_conditions(
    message: str, generation: int | None, now_iso: str, previous: Sequence[Mapping[str, Any]] = ()
) -> list[JsonDict]:
    """Pure: ``Ready=False, Stalled=True`` with reason ``InvalidSpec``."""
    return [
        condition("Ready", False, "InvalidSpec", message, generation, now_iso, previous),
        condition("Stalled", True, "InvalidSpec", message, generation, now_iso, previous),
    ]


def ready_conditions(
    ready: bool,
    reason: str,
    message: str,
    generation: int | None,
    now_iso: str,
    previous: Sequence[Mapping[str, Any]] = (),
) -> list[JsonDict]:
    """Pure: ``Ready`` for a valid queue/CE/definition (no Stalled)."""
    return [condition("Ready", ready, reason, message, generation, now_iso, previous)]


def summary_dict(size: int, summary: Sequence[tuple[Phase, int]]) -> JsonDict:
    """Pure: ``arrayStatusSummary`` with every phase present (bounded: 8 numbers)."""
    out: JsonDict = {"size": size}
    for phase in Phase:
        out[str(phase).lower()] = 0
    for phase, n in summary:
        out[str(phase).lower()] = n
    return out


def strip_equal(patch: Mapping[str, Any], current: Mapping[str, Any]) -> JsonDict:
    """Pure: the fields of ``patch`` whose value differs from ``current`` (top level)."""
    return {k: v for k, v in patch.items() if current.get(k) != v}


def without_nulls(patch: Mapping[str, Any], written: Mapping[str, Any]) -> JsonDict:
    """Pure: ``None`` removes a field in a merge patch: keep it only for fields that were
    written (``queuePosition`` disappears once the job stops waiting); drop the others. Empty
    strings are never sent (a 1.20 API server turns them into ``null``, which a string field
    rejects), nor are they sent inside the attempt records."""
    out: JsonDict = {}
    for k, v in patch.items():
        if v == "":
            continue
        if v is None and written.get(k) is None:
            continue
        if k == "attempts" and isinstance(v, list):
            out[k] = [{ak: av for ak, av in a.items() if av not in (None, "")} for a in v]
        else:
            out[k] = v
    return out


SUBMISSION_FIELDS = frozenset({"jobDefinition", "createdAt"})
"""Status fields recorded at submission; they ride with the job's first phase."""
UNREMEMBERED = frozenset({"jobDefinition", "conditions"})
"""Status fields a record does not keep as written: the definition is written once (a copy
per job would be kilobytes each at 100,000 jobs) and the conditions live in the record's own
``conditions``."""
CONDITIONS = "__conditions__"
"""A staged marker (not a status field): recompute the conditions (a new notice)."""


def patch_for(
    pending: Mapping[str, Any],
    written: Mapping[str, Any],
    *,
    phase: Phase,
    generation: int | None,
    conditions: Sequence[Mapping[str, Any]],
    now_iso: str,
    attempt_count: int,
    notice: str | None = None,
) -> tuple[JsonDict, list[JsonDict]] | None:
    """Pure: the one merge patch of a BatchJob's status from its staged fields.

    Returns ``(patch, conditions)`` (the conditions to remember), or ``None`` when there is
    nothing to write yet: nothing differs from what was written, or only the submission record
    is staged (it goes out with the job's first phase, one write instead of two). ``notice``
    (an ignored edit) adds the condition ``SpecChangeIgnored``.
    """
    if pending.keys() <= SUBMISSION_FIELDS and "phase" not in written:
        return None
    staged = {k: v for k, v in pending.items() if k != CONDITIONS}
    patch = strip_equal(without_nulls(staged, written), written)
    if not patch and CONDITIONS not in pending:
        return None
    conds = [dict(c) for c in conditions]
    if "phase" in patch or "reason" in patch or CONDITIONS in pending:
        now_phase = Phase(str(patch.get("phase") or written.get("phase") or phase))
        reason = patch.get("reason", written.get("reason"))
        message = patch.get("message", written.get("message")) or ""
        conds = job_conditions(now_phase, reason, message, generation, now_iso, conditions)
        if notice:
            conds.append(condition("SpecChangeIgnored", True, "ImmutableFieldChanged", notice,
                                   generation, now_iso, conditions))  # fmt: skip
        patch["conditions"] = conds
        patch["observedGeneration"] = generation
    if "attempts" in patch:
        patch["attemptCount"] = attempt_count
    return patch, conds


# --------------------------------------------------------------------------- status fields


def waiting_fields(d: SetWaiting, eta: float | None = None) -> JsonDict:
    """Pure: a waiting job's phase, reason, message, 1-based queue position and estimated
    start (each absent when it has none)."""
    message = d.message
    if d.resumes_at is not None:
        message += f" (until {rfc3339(d.resumes_at)} if nothing more is charged)"
    return {
        "phase": str(d.phase),
        "reason": str(d.reason),
        "message": message,
        "queuePosition": d.queue_position,
        "estimatedStartTime": rfc3339(eta) if eta is not None else None,
    }


def spend_fields(state: BudgetState) -> JsonDict:
    """Pure: a queue's ``status.spend``."""
    out: JsonDict = {
        "lastHour": round(state.spent_hour, 4),
        "lastDay": round(state.spent_day, 4),
    }
    if state.blocked_until is not None:
        out["blockedUntil"] = rfc3339(state.blocked_until)
    return out


def admitted_fields(d: Admit, capacity_type: str, attempts: list[JsonDict]) -> JsonDict:
    """Pure: an attempt was admitted (its Kubernetes Job created)."""
    return {
        "phase": str(Phase.STARTING),
        "reason": "Admitted",
        "message": f"Kubernetes Job {d.k8s_job_name} created on {d.compute_environment}",
        "queuePosition": None,
        "estimatedStartTime": None,
        "computeEnvironment": d.compute_environment,
        "capacityType": capacity_type,
        "attempts": attempts,
    }


def only_admitted(pending: Mapping[str, Any], written: Mapping[str, Any]) -> bool:
    """Pure: the staged status says no more than "admitted, Starting" (no reason why the pod
    cannot run, no later phase) of a job still shown waiting: it may wait a moment for
    Running and make one write. A job shown Running or Starting (a retry) is never held."""
    waiting = written.get("phase") not in (str(Phase.RUNNING), str(Phase.STARTING))
    admitted = pending.get("phase") == str(Phase.STARTING) and pending.get("reason") == "Admitted"
    return waiting and admitted


def retry_fields(d: Retry, attempts: list[JsonDict]) -> JsonDict:
    """Pure: an attempt ended and the job waits to run again."""
    return {
        "phase": str(Phase.RUNNABLE),
        "reason": str(d.reason) if d.reason else "Retrying",
        "message": d.message,
        "attempts": attempts,
    }


def final_fields(
    d: Fail | Succeed, now_iso: str, attempts: list[JsonDict], array_size: int | None
) -> JsonDict:
    """Pure: the job finished."""
    phase = Phase.FAILED if isinstance(d, Fail) else Phase.SUCCEEDED
    out: JsonDict = {"phase": str(phase), "queuePosition": None, "stoppedAt": now_iso}
    if isinstance(d, Fail):
        out.update(reason=str(d.reason), message=d.message)
    else:
        out.update(
            reason=str(phase), message="all children succeeded" if array_size else "exit code 0"
        )
    if attempts:
        out["attempts"] = attempts
    return out


def summary_fields(d: UpdateArraySummary, size: int, started: float | None) -> JsonDict:
    """Pure: an array parent's phase and children per phase (``started``: its first child
    started now)."""
    out: JsonDict = {"phase": str(d.phase), "arrayStatusSummary": summary_dict(size, d.summary)}
    if started is not None:
        out["startedAt"] = rfc3339(started)
    if d.phase is Phase.RUNNING:
        out.update(reason="Running", message="children running", queuePosition=None)
    return out


def event_body(e: EventNote, now_iso: str, instance: str) -> JsonDict:
    """Pure: the ``v1`` Event for a note."""
    meta = e.ref.get("metadata") or {}
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {
            "generateName": f"{meta.get('name', 'kubatch')}.",
            "namespace": meta.get("namespace") or "default",
        },
        "involvedObject": {
            "apiVersion": e.ref.get("apiVersion"),
            "kind": e.ref.get("kind"),
            "name": meta.get("name"),
            "namespace": meta.get("namespace"),
            "uid": meta.get("uid"),
        },
        "type": e.type,
        "reason": e.reason[:128],
        "message": e.message[:1024],
        "source": {"component": "kubatch"},
        "reportingComponent": "kubatch",
        "reportingInstance": instance,
        "firstTimestamp": now_iso,
        "lastTimestamp": now_iso,
        "count": 1,
    }


def queue_status(
    q: JobQueue,
    counts: Counter[str],
    now_iso: str,
    previous: Sequence[Mapping[str, Any]],
    missing: Sequence[str] = (),
) -> JsonDict:
    """Pure: a JobQueue's status: jobs per phase and ``Ready`` (``False`` while compute
    environments of its order do not exist: its jobs use the others meanwhile)."""
    enabled = str(q.spec.state) == "Enabled"
    gen = q.metadata.generation
    if missing:
        ready, reason = False, "ComputeEnvironmentNotFound"
        message = (
            f"compute environment(s) {', '.join(missing)} do not exist (yet); "
            "jobs use the others of the order meanwhile"
        )
    else:
        ready, reason = True, "Enabled" if enabled else "Disabled"
        message = "accepting and admitting jobs" if enabled else "accepting jobs, admitting none"
    return {
        "jobCounts": {str(p).lower(): counts.get(str(p), 0) for p in Phase},
        "observedGeneration": gen,
        "conditions": ready_conditions(ready, reason, message, gen, now_iso, previous),
    }


def ce_status(
    ce: ComputeEnvironment,
    desired: int,
    allocated: float,
    capacity: float,
    nodes: int,
    now_iso: str,
    previous: Sequence[Mapping[str, Any]],
) -> JsonDict:
    """Pure: a ComputeEnvironment's status."""
    enabled = str(ce.spec.state) == "Enabled"
    gen = ce.metadata.generation
    message = (
        f"{nodes} ready node(s), {capacity:g} vCPUs" if enabled else "disabled: admits no new jobs"
    )
    return {
        "desiredvCpus": desired,
        "allocatedvCpus": allocated,
        "capacityvCpus": capacity,
        "nodes": nodes,
        "observedGeneration": gen,
        "conditions": ready_conditions(
            enabled, "Enabled" if enabled else "Disabled", message, gen, now_iso, previous
        ),
    }


def note_conditions(note: ObjectNote, now_iso: str) -> list[JsonDict]:
    """Pure: ``Ready`` (and ``Stalled`` when invalid) of a definition, queue or CE."""
    if note.problems:
        return invalid_conditions("; ".join(note.problems), note.generation, now_iso,
                                  note.conditions)  # fmt: skip
    return ready_conditions(True, "Valid", "definition is valid", note.generation, now_iso,
                            note.conditions)  # fmt: skip


def same_object_status(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Pure: two statuses differ only in condition timestamps."""

    def strip(cs: Any) -> list[tuple[Any, ...]]:
        return [(c.get("type"), c.get("status"), c.get("reason"), c.get("message"))
                for c in cs or []]  # fmt: skip

    rest_a = {k: v for k, v in a.items() if k != "conditions"}
    rest_b = {k: v for k, v in b.items() if k != "conditions"}
    return rest_a == rest_b and strip(a.get("conditions")) == strip(b.get("conditions"))
