"""The cluster objects the controller knows besides BatchJobs: compute environments, queues,
job definitions, nodes, namespaces — and what waits for something not applied yet.

Kept by ``intake`` (which feeds it from watch events) and read by ``effects`` (placement of
attempts, queue and CE status). GitOps tools apply objects in any order, so what names a
missing object is kept here, by the missing name, and fed again when it appears.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kubatch.api import labels as L
from kubatch.api import models as api
from kubatch.controller import convert
from kubatch.controller.records import ObjectNote
from kubatch.core.catalogue import Catalogue
from kubatch.core.cost import node_price


class Registry:
    """Compute environments, queues, definitions and nodes by name, and validity notes."""

    def __init__(self, catalogue: Catalogue) -> None:
        self.catalogue = catalogue
        self.ces: dict[str, api.ComputeEnvironment] = {}
        self.queues: dict[str, api.JobQueue] = {}
        self.definitions: dict[tuple[str, str], api.JobDefinition] = {}
        self.consumables: dict[str, api.ConsumableResource] = {}
        self.nodes: dict[str, convert.NodeInfo] = {}
        self.notes: dict[tuple[str, str], ObjectNote] = {}  # (kind, name) -> validity
        self.dirty_notes: set[tuple[str, str]] = set()
        self.parked: dict[tuple[str, str], dict[str, Mapping[str, Any]]] = {}
        """(namespace, definition name) -> BatchJobs waiting for it, by key."""

    def pool_nodes(self, ce: api.ComputeEnvironment) -> list[convert.NodeInfo]:
        """The nodes of a CE's pool (its nodeSelector, or kubatch's CE label)."""
        selector = convert.ce_node_selector(ce)
        return [n for n in self.nodes.values() if convert.in_pool(n, selector)]

    def node_price(self, node: convert.NodeInfo | None) -> float:
        """Dollars per hour of ``node``: its annotation, else the catalogue's price of its
        instance type and capacity type."""
        if node is None:
            return 0.0
        labels = node.labels
        spot = (
            labels.get(L.CAPACITY_TYPE) == L.SPOT
            or labels.get(L.KARPENTER_CAPACITY_TYPE) == "spot"
            or labels.get(L.EKS_CAPACITY_TYPE) == "SPOT"
        )
        return node_price(
            self.catalogue, node.labels.get(L.INSTANCE_TYPE), spot, node.price_per_hour or None
        )

    def missing_ces(self, q: api.JobQueue) -> list[str]:
        """The compute environments of a queue's order that do not exist (yet)."""
        return [c for c in q.spec.ordered_compute_environments() if c not in self.ces]

    def park(self, namespace: str, definition: str, key: str, body: Mapping[str, Any]) -> None:
        """A BatchJob waits for a JobDefinition that does not exist (yet)."""
        self.parked.setdefault((namespace, definition), {})[key] = body

    def unpark(self, namespace: str, definition: str) -> list[Mapping[str, Any]]:
        """The BatchJobs that waited for this definition."""
        return list(self.parked.pop((namespace, definition), {}).values())

    def forget_parked(self, key: str) -> None:
        for waiting in self.parked.values():
            waiting.pop(key, None)

    def is_parked(self, key: str) -> bool:
        return any(key in waiting for waiting in self.parked.values())
