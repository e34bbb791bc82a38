"""The seven fault scenarios of the chaos tier.

Each scenario injects its fault ``events`` times (one per batch of its wave: the runner
submits a batch, waits until it runs, then calls :meth:`Scenario.inject` for that event) and
returns when the fault is over — the moment from which recovery is measured.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass, field
from typing import Any

from kubatch.adapters.kube import COMPUTEENVIRONMENTS, NODES, PODS
from kubatch.devkit.chaos.cluster import Cluster
from kubatch.devkit.chaos.workload import NAMESPACE, SPOT, VICTIM, victim_ce
from kubatch.devkit.polling import eventually_async
from kubatch.local import faults

log = logging.getLogger("kubatch.chaos")
JsonDict = dict[str, Any]


@dataclass(frozen=True)
class Size:
    """How hard: jobs per scenario, and the faults' lengths (the issue's at ``full``)."""

    jobs: int = 150
    kills: int = 5
    kill_every: tuple[float, float] = (20.0, 40.0)
    blackhole: float = 30.0
    storms: int = 2
    storm_fraction: float = 0.3
    timeouts: bool = True
    """Attempt-timeout jobs in the waves (each runs at least 60 s)."""


FULL = Size()
FAST = Size(jobs=24, kills=2, kill_every=(8.0, 12.0), blackhole=15.0, timeouts=False)


@dataclass
class Fault:
    """One injected fault: when it began and ended (monotonic), and what happened."""

    what: str
    started: float
    ended: float = 0.0
    notes: dict[str, Any] = field(default_factory=dict)


class Scenario:
    """A fault, injected ``events`` times."""

    name = ""
    title = ""
    events = 1
    side_jobs = False
    """Its waves put jobs on the victim CE's queue."""

    def __init__(self, cluster: Cluster, size: Size, rng: random.Random) -> None:
        self.cluster = cluster
        self.size = size
        self.rng = rng

    async def inject(self, event: int) -> Fault:
        raise NotImplementedError

    async def before(self, event: int) -> None:
        """Runs before the event's batch is submitted (e.g. a pause between kills)."""

    async def recover(self, event: int, fault: Fault) -> None:
        """Runs once the fault is over and the probe submitted (what the fault did is
        observed here: a takeover, relists; a killed replica comes back as the standby)."""


class LeaderKill(Scenario):
    name, title = "leader-kill", "the leading operator killed with SIGKILL, again and again"

    def __init__(self, cluster: Cluster, size: Size, rng: random.Random) -> None:
        super().__init__(cluster, size, rng)
        self.events = size.kills
        self._last = 0.0

    async def before(self, event: int) -> None:
        if event:
            lo, hi = self.size.kill_every
            wait = self._last + self.rng.uniform(lo, hi) - time.monotonic()
            await asyncio.sleep(max(0.0, wait))

    async def inject(self, event: int) -> Fault:
        c = self.cluster
        leader = await c.wait_leader()
        killed = Fault(f"SIGKILL {leader}", time.monotonic())
        await asyncio.to_thread(c.kill_operator, leader)
        killed.ended = self._last = time.monotonic()
        killed.notes = {"killed": leader}
        return killed

    async def recover(self, event: int, fault: Fault) -> None:
        c = self.cluster
        leader = fault.notes["killed"]
        new = await c.wait_leader(other_than=leader, timeout=90)
        fault.notes.update(new_leader=new, takeover_s=round(time.monotonic() - fault.ended, 2))
        await asyncio.sleep(1.0)
        c.start_operator(leader)  # it comes back as the standby ("then back" next time)
        await c.wait_serving(leader)


class ApiServerRestart(Scenario):
    name, title = "apiserver-restart", "kube-apiserver killed and restarted"

    async def inject(self, event: int) -> Fault:
        f = Fault("SIGKILL kube-apiserver, restart", time.monotonic())
        await asyncio.to_thread(self.cluster.plane.restart, "kube-apiserver", down_for=2.0)
        f.ended = time.monotonic()
        return f


