"""Spot reclaims straight on the cluster: ``kubatch sim reclaim``, apart from a running
simulator (which notices the taint and the node's deletion and stops its timers)."""

from __future__ import annotations

import asyncio
import contextlib
import random
from typing import Any

from kubatch.adapters.kube import NODES, PODS, ApiError, Kube
from kubatch.api import labels as L
from kubatch.sim import nodes as N
from kubatch.sim.pods import build_disrupted_status
from kubatch.sim.scaling import choose_fraction
from kubatch.sim.state import ACTIVE_PODS, slim
from kubatch.timefmt import parse_time


def reclaim_taint() -> dict[str, str]:
    """Pure: the taint of a node being reclaimed."""
    # NoSchedule, not NoExecute: the taint manager would delete the pods before the sim can
    # fail them the way a node shutdown does.
    return {"key": N.TAINT_RECLAIM, "value": "true", "effect": "NoSchedule"}


def started_at(pod: dict[str, Any]) -> float | None:
    """Pure: when the pod's first running container started (epoch seconds), if it runs."""
    for cs in (pod.get("status") or {}).get("containerStatuses") or []:
        running = (cs.get("state") or {}).get("running")
        if running and running.get("startedAt"):
            return parse_time(running["startedAt"])
    return None


async def reclaim_from_cluster(
    kube: Kube, compute_environment: str, fraction: float, rng: random.Random, now: float
) -> list[str]:
    """Reclaim spot nodes of a CE directly on the cluster (the ``kubatch sim reclaim`` command,
    separate from a running simulator, which notices the taint and the deletion)."""
    selector = (
        f"{N.LABEL_TYPE}={N.SIM_TYPE},{L.COMPUTE_ENVIRONMENT}={compute_environment},"
        f"{L.CAPACITY_TYPE}={L.SPOT}"
    )
    items = await kube.list(NODES, labels=selector)
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
            NODES, name, {"spec": {"unschedulable": True, "taints": [*taints, reclaim_taint()]}}
        )
    if chosen:
        await asyncio.sleep(0.5)  # let a running sim see the taint and stop its timers
    for name in chosen:
        pods = await kube.list(PODS, fields=f"spec.nodeName={name},{ACTIVE_PODS}")
        for pod in pods:
            started = started_at(pod)
            body = build_disrupted_status(slim(pod), name, started, now)
            rv = pod["metadata"].get("resourceVersion", "")
            with contextlib.suppress(ApiError):  # gone or changed meanwhile: leave it be
                await kube.patch(
                    PODS,
                    pod["metadata"]["name"],
                    {"metadata": {"resourceVersion": rv}, "status": body},
                    pod["metadata"].get("namespace"),
                    status=True,
                )
        await kube.delete(NODES, name)
    return chosen
