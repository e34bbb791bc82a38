"""The cache's records: one per BatchJob, one per array's children, one per queue.

Pure, in-memory. These are the mutable records the cache keeps; only ``kubatch.core.cache``
and the helpers it delegates to (``arrays``, ``queues``) change them. The scheduler reads them
through the read-only views of ``kubatch.core.snapshot``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from kubatch.core.lifecycle import Phase, Reason
from kubatch.core.model import JobQueue, JobSpec
from kubatch.core.ordering import OrderedJobs
from kubatch.core.resources import Resources

PHASES: tuple[Phase, ...] = tuple(Phase)
CODE = {p: i for i, p in enumerate(PHASES)}
"""Phase -> one-byte code (array children keep their phase in a ``bytearray``)."""
SUBMITTED = CODE[Phase.SUBMITTED]
PENDING = CODE[Phase.PENDING]
RUNNABLE = CODE[Phase.RUNNABLE]
STARTING = CODE[Phase.STARTING]
RUNNING = CODE[Phase.RUNNING]
SUCCEEDED = CODE[Phase.SUCCEEDED]
FAILED = CODE[Phase.FAILED]
WAITING = (Phase.SUBMITTED, Phase.PENDING, Phase.RUNNABLE)

Order = tuple[float, str] | tuple[int, float, str]
"""A job's place in its queue: (submission time, key), or for fair share
(-schedulingPriority, submission time, key)."""


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
    """Children of an array job, compact: one byte per child phase and counter.

    ``ready`` is a heap of Runnable child indices, ``active`` maps Starting/Running children
    to their CE, ``counts`` counts children per phase code (it always adds up to ``size``).
    ``failed`` lists the indices that finally failed, in the order they did.
    """

    __slots__ = (
        "active",
        "child_attempt",
        "child_failures",
        "child_interruptions",
        "child_phase",
        "child_wait",
        "counts",
        "failed",
        "ran",
        "ready",
        "size",
        "stale",
        "stop_reason",
    )

    def __init__(self, size: int) -> None:
        self.size = size
        self.child_phase = bytearray([PENDING]) * size
        self.child_attempt = [0] * size
        self.child_failures = bytearray(size)
        self.child_interruptions = bytearray(size)
        self.child_wait = bytearray(size)  # unsatisfied N_TO_N / SEQUENTIAL edges per child
        self.counts = [0] * len(PHASES)
        self.counts[PENDING] = size
        self.ready: list[int] = []
        self.active: dict[int, str] = {}
        self.failed: list[int] = []
        self.ran = False  # a child has run (the parent is Running from then on)
        self.stale = False  # ``ready`` needs a rebuild (children were restored)
        self.stop_reason: tuple[Reason, str] | None = None  # set once the array is stopping

    def set_phase(self, i: int, code: int) -> None:
        self.counts[self.child_phase[i]] -= 1
        self.counts[code] += 1
        self.child_phase[i] = code

    def summary(self) -> tuple[tuple[Phase, int], ...]:
        """Children per phase (bounded: one pair per phase)."""
        return tuple((PHASES[c], n) for c, n in enumerate(self.counts) if n)

    @property
    def terminal(self) -> int:
        """How many children are Succeeded or Failed."""
        return self.counts[SUCCEEDED] + self.counts[FAILED]


class JobState:
    """The cache's mutable record of one BatchJob."""

    __slots__ = (
        "array",
        "attempt",
        "ce",
        "ce_floor",
        "failures",
        "held_until",
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

    def __init__(self, spec: JobSpec, now: float, phase: Phase = Phase.SUBMITTED) -> None:
        self.spec = spec
        self.key = spec.key
        self.phase = phase
        self.reason: Reason | None = None
        self.message = ""
        self.attempt = 0  # attempts started (names Kubernetes Jobs; AWS_BATCH_JOB_ATTEMPT)
        self.failures = 0  # failed attempts counted against retryStrategy.attempts
        self.interruptions = 0
        self.ce_floor = 0  # index in the queue's CE order (raised by fallbacks)
        self.ce: str | None = None
        self.held_until = 0.0  # not admitted before: its Kubernetes Job could not be created
        self.state_since = now
        self.unsatisfied = 0
        self.queued = False
        self.in_list = False
        self.order: Order = (spec.created_at, spec.key)
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

    def lists(self) -> list[OrderedJobs[JobState]]:
        return [self.fifo, *self.shares.values()]

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

    def order_of(self, job: JobState) -> Order:
        """Pure: ``job``'s place in this queue."""
        if self.spec.fair_share is None:
            return (job.spec.created_at, job.key)
        return (-job.spec.scheduling_priority, job.spec.created_at, job.key)
