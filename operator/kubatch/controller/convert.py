"""Pure conversions between the API (pydantic models, Kubernetes objects as dicts) and the
core's model (frozen dataclasses). No I/O, no clock: every function here is pure.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from kubatch import timefmt
from kubatch.api import labels as L
from kubatch.api import models as api
from kubatch.api.consumable import ConsumableResource
from kubatch.api.enums import FairSharePreemption, ReclaimPolicy
from kubatch.api.models import dump
from kubatch.api.multinode import NodePropertiesRevision
from kubatch.api.pools import (  # re-exported: the controller's conversions in one place
    NodeInfo,
    capacity_type,
    ce_node_selector,
    ce_to_core,
    ce_tolerations,
    in_pool,
    instance_type_names,
    node_allocatable,
    node_info,
)
from kubatch.api.preemption import QueuePreemption
from kubatch.api.resolve import effective_parameters, resolve_node_properties, resolve_pod_template
from kubatch.core import model as core
from kubatch.core.budget import Budget
from kubatch.core.lifecycle import Phase, Reason
from kubatch.core.resources import Resources, sum_requests
from kubatch.core.retry import ExitRule, RetryStrategy
from kubatch.core.selector import LabelSelector

# The one RFC 3339 parser/formatter is kubatch.timefmt; these names stay for the controller.
rfc3339 = timefmt.rfc3339
parse_time = timefmt.parse_time

GPU = "nvidia.com/gpu"
INTERRUPTION_REASONS = frozenset(
    {"Terminated", "NodeShutdown", "Shutdown", "Evicted", "NodeLost", "DeletionByTaintManager"}
)


def ts(value: datetime | None) -> float:
    """Pure: a timestamp as epoch seconds (0 when unknown)."""
    return value.timestamp() if value else 0.0


# --------------------------------------------------------------------------- nodes


# --------------------------------------------------------------------------- queues


def reason(value: str | None) -> Reason | None:
    """Pure: a status's ``reason`` as the core's (``None`` for one it does not know)."""
    try:
        return Reason(value) if value else None
    except ValueError:
        return None


def queue_to_core(q: api.JobQueue) -> core.JobQueue:
    """Pure: a JobQueue -> the scheduler's view (CEs sorted by ``order``)."""
    spec = q.spec
    order = tuple(
        o.compute_environment for o in sorted(spec.compute_environment_order, key=lambda o: o.order)
    )
    fair = None
    if spec.scheduling_policy is not None:
        sp = spec.scheduling_policy
        fair = core.FairSharePolicy(
            share_decay_seconds=sp.share_decay_seconds,
            compute_reservation=sp.compute_reservation,
            shares=tuple(
                core.Share(s.share_identifier, s.weight_factor) for s in sp.share_distribution
            ),
        )
    limits = tuple(
        core.StateTimeLimit(
            state=Phase(str(a.state)),
            max_time_seconds=a.max_time_seconds,
            action=core.TimeLimitAction(str(a.action)),
            reason=a.reason,
        )
        for a in spec.job_state_time_limit_actions
    )
    selector = (
        LabelSelector.parse(dump(spec.namespace_selector)) if spec.namespace_selector else None
    )
    limit = spec.spending_limit
    return core.JobQueue(
        budget=Budget(limit.per_hour, limit.per_day) if limit is not None else None,
        preemption=preemption_to_core(spec.preemption),
        name=q.metadata.name,
        priority=spec.priority,
        enabled=spec.state == api.State.ENABLED,
        compute_environments=order,
        strict_fifo=spec.ordering == api.QueueOrdering.STRICT_FIFO,
        fair_share=fair,
        state_time_limits=limits,
        namespace_selector=selector or LabelSelector(),
    )


def preemption_to_core(p: QueuePreemption | None) -> core.PreemptionPolicy | None:
    """Pure: a queue's ``preemption`` -> the core's policy (``None``: it never preempts)."""
    if p is None:
        return None
    lower = p.reclaim_from_queues == ReclaimPolicy.LOWER_PRIORITY
    fair = p.within_fair_share == FairSharePreemption.OVER_FAIR_SHARE
    return core.PreemptionPolicy(lower, fair) if lower or fair else None


