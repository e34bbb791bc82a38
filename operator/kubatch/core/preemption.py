"""Preemption (opt-in per queue, Kueue-like) and the end of attempts kubatch released itself.

Pure. A queue with ``preemption`` whose job cannot fit on any CE of its order (reason
``InsufficientCapacity``) may reclaim room on ONE of those CEs, in order, from running
attempts (:func:`plan`):

- ``lower_priority``: attempts of queues with a *lower* priority sharing that CE — never of an
  equal or higher one;
- ``fair_share`` (fair-share queues): attempts of the same queue's shares using more than
  their fair share, for a share that stays within its fair share after the admission — never
  the reverse. A share's fair share is the queue's capacity (its Enabled CEs' limits) split
  between its active shares by ``1 / weightFactor``; its usage is what it runs now.

Victims free the least work: lowest queue priority first, then the youngest attempt first
(attempts whose pod does not run yet, then the latest started), and never more than needed: the
chosen set is minimal — no victim could be spared and the job still fit. Each victim gets a
``Preempt`` decision; it keeps its capacity until its pod has ended (its termination grace
period), meanwhile the preemptor waits with reason ``Preempting`` and the CE is closed to
everyone else this cycle, so the freed room goes to the preemptor. Capacity being freed
(victims not ended yet, gangs being released) counts for a preemptor before new victims are
chosen, so no cycle preempts twice for the same need.

A preempted attempt is recorded as interrupted with reason ``Preempted`` and uses up neither
retry attempts nor the interruption budget; the job (or array child) is Runnable again
(:func:`released_end`, shared with gangs released by their start timer). An attempt that
succeeded within its grace period simply succeeded.

Victims are found through :class:`VictimIndex` (Starting/Running attempts per CE with their
age), kept by the cache only once some queue has a preemption policy: without one the
scheduler's hot path pays nothing.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kubatch.core import arrays
from kubatch.core.capacity import Room
from kubatch.core.decisions import Preempt
from kubatch.core.gang import node_job_name
from kubatch.core.lifecycle import Phase, Reason
from kubatch.core.naming import job_name_for_attempt
from kubatch.core.outcomes import AttemptResult
from kubatch.core.resources import Resources, implicit
from kubatch.core.state import RUNNABLE, RUNNING, JobState

if TYPE_CHECKING:
    from kubatch.core.cache import Cache
    from kubatch.core.snapshot import JobView, QueueView, Snapshot

Slot = tuple[str, int | None]
"""(job key, array index or None): one running attempt."""
Releasing = tuple[int, Reason, str | None]
"""An attempt kubatch is stopping on purpose: (attempt, reason, CE)."""
ZERO = Resources()
MAX_PLANS_PER_CYCLE = 64
"""Preemption plans tried per cycle (each scans the running attempts of a CE)."""


Age = tuple[bool, float]
"""How much work an attempt has done: (its pod runs, since when — else since its admission)."""


class VictimIndex:
    """Starting and Running attempts per CE, with their :data:`Age`."""

    __slots__ = ("by_ce", "where")

    def __init__(self) -> None:
        self.by_ce: dict[str, dict[Slot, Age]] = {}
        self.where: dict[Slot, str] = {}

    def add(self, key: str, index: int | None, ce: str, at: float, running: bool = False) -> None:
        slot = (key, index)
        old = self.where.get(slot)
        if old is not None and old != ce:
            self.by_ce.get(old, {}).pop(slot, None)
        self.where[slot] = ce
        self.by_ce.setdefault(ce, {})[slot] = (running, at)

    def started(self, key: str, index: int | None, at: float) -> None:
        """The attempt's pod runs from ``at`` on (its work starts)."""
        ce = self.where.get((key, index))
        if ce is not None:
            self.by_ce[ce][(key, index)] = (True, at)

    def drop(self, key: str, index: int | None) -> None:
        ce = self.where.pop((key, index), None)
        if ce is not None:
            self.by_ce.get(ce, {}).pop((key, index), None)

    def drop_job(self, job: JobState) -> None:
        self.drop(job.key, None)
        if job.array is not None:
            for i in list(job.array.active):
                self.drop(job.key, i)

    @classmethod
    def build(cls, jobs: Iterable[JobState]) -> VictimIndex:
        """From the cache's records (when a first queue with preemption appears); attempts
        running already count as admitted at the time they last changed phase."""
        index = cls()
        for job in jobs:
            if job.array is not None:
                for i, ce in job.array.active.items():
                    index.add(job.key, i, ce, job.state_since, job.array.child_phase[i] == RUNNING)
            elif job.phase in (Phase.STARTING, Phase.RUNNING) and job.ce is not None:
                index.add(job.key, None, job.ce, job.state_since, job.phase is Phase.RUNNING)
        return index


# --------------------------------------------------------------------------- planning


@dataclass(frozen=True, slots=True)
class Plan:
    """The outcome for one waiting job: it waits for ``ce`` to be freed by ``victims`` (none:
    attempts already being stopped there are enough)."""

    ce: str
    victims: tuple[Preempt, ...]
    message: str


