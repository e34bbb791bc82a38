"""Node and Lease manifests of simulated nodes.

Pure builders: the sim's nodes look like kubelet-registered nodes (labels, taints,
capacity/allocatable, Ready condition, addresses, nodeInfo) plus kubatch's labels and price.
Label and annotation keys are kubatch's (``kubatch.api.labels``); a node's capacity type is
the API's ``CapacityType``, written on the node as the ``spot``/``on-demand`` label value.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from kubatch.api import labels as L
from kubatch.api.enums import CapacityType
from kubatch.core.catalogue import Catalogue, InstanceType
from kubatch.sim.pods import parse_quantity
from kubatch.timefmt import parse_time, rfc3339, rfc3339_micro

# The simulator's own marks (everything else is kubatch's vocabulary in api.labels).
LABEL_TYPE = "type"
LABEL_MANAGED = "sim.kubatch.io/managed"
SIM_TYPE = "kubatch-sim"
TAINT_RECLAIM = "kubatch.io/spot-reclaim"
LEASE_NAMESPACE = "kube-node-lease"
LEASE_DURATION_SECONDS = 40


def parse_capacity_type(value: object) -> CapacityType:
    """Pure: ``spot``/``on-demand`` (a node label value, a nodes file) or ``Spot``/``OnDemand``
    (the API's words) -> :class:`CapacityType`; anything else is a ``ValueError`` naming them."""
    text = str(value).strip()
    if text in (L.SPOT, CapacityType.SPOT.value):
        return CapacityType.SPOT
    if text in (L.ON_DEMAND, CapacityType.ON_DEMAND.value):
        return CapacityType.ON_DEMAND
    raise ValueError(
        f"capacity type {text!r}: expected {L.SPOT!r} or {L.ON_DEMAND!r} "
        f"({CapacityType.SPOT.value!r} or {CapacityType.ON_DEMAND.value!r})"
    )


@dataclass(frozen=True, slots=True)
class NodeSpec:
    """What the sim needs to know about one of its nodes."""

    name: str
    compute_environment: str
    instance_type: str
    capacity_type: CapacityType
    vcpus: int
    price_per_hour: float
    created_at: float
    managed: bool = False
    """Launched by the managed scaling provider (removed when idle or when its CE goes)."""


@dataclass(frozen=True, slots=True)
class WantedNode:
    """One node of a nodes file."""

    name: str
    compute_environment: str
    instance_type: str
    capacity_type: CapacityType
    labels: dict[str, str]


def parse_nodes_file(doc: object, catalogue: Catalogue) -> list[WantedNode]:
    """Pure: a nodes file -> the nodes it asks for, with deterministic names.

    ``nodes: [{computeEnvironment, instanceType, capacityType: spot|on-demand, count: 1,
    labels: {}}]`` (or the list alone). A missing field, an instance type the catalogue does
    not know, a bad capacity type or count raises ``ValueError`` naming the entry.
    """
    entries = doc.get("nodes", doc) if isinstance(doc, dict) else doc
    if entries is None:
        return []
    if not isinstance(entries, list):
        raise ValueError("nodes file: expected a list of entries under 'nodes'")
    out: list[WantedNode] = []
    for i, entry in enumerate(entries):
        where = f"nodes file entry {i + 1}"
        if not isinstance(entry, dict):
            raise ValueError(f"{where}: expected a mapping, got {entry!r}")
        missing = [k for k in ("computeEnvironment", "instanceType") if not entry.get(k)]
        if missing:
            raise ValueError(f"{where}: {' and '.join(missing)} required")
        ce, itype = str(entry["computeEnvironment"]), str(entry["instanceType"])
        try:
            catalogue[itype]
        except KeyError:
            raise ValueError(f"{where} ({ce}): unknown instance type {itype!r}") from None
        try:
            cap = parse_capacity_type(entry.get("capacityType", L.ON_DEMAND))
            count = int(entry.get("count", 1))
        except (ValueError, TypeError) as err:
            raise ValueError(f"{where} ({ce}): {err}") from None
        if count < 0:
            raise ValueError(f"{where} ({ce}): count must be 0 or more, not {count}")
        labels = {str(k): str(v) for k, v in (entry.get("labels") or {}).items()}
        out += [WantedNode(node_name(ce, itype, n), ce, itype, cap, labels) for n in range(count)]
    return out


def node_name(ce: str, instance_type: str, seq: int) -> str:
    """Deterministic node name: ``sim-<ce>-<type>-<hash>``, a valid DNS subdomain. Pure."""
    suffix = hashlib.blake2s(f"{ce}/{instance_type}/{seq}".encode(), digest_size=3).hexdigest()
    base = f"sim-{ce}-{instance_type.replace('.', '-')}"[:240].rstrip("-.")
    return f"{base}-{suffix}{seq:x}"


def host_ip(name: str) -> str:
    """A stable InternalIP in 10.0.0.0/8 for a node name. Pure."""
    d = hashlib.blake2s(name.encode(), digest_size=3).digest()
    return f"10.{d[0]}.{d[1]}.{max(d[2], 1)}"


def kubelet_endpoint(name: str, port: int | None) -> dict[str, Any]:
    """The node status fields that say where its kubelet answers. Pure.

    With the simulator's log server (``port``), the API server must reach it on loopback:
    the node advertises ``127.0.0.1`` first (as its Hostname address, the type the API
    server prefers) and the server's port. Without it, the name and a made-up InternalIP."""
    if port is None:
        return {
            "addresses": [
                {"type": "InternalIP", "address": host_ip(name)},
                {"type": "Hostname", "address": name},
            ]
        }
    return {
        "addresses": [
            {"type": "Hostname", "address": "127.0.0.1"},
            {"type": "InternalIP", "address": "127.0.0.1"},
        ],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": port}},
    }


def build_node(
    spec: NodeSpec,
    itype: InstanceType,
    now: float,
    extra_labels: dict[str, str] | None = None,
    kubelet_port: int | None = None,
) -> dict[str, Any]:
    """The Node object of a simulated node, status included. Pure."""
    spot = spec.capacity_type is CapacityType.SPOT
    ts = rfc3339(now)
    labels = {
        **(extra_labels or {}),
        "kubernetes.io/hostname": spec.name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        L.INSTANCE_TYPE: itype.name,
        L.CAPACITY_TYPE: L.capacity_label_value(spec.capacity_type),
        L.COMPUTE_ENVIRONMENT: spec.compute_environment,
        LABEL_TYPE: SIM_TYPE,
    }
    if spec.managed:
        labels[LABEL_MANAGED] = "true"
    resources = {
        "cpu": str(itype.vcpus),
        "memory": f"{itype.memory_mib}Mi",
        "pods": str(itype.max_pods),
        "ephemeral-storage": "100Gi",
    }
    if itype.gpus:
        resources["nvidia.com/gpu"] = str(itype.gpus)
    taints = [{"key": L.CAPACITY_TYPE, "value": L.SPOT, "effect": "NoSchedule"}] if spot else []
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": spec.name,
            "labels": labels,
            "annotations": {
                L.PRICE_PER_HOUR: f"{spec.price_per_hour:.4f}",
                "node.alpha.kubernetes.io/ttl": "0",
            },
        },
        "spec": {"taints": taints} if taints else {},
        "status": {
            "capacity": resources,
            "allocatable": resources,
            "phase": "Running",
            **kubelet_endpoint(spec.name, kubelet_port),
            "conditions": build_node_conditions(ts, ts),
            "nodeInfo": {
                "architecture": "amd64",
                "operatingSystem": "linux",
                "kubeletVersion": "v1.20.2-kubatch-sim",
                "kubeProxyVersion": "v1.20.2-kubatch-sim",
                "containerRuntimeVersion": "kubatch-sim://1",
                "kernelVersion": "",
                "osImage": "kubatch simulated node",
                "machineID": "",
                "systemUUID": "",
                "bootID": "",
            },
        },
    }


