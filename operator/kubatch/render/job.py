"""Pure builder: an admitted attempt -> the ``batch/v1`` Job manifest that runs it.

One Kubernetes Job per attempt (per child attempt for arrays, per node for multi-node jobs, whose
nodes also get AWS's AWS_BATCH_JOB_NODE_INDEX, _NUM_NODES, _MAIN_NODE_INDEX and, on the other
nodes, _MAIN_NODE_PRIVATE_IPV4_ADDRESS): ``backoffLimit: 0`` because
retries are kubatch's decision (evaluateOnExit); the attempt timeout counts from the attempt's
start (the operator stops it; the pod's own ``activeDeadlineSeconds``, which counts from the
pod's start on its node, is the timeout plus a grace as a backstop — never a Job-level
deadline, which would count the time spent waiting for a node); the compute environment's
nodeSelector, tolerations and node affinity to its instance types; the AWS_BATCH_* and
KUBATCH_* environment, labels linking it back, and an ownerReference to the BatchJob so that
deleting the BatchJob garbage-collects its Jobs and pods.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kubatch import API_VERSION
from kubatch.api import labels as L

JsonDict = dict[str, Any]


@dataclass(frozen=True)
class Placement:
    """Where an attempt runs: the compute environment's name and how its pods land there.

    ``node_selector`` is the CE's ``spec.nodeSelector`` (or, when it has none, the label
    ``kubatch.io/compute-environment=<name>`` that kubatch's node pools carry).
    """

    compute_environment: str
    capacity_type: str
    node_selector: Mapping[str, str] = field(default_factory=dict)
    tolerations: Sequence[Mapping[str, Any]] = ()
    instance_types: Sequence[str] = ()
    """Instance type names the pod may land on (empty: any)."""


@dataclass(frozen=True)
class AttemptRef:
    """Which BatchJob (and child) an attempt belongs to."""

    namespace: str
    name: str
    uid: str
    queue: str
    attempt: int
    index: int | None = None
    array_size: int | None = None
    indices: tuple[int, ...] = ()
    """A re-run: child i runs as original index ``indices[i]`` (one index: a plain job)."""
    rerun_of: str | None = None
    node: int | None = None
    """A node of a multi-node job (AWS_BATCH_JOB_NODE_INDEX)."""
    num_nodes: int | None = None
    main_node: int = 0
    main_ip: str | None = None
    """The main node's pod IP, given to the other nodes (known once the main node's pod has
    one: the other nodes' Jobs are created then, as AWS launches them after the main node)."""

    @property
    def array_index(self) -> int | None:
        """The index the attempt's container sees (the original one for a re-run)."""
        if self.indices:
            return self.indices[self.index or 0]
        return self.index


def batch_env(ref: AttemptRef, placement: Placement) -> list[JsonDict]:
    """Pure: the injected environment, AWS names first then the same values as KUBATCH_*."""
    job_id = f"{ref.namespace}/{ref.name}" + (f":{ref.index}" if ref.index is not None else "")
    if ref.node is not None:
        job_id += f"#{ref.node}"  # AWS addresses a node as <job id>#<node index>
    values = [
        ("JOB_ID", job_id),
        ("JOB_NAME", ref.name),
        ("JOB_ATTEMPT", str(ref.attempt)),
        ("JQ_NAME", ref.queue),
        ("CE_NAME", placement.compute_environment),
    ]
    index = ref.array_index
    if index is not None:
        values.append(("JOB_ARRAY_INDEX", str(index)))
        if ref.array_size is not None:
            values.append(("JOB_ARRAY_SIZE", str(ref.array_size)))
    if ref.node is not None:
        values.append(("JOB_NODE_INDEX", str(ref.node)))
        values.append(("JOB_NUM_NODES", str(ref.num_nodes)))
        values.append(("JOB_MAIN_NODE_INDEX", str(ref.main_node)))
        if ref.node != ref.main_node and ref.main_ip:  # as AWS: not on the main node
            values.append(("JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS", ref.main_ip))
    extra = []
    if ref.rerun_of:
        extra.append({"name": "KUBATCH_RERUN_OF", "value": ref.rerun_of})
    return (
        [{"name": f"AWS_BATCH_{k}", "value": v} for k, v in values]
        + [{"name": f"KUBATCH_{k}", "value": v} for k, v in values]
        + extra
    )


