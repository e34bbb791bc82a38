"""Phases, reasons, events and the transition table of a BatchJob.

Pure: no I/O, no clock. The table is data (h11 style): ``TRANSITIONS`` maps
``(phase, event type)`` to the next phase; ``next_phase`` looks it up and raises
``IllegalTransition`` for anything else. Terminal phases have no outgoing edge.
``docs/lifecycle.md`` is generated from the table by ``render_lifecycle_doc``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Phase(StrEnum):
    """``status.phase`` of a BatchJob (AWS Batch job states)."""

    SUBMITTED = "Submitted"
    PENDING = "Pending"
    RUNNABLE = "Runnable"
    STARTING = "Starting"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"

    @property
    def terminal(self) -> bool:
        return self in (Phase.SUCCEEDED, Phase.FAILED)


class Reason(StrEnum):
    """Machine-readable ``status.reason`` values."""

    WAITING_FOR_DEPENDENCIES = "WaitingForDependencies"
    QUEUE_DISABLED = "QueueDisabled"
    COMPUTE_ENVIRONMENT_DISABLED = "ComputeEnvironmentDisabled"
    INSUFFICIENT_CAPACITY = "InsufficientCapacity"
    NO_COMPUTE_ENVIRONMENT_CAN_FIT = "NoComputeEnvironmentCanFit"
    DEPENDENCY_FAILED = "DependencyFailed"
    DEPENDENCY_CYCLE = "DependencyCycle"
    TERMINATED = "Terminated"
    ATTEMPT_TIMEOUT = "AttemptTimeout"
    RETRIES_EXHAUSTED = "RetriesExhausted"
    QUEUE_NOT_ALLOWED = "QueueNotAllowed"
    INVALID_SPEC = "InvalidSpec"
    UNKNOWN_QUEUE = "JobQueueNotFound"
    UNKNOWN_JOB_DEFINITION = "JobDefinitionNotFound"
    STATE_TIME_LIMIT = "StateTimeLimitExceeded"
    INTERRUPTED = "Interrupted"
    ARRAY_CHILD_FAILED = "ArrayChildFailed"
    ESSENTIAL_EXIT = "NonZeroExitCode"
    SUCCEEDED = "Succeeded"
    # Added by the core (new values only; the ones above are stable).
    PARALLELISM_LIMIT = "ParallelismLimit"
    WAITING_FOR_SHARE = "WaitingForFairShare"
    BLOCKED_BY_QUEUE_HEAD = "BlockedByQueueHead"
    JOB_CREATE_FAILED = "JobCreateFailed"
    COMPUTE_ENVIRONMENT_DELETED = "ComputeEnvironmentDeleted"
    COMPUTE_ENVIRONMENT_NOT_FOUND = "ComputeEnvironmentNotFound"
    # Scheduling depth (#17): consumable resources, gangs, preemption.
    CONSUMABLE_UNAVAILABLE = "ConsumableResourceUnavailable"
    GANG_START_TIMEOUT = "GangStartTimeout"
    PREEMPTED = "Preempted"
    PREEMPTING = "Preempting"
    BUDGET_EXCEEDED = "BudgetExceeded"


# --- events: small frozen dataclasses, past tense -------------------------------------------


@dataclass(frozen=True, slots=True)
class Validated:
    """The job was accepted; it has dependencies to wait for."""


@dataclass(frozen=True, slots=True)
class DependenciesMet:
    """Every dependency is satisfied (or there were none)."""


@dataclass(frozen=True, slots=True)
class Admitted:
    """The scheduler admitted an attempt to a compute environment."""


@dataclass(frozen=True, slots=True)
class PodStarted:
    """The attempt's pod is running."""


@dataclass(frozen=True, slots=True)
class AttemptSucceeded:
    """The attempt exited 0 (or all children of an array succeeded)."""


@dataclass(frozen=True, slots=True)
class AttemptRetried:
    """The attempt failed or was interrupted, and the job will try again."""


@dataclass(frozen=True, slots=True)
class JobFailed:
    """The job failed for good (retries exhausted, dependency, terminate, invalid ...)."""

    reason: Reason = Reason.RETRIES_EXHAUSTED


@dataclass(frozen=True, slots=True)
class AdmissionRolledBack:
    """The API write for an admission failed: the job is Runnable again (``forget``)."""


Event = (
    Validated
    | DependenciesMet
    | Admitted
    | PodStarted
    | AttemptSucceeded
    | AttemptRetried
    | JobFailed
    | AdmissionRolledBack
)


