"""What admitted attempts hold besides CE capacity, and which of them may be stopped on purpose.

Pure, in-memory: the cache's bookkeeping for the scheduling depth of #17, kept out of
``kubatch.core.cache`` (which calls these functions from thin hooks, the way it delegates array
children to ``kubatch.core.arrays``):

- consumable resources taken at admission and given back at the end of an attempt or on a
  rollback (``kubatch.core.consumables``);
- the running attempts per CE, for preemption (``kubatch.core.preemption.VictimIndex``, kept
  only once a queue preempts);
- attempts being *released* — preempted, or gangs whose nodes did not all start in time
  (``kubatch.core.gang``) — which end as a retry that counts against nothing;
- the snapshot's read-only view of all three.

Every function is a no-op for a job that uses none of it (one attribute test on the hot path).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kubatch.core.decisions import Admit, Preempt, Terminate
from kubatch.core.fit import QueueFit
from kubatch.core.gang import gang_queue_fit, start_limit
from kubatch.core.lifecycle import Phase, Reason
from kubatch.core.model import Gang
from kubatch.core.outcomes import AttemptResult
from kubatch.core.preemption import released_end
from kubatch.core.state import JobState, QueueState

if TYPE_CHECKING:
    from kubatch.core.cache import Cache

RELEASES = frozenset({Reason.PREEMPTED, Reason.GANG_START_TIMEOUT})
"""Reasons of attempts kubatch stops on purpose and runs again, uncounted."""


def admitted(cache: Cache, job: JobState, d: Admit, now: float) -> None:
    """An admission was assumed: it takes its consumable resources and becomes a possible
    victim."""
    if job.spec.consumables:
        cache.consumables.take(job.spec.consumables)
    if cache.victims is not None:
        cache.victims.add(job.key, d.index, d.compute_environment, now)


def rolled_back(cache: Cache, job: JobState, d: Admit) -> None:
    """An admission is about to be rolled back (its Kubernetes Job was not created): used-up
    units come back too (replenishable ones come back through ``Cache.release``)."""
    if not cache.is_active(job.key, d.index, d.attempt):
        return
    if job.spec.consumables:
        cache.consumables.release(
            tuple((n, q) for n, q in job.spec.consumables if not _replenishable(cache, n)),
            rolled_back=True,
        )
    if cache.victims is not None:
        cache.victims.drop(job.key, d.index)
    cache.releasing.pop((job.key, d.index), None)


def _replenishable(cache: Cache, name: str) -> bool:
    pool = cache.consumables.pools.get(name)
    return pool is None or pool.replenishable


def finished(
    cache: Cache,
    job: JobState,
    index: int | None,
    attempt: int,
    result: AttemptResult,
    now: float,
) -> bool:
    """An attempt ended (before the cache judges it): it stops being a victim; if kubatch was
    releasing it, it runs again uncounted (``True``: handled here)."""
    slot = (job.key, index if job.array is not None else None)
    active = cache.is_active(job.key, slot[1], attempt)
    if active and cache.victims is not None:
        cache.victims.drop(*slot)
    rel = cache.releasing.get(slot)
    if rel is None or rel[0] != attempt or not active:
        return False
    del cache.releasing[slot]
    return released_end(cache, job, slot[1], attempt, rel[1], result, now)


def assume_stop(cache: Cache, job: JobState, d: Terminate | Preempt) -> bool:
    """A ``Preempt``, or a gang's ``Terminate`` for its start timer, was assumed: the attempt
    is being released (``True``); any other ``Terminate`` is the cache's usual business."""
    if isinstance(d, Terminate) and d.reason not in RELEASES:
        return False
    index = d.index if job.array is not None else None
    if not cache.is_active(job.key, index, d.attempt):
        return True
    ce = job.array.active.get(index) if index is not None and job.array is not None else job.ce
    reason = Reason.PREEMPTED if isinstance(d, Preempt) else d.reason
    cache.releasing[(job.key, index)] = (d.attempt, reason, ce)
    return True


def forget_job(cache: Cache, job: JobState) -> None:
    """The BatchJob was deleted."""
    if cache.victims is not None:
        cache.victims.drop_job(job)
    if cache.releasing:
        for slot in [s for s in cache.releasing if s[0] == job.key]:
            del cache.releasing[slot]


def restored(cache: Cache, job: JobState, index: int | None, was_active: bool, now: float) -> None:
    """After a restart a job (or child) was restored: a Starting/Running attempt holds its
    consumable resources and is a possible victim again; a gang still Starting gets its start
    timer back."""
    if was_active or not cache.is_active(job.key, index, _attempt_of(job, index)):
        return
    if job.spec.consumables:
        cache.consumables.hold(job.spec.consumables)
    if cache.victims is not None:
        ce = job.array.active.get(index) if index is not None and job.array else job.ce
        if ce is not None:
            cache.victims.add(job.key, index, ce, now)
    if job.spec.gang is not None and job.phase is Phase.STARTING:
        job.state_since = now
        arm_gang(cache, job, now)


def _attempt_of(job: JobState, index: int | None) -> int:
    if index is not None and job.array is not None:
        return job.array.child_attempt[index]
    return job.attempt


def was_active(cache: Cache, job: JobState | None, index: int | None) -> bool:
    if job is None:
        return False
    return cache.is_active(job.key, index, _attempt_of(job, index))


def arm_gang(cache: Cache, job: JobState, now: float) -> None:
    """A gang entered Starting: release it whole if its nodes do not all run in time."""
    gang = job.spec.gang
    if gang is not None and job.phase is Phase.STARTING:
        cache.arm(job, start_limit(gang), now)


def gang_fit(cache: Cache, qs: QueueState, gang: Gang) -> QueueFit:
    """Whether any CE of ``qs`` can ever hold the gang (every node on a shape)."""
    ces = [(n, led.ce if (led := cache.ledgers.get(n)) else None)
           for n in qs.spec.compute_environments]  # fmt: skip
    return gang_queue_fit(gang, ces)


def snapshot_fields(cache: Cache) -> dict[str, Any]:
    """The snapshot's views of consumables, victims and releases (empty when unused)."""
    book = cache.consumables
    return {
        "queues_by_name": cache.book.queues,
        "consumables": book.room() if book else None,
        "consumable_totals": {n: p.spec.total for n, p in book.pools.items()} if book else {},
        "victims": cache.victims.by_ce if cache.victims is not None else None,
        "releasing": cache.releasing,
    }