def attempt_labels(ref: AttemptRef, placement: Placement) -> dict[str, str]:
    """Pure: the labels on the Job and its pods."""
    out = {
        L.MANAGED_BY: L.MANAGER,
        L.BATCHJOB: ref.name,
        L.BATCHJOB_UID: ref.uid,
        L.QUEUE: ref.queue,
        L.COMPUTE_ENVIRONMENT: placement.compute_environment,
        L.CAPACITY_TYPE: L.capacity_label_value(placement.capacity_type),
        L.ATTEMPT: str(ref.attempt),
    }
    if ref.index is not None:
        out[L.ARRAY_INDEX] = str(ref.index)
    if ref.node is not None:
        out[L.NODE_INDEX] = str(ref.node)
    return out


def with_instance_types(affinity: Any, instance_types: Sequence[str]) -> JsonDict:
    """Pure: ``affinity`` plus a required node affinity to the instance types (added to every
    term the template already requires: all must hold)."""
    out: JsonDict = copy.deepcopy(dict(affinity)) if isinstance(affinity, Mapping) else {}
    req = {"key": L.INSTANCE_TYPE, "operator": "In", "values": sorted(set(instance_types))}
    node = out.setdefault("nodeAffinity", {})
    required = node.setdefault("requiredDuringSchedulingIgnoredDuringExecution", {})
    terms = required.setdefault("nodeSelectorTerms", [])
    if not terms:
        terms.append({"matchExpressions": [req]})
    for term in terms:
        term.setdefault("matchExpressions", []).append(req)
    return out


def _with_env(container: JsonDict, env: list[JsonDict]) -> JsonDict:
    names = {e["name"] for e in env}
    own = [e for e in container.get("env") or [] if e.get("name") not in names]
    return {**container, "env": own + env}


def build_job(
    *,
    name: str,
    ref: AttemptRef,
    placement: Placement,
    pod_template: Mapping[str, Any],
    timeout_seconds: int | None = None,
    deadline_grace: int = 60,
) -> JsonDict:
    """Pure: the Job manifest for one attempt.

    ``pod_template`` is the resolved PodTemplateSpec recorded on the BatchJob at submission
    (parameters substituted, overrides applied). It is not modified.
    """
    template: JsonDict = copy.deepcopy(dict(pod_template))
    meta: JsonDict = template.setdefault("metadata", {}) or {}
    template["metadata"] = meta
    spec: JsonDict = template.setdefault("spec", {}) or {}
    template["spec"] = spec
    job_labels = attempt_labels(ref, placement)
    meta["labels"] = {**(meta.get("labels") or {}), **job_labels}
    env = batch_env(ref, placement)
    spec["containers"] = [_with_env(c, env) for c in spec.get("containers") or []]
    if spec.get("initContainers"):
        spec["initContainers"] = [_with_env(c, env) for c in spec["initContainers"]]
    spec["restartPolicy"] = "Never"
    node_selector = {**(spec.get("nodeSelector") or {}), **placement.node_selector}
    if node_selector:
        spec["nodeSelector"] = node_selector
    tolerations = list(spec.get("tolerations") or [])
    for t in placement.tolerations:
        if dict(t) not in tolerations:
            tolerations.append(dict(t))
    if tolerations:
        spec["tolerations"] = tolerations
    if placement.instance_types:
        spec["affinity"] = with_instance_types(spec.get("affinity"), placement.instance_types)
    if timeout_seconds:
        spec["activeDeadlineSeconds"] = int(timeout_seconds) + max(0, deadline_grace)
    job_spec: JsonDict = {
        "backoffLimit": 0,
        "completions": 1,
        "parallelism": 1,
        "template": template,
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": ref.namespace,
            "labels": job_labels,
            "ownerReferences": [
                {
                    "apiVersion": API_VERSION,
                    "kind": "BatchJob",
                    "name": ref.name,
                    "uid": ref.uid,
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": job_spec,
    }
