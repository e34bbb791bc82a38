"""Array jobs: what the cache does when a child is admitted, runs, ends or is settled.

Pure, in-memory; these functions are the array half of ``kubatch.core.cache`` (they take the
cache whose records they change). Semantics (SEMANTICS §4, as AWS): every child runs to its
own end — a child's final failure never stops its siblings — and the parent is terminal only
when every child is: Succeeded if all succeeded, else Failed, its message naming the failed
indices (bounded). Terminating the parent, or ``maxFailedChildren`` being exceeded, *stops*
the array: waiting children fail at once, running ones are stopped, and the parent fails when
the last of them has ended. ``arrayStatusSummary`` always adds up to the size.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from typing import TYPE_CHECKING

from kubatch.core.decisions import Admit, Terminate
from kubatch.core.graph import is_sequential, satisfies
from kubatch.core.lifecycle import Phase, Reason, array_parent_phase
from kubatch.core.model import Dependency, DependencyType
from kubatch.core.naming import job_name_for_attempt
from kubatch.core.outcomes import AttemptResult, Counts, FailVerdict, counts_as, judge
from kubatch.core.state import (
    CODE,
    FAILED,
    PENDING,
    PHASES,
    RUNNABLE,
    RUNNING,
    STARTING,
    SUCCEEDED,
    ArrayState,
    JobState,
)

if TYPE_CHECKING:
    from kubatch.core.cache import Cache

MAX_LISTED = 20
"""How many failed indices a parent's message names (bounded status)."""


def failed_message(arr: ArrayState) -> str:
    """Pure: ``3 of 10000 children failed: 7, 812, 9999`` (at most ``MAX_LISTED`` indices)."""
    n = arr.counts[FAILED]
    own = sorted(arr.failed)
    listed = ", ".join(str(i) for i in own[:MAX_LISTED])
    more = f" and {len(own) - MAX_LISTED} more" if len(own) > MAX_LISTED else ""
    text = f"{n} of {arr.size} children failed"
    return text + (f": {listed}{more}" if listed else "")


def by_queue(jobs: Iterable[JobState]) -> dict[str, dict[Phase, int]]:
    """Pure: array children per queue and phase."""
    out: dict[str, dict[Phase, int]] = {}
    for job in jobs:
        if job.array is not None:
            per = out.setdefault(job.spec.queue, {})
            for phase, n in job.array.summary():
                per[phase] = per.get(phase, 0) + n
    return out


def parallelism(job: JobState) -> int:
    """Pure: most children of ``job`` running at once."""
    assert job.array is not None
    p = job.spec.parallelism
    return job.array.size if p is None or p <= 0 else p


def settle_all(arr: ArrayState, code: int) -> None:
    """Every child that is not final yet becomes ``code`` (a finished parent shows no
    waiting child)."""
    for i in range(arr.size):
        if arr.child_phase[i] not in (SUCCEEDED, FAILED):
            arr.set_phase(i, code)
    arr.ready.clear()


def open_children(cache: Cache, job: JobState) -> bool:
    """The parent became Runnable: children without open edges become Runnable (SEQUENTIAL:
    only child 0). Returns whether any child is ready."""
    arr = job.array
    assert arr is not None
    seq = is_sequential(job.spec)
    for i in range(arr.size):
        if arr.child_phase[i] != PENDING:
            continue
        if seq and i > 0:
            arr.child_wait[i] += 1
        if arr.child_wait[i] == 0:
            arr.set_phase(i, RUNNABLE)
            arr.ready.append(i)
    heapq.heapify(arr.ready)
    cache.outbox.dirty_arrays.add(job.key)
    return bool(arr.ready)


