"""The simulator: simulated nodes, a simulated kubelet for their pods, managed scaling, reclaims.

Effectful shell around the pure modules (``catalogue``, ``nodes``, ``pods``, ``scaling``): it
watches nodes, pods and ComputeEnvironments through :class:`kubatch.sim.kube.Kube`, keeps a
small in-memory view, and turns decisions into API writes executed by a bounded pool of workers.

Write budget per pod: one status patch to Running, one to its terminal phase. Per node: one
create (status included), one Lease create, one Lease renewal per heartbeat interval, one
delete (plus one cordon patch on scale-down).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from kubatch.core.catalogue import BUILTIN, Catalogue
from kubatch.sim import nodes as N
from kubatch.sim.kube import Kube, KubeConfig, KubeError, WatchExpired, load_kubeconfig
from kubatch.sim.pods import (
    Behaviour,
    PodPhase,
    Requests,
    behaviour_of,
    build_disrupted_status,
    build_running_status,
    build_terminated_status,
    parse_rfc3339,
    pod_requests,
)
from kubatch.sim.scaling import (
    Pool,
    PoolNode,
    choose_fraction,
    choose_random_reclaims,
    parse_pool,
    plan_scaling,
)

log = logging.getLogger("kubatch.sim")

CE_PATH = "/apis/kubatch.io/v1alpha1/computeenvironments"
NODES_PATH = "/api/v1/nodes"
PODS_PATH = "/api/v1/pods"
LEASES_PATH = f"/apis/coordination.k8s.io/v1/namespaces/{N.LEASE_NAMESPACE}/leases"
ACTIVE_PODS = "status.phase!=Succeeded,status.phase!=Failed"


@dataclass
class SimConfig:
    """Knobs of the simulator (all durations in seconds)."""

    provisioning_delay: float = 1.0
    scale_down_delay: float = 30.0
    reclaim_rate_per_hour: float = 0.0
    heartbeat_interval: float = 20.0
    scaling_interval: float = 1.0
    start_delay: float = 0.0
    """Time from binding to Running (image pull, container start)."""
    catalogue: Catalogue = field(default_factory=lambda: Catalogue(BUILTIN))
    nodes_file: Path | None = None
    manage_compute_environments: bool = True
    seed: int | None = None
    workers: int = 16


@dataclass(frozen=True)
class SimStats:
    """What the simulator did (for the demo summary and the benchmark)."""

    nodes: int
    nodes_by_compute_environment: dict[str, int]
    vcpus_by_compute_environment: dict[str, int]
    nodes_created: int
    nodes_deleted: int
    pods_running: int
    pods_started: int
    pods_succeeded: int
    pods_failed: int
    pods_disrupted: int
    reclaims: int
    reclaims_by_compute_environment: dict[str, int]
    cost_by_compute_environment: dict[str, float]
    """Node lifetime x price per hour, in dollars."""
    api_writes: int


@dataclass
class _Node:
    spec: N.NodeSpec
    uid: str = ""
    pods: set[str] = field(default_factory=set)
    idle_since: float = 0.0
    cordoned_at: float | None = None
    reclaimed: bool = False
    taints: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class _Pod:
    node: str
    uid: str
    slim: dict[str, Any]
    behaviour: Behaviour
    rv: str = ""
    started_at: float | None = None
    running: bool = False
    finalizing: bool = False
    timer: asyncio.TimerHandle | None = None


def _slim(pod: dict[str, Any]) -> dict[str, Any]:
    """Keep only what the status builders read (memory: 10k pods)."""
    spec = pod.get("spec") or {}
    return {
        "metadata": {"uid": (pod.get("metadata") or {}).get("uid", "")},
        "spec": {
            k: [{"name": c.get("name"), "image": c.get("image")} for c in spec.get(k) or []]
            for k in ("containers", "initContainers")
        },
    }


def _key(pod: dict[str, Any]) -> str:
    meta = pod.get("metadata") or {}
    return f"{meta.get('namespace', '')}/{meta.get('name', '')}"


def _pod_path(key: str, sub: str = "") -> str:
    ns, name = key.split("/", 1)
    return f"/api/v1/namespaces/{ns}/pods/{name}{sub}"


class Simulator:
    """Simulated node pools on a real control plane.

    ``await start()`` launches the background tasks and returns once the initial state is
    loaded; ``await stop()`` cancels them (nodes are left in place unless ``delete_nodes``).
    """

    def __init__(
        self,
        kubeconfig: Path | KubeConfig | None = None,
        config: SimConfig | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._kcfg = (
            kubeconfig if isinstance(kubeconfig, KubeConfig) else load_kubeconfig(kubeconfig)
        )
        self.config = config or SimConfig()
        self._clock = clock
        self._rng = random.Random(self.config.seed)
        self._seq = self._rng.randrange(1 << 20) << 12
        self.kube: Kube | None = None
        self._nodes: dict[str, _Node] = {}
        self._gone: dict[str, None] = {}
        self._provisioning: dict[str, list[PoolNode]] = {}
        self._pods: dict[str, _Pod] = {}
        self._pending: dict[str, tuple[str, Requests]] = {}
        self._pools: dict[str, Pool] = {}
        self._queue: asyncio.Queue[Callable[[], Awaitable[None]]] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._ready: dict[str, asyncio.Event] = {}
        self._counts: Counter[str] = Counter()
        self._reclaims_by_ce: Counter[str] = Counter()
        self._cost: dict[str, float] = {}
        self._stopping = False
        self._ces_synced = False

    # --- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        self.kube = Kube(self._kcfg, max_connections=max(8, self.config.workers * 2))
        self._ready = {k: asyncio.Event() for k in ("nodes", "pods")}
        for _ in range(self.config.workers):
            self._spawn(self._worker())
        self._spawn(
            self._informer(
                NODES_PATH,
                {"labelSelector": f"{N.LABEL_TYPE}={N.SIM_TYPE}"},
                self._on_node,
                "nodes",
            )
        )
        await self._ready["nodes"].wait()
        if self.config.nodes_file:
            await self.create_nodes_from_file(self.config.nodes_file)
        self._spawn(self._informer(PODS_PATH, {"fieldSelector": ACTIVE_PODS}, self._on_pod, "pods"))
        await self._ready["pods"].wait()
        if self.config.manage_compute_environments:
            self._spawn(self._ce_loop())
            self._spawn(self._scaling_loop())
        self._spawn(self._heartbeat_loop())
        if self.config.reclaim_rate_per_hour > 0:
            self._spawn(self._reclaim_loop())

    async def stop(self, delete_nodes: bool = False) -> None:
        self._stopping = True
        for p in self._pods.values():
            if p.timer:
                p.timer.cancel()
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self._tasks.clear()
        if self.kube:
            if delete_nodes:
                await asyncio.gather(
                    *(self.kube.delete(f"{NODES_PATH}/{n}") for n in list(self._nodes)),
                    return_exceptions=True,
                )
            await self.kube.close()
            self.kube = None

    async def __aenter__(self) -> Simulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def _spawn(self, coro: Awaitable[None]) -> None:
        self._tasks.append(asyncio.ensure_future(coro))

    def _submit(self, action: Callable[[], Awaitable[None]]) -> None:
        if not self._stopping:
            self._queue.put_nowait(action)

    async def _worker(self) -> None:
        while True:
            action = await self._queue.get()
            try:
                await action()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("sim action failed")
            finally:
                self._queue.task_done()

    async def idle(self) -> None:
        """Wait until every queued API write has been made (for tests)."""
        await self._queue.join()

    # --- stats ----------------------------------------------------------------------------------

    def stats(self) -> SimStats:
        now = self._clock()
        by_ce: Counter[str] = Counter()
        vcpus: Counter[str] = Counter()
        cost: dict[str, float] = dict(self._cost)
        for n in self._nodes.values():
            ce = n.spec.compute_environment
            by_ce[ce] += 1
            vcpus[ce] += n.spec.vcpus
            cost[ce] = (
                cost.get(ce, 0.0) + max(0.0, now - n.spec.created_at) / 3600 * n.spec.price_per_hour
            )
        return SimStats(
            nodes=len(self._nodes),
            nodes_by_compute_environment=dict(by_ce),
            vcpus_by_compute_environment=dict(vcpus),
            nodes_created=self._counts["nodes_created"],
            nodes_deleted=self._counts["nodes_deleted"],
            pods_running=sum(1 for p in self._pods.values() if p.running),
            pods_started=self._counts["pods_started"],
            pods_succeeded=self._counts["pods_succeeded"],
            pods_failed=self._counts["pods_failed"],
            pods_disrupted=self._counts["pods_disrupted"],
            reclaims=sum(self._reclaims_by_ce.values()),
            reclaims_by_compute_environment=dict(self._reclaims_by_ce),
            cost_by_compute_environment={k: round(v, 6) for k, v in cost.items()},
            api_writes=self.kube.writes if self.kube else 0,
        )

    def node_names(self, compute_environment: str | None = None) -> list[str]:
        return sorted(
            n
            for n, s in self._nodes.items()
            if compute_environment is None or s.spec.compute_environment == compute_environment
        )

    # --- informers ------------------------------------------------------------------------------

    async def _informer(
        self,
        path: str,
        params: dict[str, str],
        handler: Callable[[str, dict[str, Any]], None],
        ready: str | None = None,
    ) -> None:
        assert self.kube is not None
        while True:
            try:
                items, rv = await self.kube.list(path, params)
                handler("SYNC", {"items": items})
                if ready:
                    self._ready[ready].set()
                while True:
                    async for etype, obj in self.kube.watch(path, rv, params):
                        rv = (obj.get("metadata") or {}).get("resourceVersion", rv)
                        if etype != "BOOKMARK":
                            handler(etype, obj)
            except asyncio.CancelledError:
                raise
            except WatchExpired:
                continue
            except KubeError as e:
                if e.status == 404:  # e.g. the CRD is not installed yet
                    if ready:
                        self._ready[ready].set()
                    await asyncio.sleep(2)
                    continue
                log.warning("watch %s: %s", path, e)
                await asyncio.sleep(1)
            except Exception as e:
                log.warning("watch %s: %r", path, e)
                await asyncio.sleep(1)

    def _on_node(self, etype: str, obj: dict[str, Any]) -> None:
        if etype == "SYNC":
            for item in obj["items"]:
                self._on_node("ADDED", item)
            return
        name = (obj.get("metadata") or {}).get("name", "")
        if etype == "DELETED":
            self._node_gone(name)
            return
        node = self._nodes.get(name)
        if node is None:
            spec = N.node_spec_from_object(obj)
            if spec is None:
                return
            node = self._nodes[name] = _Node(spec=spec, idle_since=self._clock())
        node.uid = (obj.get("metadata") or {}).get("uid", node.uid)
        node.taints = list((obj.get("spec") or {}).get("taints") or [])
        if any(t.get("key") == N.TAINT_RECLAIM for t in node.taints) and not node.reclaimed:
            self._mark_reclaimed(node)
        if (obj.get("spec") or {}).get("unschedulable") and node.cordoned_at is None:
            node.cordoned_at = self._clock()

    def _mark_reclaimed(self, node: _Node) -> None:
        node.reclaimed = True
        self._reclaims_by_ce[node.spec.compute_environment] += 1
        for key in list(node.pods):
            p = self._pods.get(key)
            if p and p.timer:
                p.timer.cancel()
                p.timer = None

    def _node_gone(self, name: str) -> None:
        node = self._nodes.pop(name, None)
        if node is None:
            return
        self._counts["nodes_deleted"] += 1
        ce = node.spec.compute_environment
        self._cost[ce] = self._cost.get(ce, 0.0) + (
            max(0.0, self._clock() - node.spec.created_at) / 3600 * node.spec.price_per_hour
        )
        self._gone[name] = None
        while len(self._gone) > 10000:
            self._gone.pop(next(iter(self._gone)))

    def _on_pod(self, etype: str, obj: dict[str, Any]) -> None:
        if etype == "SYNC":
            live = set()
            for item in obj["items"]:
                live.add(_key(item))
                self._on_pod("ADDED", item)
            for key in [k for k in self._pods if k not in live]:
                self._forget(key)
            for key in [k for k in self._pending if k not in live]:
                del self._pending[key]
            return
        key = _key(obj)
        if etype == "DELETED":
            self._forget(key)
            self._pending.pop(key, None)
            return
        meta = obj.get("metadata") or {}
        spec = obj.get("spec") or {}
        node_name = spec.get("nodeName")
        if not node_name:
            ce = (spec.get("nodeSelector") or {}).get(N.LABEL_COMPUTE_ENVIRONMENT)
            if ce and not meta.get("deletionTimestamp"):
                self._pending[key] = (ce, pod_requests(obj))
            return
        self._pending.pop(key, None)
        node = self._nodes.get(node_name)
        if node is None:
            if node_name in self._gone and key not in self._pods:
                # bound to a node the sim removed (a race with scale-down): give it back
                self._pods[key] = _Pod(node_name, meta.get("uid", ""), {}, Behaviour())
                self._pods[key].finalizing = True
                self._submit(lambda: self._finalize(key))
            return
        phase = (obj.get("status") or {}).get("phase", PodPhase.PENDING.value)
        pod = self._pods.get(key)
        if pod is None:
            pod = _Pod(node_name, meta.get("uid", ""), _slim(obj), behaviour_of(obj))
            self._pods[key] = pod
            node.pods.add(key)
            if phase == PodPhase.RUNNING.value:  # adopted after a restart
                pod.running = True
                pod.started_at = _started_at(obj) or self._clock()
                if not node.reclaimed:
                    self._schedule_finish(key, pod)
            elif node.reclaimed:
                self._submit(lambda: self._disrupt(key))
            else:
                self._schedule(self.config.start_delay, key, self._start)
        pod.rv = meta.get("resourceVersion", pod.rv)
        if meta.get("deletionTimestamp") and not pod.finalizing:
            pod.finalizing = True
            if pod.timer:
                pod.timer.cancel()
                pod.timer = None
            self._submit(lambda: self._finalize(key))

    def _forget(self, key: str) -> None:
        pod = self._pods.pop(key, None)
        if pod is None:
            return
        if pod.timer:
            pod.timer.cancel()
        node = self._nodes.get(pod.node)
        if node is not None:
            node.pods.discard(key)
            if not node.pods:
                node.idle_since = self._clock()

    # --- pod execution --------------------------------------------------------------------------

    def _schedule(self, delay: float, key: str, fn: Callable[[str], Awaitable[None]]) -> None:
        pod = self._pods.get(key)
        if pod is None:
            return
        loop = asyncio.get_running_loop()
        if delay <= 0:
            self._submit(lambda: fn(key))
        else:
            pod.timer = loop.call_later(delay, self._submit, lambda: fn(key))

    def _schedule_finish(self, key: str, pod: _Pod) -> None:
        assert pod.started_at is not None
        remaining = pod.started_at + pod.behaviour.duration - self._clock()
        self._schedule(remaining, key, self._finish)

    def _live(self, key: str) -> _Pod | None:
        pod = self._pods.get(key)
        if pod is None or pod.finalizing:
            return None
        node = self._nodes.get(pod.node)
        if node is None or node.reclaimed:
            return None
        return pod

    async def _start(self, key: str) -> None:
        pod = self._live(key)
        if pod is None or pod.running:
            return
        assert self.kube is not None
        now = self._clock()
        body = build_running_status(pod.slim, N.host_ip(pod.node), now)
        await self.kube.patch(_pod_path(key, "/status"), {"status": body})
        pod.running, pod.started_at = True, now
        self._counts["pods_started"] += 1
        pod = self._live(key)
        if pod is not None:
            self._schedule_finish(key, pod)

    async def _finish(self, key: str) -> None:
        pod = self._live(key)
        if pod is None:
            return
        assert self.kube is not None
        assert pod.started_at is not None
        body = build_terminated_status(pod.slim, pod.behaviour, pod.started_at, self._clock())
        if await self._guarded_status_patch(key, pod, body):
            self._counts["pods_succeeded" if pod.behaviour.exit_code == 0 else "pods_failed"] += 1
            pod.running = False

    async def _guarded_status_patch(self, key: str, pod: _Pod, body: dict[str, Any]) -> bool:
        """Patch the status only if the pod did not change behind our back (resourceVersion
        precondition); on conflict re-read it and give up if it is terminal or deleting."""
        assert self.kube is not None
        rv = pod.rv
        for _ in range(5):
            patch: dict[str, Any] = {"status": body}
            if rv:
                patch["metadata"] = {"resourceVersion": rv}
            try:
                await self.kube.patch(_pod_path(key, "/status"), patch, ok_missing=False)
                return True
            except KubeError as e:
                if e.status == 404:
                    return False
                if e.status != 409:
                    raise
            fresh = await self.kube.get(_pod_path(key), ok_missing=True)
            phase = (fresh.get("status") or {}).get("phase")
            meta = fresh.get("metadata") or {}
            if not fresh or phase in ("Succeeded", "Failed") or meta.get("deletionTimestamp"):
                return False
            rv = meta.get("resourceVersion", "")
        return False

    async def _finalize(self, key: str) -> None:
        """Finish a deletion like a kubelet: the containers are gone, remove the pod now."""
        assert self.kube is not None
        await self.kube.delete(_pod_path(key), grace_period=0)

    async def _disrupt(self, key: str) -> None:
        pod = self._pods.get(key)
        if pod is None or pod.finalizing:
            return
        assert self.kube is not None
        body = build_disrupted_status(pod.slim, pod.node, pod.started_at, self._clock())
        if await self._guarded_status_patch(key, pod, body):
            self._counts["pods_disrupted"] += 1
            pod.running = False

    # --- nodes ----------------------------------------------------------------------------------

    async def create_node(
        self,
        compute_environment: str,
        instance_type: str,
        capacity_type: N.CapacityType,
        *,
        name: str | None = None,
        labels: dict[str, str] | None = None,
        managed: bool = False,
    ) -> str:
        """Create one simulated node (and its Lease) now; returns its name."""
        assert self.kube is not None
        itype = self.config.catalogue[instance_type]
        spot = capacity_type is N.CapacityType.SPOT
        for _ in range(5):
            if name is None:
                self._seq += 1
                node_name = N.node_name(compute_environment, instance_type, self._seq)
            else:
                node_name = name
            now = self._clock()
            spec = N.NodeSpec(
                node_name,
                compute_environment,
                instance_type,
                capacity_type,
                itype.vcpus,
                itype.price(spot),
                now,
                managed,
            )
            body = N.build_node(spec, itype, now, labels)
            try:
                created = await self.kube.create(NODES_PATH, body)
            except KubeError as e:
                if e.status == 409 and name is None:
                    continue
                raise
            uid = created["metadata"]["uid"]
            node = self._nodes.get(node_name)
            if node is None:
                node = self._nodes[node_name] = _Node(spec=spec, idle_since=now)
            node.uid = uid
            self._counts["nodes_created"] += 1
            if not (created.get("status") or {}).get("allocatable"):
                await self.kube.patch(
                    f"{NODES_PATH}/{node_name}/status", {"status": body["status"]}
                )
            await self._ensure_lease(node_name, uid)
            return node_name
        raise RuntimeError("could not find a free node name")

    async def _ensure_lease(self, name: str, uid: str) -> None:
        assert self.kube is not None
        try:
            await self.kube.create(LEASES_PATH, N.build_lease(name, uid, self._clock()))
        except KubeError as e:
            if e.status != 409:
                raise
            await self._renew(name)

    async def _renew(self, name: str) -> None:
        assert self.kube is not None
        body = {"spec": {"renewTime": N.rfc3339_micro(self._clock())}}
        res = await self.kube.patch(f"{LEASES_PATH}/{name}", body)
        if not res and name in self._nodes:
            await self._ensure_lease(name, self._nodes[name].uid)

    async def delete_node(self, name: str) -> None:
        assert self.kube is not None
        await self.kube.delete(f"{NODES_PATH}/{name}")
        self._node_gone(name)

    async def create_nodes_from_file(self, path: Path) -> list[str]:
        """Pre-create labelled nodes (e.g. for Unmanaged CEs) from YAML:
        ``nodes: [{computeEnvironment, instanceType, capacityType: spot|on-demand, count,
        labels}]``. Nodes get deterministic names, so re-running is idempotent."""
        doc = yaml.safe_load(path.read_text()) or {}
        entries = doc.get("nodes", doc) if isinstance(doc, dict) else doc
        names: list[str] = []
        jobs = []
        for entry in entries or []:
            ce = str(entry["computeEnvironment"])
            itype = str(entry["instanceType"])
            cap = N.CapacityType(str(entry.get("capacityType", "on-demand")))
            for i in range(int(entry.get("count", 1))):
                name = N.node_name(ce, itype, i)
                names.append(name)
                if name not in self._nodes:
                    jobs.append(
                        self.create_node(ce, itype, cap, name=name, labels=entry.get("labels"))
                    )
        sem = asyncio.Semaphore(self.config.workers)

        async def bounded(c: Awaitable[str]) -> None:
            async with sem:
                try:
                    await c
                except KubeError as e:
                    if e.status != 409:
                        raise

        await asyncio.gather(*(bounded(c) for c in jobs))
        return names

    async def _heartbeat_loop(self) -> None:
        """Renew every node's Lease once per interval, spread evenly over the interval."""
        interval = self.config.heartbeat_interval
        while True:
            names = list(self._nodes)
            if not names:
                await asyncio.sleep(interval)
                continue
            step = interval / len(names)
            batch = max(1, int(0.2 / step)) if step < 0.2 else 1
            for i in range(0, len(names), batch):
                chunk = [n for n in names[i : i + batch] if n in self._nodes]
                await asyncio.gather(*(self._renew(n) for n in chunk), return_exceptions=True)
                await asyncio.sleep(step * len(chunk))

    # --- compute environments and scaling -------------------------------------------------------

    async def _ce_loop(self) -> None:
        def on_ce(etype: str, obj: dict[str, Any]) -> None:
            if etype == "SYNC":
                self._pools = {}
                for item in obj["items"]:
                    on_ce("ADDED", item)
                self._ces_synced = True
                return
            pool = parse_pool(obj)
            if etype == "DELETED":
                self._pools.pop(pool.name, None)
            else:
                self._pools[pool.name] = pool

        await self._informer(CE_PATH, {}, on_ce)

    def pools(self) -> dict[str, Pool]:
        return dict(self._pools)

    async def _scaling_loop(self) -> None:
        while True:
            try:
                await self.scale_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("scaling cycle failed")
            await asyncio.sleep(self.config.scaling_interval)

    async def scale_once(self) -> None:
        """One scaling cycle over every managed pool (and clean-up of deleted pools' nodes)."""
        now = self._clock()
        by_ce: dict[str, list[_Node]] = {}
        for n in self._nodes.values():
            by_ce.setdefault(n.spec.compute_environment, []).append(n)
        pending: dict[str, list[Requests]] = {}
        for ce, req in self._pending.values():
            pending.setdefault(ce, []).append(req)
        # finish cordoned nodes that drained
        for n in list(self._nodes.values()):
            drained = n.cordoned_at is not None and not n.pods and not n.reclaimed
            if drained and now - (n.cordoned_at or now) >= min(1.0, self.config.scaling_interval):
                self._submit(functools.partial(self.delete_node, n.spec.name))
        pools = dict(self._pools)
        if self._ces_synced:
            for ce, nodes in by_ce.items():
                if ce not in pools and any(n.spec.managed for n in nodes):
                    pools[ce] = Pool(name=ce, managed=True)  # CE deleted: max 0, drain
        for ce, pool in pools.items():
            if not pool.managed:
                continue
            live = [n for n in by_ce.get(ce, []) if n.cordoned_at is None and not n.reclaimed]
            view = [
                PoolNode(
                    n.spec.name,
                    n.spec.instance_type,
                    n.spec.vcpus,
                    busy=bool(n.pods),
                    idle_since=None if n.pods else n.idle_since,
                )
                for n in live
            ]
            view += self._provisioning.get(ce, [])
            plan = plan_scaling(
                pool,
                nodes=view,
                pending=pending.get(ce, []),
                catalogue=self.config.catalogue,
                now=now,
                scale_down_delay=self.config.scale_down_delay,
            )
            for itype in plan.add:
                self._provision(pool, itype)
            for name in plan.remove:
                self._cordon(name)

    def _provision(self, pool: Pool, itype: str) -> None:
        t = self.config.catalogue[itype]
        self._seq += 1
        placeholder = PoolNode(f"provisioning-{self._seq}", itype, t.vcpus, provisioning=True)
        self._provisioning.setdefault(pool.name, []).append(placeholder)
        cap = N.CapacityType.SPOT if pool.spot else N.CapacityType.ON_DEMAND

        async def launch() -> None:
            try:
                await self.create_node(pool.name, itype, cap, labels=pool.node_labels, managed=True)
            finally:
                with contextlib.suppress(ValueError):
                    self._provisioning[pool.name].remove(placeholder)

        loop = asyncio.get_running_loop()
        loop.call_later(self.config.provisioning_delay, self._submit, launch)

    def _cordon(self, name: str) -> None:
        node = self._nodes.get(name)
        if node is None or node.cordoned_at is not None:
            return
        node.cordoned_at = self._clock()
        assert self.kube is not None
        kube = self.kube

        async def cordon() -> None:
            await kube.patch(f"{NODES_PATH}/{name}", {"spec": {"unschedulable": True}})

        self._submit(cordon)

    # --- reclaims -------------------------------------------------------------------------------

    def spot_nodes(self, compute_environment: str | None = None) -> list[str]:
        return [
            name
            for name, n in self._nodes.items()
            if n.spec.capacity_type is N.CapacityType.SPOT
            and not n.reclaimed
            and (compute_environment is None or n.spec.compute_environment == compute_environment)
        ]

    async def reclaim(self, compute_environment: str, fraction: float) -> list[str]:
        """Reclaim ``ceil(fraction x n)`` of the CE's spot nodes now; returns their names."""
        chosen = choose_fraction(self.spot_nodes(compute_environment), fraction, self._rng)
        await asyncio.gather(*(self.reclaim_node(n) for n in chosen))
        return chosen

    async def reclaim_node(self, name: str) -> None:
        """Taint the node, disrupt its pods as a spot interruption does, delete the node."""
        node = self._nodes.get(name)
        if node is None or node.reclaimed:
            return
        assert self.kube is not None
        self._mark_reclaimed(node)
        await self.kube.patch(
            f"{NODES_PATH}/{name}",
            {"spec": {"unschedulable": True, "taints": [*node.taints, _reclaim_taint()]}},
        )
        await asyncio.gather(*(self._disrupt(k) for k in list(node.pods)))
        await self.delete_node(name)

    async def _reclaim_loop(self) -> None:
        tick = 1.0
        while True:
            await asyncio.sleep(tick)
            hit = choose_random_reclaims(
                self.spot_nodes(), self.config.reclaim_rate_per_hour, tick, self._rng
            )
            for name in hit:
                self._spawn(self.reclaim_node(name))


