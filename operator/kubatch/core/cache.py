"""The scheduling cache: the state the operator owns and feeds from watch events.

Pure in the sense of the core: in-memory only, no I/O, no clock (every method that needs the
time takes ``now``). Kueue style: controllers *feed* the cache (``upsert_*``,
``attempt_started``, ``attempt_finished``), one scheduler reads a ``snapshot`` each cycle and
returns decisions, and the operator reports each decision back with ``assume`` (and
``forget`` to roll an admission back when its API write failed).

Everything is incremental: a job enters its queue's ordered list once, dependencies are
released through a reverse index (cost proportional to the edges touched), the outbox
coalesces status changes per job.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from kubatch.core.capacity import Ledger
from kubatch.core.decisions import (
    Admit,
    Decision,
    Fail,
    Retry,
    SetWaiting,
    SkipComputeEnvironment,
    Succeed,
    Terminate,
    UpdateArraySummary,
)
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
    Condition,
    Dependency,
    DependencyType,
    JobQueue,
    JobSpec,
    StateTimeLimit,
)
from kubatch.core.naming import job_name_for_attempt
from kubatch.core.ordering import OrderedJobs
from kubatch.core.resources import Resources
from kubatch.core.retry import RetryAction, evaluate_exit

PHASES: tuple[Phase, ...] = tuple(Phase)
_CODE = {p: i for i, p in enumerate(PHASES)}
_RUNNABLE = _CODE[Phase.RUNNABLE]
_PENDING = _CODE[Phase.PENDING]
_STARTING = _CODE[Phase.STARTING]
_RUNNING = _CODE[Phase.RUNNING]
_SUCCEEDED = _CODE[Phase.SUCCEEDED]
_FAILED = _CODE[Phase.FAILED]
WAITING = (Phase.SUBMITTED, Phase.PENDING, Phase.RUNNABLE)


@dataclass(frozen=True, slots=True)
class CacheConfig:
    """Tunables.

    ``position_refresh_seconds``: how often queue positions are recomputed (between refreshes
    only changes of phase/reason are written). A refresh covers the first
    ``position_refresh_depth`` waiting jobs of each queue and writes a position only when it
    is below 100 or moved by at least 10%; deeper jobs keep the position estimated when they
    started waiting. ``max_scan_per_queue``: how many jobs that do not fit one queue's walk may
    skip per cycle (a cut queue reserves its CEs against lower-priority queues).
    ``max_admissions_per_cycle``: bounds one cycle's work.
    """

    position_refresh_seconds: float = 30.0
    position_refresh_depth: int = 1000
    max_scan_per_queue: int = 2000
    max_admissions_per_cycle: int = 20000


class ArrayState:
    """Children of an array job, compact: one byte per child phase."""

    __slots__ = (
        "active",
        "child_attempt",
        "child_failures",
        "child_interruptions",
        "child_phase",
        "child_wait",
        "counts",
        "final_failure",
        "ready",
        "size",
    )

    def __init__(self, size: int) -> None:
        self.size = size
        self.child_phase = bytearray([_PENDING]) * size
        self.child_attempt = [0] * size
        self.child_failures = bytearray(size)
        self.child_interruptions = bytearray(size)
        self.child_wait = bytearray(size)  # unsatisfied N_TO_N / SEQUENTIAL edges per child
        self.counts = [0] * len(PHASES)
        self.counts[_PENDING] = size
        self.ready: list[int] = []  # heap of Runnable child indices
        self.active: dict[int, str] = {}  # index -> CE of Starting/Running children
        self.final_failure: Reason | None = None

    def set_phase(self, i: int, code: int) -> None:
        self.counts[self.child_phase[i]] -= 1
        self.counts[code] += 1
        self.child_phase[i] = code

    def summary(self) -> tuple[tuple[Phase, int], ...]:
        return tuple((PHASES[c], n) for c, n in enumerate(self.counts) if n)


class JobState:
    """The cache's mutable record of one BatchJob."""

    __slots__ = (
        "array",
        "attempt",
        "ce",
        "ce_floor",
        "failures",
        "in_list",
        "interruptions",
        "key",
        "last_status",
        "last_summary",
        "message",
        "order",
        "phase",
        "position",
        "queued",
        "reason",
        "spec",
        "state_since",
        "stop_fallback",
        "stop_reason",
        "unsatisfied",
    )

    def __init__(self, spec: JobSpec, now: float) -> None:
        self.spec = spec
        self.key = spec.key
        self.phase = Phase.SUBMITTED
        self.reason: Reason | None = None
        self.message = ""
        self.attempt = 0  # attempts started (names Kubernetes Jobs; AWS_BATCH_JOB_ATTEMPT)
        self.failures = 0  # failed attempts counted against retryStrategy.attempts
        self.interruptions = 0
        self.ce_floor = 0  # index in the queue's CE order (raised by fallbacks)
        self.ce: str | None = None
        self.state_since = now
        self.unsatisfied = 0
        self.queued = False
        self.in_list = False
        self.order: tuple[float, str] | tuple[int, float, str] = (spec.created_at, spec.key)
        self.position: int | None = None
        self.last_status: tuple[Phase, Reason | None, int | None] | None = None
        self.stop_reason: Reason | None = None
        self.stop_fallback = False
        self.last_summary: tuple[Phase, tuple[tuple[Phase, int], ...]] | None = None
        self.array = ArrayState(spec.array_size) if spec.array_size else None


