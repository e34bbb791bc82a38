"""The operator: the composition root of the controller.

It wires the pieces together — the scheduling cache (core), the records (``records``), the
cluster objects (``registry``), intake (what handlers call), attempts (what kubatch's Jobs
and pods say), effects (the writes) and the loop — and knows how to rebuild everything from
the cluster after a restart. kopf is not needed to use it: component tests drive an
``Operator`` on a ``FakeKube`` directly; ``controller.handlers`` registers it with kopf.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

from kubatch.adapters.kube import (
    BATCHJOBS,
    COMPUTEENVIRONMENTS,
    CONFIGMAPS,
    CONSUMABLERESOURCES,
    JOBDEFINITIONS,
    JOBQUEUES,
    JOBS,
    NAMESPACES,
    NODES,
    PODS,
    Resource,
)
from kubatch.adapters.protocol import KubeApi
from kubatch.api import labels as L
from kubatch.api.records import DATA_KEY, parse_rows
from kubatch.controller import convert
from kubatch.controller.attempts import Attempts
from kubatch.controller.children import Children
from kubatch.controller.consumables import Consumables
from kubatch.controller.effects import Effects
from kubatch.controller.gangs import Gangs
from kubatch.controller.intake import Intake
from kubatch.controller.loop import Loop
from kubatch.controller.mirror import TRIMS
from kubatch.controller.records import EventLog, JobBook
from kubatch.controller.registry import Registry
from kubatch.controller.settings import Settings
from kubatch.controller.stops import Stops
from kubatch.core.cache import Cache
from kubatch.core.lifecycle import Phase
from kubatch.metrics import Metrics

log = logging.getLogger("kubatch")
Clock = Callable[[], float]
OWNED = f"{L.MANAGED_BY}={L.MANAGER}"
"""Label selector of the Jobs and pods kubatch made (watched server-side)."""
RECORDS = f"{L.MANAGED_BY}={L.MANAGER},{L.ARRAY_RECORD}"
"""Label selector of the ConfigMaps holding array child records."""
JsonDict = dict[str, Any]


YIELD_EVERY = 500
"""Objects a rebuild handles between two turns of the event loop."""


class Lister(Protocol):
    """Where a rebuild reads the cluster from: the API server (any ``KubeApi``) or a warm
    standby's mirror (``kubatch.controller.mirror.Mirror``)."""

    async def list(
        self, res: Resource, *, namespace: str | None = None, labels: str | None = None
    ) -> list[JsonDict]: ...


