"""Reconstruction after an operator restart, and stopping what a deleted CE ran.

Pure, in-memory. A restarted operator feeds each BatchJob to the cache like a new one and then
*reconstructs* it in the phase its status records — a reconstruction, not a transition: the
job was in that phase all along. A Starting/Running job takes its capacity again, a finished
one settles its dependents.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from kubatch.core import arrays
from kubatch.core.decisions import Terminate
from kubatch.core.lifecycle import Phase, Reason
from kubatch.core.model import JobSpec
from kubatch.core.naming import job_name_for_attempt
from kubatch.core.state import CODE, JobState

if TYPE_CHECKING:
    from kubatch.core.cache import Cache

WAITING = frozenset({Phase.SUBMITTED, Phase.PENDING, Phase.RUNNABLE})
"""Phases whose status a ``SetWaiting`` writes."""


def job(
    cache: Cache,
    spec: JobSpec,
    now: float,
    phase: Phase,
    attempt: int,
    failures: int,
    compute_environment: str | None,
    waiting: tuple[Reason | None, int | None] | None = None,
) -> None:
    """Feed ``spec`` and reconstruct it in ``phase`` (``attempt`` attempts so far, of which
    ``failures`` counted against ``retryStrategy.attempts``). ``waiting``: the reason and
    queue position its status shows, remembered as written (a restart rewrites a waiting
    job's status only when they changed: its position by the refresh's hysteresis)."""
    cache.upsert_job(spec, now)
    state = cache.jobs[spec.key]
    state.attempt, state.failures = attempt, failures
    if waiting is not None and state.phase is phase and phase in WAITING:
        reason, position = waiting
        state.last_status = (phase, reason, position)
        if position is not None:
            state.position = position
    if phase in (Phase.STARTING, Phase.RUNNING) and compute_environment and state.array is None:
        cache.book.drop(state)
        cache.book.forget_orphan(state)
        state.phase, state.ce, state.reason = phase, compute_environment, None
        led = cache.ledgers.get(compute_environment)
        if led is not None:
            led.assume(spec.size)
        cache.book.running(state, spec.size.mcpu, now)
        cache.outbox.fresh.discard(spec.key)
    elif phase.terminal and not state.phase.terminal:
        cache.book.drop(state)
        cache.book.forget_orphan(state)
        state.phase = phase
        if state.array is not None:
            arrays.settle_all(state.array, CODE[phase])
        cache.outbox.forget(spec.key)
        cache.settle_dependents(state, now)


def stops_on(jobs: Iterable[JobState], ce: str) -> list[Terminate]:
    """Pure: a Terminate for every attempt running on the deleted CE ``ce``."""
    reason, msg = Reason.COMPUTE_ENVIRONMENT_DELETED, f"compute environment {ce} deleted"
    out = []
    for j in jobs:
        if j.phase.terminal:
            continue
        if j.array is not None:
            for i, where in sorted(j.array.active.items()):
                if where == ce:
                    n = j.array.child_attempt[i]
                    name = job_name_for_attempt(j.spec.name, j.spec.token, i, n)
                    out.append(Terminate(j.key, i, n, name, reason, msg))
        elif j.ce == ce and j.phase in (Phase.STARTING, Phase.RUNNING):
            name = job_name_for_attempt(j.spec.name, j.spec.token, None, j.attempt)
            out.append(Terminate(j.key, None, j.attempt, name, reason, msg))
    return out