def consumable_to_core(res: ConsumableResource) -> core.ConsumableResource:
    """Pure: a ConsumableResource -> the core's (a NON_REPLENISHABLE one brings the units its
    status says were used up: written before the Jobs that used them, read after a restart)."""
    kind = core.ResourceType(str(res.spec.resource_type))
    used = res.status.in_use_quantity or 0
    consumed = used if kind is core.ResourceType.NON_REPLENISHABLE else 0
    return core.ConsumableResource(res.metadata.name, res.spec.total_quantity, kind, consumed)


# --------------------------------------------------------------------------- jobs


def retry_to_core(rs: api.RetryStrategy | None) -> RetryStrategy:
    if rs is None:
        return RetryStrategy()
    return RetryStrategy(
        attempts=rs.attempts,
        evaluate_on_exit=tuple(
            ExitRule.parse(r.action, r.on_exit_code, r.on_reason, r.on_status_reason)
            for r in rs.evaluate_on_exit
        ),
    )


def revision(defn: api.JobDefinition, job: api.BatchJob) -> api.JobDefinitionRevision:
    """Pure: what a BatchJob records of its definition at submission (resolved)."""
    spec = job.spec
    return api.JobDefinitionRevision(
        name=defn.metadata.name,
        uid=defn.metadata.uid,
        generation=defn.metadata.generation,
        template=resolve_pod_template(defn, job),
        retry_strategy=spec.retry_strategy or defn.spec.retry_strategy,
        timeout=spec.timeout or defn.spec.timeout,
        scheduling_priority=(
            spec.scheduling_priority_override
            if spec.scheduling_priority_override is not None
            else defn.spec.scheduling_priority
        ),
        interruption_budget=(
            spec.interruption_budget
            if spec.interruption_budget is not None
            else defn.spec.interruption_budget
        ),
        node_properties=resolve_node_properties(defn, job),
        consumable_resource_properties=(
            spec.consumable_resource_properties_override or defn.spec.consumable_resource_properties
        ),
    )


def job_size(template: Mapping[str, Any]) -> Resources:
    """Pure: the sum of the containers' requests of a pod template (remembered per distinct
    set of requests and limits: thousands of jobs share a handful)."""
    containers = (template.get("spec") or {}).get("containers") or []
    try:
        return _sized(tuple(_requests_key(c) for c in containers))
    except (TypeError, ValueError):  # not plain quantities: summed as they are
        return sum_requests(containers)


Quantities = tuple[tuple[str, Any], ...] | None
RequestsKey = tuple[Quantities, Quantities]


def _requests_key(container: Mapping[str, Any]) -> RequestsKey:
    res = container.get("resources") or {}
    if not isinstance(res, Mapping):
        raise ValueError("resources is not a mapping")
    requests, limits = res.get("requests"), res.get("limits")
    for part in (requests, limits):
        if part is not None and not isinstance(part, Mapping):
            raise ValueError("requests/limits is not a mapping")
    return (tuple(sorted(requests.items())) if requests else None,
            tuple(sorted(limits.items())) if limits else None)  # fmt: skip


@functools.lru_cache(maxsize=1024)
def _sized(key: tuple[RequestsKey, ...]) -> Resources:
    """Pure: the size of containers with these requests and limits."""
    return sum_requests(
        {"resources": {"requests": dict(req or ()), "limits": dict(lim or ())}} for req, lim in key
    )


def gang_of(nodes: NodePropertiesRevision | None) -> core.Gang | None:
    """Pure: a multi-node job's recorded nodes -> the core's gang (sizes per range)."""
    if nodes is None:
        return None
    ranges = []
    for r in nodes.node_range_properties:
        first, _, last = r.target_nodes.partition(":")
        ranges.append(core.NodeRange(int(first), int(last), job_size(r.template or {})))
    return core.Gang(nodes.num_nodes, nodes.main_node, tuple(ranges), nodes.start_timeout_seconds)


