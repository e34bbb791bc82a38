"""One replica of the operator: a warm standby, or the leader.

Every replica watches everything the operator follows — kopf's watches of nodes, namespaces
and the four kubatch kinds, and kubatch's own list-then-watch loops of its Jobs, pods and
array records — from start to stop, whether it leads or not. What it does with an event
depends on its role:

- **standby**: the event goes to the :class:`~kubatch.controller.mirror.Mirror` (the newest
  version of each object). Nothing decides, nothing writes.
- **takeover** (the Lease was won): a fresh :class:`~kubatch.controller.operator.Operator`
  is built from the mirror (``rebuild(source=mirror)``: the restart-safe rebuild, in memory,
  no list), the mirror is dropped, the scheduler loop starts. The operator writes through a
  :class:`~kubatch.controller.leader.FencedKube`, so it writes only while the Lease is held.
  The mirror is trusted only when it is complete and its feeds were undisturbed for a lease
  duration: a replica that has just started, or one that lost the API server recently (its
  watches may still be catching up), lists the API server instead — the restart's rebuild —
  and replays the events of meanwhile after it.
- **leader**: events go to the operator (intake, attempts); a relist of kubatch's Jobs or
  pods reconciles the attempts whose objects were deleted while the watch was down.
- **demotion** (the Lease was lost or not renewed in time): writes in flight are cancelled,
  the loop stops, the operator's state is dropped (another replica may have changed the
  cluster since), the watches of kubatch's own objects restart (they relist into the mirror)
  and the mirror is filled again from lists.

Without leader election (``elector=None``) the replica leads as soon as it has started.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from kubatch.adapters import memory
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
    ApiError,
    Resource,
    gc_paused,
)
from kubatch.adapters.protocol import KubeApi
from kubatch.controller.leader import FencedKube, LeaderElector
from kubatch.controller.loop import wait_event
from kubatch.controller.mirror import TRIMS, Mirror, slim
from kubatch.controller.operator import OWNED, RECORDS, Operator
from kubatch.controller.settings import Settings
from kubatch.metrics import Metrics

log = logging.getLogger("kubatch.replica")
RELEASE_EVERY = 5000
"""Watch events between two hand-backs of free heap (:mod:`kubatch.adapters.memory`)."""
BRIDGE_MAX_S = 600
"""The longest kubatch watches BatchJobs itself after a start, while kopf replays them."""
JsonDict = dict[str, Any]

CLUSTER_KINDS = (NODES, NAMESPACES, COMPUTEENVIRONMENTS, JOBQUEUES, CONSUMABLERESOURCES)
"""Kinds kopf watches cluster-wide (filled into the mirror by lists)."""
SCOPED_KINDS = (JOBDEFINITIONS, BATCHJOBS)
"""Kinds kopf watches per namespace scope."""
OWN_WATCHES: tuple[tuple[Resource, str], ...] = (
    (PODS, OWNED),
    (JOBS, OWNED),
    (CONFIGMAPS, RECORDS),
)
"""kubatch's own list-then-watch loops: what they select."""
REFERENCED = (JOBQUEUES, JOBDEFINITIONS)
"""Kinds a new BatchJob names: kept by every replica, leading or not, for the webhook's
look-ups (:meth:`Replica.known`)."""


