"""A BatchJob (or one of its array children) as AWS ``JobDetail`` and ``JobSummary``.

Pure: the operations fetch the objects; these functions only shape them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kubatch.batchapi import consumables, definitions, eks, names, nodes, pods
from kubatch.batchapi.children import Child
from kubatch.batchapi.errors import prune
from kubatch.batchapi.jobs import (
    STATUSES,
    _ann,
    _meta,
    _ms,
    attempts_view,
    aws_status,
    created_ms,
    definition_ref,
    job_arn,
    job_name,
    status_reason,
    stopped_by,
)
from kubatch.batchapi.names import Arn, JobRef
from kubatch.render.job import AttemptRef, Placement, batch_env

JsonDict = dict[str, Any]


@dataclass(frozen=True)
class Place:
    """Where the caller is: region and account (ARNs), namespace, AWS names of queues."""

    region: str
    account: str
    namespace: str
    queue_names: Mapping[str, str]
    """Kubernetes name -> AWS name of every queue."""

    def queue_arn(self, kube_name: str) -> str:
        aws = self.queue_names.get(kube_name, kube_name)
        return str(Arn(self.region, self.account, "job-queue", aws))

    def definition_arn(self, ref: str) -> str:
        return str(Arn(self.region, self.account, "job-definition", ref))


def _template(obj: Mapping[str, Any], fallback: Mapping[str, Any] | None) -> dict[str, Any]:
    rev = (obj.get("status") or {}).get("jobDefinition") or {}
    template = rev.get("template")
    if isinstance(template, dict):
        return template
    return dict(fallback or {})


def _style(obj: Mapping[str, Any]) -> str:
    return str(_ann(obj).get(names.STYLE) or "eks")


def _first_container(template: Mapping[str, Any]) -> str:
    containers = (template.get("spec") or {}).get("containers") or [{}]
    first = containers[0] if isinstance(containers[0], dict) else {}
    return str(first.get("name") or pods.MAIN)


def _dependencies(spec: Mapping[str, Any], index: int | None, me: str) -> list[JsonDict]:
    out: list[JsonDict] = []
    for d in spec.get("dependsOn") or []:
        kind = d.get("type")
        if index is None:
            item: JsonDict = {"jobId": d.get("jobName"), "type": kind}
        elif kind == "N_TO_N":
            item = {"jobId": f"{d.get('jobName')}:{index}", "type": kind}
        elif kind == "SEQUENTIAL":
            if index == 0:
                continue
            item = {"jobId": f"{me}:{index - 1}", "type": kind}
        else:
            continue
        out.append(prune(item))
    return out


def _tags(obj: Mapping[str, Any]) -> dict[str, str]:
    return definitions.read_tags(dict(obj))


def _propagate(obj: Mapping[str, Any]) -> bool | None:
    raw = _ann(obj).get(names.AWS)
    try:
        value = json.loads(raw).get("propagateTags") if raw else None
    except (json.JSONDecodeError, AttributeError):
        return None
    return value if isinstance(value, bool) else None


def injected(
    obj: Mapping[str, Any], attempt: Mapping[str, Any], child: Child | None
) -> list[JsonDict]:
    """Pure: the AWS_BATCH_* variables kubatch gave an attempt (render.job.batch_env)."""
    meta, spec, status = _meta(obj), obj.get("spec") or {}, obj.get("status") or {}
    size = (spec.get("arrayProperties") or {}).get("size")
    ref = AttemptRef(
        namespace=str(meta.get("namespace", "")),
        name=str(meta.get("name", "")),
        uid=str(meta.get("uid", "")),
        queue=str(spec.get("jobQueue", "")),
        attempt=int(attempt.get("number") or 1),
        index=child.index if child else None,
        array_size=int(size) if size and child else None,
    )
    ce = attempt.get("computeEnvironment") or status.get("computeEnvironment") or ""
    env = batch_env(ref, Placement(str(ce), str(status.get("capacityType") or "OnDemand")))
    return [e for e in env if str(e["name"]).startswith("AWS_BATCH_")]


def summary_counts(obj: Mapping[str, Any]) -> dict[str, int]:
    s = (obj.get("status") or {}).get("arrayStatusSummary") or {}
    return {state: int(s.get(state.lower(), 0) or 0) for state in STATUSES}


def detail(
    obj: Mapping[str, Any],
    place: Place,
    *,
    definition_template: Mapping[str, Any] | None = None,
    child: Child | None = None,
    node_record: Mapping[str, Any] | None = None,
    node: nodes.Node | None = None,
) -> JsonDict:
    """Pure: the ``JobDetail`` of a job, of one child of an array job, or of one node of a
    multi-node job (``node_record``: its resolved ``nodeProperties``)."""
    meta, spec, status = _meta(obj), obj.get("spec") or {}, obj.get("status") or {}
    name = str(meta.get("name"))
    ref = JobRef(name, child.index if child else None, node.index if node else None)
    template = node.template if node and node.template else _template(obj, definition_template)
    container_name = _first_container(template)
    attempts: list[JsonDict] = child.attempts if child else list(status.get("attempts") or [])
    ecs_attempts, eks_attempts = attempts_view(attempts, place.namespace, container_name)
    cancelled, terminated = stopped_by(obj)
    rev = status.get("jobDefinition") or {}
    retry = definitions.retry_view(spec.get("retryStrategy") or rev.get("retryStrategy"))
    timeout = spec.get("timeout") or rev.get("timeout")
    priority = spec.get("schedulingPriorityOverride")
    if priority is None:
        priority = rev.get("schedulingPriority")
    if child is not None:
        aws, reason = child.status, child.status_reason
        started, stopped = _ms(child.started_at), _ms(child.stopped_at)
    else:
        aws = aws_status(status.get("phase"))
        reason = status_reason(status.get("reason"), status.get("message"))
        started, stopped = _ms(status.get("startedAt")), _ms(status.get("stoppedAt"))
        if aws not in ("SUCCEEDED", "FAILED"):
            stopped = None
        if node is not None:
            aws = node.status
            if aws not in ("SUCCEEDED", "FAILED"):
                stopped = None
    out: JsonDict = {
        "jobArn": job_arn(ref, place.region, place.account),
        "jobName": job_name(obj),
        "jobId": str(ref),
        "jobQueue": place.queue_arn(str(spec.get("jobQueue", ""))),
        "status": aws,
        "shareIdentifier": spec.get("shareIdentifier"),
        "schedulingPriority": priority,
        "attempts": ecs_attempts,
        "eksAttempts": eks_attempts,
        "statusReason": reason,
        "createdAt": created_ms(obj),
        "retryStrategy": retry,
        "startedAt": started,
        "stoppedAt": stopped,
        "dependsOn": _dependencies(spec, child.index if child else None, name),
        "jobDefinition": place.definition_arn(definition_ref(obj)),
        "parameters": dict(spec.get("parameters") or {}),
        "timeout": (
            {"attemptDurationSeconds": timeout["attemptDurationSeconds"]}
            if isinstance(timeout, dict) and timeout.get("attemptDurationSeconds")
            else None
        ),
        "tags": _tags(obj),
        "propagateTags": _propagate(obj),
        "platformCapabilities": ["EC2"],
        "isCancelled": cancelled,
        "isTerminated": terminated,
    }
    size = (spec.get("arrayProperties") or {}).get("size")
    if child is not None:
        out["arrayProperties"] = {"index": child.index}
    elif size:
        out["arrayProperties"] = {"statusSummary": summary_counts(obj), "size": int(size)}
    if node is not None:
        out["nodeDetails"] = nodes.details(node)
    elif node_record:
        out["nodeProperties"] = nodes.spec_view({"nodeProperties": node_record}, _style(obj))
    consumable = consumables.properties_view(
        spec.get("consumableResourcePropertiesOverride") or rev.get("consumableResourceProperties"),
        consumables.read_names(obj),
    )
    if consumable is not None:
        out["consumableResourceProperties"] = consumable
    last = dict(attempts[-1]) if attempts else {}
    if node is not None and last:
        last.update(exitCode=node.exit_code, podName=node.pod_name, nodeName=node.node_name)
        if node.reason:
            last["reason"] = node.reason
    if _style(obj) == "container":
        view = pods.template_container(template)
        if last:
            view["environment"] = view.get("environment", []) + injected(obj, last, child)
        if isinstance(last.get("exitCode"), int) and last.get("stoppedAt"):
            view["exitCode"] = last["exitCode"]
        if last.get("reason") and last.get("stoppedAt"):
            view["reason"] = str(last["reason"])
        out["container"] = view
    else:
        pp = eks.pod_properties(template)
        pp["podName"] = last.get("podName")
        pp["nodeName"] = last.get("nodeName")
        if pp.get("containers") and last.get("stoppedAt"):
            first = pp["containers"][0]
            if isinstance(last.get("exitCode"), int):
                first["exitCode"] = last["exitCode"]
            if last.get("reason"):
                first["reason"] = str(last["reason"])
        out["eksProperties"] = {"podProperties": pp}
    result: JsonDict = prune(out)
    return result


def num_nodes(obj: Mapping[str, Any]) -> int | None:
    """Pure: a multi-node job's number of nodes as recorded (or overridden), else None."""
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    recorded = ((status.get("jobDefinition") or {}).get("nodeProperties") or {}).get("numNodes")
    value = recorded or (spec.get("nodeOverrides") or {}).get("numNodes")
    return int(value) if isinstance(value, int) else None


