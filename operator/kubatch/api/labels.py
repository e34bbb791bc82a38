"""Every label and annotation key kubatch writes or reads, in one place."""

from __future__ import annotations

from typing import Final

PREFIX: Final = "kubatch.io"

# On Kubernetes Jobs and their pods (link back to the BatchJob, queue, CE and attempt).
BATCHJOB: Final = f"{PREFIX}/batchjob"
BATCHJOB_UID: Final = f"{PREFIX}/batchjob-uid"
QUEUE: Final = f"{PREFIX}/queue"
COMPUTE_ENVIRONMENT: Final = f"{PREFIX}/compute-environment"
CAPACITY_TYPE: Final = f"{PREFIX}/capacity-type"
ATTEMPT: Final = f"{PREFIX}/attempt"
ARRAY_INDEX: Final = f"{PREFIX}/array-index"
NODE_INDEX: Final = f"{PREFIX}/node-index"  # a node of a multi-node parallel job
MANAGED_BY: Final = "app.kubernetes.io/managed-by"
ARRAY_RECORD: Final = f"{PREFIX}/array-record"  # on the ConfigMaps of array child records
MANAGER: Final = "kubatch"

# Node labels (simulated pools and real node pools alike).
INSTANCE_TYPE: Final = "node.kubernetes.io/instance-type"
KARPENTER_CAPACITY_TYPE: Final = "karpenter.sh/capacity-type"  # spot | on-demand
EKS_CAPACITY_TYPE: Final = "eks.amazonaws.com/capacityType"  # SPOT | ON_DEMAND
PRICE_PER_HOUR: Final = f"{PREFIX}/price-per-hour"

# Capacity-type label values on nodes.
SPOT: Final = "spot"
ON_DEMAND: Final = "on-demand"


def capacity_label_value(capacity_type: str) -> str:
    """Pure: ``Spot``/``OnDemand`` (API) -> ``spot``/``on-demand`` (node label)."""
    return SPOT if capacity_type.lower() == "spot" else ON_DEMAND
