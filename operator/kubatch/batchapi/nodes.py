"""Multi-node parallel jobs in the AWS API: ``nodeProperties`` <-> a JobDefinition's
``spec.nodeProperties``, and the nodes of a job (AWS's ``<jobId>#<N>``) from ``status.nodes``.

Pure. A range's ``container`` (ECS style) or ``eksProperties`` becomes the range's pod
template, exactly as a container definition's ``containerProperties``/``eksProperties``
becomes the definition's template; the ranges of one definition are all of one style.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kubatch.api.multinode import MAX_NODES, parse_targets
from kubatch.batchapi import eks, pods
from kubatch.batchapi.errors import ClientError, not_supported
from kubatch.batchapi.reader import Reader

JsonDict = dict[str, Any]
RANGE_FIELDS = (
    "targetNodes",
    "container",
    "instanceTypes",
    "ecsProperties",
    "eksProperties",
    "consumableResourceProperties",
)
FINAL = ("SUCCEEDED", "FAILED")
NODE_PHASES = {
    "Pending": "STARTING",
    "Running": "RUNNING",
    "Succeeded": "SUCCEEDED",
    "Failed": "FAILED",
}
"""A node pod's phase -> the node's AWS status (while its job is starting or running)."""


def node_properties(np: Reader, namespace: str) -> tuple[JsonDict, str]:
    """Pure: (kubatch ``spec.nodeProperties``, style ``container``/``eks``) of AWS
    ``nodeProperties``."""
    np.only(("numNodes", "mainNode", "nodeRangeProperties"))
    num = np.integer("numNodes", required=True, lo=1, hi=MAX_NODES)
    assert num is not None
    main = np.integer("mainNode", required=True, lo=0, hi=num - 1)
    ranges = np.structs("nodeRangeProperties", required=True, max_items=MAX_NODES) or []
    if not ranges:
        raise ClientError(f"{np.field('nodeRangeProperties')} needs at least one range")
    styles: set[str] = set()
    out: list[JsonDict] = []
    for rr in ranges:
        rr.only(RANGE_FIELDS)
        target = rr.req_str("targetNodes", max_len=16)
        parsed = parse_targets(target, num)
        if isinstance(parsed, str):
            raise ClientError(f"{rr.field('targetNodes')}: {parsed}")
        if rr.has("ecsProperties"):
            raise not_supported(rr.field("ecsProperties"), "use container or eksProperties")
        if rr.has("consumableResourceProperties"):
            raise not_supported(
                rr.field("consumableResourceProperties"),
                "kubatch takes consumable resources per job: give consumableResourceProperties "
                "at the top level of the definition",
            )
        rr.strings("instanceTypes", max_items=100, max_len=256)  # kept, no effect
        c, e = rr.struct("container"), rr.struct("eksProperties")
        if (c is None) == (e is None):
            raise ClientError(f"{rr.path}: give exactly one of container and eksProperties")
        if c is not None:
            template, style = pods.container_template(c), "container"
        else:
            assert e is not None
            template, style = eks.pod_template(e, namespace), "eks"
        styles.add(style)
        out.append({"targetNodes": target, "template": template})
    if len(styles) > 1:
        raise ClientError(
            f"{np.field('nodeRangeProperties')}: give every range a container, or every range "
            "eksProperties, not a mix"
        )
    return {"numNodes": num, "mainNode": main, "nodeRangeProperties": out}, styles.pop()


def range_view(target: str, template: Mapping[str, Any], style: str) -> JsonDict:
    """Pure: an AWS ``NodeRangeProperty`` of a pod template."""
    if style == "container":
        return {"targetNodes": target, "container": pods.template_container(dict(template))}
    return {
        "targetNodes": target,
        "eksProperties": {"podProperties": eks.pod_properties(dict(template))},
    }


def registered_view(document: Mapping[str, Any]) -> JsonDict | None:
    """Pure: the ``nodeProperties`` registered through the API (AWS's defaults added)."""
    np = document.get("nodeProperties")
    if not isinstance(np, dict):
        return None
    ranges = []
    for rr in np.get("nodeRangeProperties") or []:
        if not isinstance(rr, dict):
            continue
        item = dict(rr)
        if isinstance(item.get("container"), dict):
            item["container"] = pods.with_defaults(item["container"])
        ranges.append(item)
    return {**np, "nodeRangeProperties": ranges}


def spec_view(spec: Mapping[str, Any], style: str) -> JsonDict | None:
    """Pure: AWS ``nodeProperties`` of a JobDefinition spec (definitions made with kubectl),
    or of a job's resolved record (``status.jobDefinition.nodeProperties``)."""
    np = spec.get("nodeProperties")
    if not isinstance(np, dict):
        return None
    fallback = spec.get("template") or {}
    ranges = [
        range_view(str(rr.get("targetNodes", "")), rr.get("template") or fallback, style)
        for rr in np.get("nodeRangeProperties") or []
        if isinstance(rr, dict)
    ]
    if not ranges and fallback:
        ranges = [range_view(":", fallback, style)]
    return {
        "numNodes": int(np.get("numNodes") or 1),
        "mainNode": int(np.get("mainNode") or 0),
        "nodeRangeProperties": ranges,
    }


# --------------------------------------------------------------------------- a job's nodes


@dataclass(frozen=True)
class Node:
    """One node of a multi-node job as AWS shows it (``<jobId>#<index>``)."""

    index: int
    main: bool
    num_nodes: int
    status: str
    template: JsonDict = field(default_factory=dict)
    exit_code: int | None = None
    reason: str | None = None
    pod_name: str | None = None
    node_name: str | None = None


def template_of(record: Mapping[str, Any], index: int) -> JsonDict:
    """Pure: the resolved pod template of node ``index`` in a job's node record."""
    num = int(record.get("numNodes") or 1)
    for rr in record.get("nodeRangeProperties") or []:
        if not isinstance(rr, dict):
            continue
        parsed = parse_targets(str(rr.get("targetNodes", "")), num)
        if not isinstance(parsed, str) and parsed[0] <= index <= parsed[1]:
            template = rr.get("template")
            return dict(template) if isinstance(template, dict) else {}
    return {}


def node_status(parent: str, phase: Any) -> str:
    """Pure: a node's AWS status from its job's and its pod's."""
    own = NODE_PHASES.get(str(phase)) if phase else None
    if parent in FINAL:
        return own if own in FINAL else parent
    if parent in ("STARTING", "RUNNING"):
        return own or parent
    return parent


def nodes_of(obj: Mapping[str, Any], record: Mapping[str, Any], parent: str) -> list[Node]:
    """Pure: every node of a multi-node job (``record``: its resolved ``nodeProperties``;
    ``parent``: the job's AWS status), from ``status.nodes`` of the current attempt."""
    num = int(record.get("numNodes") or 1)
    main = int(record.get("mainNode") or 0)
    seen = {
        int(n["index"]): n
        for n in (obj.get("status") or {}).get("nodes") or []
        if isinstance(n, dict) and isinstance(n.get("index"), int)
    }
    out = []
    for i in range(num):
        ns = seen.get(i) or {}
        out.append(
            Node(
                index=i,
                main=i == main,
                num_nodes=num,
                status=node_status(parent, ns.get("phase")),
                template=template_of(record, i),
                exit_code=ns.get("exitCode") if isinstance(ns.get("exitCode"), int) else None,
                reason=ns.get("reason"),
                pod_name=ns.get("podName"),
                node_name=ns.get("nodeName"),
            )
        )
    return out


def details(node: Node) -> JsonDict:
    """Pure: AWS ``nodeDetails`` of a node."""
    return {"nodeIndex": node.index, "isMainNode": node.main}


def summary(node: Node | None, num_nodes: int) -> JsonDict:
    """Pure: AWS ``NodePropertiesSummary`` of a job (``node`` None) or of one of its nodes."""
    if node is None:
        return {"numNodes": num_nodes}
    return {"isMainNode": node.main, "numNodes": num_nodes, "nodeIndex": node.index}