def summary(
    obj: Mapping[str, Any],
    place: Place,
    *,
    child: Child | None = None,
    node: nodes.Node | None = None,
) -> JsonDict:
    """Pure: the ``JobSummary`` of a job, an array child or a node (ListJobs)."""
    meta, spec, status = _meta(obj), obj.get("spec") or {}, obj.get("status") or {}
    ref = JobRef(
        str(meta.get("name")), child.index if child else None, node.index if node else None
    )
    cancelled, terminated = stopped_by(obj)
    if child is not None:
        aws, reason = child.status, child.status_reason
        started, stopped = _ms(child.started_at), _ms(child.stopped_at)
        attempts = child.attempts
    else:
        aws = aws_status(status.get("phase"))
        reason = status_reason(status.get("reason"), status.get("message"))
        started, stopped = _ms(status.get("startedAt")), _ms(status.get("stoppedAt"))
        attempts = list(status.get("attempts") or [])
        if aws not in ("SUCCEEDED", "FAILED"):
            stopped = None
    out: JsonDict = {
        "jobArn": job_arn(ref, place.region, place.account),
        "jobId": str(ref),
        "jobName": job_name(obj),
        "createdAt": created_ms(obj),
        "shareIdentifier": spec.get("shareIdentifier"),
        "status": aws,
        "statusReason": reason,
        "startedAt": started,
        "stoppedAt": stopped,
        "jobDefinition": place.definition_arn(definition_ref(obj)),
        "isCancelled": cancelled,
        "isTerminated": terminated,
    }
    last = attempts[-1] if attempts else {}
    if last.get("stoppedAt") and (isinstance(last.get("exitCode"), int) or last.get("reason")):
        out["container"] = prune(
            {
                "exitCode": last.get("exitCode") if isinstance(last.get("exitCode"), int) else None,
                "reason": last.get("reason"),
            }
        )
    size = (spec.get("arrayProperties") or {}).get("size")
    if child is not None:
        out["arrayProperties"] = {"index": child.index}
    elif size:
        out["arrayProperties"] = {"size": int(size), "statusSummary": summary_counts(obj)}
    if node is not None:
        out["status"] = node.status
        if node.status not in ("SUCCEEDED", "FAILED"):
            out["stoppedAt"] = None
        out["nodeProperties"] = nodes.summary(node, node.num_nodes)
    else:
        count = num_nodes(obj)
        if count is not None:
            out["nodeProperties"] = nodes.summary(None, count)
    result: JsonDict = prune(out)
    return result
