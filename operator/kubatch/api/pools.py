"""Compute environments and their node pools, as the scheduling core sees them.

Pure: no I/O, no clock. Nodes (``v1/Node`` dicts) become ``NodeInfo``; a ComputeEnvironment
and the nodes of its pool become the core's ``ComputeEnvironment`` with its node shapes (a
Managed CE's instance types from the catalogue, an Unmanaged CE's ready nodes), which
``kubatch.core.fit`` judges. Shared by the operator and the kubectl plugin, so that "can this
job ever run here" has one answer.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from kubatch.api import labels as L
from kubatch.api import models as api
from kubatch.api.models import dump
from kubatch.core import model as core
from kubatch.core.catalogue import DEFAULT, Catalogue
from kubatch.core.fit import managed_shapes, pareto
from kubatch.core.resources import QuantityError, Resources

SPOT_TAINT_KEY = L.CAPACITY_TYPE


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """What kubatch needs of a Node: its labels, allocatable capacity, readiness, price."""

    name: str
    labels: Mapping[str, str]
    allocatable: Resources
    ready: bool
    schedulable: bool
    price_per_hour: float

    @property
    def usable(self) -> bool:
        return self.ready and self.schedulable


def node_info(body: Mapping[str, Any]) -> NodeInfo:
    """Pure: a Node object -> :class:`NodeInfo`."""
    meta = body.get("metadata") or {}
    status = body.get("status") or {}
    spec = body.get("spec") or {}
    alloc = status.get("allocatable") or {}
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )
    taints = spec.get("taints") or []
    blocked = any(
        t.get("effect") == "NoExecute" or str(t.get("key", "")).startswith("node.kubernetes.io/")
        for t in taints
    )
    try:
        price = float((meta.get("annotations") or {}).get(L.PRICE_PER_HOUR, "0") or 0)
    except ValueError:
        price = 0.0
    return NodeInfo(
        name=str(meta.get("name", "")),
        labels=dict(meta.get("labels") or {}),
        allocatable=node_allocatable(alloc),
        ready=ready,
        schedulable=not spec.get("unschedulable") and not blocked,
        price_per_hour=price,
    )


def node_allocatable(alloc: Mapping[str, Any]) -> Resources:
    """Pure: a node's ``status.allocatable`` (every resource but the pod count)."""
    try:
        return Resources.from_requests({k: v for k, v in alloc.items() if k != "pods"})
    except QuantityError:
        return Resources()


def ce_node_selector(ce: api.ComputeEnvironment) -> dict[str, str]:
    """Pure: the node labels that make a node part of a CE's pool."""
    return dict(ce.spec.node_selector) or {L.COMPUTE_ENVIRONMENT: ce.metadata.name}


def in_pool(node: NodeInfo, selector: Mapping[str, str]) -> bool:
    return all(node.labels.get(k) == v for k, v in selector.items())


def ce_tolerations(ce: api.ComputeEnvironment) -> list[dict[str, Any]]:
    """Pure: the CE's tolerations, plus the spot taint's for Spot pools."""
    out = [dump(t) for t in ce.spec.tolerations]
    cr = ce.spec.compute_resources
    if cr is not None and cr.capacity_type == api.CapacityType.SPOT:
        spot = {"key": SPOT_TAINT_KEY, "operator": "Equal", "value": L.SPOT, "effect": "NoSchedule"}
        if spot not in out:
            out.append(spot)
    return out


def instance_type_names(catalogue: Catalogue, wanted: Iterable[str]) -> tuple[str, ...]:
    """Pure: the instance type names a CE's ``instanceTypes`` stand for (families and
    ``optimal`` expanded from the catalogue); empty — no constraint — when it lists none or a
    family the catalogue does not know."""
    names: set[str] = set()
    for w in (x.strip() for x in wanted if x and x.strip()):
        if w in catalogue:
            names.add(w)
        elif "." in w:
            names.add(w)  # an exact name the catalogue does not know: still a valid constraint
        else:
            matched = catalogue.select([w])
            if not matched:
                return ()
            names.update(t.name for t in matched)
    return tuple(sorted(names))


def capacity_type(ce: api.ComputeEnvironment) -> str:
    cr = ce.spec.compute_resources
    return str(cr.capacity_type) if cr is not None else str(api.CapacityType.ON_DEMAND)


def ce_to_core(
    ce: api.ComputeEnvironment, nodes: Iterable[NodeInfo], catalogue: Catalogue = DEFAULT
) -> core.ComputeEnvironment:
    """Pure: a CE and the nodes of its pool -> the scheduler's view.

    Managed pools grow to ``maxvCpus`` from the backlog (node capacity is not a limit); the
    nodes they can get are their instance types (from ``catalogue``). Unmanaged pools hold
    what their ready nodes can hold, and can run only what one of those nodes can hold.
    """
    cr = ce.spec.compute_resources
    max_vcpus = cr.max_vcpus if cr is not None else 0
    pool = [n for n in nodes if n.usable]
    managed = ce.spec.type == api.ComputeEnvironmentType.MANAGED
    shapes: tuple[core.Shape, ...] | None
    if managed:
        node_capacity = None
        shapes = managed_shapes(catalogue, cr.instance_types if cr is not None else [])
    else:
        total = Resources()
        for n in pool:
            total = total + n.allocatable
        node_capacity = total
        shapes = pareto(core.Shape(n.name, n.allocatable) for n in pool)
        if cr is None:
            max_vcpus = core.UNBOUNDED  # no maxvCpus: the nodes are the limit
    return core.ComputeEnvironment(
        name=ce.metadata.name,
        max_vcpus=max_vcpus,
        enabled=ce.spec.state == api.State.ENABLED,
        capacity_type=capacity_type(ce),
        node_capacity=node_capacity,
        shapes=shapes,
        managed=managed,
    )