class QueueState:
    """A queue's spec and its ordered waiting jobs (one list, or one per share)."""

    __slots__ = ("fifo", "min_size", "running_by_share", "shares", "spec", "usage")

    def __init__(self, spec: JobQueue) -> None:
        self.spec = spec
        self.fifo: OrderedJobs[JobState] = OrderedJobs()
        self.shares: dict[str, OrderedJobs[JobState]] = {}
        self.usage: dict[str, tuple[float, float]] = {}  # share -> (decayed value, at)
        self.running_by_share: dict[str, int] = {}
        self.min_size: Resources | None = None

    def list_for(self, job: JobState) -> OrderedJobs[JobState]:
        if self.spec.fair_share is None:
            return self.fifo
        ident = job.spec.share_identifier or ""
        lst = self.shares.get(ident)
        if lst is None:
            lst = self.shares[ident] = OrderedJobs[JobState]()
        return lst

    def live(self) -> int:
        return self.fifo.live + sum(s.live for s in self.shares.values())

    def share_usage(self, ident: str, now: float) -> float:
        """Decayed admitted milli-vCPU of a share plus what it runs now."""
        fs = self.spec.fair_share
        running = self.running_by_share.get(ident, 0)
        if fs is None or fs.share_decay_seconds <= 0:
            return float(running)
        val, at = self.usage.get(ident, (0.0, now))
        return running + val * math.exp(-max(0.0, now - at) / fs.share_decay_seconds)


@dataclass(slots=True)
class Snapshot:
    """What one scheduling cycle reads. Cheap: CE room is copied (a few numbers per CE);
    queues and jobs are *referenced*, so schedule right after taking it and apply the
    decisions before feeding the cache again."""

    now: float
    config: CacheConfig
    queues: list[QueueState]  # by priority, highest first
    ces: dict[str, ComputeEnvironment]
    free: dict[str, list[int]]
    outbox: list[Decision]
    fresh: set[str]
    expired: list[tuple[str, Phase, float, StateTimeLimit]]
    full_refresh: bool
    jobs: Mapping[str, JobState] = field(default_factory=dict)
    namespace_labels: Mapping[str, Mapping[str, str]] = field(default_factory=dict)


