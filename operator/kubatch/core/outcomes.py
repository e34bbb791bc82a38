"""What an ended attempt means for its job: a typed verdict.

Pure: no state is changed here. The cache counts the attempt (a failure against
``retryStrategy.attempts``, or an interruption against the interruption budget), asks
:func:`judge`, and carries the verdict out.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from kubatch.core.lifecycle import Reason
from kubatch.core.model import JobSpec
from kubatch.core.retry import RetryAction, evaluate_exit


@dataclass(frozen=True, slots=True)
class AttemptResult:
    """How an attempt ended (from its pod, its Job, or kubatch stopping it)."""

    exit_code: int | None
    reason: str | None = None
    status_reason: str | None = None
    interrupted: bool = False
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.interrupted and not self.timed_out

    def what(self) -> str:
        """Pure: ``exit code 1, reason OOMKilled, …`` for messages."""
        return (
            f"exit code {self.exit_code}"
            + (f", reason {self.reason}" if self.reason else "")
            + (f", {self.status_reason}" if self.status_reason else "")
        )


class Counts(StrEnum):
    """What an ended attempt uses up."""

    NOTHING = "Nothing"  # succeeded, or timed out (final anyway)
    FAILURE = "Failure"  # one of retryStrategy.attempts
    INTERRUPTION = "Interruption"  # one of the interruption budget


def counts_as(result: AttemptResult) -> Counts:
    """Pure: which counter an ended attempt increments."""
    if result.ok or result.timed_out:
        return Counts.NOTHING
    return Counts.INTERRUPTION if result.interrupted else Counts.FAILURE


@dataclass(frozen=True, slots=True)
class RetryVerdict:
    """Run the job (or child) again; ``fallback``: from the next CE of its queue's order."""

    reason: Reason
    message: str
    fallback: bool = False


@dataclass(frozen=True, slots=True)
class FailVerdict:
    """The job (or child) failed for good."""

    reason: Reason
    message: str


Verdict = RetryVerdict | FailVerdict


def judge(
    spec: JobSpec,
    attempt: int,
    result: AttemptResult,
    *,
    failures: int,
    interruptions: int,
    can_fall_back: bool,
) -> Verdict:
    """Pure: the verdict on a failed attempt.

    ``failures`` and ``interruptions`` already count this attempt where it counts
    (:func:`counts_as`). Timeouts are final (as AWS). Interruptions retry within the budget,
    then fall back to the next CE if there is one. Failures follow ``evaluateOnExit``.
    """
    if result.timed_out:
        return FailVerdict(
            Reason.ATTEMPT_TIMEOUT,
            f"attempt {attempt} exceeded {spec.timeout_seconds}s (not retried, as AWS)",
        )
    if result.interrupted:
        budget = spec.interruption_budget
        if interruptions <= budget:
            return RetryVerdict(
                Reason.INTERRUPTED,
                f"interrupted ({result.status_reason or 'node reclaimed'}); "
                f"{interruptions}/{budget} of the interruption budget used",
            )
        if can_fall_back:
            return RetryVerdict(
                Reason.INTERRUPTED,
                "interruption budget used up: falling back to the next compute environment",
                fallback=True,
            )
        return FailVerdict(
            Reason.INTERRUPTED,
            f"interrupted {interruptions} times and no compute environment to fall back to",
        )
    action = evaluate_exit(
        spec.retry, failures, result.exit_code, result.reason, result.status_reason
    )
    what = result.what()
    if action is RetryAction.RETRY:
        return RetryVerdict(
            Reason.ESSENTIAL_EXIT,
            f"attempt {attempt} failed ({what}); retrying ({failures}/{spec.retry.attempts})",
        )
    if failures >= spec.retry.attempts:
        return FailVerdict(
            Reason.RETRIES_EXHAUSTED,
            f"attempt {attempt} failed ({what}); {failures}/{spec.retry.attempts} attempts used",
        )
    return FailVerdict(
        Reason.ESSENTIAL_EXIT, f"attempt {attempt} failed ({what}); evaluateOnExit: Exit"
    )
