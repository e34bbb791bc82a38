"""The simulator's in-memory view: its settings, its stats, and what it keeps of each node
and pod (slim records: the simulator holds ten thousand pods in a few MiB)."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubatch.adapters.kube import ApiError
from kubatch.core.catalogue import BUILTIN, Catalogue
from kubatch.sim import nodes as N
from kubatch.sim.pods import Behaviour

log = logging.getLogger("kubatch.sim")

ACTIVE_PODS = "status.phase!=Succeeded,status.phase!=Failed"
"""Field selector of the pods a kubelet still has work with."""


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
    serve_logs: bool = True
    """Serve simulated container logs (``kubectl logs``) on loopback: ``kubatch.sim.kubelet``."""


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
class NodeRecord:
    spec: N.NodeSpec
    uid: str = ""
    pods: set[str] = field(default_factory=set)
    idle_since: float = 0.0
    cordoned_at: float | None = None
    reclaimed: bool = False
    taints: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class PodRecord:
    node: str
    uid: str
    slim: dict[str, Any]
    behaviour: Behaviour
    rv: str = ""
    started_at: float | None = None
    running: bool = False
    finalizing: bool = False
    timer: asyncio.TimerHandle | None = None


def slim(pod: dict[str, Any]) -> dict[str, Any]:
    """Keep only what the status builders read (memory: 10k pods)."""
    spec = pod.get("spec") or {}
    return {
        "metadata": {"uid": (pod.get("metadata") or {}).get("uid", "")},
        "spec": {
            k: [{"name": c.get("name"), "image": c.get("image")} for c in spec.get(k) or []]
            for k in ("containers", "initContainers")
        },
    }


def pod_key(pod: dict[str, Any]) -> str:
    meta = pod.get("metadata") or {}
    return f"{meta.get('namespace', '')}/{meta.get('name', '')}"


def split_key(key: str) -> tuple[str, str]:
    """``namespace/name`` -> (namespace, name)."""
    ns, name = key.split("/", 1)
    return ns, name


def build_stats(
    nodes: Iterable[NodeRecord],
    pods: Iterable[PodRecord],
    counts: Mapping[str, int],
    reclaims_by_ce: Mapping[str, int],
    cost_of_gone_nodes: Mapping[str, float],
    api_writes: int,
    now: float,
) -> SimStats:
    """Pure: the stats of the view at ``now`` (a live node's cost runs until ``now``)."""
    by_ce: Counter[str] = Counter()
    vcpus: Counter[str] = Counter()
    cost = dict(cost_of_gone_nodes)
    n_nodes = 0
    for n in nodes:
        n_nodes += 1
        ce = n.spec.compute_environment
        by_ce[ce] += 1
        vcpus[ce] += n.spec.vcpus
        lifetime = max(0.0, now - n.spec.created_at)
        cost[ce] = cost.get(ce, 0.0) + lifetime / 3600 * n.spec.price_per_hour
    return SimStats(
        nodes=n_nodes,
        nodes_by_compute_environment=dict(by_ce),
        vcpus_by_compute_environment=dict(vcpus),
        nodes_created=counts.get("nodes_created", 0),
        nodes_deleted=counts.get("nodes_deleted", 0),
        pods_running=sum(1 for p in pods if p.running),
        pods_started=counts.get("pods_started", 0),
        pods_succeeded=counts.get("pods_succeeded", 0),
        pods_failed=counts.get("pods_failed", 0),
        pods_disrupted=counts.get("pods_disrupted", 0),
        reclaims=sum(reclaims_by_ce.values()),
        reclaims_by_compute_environment=dict(reclaims_by_ce),
        cost_by_compute_environment={k: round(v, 6) for k, v in cost.items()},
        api_writes=api_writes,
    )


def retry_or_log(exc: Exception, action: Any, submit: Any, delay: float = 2.0) -> None:
    """A failed action of the simulator: submitted again after ``delay`` when the API server
    was away (unreachable, restarting: a kubelet never drops a status), else logged."""
    if isinstance(exc, OSError | TimeoutError) or (isinstance(exc, ApiError) and exc.status >= 500):
        asyncio.get_running_loop().call_later(delay, submit, action)
    else:
        log.error("sim action failed", exc_info=exc)
