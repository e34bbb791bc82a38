"""Pure builders of status patches (BatchJob, JobQueue, ComputeEnvironment).

Conditions follow Kubernetes API conventions and kstatus: ``Ready`` (and ``Stalled`` for an
invalid spec), each with ``observedGeneration``; ``lastTransitionTime`` only moves when the
condition's status changes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from kubatch.core.lifecycle import Phase

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


CLEARED: dict[str, Any] = {"queuePosition": 0}
"""How a field is cleared: a 1.20 API server rejects ``null`` (and turns ``""`` into ``null``)
in a status merge patch, so ``queuePosition`` becomes 0 (documented: 0 = not waiting) and
``reason``/``message`` always carry a value (the phase's own words once it stops waiting)."""


def without_nulls(patch: Mapping[str, Any], written: Mapping[str, Any]) -> JsonDict:
    """Pure: drop ``None`` values that clear nothing; turn the others into cleared values."""
    out: JsonDict = {}
    for k, v in patch.items():
        if v is not None:
            out[k] = v
        elif written.get(k) not in (None, CLEARED.get(k)) and k in CLEARED:
            out[k] = CLEARED[k]
    return out