def link_n_to_n(job: JobState, dep: Dependency, parent: JobState) -> tuple[Reason, str] | None:
    """Count the per-child edges of an N_TO_N dependency on a known ``parent``; returns why
    it cannot hold (not two arrays of one size, or a child that already failed it)."""
    if job.array is None or parent.array is None or job.array.size != parent.array.size:
        return (
            Reason.INVALID_SPEC,
            f"N_TO_N dependency on {parent.spec.name}: both must be arrays of the same size",
        )
    arr, parr = job.array, parent.array
    for i in range(arr.size):
        code = parr.child_phase[i]
        if code in (SUCCEEDED, FAILED):
            if not satisfies(dep.condition, PHASES[code]):
                return Reason.DEPENDENCY_FAILED, f"{parent.spec.name}[{i}] is {PHASES[code]}"
        else:
            arr.child_wait[i] += 1
    return None


def requeue(cache: Cache, job: JobState) -> None:
    """Put the parent back in its queue when it has ready children and a free slot."""
    arr = job.array
    assert arr is not None
    if (
        arr.stop_reason is None
        and arr.ready
        and not job.queued
        and len(arr.active) < parallelism(job)
        and job.phase in (Phase.RUNNABLE, Phase.STARTING, Phase.RUNNING)
    ):
        qs = cache.book.get(job.spec.queue)
        if qs is None:
            job.reason = Reason.UNKNOWN_QUEUE
            cache.book.orphan(job)
            return
        job.order = qs.order_of(job)
        qs.list_for(job).add(job)


def _refresh_phase(cache: Cache, job: JobState) -> None:
    arr = job.array
    assert arr is not None
    job.phase = array_parent_phase(
        job.phase, starting=arr.counts[STARTING], running=arr.counts[RUNNING], ran=arr.ran
    )
    cache.outbox.dirty_arrays.add(job.key)


def child_admitted(cache: Cache, job: JobState, d: Admit) -> None:
    arr = job.array
    assert arr is not None
    assert d.index is not None
    if arr.ready and arr.ready[0] == d.index:
        heapq.heappop(arr.ready)
    else:
        arr.ready.remove(d.index)
        heapq.heapify(arr.ready)
    arr.child_attempt[d.index] = d.attempt
    arr.active[d.index] = d.compute_environment
    arr.set_phase(d.index, STARTING)
    _refresh_phase(cache, job)
    if not arr.ready or len(arr.active) >= parallelism(job):
        cache.book.drop(job)
    cache.outbox.fresh.discard(job.key)


def child_rolled_back(cache: Cache, job: JobState, d: Admit, now: float) -> None:
    """The Kubernetes Job of an admitted child could not be created."""
    arr = job.array
    assert arr is not None
    assert d.index is not None
    if arr.active.pop(d.index, None) is None:
        return
    cache.release(job, d.compute_environment)
    arr.child_attempt[d.index] -= 1
    if arr.stop_reason is not None:
        arr.set_phase(d.index, FAILED)
        _check_done(cache, job, now)
        return
    arr.set_phase(d.index, RUNNABLE)
    heapq.heappush(arr.ready, d.index)
    requeue(cache, job)
    cache.outbox.dirty_arrays.add(job.key)


def child_started(cache: Cache, job: JobState, index: int, attempt: int) -> None:
    arr = job.array
    assert arr is not None
    if arr.child_phase[index] == STARTING and arr.child_attempt[index] == attempt:
        arr.set_phase(index, RUNNING)
        arr.ran = True
        _refresh_phase(cache, job)