def build_node_conditions(heartbeat: str, transition: str) -> list[dict[str, str]]:
    """Node conditions of a healthy kubelet (Ready, no pressure). Pure."""
    conds = [
        ("MemoryPressure", "False", "KubeletHasSufficientMemory"),
        ("DiskPressure", "False", "KubeletHasNoDiskPressure"),
        ("PIDPressure", "False", "KubeletHasSufficientPID"),
        ("Ready", "True", "KubeletReady"),
    ]
    return [
        {
            "type": t,
            "status": s,
            "reason": r,
            "message": "kubatch simulated node",
            "lastHeartbeatTime": heartbeat,
            "lastTransitionTime": transition,
        }
        for t, s, r in conds
    ]


def ready_status(now: str) -> dict[str, Any]:
    """Pure: the status patch of a kubelet that reports its node Ready (again) at ``now``."""
    return {"status": {"conditions": build_node_conditions(now, now)}}


def not_ready(node: dict[str, Any]) -> bool:
    """Whether the node's Ready condition is not True (the node lifecycle controller marks a
    node whose heartbeats stopped ``Unknown``; a kubelet that comes back reports Ready). Pure."""
    conds = (node.get("status") or {}).get("conditions") or []
    return not any(c.get("type") == "Ready" and c.get("status") == "True" for c in conds)


def build_lease(name: str, node_uid: str, now: float) -> dict[str, Any]:
    """The node's Lease in ``kube-node-lease`` (owned by the node, so GC removes it). Pure."""
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {
            "name": name,
            "namespace": LEASE_NAMESPACE,
            "ownerReferences": [
                {"apiVersion": "v1", "kind": "Node", "name": name, "uid": node_uid}
            ],
        },
        "spec": {
            "holderIdentity": name,
            "leaseDurationSeconds": LEASE_DURATION_SECONDS,
            "renewTime": rfc3339_micro(now),
        },
    }


def node_spec_from_object(node: dict[str, Any]) -> NodeSpec | None:
    """Recover a :class:`NodeSpec` from a Node object the sim created earlier. Pure."""
    meta = node.get("metadata") or {}
    labels = meta.get("labels") or {}
    if labels.get(LABEL_TYPE) != SIM_TYPE:
        return None
    cap = (node.get("status") or {}).get("capacity") or {}
    try:
        price = float((meta.get("annotations") or {}).get(L.PRICE_PER_HOUR, "0"))
    except ValueError:
        price = 0.0
    return NodeSpec(
        name=meta["name"],
        compute_environment=labels.get(L.COMPUTE_ENVIRONMENT, ""),
        instance_type=labels.get(L.INSTANCE_TYPE, ""),
        capacity_type=parse_capacity_type(labels.get(L.CAPACITY_TYPE, L.ON_DEMAND)),
        vcpus=int(parse_quantity(cap.get("cpu", "0"))),
        price_per_hour=price,
        created_at=parse_time(meta.get("creationTimestamp")) or 0.0,
        managed=labels.get(LABEL_MANAGED) == "true",
    )
