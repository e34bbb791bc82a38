"""Decisions: what ``schedule`` asks the operator to do (commands, frozen dataclasses).

Pure data. The operator carries each out and then reports back to the cache:
``cache.assume(d)`` once the API write succeeded (Admit is assumed *before* the write and
``cache.forget(d)`` rolls it back if the write fails; see docs/core.md).
"""

from __future__ import annotations

from dataclasses import dataclass

from kubatch.core.lifecycle import Phase, Reason
from kubatch.core.resources import Resources


@dataclass(frozen=True, slots=True)
class Admit:
    """Create the Kubernetes Job ``k8s_job_name`` for this attempt on ``compute_environment``.

    ``index`` is the array index (``None`` for a plain job). ``attempt`` starts at 1.
    """

    job_key: str
    index: int | None
    attempt: int
    compute_environment: str
    capacity_type: str
    queue: str
    resources: Resources
    k8s_job_name: str
    timeout_seconds: int | None


@dataclass(frozen=True, slots=True)
class SetWaiting:
    """Patch status: a waiting phase (Pending/Runnable) with reason and queue position."""

    job_key: str
    phase: Phase
    reason: Reason
    message: str
    queue_position: int | None
    resumes_at: float | None = None  # BudgetExceeded: when the spending window frees


@dataclass(frozen=True, slots=True)
class Fail:
    """Patch status: Failed (final). For an array parent, its children stop being admitted."""

    job_key: str
    reason: Reason
    message: str


@dataclass(frozen=True, slots=True)
class Succeed:
    """Patch status: Succeeded (final)."""

    job_key: str


@dataclass(frozen=True, slots=True)
class Retry:
    """An attempt ended and the job (or child) goes back to Runnable: record the attempt
    in ``status.attempts`` (``interrupted`` attempts do not use up retry attempts)."""

    job_key: str
    index: int | None
    attempt: int
    reason: Reason | None
    message: str
    interrupted: bool


@dataclass(frozen=True, slots=True)
class Terminate:
    """Stop (delete) the Kubernetes Job of a running attempt; the operator then feeds
    ``attempt_finished(..., terminated=True)``."""

    job_key: str
    index: int | None
    attempt: int
    k8s_job_name: str
    reason: Reason
    message: str
    fallback: bool = False  # Starting too long + FallbackToNextComputeEnvironment: retry there


@dataclass(frozen=True, slots=True)
class Preempt:
    """Stop a running attempt to make room for ``preemptor`` (a job of ``preemptor_queue``):
    delete its Kubernetes Job so that its pod ends within its termination grace period; the
    attempt keeps its capacity until it has ended, is recorded as interrupted (reason
    ``Preempted``) and uses up neither retry attempts nor the interruption budget."""

    job_key: str
    index: int | None
    attempt: int
    k8s_job_name: str
    compute_environment: str
    queue: str
    message: str
    preemptor: str
    preemptor_queue: str


@dataclass(frozen=True, slots=True)
class SkipComputeEnvironment:
    """The job falls back to the next CE in its queue's order (state time limit or
    interruption budget). Only ``cache.assume`` it; no API write is needed."""

    job_key: str
    next_ce_index: int


@dataclass(frozen=True, slots=True)
class UpdateArraySummary:
    """Patch an array parent's ``phase`` and ``status.arrayStatusSummary`` (bounded: one
    count per phase)."""

    job_key: str
    phase: Phase
    summary: tuple[tuple[Phase, int], ...]


Decision = (
    Admit
    | SetWaiting
    | Fail
    | Succeed
    | Retry
    | Terminate
    | Preempt
    | SkipComputeEnvironment
    | UpdateArraySummary
)