class Operator:
    """Operator-wide state and its parts (kept in kopf's memo; no module globals)."""

    def __init__(
        self,
        kube: KubeApi,
        settings: Settings | None = None,
        metrics: Metrics | None = None,
        clock: Clock = time.time,
        may_write: Callable[[], bool] = lambda: True,
    ) -> None:
        self.kube = kube
        self.settings = settings = settings or Settings()
        self.metrics = metrics
        self.clock = clock
        self.wake = asyncio.Event()
        self.ready = asyncio.Event()  # set once the cache was rebuilt from lists
        self.cache = Cache(settings.cache)
        self.jobs = JobBook()
        self.registry = Registry(settings.catalogue)
        self.events = EventLog()
        self.children = Children(settings.timings.children)
        self.attempts = Attempts(
            self.cache,
            self.jobs,
            self.registry,
            self.children,
            kube=kube,
            metrics=metrics,
            clock=clock,
            poke=self.poke,
            timings=settings.timings,
        )
        self.intake = Intake(
            self.cache,
            self.jobs,
            self.registry,
            self.events,
            metrics=metrics,
            clock=clock,
            poke=self.poke,
            forget_attempts=self.attempts.forget,
        )
        self.effects = Effects(
            self.cache,
            self.jobs,
            self.registry,
            self.events,
            self.attempts,
            self.children,
            kube=kube,
            settings=settings,
            metrics=metrics,
            clock=clock,
            poke=self.poke,
        )
        self._wire_depth()
        self.loop = Loop(
            self.cache,
            self.attempts,
            self.effects,
            timings=settings.timings,
            metrics=metrics,
            clock=clock,
            wake=self.wake,
            may_write=may_write,
        )

    def _wire_depth(self) -> None:
        """#17: the nodes of multi-node jobs, stops on purpose, consumable resources' status."""
        self.gangs = Gangs(
            self.cache,
            self.jobs,
            self.attempts,
            kube=self.kube,
            placement=self.effects.placement,
            deadline_grace=int(self.settings.timings.deadline_grace),
            clock=self.clock,
            poke=self.poke,
        )
        self.attempts.gangs = self.effects.gangs = self.gangs
        self.effects.stops = Stops(self.jobs, self.events, kube=self.kube, metrics=self.metrics,
                                   gangs=lambda: self.gangs)  # fmt: skip
        self.effects.consumables = Consumables(self.cache, self.registry, kube=self.kube,
                                               metrics=self.metrics, clock=self.clock)  # fmt: skip

    def poke(self) -> None:
        """Wake the loop: something changed."""
        self.wake.set()

    def now(self) -> float:
        return self.clock()

    @property
    def scopes(self) -> list[str | None]:
        return list(self.settings.namespaces) or [None]

    async def rebuild(self, source: Lister | None = None) -> None:
        """Restart safety: read the whole state from the cluster before admitting anything.

        ``source``: where to read — the API server (default), or the mirror a warm standby
        kept (a takeover builds its state in memory, without a list).

        Order matters only for speed, never for the outcome: pools, queues and definitions
        first, then BatchJobs with a recorded definition (restored in their phase) before new
        submissions in time order, then the records of array children (finished children never
        run again), then kubatch's Jobs (an array child's latest attempt is restored as
        running) and pods (what attempts did meanwhile).
        """
        kube: Lister = source if source is not None else self.kube
        intake = self.intake
        for node in await kube.list(NODES):
            intake.on_node(node)
        for ns in await kube.list(NAMESPACES):
            intake.on_namespace(ns)
        for ce in await kube.list(COMPUTEENVIRONMENTS):
            intake.on_compute_environment(ce)
        for res in await kube.list(CONSUMABLERESOURCES):  # used-up units: before any job
            intake.on_consumable_resource(res)
        for q in await kube.list(JOBQUEUES):
            intake.on_job_queue(q)
        for scope in self.scopes:
            for jd in await kube.list(JOBDEFINITIONS, namespace=scope):
                intake.on_job_definition(jd)
        bjs = []
        for scope in self.scopes:
            bjs.extend(await kube.list(BATCHJOBS, namespace=scope))
        bjs.sort(
            key=lambda b: (b.get("status") is None, b["metadata"].get("creationTimestamp", ""))
        )
        for i, bj in enumerate(bjs, 1):
            intake.on_batch_job(bj)
            if i % YIELD_EVERY == 0:
                # 100,000 jobs take about a minute: the event loop must keep renewing the
                # Lease meanwhile (the replica buffers the events of meanwhile)
                await asyncio.sleep(0)
        for scope in self.scopes:
            for cm in await kube.list(CONFIGMAPS, namespace=scope, labels=RECORDS):
                self._restore_children(cm)
        jobs = []
        for scope in self.scopes:
            jobs.extend(await kube.list(JOBS, namespace=scope, labels=OWNED))
        latest: dict[tuple[str, int], tuple[int, JsonDict]] = {}
        for job in jobs:
            lab = convert.attempt_labels(job)
            if lab is not None and lab.index is not None:
                seen = latest.get((lab.key, lab.index))
                if seen is None or seen[0] < lab.attempt:
                    latest[(lab.key, lab.index)] = (lab.attempt, job)
        for _, job in latest.values():
            self.attempts.restore_from_job(job)
        for scope in self.scopes:
            for pod in await kube.list(PODS, namespace=scope, labels=OWNED):
                self.attempts.on_pod(pod)
        for job in jobs:
            self.attempts.on_k8s_job(job)
        self.ready.set()

    def _restore_children(self, cm: JsonDict) -> None:
        """Finished children (and every child's counters) from an array's record."""
        meta = cm.get("metadata") or {}
        key = f"{meta.get('namespace')}/{(meta.get('labels') or {}).get(L.BATCHJOB, '')}"
        view = self.cache.job(key)
        if view is None or view.array is None:
            return
        rows = list(parse_rows(str((cm.get("data") or {}).get(DATA_KEY, ""))))
        now = self.clock()
        for row in rows:
            phase = row.phase if row.phase.terminal else Phase.RUNNABLE
            self.cache.restore_child(
                key,
                row.index,
                phase,
                row.attempts,
                now,
                failures=row.failures,
                interruptions=row.interruptions,
            )
        self.children.restore(key, view.array.size, rows)

    # ------------------------------------------------------------------ what the watches say

    def feed(self, res: Resource, obj: JsonDict, deleted: bool = False) -> None:
        """One watch event of any kind the operator follows, to the part that takes it."""
        handler = self._handlers().get(res)
        if handler is not None:
            handler(obj, deleted=deleted)

    def _handlers(self) -> dict[Resource, Callable[..., None]]:
        i, a = self.intake, self.attempts
        return {
            BATCHJOBS: i.on_batch_job,
            JOBDEFINITIONS: i.on_job_definition,
            JOBQUEUES: i.on_job_queue,
            COMPUTEENVIRONMENTS: i.on_compute_environment,
            CONSUMABLERESOURCES: i.on_consumable_resource,
            NODES: i.on_node,
            NAMESPACES: i.on_namespace,
            PODS: a.on_pod,
            JOBS: a.on_k8s_job,
        }

    def sync(self, res: Resource, items: list[JsonDict]) -> None:
        """A complete list from one of the operator's own watches (its first, or a relist
        after the watch was down): objects deleted meanwhile end their attempts."""
        if res == JOBS:
            self.attempts.sync_jobs(items)
        elif res == PODS:
            self.attempts.sync_pods(items)

    def owned_watches(self) -> list[asyncio.Task[None]]:
        """Watch kubatch's own Jobs and pods with a server-side label selector (kopf would
        filter labels on the client, and receive every pod of the cluster). Each complete
        list (the first, and every relist after a 410) goes to :meth:`sync`."""
        tasks = []
        for scope in self.scopes:
            for res in (PODS, JOBS):
                task = asyncio.create_task(
                    self._watch_owned(res, scope),
                    name=f"kubatch-watch-{res.plural}-{scope or 'all'}",
                )
                tasks.append(task)
        return tasks

    async def _watch_owned(self, res: Resource, scope: str | None) -> None:
        def on_event(kind: str, obj: JsonDict) -> None:
            self.feed(res, obj, deleted=kind == "DELETED")

        def on_sync(items: list[JsonDict]) -> None:
            self.sync(res, items)

        await self.kube.watch(res, on_event, namespace=scope, labels=OWNED, on_sync=on_sync,
                              trim=TRIMS.get(res.plural))  # fmt: skip