class Cache:
    """The operator-owned state. Not thread-safe: feed and schedule from one task."""

    def __init__(self, config: CacheConfig | None = None) -> None:
        self.config = config or CacheConfig()
        self.jobs: dict[str, JobState] = {}
        self.queues: dict[str, QueueState] = {}
        self.ledgers: dict[str, Ledger] = {}
        self.namespace_labels: dict[str, dict[str, str]] = {}
        self._by_priority: list[QueueState] = []
        self._orphans: dict[str, list[JobState]] = {}  # queue name -> jobs waiting for it
        self._rdeps: dict[str, list[tuple[str, Dependency]]] = {}
        self._status: dict[str, Decision] = {}  # coalesced per job key
        self._events: list[Decision] = []  # Retry / Terminate: each one matters
        self._fresh: set[str] = set()
        self._dirty_arrays: set[str] = set()
        self._timers: list[tuple[float, int, str, Phase, float, StateTimeLimit]] = []
        self._timer_seq = 0
        self._refreshed_at = -math.inf

    # --- feeding: compute environments, queues, namespaces --------------------------------

    def upsert_compute_environment(self, ce: ComputeEnvironment) -> None:
        """A CE was created/changed, or its pool's node capacity changed."""
        led = self.ledgers.get(ce.name)
        if led is None:
            self.ledgers[ce.name] = Ledger(ce)
        else:
            led.update(ce)

    def remove_compute_environment(self, name: str) -> None:
        """A CE was deleted (its running jobs keep running; nothing new is admitted)."""
        self.ledgers.pop(name, None)

    def upsert_queue(self, spec: JobQueue, now: float) -> None:
        """A JobQueue was created or changed."""
        qs = self.queues.get(spec.name)
        if qs is None:
            qs = self.queues[spec.name] = QueueState(spec)
        else:
            policy_changed = (qs.spec.fair_share is None) != (spec.fair_share is None)
            qs.spec = spec
            if policy_changed:
                self._rebuild_queue(qs)
        self._by_priority = sorted(
            self.queues.values(), key=lambda q: (-q.spec.priority, q.spec.name)
        )
        for job in self._orphans.pop(spec.name, []):
            if job.phase is Phase.RUNNABLE and not job.queued:
                self._enqueue(job, now)

    def remove_queue(self, name: str) -> None:
        """A JobQueue was deleted: its waiting jobs wait (``UnknownQueue``) until it is back."""
        qs = self.queues.pop(name, None)
        if qs is None:
            return
        self._by_priority = [q for q in self._by_priority if q.spec.name != name]
        waiting = [j for lst in [qs.fifo, *qs.shares.values()] for j in lst]
        for job in waiting:
            job.queued = job.in_list = False
            self._orphan(job)

    def set_namespace_labels(self, namespace: str, labels: Mapping[str, str]) -> None:
        """Labels of a namespace (for queues' ``namespaceSelector``)."""
        self.namespace_labels[namespace] = dict(labels)

    def _rebuild_queue(self, qs: QueueState) -> None:
        jobs = [j for lst in [qs.fifo, *qs.shares.values()] for j in lst]
        for lst in [qs.fifo, *qs.shares.values()]:
            for j in lst.items:
                j.in_list = False
        qs.fifo = OrderedJobs[JobState]()
        qs.shares = {}
        for j in jobs:
            j.queued = False
            j.order = self._order(j, qs.spec)
            qs.list_for(j).add(j)

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
            self._fail(job, Reason.INVALID_SPEC, "arrayProperties.size must be 2-10000", now)
            return
        if spec.terminate_reason is not None:
            self._fail(job, Reason.TERMINATED, spec.terminate_reason, now)
            return
        qs = self.queues.get(spec.queue)
        if qs is not None and not self._namespace_allowed(qs, spec.namespace):
            self._fail(
                job,
                Reason.QUEUE_NOT_ALLOWED,
                f"queue {spec.queue} does not admit namespace {spec.namespace}",
                now,
            )
            return
        # dependencies: reverse index first (unknown names wait), then evaluate known ones.
        for dep in spec.depends_on:
            if dep.type is DependencyType.SEQUENTIAL:
                continue
            dk = f"{spec.namespace}/{dep.job_name}"
            self._rdeps.setdefault(dk, []).append((spec.key, dep))
            job.unsatisfied += 1
        if self._in_cycle(job):
            return
        for dep in spec.depends_on:
            if dep.type is DependencyType.SEQUENTIAL:
                continue
            dk = f"{spec.namespace}/{dep.job_name}"
            parent = self.jobs.get(dk)
            if parent is not None:
                self._dependency_known(job, dep, parent, now)
                if job.phase.terminal:
                    return
        # dependents that were waiting for this name
        for dependent_key, dep in self._rdeps.get(spec.key, ()):
            dependent = self.jobs.get(dependent_key)
            if dependent is not None and not dependent.phase.terminal:
                self._dependency_known(dependent, dep, job, now)
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
            self._array_requeue(job, now)

    def remove_job(self, key: str) -> None:
        """The BatchJob was deleted: release its capacity; dependents see an unknown name."""
        job = self.jobs.pop(key, None)
        if job is None:
            return
        qs = self.queues.get(job.spec.queue)
        if job.queued and qs is not None:
            qs.list_for(job).remove(job)
        if job.array is not None:
            for ce in job.array.active.values():
                self._release(job, ce)
            job.array.active.clear()
        elif job.ce is not None and job.phase in (Phase.STARTING, Phase.RUNNING):
            self._release(job, job.ce)
        for dep in job.spec.depends_on:
            lst = self._rdeps.get(f"{job.spec.namespace}/{dep.job_name}")
            if lst:
                lst[:] = [e for e in lst if e[0] != key]
        self._status.pop(key, None)
        self._fresh.discard(key)
        self._dirty_arrays.discard(key)

    def restore_job(
        self,
        spec: JobSpec,
        now: float,
        *,
        phase: Phase,
        attempt: int = 0,
        failures: int = 0,
        compute_environment: str | None = None,
    ) -> None:
        """After an operator restart: a plain job whose status says ``phase``. A
        Starting/Running job takes its capacity on ``compute_environment`` again."""
        self.upsert_job(spec, now)
        job = self.jobs[spec.key]
        job.attempt, job.failures = attempt, failures
        if phase in (Phase.STARTING, Phase.RUNNING) and compute_environment and job.array is None:
            if job.queued:
                self.queues[spec.queue].list_for(job).remove(job)
            job.phase, job.ce = phase, compute_environment
            job.reason = None
            led = self.ledgers.get(compute_environment)
            if led is not None:
                led.assume(spec.size)
            self._fresh.discard(spec.key)
        elif phase.terminal and not job.phase.terminal:
            if job.queued:
                self.queues[spec.queue].list_for(job).remove(job)
            job.phase = phase
            self._status.pop(spec.key, None)
            self._fresh.discard(spec.key)
            self._propagate(job, now)

    def restore_child(
        self,
        key: str,
        index: int,
        phase: Phase,
        attempt: int,
        now: float,
        compute_environment: str | None = None,
    ) -> None:
        """After an operator restart: array child ``index`` of an already upserted array is in
        ``phase`` (from its Kubernetes Jobs). Starting/Running children take their capacity
        on ``compute_environment`` again; finished ones are settled."""
        job = self.jobs.get(key)
        if job is None or job.array is None or not 0 <= index < job.array.size:
            return
        arr = job.array
        arr.child_attempt[index] = max(arr.child_attempt[index], attempt)
        if arr.child_phase[index] in (_STARTING, _RUNNING, _SUCCEEDED, _FAILED):
            return
        if index in arr.ready:
            arr.ready.remove(index)
            heapq.heapify(arr.ready)
        if phase in (Phase.STARTING, Phase.RUNNING) and compute_environment:
            arr.set_phase(index, _CODE[phase])
            arr.active[index] = compute_environment
            led = self.ledgers.get(compute_environment)
            if led is not None:
                led.assume(job.spec.size)
            ident = job.spec.share_identifier or ""
            qs = self.queues.get(job.spec.queue)
            if qs is not None:
                qs.running_by_share[ident] = qs.running_by_share.get(ident, 0) + job.spec.size.mcpu
        elif phase.terminal:
            arr.set_phase(index, _CODE[phase])
            if phase is Phase.FAILED:
                arr.final_failure = Reason.ARRAY_CHILD_FAILED
            self._child_settled(job, index, now)
        self._dirty_arrays.add(key)
        qs = self.queues.get(job.spec.queue)
        if (
            job.queued
            and qs is not None
            and (not arr.ready or len(arr.active) >= self._parallelism(job) or arr.final_failure)
        ):
            qs.list_for(job).remove(job)
        self._array_check_done(job, now)

    def attempt_started(self, key: str, index: int | None, attempt: int, now: float) -> None:
        """The attempt's pod is running (the operator writes Running itself)."""
        job = self.jobs.get(key)
        if job is None:
            return
        if job.array is not None and index is not None:
            arr = job.array
            if arr.child_phase[index] == _STARTING and arr.child_attempt[index] == attempt:
                arr.set_phase(index, _RUNNING)
                self._dirty_arrays.add(key)
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
        if job is None or (job.phase.terminal and job.array is None):
            return
        if job.array is not None and index is not None:
            self._child_finished(
                job, index, attempt, now, exit_code, reason, status_reason, interrupted, timed_out
            )
            return
        if job.phase not in (Phase.STARTING, Phase.RUNNING) or job.attempt != attempt:
            return
        assert job.ce is not None
        ce = job.ce
        self._release(job, ce)
        ok = exit_code == 0 and not interrupted and not timed_out
        if job.stop_reason is not None or job.spec.terminate_reason is not None:
            stop = job.stop_reason
            job.stop_reason = None
            fallback, job.stop_fallback = job.stop_fallback, False
            if fallback and self._fallback(job, ce):
                self._retry(
                    job,
                    None,
                    attempt,
                    Reason.STATE_TIME_LIMIT,
                    "Starting too long: falling back to the next compute environment",
                    False,
                    now,
                )
                return
            if not ok:
                message = job.spec.terminate_reason or (
                    "Starting longer than the queue's state time limit"
                    if stop is Reason.STATE_TIME_LIMIT
                    else "terminated"
                )
                self._fail(job, stop or Reason.TERMINATED, message, now)
                return
        if ok:
            self._succeed(job, now)
            return
        verdict = self._verdict(
            job.spec,
            ce,
            job,
            None,
            attempt,
            exit_code,
            reason,
            status_reason,
            interrupted,
            timed_out,
        )
        if verdict[0] == "retry":
            self._retry(job, None, attempt, verdict[1], verdict[2], interrupted, now)
        else:
            self._fail(job, verdict[1] or Reason.RETRIES_EXHAUSTED, verdict[2], now)

    def _verdict(
        self,
        spec: JobSpec,
        ce: str,
        job: JobState,
        index: int | None,
        attempt: int,
        exit_code: int | None,
        reason: str | None,
        status_reason: str | None,
        interrupted: bool,
        timed_out: bool,
    ) -> tuple[str, Reason | None, str]:
        arr = job.array
        if timed_out:
            return (
                "fail",
                Reason.ATTEMPT_TIMEOUT,
                f"attempt {attempt} exceeded {spec.timeout_seconds}s (not retried, as AWS)",
            )
        if interrupted:
            if arr is not None and index is not None:
                arr.child_interruptions[index] = min(255, arr.child_interruptions[index] + 1)
                n = arr.child_interruptions[index]
            else:
                job.interruptions += 1
                n = job.interruptions
            if n <= spec.interruption_budget:
                return (
                    "retry",
                    Reason.INTERRUPTED,
                    f"interrupted ({status_reason or 'node reclaimed'}); "
                    f"{n}/{spec.interruption_budget} of the interruption budget used",
                )
            if self._fallback(job, ce):
                if arr is not None and index is not None:
                    arr.child_interruptions[index] = 0
                else:
                    job.interruptions = 0
                return (
                    "retry",
                    Reason.INTERRUPTED,
                    "interruption budget used up: falling back to the next compute environment",
                )
            return (
                "fail",
                Reason.INTERRUPTED,
                f"interrupted {n} times and no compute environment to fall back to",
            )
        if arr is not None and index is not None:
            arr.child_failures[index] = min(255, arr.child_failures[index] + 1)
            failures = int(arr.child_failures[index])
        else:
            job.failures += 1
            failures = job.failures
        action = evaluate_exit(spec.retry, failures, exit_code, reason, status_reason)
        what = (
            f"exit code {exit_code}"
            + (f", reason {reason}" if reason else "")
            + (f", {status_reason}" if status_reason else "")
        )
        if action is RetryAction.RETRY:
            return (
                "retry",
                Reason.ESSENTIAL_EXIT,
                f"attempt {attempt} failed ({what}); retrying ({failures}/{spec.retry.attempts})",
            )
        if failures >= spec.retry.attempts:
            return (
                "fail",
                Reason.RETRIES_EXHAUSTED,
                f"attempt {attempt} failed ({what}); "
                f"{failures}/{spec.retry.attempts} attempts used",
            )
        return (
            "fail",
            Reason.ESSENTIAL_EXIT,
            f"attempt {attempt} failed ({what}); evaluateOnExit: Exit",
        )

    def _fallback(self, job: JobState, ce: str) -> bool:
        qs = self.queues.get(job.spec.queue)
        if qs is None:
            return False
        order = qs.spec.compute_environments
        idx = order.index(ce) if ce in order else job.ce_floor
        if idx + 1 >= len(order):
            return False
        job.ce_floor = idx + 1
        return True

    # --- snapshot / assume / forget -------------------------------------------------------

    def snapshot(self, now: float) -> Snapshot:
        """Take the cycle's snapshot: CE room copies, the coalesced outbox, expired state time
        limits. Also drains the outbox: every decision it holds must be applied."""
        outbox: list[Decision] = self._events
        self._events = []
        for key in self._dirty_arrays:
            job = self.jobs.get(key)
            if job is not None and job.array is not None:
                if not job.phase.terminal and job.phase is not Phase.PENDING:
                    job.phase = array_phase(job.array, job.phase)
                summary = (job.phase, job.array.summary())
                if summary != job.last_summary:
                    self._status[key + "\0summary"] = UpdateArraySummary(key, *summary)
        self._dirty_arrays = set()
        outbox.extend(self._status.values())
        self._status = {}
        expired: list[tuple[str, Phase, float, StateTimeLimit]] = []
        timers = self._timers
        while timers and timers[0][0] <= now:
            _, _, key, phase, since, limit = heapq.heappop(timers)
            job = self.jobs.get(key)
            if job is not None and job.phase is phase and job.state_since == since:
                expired.append((key, phase, since, limit))
        fresh = self._fresh
        self._fresh = set()
        full = now - self._refreshed_at >= self.config.position_refresh_seconds
        if full:
            self._refreshed_at = now
        return Snapshot(
            now=now,
            config=self.config,
            queues=self._by_priority,
            ces={n: led.ce for n, led in self.ledgers.items()},
            free={n: led.free() for n, led in self.ledgers.items()},
            outbox=outbox,
            fresh=fresh,
            expired=expired,
            full_refresh=full,
            jobs=self.jobs,
            namespace_labels=self.namespace_labels,
        )

    def assume(self, d: Decision, now: float) -> None:
        """Record a decision. Call it for every decision of the cycle; for ``Admit`` call it
        *before* the API write (then ``forget`` if the write fails)."""
        if isinstance(d, Admit):
            self._assume_admit(d, now)
        elif isinstance(d, SetWaiting):
            job = self.jobs.get(d.job_key)
            if job is not None:
                job.last_status = (d.phase, d.reason, d.queue_position)
                job.position = d.queue_position
                if job.phase is d.phase:
                    job.reason = d.reason
        elif isinstance(d, UpdateArraySummary):
            job = self.jobs.get(d.job_key)
            if job is not None:
                job.last_summary = (d.phase, d.summary)
        elif isinstance(d, SkipComputeEnvironment):
            job = self.jobs.get(d.job_key)
            if job is not None and not job.phase.terminal:
                job.ce_floor = max(job.ce_floor, d.next_ce_index)
                job.state_since = now
                self._arm_timers(job, now)
        elif isinstance(d, Fail):
            job = self.jobs.get(d.job_key)
            if job is not None and not job.phase.terminal:
                self._fail(job, d.reason, d.message, now)
                self._status.pop(d.job_key, None)
        elif isinstance(d, Terminate):
            job = self.jobs.get(d.job_key)
            if job is not None:
                job.stop_reason = d.reason
                job.stop_fallback = d.fallback

    def assume_all(self, decisions: Iterable[Decision], now: float) -> None:
        """``assume`` each decision in order."""
        for d in decisions:
            self.assume(d, now)

    def forget(self, d: Decision, now: float) -> None:
        """Roll back an assumed ``Admit`` whose Kubernetes Job could not be created (the job
        is Runnable again at its old place); for a failed status write, the status is
        re-emitted next cycle."""
        if isinstance(d, SetWaiting):
            job = self.jobs.get(d.job_key)
            if job is not None:
                job.last_status = None
                self._fresh.add(d.job_key)
            return
        if not isinstance(d, Admit):
            return
        job = self.jobs.get(d.job_key)
        if job is None:
            return
        if job.array is not None and d.index is not None:
            arr = job.array
            if arr.active.pop(d.index, None) is None:
                return
            self._release(job, d.compute_environment)
            arr.child_attempt[d.index] -= 1
            arr.set_phase(d.index, _RUNNABLE)
            heapq.heappush(arr.ready, d.index)
            self._array_requeue(job, now)
            self._dirty_arrays.add(job.key)
            return
        if job.phase is not Phase.STARTING or job.attempt != d.attempt:
            return
        self._release(job, d.compute_environment)
        job.attempt -= 1
        job.ce = None
        job.phase = next_phase(job.phase, AdmissionRolledBack())
        self._enqueue(job, now)

    def _assume_admit(self, d: Admit, now: float) -> None:
        job = self.jobs[d.job_key]
        qs = self.queues.get(job.spec.queue)
        led = self.ledgers.get(d.compute_environment)
        if led is not None:
            led.assume(d.resources)
        if qs is not None:
            ident = job.spec.share_identifier or ""
            qs.running_by_share[ident] = qs.running_by_share.get(ident, 0) + d.resources.mcpu
            fs = qs.spec.fair_share
            if fs is not None and fs.share_decay_seconds > 0:
                val = qs.share_usage(ident, now) - qs.running_by_share[ident] + d.resources.mcpu
                qs.usage[ident] = (val, now)
        if job.array is not None and d.index is not None:
            arr = job.array
            if arr.ready and arr.ready[0] == d.index:
                heapq.heappop(arr.ready)
            else:
                arr.ready.remove(d.index)
                heapq.heapify(arr.ready)
            arr.child_attempt[d.index] = d.attempt
            arr.active[d.index] = d.compute_environment
            arr.set_phase(d.index, _STARTING)
            if job.phase in (Phase.RUNNABLE, Phase.PENDING):
                job.phase = Phase.STARTING
            self._dirty_arrays.add(job.key)
            if (not arr.ready or len(arr.active) >= self._parallelism(job)) and qs is not None:
                qs.list_for(job).remove(job)
            self._fresh.discard(job.key)
            return
        if qs is not None:
            qs.list_for(job).remove(job)
        job.phase = next_phase(job.phase, Admitted())
        job.attempt = d.attempt
        job.ce = d.compute_environment
        job.reason = None
        job.position = None
        job.state_since = now
        self._fresh.discard(job.key)
        self._arm_timers(job, now)

    # --- internals ----------------------------------------------------------------------

    def _release(self, job: JobState, ce: str) -> None:
        led = self.ledgers.get(ce)
        if led is not None:
            led.forget(job.spec.size)
        qs = self.queues.get(job.spec.queue)
        if qs is not None:
            ident = job.spec.share_identifier or ""
            qs.running_by_share[ident] = qs.running_by_share.get(ident, 0) - job.spec.size.mcpu

    @staticmethod
    def _parallelism(job: JobState) -> int:
        assert job.array is not None
        p = job.spec.parallelism
        return job.array.size if p is None or p <= 0 else p

    def _namespace_allowed(self, qs: QueueState, namespace: str) -> bool:
        return qs.spec.namespace_selector.matches(self.namespace_labels.get(namespace, {}))

    @staticmethod
    def _order(job: JobState, spec: JobQueue) -> tuple[float, str] | tuple[int, float, str]:
        if spec.fair_share is None:
            return (job.spec.created_at, job.key)
        return (-job.spec.scheduling_priority, job.spec.created_at, job.key)

    def _in_cycle(self, job: JobState) -> bool:
        """Fail every job on a dependency cycle through the new ``job``: those reachable
        from it along dependencies *and* from which it is reachable (its dependents, via the
        reverse index). Cost: the ancestors and descendants of ``job``, not all jobs."""
        ns = job.spec.namespace

        def live(key: str) -> JobState | None:
            j = self.jobs.get(key)
            # finished jobs cannot be on a new cycle, except those a cycle already failed
            if j is None or (j.phase.terminal and j.reason is not Reason.DEPENDENCY_CYCLE):
                return None
            return j

        ancestors: set[str] = set()
        stack = [job]
        while stack:
            for dep in stack.pop().spec.depends_on:
                if dep.type is DependencyType.SEQUENTIAL:
                    continue
                key = f"{ns}/{dep.job_name}"
                if key not in ancestors and (parent := live(key)) is not None:
                    ancestors.add(key)
                    stack.append(parent)
        if job.key not in ancestors:
            return False
        members = {job.key}
        stack = [job]
        seen = {job.key}
        while stack:
            for dependent_key, _dep in self._rdeps.get(stack.pop().key, ()):
                if dependent_key in seen or (child := live(dependent_key)) is None:
                    continue
                seen.add(dependent_key)
                stack.append(child)
                if dependent_key in ancestors:
                    members.add(dependent_key)
        names = ", ".join(sorted(k.split("/", 1)[1] for k in members))
        failing = [self.jobs[k] for k in sorted(members) if not self.jobs[k].phase.terminal]
        for member in failing:
            msg = f"dependency cycle between: {names}"
            self._fail(member, Reason.DEPENDENCY_CYCLE, msg, member.state_since, propagate=False)
        for member in failing:
            self._propagate(member, member.state_since)
        return True

    def _dependency_known(
        self, job: JobState, dep: Dependency, parent: JobState, now: float
    ) -> None:
        """``parent`` (named by ``dep``) is known: count its edge per child for N_TO_N, and
        settle it at once if ``parent`` already finished."""
        if dep.type is DependencyType.N_TO_N:
            if job.array is None or parent.array is None or job.array.size != parent.array.size:
                self._fail(
                    job,
                    Reason.INVALID_SPEC,
                    f"N_TO_N dependency on {parent.spec.name}: both must be arrays of "
                    "the same size",
                    now,
                )
                return
            arr, parr = job.array, parent.array
            for i in range(arr.size):
                code = parr.child_phase[i]
                if code in (_SUCCEEDED, _FAILED):
                    if not _satisfies(dep.condition, PHASES[code]):
                        self._fail(
                            job,
                            Reason.DEPENDENCY_FAILED,
                            f"{parent.spec.name}[{i}] is {PHASES[code]}",
                            now,
                        )
                        return
                else:
                    arr.child_wait[i] += 1
            self._edge_satisfied(job, now)
            return
        if parent.phase.terminal:
            if _satisfies(dep.condition, parent.phase):
                self._edge_satisfied(job, now)
            else:
                self._fail(
                    job,
                    Reason.DEPENDENCY_FAILED,
                    f"dependency {parent.spec.name} is {parent.phase} (needs {dep.condition})",
                    now,
                )

    def _edge_satisfied(self, job: JobState, now: float) -> None:
        job.unsatisfied -= 1
        if job.unsatisfied == 0 and job.phase in (Phase.SUBMITTED, Phase.PENDING):
            self._make_runnable(job, now)

    def _set_waiting_phase(self, job: JobState, now: float) -> None:
        if job.unsatisfied > 0:
            job.phase = next_phase(job.phase, Validated())
            job.reason = Reason.WAITING_FOR_DEPENDENCIES
            job.message = "waiting for dependencies"
            job.state_since = now
            self._fresh.add(job.key)
            self._arm_timers(job, now)
        else:
            self._make_runnable(job, now)

    def _make_runnable(self, job: JobState, now: float) -> None:
        job.phase = next_phase(job.phase, DependenciesMet())
        job.state_since = now
        job.reason = Reason.INSUFFICIENT_CAPACITY
        if job.array is not None:
            arr = job.array
            seq = any(d.type is DependencyType.SEQUENTIAL for d in job.spec.depends_on)
            for i in range(arr.size):
                if arr.child_phase[i] != _PENDING:
                    continue
                if seq and i > 0:
                    arr.child_wait[i] += 1
                if arr.child_wait[i] == 0:
                    arr.set_phase(i, _RUNNABLE)
                    arr.ready.append(i)
            heapq.heapify(arr.ready)
            self._dirty_arrays.add(job.key)
            if not arr.ready:
                job.reason = Reason.WAITING_FOR_DEPENDENCIES
                self._fresh.add(job.key)
                return
        self._enqueue(job, now)

    def _enqueue(self, job: JobState, now: float) -> None:
        qs = self.queues.get(job.spec.queue)
        if qs is None:
            self._orphan(job)
            return
        if not self._namespace_allowed(qs, job.spec.namespace):
            self._fail(
                job,
                Reason.QUEUE_NOT_ALLOWED,
                f"queue {qs.spec.name} does not admit namespace {job.spec.namespace}",
                now,
            )
            return
        size = job.spec.size
        best = self._largest_placement(qs)
        if best is not None and not size.fits_in(best[1]):
            self._fail(job, Reason.NO_COMPUTE_ENVIRONMENT_CAN_FIT, no_fit_message(size, best), now)
            return
        job.order = self._order(job, qs.spec)
        lst = qs.list_for(job)
        job.position = lst.live
        lst.add(job)
        m = qs.min_size
        qs.min_size = (
            size
            if m is None
            else Resources(min(m.mcpu, size.mcpu), min(m.memory, size.memory), min(m.gpu, size.gpu))
        )
        job.reason = job.reason or Reason.INSUFFICIENT_CAPACITY
        self._fresh.add(job.key)
        self._arm_timers(job, now)

    def _largest_placement(self, qs: QueueState) -> tuple[str, Resources] | None:
        best: tuple[str, Resources] | None = None
        for name in qs.spec.compute_environments:
            led = self.ledgers.get(name)
            if led is None:
                return None  # an unknown CE may appear: do not fail fast yet
            lp = led.ce.largest_placement()
            if best is None or (lp.mcpu, lp.memory, lp.gpu) > (
                best[1].mcpu,
                best[1].memory,
                best[1].gpu,
            ):
                best = (name, lp)
        return best

    def _orphan(self, job: JobState) -> None:
        job.reason = Reason.UNKNOWN_QUEUE
        self._orphans.setdefault(job.spec.queue, []).append(job)
        self._fresh.add(job.key)

    def _arm_timers(self, job: JobState, now: float) -> None:
        qs = self.queues.get(job.spec.queue)
        if qs is None or not qs.spec.state_time_limits:
            return
        for lim in qs.spec.state_time_limits:
            if lim.state is job.phase:
                self._timer_seq += 1
                heapq.heappush(
                    self._timers,
                    (
                        now + lim.max_time_seconds,
                        self._timer_seq,
                        job.key,
                        job.phase,
                        job.state_since,
                        lim,
                    ),
                )

    def _fail(
        self, job: JobState, reason: Reason, message: str, now: float, *, propagate: bool = True
    ) -> None:
        if job.phase.terminal:
            return
        qs = self.queues.get(job.spec.queue)
        if job.queued and qs is not None:
            qs.list_for(job).remove(job)
        if job.array is not None:
            arr = job.array
            arr.final_failure = reason
            if arr.active:  # children still running: stop them, the parent fails after
                for i in arr.active:
                    self._events.append(
                        Terminate(
                            job.key,
                            i,
                            arr.child_attempt[i],
                            job_name_for_attempt(
                                job.spec.name, job.spec.token, i, arr.child_attempt[i]
                            ),
                            reason,
                            message,
                        )
                    )
                job.reason, job.message = reason, message
                self._dirty_arrays.add(job.key)
                return
        job.phase = next_phase(job.phase, JobFailed(reason))
        job.reason, job.message = reason, message
        job.state_since = now
        self._fresh.discard(job.key)
        self._status[job.key] = Fail(job.key, reason, message)
        if job.array is not None:
            self._dirty_arrays.add(job.key)
        if propagate:
            self._propagate(job, now)

    def _succeed(self, job: JobState, now: float) -> None:
        job.phase = next_phase(job.phase, AttemptSucceeded())
        job.reason, job.message = Reason.SUCCEEDED, ""
        job.state_since = now
        self._status[job.key] = Succeed(job.key)
        if job.array is not None:
            self._dirty_arrays.add(job.key)
        self._propagate(job, now)

    def _retry(
        self,
        job: JobState,
        index: int | None,
        attempt: int,
        reason: Reason | None,
        message: str,
        interrupted: bool,
        now: float,
    ) -> None:
        self._events.append(Retry(job.key, index, attempt, reason, message, interrupted))
        if index is None:
            job.ce = None
            job.phase = next_phase(job.phase, AttemptRetried())
            job.state_since = now
            job.reason = Reason.INSUFFICIENT_CAPACITY
            job.last_status = None
            self._enqueue(job, now)

    def _terminate(self, job: JobState, reason: str, now: float) -> None:
        if job.phase in WAITING or job.array is not None:
            self._fail(job, Reason.TERMINATED, reason, now)
        else:
            self._events.append(
                Terminate(
                    job.key,
                    None,
                    job.attempt,
                    job_name_for_attempt(job.spec.name, job.spec.token, None, job.attempt),
                    Reason.TERMINATED,
                    reason,
                )
            )

    def _propagate(self, job: JobState, now: float) -> None:
        """``job`` became terminal: settle the edges of its dependents (reverse index)."""
        work = [job]
        while work:
            j = work.pop()
            for dependent_key, dep in self._rdeps.get(j.key, ()):
                d = self.jobs.get(dependent_key)
                if d is None or d.phase.terminal:
                    continue
                if dep.type is DependencyType.N_TO_N:
                    continue  # settled per child
                if _satisfies(dep.condition, j.phase):
                    self._edge_satisfied(d, now)
                else:
                    self._fail(
                        d,
                        Reason.DEPENDENCY_FAILED,
                        f"dependency {j.spec.name} is {j.phase} (needs {dep.condition})",
                        now,
                    )

    # --- arrays ---------------------------------------------------------------------------

    def _array_requeue(self, job: JobState, now: float) -> None:
        arr = job.array
        assert arr is not None
        if (
            arr.final_failure is None
            and arr.ready
            and not job.queued
            and job.phase in (Phase.RUNNABLE, Phase.STARTING, Phase.RUNNING)
        ):
            qs = self.queues.get(job.spec.queue)
            if qs is None:
                self._orphan(job)
                return
            job.order = self._order(job, qs.spec)
            qs.list_for(job).add(job)

    def _child_finished(
        self,
        job: JobState,
        index: int,
        attempt: int,
        now: float,
        exit_code: int | None,
        reason: str | None,
        status_reason: str | None,
        interrupted: bool,
        timed_out: bool,
    ) -> None:
        arr = job.array
        assert arr is not None
        if index not in arr.active or arr.child_attempt[index] != attempt:
            return
        ce = arr.active.pop(index)
        self._release(job, ce)
        self._dirty_arrays.add(job.key)
        ok = exit_code == 0 and not interrupted and not timed_out
        if arr.final_failure is not None:
            arr.set_phase(index, _SUCCEEDED if ok else _FAILED)
            self._child_settled(job, index, now)
            self._array_check_done(job, now)
            return
        if ok:
            arr.set_phase(index, _SUCCEEDED)
            self._child_settled(job, index, now)
            self._array_check_done(job, now)
            self._array_requeue(job, now)  # a parallelism slot is free again
            return
        verdict = self._verdict(
            job.spec,
            ce,
            job,
            index,
            attempt,
            exit_code,
            reason,
            status_reason,
            interrupted,
            timed_out,
        )
        if verdict[0] == "retry":
            arr.set_phase(index, _RUNNABLE)
            heapq.heappush(arr.ready, index)
            self._retry(job, index, attempt, verdict[1], verdict[2], interrupted, now)
            self._array_requeue(job, now)
            return
        arr.set_phase(index, _FAILED)
        self._child_settled(job, index, now)
        arr.final_failure = Reason.ARRAY_CHILD_FAILED
        job.message = f"child {index}: {verdict[2]}"
        qs = self.queues.get(job.spec.queue)
        if job.queued and qs is not None:
            qs.list_for(job).remove(job)
        self._array_check_done(job, now)

    def _child_settled(self, job: JobState, index: int, now: float) -> None:
        """Child ``index`` is final: release SEQUENTIAL successors and N_TO_N dependents."""
        arr = job.array
        assert arr is not None
        code = arr.child_phase[index]
        if (
            code == _SUCCEEDED
            and index + 1 < arr.size
            and any(d.type is DependencyType.SEQUENTIAL for d in job.spec.depends_on)
        ):
            self._child_edge_satisfied(job, index + 1, now)
        for dependent_key, dep in self._rdeps.get(job.key, ()):
            if dep.type is not DependencyType.N_TO_N:
                continue
            d = self.jobs.get(dependent_key)
            if d is None or d.phase.terminal or d.array is None or d.array.size != arr.size:
                continue
            if _satisfies(dep.condition, PHASES[code]):
                self._child_edge_satisfied(d, index, now)
            else:
                darr = d.array
                if darr.child_phase[index] in (_PENDING, _RUNNABLE):
                    darr.set_phase(index, _FAILED)
                    darr.final_failure = Reason.DEPENDENCY_FAILED
                    d.message = (
                        f"child {index}: dependency {job.spec.name}[{index}] is {PHASES[code]}"
                    )
                    qs = self.queues.get(d.spec.queue)
                    if d.queued and qs is not None:
                        qs.list_for(d).remove(d)
                    self._dirty_arrays.add(d.key)
                    self._child_settled(d, index, now)
                    self._array_check_done(d, now)

    def _child_edge_satisfied(self, job: JobState, index: int, now: float) -> None:
        arr = job.array
        assert arr is not None
        if arr.child_wait[index] > 0:
            arr.child_wait[index] -= 1
        if (
            arr.child_wait[index] == 0
            and arr.child_phase[index] == _PENDING
            and job.phase is not Phase.PENDING
            and job.phase is not Phase.SUBMITTED
        ):
            arr.set_phase(index, _RUNNABLE)
            heapq.heappush(arr.ready, index)
            self._dirty_arrays.add(job.key)
            self._array_requeue(job, now)

    def _array_check_done(self, job: JobState, now: float) -> None:
        arr = job.array
        assert arr is not None
        if job.phase.terminal:
            return
        if arr.counts[_SUCCEEDED] == arr.size:
            self._succeed(job, now)
        elif arr.final_failure is not None and not arr.active:
            # children never started are left as they are; the parent fails
            job.reason = None
            self._fail_array_final(job, now)
        elif arr.counts[_RUNNING]:
            job.phase = Phase.RUNNING
        elif arr.counts[_STARTING]:
            job.phase = Phase.STARTING

    def _fail_array_final(self, job: JobState, now: float) -> None:
        arr = job.array
        assert arr is not None
        reason = arr.final_failure or Reason.ARRAY_CHILD_FAILED
        arr.final_failure = None  # let _fail run its terminal branch
        message = job.message or "a child failed"
        job.phase = Phase.RUNNING  # any non-terminal phase
        self._fail(job, reason, message, now)
        arr.final_failure = reason

    # --- read-only helpers -----------------------------------------------------------------

    def pending_count(self) -> int:
        return sum(q.live() for q in self.queues.values())

    def phase_of(self, key: str) -> Phase | None:
        job = self.jobs.get(key)
        return None if job is None else job.phase


def array_phase(arr: ArrayState, phase: Phase) -> Phase:
    """Pure: a non-terminal array parent's phase from its children's counts."""
    if arr.counts[_RUNNING]:
        return Phase.RUNNING
    if arr.counts[_STARTING]:
        return Phase.STARTING
    return Phase.RUNNABLE if phase is not Phase.SUBMITTED else phase


def _satisfies(condition: Condition, phase: Phase) -> bool:
    """Pure: whether a finished dependency in ``phase`` satisfies ``condition``."""
    if condition is Condition.COMPLETED:
        return phase.terminal
    if condition is Condition.FAILED:
        return phase is Phase.FAILED
    return phase is Phase.SUCCEEDED


def no_fit_message(size: Resources, best: tuple[str, Resources]) -> str:
    """Pure: the fail-fast message naming the largest possible placement."""
    return (
        f"the job needs {size.human()}; the largest placement its queue's compute "
        f"environments can ever provide is {best[1].human()} (compute environment "
        f"{best[0]})"
    )