def job_to_core(job: api.BatchJob, rev: api.JobDefinitionRevision) -> core.JobSpec:
    """Pure: a BatchJob and its recorded definition revision -> the scheduler's job."""
    spec = job.spec
    meta = job.metadata
    arr = spec.array_properties
    deps = tuple(
        core.Dependency(
            job_name=d.job_name,
            type=core.DependencyType(str(d.type)) if d.type else core.DependencyType.WHOLE,
            condition=core.Condition(str(d.condition)),
        )
        for d in spec.depends_on
    )
    gang = gang_of(rev.node_properties)
    props = rev.consumable_resource_properties
    needs = props.consumable_resource_list if props is not None else []
    return core.JobSpec(
        namespace=meta.namespace or "default",
        name=meta.name,
        queue=spec.job_queue,
        size=gang.total() if gang is not None else job_size(rev.template or {}),
        created_at=ts(meta.creation_timestamp),
        token=meta.uid or "",
        depends_on=deps,
        array_size=arr.size if arr else None,
        parallelism=arr.parallelism if arr else None,
        max_failed_children=arr.max_failed_children if arr else None,
        retry=retry_to_core(rev.retry_strategy),
        timeout_seconds=rev.timeout.attempt_duration_seconds if rev.timeout else None,
        share_identifier=spec.share_identifier,
        scheduling_priority=rev.scheduling_priority or 0,
        terminate_reason=spec.terminate.reason if spec.terminate else None,
        interruption_budget=(
            rev.interruption_budget
            if rev.interruption_budget is not None
            else core.DEFAULT_INTERRUPTION_BUDGET
        ),
        gang=gang,
        consumables=tuple((r.consumable_resource, r.quantity) for r in needs),
    )


def parameters_of(defn: api.JobDefinition, job: api.BatchJob) -> dict[str, str]:
    return effective_parameters(defn, job)


# --------------------------------------------------------------------------- pods


@dataclass(frozen=True, slots=True)
class PodOutcome:
    """What a terminated (or vanished) pod says about its attempt."""

    exit_code: int | None
    reason: str | None
    status_reason: str | None
    interrupted: bool
    started_at: float | None
    stopped_at: float | None


def pod_started_at(pod: Mapping[str, Any]) -> float | None:
    """Pure: when the pod's first container started running."""
    for cs in (pod.get("status") or {}).get("containerStatuses") or []:
        state = cs.get("state") or {}
        for key in ("running", "terminated"):
            if key in state and state[key].get("startedAt"):
                return parse_time(state[key]["startedAt"])
    return parse_time((pod.get("status") or {}).get("startTime"))


def pod_outcome(pod: Mapping[str, Any]) -> PodOutcome:
    """Pure: exit code, reason (e.g. ``OOMKilled``) and statusReason of a finished pod.

    The deciding container is the first one that failed (or the first one when all
    succeeded). A pod disrupted by its node (spot reclaim, eviction, shutdown) is an
    interruption, not an application failure.
    """
    status = pod.get("status") or {}
    chosen: Mapping[str, Any] | None = None
    for cs in status.get("containerStatuses") or []:
        term = (cs.get("state") or {}).get("terminated")
        if term is None:
            continue
        if chosen is None or (term.get("exitCode", 0) != 0 and chosen.get("exitCode", 0) == 0):
            chosen = term
    disrupted = any(
        c.get("type") == "DisruptionTarget" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )
    interrupted = disrupted or status.get("reason") in INTERRUPTION_REASONS
    node = (pod.get("spec") or {}).get("nodeName")
    message = status.get("message") or ""
    if interrupted:
        status_reason = message or f"node {node} was reclaimed"
    elif chosen is not None and chosen.get("exitCode", 0) != 0:
        status_reason = (
            chosen.get("message") or f"Essential container exited ({chosen.get('reason')})"
        )
    else:
        status_reason = message or None
    return PodOutcome(
        exit_code=int(chosen["exitCode"]) if chosen is not None and "exitCode" in chosen else None,
        reason=(chosen or {}).get("reason") or status.get("reason"),
        status_reason=status_reason,
        interrupted=interrupted,
        started_at=parse_time((chosen or {}).get("startedAt")) or pod_started_at(pod),
        stopped_at=parse_time((chosen or {}).get("finishedAt")),
    )


PULL_ERRORS = frozenset({"ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull",
                         "InvalidImageName", "RegistryUnavailable"})  # fmt: skip
START_ERRORS = frozenset({"CreateContainerConfigError", "CreateContainerError",
                          "RunContainerError", "CrashLoopBackOff"})  # fmt: skip