class Cycle:
    """One scheduling cycle's preemption accounting (local to one ``schedule`` call).

    ``pending``: per CE, capacity that attempts being stopped will free (before this cycle,
    plus this cycle's victims); ``claimed``: per CE, what waiting preemptors count on.
    """

    __slots__ = ("ces", "chosen", "claimed", "pending", "plans_left", "snap")

    def __init__(self, snap: Snapshot) -> None:
        self.snap = snap
        self.pending: dict[str, Resources] = {}
        self.claimed: dict[str, Resources] = {}
        self.chosen: set[Slot] = set()
        self.ces: set[str] = set()
        self.plans_left = MAX_PLANS_PER_CYCLE
        for (key, _index), (_attempt, _reason, ce) in snap.releasing.items():
            job = snap.jobs.get(key)
            if ce is not None and job is not None:
                self.pending[ce] = self.pending.get(ce, ZERO) + job.spec.size


def fits(room: Room, extra: Resources, size: Resources) -> bool:
    """Pure: ``size`` fits in ``room`` plus ``extra`` (capacity about to be freed)."""
    if size.mcpu > room.mcpu + extra.mcpu or size.memory > room.memory + extra.memory:
        return False
    if size.gpu > room.gpu + extra.gpu:
        return False
    ext = room.ext
    if not size.extended or ext is None:
        return True
    more = dict(extra.extended)
    for k, v in size.extended:
        if k in ext:
            if v > ext[k] + more.get(k, 0):
                return False
        elif v > 0 and not implicit(k):
            return False
    return True


@dataclass(slots=True)
class _Candidate:
    key: str
    index: int | None
    size: Resources
    priority: int
    age: Age
    share: str | None  # set for a fair-share candidate (same queue)
    job: JobView


def plan(
    pc: Cycle,
    qs: QueueView,
    job: JobView,
    floor: int,
    blocked: set[str],
    can_run: Callable[[str], bool],
) -> Plan | None:
    """Pure (spends only the cycle's accounting): victims that make room for ``job`` on the
    first CE of its queue's order (from ``floor``) where that is possible; ``None`` when no
    CE can be freed for it."""
    policy = qs.spec.preemption
    if policy is None or pc.plans_left <= 0:
        return None
    pc.plans_left -= 1
    snap = pc.snap
    size = job.spec.size
    fair = _FairShares(snap, qs) if policy.fair_share and qs.spec.fair_share else None
    own_share = job.spec.share_identifier or ""
    share_ok = fair is not None and fair.usage(own_share) + size.mcpu <= fair.fair(own_share)
    for name in qs.spec.compute_environments[floor:]:
        ce = snap.ces.get(name)
        if ce is None or not ce.enabled or (name in blocked and name not in pc.ces):
            continue
        if not can_run(name):
            continue
        room = snap.rooms[name]
        extra = pc.pending.get(name, ZERO) - pc.claimed.get(name, ZERO)
        if fits(room, extra, size):
            _claim(pc, name, size)
            return Plan(name, (), f"waiting for preempted jobs to end on {name}")
        candidates = _candidates(pc, qs, job, name, fair if share_ok else None)
        chosen: list[_Candidate] = []
        taken: dict[str, int] = {}
        for c in candidates:
            if c.share is not None:
                assert fair is not None
                if fair.usage(c.share) - taken.get(c.share, 0) <= fair.fair(c.share):
                    continue  # that share is within its fair share (now)
                taken[c.share] = taken.get(c.share, 0) + c.size.mcpu
            chosen.append(c)
            extra = extra + c.size
            if fits(room, extra, size):
                break
        else:
            continue
        for c in reversed(list(chosen)):  # never more than needed: a minimal set
            if fits(room, extra - c.size, size):
                chosen.remove(c)
                extra = extra - c.size
        freed = ZERO
        for c in chosen:
            freed = freed + c.size
            pc.chosen.add((c.key, c.index))
        pc.pending[name] = pc.pending.get(name, ZERO) + freed
        _claim(pc, name, size)
        victims = tuple(_decision(c, name, job, qs) for c in chosen)
        return Plan(name, victims, f"preempting {len(victims)} job(s) on {name}")
    return None


def _claim(pc: Cycle, ce: str, size: Resources) -> None:
    pc.claimed[ce] = pc.claimed.get(ce, ZERO) + size
    pc.ces.add(ce)


