"""Multi-node parallel jobs in the API (AWS ``nodeProperties``): the models and node ranges.

Pure: no I/O. A JobDefinition of ``type: multinode`` has ``nodeProperties``: ``numNodes``
nodes, the ``mainNode`` whose exit decides the attempt, and ``nodeRangeProperties`` — a pod
template per range of node indices written as AWS writes them (``"0:3"``; ``":3"`` from node
0, ``"4:"`` to the last node, ``":"`` every node, ``"5"`` one node). As on AWS the ranges must
account for every node, and a range nested in another overrides it for its nodes. A BatchJob
may change the number of nodes and each range's first container (``nodeOverrides``).

What a job ran with is recorded, resolved, in ``status.jobDefinition.nodeProperties``: one
entry per run of nodes sharing a template (disjoint ``first:last`` ranges, parameters
substituted, overrides applied), so that a restarted operator renders the same pods.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from pydantic import Field

from kubatch.api.common import PRESERVE, ContainerOverrides, PodTemplate, _Model, _Status

MAX_NODES = 1000
"""kubatch's limit on ``numNodes`` (one Kubernetes Job per node and attempt)."""
TARGET_PATTERN = r"^([0-9]+)?:([0-9]+)?$|^[0-9]+$"
_TARGET = re.compile(TARGET_PATTERN)


class NodeRangeProperty(_Model):
    """The nodes of a range and their pod template (AWS ``nodeRangeProperties[]``)."""

    target_nodes: str = Field(pattern=TARGET_PATTERN, max_length=16)
    """Node indices ``first:last`` (inclusive, as AWS: ``0:3``); ``:n`` starts at 0, ``n:``
    ends at the last node. A range nested in another overrides it for its nodes."""
    template: PodTemplate | None = None
    """Pod template of these nodes; unset: the definition's ``spec.template``."""


class NodeProperties(_Model):
    """A multi-node parallel job (AWS ``nodeProperties``)."""

    num_nodes: int = Field(ge=1, le=MAX_NODES)
    """Number of nodes (one pod each), admitted all together on one compute environment."""
    main_node: int = Field(0, ge=0)
    """Index of the main node: its exit decides the attempt (AWS ``mainNode``)."""
    node_range_properties: list[NodeRangeProperty] = Field(default_factory=list)
    """Pod templates per range of nodes; they must account for every node. Empty: every
    node runs ``spec.template``."""
    start_timeout_seconds: int = Field(600, ge=10, le=86400)
    """kubatch: every node's pod must run within this long of the admission, else the attempt
    is released whole and runs again later (not counted as a failure or an interruption)."""


class NodePropertyOverride(_Model):
    """Overrides of the first container of a range's nodes (AWS ``nodePropertyOverrides[]``)."""

    target_nodes: str = Field(pattern=TARGET_PATTERN, max_length=16)
    """Node indices, as in ``nodeRangeProperties``."""
    container_overrides: ContainerOverrides | None = None
    """Command, args, env and resources of the first container of these nodes."""


class NodeOverrides(_Model):
    """A BatchJob's changes to its definition's ``nodeProperties`` (AWS ``nodeOverrides``)."""

    num_nodes: int | None = Field(None, ge=1, le=MAX_NODES)
    """Replaces ``numNodes``: as on AWS a range of the definition must end open (``n:``) and
    the main node and every range's start must stay below it."""
    node_property_overrides: list[NodePropertyOverride] = Field(default_factory=list)
    """Applied in order to the nodes each one targets."""


class NodeRangeRevision(_Status):
    """Nodes ``targetNodes`` (``first:last``) as they run: the resolved pod template."""

    target_nodes: str
    template: dict[str, Any] | None = Field(None, json_schema_extra={PRESERVE: True})


class NodePropertiesRevision(_Status):
    """A multi-node job's nodes as submitted (resolved; disjoint ranges in order)."""

    num_nodes: int
    main_node: int = 0
    start_timeout_seconds: int = 600
    node_range_properties: list[NodeRangeRevision] = Field(default_factory=list)


class NodeStatus(_Status):
    """One node of a multi-node job's current attempt (``status.nodes[]``)."""

    index: int
    """``AWS_BATCH_JOB_NODE_INDEX``."""
    main: bool = False
    job_name: str | None = None
    """Name of the node's Kubernetes Job."""
    pod_name: str | None = None
    node_name: str | None = None
    """The Kubernetes node the pod runs on."""
    pod_ip: str | None = Field(None, alias="podIP")
    phase: str | None = None
    """The pod's phase: Pending, Running, Succeeded, Failed (Deleted: its pod is gone)."""
    exit_code: int | None = None
    reason: str | None = None


def parse_targets(text: str, num_nodes: int) -> tuple[int, int] | str:
    """Pure: ``(first, last)`` (inclusive) of a ``targetNodes`` range among ``num_nodes``
    nodes, or what is wrong with it."""
    if not _TARGET.match(text):
        return f"{text!r} is not a node range (first:last, :last, first:, : or an index)"
    first_s, sep, last_s = text.partition(":")
    first = int(first_s) if first_s else 0
    last = (int(last_s) if last_s else num_nodes - 1) if sep else first
    if first > last:
        return f"{text!r}: the first node is after the last"
    if last >= num_nodes:
        return f"{text!r}: node {last} is beyond the last node ({num_nodes - 1})"
    return first, last


def open_ended(text: str) -> bool:
    """Pure: a range that ends at the last node whatever their number (``n:`` or ``:``)."""
    return ":" in text and not text.partition(":")[2]


def node_sources(targets: Sequence[str], num_nodes: int) -> list[int | None] | str:
    """Pure: for each node, the index of the range that gives its template (the narrowest
    range containing it; the later one on a tie), ``None`` for a node no range covers — or
    what is wrong with a range."""
    found: list[tuple[int, int, int] | None] = [None] * num_nodes  # (width, -position, range)
    for pos, text in enumerate(targets):
        parsed = parse_targets(text, num_nodes)
        if isinstance(parsed, str):
            return f"nodeRangeProperties[{pos}].targetNodes: {parsed}"
        first, last = parsed
        for i in range(first, last + 1):
            cand = (last - first, -pos, pos)
            cur = found[i]
            if cur is None or cand < cur:
                found[i] = cand
    return [None if f is None else f[2] for f in found]


def runs(values: Sequence[Any]) -> list[tuple[int, int]]:
    """Pure: ``(first, last)`` of each run of equal consecutive values."""
    out: list[tuple[int, int]] = []
    for i, v in enumerate(values):
        if out and values[out[-1][0]] == v:
            out[-1] = (out[-1][0], i)
        else:
            out.append((i, i))
    return out