def _reclaim_taint() -> dict[str, str]:
    # NoSchedule, not NoExecute: the taint manager would delete the pods before the sim can
    # fail them the way a node shutdown does.
    return {"key": N.TAINT_RECLAIM, "value": "true", "effect": "NoSchedule"}


def _started_at(pod: dict[str, Any]) -> float | None:
    for cs in (pod.get("status") or {}).get("containerStatuses") or []:
        running = (cs.get("state") or {}).get("running")
        if running and running.get("startedAt"):
            return parse_rfc3339(running["startedAt"])
    return None


async def reclaim_from_cluster(
    kube: Kube, compute_environment: str, fraction: float, rng: random.Random, now: float
) -> list[str]:
    """Reclaim spot nodes of a CE directly on the cluster (the ``kubatch sim reclaim`` command,
    separate from a running simulator, which notices the taint and the deletion)."""
    selector = (
        f"{N.LABEL_TYPE}={N.SIM_TYPE},{N.LABEL_COMPUTE_ENVIRONMENT}={compute_environment},"
        f"{N.LABEL_CAPACITY_TYPE}={N.CapacityType.SPOT.value}"
    )
    items, _ = await kube.list(NODES_PATH, {"labelSelector": selector})
    candidates = {
        i["metadata"]["name"]: i
        for i in items
        if not any(
            t.get("key") == N.TAINT_RECLAIM for t in (i.get("spec") or {}).get("taints") or []
        )
    }
    chosen = choose_fraction(list(candidates), fraction, rng)
    for name in chosen:
        taints = (candidates[name].get("spec") or {}).get("taints") or []
        await kube.patch(
            f"{NODES_PATH}/{name}",
            {"spec": {"unschedulable": True, "taints": [*taints, _reclaim_taint()]}},
        )
    if chosen:
        await asyncio.sleep(0.5)  # let a running sim see the taint and stop its timers
    for name in chosen:
        pods, _ = await kube.list(
            PODS_PATH, {"fieldSelector": f"spec.nodeName={name},{ACTIVE_PODS}"}
        )
        for pod in pods:
            started = _started_at(pod)
            body = build_disrupted_status(_slim(pod), name, started, now)
            rv = pod["metadata"].get("resourceVersion", "")
            with contextlib.suppress(KubeError):
                await kube.patch(
                    _pod_path(_key(pod), "/status"),
                    {"metadata": {"resourceVersion": rv}, "status": body},
                    ok_missing=False,
                )
        await kube.delete(f"{NODES_PATH}/{name}")
    return chosen