class Replica:
    """One operator process (see the module doc). ``feed``/``sync`` take the watch events."""

    def __init__(
        self,
        kube: KubeApi,
        settings: Settings,
        metrics: Metrics | None = None,
        *,
        elector: Callable[[Callable[[bool], Any]], LeaderElector] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.kube = kube
        self.settings = settings
        self.metrics = metrics
        self.clock = clock
        self.mirror = Mirror()
        self.refs = Mirror()
        """Queues and definitions as the watches last delivered them, whatever the role."""
        self.op: Operator | None = None
        self.fence: FencedKube | None = None
        self.elector = elector(self._leadership) if elector is not None else None
        self._mono = self.elector.clock if self.elector is not None else time.monotonic
        self.leading = False
        """This replica's operator decides and writes (the loop runs)."""
        self.takeovers: list[float] = []
        """Seconds each takeover took, from winning the Lease to the loop running."""
        self._buffer: list[tuple[str, Resource, Any, bool]] | None = None
        self._lock = asyncio.Lock()
        self._watches: list[asyncio.Task[None]] = []
        self._bridges: list[asyncio.Task[None]] = []
        self._replay_left = 0  # BatchJobs kopf's first list has still to hand over
        self._loop: asyncio.Task[None] | None = None
        self._elect: asyncio.Task[None] | None = None
        self._fill: asyncio.Task[None] | None = None
        self._changes: set[asyncio.Task[None]] = set()
        self._synced = asyncio.Event()  # kubatch's own watches have each listed once
        self._disturbed_at = -1e18  # a watch of ours relisted (it had been down)
        self._syncs: dict[tuple[str, str | None], int] = {}
        self._listed: dict[tuple[str, str | None], str] = {}  # the mirror fill's versions
        self._listed_n: dict[tuple[str, str | None], int] = {}  # and how many objects
        self._release = memory.Release(RELEASE_EVERY)  # free heap back after bursts

    @property
    def scopes(self) -> list[str | None]:
        return list(self.settings.namespaces) or [None]

    def may_write(self) -> bool:
        """The fence: writes happen only while this replica holds the Lease (or when it runs
        without election) — asked again on every write."""
        if not self.leading:
            return False
        return self.elector is None or self.elector.leading()

    @property
    def holder(self) -> str:
        """Who leads, as this replica last saw it."""
        if self.elector is None:
            return self.settings.identity if self.leading else ""
        return self.elector.holder

    # ------------------------------------------------------------------ life

    async def start(
        self, sync_timeout: float = 60.0, *, elect: bool = True, first_cycle_timeout: float = 5.0
    ) -> None:
        """Start the watches, fill the mirror, then lead (no election) or stand by and run
        for the Lease. Returns once the mirror is complete (or ``sync_timeout`` passed) and,
        when this replica took over at once, its first scheduling cycle has run (or
        ``first_cycle_timeout`` passed): kopf starts its watches only after this returns, and
        their first lists replay every object as an event — thousands of them — so the jobs
        that can run are admitted before that replay competes with the loop.
        ``elect=False``: no election loop (tests drive :meth:`elect_once`)."""
        self._start_watches()
        await self._fill_mirror()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(sync_timeout):  # not wait_for: see loop.wait_event
                await self._synced.wait()
        if self.elector is None:
            await self._lead()
        elif elect:
            # The first try now: a Lease that is free (released by a clean stop, expired, or
            # still this identity's) is taken, and the takeover made, before this returns.
            await self.elector.step()
            self._elect = asyncio.create_task(self.elector.run(tried=True),
                                              name="kubatch-leader-election")  # fmt: skip
            await self.settled()
        if self.leading:
            await asyncio.gather(self._catch_up(), self.first_cycle(first_cycle_timeout))

    async def _catch_up(self) -> None:
        """After a takeover at the start: the BatchJobs created or changed since the mirror's
        lists are handed over as they come, from a watch of kubatch's own that resumes at the
        lists' version. kopf's watch begins only after the start, and its first list replays
        every BatchJob as an event (10,000 take about a minute) before a job submitted
        meanwhile reaches the intake; the bridge ends when that replay is through (or after
        :data:`BRIDGE_MAX_S`). Events both deliver are taken once (the intake knows them)."""

        def on_event(kind: str, obj: JsonDict) -> None:
            self.feed(BATCHJOBS, obj, deleted=kind == "DELETED")

        async def one(scope: str | None, version: str) -> None:
            try:
                await self.kube.catch_up(BATCHJOBS, version, on_event, namespace=scope,
                                         seconds=BRIDGE_MAX_S)  # fmt: skip
            except (ApiError, OSError, TimeoutError) as exc:  # kopf's watch delivers them
                log.info("watching BatchJobs until kopf's replay is through failed: %s", exc)

        self._replay_left = sum(self._listed_n.get((BATCHJOBS.plural, s), 0) for s in self.scopes)
        for scope in self.scopes:
            version = self._listed.get((BATCHJOBS.plural, scope))
            if version:
                task = asyncio.create_task(one(scope, version), name="kubatch-batchjob-bridge")
                self._bridges.append(task)
                self._watches.append(task)  # stopped with the replica's watches
        await asyncio.sleep(0)

    def replayed(self, res: Resource) -> None:
        """kopf handed over an object of its first list of ``res``: once it has handed over
        as many BatchJobs as the mirror's lists held, its watch is live and the bridge ends."""
        if res is not BATCHJOBS or self._replay_left <= 0:
            return
        self._replay_left -= 1
        if self._replay_left == 0:
            for task in self._bridges:
                task.cancel()
            self._bridges = []
            log.info("kopf's replay of the BatchJobs is through: its watch alone follows them")

    async def elect_once(self) -> None:
        """One election try and the role change it causes, carried out before returning."""
        if self.elector is not None:
            await self.elector.step()
        await self.settled()

    async def settled(self) -> None:
        """Wait for the role changes under way."""
        while self._changes:
            await asyncio.gather(*list(self._changes), return_exceptions=True)

    async def stop(self, release: bool = True) -> None:
        """Stop everything this replica runs; a leader releases the Lease first (``release``)
        so that the standby takes over at once."""
        if self.elector is not None and release:
            await self.elector.release()
        self.leading = False
        if self.fence is not None:
            self.fence.revoke()
        tasks = [t for t in (self._elect, self._loop, self._fill) if t is not None]
        tasks += self._watches + list(self._changes)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._watches = []

    async def first_cycle(self, timeout: float) -> None:
        """While leading: wait until the scheduling loop has run a cycle (or ``timeout``)."""
        op = self.op
        if self.leading and op is not None and timeout > 0:
            await wait_event(op.loop.decided, timeout)

    def known(self, res: Resource, name: str, namespace: str | None = None) -> JsonDict | None:
        """A queue or definition as this replica's watch last delivered it (None: not seen —
        the webhook then asks the API server, which may know of one created a moment ago)."""
        return self.refs.get(res, name, namespace) if res in REFERENCED else None

    # ------------------------------------------------------------------ events

    def feed(self, res: Resource, obj: JsonDict, deleted: bool = False) -> None:
        """One watch event (kopf's or kubatch's own)."""
        self._release.count()
        if self._release.due():
            memory.release()  # a few ms, once per RELEASE_EVERY events
        if res in REFERENCED:
            self.refs.feed(res, obj, deleted)
        op = self.op
        if self.leading and op is not None:
            op.feed(res, obj, deleted)
            return
        self.mirror.feed(res, obj, deleted)
        if self._buffer is not None:
            self._buffer.append(("feed", res, obj, deleted))

    def sync(
        self, res: Resource, items: list[JsonDict], namespace: str | None, labels: str
    ) -> None:
        """A complete list from one of kubatch's own watches."""
        self._release.count(len(items))
        seen = self._syncs.get((res.plural, namespace), 0)
        self._syncs[(res.plural, namespace)] = seen + 1
        if seen:
            self._disturbed_at = self._mono()  # a relist: the watch had been down
            if self.metrics is not None:
                self.metrics.count_relist(res.plural)
        op = self.op
        if self.leading and op is not None:
            op.sync(res, items)
            return
        self.mirror.replace(res, items, namespace=namespace, labels=labels)
        if self.mirror.synced(r for r, _ in OWN_WATCHES):
            self._synced.set()
        if self._buffer is not None:
            self._buffer.append(("sync", res, items, False))

    def _start_watches(self) -> None:
        for scope in self.scopes:
            for res, labels in OWN_WATCHES:
                task = asyncio.create_task(
                    self._watch(res, scope, labels),
                    name=f"kubatch-watch-{res.plural}-{scope or 'all'}",
                )
                self._watches.append(task)

    async def _watch(self, res: Resource, scope: str | None, labels: str) -> None:
        def on_event(kind: str, obj: JsonDict) -> None:
            self.feed(res, obj, deleted=kind == "DELETED")

        def on_sync(items: list[JsonDict]) -> None:
            self.sync(res, items, scope, labels)

        await self.kube.watch(res, on_event, namespace=scope, labels=labels, on_sync=on_sync,
                              trim=TRIMS.get(res.plural))  # fmt: skip

    async def _fill_mirror(self) -> None:
        """List the kinds kopf watches into the mirror, all at once and from the API server's
        watch cache (``cached``: a list a moment old is merged with the events of meanwhile —
        the newest version of each object wins — and kopf's own lists follow)."""

        async def fill(res: Resource, scope: str | None) -> None:
            items, version = await self.kube.list_with_version(res, namespace=scope, cached=True,
                                                               trim=slim)  # fmt: skip
            self.mirror.fill(res, items)
            self._listed[(res.plural, scope)] = version
            self._listed_n[(res.plural, scope)] = len(items)

        async with asyncio.TaskGroup() as group:
            for res in CLUSTER_KINDS:
                group.create_task(fill(res, None))
            for res in SCOPED_KINDS:
                for scope in self.scopes:
                    group.create_task(fill(res, scope))
        for res in (*CLUSTER_KINDS, *SCOPED_KINDS):
            self.mirror.mark_synced(res)
        self.mirror.drop_tombstones()

    def trusted(self) -> bool:
        """Whether a takeover may build from the mirror: complete, and no sign for a lease
        duration that the API server was out of reach (failed tries, relists)."""
        if not self.complete:
            return False
        quiet = self.settings.election.timings.duration
        last = self._disturbed_at
        if self.elector is not None:
            last = max(last, self.elector.failed_at)
        return self._mono() - last >= quiet

    @property
    def complete(self) -> bool:
        """Whether the mirror holds a complete picture (every kind listed since it was
        cleared)."""
        kinds = [*CLUSTER_KINDS, *SCOPED_KINDS, *(r for r, _ in OWN_WATCHES)]
        return self.mirror.synced(kinds)

    # ------------------------------------------------------------------ leadership

    async def _leadership(self, leading: bool) -> None:
        """The elector's report: carried out in a task of its own (the elector keeps renewing
        meanwhile), one change at a time."""
        task = asyncio.create_task(self._change(leading), name="kubatch-leadership")
        self._changes.add(task)
        task.add_done_callback(self._changes.discard)
        if not leading:
            self._stop_writing()  # at once, not after the queue of changes

    async def _change(self, leading: bool) -> None:
        async with self._lock:
            try:
                if leading and not self.leading:
                    await self._lead()
                elif not leading and (self.leading or self.op is not None):
                    await self._follow()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("leadership change to %s failed", "leader" if leading else "standby")

    def _stop_writing(self) -> None:
        self.leading = False
        if self.fence is not None:
            n = self.fence.revoke()
            if n:
                log.warning("leadership lost: %d writes in flight cancelled", n)

    async def _lead(self) -> None:
        t0 = time.monotonic()
        if self.elector is not None and not self.elector.leading():
            return  # lost again before the takeover began
        if self._fill is not None and not self._fill.done():
            self._fill.cancel()  # an incomplete mirror: the takeover lists the API server
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._fill
        self._fill = None
        fence = FencedKube(self.kube, self.may_write)
        op = Operator(fence, self.settings, self.metrics, self.clock, may_write=self.may_write)
        from_mirror = self.trusted()
        if not from_mirror:
            log.info("taking over from lists of the API server (the mirror is %s)",
                     "recent" if self.complete else "incomplete")  # fmt: skip
        # The rebuild yields to the event loop now and then (the Lease is renewed meanwhile):
        # the events of meanwhile are kept and replayed after it, in order.
        self._buffer = []
        try:
            with gc_paused():  # thousands of records made at once (see gc_paused)
                await op.rebuild(source=self.mirror if from_mirror else None)
        except BaseException:
            self._buffer = None
            raise
        buffered, self._buffer = self._buffer, None
        for what, res, obj, deleted in buffered:
            if what == "feed":
                op.feed(res, obj, deleted)
            else:
                op.sync(res, obj)
        if self.elector is not None and not self.elector.leading():
            log.warning("leadership lost during the takeover; standing by")
            if not from_mirror:
                await self._refill()
            return
        self.op, self.fence, self.leading = op, fence, True
        self.mirror.clear()  # the operator's state replaces it
        memory.release()  # what the lists and the rebuild left free
        self._loop = asyncio.create_task(op.loop.run(), name="kubatch-scheduler")
        op.poke()
        took = time.monotonic() - t0
        self.takeovers.append(took)
        log.info("%s took over in %.2fs (%d jobs, from the %s)", self.settings.identity, took,
                 len(op.jobs), "mirror" if from_mirror else "API server")  # fmt: skip

    async def _follow(self) -> None:
        self._stop_writing()
        loop, self._loop = self._loop, None
        if loop is not None:
            loop.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await loop
        self.op, self.fence = None, None
        if self.metrics is not None:
            self.metrics.clear_leader_gauges()
        log.warning("%s stands by: state dropped, mirror refilled from the cluster",
                    self.settings.identity)  # fmt: skip
        self.mirror.clear()
        await self._refill()

    async def _refill(self) -> None:
        """Refill the mirror: kubatch's own watches restart (they list again) and the kinds
        kopf watches are listed; retried until it succeeds."""
        for t in self._watches:
            t.cancel()
        await asyncio.gather(*self._watches, return_exceptions=True)
        self._watches = []
        self._syncs.clear()
        self._start_watches()
        if self._fill is not None:
            self._fill.cancel()
        self._fill = asyncio.create_task(self._fill_until_done(), name="kubatch-mirror-fill")

    async def _fill_until_done(self) -> None:
        delay = 0.5
        while True:
            try:
                await self._fill_mirror()
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("filling the mirror failed (%s); retrying", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    def describe(self) -> JsonDict:
        """Who leads, as the health endpoint reports it."""
        return {
            "identity": self.settings.identity,
            "leading": self.may_write(),
            "holder": self.holder,
            "mirror": "complete" if self.complete else "filling",
        }
