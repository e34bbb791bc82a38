"""The scheduler: ``schedule(snapshot, now) -> list[Decision]``.

Pure: reads the snapshot (it never mutates the cache; CE room is a per-cycle copy) and
returns commands. Order of service: queues by priority (highest first); within a queue FIFO
by submission time without head-of-line blocking (``StrictFIFO`` stops at the first job that
does not fit and reserves its CEs against lower-priority queues), or fair share; each job goes
to the first Enabled CE in its queue's order (from its fallback floor) that has room.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator, Sequence

from kubatch.core import preemption
from kubatch.core.consumables import shortfall, spend, wait_message
from kubatch.core.decisions import (
    Admit,
    Decision,
    Fail,
    SetWaiting,
    SkipComputeEnvironment,
    Terminate,
    UpdateArraySummary,
)
from kubatch.core.fit import Fit, ce_fit, queue_fit
from kubatch.core.gang import can_run as gang_can_run
from kubatch.core.gang import never_fits as gang_never_fits
from kubatch.core.gang import node_job_name
from kubatch.core.lifecycle import Phase, Reason, array_parent_phase
from kubatch.core.model import Gang, TimeLimitAction
from kubatch.core.naming import job_name_for_attempt
from kubatch.core.resources import Resources
from kubatch.core.snapshot import JobView, QueueView, Snapshot
from kubatch.core.state import PHASES, RUNNABLE, RUNNING, STARTING

_MESSAGES = {
    Reason.INSUFFICIENT_CAPACITY: "waiting for capacity in the queue's compute environments",
    Reason.QUEUE_DISABLED: "the job queue is disabled",
    Reason.COMPUTE_ENVIRONMENT_DISABLED: "no Enabled compute environment in the queue's order",
    Reason.COMPUTE_ENVIRONMENT_NOT_FOUND: "the queue's compute environments do not exist (yet)",
    Reason.BUDGET_EXCEEDED: "the queue's spending limit is reached: admissions wait",
    Reason.PARALLELISM_LIMIT: "array parallelism reached",
    Reason.WAITING_FOR_SHARE: "waiting for its fair share",
    Reason.BLOCKED_BY_QUEUE_HEAD: "StrictFIFO: waiting behind the queue head",
    Reason.UNKNOWN_QUEUE: "the job queue does not exist (yet)",
    Reason.WAITING_FOR_DEPENDENCIES: "waiting for dependencies",
    Reason.CONSUMABLE_UNAVAILABLE: "waiting for a consumable resource",
    Reason.PREEMPTING: "waiting for preempted jobs to end",
    Reason.JOB_CREATE_FAILED: (
        "its Kubernetes Job could not be created (the JobCreateFailed Event says why); "
        "the jobs behind it go first until it is tried again"
    ),
}


class _Cycle:
    """Per-cycle working state (local to one ``schedule`` call)."""

    __slots__ = (
        "admitted",
        "arrays",
        "blocked",
        "budget",
        "ce_fits",
        "cons",
        "decisions",
        "fits",
        "floors",
        "messages",
        "now",
        "pre",
        "snap",
        "waiting",
    )

    def __init__(self, snap: Snapshot, now: float) -> None:
        self.snap = snap
        self.now = now
        self.decisions: list[Decision] = []
        self.admitted: set[str] = set()
        self.arrays: dict[str, int] = {}  # array key -> children admitted this cycle
        self.blocked: set[str] = set()  # CEs reserved by a higher-priority queue this cycle
        self.budget = snap.config.max_admissions_per_cycle
        self.floors: dict[str, int] = {}  # fallbacks decided this cycle
        self.waiting: dict[str, tuple[Phase, Reason, int | None]] = {}
        self.fits: dict[tuple[str, Resources], str | None] = {}  # (queue, size) -> no-fit msg
        self.ce_fits: dict[tuple[str, Resources], bool] = {}  # (CE, size) -> can ever run
        self.messages: dict[str, str] = {}  # waiting jobs whose message names something
        self.cons = snap.consumables  # consumable units left this cycle (None: no resource)
        self.pre: preemption.Cycle | None = None  # preemption accounting, once needed


def schedule(snapshot: Snapshot, now: float) -> list[Decision]:
    """Pure: the decisions of one cycle (see module doc and docs/core.md)."""
    cyc = _Cycle(snapshot, now)
    out = cyc.decisions
    out.extend(d for d in snapshot.outbox if not isinstance(d, UpdateArraySummary))
    summaries = {d.job_key: d for d in snapshot.outbox if isinstance(d, UpdateArraySummary)}
    failed: set[str] = set()
    for key, phase, _since, limit in snapshot.expired:
        job = snapshot.jobs.get(key)
        if job is None or key in failed:
            continue
        if limit.reason is not None and (job.reason is None or job.reason != limit.reason):
            continue
        msg = f"{phase} for more than {limit.max_time_seconds}s"
        if limit.release:  # a gang whose nodes did not all run
            gang = job.spec.gang
            if phase is Phase.STARTING and gang is not None:
                name = node_job_name(job.spec.name, job.spec.token, gang.main_node, job.attempt)
                why = f"not every node ran within {limit.max_time_seconds}s of the admission"
                out.append(Terminate(key, None, job.attempt, name, Reason.GANG_START_TIMEOUT, why))
            continue
        qs = snapshot.queue(job.spec.queue)
        if (
            limit.action is TimeLimitAction.FALLBACK
            and qs is not None
            and phase is not (Phase.STARTING)
        ):
            nxt = job.ce_floor + 1
            if nxt < len(qs.spec.compute_environments):
                cyc.floors[key] = nxt
                out.append(SkipComputeEnvironment(key, nxt))
                continue
        if phase is Phase.STARTING:
            if job.array is None:  # stop the attempt; the cache fails it or falls back
                fallback = limit.action is TimeLimitAction.FALLBACK
                out.append(
                    Terminate(
                        key,
                        None,
                        job.attempt,
                        job_name_for_attempt(job.spec.name, job.spec.token, None, job.attempt),
                        Reason.STATE_TIME_LIMIT,
                        msg + f": {limit.action}",
                        fallback,
                    )
                )
            continue
        failed.add(key)
        out.append(Fail(key, Reason.STATE_TIME_LIMIT, msg + f": {limit.action}"))
    cyc.admitted |= failed
    for qs in snapshot.queues:
        if not qs.spec.enabled:
            _walk_disabled(cyc, qs, Reason.QUEUE_DISABLED)
        elif qs.spec.name in snapshot.budgets:
            _walk_disabled(cyc, qs, Reason.BUDGET_EXCEEDED, every_cycle=True)
        elif qs.spec.fair_share is not None:
            _walk_fair_share(cyc, qs, now)
        else:
            _walk_fifo(cyc, qs)
    # array summaries as they will be after this cycle's admissions (one write, not two)
    for key, n in cyc.arrays.items():
        job = snapshot.jobs[key]
        assert job.array is not None
        counts = list(job.array.counts)
        counts[RUNNABLE] -= n
        counts[STARTING] += n
        summary = tuple((PHASES[c], k) for c, k in enumerate(counts) if k)
        phase = array_parent_phase(
            job.phase, starting=counts[STARTING], running=counts[RUNNING], ran=job.array.ran
        )
        if (phase, summary) != job.last_summary:
            summaries[key] = UpdateArraySummary(key, phase, summary)
        else:
            summaries.pop(key, None)
    out.extend(summaries.values())
    # fresh jobs the walks did not reach still get their first status (position estimated
    # from their place at submission; exact at the next refresh)
    queues = {q.spec.name: q for q in snapshot.queues}
    gone = _admitted_per_queue(cyc) if snapshot.fresh else {}
    for key in snapshot.fresh:
        if key in cyc.admitted or key in cyc.waiting:
            continue
        job = snapshot.jobs.get(key)
        if job is None or job.phase not in (Phase.SUBMITTED, Phase.PENDING, Phase.RUNNABLE):
            continue
        reason = job.reason or Reason.INSUFFICIENT_CAPACITY
        if job.phase is Phase.RUNNABLE and job.queued:
            qs = queues.get(job.spec.queue)
            if qs is not None and not qs.spec.enabled:
                reason = Reason.QUEUE_DISABLED
            elif qs is not None and qs.spec.name in snapshot.budgets:
                reason = Reason.BUDGET_EXCEEDED
            elif qs is not None and qs.spec.fair_share is not None:
                reason = Reason.WAITING_FOR_SHARE
            elif qs is not None and qs.spec.strict_fifo:
                reason = Reason.BLOCKED_BY_QUEUE_HEAD
        estimate = job.position
        if estimate is not None and job.queued and (ahead := gone.get(job.spec.queue)):
            # the walk stopped before it: every job it admitted from this queue was ahead
            estimate = max(1, estimate - ahead)
        cyc.waiting[key] = (job.phase, reason, estimate)
    for key, (phase, reason, pos) in cyc.waiting.items():
        job = snapshot.jobs[key]
        if job.last_status == (phase, reason, pos):
            continue
        last = job.last_status
        if last is not None and last[:2] == (phase, reason):
            if key in snapshot.fresh:  # restored after a restart: its status was written
                if not _moved_enough(last[2], pos):
                    continue
            elif not (snapshot.full_refresh and _moved_enough(last[2], pos)):
                continue  # only the position moved (a little): written at a later refresh
        resumes = None
        if reason is Reason.BUDGET_EXCEEDED and (b := snapshot.budgets.get(job.spec.queue)):
            resumes = b.blocked_until
        msg = cyc.messages.get(key) or _MESSAGES.get(reason, str(reason))
        out.append(SetWaiting(key, phase, reason, msg, pos, resumes))
    return out


def _admitted_per_queue(cyc: _Cycle) -> dict[str, int]:
    """Single jobs admitted this cycle per FIFO queue: they left its list (an array parent
    stays in it while children wait; a fair-share queue's lists are per share)."""
    out: dict[str, int] = {}
    fair = {q.spec.name for q in cyc.snap.queues if q.spec.fair_share is not None}
    for key in cyc.admitted:
        job = cyc.snap.jobs.get(key)
        if job is not None and job.array is None and job.spec.queue not in fair:
            out[job.spec.queue] = out.get(job.spec.queue, 0) + 1
    return out


def _refresh(cyc: _Cycle, job: JobView, reason: Reason, pos: int) -> None:
    """A job the walk only counts: queue its status if it is worth a write."""
    last = job.last_status
    if (
        last is None
        or last[0] is not Phase.RUNNABLE
        or last[1] is not reason
        or _moved_enough(last[2], pos)
    ):
        cyc.waiting[job.key] = (Phase.RUNNABLE, reason, pos)


def _moved_enough(old: int | None, new: int | None) -> bool:
    """Pure: a refreshed position is worth a status write: exact below 100, else when it
    moved by at least 10% (hysteresis: deep in a long queue positions change every cycle)."""
    if old is None or new is None:
        return old != new
    return new < 100 or abs(new - old) * 10 >= old


def _walk_disabled(cyc: _Cycle, qs: QueueView, reason: Reason, every_cycle: bool = False) -> None:
    """A queue that admits nothing now: its waiting jobs get ``reason`` and positions (on
    refresh cycles, or every cycle for a queue that only just stopped admitting)."""
    if not cyc.snap.full_refresh and not every_cycle:
        return  # fresh jobs are handled by the caller
    pos = 1  # 1-based: 1 = next to start
    depth = cyc.snap.config.position_refresh_depth
    for lst in [qs.fifo, *qs.shares.values()]:
        for job in lst:
            if pos > depth:
                return
            _refresh(cyc, job, reason, pos)
            pos += 1


def _try_admit(cyc: _Cycle, qs: QueueView, job: JobView) -> Reason | None:
    """Admit ``job`` (or as many ready children as allowed); ``None`` when admitted."""
    snap = cyc.snap
    size = job.spec.size
    gang = job.spec.gang
    order = qs.spec.compute_environments
    floor = cyc.floors.get(job.key, job.ce_floor)
    target: str | None = None
    any_enabled = False
    for i in range(floor, len(order)):
        name = order[i]
        ce = snap.ces.get(name)
        if ce is None or not ce.enabled:
            continue
        any_enabled = True
        if name in cyc.blocked or not (
            _can_run(cyc, name, size) if gang is None else gang_can_run(gang, ce)
        ):
            continue
        if snap.rooms[name].fits(size):
            target = name
            break
    if target is None:
        if not any_enabled:
            return _no_ce_reason(snap, order[floor:])
        return Reason.INSUFFICIENT_CAPACITY
    arr = job.array
    needs = job.spec.consumables
    if arr is None:
        if needs and _short(cyc, job):
            return Reason.CONSUMABLE_UNAVAILABLE
        _admit(cyc, qs, job, None, job.attempt + 1, target)
        return None
    room = (job.spec.parallelism or arr.size) - len(arr.active)
    if room <= 0:
        return Reason.PARALLELISM_LIMIT
    admitted = 0
    targets = [
        n
        for n in order[order.index(target) :]
        if (ce := snap.ces.get(n)) is not None
        and ce.enabled
        and n not in cyc.blocked
        and _can_run(cyc, n, size)
    ]
    for idx in heapq.nsmallest(min(room, len(arr.ready), cyc.budget), arr.ready):
        while targets and not snap.rooms[targets[0]].fits(size):
            targets.pop(0)  # this CE is full: the next children go to the next CE in order
        if not targets:
            break
        if needs and _short(cyc, job):
            return None if admitted else Reason.CONSUMABLE_UNAVAILABLE
        _admit(cyc, qs, job, idx, arr.child_attempt[idx] + 1, targets[0])
        admitted += 1
    if admitted == 0:
        return Reason.INSUFFICIENT_CAPACITY
    return None


def _short(cyc: _Cycle, job: JobView) -> bool:
    """``job`` cannot take its consumable resources now: say which (and keep what is left of
    it from the jobs after this one this cycle, so that large requests are not starved)."""
    room = cyc.cons if cyc.cons is not None else {}
    short = shortfall(job.spec.consumables, room)
    if short is None:
        return False
    name = short[0]
    cyc.messages[job.key] = wait_message(short, cyc.snap.consumable_totals.get(name, 0))
    if cyc.cons is not None and name in cyc.cons:
        cyc.cons[name] = min(cyc.cons[name], 0)
    return True


def _admit(
    cyc: _Cycle, qs: QueueView, job: JobView, index: int | None, attempt: int, ce_name: str
) -> None:
    snap = cyc.snap
    size = job.spec.size
    snap.rooms[ce_name].take(size)
    cyc.budget -= 1
    spec = job.spec
    if spec.consumables and cyc.cons is not None:
        spend(spec.consumables, cyc.cons)
    name = (
        job_name_for_attempt(spec.name, spec.token, index, attempt)
        if spec.gang is None
        else node_job_name(spec.name, spec.token, spec.gang.main_node, attempt)
    )
    cyc.decisions.append(
        Admit(
            job.key,
            index,
            attempt,
            ce_name,
            snap.ces[ce_name].capacity_type,
            qs.spec.name,
            size,
            name,
            spec.timeout_seconds,
        )
    )
    if index is None:
        cyc.admitted.add(job.key)
    else:
        cyc.arrays[job.key] = cyc.arrays.get(job.key, 0) + 1


def _saturated(cyc: _Cycle, qs: QueueView) -> bool:
    """No Enabled, unblocked CE of the queue has room for the queue's smallest job."""
    m = qs.min_size
    if m is None:
        return False
    snap = cyc.snap
    for name in qs.spec.compute_environments:
        ce = snap.ces.get(name)
        if ce is None or not ce.enabled or name in cyc.blocked:
            continue
        if snap.rooms[name].fits(m):
            return False
    return True


def _runs_on(cyc: _Cycle, ce_name: str, size: Resources, gang: Gang | None) -> bool:
    """Whether a job (of ``size``, or the ``gang``) can ever run on ``ce_name``."""
    if gang is None:
        return _can_run(cyc, ce_name, size)
    return gang_can_run(gang, cyc.snap.ces.get(ce_name))


def _can_run(cyc: _Cycle, ce_name: str, size: Resources) -> bool:
    """Whether a job of ``size`` can ever run on ``ce_name`` (memoised per cycle)."""
    key = (ce_name, size)
    ok = cyc.ce_fits.get(key)
    if ok is None:
        ok = cyc.ce_fits[key] = ce_fit(size, cyc.snap.ces.get(ce_name)).fit is not Fit.NO
    return ok


def _never_fits(cyc: _Cycle, qs: QueueView, size: Resources) -> str | None:
    """Why no CE of the queue can ever hold ``size`` (``None``: some can, or cannot tell
    yet); memoised per cycle: sizes repeat."""
    key = (qs.spec.name, size)
    if key not in cyc.fits:
        ces = cyc.snap.ces
        verdict = queue_fit(size, [(n, ces.get(n)) for n in qs.spec.compute_environments])
        cyc.fits[key] = verdict.message if verdict.fit is Fit.NO else None
    return cyc.fits[key]


def _visit(cyc: _Cycle, qs: QueueView, job: JobView, pos: int) -> tuple[bool, bool]:
    """Try one job. Returns (admitted, counts as waiting)."""
    if job.held_until > cyc.now:  # its Job could not be created a moment ago
        if job.array is None or job.phase is Phase.RUNNABLE:
            cyc.waiting[job.key] = (Phase.RUNNABLE, Reason.JOB_CREATE_FAILED, pos)
        return False, True
    gang = job.spec.gang
    if gang is None:
        msg = _never_fits(cyc, qs, job.spec.size)
    else:
        msg = gang_never_fits(gang, qs.spec.compute_environments, cyc.snap.ces)
    if msg is not None and (job.array is None or not job.array.active):
        cyc.decisions.append(Fail(job.key, Reason.NO_COMPUTE_ENVIRONMENT_CAN_FIT, msg))
        cyc.admitted.add(job.key)
        return False, False
    reason = _try_admit(cyc, qs, job)
    if reason is Reason.INSUFFICIENT_CAPACITY and qs.spec.preemption is not None:
        reason = _preempt(cyc, qs, job) or reason
    if reason is None:
        if job.array is None:
            return True, False
        arr = job.array
        still = len(arr.ready) - cyc.arrays.get(job.key, 0)
        if still > 0 and job.phase is Phase.RUNNABLE:
            cyc.waiting[job.key] = (Phase.RUNNABLE, Reason.INSUFFICIENT_CAPACITY, pos)
        return True, still > 0
    if job.array is None or job.phase is Phase.RUNNABLE:
        cyc.waiting[job.key] = (Phase.RUNNABLE, reason, pos)
    return False, True


def _preempt(cyc: _Cycle, qs: QueueView, job: JobView) -> Reason | None:
    """``job`` does not fit: may its queue preempt for it (``kubatch.core.preemption``)?"""
    if cyc.pre is None:
        cyc.pre = preemption.Cycle(cyc.snap)
    size, gang = job.spec.size, job.spec.gang
    floor = cyc.floors.get(job.key, job.ce_floor)
    found = preemption.plan(
        cyc.pre, qs, job, floor, cyc.blocked, lambda n: _runs_on(cyc, n, size, gang)
    )
    if found is None:
        return None
    cyc.decisions.extend(found.victims)
    cyc.blocked.add(found.ce)
    cyc.messages[job.key] = found.message
    return Reason.PREEMPTING


def _may_preempt(cyc: _Cycle, qs: QueueView) -> bool:
    """A saturated queue still visits its jobs while it may preempt for them."""
    return qs.spec.preemption is not None and (cyc.pre is None or cyc.pre.plans_left > 0)


def _walk_fifo(cyc: _Cycle, qs: QueueView) -> None:
    snap = cyc.snap
    scan_left = snap.config.max_scan_per_queue
    pos = 1  # 1-based: 1 = next to start
    it: Iterator[JobView] = iter(qs.fifo)
    strict = qs.spec.strict_fifo
    for job in it:
        if cyc.budget <= 0 or (_saturated(cyc, qs) and not _may_preempt(cyc, qs)):
            if job.array is None or job.phase is Phase.RUNNABLE:
                cyc.waiting[job.key] = (Phase.RUNNABLE, _idle_reason(cyc, qs, job), pos)
            pos += 1
            break
        admitted, waits = _visit(cyc, qs, job, pos)
        if waits:
            pos += 1
        if admitted:
            continue
        if not waits:
            continue
        if strict:
            if job.held_until <= cyc.now:  # a held head holds its queue, not the others
                cyc.blocked.update(qs.spec.compute_environments[job.ce_floor :])
            break
        scan_left -= 1
        if scan_left <= 0:
            cyc.blocked.update(qs.spec.compute_environments)
            break
    else:
        return
    # positions for the rest: only on refresh cycles (fresh jobs are handled by the caller)
    if snap.full_refresh:
        reason = Reason.BLOCKED_BY_QUEUE_HEAD if strict else Reason.INSUFFICIENT_CAPACITY
        depth = snap.config.position_refresh_depth
        for job in it:
            if pos > depth:
                break
            _refresh(cyc, job, _rest_reason(cyc, job, reason), pos)
            pos += 1


def _idle_reason(cyc: _Cycle, qs: QueueView, job: JobView) -> Reason:
    """Why a job the walk did not try waits: no Enabled CE, or no room."""
    names = qs.spec.compute_environments[cyc.floors.get(job.key, job.ce_floor) :]
    for name in names:
        ce = cyc.snap.ces.get(name)
        if ce is not None and ce.enabled:
            return Reason.INSUFFICIENT_CAPACITY
    return _no_ce_reason(cyc.snap, names)


def _no_ce_reason(snap: Snapshot, names: Sequence[str]) -> Reason:
    """Why no CE of ``names`` is usable: none exists, or none is Enabled."""
    if all(snap.ces.get(n) is None for n in names):
        return Reason.COMPUTE_ENVIRONMENT_NOT_FOUND
    return Reason.COMPUTE_ENVIRONMENT_DISABLED


def _rest_reason(cyc: _Cycle, job: JobView, default: Reason) -> Reason:
    if job.held_until > cyc.now:
        return Reason.JOB_CREATE_FAILED
    if job.array is not None and job.array.active and job.phase is not Phase.RUNNABLE:
        return Reason.PARALLELISM_LIMIT
    return default


def _walk_fair_share(cyc: _Cycle, qs: QueueView, now: float) -> None:
    """Fair share: repeatedly serve the share with the lowest usage x weightFactor; within
    a share by schedulingPriority (desc) then submission time. ``computeReservation`` keeps
    room for shares that are not active yet."""
    snap = cyc.snap
    fs = qs.spec.fair_share
    assert fs is not None
    total = snap.enabled_mcpu(qs)
    running = {k: v for k, v in qs.running_by_share.items() if v > 0}
    used = sum(running.values())
    cr = fs.compute_reservation / 100
    heap: list[tuple[float, str]] = []
    iters: dict[str, Iterator[JobView]] = {}
    usage: dict[str, float] = {}
    for ident, lst in qs.shares.items():
        if lst.live:
            usage[ident] = qs.share_usage(ident, now)
            iters[ident] = iter(lst)
            heapq.heappush(heap, (usage[ident] * fs.weight(ident), ident))
    scan_left = snap.config.max_scan_per_queue
    pos = 1  # 1-based: 1 = next to start
    while heap:
        if cyc.budget <= 0 or scan_left <= 0:
            break
        if _saturated(cyc, qs) and not _may_preempt(cyc, qs):
            break
        _, ident = heapq.heappop(heap)
        job = next(iters[ident], None)
        if job is None:
            continue
        # AWS: reserved = total x (computeReservation/100) ^ activeShares, for new shares
        reserved = total * cr ** len(running) if cr > 0 and running else 0.0
        if ident in running and used + job.spec.size.mcpu > total - reserved:
            cyc.waiting[job.key] = (Phase.RUNNABLE, Reason.WAITING_FOR_SHARE, pos)
            pos += 1
            scan_left -= 1
            heapq.heappush(heap, (usage[ident] * fs.weight(ident), ident))
            continue
        admitted, waits = _visit(cyc, qs, job, pos)
        if waits:
            pos += 1
        if admitted:
            used += job.spec.size.mcpu
            usage[ident] += job.spec.size.mcpu
            running[ident] = running.get(ident, 0) + job.spec.size.mcpu
        elif waits:
            scan_left -= 1
        heapq.heappush(heap, (usage[ident] * fs.weight(ident), ident))
    if scan_left <= 0:
        cyc.blocked.update(qs.spec.compute_environments)
    if snap.full_refresh:
        depth = snap.config.position_refresh_depth
        for it in iters.values():
            for job in it:
                if pos > depth:
                    return
                _refresh(cyc, job, Reason.WAITING_FOR_SHARE, pos)
                pos += 1