class Etcd(Scenario):
    name, title = "etcd", "etcd killed and restarted; then compacted and the watches forced back"
    events = 2

    async def inject(self, event: int) -> Fault:
        c = self.cluster
        if event == 0:
            f = Fault("SIGKILL etcd, restart (data kept)", time.monotonic())
            await asyncio.to_thread(c.plane.restart, "etcd", down_for=2.0)
            f.ended = time.monotonic()
            return f
        port = next(p.port for p in c.plane.state().processes if p.name == "etcd")  # type: ignore[union-attr]
        before = c.counter("kubatch_watch_relists_total")
        f = Fault("etcd compaction, then every operator connection reset", time.monotonic())
        revision = await asyncio.to_thread(faults.compact_etcd, port)
        resets = sum(r.proxy.reset() for r in c.replicas.values())
        f.ended = time.monotonic()
        f.notes = {"compacted_to": revision, "connections_reset": resets, "relists_before": before}
        return f

    async def recover(self, event: int, fault: Fault) -> None:
        if event == 0:
            return
        c = self.cluster
        before = float(fault.notes.pop("relists_before"))

        async def relisted() -> bool:
            await asyncio.to_thread(c.scrape_all)
            return c.counter("kubatch_watch_relists_total") > before

        await eventually_async(relisted, what="the watches to relist after 410 Gone",
                               timeout=60, every=1)  # fmt: skip
        fault.notes["relists"] = c.counter("kubatch_watch_relists_total") - before


class Blackhole(Scenario):
    name, title = "blackhole", "the leader cut from the API server (reset, then black hole)"

    async def inject(self, event: int) -> Fault:
        c = self.cluster
        leader = await c.wait_leader()
        proxy = c.replicas[leader].proxy
        f = Fault(f"{leader} reset and black-holed {self.size.blackhole:g}s", time.monotonic())
        resets = proxy.blackhole()
        new = await c.wait_leader(other_than=leader, timeout=self.size.blackhole + 30)
        took = time.monotonic() - f.started
        await asyncio.sleep(max(0.0, f.started + self.size.blackhole - time.monotonic()))
        proxy.heal()
        f.ended = time.monotonic()
        f.notes = {"cut": leader, "new_leader": new, "takeover_s": round(took, 2),
                   "connections_reset": resets}  # fmt: skip
        return f


class SpotStorm(Scenario):
    name, title = "spot-storm", "30 % of the spot nodes reclaimed at once, twice"

    def __init__(self, cluster: Cluster, size: Size, rng: random.Random) -> None:
        super().__init__(cluster, size, rng)
        self.events = size.storms

    async def inject(self, event: int) -> Fault:
        f = Fault(f"reclaim {self.size.storm_fraction:.0%} of {SPOT}", time.monotonic())
        out = await self.cluster.reclaim(SPOT, self.size.storm_fraction)
        f.ended = time.monotonic()
        f.notes = {"reclaimed": [line for line in out.splitlines() if line.strip()][:20]}
        return f


class SimDown(Scenario):
    name, title = "sim-down", "the simulator killed until its nodes are NotReady and pods evicted"

    async def inject(self, event: int) -> Fault:
        c = self.cluster
        assert c.sim is not None
        assert c.kube is not None
        kube = c.kube
        f = Fault("SIGKILL the simulator; restart after the evictions", time.monotonic())
        await asyncio.to_thread(c.sim.kill)

        async def evicted() -> JsonDict | None:
            nodes = await kube.list(NODES, labels="type=kubatch-sim")
            unready = [n for n in nodes if not _ready(n)]
            pods = await kube.list(PODS, namespace=NAMESPACE)
            gone = [p for p in pods if (p.get("metadata") or {}).get("deletionTimestamp")]
            if nodes and len(unready) == len(nodes) and gone:
                return {"nodes_not_ready": len(unready), "pods_evicted": len(gone)}
            return None

        seen = await eventually_async(evicted, what="the nodes NotReady and pods evicted",
                                      timeout=180, every=1)  # fmt: skip
        f.notes = {**(seen or {}), "down_s": round(time.monotonic() - f.started, 1)}
        c.sim.start()
        f.ended = time.monotonic()
        return f


class CeDeleted(Scenario):
    name, title = "ce-deleted", "a compute environment deleted while its jobs run"
    side_jobs = True

    async def inject(self, event: int) -> Fault:
        c = self.cluster
        assert c.kube is not None
        running = await c.kube.list(PODS, namespace=NAMESPACE,
                                    labels=f"kubatch.io/compute-environment={VICTIM}")  # fmt: skip
        f = Fault(f"delete ComputeEnvironment {VICTIM}", time.monotonic())
        await c.kube.delete(COMPUTEENVIRONMENTS, VICTIM)
        f.ended = time.monotonic()
        f.notes = {"pods_on_it": len(running)}
        return f

    async def after(self) -> None:
        """Give the pool back for whatever runs next."""
        assert self.cluster.kube is not None
        await self.cluster.kube.apply(COMPUTEENVIRONMENTS, victim_ce(), field_manager="chaos")


def _ready(node: JsonDict) -> bool:
    conds = (node.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conds)


SCENARIOS: dict[str, type[Scenario]] = {
    s.name: s
    for s in (LeaderKill, ApiServerRestart, Etcd, Blackhole, SpotStorm, SimDown, CeDeleted)
}
"""In the issue's order."""
