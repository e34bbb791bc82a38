"""What the cache does when the attempt of a plain (non-array) job ends.

Pure, in-memory: the plain-job half of ``Cache.attempt_finished`` (array children are
``kubatch.core.arrays.child_finished``). The attempt gives its capacity back; then, in order:
its compute environment was deleted (it runs again elsewhere, uncounted); kubatch was stopping
it (terminate, or a Starting time limit: fail, or fall back to the next CE); it succeeded; or
its verdict (``kubatch.core.outcomes.judge``) retries or fails it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kubatch.core.lifecycle import Phase, Reason
from kubatch.core.outcomes import AttemptResult, Counts, FailVerdict, counts_as, judge
from kubatch.core.state import JobState

if TYPE_CHECKING:
    from kubatch.core.cache import Cache


def plain_finished(
    cache: Cache, job: JobState, attempt: int, result: AttemptResult, now: float
) -> None:
    """Attempt ``attempt`` of the plain job ``job`` ended with ``result`` (stale reports:
    another attempt, or a job not Starting/Running, are ignored)."""
    if job.phase not in (Phase.STARTING, Phase.RUNNING) or job.attempt != attempt:
        return
    assert job.ce is not None
    ce = job.ce
    cache.release(job, ce)
    ce_gone = ce not in cache.ledgers or job.stop_reason is Reason.COMPUTE_ENVIRONMENT_DELETED
    if ce_gone and job.spec.terminate_reason is None and not result.ok:
        # (stopped because its CE was deleted, even if one of that name came back since)
        job.stop_reason = None
        msg = f"compute environment {ce} was deleted; the job runs again elsewhere"
        cache.retry(job, None, attempt, Reason.COMPUTE_ENVIRONMENT_DELETED, msg, True, now)
        return
    if job.stop_reason is not None or job.spec.terminate_reason is not None:
        stop = job.stop_reason
        job.stop_reason = None
        fallback, job.stop_fallback = job.stop_fallback, False
        if fallback and cache.fall_back(job, ce):
            msg = "Starting too long: falling back to the next compute environment"
            cache.retry(job, None, attempt, Reason.STATE_TIME_LIMIT, msg, False, now)
            return
        if not result.ok:
            message = job.spec.terminate_reason or (
                "Starting longer than the queue's state time limit"
                if stop is Reason.STATE_TIME_LIMIT
                else "terminated"
            )
            cache.fail(job, stop or Reason.TERMINATED, message, now)
            return
    if result.ok:
        cache.succeed(job, now)
        return
    counted = counts_as(result)
    if counted is Counts.FAILURE:
        job.failures += 1
    elif counted is Counts.INTERRUPTION:
        job.interruptions += 1
    verdict = judge(
        job.spec,
        attempt,
        result,
        failures=job.failures,
        interruptions=job.interruptions,
        can_fall_back=cache.next_ce_index(job, ce) is not None,
    )
    if isinstance(verdict, FailVerdict):
        cache.fail(job, verdict.reason, verdict.message, now)
        return
    if verdict.fallback:
        cache.fall_back(job, ce)
        job.interruptions = 0
    cache.retry(job, None, attempt, verdict.reason, verdict.message, result.interrupted, now)