def child_finished(
    cache: Cache, job: JobState, index: int, attempt: int, result: AttemptResult, now: float
) -> None:
    """An attempt of child ``index`` ended: retry it, or settle it for good."""
    arr = job.array
    assert arr is not None
    if index not in arr.active or arr.child_attempt[index] != attempt:
        return
    ce = arr.active.pop(index)
    cache.release(job, ce)
    cache.outbox.dirty_arrays.add(job.key)
    if result.exit_code is not None:
        arr.ran = True
    if ce not in cache.ledgers and arr.stop_reason is None and not result.ok:
        arr.set_phase(index, RUNNABLE)  # its CE was deleted: run again elsewhere, uncounted
        heapq.heappush(arr.ready, index)
        msg = f"compute environment {ce} was deleted; the child runs again elsewhere"
        reason = Reason.COMPUTE_ENVIRONMENT_DELETED
        cache.retry(job, index, attempt, reason, msg, result.interrupted, now)
        requeue(cache, job)
        return
    if arr.stop_reason is not None or result.ok:
        arr.set_phase(index, SUCCEEDED if result.ok else FAILED)
        _settled(cache, job, index, now)
        _check_done(cache, job, now)
        requeue(cache, job)  # a parallelism slot is free again
        return
    counted = counts_as(result)
    if counted is Counts.FAILURE:
        arr.child_failures[index] = min(255, arr.child_failures[index] + 1)
    elif counted is Counts.INTERRUPTION:
        arr.child_interruptions[index] = min(255, arr.child_interruptions[index] + 1)
    verdict = judge(
        job.spec,
        attempt,
        result,
        failures=arr.child_failures[index],
        interruptions=arr.child_interruptions[index],
        can_fall_back=cache.next_ce_index(job, ce) is not None,
    )
    if isinstance(verdict, FailVerdict):
        arr.set_phase(index, FAILED)
        arr.failed.append(index)
        job.message = f"child {index}: {verdict.message}"
        _settled(cache, job, index, now)
        limit = job.spec.max_failed_children
        if limit is not None and len(arr.failed) > limit:
            msg = f"{failed_message(arr)} (more than maxFailedChildren={limit}): array stopped"
            stop(cache, job, Reason.ARRAY_CHILD_FAILED, msg)
        _check_done(cache, job, now)
        requeue(cache, job)
        return
    if verdict.fallback:
        cache.fall_back(job, ce)
        arr.child_interruptions[index] = 0
    arr.set_phase(index, RUNNABLE)
    heapq.heappush(arr.ready, index)
    cache.retry(job, index, attempt, verdict.reason, verdict.message, result.interrupted, now)
    requeue(cache, job)


def stop(cache: Cache, job: JobState, reason: Reason, message: str) -> None:
    """Stop the array: waiting children fail now, running ones are stopped (a Terminate
    each); the parent fails when the last one has ended (``_check_done``)."""
    arr = job.array
    assert arr is not None
    if arr.stop_reason is not None:
        return
    arr.stop_reason = (reason, message)
    job.reason, job.message = reason, message
    for i in range(arr.size):
        if arr.child_phase[i] in (PENDING, RUNNABLE):
            arr.set_phase(i, FAILED)
    arr.ready.clear()
    cache.book.drop(job)
    for i in sorted(arr.active):
        name = job_name_for_attempt(job.spec.name, job.spec.token, i, arr.child_attempt[i])
        cache.outbox.events.append(
            Terminate(job.key, i, arr.child_attempt[i], name, reason, message)
        )
    cache.outbox.dirty_arrays.add(job.key)


def stopped(cache: Cache, job: JobState, reason: Reason, message: str) -> bool:
    """The parent is failing (terminate, dependency, fail fast ...): stop its children.
    Returns whether the parent may fail now (no child left running)."""
    arr = job.array
    assert arr is not None
    if arr.active:
        stop(cache, job, reason, message)
        return False
    settle_all(arr, FAILED)
    return True


def _check_done(cache: Cache, job: JobState, now: float) -> None:
    """The parent's phase after a child changed; terminal once every child is."""
    arr = job.array
    assert arr is not None
    if job.phase.terminal:
        return
    _refresh_phase(cache, job)
    if arr.terminal < arr.size or arr.active:
        return
    if arr.counts[SUCCEEDED] == arr.size:
        cache.succeed(job, now)
        return
    reason, message = arr.stop_reason or (Reason.ARRAY_CHILD_FAILED, failed_message(arr))
    cache.fail(job, reason, message, now)


def _settled(cache: Cache, job: JobState, index: int, now: float) -> None:
    """Child ``index`` is final: release SEQUENTIAL successors and N_TO_N dependents (a
    failed child of a SEQUENTIAL array fails the children after it)."""
    arr = job.array
    assert arr is not None
    code = arr.child_phase[index]
    if index + 1 < arr.size and is_sequential(job.spec):
        if code == SUCCEEDED:
            _edge_satisfied(cache, job, index + 1)
        else:
            for j in range(index + 1, arr.size):
                if arr.child_phase[j] == PENDING:
                    arr.set_phase(j, FAILED)
                    _settle_dependents(cache, job, j, FAILED, now)
    _settle_dependents(cache, job, index, code, now)


