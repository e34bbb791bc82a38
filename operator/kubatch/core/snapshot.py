"""What one scheduling cycle reads: the snapshot, through read-only views.

Pure. ``Cache.snapshot(now)`` copies what the cycle spends (each CE's room) and drains the
outbox (status changes coalesced per job, events that each matter, expired state time limits);
queues and jobs are *viewed*, not copied: copying up to a million waiting jobs every cycle
would cost the core its speed (docs/decisions/0005-core-snapshot.md). The views below are
read-only protocols — mypy rejects any write through them — and a property test checks that
``schedule`` leaves the cache exactly as it found it. ``schedule`` runs synchronously right
after the snapshot is taken, before the cache is fed again.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from kubatch.core.budget import BudgetState
from kubatch.core.capacity import Room
from kubatch.core.decisions import Decision
from kubatch.core.lifecycle import Phase, Reason
from kubatch.core.model import ComputeEnvironment, JobQueue, JobSpec, StateTimeLimit
from kubatch.core.resources import Resources
from kubatch.core.state import CacheConfig


class ArrayView(Protocol):
    """An array's children, read-only."""

    @property
    def size(self) -> int: ...
    @property
    def counts(self) -> Sequence[int]: ...
    @property
    def ready(self) -> Sequence[int]: ...
    @property
    def active(self) -> Mapping[int, str]: ...
    @property
    def child_attempt(self) -> Sequence[int]: ...
    @property
    def child_phase(self) -> Sequence[int]: ...
    @property
    def child_failures(self) -> Sequence[int]: ...
    @property
    def child_interruptions(self) -> Sequence[int]: ...
    @property
    def stop_reason(self) -> tuple[Reason, str] | None: ...
    @property
    def ran(self) -> bool: ...


class JobView(Protocol):
    """A job, read-only."""

    @property
    def key(self) -> str: ...
    @property
    def spec(self) -> JobSpec: ...
    @property
    def phase(self) -> Phase: ...
    @property
    def reason(self) -> Reason | None: ...
    @property
    def attempt(self) -> int: ...
    @property
    def ce_floor(self) -> int: ...
    @property
    def stop_reason(self) -> Reason | None: ...
    @property
    def position(self) -> int | None: ...
    @property
    def held_until(self) -> float: ...
    @property
    def queued(self) -> bool: ...
    @property
    def last_status(self) -> tuple[Phase, Reason | None, int | None] | None: ...
    @property
    def last_summary(self) -> tuple[Phase, tuple[tuple[Phase, int], ...]] | None: ...
    @property
    def array(self) -> ArrayView | None: ...


class JobList(Protocol):
    """A queue's ordered waiting jobs, read-only."""

    @property
    def live(self) -> int: ...
    def __iter__(self) -> Iterator[JobView]: ...


class QueueView(Protocol):
    """A queue, read-only."""

    @property
    def spec(self) -> JobQueue: ...
    @property
    def fifo(self) -> JobList: ...
    @property
    def shares(self) -> Mapping[str, JobList]: ...
    @property
    def min_size(self) -> Resources | None: ...
    @property
    def running_by_share(self) -> Mapping[str, int]: ...
    def share_usage(self, ident: str, now: float) -> float: ...


Expired = tuple[str, Phase, float, StateTimeLimit]
"""A state time limit that ran out: (job key, phase, since, limit)."""


@dataclass(slots=True)
class Snapshot:
    """What one scheduling cycle reads. ``rooms`` are copies the scheduler may spend;
    everything else is read-only."""

    now: float
    config: CacheConfig
    queues: Sequence[QueueView]  # by priority, highest first
    ces: Mapping[str, ComputeEnvironment]
    rooms: dict[str, Room]
    outbox: Sequence[Decision]
    fresh: frozenset[str]
    expired: Sequence[Expired]
    full_refresh: bool
    jobs: Mapping[str, JobView] = field(default_factory=dict)
    namespace_labels: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    # scheduling depth (#17): each is empty/None while its feature is not used
    queues_by_name: Mapping[str, QueueView] = field(default_factory=dict)
    consumables: dict[str, int] | None = None
    """Units available per consumable resource (a copy the scheduler spends); ``None``: no
    resource exists."""
    consumable_totals: Mapping[str, int] = field(default_factory=dict)
    victims: Mapping[str, Mapping[tuple[str, int | None], tuple[bool, float]]] | None = None
    """Starting/Running attempts per CE with their age (only once a queue preempts)."""
    releasing: Mapping[tuple[str, int | None], tuple[int, Reason, str | None]] = field(
        default_factory=dict
    )
    """Attempts being stopped on purpose (preempted, gangs released): (attempt, reason, CE)."""
    budgets: Mapping[str, BudgetState] = field(default_factory=dict)
    """Queues whose spending limit is reached (admissions wait)."""

    def queue(self, name: str) -> QueueView | None:
        for q in self.queues:
            if q.spec.name == name:
                return q
        return None

    def enabled_mcpu(self, qs: QueueView) -> int:
        """The maxvCpus (milli) of the queue's enabled compute environments together."""
        total = 0
        for name in qs.spec.compute_environments:
            ce = self.ces.get(name)
            if ce is not None and ce.enabled:
                total += ce.limit().mcpu
        return total


class Outbox:
    """Status changes coalesced per job until the next snapshot, and events (Retry,
    Terminate) that each matter; ``fresh`` jobs need their first waiting status."""

    __slots__ = ("dirty_arrays", "events", "fresh", "status")

    def __init__(self) -> None:
        self.status: dict[str, Decision] = {}
        self.events: list[Decision] = []
        self.fresh: set[str] = set()
        self.dirty_arrays: set[str] = set()

    def drain(self) -> tuple[list[Decision], frozenset[str]]:
        """Everything queued so far (events first, in order), and the fresh jobs."""
        out, self.events = self.events, []
        out.extend(self.status.values())
        self.status = {}
        fresh, self.fresh = frozenset(self.fresh), set()
        return out, fresh

    def forget(self, key: str) -> None:
        self.status.pop(key, None)
        self.status.pop(key + "\0summary", None)
        self.fresh.discard(key)
        self.dirty_arrays.discard(key)


def ordered(lists: Iterable[JobList]) -> Iterator[JobView]:
    """The waiting jobs of several lists, one list after the other."""
    for lst in lists:
        yield from lst