class IllegalTransition(ValueError):
    """Raised by ``next_phase`` for an event that the table does not allow in a phase."""

    def __init__(self, phase: Phase, event: Event) -> None:
        super().__init__(f"illegal transition: {type(event).__name__} in phase {phase}")
        self.phase = phase
        self.event = event


_P = Phase
TRANSITIONS: dict[tuple[Phase, type], Phase] = {
    (_P.SUBMITTED, Validated): _P.PENDING,
    (_P.SUBMITTED, DependenciesMet): _P.RUNNABLE,
    (_P.SUBMITTED, JobFailed): _P.FAILED,
    (_P.PENDING, DependenciesMet): _P.RUNNABLE,
    (_P.PENDING, JobFailed): _P.FAILED,
    (_P.RUNNABLE, Admitted): _P.STARTING,
    (_P.RUNNABLE, JobFailed): _P.FAILED,
    (_P.STARTING, PodStarted): _P.RUNNING,
    (_P.STARTING, AttemptSucceeded): _P.SUCCEEDED,
    (_P.STARTING, AttemptRetried): _P.RUNNABLE,
    (_P.STARTING, AdmissionRolledBack): _P.RUNNABLE,
    (_P.STARTING, JobFailed): _P.FAILED,
    (_P.RUNNING, AttemptSucceeded): _P.SUCCEEDED,
    (_P.RUNNING, AttemptRetried): _P.RUNNABLE,
    (_P.RUNNING, JobFailed): _P.FAILED,
}
"""The transition table: ``(phase, event type) -> next phase``. Terminal phases are absent."""


def next_phase(phase: Phase, event: Event) -> Phase:
    """Pure: the phase after ``event`` in ``phase``; raises ``IllegalTransition`` otherwise."""
    try:
        return TRANSITIONS[(phase, type(event))]
    except KeyError:
        raise IllegalTransition(phase, event) from None


def advance(phase: Phase, target: Phase) -> Phase:
    """Pure: move a non-terminal ``phase`` forward to ``target`` along the table's admission
    path (Runnable -> Starting -> Running), one legal edge at a time; a ``target`` at or
    behind ``phase`` leaves it as it is."""
    path: tuple[tuple[Phase, Event], ...] = (
        (Phase.RUNNABLE, Admitted()),
        (Phase.STARTING, PodStarted()),
    )
    order = list(Phase)
    for src, event in path:
        if phase is src and order.index(target) > order.index(phase):
            phase = next_phase(phase, event)
    return phase


def array_parent_phase(phase: Phase, *, starting: int, running: int, ran: bool) -> Phase:
    """Pure: the phase of an array parent whose children are underway.

    SEMANTICS §4: Runnable until a first child starts, then Starting, Running from the first
    running child (``ran``: one ran before) until every child is terminal. Never moves back, and
    leaves Submitted/Pending (dependencies) and terminal phases to their own events.
    """
    if phase not in (Phase.RUNNABLE, Phase.STARTING, Phase.RUNNING):
        return phase
    if running or ran:
        return advance(phase, Phase.RUNNING)
    if starting:
        return advance(phase, Phase.STARTING)
    return phase


def can_transition(phase: Phase, event: Event) -> bool:
    """Pure: whether ``event`` is legal in ``phase``."""
    return (phase, type(event)) in TRANSITIONS


def render_mermaid() -> str:
    """Pure: the state diagram (mermaid ``stateDiagram-v2``) generated from ``TRANSITIONS``."""
    lines = ["stateDiagram-v2", "    [*] --> Submitted"]
    for (src, ev), dst in TRANSITIONS.items():
        lines.append(f"    {src} --> {dst}: {ev.__name__}")
    lines.extend(f"    {p} --> [*]" for p in Phase if p.terminal)
    return "\n".join(lines)


def render_lifecycle_doc() -> str:
    """Pure: the full text of ``docs/lifecycle.md`` (a unit test checks the committed file)."""
    rows = "\n".join(
        f"| {src} | `{ev.__name__}` | {dst} |" for (src, ev), dst in TRANSITIONS.items()
    )
    return (
        "# BatchJob lifecycle\n\n"
        "<!-- GENERATED by kubatch.core.lifecycle.render_lifecycle_doc(); do not edit. -->\n\n"
        "`status.phase` moves only along these edges (`kubatch.core.lifecycle.TRANSITIONS`).\n"
        "Any other event raises `IllegalTransition`; `Succeeded` and `Failed` are final.\n"
        "A retry goes from `Starting`/`Running` back to `Runnable` (`AttemptRetried`).\n\n"
        "```mermaid\n" + render_mermaid() + "\n```\n\n"
        "| From | Event | To |\n|---|---|---|\n" + rows + "\n"
    )
