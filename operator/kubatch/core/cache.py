"""The scheduling cache: the state the operator owns and feeds from watch events.

Pure in the sense of the core: in-memory only, no I/O, no clock (every method that needs the
time takes ``now``). Kueue style: controllers *feed* the cache (``upsert_*``,
``attempt_started``, ``attempt_finished``), one scheduler reads a ``snapshot`` each cycle and
returns decisions, and the operator reports each decision back with ``assume`` (and
``forget`` to roll an admission back when its API write failed).

Everything is incremental: a job enters its queue's ordered list once, dependencies are
released through a reverse index (cost proportional to the edges touched), the outbox
coalesces status changes per job. Phases change only through ``lifecycle.next_phase`` (the
transition table); an array parent's phase follows ``lifecycle.array_parent_phase``. The
children of arrays are handled in ``kubatch.core.arrays``.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Mapping

from kubatch.core import arrays, budget, deps, ends, holdings, restore
from kubatch.core.capacity import Ledger
from kubatch.core.consumables import ConsumableBook
from kubatch.core.decisions import (
    Admit,
    Decision,
    Fail,
    Preempt,
    Retry,
    SetWaiting,
    SkipComputeEnvironment,
    Succeed,
    Terminate,
    UpdateArraySummary,
)
from kubatch.core.fit import Fit, QueueFit, queue_fit
from kubatch.core.graph import DependencyGraph, parents
from kubatch.core.lifecycle import (
    AdmissionRolledBack,
    Admitted,
    AttemptRetried,
    AttemptSucceeded,
    DependenciesMet,
    JobFailed,
    Phase,
    PodStarted,
    Reason,
    Validated,
    next_phase,
)
from kubatch.core.model import (
    ComputeEnvironment,
    JobQueue,
    JobSpec,
    StateTimeLimit,
)
from kubatch.core.naming import job_name_for_attempt
from kubatch.core.outcomes import (
    AttemptResult,
)
from kubatch.core.preemption import Releasing, Slot, VictimIndex
from kubatch.core.queues import QueueBook
from kubatch.core.resources import Resources
from kubatch.core.snapshot import Expired, JobView, Outbox, Snapshot
from kubatch.core.state import WAITING, CacheConfig, JobState, QueueState

__all__ = ["Cache", "CacheConfig"]


class Cache:
    """The operator-owned state. Not thread-safe: feed and schedule from one task."""

    def __init__(self, config: CacheConfig | None = None) -> None:
        self.config = config or CacheConfig()
        self.jobs: dict[str, JobState] = {}
        self.ledgers: dict[str, Ledger] = {}
        self.book = QueueBook()
        self.graph = DependencyGraph()
        self.outbox = Outbox()
        self._timers: list[tuple[float, int, str, Phase, float, StateTimeLimit]] = []
        self._timer_seq = 0
        self._refreshed_at = -math.inf
        self._fits: dict[tuple[str, Resources], QueueFit] = {}  # cleared when CEs/queues change
        self.consumables = ConsumableBook()  # ConsumableResources (upsert/remove: the book's)
        self.victims: VictimIndex | None = None  # running attempts, once a queue preempts
        self.releasing: dict[Slot, Releasing] = {}  # attempts preempted / gangs released
        self.spend: dict[str, budget.Spend] = {}  # per queue: charges of the last day

    @property
    def queues(self) -> Mapping[str, QueueState]:
        return self.book.queues

    # --- feeding: compute environments, queues, namespaces --------------------------------

    def upsert_compute_environment(self, ce: ComputeEnvironment) -> None:
        """A CE was created/changed, or its pool's nodes changed."""
        led = self.ledgers.get(ce.name)
        if led is None:
            self.ledgers[ce.name] = Ledger(ce)
        else:
            led.update(ce)
        self._fits.clear()

    def remove_compute_environment(self, name: str) -> None:
        """A CE was deleted: nothing more is admitted to it, and its attempts are stopped as
        interruptions that use up neither ``attempts`` nor the interruption budget; their
        jobs go back to Runnable for the queue's other CEs (SEMANTICS §4)."""
        if self.ledgers.pop(name, None) is None:
            return
        self._fits.clear()
        self.outbox.events.extend(restore.stops_on(self.jobs.values(), name))

    def upsert_queue(self, spec: JobQueue, now: float) -> None:
        """A JobQueue was created or changed: jobs that waited for it go on."""
        self._fits.clear()
        if spec.preemption is not None and self.victims is None:
            self.victims = VictimIndex.build(self.jobs.values())
        for job in self.book.upsert(spec):
            if job.phase.terminal:
                continue
            if job.phase is Phase.SUBMITTED:
                self._set_waiting_phase(job, now)
            elif job.phase is Phase.RUNNABLE and not job.queued:
                self._enqueue(job, now)
            elif job.phase is Phase.PENDING:
                job.reason = Reason.WAITING_FOR_DEPENDENCIES
                self.outbox.fresh.add(job.key)

    def remove_queue(self, name: str) -> None:
        """A JobQueue was deleted: its waiting jobs wait (``JobQueueNotFound``) until a
        queue of that name is back; started attempts finish."""
        for job in self.book.remove(name):
            self._orphan(job)

    def set_namespace_labels(self, namespace: str, labels: Mapping[str, str]) -> None:
        """Labels of a namespace (for queues' ``namespaceSelector``)."""
        self.book.set_namespace_labels(namespace, labels)

    # --- feeding: jobs ----------------------------------------------------------------------

    def upsert_job(self, spec: JobSpec, now: float) -> None:
        """A BatchJob was created, or its mutable fields changed (``parallelism``,
        ``terminate``). Submitted jobs are otherwise immutable: other changes are ignored."""
        job = self.jobs.get(spec.key)
        if job is not None:
            self._update_job(job, spec, now)
            return
        job = JobState(spec, now)
        self.jobs[spec.key] = job
        if job.array is not None and spec.array_size is not None and spec.array_size < 2:
            self.fail(job, Reason.INVALID_SPEC, "arrayProperties.size must be 2-10000", now)
            return
        if spec.terminate_reason is not None:
            self.fail(job, Reason.TERMINATED, spec.terminate_reason, now)
            return
        qs = self.book.get(spec.queue)
        if qs is not None and not self.book.allowed(qs, spec.namespace):
            self._not_allowed(job, now)
            return
        job.unsatisfied = self.graph.link(spec)
        if deps.in_cycle(self, job):
            return
        for key, dep in parents(spec):
            parent = self.jobs.get(key)
            if parent is not None:
                deps.dependency_known(self, job, dep, parent, now)
                if job.phase.terminal:
                    return
        for dependent_key, dep in self.graph.dependents(spec.key):
            dependent = self.jobs.get(dependent_key)
            if dependent is not None and not dependent.phase.terminal:
                deps.dependency_known(self, dependent, dep, job, now)
        if job.phase is Phase.SUBMITTED:
            self._set_waiting_phase(job, now)

    def _update_job(self, job: JobState, spec: JobSpec, now: float) -> None:
        old = job.spec
        job.spec = spec
        if job.phase.terminal:
            return
        if spec.terminate_reason is not None and old.terminate_reason is None:
            self._terminate(job, spec.terminate_reason, now)
        elif job.array is not None and spec.parallelism != old.parallelism:
            arrays.requeue(self, job)

    def remove_job(self, key: str) -> None:
        """The BatchJob was deleted: release its capacity; dependents see an unknown name."""
        job = self.jobs.pop(key, None)
        if job is None:
            return
        self.book.drop(job)
        self.book.forget_orphan(job)
        holdings.forget_job(self, job)
        if job.array is not None:
            for ce in job.array.active.values():
                self.release(job, ce)
            job.array.active.clear()
        elif job.ce is not None and job.phase in (Phase.STARTING, Phase.RUNNING):
            self.release(job, job.ce)
        self.graph.unlink(job.spec)
        self.outbox.forget(key)

    def restore_job(
        self,
        spec: JobSpec,
        now: float,
        *,
        phase: Phase,
        attempt: int = 0,
        failures: int = 0,
        compute_environment: str | None = None,
        waiting: tuple[Reason | None, int | None] | None = None,
    ) -> None:
        """After an operator restart: a job whose status says ``phase`` (see ``restore``)."""
        restore.job(self, spec, now, phase, attempt, failures, compute_environment, waiting)
        holdings.restored(self, self.jobs[spec.key], None, False, now)

    def restore_child(
        self,
        key: str,
        index: int,
        phase: Phase,
        attempt: int,
        now: float,
        compute_environment: str | None = None,
        *,
        failures: int = 0,
        interruptions: int = 0,
    ) -> None:
        """After an operator restart: array child ``index`` is in ``phase`` (from its record
        or its Kubernetes Jobs), with its retry counters."""
        job = self.jobs.get(key)
        if job is not None and job.array is not None and 0 <= index < job.array.size:
            was = holdings.was_active(self, job, index)
            arrays.restore_child(self, job, index, phase, attempt, now, compute_environment,
                                 failures, interruptions)  # fmt: skip
            holdings.restored(self, job, index, was, now)

    def attempt_started(self, key: str, index: int | None, attempt: int, now: float) -> None:
        """The attempt's pod is running."""
        job = self.jobs.get(key)
        if job is None:
            return
        if self.victims is not None and self.is_active(key, index, attempt):
            self.victims.started(key, index, now)
        if job.array is not None and index is not None:
            arrays.child_started(self, job, index, attempt)
        elif job.phase is Phase.STARTING and job.attempt == attempt:
            job.phase = next_phase(job.phase, PodStarted())
            job.state_since = now

    def attempt_finished(
        self,
        key: str,
        index: int | None,
        attempt: int,
        now: float,
        *,
        exit_code: int | None,
        reason: str | None = None,
        status_reason: str | None = None,
        interrupted: bool = False,
        timed_out: bool = False,
    ) -> None:
        """An attempt ended (pod succeeded/failed, node reclaimed, deadline, or stopped after a
        ``Terminate``). Stale or repeated reports are ignored."""
        job = self.jobs.get(key)
        if job is None:
            return
        result = AttemptResult(exit_code, reason, status_reason, interrupted, timed_out)
        if (self.victims is not None or self.releasing) and holdings.finished(
            self, job, index, attempt, result, now
        ):
            return
        if job.array is not None and index is not None:
            arrays.child_finished(self, job, index, attempt, result, now)
            return
        ends.plain_finished(self, job, attempt, result, now)

    def charge(self, queue: str, dollars: float, now: float) -> None:
        """The estimated cost of a queue's running attempts since their last charge."""
        entry = self.spend.get(queue)
        if entry is None:
            entry = self.spend[queue] = budget.Spend()
        entry.charge(dollars, now)

    def budget_state(self, queue: str, now: float) -> budget.BudgetState | None:
        """A queue's spend per window and whether its admissions wait (``None``: no limit)."""
        qs = self.book.get(queue)
        if qs is None or qs.spec.budget is None:
            return None
        return budget.state(self.spend.get(queue), qs.spec.budget, now)

    # --- queries -----------------------------------------------------------------------------

    def job(self, key: str) -> JobView | None:
        """A job, read-only."""
        return self.jobs.get(key)

    def phase_of(self, key: str) -> Phase | None:
        job = self.jobs.get(key)
        return None if job is None else job.phase

    def is_active(self, key: str, index: int | None, attempt: int) -> bool:
        """Whether this attempt is Starting/Running now (reports about other attempts are
        stale: a replay after a restart or a late event)."""
        job = self.jobs.get(key)
        if job is None:
            return False
        if index is not None and job.array is not None:
            arr = job.array
            return index in arr.active and arr.child_attempt[index] == attempt
        return job.phase in (Phase.STARTING, Phase.RUNNING) and job.attempt == attempt

    def needed_by_unfinished(self, key: str) -> bool:
        """Whether an unfinished job names ``key`` in its dependencies (retention keeps it)."""
        return any(
            (d := self.jobs.get(k)) is not None and not d.phase.terminal
            for k, _dep in self.graph.dependents(key)
        )

    def pending_count(self) -> int:
        return self.book.pending_count()

    def children_by_queue(self) -> dict[str, dict[Phase, int]]:
        """Array children per queue and phase (metrics; no per-array detail)."""
        return arrays.by_queue(self.jobs.values())

    def allocated(self, ce: str) -> Resources:
        """What the Starting + Running attempts on ``ce`` hold."""
        led = self.ledgers.get(ce)
        return led.used() if led is not None else Resources()

    def backlog(self) -> dict[str, int]:
        """Milli-vCPUs of waiting (Runnable) work per CE it would go to first: the managed
        pools' scaling signal."""
        enabled = {n for n, led in self.ledgers.items() if led.ce.enabled}
        return self.book.backlog(enabled)

    # --- snapshot / assume / forget -------------------------------------------------------

    def snapshot(self, now: float) -> Snapshot:
        """Take the cycle's snapshot: CE room copies, the coalesced outbox, expired state time
        limits. Also drains the outbox: every decision it holds must be applied."""
        outbox = self.outbox
        for key in outbox.dirty_arrays:
            job = self.jobs.get(key)
            if job is not None and job.array is not None:
                if job.array.stale:
                    arrays.rebuild_ready(self, job)
                summary = (job.phase, job.array.summary())
                if summary != job.last_summary:
                    outbox.status[key + "\0summary"] = UpdateArraySummary(key, *summary)
        outbox.dirty_arrays = set()
        decisions, fresh = outbox.drain()
        expired: list[Expired] = []
        timers = self._timers
        while timers and timers[0][0] <= now:
            _, _, key, phase, since, limit = heapq.heappop(timers)
            job = self.jobs.get(key)
            if job is not None and job.phase is phase and job.state_since == since:
                expired.append((key, phase, since, limit))
        full = now - self._refreshed_at >= self.config.position_refresh_seconds
        if full:
            self._refreshed_at = now
        return Snapshot(
            now=now,
            config=self.config,
            queues=self.book.by_priority,
            ces={n: led.ce for n, led in self.ledgers.items()},
            rooms={n: led.room() for n, led in self.ledgers.items()},
            outbox=decisions,
            fresh=fresh,
            expired=expired,
            full_refresh=full,
            jobs=self.jobs,
            namespace_labels=self.book.namespace_labels,
            budgets={
                q.spec.name: st
                for q in self.book.by_priority
                if q.spec.budget is not None
                and (
                    st := budget.state(self.spend.get(q.spec.name), q.spec.budget, now)
                ).blocked_until
                is not None
            },
            **holdings.snapshot_fields(self),
        )

    def assume(self, d: Decision, now: float) -> None:
        """Record a decision. Call it for every decision of the cycle; for ``Admit`` call it
        *before* the API write (then ``forget`` if the write fails)."""
        job = self.jobs.get(d.job_key)
        if job is None:
            return
        if isinstance(d, Admit):
            self._assume_admit(job, d, now)
        elif isinstance(d, SetWaiting):
            job.last_status = (d.phase, d.reason, d.queue_position)
            job.position = d.queue_position
            if job.phase is d.phase:
                job.reason = d.reason
        elif isinstance(d, UpdateArraySummary):
            job.last_summary = (d.phase, d.summary)
        elif isinstance(d, SkipComputeEnvironment):
            if not job.phase.terminal:
                job.ce_floor = max(job.ce_floor, d.next_ce_index)
                job.state_since = now
                self._arm_timers(job, now)
        elif isinstance(d, Fail):
            if not job.phase.terminal:
                self.fail(job, d.reason, d.message, now)
                self.outbox.status.pop(d.job_key, None)
        elif isinstance(d, Preempt):
            holdings.assume_stop(self, job, d)
        elif isinstance(d, Terminate) and not holdings.assume_stop(self, job, d):
            job.stop_reason = d.reason
            job.stop_fallback = d.fallback

    def assume_all(self, decisions: Iterable[Decision], now: float) -> None:
        """``assume`` each decision in order."""
        for d in decisions:
            self.assume(d, now)

    def forget(self, d: Decision, now: float, hold: float = 0.0) -> None:
        """Roll back an assumed ``Admit`` whose Kubernetes Job could not be created (the job
        is Runnable again at its old place; with ``hold``, not admitted again for that many
        seconds, while the jobs behind it go first); for a failed status write, the status
        is re-emitted next cycle."""
        job = self.jobs.get(d.job_key)
        if job is None:
            return
        if hold > 0 and isinstance(d, Admit):
            job.held_until = now + hold
        if isinstance(d, SetWaiting):
            job.last_status = None
            self.outbox.fresh.add(d.job_key)
            return
        if not isinstance(d, Admit):
            return
        holdings.rolled_back(self, job, d)
        if job.array is not None and d.index is not None:
            arrays.child_rolled_back(self, job, d, now)
            return
        if job.phase is not Phase.STARTING or job.attempt != d.attempt:
            return
        self.release(job, d.compute_environment)
        job.attempt -= 1
        job.ce = None
        job.phase = next_phase(job.phase, AdmissionRolledBack())
        self._enqueue(job, now)

    def _assume_admit(self, job: JobState, d: Admit, now: float) -> None:
        led = self.ledgers.get(d.compute_environment)
        if led is not None:
            led.assume(d.resources)
        self.book.running(job, d.resources.mcpu, now)
        if job.array is not None and d.index is not None:
            arrays.child_admitted(self, job, d)
            if job.spec.consumables or self.victims is not None:
                holdings.admitted(self, job, d, now)
            return
        self.book.drop(job)
        job.phase = next_phase(job.phase, Admitted())
        job.attempt = d.attempt
        job.ce = d.compute_environment
        job.reason = None
        job.position = None
        job.state_since = now
        self.outbox.fresh.discard(job.key)
        if job.spec.consumables or self.victims is not None:
            holdings.admitted(self, job, d, now)
        self._arm_timers(job, now)

    # --- transitions (shared with ``arrays``) ----------------------------------------------

    def release(self, job: JobState, ce: str) -> None:
        """An attempt of ``job`` on ``ce`` stopped holding capacity."""
        led = self.ledgers.get(ce)
        if led is not None:
            led.forget(job.spec.size)
        if job.spec.consumables:
            self.consumables.release(job.spec.consumables)
        self.book.stopped(job, job.spec.size.mcpu)

    def next_ce_index(self, job: JobState, ce: str) -> int | None:
        """The index of the CE after ``ce`` in the job's queue order (``None``: no more)."""
        qs = self.book.get(job.spec.queue)
        if qs is None:
            return None
        order = qs.spec.compute_environments
        idx = order.index(ce) if ce in order else job.ce_floor
        return idx + 1 if idx + 1 < len(order) else None

    def fall_back(self, job: JobState, ce: str) -> bool:
        """Raise the job's CE floor past ``ce``; ``False`` when there is no CE after it."""
        nxt = self.next_ce_index(job, ce)
        if nxt is None:
            return False
        job.ce_floor = nxt
        return True

    def _set_waiting_phase(self, job: JobState, now: float) -> None:
        """A submitted job: Submitted (queue not found), Pending or Runnable."""
        if self._queue_of(job, now) is None:
            return
        if job.unsatisfied > 0:
            job.phase = next_phase(job.phase, Validated())
            job.reason = Reason.WAITING_FOR_DEPENDENCIES
            job.message = "waiting for dependencies"
            job.state_since = now
            self.outbox.fresh.add(job.key)
            self._arm_timers(job, now)
        else:
            self.make_runnable(job, now)

    def make_runnable(self, job: JobState, now: float) -> None:
        """All of ``job``'s dependencies are met (or there were none)."""
        if self.book.get(job.spec.queue) is None and job.phase is Phase.SUBMITTED:
            self._orphan(job)
            return
        job.phase = next_phase(job.phase, DependenciesMet())
        job.state_since = now
        job.reason = Reason.INSUFFICIENT_CAPACITY
        if job.array is not None and not arrays.open_children(self, job):
            job.reason = Reason.WAITING_FOR_DEPENDENCIES
            self.outbox.fresh.add(job.key)
            return
        self._enqueue(job, now)

    def _queue_of(self, job: JobState, now: float) -> QueueState | None:
        """The job's queue; ``None`` once the job is marked waiting for a queue that does not
        exist, or refused by one that does not take its namespace."""
        qs = self.book.get(job.spec.queue)
        if qs is None:
            self._orphan(job)
            return None
        if not self.book.allowed(qs, job.spec.namespace):
            self._not_allowed(job, now)
            return None
        return qs

    def _enqueue(self, job: JobState, now: float) -> None:
        qs = self._queue_of(job, now)
        if qs is None:
            return
        gang = job.spec.gang
        verdict = self.fit(qs, job.spec.size) if gang is None else holdings.gang_fit(self, qs, gang)
        if verdict.fit is Fit.NO:
            self.fail(job, Reason.NO_COMPUTE_ENVIRONMENT_CAN_FIT, verdict.message, now)
            return
        QueueBook.add(qs, job)
        if job.reason is None or job.reason is Reason.UNKNOWN_QUEUE:
            job.reason = Reason.INSUFFICIENT_CAPACITY
        self.outbox.fresh.add(job.key)
        self._arm_timers(job, now)

    def fit(self, qs: QueueState, size: Resources) -> QueueFit:
        """Whether any CE of ``qs`` can ever hold ``size`` (memoised until a CE or queue
        changes: sizes repeat)."""
        key = (qs.spec.name, size)
        verdict = self._fits.get(key)
        if verdict is None:
            ces = [(n, led.ce if (led := self.ledgers.get(n)) else None)
                   for n in qs.spec.compute_environments]  # fmt: skip
            verdict = self._fits[key] = queue_fit(size, ces)
        return verdict

    def _orphan(self, job: JobState) -> None:
        job.reason = Reason.UNKNOWN_QUEUE
        self.book.orphan(job)
        self.outbox.fresh.add(job.key)

    def _not_allowed(self, job: JobState, now: float) -> None:
        self.fail(
            job,
            Reason.QUEUE_NOT_ALLOWED,
            f"queue {job.spec.queue} does not admit namespace {job.spec.namespace}",
            now,
        )

    def _arm_timers(self, job: JobState, now: float) -> None:
        if job.spec.gang is not None:
            holdings.arm_gang(self, job, now)
        qs = self.book.get(job.spec.queue)
        if qs is None or not qs.spec.state_time_limits:
            return
        for lim in qs.spec.state_time_limits:
            if lim.state is job.phase:
                self.arm(job, lim, now)

    def arm(self, job: JobState, lim: StateTimeLimit, now: float) -> None:
        """Expire ``lim`` on ``job`` (in its current phase) ``lim.max_time_seconds`` from now."""
        self._timer_seq += 1
        entry = (now + lim.max_time_seconds, self._timer_seq, job.key, job.phase,
                 job.state_since, lim)  # fmt: skip
        heapq.heappush(self._timers, entry)

    def fail(
        self, job: JobState, reason: Reason, message: str, now: float, *, propagate: bool = True
    ) -> None:
        """``job`` failed for good (an array first stops its children; see ``arrays``)."""
        if job.phase.terminal:
            return
        self.book.drop(job)
        self.book.forget_orphan(job)
        if job.array is not None and not arrays.stopped(self, job, reason, message):
            return  # children still running: the parent fails when the last one ends
        job.phase = next_phase(job.phase, JobFailed(reason))
        job.reason, job.message = reason, message
        job.state_since = now
        self.outbox.fresh.discard(job.key)
        self.outbox.status[job.key] = Fail(job.key, reason, message)
        if job.array is not None:
            self.outbox.dirty_arrays.add(job.key)
        if propagate:
            deps.propagate(self, job, now)

    def succeed(self, job: JobState, now: float) -> None:
        """``job`` (or every child of an array) succeeded."""
        job.phase = next_phase(job.phase, AttemptSucceeded())
        job.reason, job.message = Reason.SUCCEEDED, ""
        job.state_since = now
        self.outbox.status[job.key] = Succeed(job.key)
        if job.array is not None:
            self.outbox.dirty_arrays.add(job.key)
        deps.propagate(self, job, now)

    def retry(
        self,
        job: JobState,
        index: int | None,
        attempt: int,
        reason: Reason | None,
        message: str,
        interrupted: bool,
        now: float,
    ) -> None:
        """An attempt of ``job`` (or of child ``index``) is retried: an event (each one is
        recorded); a plain job goes back to its queue."""
        self.outbox.events.append(Retry(job.key, index, attempt, reason, message, interrupted))
        if index is None:
            job.ce = None
            job.phase = next_phase(job.phase, AttemptRetried())
            job.state_since = now
            job.reason = Reason.INSUFFICIENT_CAPACITY
            job.last_status = None
            self._enqueue(job, now)

    def _terminate(self, job: JobState, reason: str, now: float) -> None:
        if job.phase in WAITING or job.array is not None:
            self.fail(job, Reason.TERMINATED, reason, now)
            return
        name = job_name_for_attempt(job.spec.name, job.spec.token, None, job.attempt)
        self.outbox.events.append(
            Terminate(job.key, None, job.attempt, name, Reason.TERMINATED, reason)
        )

    def settle_dependents(self, job: JobState, now: float) -> None:
        """``job`` became terminal: settle the edges of its dependents (see ``deps``)."""
        deps.propagate(self, job, now)