def _settle_dependents(cache: Cache, job: JobState, index: int, code: int, now: float) -> None:
    arr = job.array
    assert arr is not None
    for dependent_key, dep in cache.graph.dependents(job.key):
        if dep.type is not DependencyType.N_TO_N:
            continue
        d = cache.jobs.get(dependent_key)
        if d is None or d.phase.terminal or d.array is None or d.array.size != arr.size:
            continue
        if satisfies(dep.condition, PHASES[code]):
            _edge_satisfied(cache, d, index)
            continue
        darr = d.array
        if darr.child_phase[index] in (PENDING, RUNNABLE):
            if darr.child_phase[index] == RUNNABLE:
                darr.ready.remove(index)
                heapq.heapify(darr.ready)
            darr.set_phase(index, FAILED)
            darr.failed.append(index)
            d.message = f"child {index}: dependency {job.spec.name}[{index}] is {PHASES[code]}"
            cache.outbox.dirty_arrays.add(d.key)
            _settled(cache, d, index, now)
            _check_done(cache, d, now)


def _edge_satisfied(cache: Cache, job: JobState, index: int) -> None:
    arr = job.array
    assert arr is not None
    if arr.child_wait[index] > 0:
        arr.child_wait[index] -= 1
    if (
        arr.child_wait[index] == 0
        and arr.child_phase[index] == PENDING
        and job.phase not in (Phase.PENDING, Phase.SUBMITTED)
        and arr.stop_reason is None
    ):
        arr.set_phase(index, RUNNABLE)
        heapq.heappush(arr.ready, index)
        cache.outbox.dirty_arrays.add(job.key)
        requeue(cache, job)


def restore_child(
    cache: Cache,
    job: JobState,
    index: int,
    phase: Phase,
    attempt: int,
    now: float,
    compute_environment: str | None,
    failures: int = 0,
    interruptions: int = 0,
) -> None:
    """After a restart: child ``index`` is ``phase`` (from its record, or from its Kubernetes
    Job). Starting/Running children take their capacity on ``compute_environment`` again;
    final ones are settled; a waiting one only gets its counters back."""
    arr = job.array
    assert arr is not None
    arr.child_attempt[index] = max(arr.child_attempt[index], attempt)
    arr.child_failures[index] = max(arr.child_failures[index], min(255, failures))
    arr.child_interruptions[index] = max(arr.child_interruptions[index], min(255, interruptions))
    if arr.child_phase[index] in (STARTING, RUNNING, SUCCEEDED, FAILED):
        return
    if phase in (Phase.STARTING, Phase.RUNNING) and compute_environment:
        arr.set_phase(index, CODE[phase])
        arr.active[index] = compute_environment
        arr.ran = arr.ran or phase is Phase.RUNNING
        led = cache.ledgers.get(compute_environment)
        if led is not None:
            led.assume(job.spec.size)
        cache.book.running(job, job.spec.size.mcpu, now)
    elif phase.terminal:
        arr.set_phase(index, CODE[phase])
        arr.ran = True
        if phase is Phase.FAILED:
            arr.failed.append(index)
        _settled(cache, job, index, now)
    else:
        return
    arr.stale = True  # ``ready`` is rebuilt once, at the next snapshot (no O(n) per child)
    cache.outbox.dirty_arrays.add(job.key)
    if job.queued and len(arr.active) >= parallelism(job):
        cache.book.drop(job)
    _check_done(cache, job, now)


def rebuild_ready(cache: Cache, job: JobState) -> None:
    """After restored children: the ready heap is exactly the Runnable children again."""
    arr = job.array
    assert arr is not None
    arr.ready = [i for i in range(arr.size) if arr.child_phase[i] == RUNNABLE]
    arr.stale = False
    if arr.ready:
        requeue(cache, job)
    else:
        cache.book.drop(job)