@dataclass(frozen=True, slots=True)
class PodWait:
    """Why a pod that was admitted does not run: ``kind`` is ``Unschedulable`` (the
    scheduler's words), ``CannotPullContainerError`` or ``CannotStartContainerError`` (the
    container's waiting reason, as AWS names them), ``text`` what the cluster said."""

    kind: str
    text: str

    @property
    def blocking(self) -> bool:
        """An attempt stuck like this ends after a bounded time (AWS does the same)."""
        return self.kind != "Unschedulable"


def pod_wait(pod: Mapping[str, Any]) -> PodWait | None:
    """Pure: why a Pending pod does not run, in the cluster's own words (``None``: no
    reason given, e.g. just created)."""
    status = pod.get("status") or {}
    for cs in status.get("containerStatuses") or []:
        waiting = (cs.get("state") or {}).get("waiting") or {}
        why = str(waiting.get("reason") or "")
        if why in PULL_ERRORS or why in START_ERRORS:
            kind = "CannotPullContainerError" if why in PULL_ERRORS else "CannotStartContainerError"
            text = f"{why}: {waiting.get('message') or cs.get('image') or ''}".rstrip(": ")
            return PodWait(kind, text)
    for c in status.get("conditions") or []:
        if c.get("type") == "PodScheduled" and c.get("status") == "False":
            return PodWait("Unschedulable", str(c.get("message") or c.get("reason") or ""))
    return None


def job_deadline_exceeded(job: Mapping[str, Any]) -> bool:
    """Pure: the Job controller stopped the Job at ``activeDeadlineSeconds``."""
    return any(
        c.get("type") == "Failed" and c.get("reason") == "DeadlineExceeded"
        for c in (job.get("status") or {}).get("conditions") or []
    )


def job_finished_at(job: Mapping[str, Any]) -> float | None:
    """Pure: when a finished Job finished (``completionTime`` or its final condition)."""
    status = job.get("status") or {}
    if status.get("completionTime"):
        return parse_time(status["completionTime"])
    for c in status.get("conditions") or []:
        if c.get("type") in ("Complete", "Failed") and c.get("status") == "True":
            return parse_time(c.get("lastTransitionTime"))
    return None


def job_finished(job: Mapping[str, Any]) -> bool | None:
    """Pure: ``True`` when the Job completed, ``False`` when it failed (not by its deadline),
    ``None`` while it runs."""
    for c in (job.get("status") or {}).get("conditions") or []:
        if c.get("status") != "True":
            continue
        if c.get("type") == "Complete":
            return True
        if c.get("type") == "Failed" and c.get("reason") != "DeadlineExceeded":
            return False
    return None


@dataclass(frozen=True, slots=True)
class AttemptLabels:
    namespace: str
    batchjob: str
    uid: str
    attempt: int
    index: int | None
    compute_environment: str
    node: int | None = None  # a node of a multi-node job (its attempt is the whole gang's)

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.batchjob}"

    @property
    def job_index(self) -> int | None:
        """The index in the attempt's Kubernetes Job name: the array index or the node."""
        return self.index if self.node is None else self.node


def attempt_labels(obj: Mapping[str, Any]) -> AttemptLabels | None:
    """Pure: which BatchJob attempt a kubatch-made Job or pod belongs to (None: not ours)."""
    meta = obj.get("metadata") or {}
    labels = meta.get("labels") or {}
    name = labels.get(L.BATCHJOB)
    attempt = labels.get(L.ATTEMPT)
    if not name or not attempt or not str(attempt).isdigit():
        return None
    idx = labels.get(L.ARRAY_INDEX)
    node = labels.get(L.NODE_INDEX)
    return AttemptLabels(
        namespace=str(meta.get("namespace") or "default"),
        batchjob=str(name),
        uid=str(labels.get(L.BATCHJOB_UID, "")),
        attempt=int(attempt),
        index=int(idx) if idx is not None and str(idx).isdigit() else None,
        compute_environment=str(labels.get(L.COMPUTE_ENVIRONMENT, "")),
        node=int(node) if node is not None and str(node).isdigit() else None,
    )


__all__ = [
    "NodeInfo",
    "capacity_type",
    "ce_node_selector",
    "ce_to_core",
    "ce_tolerations",
    "in_pool",
    "instance_type_names",
    "node_allocatable",
    "node_info",
]
