"""The queues the cache knows: their ordered waiting jobs, priorities, shares and namespaces.

Pure, in-memory. A job that names a queue not applied (yet) is an *orphan*: it waits, by queue
name, until a queue of that name appears (GitOps applies objects in any order) — and so do the
waiting jobs of a deleted queue until it comes back.
"""

from __future__ import annotations

from collections.abc import Mapping

from kubatch.core.model import JobQueue
from kubatch.core.resources import Resources
from kubatch.core.state import JobState, QueueState


class QueueBook:
    """Queues by name and by priority, orphans by queue name, namespace labels."""

    __slots__ = ("by_priority", "namespace_labels", "orphans", "queues")

    def __init__(self) -> None:
        self.queues: dict[str, QueueState] = {}
        self.by_priority: list[QueueState] = []
        self.orphans: dict[str, list[JobState]] = {}
        self.namespace_labels: dict[str, dict[str, str]] = {}

    def get(self, name: str) -> QueueState | None:
        return self.queues.get(name)

    def upsert(self, spec: JobQueue) -> list[JobState]:
        """A queue was created or changed; returns the orphans now waiting for it."""
        qs = self.queues.get(spec.name)
        if qs is None:
            qs = self.queues[spec.name] = QueueState(spec)
        else:
            policy_changed = (qs.spec.fair_share is None) != (spec.fair_share is None)
            qs.spec = spec
            if policy_changed:
                self._rebuild(qs)
        self.by_priority = sorted(
            self.queues.values(), key=lambda q: (-q.spec.priority, q.spec.name)
        )
        return self.orphans.pop(spec.name, [])

    def remove(self, name: str) -> list[JobState]:
        """A queue was deleted; returns its waiting jobs (the caller orphans them)."""
        qs = self.queues.pop(name, None)
        if qs is None:
            return []
        self.by_priority = [q for q in self.by_priority if q.spec.name != name]
        waiting = [j for lst in qs.lists() for j in lst]
        for job in waiting:
            job.queued = job.in_list = False
        return waiting

    def orphan(self, job: JobState) -> None:
        """``job`` waits for a queue of its queue's name."""
        lst = self.orphans.setdefault(job.spec.queue, [])
        if job not in lst:
            lst.append(job)

    def forget_orphan(self, job: JobState) -> None:
        lst = self.orphans.get(job.spec.queue)
        if lst and job in lst:
            lst.remove(job)

    def allowed(self, qs: QueueState, namespace: str) -> bool:
        """Whether the queue's ``namespaceSelector`` admits ``namespace``."""
        return qs.spec.namespace_selector.matches(self.namespace_labels.get(namespace, {}))

    def set_namespace_labels(self, namespace: str, labels: Mapping[str, str]) -> None:
        self.namespace_labels[namespace] = dict(labels)

    @staticmethod
    def add(qs: QueueState, job: JobState) -> None:
        """Put ``job`` in its place in ``qs`` (its estimated position is the waiting count)."""
        job.order = qs.order_of(job)
        lst = qs.list_for(job)
        job.position = lst.live + 1
        lst.add(job)
        size, m = job.spec.size, qs.min_size
        qs.min_size = (
            size
            if m is None
            else Resources(min(m.mcpu, size.mcpu), min(m.memory, size.memory), min(m.gpu, size.gpu))
        )

    def drop(self, job: JobState) -> None:
        """Take ``job`` out of its queue's list (if it is in it)."""
        qs = self.queues.get(job.spec.queue)
        if job.queued and qs is not None:
            qs.list_for(job).remove(job)

    def running(self, job: JobState, mcpu: int, now: float) -> None:
        """``mcpu`` of ``job``'s share was admitted (fair-share usage, decayed)."""
        qs = self.queues.get(job.spec.queue)
        if qs is None:
            return
        ident = job.spec.share_identifier or ""
        fs = qs.spec.fair_share
        if fs is not None and fs.share_decay_seconds > 0:
            val = qs.share_usage(ident, now) - qs.running_by_share.get(ident, 0) + mcpu
            qs.usage[ident] = (val, now)
        qs.running_by_share[ident] = qs.running_by_share.get(ident, 0) + mcpu

    def stopped(self, job: JobState, mcpu: int) -> None:
        """``mcpu`` of ``job``'s share stopped running."""
        qs = self.queues.get(job.spec.queue)
        if qs is not None:
            ident = job.spec.share_identifier or ""
            qs.running_by_share[ident] = qs.running_by_share.get(ident, 0) - mcpu

    @staticmethod
    def _rebuild(qs: QueueState) -> None:
        jobs = [j for lst in qs.lists() for j in lst]
        for lst in qs.lists():
            for j in lst.items:
                j.in_list = False
        qs.fifo = type(qs.fifo)()
        qs.shares = {}
        for j in jobs:
            j.queued = False
            j.order = qs.order_of(j)
            qs.list_for(j).add(j)

    def backlog(self, enabled: set[str]) -> dict[str, int]:
        """Milli-vCPUs of the waiting work of every queue per CE it would go to first (the
        first ``enabled`` CE in its queue's order from its fallback floor)."""
        out: dict[str, int] = {}
        for qs in self.queues.values():
            order = qs.spec.compute_environments
            for lst in qs.lists():
                for job in lst:
                    first = next((n for n in order[job.ce_floor :] if n in enabled), None)
                    if first is not None:
                        n = len(job.array.ready) if job.array is not None else 1
                        out[first] = out.get(first, 0) + job.spec.size.mcpu * n
        return out

    def pending_count(self) -> int:
        return sum(q.live() for q in self.queues.values())