def _candidates(
    pc: Cycle, qs: QueueView, job: JobView, ce: str, fair: _FairShares | None
) -> list[_Candidate]:
    """Running attempts on ``ce`` this job may preempt, in the order they are taken: lowest
    queue priority first, then youngest first."""
    snap = pc.snap
    policy = qs.spec.preemption
    assert policy is not None
    entries = snap.victims.get(ce, {}) if snap.victims is not None else {}
    prio = qs.spec.priority
    own_share = job.spec.share_identifier or ""
    out: list[tuple[tuple[int, bool, float, str, int], _Candidate]] = []
    for (key, index), age in entries.items():
        if (key, index) in snap.releasing or (key, index) in pc.chosen or key == job.key:
            continue
        v = snap.jobs.get(key)
        if v is None or _stopping(v):
            continue
        vq = snap.queues_by_name.get(v.spec.queue)
        if vq is None:
            continue
        vprio = vq.spec.priority
        share: str | None = None
        if policy.lower_priority and vprio < prio:
            pass
        elif fair is not None and vq.spec.name == qs.spec.name:
            share = v.spec.share_identifier or ""
            if share == own_share:
                continue
        else:
            continue
        c = _Candidate(key, index, v.spec.size, vprio, age, share, v)
        out.append(((vprio, age[0], -age[1], key, -1 if index is None else index), c))
    return [c for _, c in heapq.nsmallest(len(out), out, key=lambda e: e[0])]


def _stopping(v: JobView) -> bool:
    """The attempt is being stopped already (terminate, time limit, array stopping)."""
    if v.spec.terminate_reason is not None or v.stop_reason is not None:
        return True
    return v.array is not None and v.array.stop_reason is not None


def _decision(c: _Candidate, ce: str, job: JobView, qs: QueueView) -> Preempt:
    v = c.job
    spec = v.spec
    if c.index is not None and v.array is not None:
        attempt = v.array.child_attempt[c.index]
    else:
        attempt = v.attempt
    if spec.gang is not None:
        name = node_job_name(spec.name, spec.token, spec.gang.main_node, attempt)
    else:
        name = job_name_for_attempt(spec.name, spec.token, c.index, attempt)
    why = (
        "its share is over its fair share"
        if c.share is not None
        else (f"queue {qs.spec.name} has a higher priority ({qs.spec.priority} > {c.priority})")
    )
    msg = f"preempted for {job.key} on {ce}: {why}"
    return Preempt(c.key, c.index, attempt, name, ce, spec.queue, msg, job.key, qs.spec.name)


class _FairShares:
    """A fair-share queue's shares now: fair share and usage (milli-vCPU) per identifier."""

    __slots__ = ("inv", "total", "used", "weights")

    def __init__(self, snap: Snapshot, qs: QueueView) -> None:
        fs = qs.spec.fair_share
        assert fs is not None
        total = 0
        for name in qs.spec.compute_environments:
            ce = snap.ces.get(name)
            if ce is not None and ce.enabled:
                total += ce.limit().mcpu
        self.total = total
        self.used: dict[str, int] = {k: v for k, v in qs.running_by_share.items() if v > 0}
        for key, _index in snap.releasing:
            j = snap.jobs.get(key)
            if j is not None and j.spec.queue == qs.spec.name:
                ident = j.spec.share_identifier or ""
                self.used[ident] = self.used.get(ident, 0) - j.spec.size.mcpu
        active = set(self.used) | {ident for ident, lst in qs.shares.items() if lst.live}
        self.weights = {ident: 1.0 / fs.weight(ident) for ident in active}
        self.inv = sum(self.weights.values())

    def fair(self, ident: str) -> float:
        w = self.weights.get(ident)
        if w is None or self.inv <= 0:
            return 0.0
        return self.total * w / self.inv

    def usage(self, ident: str) -> int:
        return self.used.get(ident, 0)


# --------------------------------------------------------------------------- ends


def released_end(
    cache: Cache,
    job: JobState,
    index: int | None,
    attempt: int,
    reason: Reason,
    result: AttemptResult,
    now: float,
) -> bool:
    """An attempt kubatch stopped on purpose (``Preempted``, ``GangStartTimeout``) ended: the
    job (or child) is Runnable again, recorded as interrupted, counting against neither retry
    attempts nor the interruption budget. Returns ``False`` when the normal path applies
    instead: the attempt succeeded meanwhile, or the job is being terminated/stopped."""
    if result.ok:
        return False
    what = "preempted" if reason is Reason.PREEMPTED else "released: not every node ran in time"
    msg = f"attempt {attempt} {what}; it runs again (not counted as a failure or interruption)"
    if index is None or job.array is None:
        if job.phase not in (Phase.STARTING, Phase.RUNNING) or job.attempt != attempt:
            return False
        if job.spec.terminate_reason is not None or job.ce is None:
            return False
        cache.release(job, job.ce)
        job.stop_reason, job.stop_fallback = None, False
        cache.retry(job, None, attempt, reason, msg, True, now)
        return True
    arr = job.array
    if arr.stop_reason is not None or arr.active.get(index) is None:
        return False
    if arr.child_attempt[index] != attempt:
        return False
    ce = arr.active.pop(index)
    cache.release(job, ce)
    if result.exit_code is not None:
        arr.ran = True
    arr.set_phase(index, RUNNABLE)
    heapq.heappush(arr.ready, index)
    cache.outbox.dirty_arrays.add(job.key)
    cache.retry(job, index, attempt, reason, msg, True, now)
    arrays.requeue(cache, job)
    return True
