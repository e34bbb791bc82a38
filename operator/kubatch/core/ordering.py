"""Queue ordering structures: a sorted job list with lazy deletion.

Pure (in-memory). FIFO queues keep one ``OrderedJobs`` ordered by (submission time, key);
fair-share queues keep one per share identifier ordered by (-schedulingPriority, submission
time, key). Insertion at the tail is O(1) (submissions arrive in order); leaving the queue
only flips a flag, the head pointer skips dead entries and a compaction runs when more than
half the list is dead, so no cycle re-sorts the world.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from typing import Generic, Protocol, TypeVar


class Orderable(Protocol):
    order: tuple[float, str] | tuple[int, float, str]
    queued: bool
    in_list: bool


T = TypeVar("T", bound=Orderable)


class OrderedJobs(Generic[T]):
    """Jobs sorted by ``job.order``; a job is live while ``job.queued``."""

    __slots__ = ("dead", "head", "items", "live")

    def __init__(self) -> None:
        self.items: list[T] = []
        self.head = 0
        self.dead = 0
        self.live = 0

    def add(self, job: T) -> None:
        """Queue ``job`` (it keeps its old place if its entry is still in the list)."""
        if job.queued:
            return
        job.queued = True
        self.live += 1
        if job.in_list:
            self.dead -= 1
            return
        job.in_list = True
        items = self.items
        if not items or items[-1].order <= job.order:
            items.append(job)
        else:
            pos = bisect.bisect_right(items, job.order, lo=self.head, key=lambda j: j.order)
            items.insert(pos, job)

    def remove(self, job: T) -> None:
        """Take ``job`` out of the queue (lazily)."""
        if not job.queued:
            return
        job.queued = False
        self.live -= 1
        self.dead += 1
        items = self.items
        n = len(items)
        while self.head < n and not items[self.head].queued:
            items[self.head].in_list = False
            self.head += 1
            self.dead -= 1
        if self.head > 1024 and self.head * 2 > n:
            del items[: self.head]
            self.head = 0
        if self.dead > 1024 and self.dead * 2 > n - self.head:
            self.compact()

    def compact(self) -> None:
        keep = []
        for j in self.items[self.head :]:
            if j.queued:
                keep.append(j)
            else:
                j.in_list = False
        for j in self.items[: self.head]:
            j.in_list = False
        self.items = keep
        self.head = 0
        self.dead = 0

    def __iter__(self) -> Iterator[T]:
        """Live jobs in order (read-only: safe during ``schedule``)."""
        items = self.items
        for i in range(self.head, len(items)):
            j = items[i]
            if j.queued:
                yield j

    def __len__(self) -> int:
        return self.live
