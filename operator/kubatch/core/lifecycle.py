"""Phases and reasons of a BatchJob: the words of the API, as ``StrEnum``.

Pure: no I/O, no clock. The transition table lives here too (owned by the core).
"""

from __future__ import annotations

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
    UNKNOWN_QUEUE = "UnknownQueue"
    UNKNOWN_JOB_DEFINITION = "UnknownJobDefinition"
    STATE_TIME_LIMIT = "StateTimeLimitExceeded"
    INTERRUPTED = "Interrupted"
    ARRAY_CHILD_FAILED = "ArrayChildFailed"
    ESSENTIAL_EXIT = "NonZeroExitCode"
    SUCCEEDED = "Succeeded"
