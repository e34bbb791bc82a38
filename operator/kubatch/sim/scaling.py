"""Managed scaling of simulated pools and spot reclaim choices.

Pure: a ComputeEnvironment (as a plain dict), the pool's nodes and the pending demand go in; a
:class:`ScalePlan` (instance types to add, nodes to remove) comes out. The clock and the random
source are parameters. Invariants (tested): the pool never grows above ``maxvCpus``; removals
never take it below ``max(minvCpus, target)``; spot types priced above ``bidPercentage`` of
their on-demand price are never chosen.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kubatch.api.enums import AllocationStrategy, CapacityType, ComputeEnvironmentType, State
from kubatch.core.catalogue import Catalogue, InstanceType
from kubatch.sim.pods import Requests
from kubatch.sim.state import NodeRecord


@dataclass(frozen=True, slots=True)
class Pool:
    """The parts of a ComputeEnvironment the sim acts on."""

    name: str
    managed: bool
    enabled: bool = True
    spot: bool = False
    min_vcpus: int = 0
    max_vcpus: int = 0
    desired_vcpus: int | None = None
    """``status.desiredvCpus`` published by the operator; None = derive from pending pods."""
    instance_types: tuple[str, ...] = ()
    strategy: AllocationStrategy = AllocationStrategy.BEST_FIT
    bid_percentage: int = 100
    node_labels: dict[str, str] = field(default_factory=dict)


def _int(value: Any, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def parse_pool(ce: dict[str, Any]) -> Pool:
    """Read a ComputeEnvironment object (a plain dict) into a :class:`Pool`. Pure.

    Tolerant on purpose: missing fields take AWS Batch's defaults.
    """
    meta = ce.get("metadata") or {}
    spec = ce.get("spec") or {}
    status = ce.get("status") or {}
    cr = spec.get("computeResources") or {}
    capacity = str(cr.get("capacityType", cr.get("type", CapacityType.ON_DEMAND.value)))
    spot = capacity.lower() == CapacityType.SPOT.value.lower()
    try:
        strategy = AllocationStrategy(cr.get("allocationStrategy") or AllocationStrategy.BEST_FIT)
    except ValueError:
        strategy = AllocationStrategy.BEST_FIT
    min_v = max(0, _int(cr.get("minvCpus"), 0))
    max_v = max(min_v, _int(cr.get("maxvCpus"), min_v))
    desired_raw = status.get("desiredvCpus")
    try:
        desired = None if desired_raw is None else max(0, math.ceil(float(desired_raw)))
    except (TypeError, ValueError):
        desired = None
    selector = spec.get("nodeSelector") or {}
    managed = ComputeEnvironmentType.MANAGED.value
    return Pool(
        name=str(meta.get("name", "")),
        managed=str(spec.get("type") or managed) == managed,
        enabled=str(spec.get("state", State.ENABLED)) != State.DISABLED,
        spot=spot,
        min_vcpus=min_v,
        max_vcpus=max_v,
        desired_vcpus=desired,
        instance_types=tuple(str(t) for t in cr.get("instanceTypes") or ()),
        strategy=strategy,
        bid_percentage=max(0, min(100, _int(cr.get("bidPercentage"), 100))),
        node_labels={str(k): str(v) for k, v in selector.items()}
        if isinstance(selector, dict)
        else {},
    )


@dataclass(frozen=True, slots=True)
class PoolNode:
    """A node of a pool as the planner sees it."""

    name: str
    instance_type: str
    vcpus: int
    busy: bool = False
    idle_since: float | None = None
    provisioning: bool = False


@dataclass(frozen=True, slots=True)
class ScalePlan:
    add: tuple[str, ...] = ()
    """Instance type names to launch, one per node."""
    remove: tuple[str, ...] = ()
    """Node names to terminate."""
    target_vcpus: int = 0


def eligible_types(pool: Pool, catalogue: Catalogue) -> list[InstanceType]:
    """The catalogue types this pool may launch: its ``instanceTypes`` and, for Spot, those
    whose spot price is within ``bidPercentage`` of their on-demand price. Pure."""
    types = catalogue.select(pool.instance_types)
    if pool.spot:
        types = [t for t in types if t.spot_price <= t.on_demand_price * pool.bid_percentage / 100]
    return types


def target_vcpus(pool: Pool, nodes: Sequence[PoolNode], pending: Iterable[Requests]) -> int:
    """The size the pool should have, clamped to ``[minvCpus, maxvCpus]``. Pure.

    The operator's published ``desiredvCpus`` wins; without it, the busy nodes plus the vCPUs of
    the pending pods that select this pool.
    """
    if pool.desired_vcpus is not None:
        want = pool.desired_vcpus
    else:
        busy = sum(n.vcpus for n in nodes if n.busy)
        want = busy + math.ceil(sum(r.vcpus for r in pending))
    return max(pool.min_vcpus, min(pool.max_vcpus, want))


def _choose(
    strategy: AllocationStrategy, types: list[InstanceType], spot: bool, deficit: int
) -> InstanceType:
    def per_vcpu(t: InstanceType) -> float:
        return t.price(spot) / max(t.vcpus, 1)

    if strategy is AllocationStrategy.BEST_FIT:
        return min(types, key=lambda t: (per_vcpu(t), t.vcpus, t.name))
    if spot and strategy is AllocationStrategy.SPOT_CAPACITY_OPTIMIZED:
        return min(types, key=lambda t: (-t.spot_capacity, abs(t.vcpus - deficit), t.name))
    if spot and strategy is AllocationStrategy.SPOT_PRICE_CAPACITY_OPTIMIZED:
        return min(
            types,
            key=lambda t: (
                per_vcpu(t) / max(t.spot_capacity, 0.01),
                abs(t.vcpus - deficit),
                t.name,
            ),
        )
    # BestFitProgressive (and spot strategies on an on-demand pool)
    return min(types, key=lambda t: (round(per_vcpu(t), 6), abs(t.vcpus - deficit), t.name))


def plan_scaling(
    pool: Pool,
    *,
    nodes: Sequence[PoolNode],
    pending: Sequence[Requests],
    catalogue: Catalogue,
    now: float,
    scale_down_delay: float,
) -> ScalePlan:
    """Decide which nodes to add and remove for a managed pool. Pure.

    Growth: launch instances, chosen per the allocation strategy among the eligible types that
    can hold the largest pending pod, until the target is reached without exceeding maxvCpus —
    except, as on AWS, by one instance when the smallest type is larger than the room left.
    ``BestFit`` sticks to the single cheapest-per-vCPU type (smallest on ties) and may stop
    short of the target; the other strategies progress to other types that still fit.
    Shrinking: idle nodes idle for at least ``scale_down_delay`` go, largest first, while the
    pool stays at or above ``max(minvCpus, target)``; above maxvCpus, idle nodes go at once.
    """
    if not pool.managed:
        return ScalePlan()
    target = target_vcpus(pool, nodes, pending)
    current = sum(n.vcpus for n in nodes)
    add: list[str] = []
    if current < target:
        types = eligible_types(pool, catalogue)
        fitting = [r for r in pending if any(t.fits(r.vcpus, r.memory_mib, r.gpus) for t in types)]
        if fitting:
            big = max(fitting, key=lambda r: (r.vcpus, r.memory_mib, r.gpus))
            holders = [t for t in types if t.fits(big.vcpus, big.memory_mib, big.gpus)]
            types = holders or types
        if pool.strategy is AllocationStrategy.BEST_FIT and types:
            types = [_choose(pool.strategy, types, pool.spot, target - current)]
        while current < target:
            room = pool.max_vcpus - current
            usable = [t for t in types if t.vcpus <= room]
            if not usable:
                if room > 0 and types:  # AWS: one instance may take the pool past maxvCpus
                    smallest = min(types, key=lambda t: (t.vcpus, t.memory_mib, t.name))
                    add.append(smallest.name)
                break
            t = _choose(pool.strategy, usable, pool.spot, target - current)
            add.append(t.name)
            current += t.vcpus
        return ScalePlan(add=tuple(add), target_vcpus=target)

    remove: list[str] = []
    floor = max(pool.min_vcpus, target)
    idle = [n for n in nodes if not n.busy and not n.provisioning and n.idle_since is not None]
    idle.sort(key=lambda n: (-n.vcpus, n.name))
    for n in idle:
        if current > pool.max_vcpus:
            remove.append(n.name)
            current -= n.vcpus
            continue
        expired = n.idle_since is not None and now - n.idle_since >= scale_down_delay
        if expired and current - n.vcpus >= floor:
            remove.append(n.name)
            current -= n.vcpus
    return ScalePlan(remove=tuple(remove), target_vcpus=target)


@dataclass(frozen=True, slots=True)
class CyclePlan:
    """What one scaling cycle does over every pool."""

    delete: tuple[str, ...] = ()
    """Cordoned nodes that drained."""
    launch: tuple[tuple[Pool, str], ...] = ()
    """(pool, instance type) to launch, one node each."""
    cordon: tuple[str, ...] = ()
    """Idle nodes to take out (deleted once drained)."""


def plan_cycle(
    nodes: Sequence[NodeRecord],
    pending: Iterable[tuple[str, Requests]],
    pools: Mapping[str, Pool],
    provisioning: Mapping[str, Sequence[PoolNode]],
    *,
    pools_known: bool,
    catalogue: Catalogue,
    now: float,
    scale_down_delay: float,
    drain_grace: float,
) -> CyclePlan:
    """Pure: one scaling cycle over the simulator's view. ``pending`` are (CE, requests) of
    unbound pods; ``pools_known`` once the ComputeEnvironments were listed: a managed node
    whose CE is gone then belongs to a pool of size 0 and drains."""
    by_ce: dict[str, list[NodeRecord]] = {}
    for n in nodes:
        by_ce.setdefault(n.spec.compute_environment, []).append(n)
    demand: dict[str, list[Requests]] = {}
    for ce, req in pending:
        demand.setdefault(ce, []).append(req)
    delete = tuple(
        n.spec.name
        for n in nodes
        if n.cordoned_at is not None
        and not n.pods
        and not n.reclaimed
        and now - n.cordoned_at >= drain_grace
    )
    every = dict(pools)
    if pools_known:
        for ce, members in by_ce.items():
            if ce not in every and any(n.spec.managed for n in members):
                every[ce] = Pool(name=ce, managed=True)  # CE deleted: max 0, drain
    launch: list[tuple[Pool, str]] = []
    cordon: list[str] = []
    for ce, pool in every.items():
        if not pool.managed:
            continue
        view = [
            PoolNode(
                n.spec.name,
                n.spec.instance_type,
                n.spec.vcpus,
                busy=bool(n.pods),
                idle_since=None if n.pods else n.idle_since,
            )
            for n in by_ce.get(ce, [])
            if n.cordoned_at is None and not n.reclaimed
        ]
        plan = plan_scaling(
            pool,
            nodes=[*view, *provisioning.get(ce, ())],
            pending=demand.get(ce, []),
            catalogue=catalogue,
            now=now,
            scale_down_delay=scale_down_delay,
        )
        launch += [(pool, itype) for itype in plan.add]
        cordon += plan.remove
    return CyclePlan(delete, tuple(launch), tuple(cordon))


# --- spot reclaims ------------------------------------------------------------------------------


def choose_fraction(nodes: Sequence[str], fraction: float, rng: random.Random) -> list[str]:
    """``ceil(fraction * len(nodes))`` nodes chosen at random (sorted for stable output). Pure
    given ``rng``."""
    if not nodes or fraction <= 0:
        return []
    k = min(len(nodes), math.ceil(min(fraction, 1.0) * len(nodes)))
    return sorted(rng.sample(sorted(nodes), k))


def reclaim_probability(rate_per_hour: float, dt_seconds: float) -> float:
    """Probability that one spot node is reclaimed within ``dt_seconds`` when reclaims arrive as
    a Poisson process of ``rate_per_hour``. Pure."""
    if rate_per_hour <= 0 or dt_seconds <= 0:
        return 0.0
    return 1.0 - math.exp(-rate_per_hour * dt_seconds / 3600.0)


def choose_random_reclaims(
    nodes: Sequence[str], rate_per_hour: float, dt_seconds: float, rng: random.Random
) -> list[str]:
    """Spot nodes hit by a reclaim during one tick of ``dt_seconds``. Pure given ``rng``."""
    p = reclaim_probability(rate_per_hour, dt_seconds)
    return [n for n in sorted(nodes) if p > 0 and rng.random() < p]
