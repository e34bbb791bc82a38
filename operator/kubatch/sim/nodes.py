"""Node and Lease manifests of simulated nodes.

Pure builders: the sim's nodes look like kubelet-registered nodes (labels, taints,
capacity/allocatable, Ready condition, addresses, nodeInfo) plus kubatch's labels and price.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from kubatch.core.catalogue import InstanceType
from kubatch.sim.pods import parse_quantity, parse_rfc3339, rfc3339

LABEL_INSTANCE_TYPE = "node.kubernetes.io/instance-type"
LABEL_CAPACITY_TYPE = "kubatch.io/capacity-type"
LABEL_COMPUTE_ENVIRONMENT = "kubatch.io/compute-environment"
LABEL_TYPE = "type"
LABEL_MANAGED = "sim.kubatch.io/managed"
SIM_TYPE = "kubatch-sim"
ANN_PRICE = "kubatch.io/price-per-hour"
TAINT_SPOT = "kubatch.io/capacity-type"
TAINT_RECLAIM = "kubatch.io/spot-reclaim"
LEASE_NAMESPACE = "kube-node-lease"
LEASE_DURATION_SECONDS = 40


class CapacityType(StrEnum):
    """Values of the ``kubatch.io/capacity-type`` node label."""

    SPOT = "spot"
    ON_DEMAND = "on-demand"


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


def node_name(ce: str, instance_type: str, seq: int) -> str:
    """Deterministic node name: ``sim-<ce>-<type>-<hash>``, a valid DNS subdomain. Pure."""
    suffix = hashlib.blake2s(f"{ce}/{instance_type}/{seq}".encode(), digest_size=3).hexdigest()
    base = f"sim-{ce}-{instance_type.replace('.', '-')}"[:240].rstrip("-.")
    return f"{base}-{suffix}{seq:x}"


def host_ip(name: str) -> str:
    """A stable InternalIP in 10.0.0.0/8 for a node name. Pure."""
    d = hashlib.blake2s(name.encode(), digest_size=3).digest()
    return f"10.{d[0]}.{d[1]}.{max(d[2], 1)}"


def build_node(
    spec: NodeSpec,
    itype: InstanceType,
    now: float,
    extra_labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The Node object of a simulated node, status included. Pure."""
    spot = spec.capacity_type is CapacityType.SPOT
    ts = rfc3339(now)
    labels = {
        **(extra_labels or {}),
        "kubernetes.io/hostname": spec.name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        LABEL_INSTANCE_TYPE: itype.name,
        LABEL_CAPACITY_TYPE: spec.capacity_type.value,
        LABEL_COMPUTE_ENVIRONMENT: spec.compute_environment,
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
    taints = [{"key": TAINT_SPOT, "value": "spot", "effect": "NoSchedule"}] if spot else []
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": spec.name,
            "labels": labels,
            "annotations": {
                ANN_PRICE: f"{spec.price_per_hour:.4f}",
                "node.alpha.kubernetes.io/ttl": "0",
            },
        },
        "spec": {"taints": taints} if taints else {},
        "status": {
            "capacity": resources,
            "allocatable": resources,
            "phase": "Running",
            "addresses": [
                {"type": "InternalIP", "address": host_ip(spec.name)},
                {"type": "Hostname", "address": spec.name},
            ],
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


def rfc3339_micro(ts: float) -> str:
    """MicroTime format used by Lease ``renewTime``. Pure."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def node_spec_from_object(node: dict[str, Any]) -> NodeSpec | None:
    """Recover a :class:`NodeSpec` from a Node object the sim created earlier. Pure."""
    meta = node.get("metadata") or {}
    labels = meta.get("labels") or {}
    if labels.get(LABEL_TYPE) != SIM_TYPE:
        return None
    cap = (node.get("status") or {}).get("capacity") or {}
    try:
        price = float((meta.get("annotations") or {}).get(ANN_PRICE, "0"))
    except ValueError:
        price = 0.0
    created = meta.get("creationTimestamp")
    return NodeSpec(
        name=meta["name"],
        compute_environment=labels.get(LABEL_COMPUTE_ENVIRONMENT, ""),
        instance_type=labels.get(LABEL_INSTANCE_TYPE, ""),
        capacity_type=CapacityType(labels.get(LABEL_CAPACITY_TYPE, CapacityType.ON_DEMAND.value)),
        vcpus=int(parse_quantity(cap.get("cpu", "0"))),
        price_per_hour=price,
        created_at=parse_rfc3339(created) if created else 0.0,
        managed=labels.get(LABEL_MANAGED) == "true",
    )
