"""The console's in-memory index of BatchJobs, job queues and compute environments. Pure.

Fed by list-then-watch (``kubatch.adapters.watch``) through :meth:`Index.sync` (a complete
list) and :meth:`Index.apply` (one watch event), it keeps a slim row per job — not the whole
object — so that 100,000 jobs cost tens of megabytes, and it answers the pages' questions
without asking the API server:

- the job list: filters (namespace, queue, phase, reason, name) over rows kept sorted newest
  first, a page cut out of them, and the number that matched;
- the overview: jobs per queue and phase, counted as events arrive (per namespace, so that a
  viewer's counts cover only the namespaces they may read);
- the dependents of a job (its dependencies are in its own spec: the links go both ways).

Every change calls the listeners with the keys that changed (``("job", ns, name)``,
``("queue", name)``, ``("ce", name)``): the server turns them into server-sent events.
"""

from __future__ import annotations

import bisect
from collections import Counter, defaultdict
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from kubatch.core.lifecycle import Phase
from kubatch.timefmt import parse_time

Key = tuple[str, ...]
Listener = Callable[[set[Key]], None]
PHASES = tuple(p.value for p in Phase)


@dataclass(frozen=True, slots=True)
class JobRow:
    """What the job list shows of one BatchJob."""

    namespace: str
    name: str
    uid: str
    queue: str
    phase: str
    reason: str
    message: str
    created: float
    depends_on: tuple[str, ...]
    array_size: int | None
    attempts: int
    compute_environment: str
    capacity_type: str
    cost: float | None

    @property
    def key(self) -> tuple[str, str]:
        return (self.namespace, self.name)

    @property
    def order(self) -> tuple[float, str, str]:
        """Newest first, then by namespace and name."""
        return (-self.created, self.namespace, self.name)


def _float(value: object) -> float | None:
    try:
        return float(value) if value is not None else None  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def job_row(obj: Mapping[str, Any]) -> JobRow:
    """Pure: the row of a BatchJob as the API server returns it (half-written ones too)."""
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    st = obj.get("status") or {}
    deps = tuple(
        str(d.get("jobName") or d.get("jobId") or "")
        for d in spec.get("dependsOn") or []
        if isinstance(d, Mapping) and (d.get("jobName") or d.get("jobId"))
    )
    array = spec.get("arrayProperties") or {}
    size = array.get("size") if isinstance(array, Mapping) else None
    attempts = st.get("attempts") or []
    return JobRow(
        namespace=str(meta.get("namespace") or ""),
        name=str(meta.get("name") or ""),
        uid=str(meta.get("uid") or ""),
        queue=str(spec.get("jobQueue") or ""),
        phase=str(st.get("phase") or Phase.SUBMITTED.value),
        reason=str(st.get("reason") or ""),
        message=str(st.get("message") or "")[:300],
        created=parse_time(meta.get("creationTimestamp")) or 0.0,
        depends_on=deps,
        array_size=int(size) if isinstance(size, int) else None,
        attempts=len(attempts) if isinstance(attempts, list) else 0,
        compute_environment=str(st.get("computeEnvironment") or ""),
        capacity_type=str(st.get("capacityType") or ""),
        cost=_float(st.get("cost")),
    )


@dataclass(frozen=True)
class Filters:
    """The job list's filters; empty strings match everything. ``name``: a substring."""

    namespace: str = ""
    queue: str = ""
    phase: str = ""
    reason: str = ""
    name: str = ""

    def matches(self, row: JobRow) -> bool:
        return (
            (not self.namespace or row.namespace == self.namespace)
            and (not self.queue or row.queue == self.queue)
            and (not self.phase or row.phase == self.phase)
            and (not self.reason or row.reason == self.reason)
            and (not self.name or self.name in row.name)
        )


@dataclass(frozen=True)
class Page:
    rows: tuple[JobRow, ...]
    total: int  # rows that matched the filters
    page: int  # 1-based
    size: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.size))


Allowed = Collection[str] | None
"""The namespaces a viewer may read (``None``: every namespace)."""


def _order(row: JobRow) -> tuple[float, str, str]:
    return row.order


def _visible(allowed: Allowed, namespace: str) -> bool:
    return allowed is None or namespace in allowed


