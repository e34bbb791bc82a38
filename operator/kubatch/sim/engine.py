"""The simulator: simulated nodes, a simulated kubelet for their pods, managed scaling, reclaims.

Effectful shell around the pure modules (``catalogue``, ``nodes``, ``pods``, ``scaling``): it
watches nodes, pods and ComputeEnvironments through kubatch's one Kubernetes client
(:class:`kubatch.adapters.kube.Kube` and its list-then-watch), keeps a small in-memory view,
and turns decisions into API writes executed by a bounded pool of workers.

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
from pathlib import Path
from typing import Any

import yaml

from kubatch.adapters.kube import COMPUTEENVIRONMENTS, LEASES, NODES, PODS, ApiError, Kube, Resource
from kubatch.api import labels as L
from kubatch.api.enums import CapacityType
from kubatch.sim import nodes as N
from kubatch.sim.kubelet import LogServer, adopt, endpoint_patch, pod_getter
from kubatch.sim.pods import (
    Behaviour,
    PodPhase,
    Requests,
    behaviour_of,
    build_disrupted_status,
    build_running_status,
    build_terminated_status,
    pod_requests,
)
from kubatch.sim.reclaim import reclaim_taint, started_at
from kubatch.sim.scaling import (
    Pool,
    PoolNode,
    choose_fraction,
    choose_random_reclaims,
    parse_pool,
    plan_cycle,
)
from kubatch.sim.state import (
    ACTIVE_PODS,
    NodeRecord,
    PodRecord,
    SimConfig,
    SimStats,
    build_stats,
    pod_key,
    retry_or_log,
    slim,
    split_key,
)
from kubatch.timefmt import rfc3339, rfc3339_micro

__all__ = ["SimConfig", "SimStats", "Simulator"]

log = logging.getLogger("kubatch.sim")


class Simulator:
    """Simulated node pools on a real control plane.

    ``await start()`` logs in (``kubeconfig``, else like kubectl) unless given a ``kube``,
    launches the background tasks and returns once the initial state is loaded;
    ``await stop()`` cancels them (nodes are left in place unless ``delete_nodes``).
    """

    def __init__(
        self,
        kubeconfig: Path | None = None,
        config: SimConfig | None = None,
        clock: Callable[[], float] = time.time,
        *,
        kube: Kube | None = None,
    ) -> None:
        self._kubeconfig = kubeconfig
        self._given_kube = kube
        self.config = config or SimConfig()
        self._clock = clock
        self._rng = random.Random(self.config.seed)
        self._seq = self._rng.randrange(1 << 20) << 12
        self.kube: Kube | None = None
        self._nodes: dict[str, NodeRecord] = {}
        self._gone: dict[str, None] = {}
        self._provisioning: dict[str, list[PoolNode]] = {}
        self._pods: dict[str, PodRecord] = {}
        self._pending: dict[str, tuple[str, Requests]] = {}
        self._pools: dict[str, Pool] = {}
        self._queue: asyncio.Queue[Callable[[], Awaitable[object]]] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._ready: dict[str, asyncio.Event] = {}
        self._counts: Counter[str] = Counter()
        self._reclaims_by_ce: Counter[str] = Counter()
        self._cost: dict[str, float] = {}
        self._stopping = False
        self._ces_synced = False
        self.kubelet_port: int | None = None  # the log server's (kubatch.sim.kubelet)

    # --- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        self.kube = self._given_kube or await Kube.from_environment(
            self._kubeconfig, limit=max(8, self.config.workers * 2)
        )
        self._ready = {k: asyncio.Event() for k in ("nodes", "pods")}
        if self.config.serve_logs:
            logs = LogServer(pod_getter(lambda: self.kube), self._clock)
            self.kubelet_port = await logs.start()
            self._spawn(logs.serve())
        for _ in range(self.config.workers):
            self._spawn(self._worker())
        self._spawn(
            self._informer(
                NODES, self._on_node_sync, self._on_node, labels=f"{N.LABEL_TYPE}={N.SIM_TYPE}"
            )
        )
        await self._ready["nodes"].wait()
        if self.config.nodes_file:
            await self.create_nodes_from_file(self.config.nodes_file)
        self._spawn(self._informer(PODS, self._on_pod_sync, self._on_pod, fields=ACTIVE_PODS))
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
                    *(self.kube.delete(NODES, n) for n in list(self._nodes)),
                    return_exceptions=True,
                )
            if self._given_kube is None:
                await self.kube.close()
            self.kube = None

    async def __aenter__(self) -> Simulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def _spawn(self, coro: Awaitable[None]) -> None:
        self._tasks.append(asyncio.ensure_future(coro))

    def _submit(self, action: Callable[[], Awaitable[object]]) -> None:
        if not self._stopping:
            self._queue.put_nowait(action)

    async def _worker(self) -> None:
        while True:
            action = await self._queue.get()
            try:
                await action()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the API server away: tried again (as a kubelet does)
                retry_or_log(exc, action, self._submit)
            finally:
                self._queue.task_done()

    async def idle(self) -> None:
        """Wait until every queued API write has been made (for tests)."""
        await self._queue.join()

    # --- stats ----------------------------------------------------------------------------------

    def stats(self) -> SimStats:
        return build_stats(
            self._nodes.values(),
            self._pods.values(),
            self._counts,
            self._reclaims_by_ce,
            self._cost,
            self.kube.counters.writes if self.kube else 0,
            self._clock(),
        )

    # --- informers ------------------------------------------------------------------------------

    async def _informer(
        self,
        res: Resource,
        on_sync: Callable[[list[dict[str, Any]]], None],
        on_event: Callable[[str, dict[str, Any]], None],
        *,
        labels: str | None = None,
        fields: str | None = None,
    ) -> None:
        """kubatch's one list-then-watch (resume, 410 relist, backoff, never dies)."""
        assert self.kube is not None
        await self.kube.watch(res, on_event, labels=labels, fields=fields, on_sync=on_sync)

    def _on_node_sync(self, items: list[dict[str, Any]]) -> None:
        for item in items:
            self._on_node("ADDED", item)
            if endpoint_patch(item, self.kubelet_port) is not None:
                self._spawn(adopt(self.kube, item, self.kubelet_port))
        self._ready["nodes"].set()

    def _on_node(self, etype: str, obj: dict[str, Any]) -> None:
        name = (obj.get("metadata") or {}).get("name", "")
        if etype == "DELETED":
            self._node_gone(name)
            return
        node = self._nodes.get(name)
        if node is None:
            spec = N.node_spec_from_object(obj)
            if spec is None:
                return
            node = self._nodes[name] = NodeRecord(spec=spec, idle_since=self._clock())
        node.uid = (obj.get("metadata") or {}).get("uid", node.uid)
        node.taints = list((obj.get("spec") or {}).get("taints") or [])
        if any(t.get("key") == N.TAINT_RECLAIM for t in node.taints) and not node.reclaimed:
            self._mark_reclaimed(node)
        if (obj.get("spec") or {}).get("unschedulable") and node.cordoned_at is None:
            node.cordoned_at = self._clock()
        if N.not_ready(obj) and not node.reclaimed:  # back after the sim was down: a kubelet
            body = N.ready_status(rfc3339(self._clock()))  # reports Ready again
            self._submit(functools.partial(self._patch_if_present, NODES, name, body, status=True))

    def _mark_reclaimed(self, node: NodeRecord) -> None:
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

    def _on_pod_sync(self, items: list[dict[str, Any]]) -> None:
        """A complete list of the active pods: adopt them, forget the ones that went away."""
        live = set()
        for item in items:
            live.add(pod_key(item))
            self._on_pod("ADDED", item)
        for key in [k for k in self._pods if k not in live]:
            self._forget(key)
        for key in [k for k in self._pending if k not in live]:
            del self._pending[key]
        self._ready["pods"].set()

    def _on_pod(self, etype: str, obj: dict[str, Any]) -> None:
        key = pod_key(obj)
        if etype == "DELETED":
            self._forget(key)
            self._pending.pop(key, None)
            return
        meta = obj.get("metadata") or {}
        spec = obj.get("spec") or {}
        node_name = spec.get("nodeName")
        if not node_name:
            ce = (spec.get("nodeSelector") or {}).get(L.COMPUTE_ENVIRONMENT)
            if ce and not meta.get("deletionTimestamp"):
                self._pending[key] = (ce, pod_requests(obj))
            return
        self._pending.pop(key, None)
        node = self._nodes.get(node_name)
        if node is None:
            if node_name in self._gone and key not in self._pods:
                # bound to a node the sim removed (a race with scale-down): give it back
                self._pods[key] = PodRecord(node_name, meta.get("uid", ""), {}, Behaviour())
                self._pods[key].finalizing = True
                self._submit(lambda: self._finalize(key))
            return
        phase = (obj.get("status") or {}).get("phase", PodPhase.PENDING.value)
        pod = self._pods.get(key)
        if pod is None:
            pod = PodRecord(node_name, meta.get("uid", ""), slim(obj), behaviour_of(obj))
            self._pods[key] = pod
            node.pods.add(key)
            if phase == PodPhase.RUNNING.value:  # adopted after a restart
                pod.running = True
                pod.started_at = started_at(obj) or self._clock()
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

    def _schedule_finish(self, key: str, pod: PodRecord) -> None:
        assert pod.started_at is not None
        remaining = pod.started_at + pod.behaviour.duration - self._clock()
        self._schedule(remaining, key, self._finish)

    def _live(self, key: str) -> PodRecord | None:
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
        ns, name = split_key(key)
        if not await self._patch_if_present(PODS, name, {"status": body}, ns, status=True):
            return
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

    async def _guarded_status_patch(self, key: str, pod: PodRecord, body: dict[str, Any]) -> bool:
        """Patch the status only if the pod did not change behind our back (resourceVersion
        precondition); on conflict re-read it and give up if it is terminal or deleting."""
        assert self.kube is not None
        rv = pod.rv
        for _ in range(5):
            patch: dict[str, Any] = {"status": body}
            if rv:
                patch["metadata"] = {"resourceVersion": rv}
            ns, name = split_key(key)
            try:
                await self.kube.patch(PODS, name, patch, ns, status=True)
                return True
            except ApiError as e:
                if e.not_found:
                    return False
                if not e.conflict:
                    raise
            try:
                fresh = await self.kube.get(PODS, name, ns)
            except ApiError as e:
                if not e.not_found:
                    raise
                return False
            phase = (fresh.get("status") or {}).get("phase")
            meta = fresh.get("metadata") or {}
            if not fresh or phase in ("Succeeded", "Failed") or meta.get("deletionTimestamp"):
                return False
            rv = meta.get("resourceVersion", "")
        return False

    async def _finalize(self, key: str) -> None:
        """Finish a deletion like a kubelet: the containers are gone, remove the pod now."""
        assert self.kube is not None
        ns, name = split_key(key)
        await self.kube.delete(PODS, name, ns, grace_period=0)

    async def _disrupt(self, key: str) -> None:
        pod = self._pods.get(key)
        if pod is None or pod.finalizing:
            return
        assert self.kube is not None
        body = build_disrupted_status(pod.slim, pod.node, pod.started_at, self._clock())
        if await self._guarded_status_patch(key, pod, body):
            self._counts["pods_disrupted"] += 1
            pod.running = False

    async def _patch_if_present(
        self,
        res: Resource,
        name: str,
        body: dict[str, Any],
        namespace: str | None = None,
        *,
        status: bool = False,
    ) -> bool:
        """A merge patch of an object that may be gone already (then False, no error)."""
        assert self.kube is not None
        try:
            await self.kube.patch(res, name, body, namespace, status=status)
        except ApiError as e:
            if e.not_found:
                return False
            raise
        return True

    # --- nodes ----------------------------------------------------------------------------------

    async def create_node(
        self,
        compute_environment: str,
        instance_type: str,
        capacity_type: CapacityType,
        *,
        name: str | None = None,
        labels: dict[str, str] | None = None,
        managed: bool = False,
    ) -> str:
        """Create one simulated node (and its Lease) now; returns its name."""
        assert self.kube is not None
        itype = self.config.catalogue[instance_type]
        spot = capacity_type is CapacityType.SPOT
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
            body = N.build_node(spec, itype, now, labels, self.kubelet_port)
            try:
                created = await self.kube.create(NODES, body)
            except ApiError as e:
                if e.conflict and name is None:
                    continue
                raise
            uid = created["metadata"]["uid"]
            node = self._nodes.get(node_name)
            if node is None:
                node = self._nodes[node_name] = NodeRecord(spec=spec, idle_since=now)
            node.uid = uid
            self._counts["nodes_created"] += 1
            if not (created.get("status") or {}).get("allocatable"):
                await self._patch_if_present(
                    NODES, node_name, {"status": body["status"]}, status=True
                )
            await self._ensure_lease(node_name, uid)
            return node_name
        raise RuntimeError("could not find a free node name")

    async def _ensure_lease(self, name: str, uid: str) -> None:
        assert self.kube is not None
        try:
            await self.kube.create(
                LEASES, N.build_lease(name, uid, self._clock()), N.LEASE_NAMESPACE
            )
        except ApiError as e:
            if not e.conflict:
                raise
            await self._renew(name)

    async def _renew(self, name: str) -> None:
        assert self.kube is not None
        body = {"spec": {"renewTime": rfc3339_micro(self._clock())}}
        renewed = await self._patch_if_present(LEASES, name, body, N.LEASE_NAMESPACE)
        if not renewed and name in self._nodes:
            await self._ensure_lease(name, self._nodes[name].uid)

    async def delete_node(self, name: str) -> None:
        assert self.kube is not None
        await self.kube.delete(NODES, name)
        self._node_gone(name)

    async def create_nodes_from_file(self, path: Path) -> list[str]:
        """Pre-create labelled nodes (e.g. for Unmanaged CEs) from a nodes file (see
        :func:`kubatch.sim.nodes.parse_nodes_file`). Nodes get deterministic names, so
        re-running is idempotent."""
        wanted = N.parse_nodes_file(yaml.safe_load(path.read_text()), self.config.catalogue)
        names = [w.name for w in wanted]
        jobs = [
            self.create_node(
                w.compute_environment,
                w.instance_type,
                w.capacity_type,
                name=w.name,
                labels=w.labels,
            )
            for w in wanted
            if w.name not in self._nodes
        ]
        sem = asyncio.Semaphore(self.config.workers)

        async def bounded(c: Awaitable[str]) -> None:
            async with sem:
                try:
                    await c
                except ApiError as e:
                    if not e.conflict:
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
        def on_sync(items: list[dict[str, Any]]) -> None:
            self._pools = {}
            for item in items:
                on_ce("ADDED", item)
            self._ces_synced = True

        def on_ce(etype: str, obj: dict[str, Any]) -> None:
            pool = parse_pool(obj)
            if etype == "DELETED":
                self._pools.pop(pool.name, None)
            else:
                self._pools[pool.name] = pool

        await self._informer(COMPUTEENVIRONMENTS, on_sync, on_ce)

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
        plan = plan_cycle(
            list(self._nodes.values()),
            self._pending.values(),
            self._pools,
            self._provisioning,
            pools_known=self._ces_synced,
            catalogue=self.config.catalogue,
            now=self._clock(),
            scale_down_delay=self.config.scale_down_delay,
            drain_grace=min(1.0, self.config.scaling_interval),
        )
        for name in plan.delete:
            self._submit(functools.partial(self.delete_node, name))
        for pool, itype in plan.launch:
            self._provision(pool, itype)
        for name in plan.cordon:
            self._cordon(name)

    def _provision(self, pool: Pool, itype: str) -> None:
        t = self.config.catalogue[itype]
        self._seq += 1
        placeholder = PoolNode(f"provisioning-{self._seq}", itype, t.vcpus, provisioning=True)
        self._provisioning.setdefault(pool.name, []).append(placeholder)
        cap = CapacityType.SPOT if pool.spot else CapacityType.ON_DEMAND

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

        async def cordon() -> None:
            await self._patch_if_present(NODES, name, {"spec": {"unschedulable": True}})

        self._submit(cordon)

    # --- reclaims -------------------------------------------------------------------------------

    def spot_nodes(self, compute_environment: str | None = None) -> list[str]:
        return [
            name
            for name, n in self._nodes.items()
            if n.spec.capacity_type is CapacityType.SPOT
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
        await self._patch_if_present(
            NODES,
            name,
            {"spec": {"unschedulable": True, "taints": [*node.taints, reclaim_taint()]}},
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