class Index:
    """BatchJob rows, queues and compute environments, as the watches last reported them."""

    def __init__(self) -> None:
        self.jobs: dict[tuple[str, str], JobRow] = {}
        self._rows: list[JobRow] = []  # every job, sorted by JobRow.order (newest first)
        self._counts: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)  # (ns, q)
        self._dependents: dict[tuple[str, str], set[str]] = defaultdict(set)
        self.queues: dict[str, dict[str, Any]] = {}
        self.ces: dict[str, dict[str, Any]] = {}
        self.synced: set[str] = set()  # kinds listed at least once: "jobs", "queues", "ces"
        self.listeners: list[Listener] = []
        self.version = 0

    # -- feeding ------------------------------------------------------------------------------

    def _notify(self, keys: set[Key]) -> None:
        if not keys:
            return
        self.version += 1
        for listener in list(self.listeners):
            listener(keys)

    def _remove(self, key: tuple[str, str]) -> None:
        old = self.jobs.pop(key, None)
        if old is None:
            return
        i = bisect.bisect_left(self._rows, old.order, key=_order)
        if i < len(self._rows) and self._rows[i].key == old.key:
            del self._rows[i]
        counts = self._counts[(old.namespace, old.queue)]
        counts[old.phase] -= 1
        if counts[old.phase] <= 0:
            del counts[old.phase]
        if not counts:
            del self._counts[(old.namespace, old.queue)]
        for dep in old.depends_on:
            names = self._dependents.get((old.namespace, dep))
            if names is not None:
                names.discard(old.name)
                if not names:
                    del self._dependents[(old.namespace, dep)]

    def _put(self, row: JobRow) -> bool:
        old = self.jobs.get(row.key)
        if old == row:
            return False
        self._remove(row.key)
        self.jobs[row.key] = row
        bisect.insort(self._rows, row, key=_order)
        self._counts[(row.namespace, row.queue)][row.phase] += 1
        for dep in row.depends_on:
            self._dependents[(row.namespace, dep)].add(row.name)
        return True

    def apply(self, kind: str, event: str, obj: Mapping[str, Any]) -> None:
        """One watch event (``ADDED``/``MODIFIED``/``DELETED``) of ``kind`` jobs/queues/ces."""
        meta = obj.get("metadata") or {}
        name = str(meta.get("name") or "")
        if kind == "jobs":
            row = job_row(obj)
            if event == "DELETED":
                if row.key in self.jobs:
                    self._remove(row.key)
                    self._notify({("job", row.namespace, row.name)})
            elif self._put(row):
                self._notify({("job", row.namespace, row.name)})
            return
        store = self.queues if kind == "queues" else self.ces
        tag = "queue" if kind == "queues" else "ce"
        if event == "DELETED":
            store.pop(name, None)
        else:
            store[name] = dict(obj)
        self._notify({(tag, name)})

    def sync(self, kind: str, items: Iterable[Mapping[str, Any]]) -> None:
        """A complete list of ``kind``: what is not in it any more is gone."""
        changed: set[Key] = set()
        if kind == "jobs":
            rows = {r.key: r for r in map(job_row, items)}
            old = self.jobs
            changed = {("job", *k) for k in old.keys() - rows.keys()}
            changed |= {("job", *k) for k, r in rows.items() if old.get(k) != r}
            self._rebuild(rows)
        else:
            store = self.queues if kind == "queues" else self.ces
            tag = "queue" if kind == "queues" else "ce"
            fresh = {str((o.get("metadata") or {}).get("name") or ""): dict(o) for o in items}
            changed = {(tag, n) for n in set(store) | set(fresh) if store.get(n) != fresh.get(n)}
            store.clear()
            store.update(fresh)
        self.synced.add(kind)
        self._notify(changed)

    def _rebuild(self, rows: dict[tuple[str, str], JobRow]) -> None:
        """Everything derived from the rows, at once (a list: sorting once beats inserting
        100,000 times)."""
        self.jobs = rows
        self._rows = sorted(rows.values(), key=_order)
        self._counts = defaultdict(Counter)
        self._dependents = defaultdict(set)
        for row in self._rows:
            self._counts[(row.namespace, row.queue)][row.phase] += 1
            for dep in row.depends_on:
                self._dependents[(row.namespace, dep)].add(row.name)

    # -- questions ----------------------------------------------------------------------------

    def namespaces(self) -> set[str]:
        return {ns for ns, _ in self.jobs}

    def query(self, filters: Filters, allowed: Allowed, page: int = 1, size: int = 50) -> Page:
        """Pure: one page of the rows matching ``filters`` in namespaces ``allowed``, newest
        first. Filters on namespace, queue and phase only: the total comes from the counts
        and the pass over the sorted rows stops at the end of the page; with a name or
        reason, one whole pass counts the matches."""
        size = max(1, min(size, 500))
        page = max(1, page)
        skip = (page - 1) * size
        match = filters.matches
        if allowed is None and filters == Filters():
            return Page(tuple(self._rows[skip : skip + size]), len(self._rows), page, size)
        counted = not filters.name and not filters.reason
        total = self._count(filters, allowed) if counted else 0
        out: list[JobRow] = []
        seen = 0
        for row in self._rows:
            if allowed is not None and row.namespace not in allowed:
                continue
            if not match(row):
                continue
            if seen >= skip and len(out) < size:
                out.append(row)
                if counted and len(out) == size:
                    break
            seen += 1
        return Page(tuple(out), total if counted else seen, page, size)

    def _count(self, filters: Filters, allowed: Allowed) -> int:
        total = 0
        for (ns, queue), counts in self._counts.items():
            if not _visible(allowed, ns) or (filters.namespace and ns != filters.namespace):
                continue
            if filters.queue and queue != filters.queue:
                continue
            total += counts.get(filters.phase, 0) if filters.phase else sum(counts.values())
        return total

    def counts_by_queue(self, allowed: Allowed) -> dict[str, Counter[str]]:
        """Pure: jobs per queue and phase in the namespaces ``allowed``."""
        out: dict[str, Counter[str]] = defaultdict(Counter)
        for (ns, queue), counts in self._counts.items():
            if _visible(allowed, ns):
                out[queue].update(counts)
        return dict(out)

    def reasons(self, allowed: Allowed) -> list[str]:
        """The reasons present (the job list's reason filter offers these)."""
        seen = {r.reason for r in self.jobs.values() if r.reason and _visible(allowed, r.namespace)}
        return sorted(seen)

    def dependents(self, namespace: str, name: str) -> list[str]:
        """The jobs of ``namespace`` that depend on ``name``."""
        return sorted(self._dependents.get((namespace, name), ()))

    def get(self, namespace: str, name: str) -> JobRow | None:
        return self.jobs.get((namespace, name))
