"""Jobs: SubmitJob -> a BatchJob manifest, and a BatchJob -> AWS ``JobDetail``/``JobSummary``.

Pure. A job's id is its BatchJob's name (a UUID for jobs submitted through the API; a BatchJob
made with kubectl keeps its name as its id), its AWS ``jobName`` an annotation, and an array
child is ``<jobId>:<index>``. Status strings come from kubatch's phase, ``statusReason`` from
kubatch's reason through one table (:data:`STATUS_REASONS`), ``attempts[]`` and
``eksAttempts[]`` from ``status.attempts``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from kubatch.api.models import API_VERSION
from kubatch.api.multinode import MAX_NODES
from kubatch.batchapi import consumables, definitions, eks, names, pods
from kubatch.batchapi.errors import ClientError, epoch_ms, not_supported
from kubatch.batchapi.names import Arn, JobRef
from kubatch.batchapi.reader import Reader
from kubatch.core.lifecycle import Phase, Reason
from kubatch.core.resources import QuantityError, sum_requests

JsonDict = dict[str, Any]
STATUSES = ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED", "FAILED")
SUBMIT_FIELDS = (
    "jobName",
    "jobQueue",
    "shareIdentifier",
    "schedulingPriorityOverride",
    "arrayProperties",
    "dependsOn",
    "jobDefinition",
    "parameters",
    "containerOverrides",
    "nodeOverrides",
    "retryStrategy",
    "propagateTags",
    "timeout",
    "tags",
    "eksPropertiesOverride",
    "ecsPropertiesOverride",
    "consumableResourcePropertiesOverride",
)
_ESSENTIAL = "Essential container in task exited"
_GANG = "Not every node of the multi-node job started in time; the attempt was released"
_PREEMPTED = "Job attempt preempted for a job of a higher-priority queue or share"
_WITH_MESSAGE = (Reason.INSUFFICIENT_CAPACITY, Reason.GANG_START_TIMEOUT, Reason.PREEMPTED)

STATUS_REASONS: dict[str, str | None] = {
    # Finished.
    Reason.SUCCEEDED: _ESSENTIAL,
    Reason.ESSENTIAL_EXIT: _ESSENTIAL,
    Reason.RETRIES_EXHAUSTED: _ESSENTIAL,
    Reason.DEPENDENCY_FAILED: "Dependent Job failed",
    Reason.ATTEMPT_TIMEOUT: "Job attempt duration exceeded timeout",
    Reason.TERMINATED: None,  # the reason given to CancelJob/TerminateJob (status.message)
    Reason.ARRAY_CHILD_FAILED: None,  # names the failed indices (status.message)
    Reason.NO_COMPUTE_ENVIRONMENT_CAN_FIT: (
        "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT - The job resource requirement "
        "(vCPU/memory/GPU) is higher than that can be met by the CE(s) attached to the job queue."
    ),
    Reason.STATE_TIME_LIMIT: None,
    Reason.DEPENDENCY_CYCLE: None,
    Reason.INVALID_SPEC: None,
    Reason.QUEUE_NOT_ALLOWED: None,
    Reason.INTERRUPTED: None,
    # Waiting.
    Reason.INSUFFICIENT_CAPACITY: "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY",
    Reason.QUEUE_DISABLED: None,
    Reason.COMPUTE_ENVIRONMENT_DISABLED: None,
    Reason.COMPUTE_ENVIRONMENT_NOT_FOUND: None,
    Reason.COMPUTE_ENVIRONMENT_DELETED: None,
    Reason.WAITING_FOR_DEPENDENCIES: None,
    Reason.UNKNOWN_QUEUE: None,
    Reason.UNKNOWN_JOB_DEFINITION: None,
    Reason.PARALLELISM_LIMIT: None,
    Reason.WAITING_FOR_SHARE: None,
    Reason.BLOCKED_BY_QUEUE_HEAD: None,
    Reason.JOB_CREATE_FAILED: None,
    # Scheduling depth (#17): kubatch's own messages name the resource or the preemptor.
    Reason.CONSUMABLE_UNAVAILABLE: None,
    Reason.GANG_START_TIMEOUT: _GANG,
    Reason.PREEMPTED: _PREEMPTED,
    Reason.PREEMPTING: None,
    Reason.BUDGET_EXCEEDED: None,  # kubatch only: the message says until when
}
"""kubatch reason -> AWS ``statusReason``; ``None``: kubatch's own message is shown."""


def status_reason(reason: str | None, message: str | None) -> str | None:
    """Pure: the AWS ``statusReason`` of a kubatch reason and message."""
    if not reason:
        return message or None
    text = STATUS_REASONS.get(reason)
    if text is None:
        return message or reason
    if reason in _WITH_MESSAGE and message:
        return f"{text} - {message}"
    return text


def aws_status(phase: str | None) -> str:
    """Pure: ``Running`` -> ``RUNNING``; no phase yet -> ``SUBMITTED``."""
    try:
        return str(Phase(phase)).upper() if phase else "SUBMITTED"
    except ValueError:
        return "SUBMITTED"


# --------------------------------------------------------------------------- submit


def container_overrides(co: Reader, style: str) -> JsonDict:
    """Pure: kubatch ``ContainerOverrides`` of AWS ``containerOverrides``."""
    out: JsonDict = {}
    co.only(("vcpus", "memory", "command", "instanceType", "environment", "resourceRequirements"))
    co.string("instanceType", max_len=256)  # multi-node only on AWS: no effect
    command = co.strings("command", max_items=1000)
    if command is not None:
        out["args" if style == "container" else "command"] = command
    env = pods.environment(co.structs("environment", max_items=1000))
    if env:
        out["env"] = env
    requests, limits = pods.resource_requirements(co)
    resources = {k: v for k, v in (("requests", requests), ("limits", limits)) if v}
    if resources:
        out["resources"] = resources
    return out


def eks_overrides(eo: Reader, first_container: str) -> JsonDict:
    """Pure: kubatch ``ContainerOverrides`` of AWS ``eksPropertiesOverride``."""
    out: JsonDict = {}
    eo.only(("podProperties",))
    pp = eo.struct("podProperties")
    if pp is None:
        return out
    pp.only(("containers", "initContainers", "metadata"))
    for key in ("initContainers", "metadata"):
        if pp.has(key):
            raise not_supported(pp.field(key), "only the first container is overridden")
    for c in pp.structs("containers", max_items=1) or []:
        c.only(("name", "image", "command", "args", "env", "resources"))
        name = c.string("name", max_len=63)
        if name is not None and name != first_container:
            raise not_supported(
                f"{c.field('name')} {name!r}",
                f"only the first container ({first_container!r}) is overridden",
            )
        if c.has("image"):
            raise not_supported(c.field("image"), "register a new revision instead")
        for key in ("command", "args"):
            values = c.strings(key, max_items=1000)
            if values is not None:
                out[key] = values
        env = pods.environment(c.structs("env", max_items=1000))
        if env:
            out["env"] = env
        res = c.struct("resources")
        if res is not None:
            res.only(("limits", "requests"))
            view = eks.container(Reader({"image": "x", "resources": dict(res.data)}, c.path), 0)
            if view.get("resources"):
                out["resources"] = view["resources"]
    return out


def _one_override(r: Reader, style: str, first_container: str) -> JsonDict:
    co, eo = r.struct("containerOverrides"), r.struct("eksPropertiesOverride")
    if co is not None and eo is not None:
        raise ClientError(
            f"{r.path + ': ' if r.path else ''}give containerOverrides or eksPropertiesOverride, "
            "not both"
        )
    if co is not None:
        return container_overrides(co, style)
    if eo is not None:
        return eks_overrides(eo, first_container)
    return {}


def overrides(body: Reader, style: str, first_container: str) -> JsonDict:
    """Pure: kubatch ``spec.overrides`` from ``containerOverrides``/``eksPropertiesOverride``."""
    if body.has("ecsPropertiesOverride"):
        raise not_supported("ecsPropertiesOverride")
    return _one_override(body, style, first_container)


NODE_OVERRIDE_FIELDS = (
    "targetNodes",
    "containerOverrides",
    "ecsPropertiesOverride",
    "instanceTypes",
    "eksPropertiesOverride",
    "consumableResourcePropertiesOverride",
)


def node_overrides(no: Reader, style: str, first_container: str) -> JsonDict:
    """Pure: kubatch ``spec.nodeOverrides`` of AWS ``nodeOverrides`` (the ranges are checked
    against the definition by kubatch's validation)."""
    no.only(("numNodes", "nodePropertyOverrides"))
    out: JsonDict = {}
    num = no.integer("numNodes", lo=1, hi=MAX_NODES)
    if num is not None:
        out["numNodes"] = num
    items = []
    for o in no.structs("nodePropertyOverrides", max_items=MAX_NODES) or []:
        o.only(NODE_OVERRIDE_FIELDS)
        for key in ("ecsPropertiesOverride", "consumableResourcePropertiesOverride"):
            if o.has(key):
                raise not_supported(
                    o.field(key),
                    "kubatch takes consumable resources per job: give "
                    "consumableResourcePropertiesOverride at the top level"
                    if key.startswith("consumable")
                    else "",
                )
        o.strings("instanceTypes", max_items=100, max_len=256)  # no effect
        item: JsonDict = {"targetNodes": o.req_str("targetNodes", max_len=16)}
        ov = _one_override(o, style, first_container)
        if ov:
            item["containerOverrides"] = ov
        items.append(item)
    if items:
        out["nodePropertyOverrides"] = items
    return out


def depends_on(body: Reader, region: str, account: str) -> list[JsonDict]:
    """Pure: kubatch ``dependsOn`` (by BatchJob name) from AWS ``[{jobId, type}]``."""
    out: list[JsonDict] = []
    for d in body.structs("dependsOn", max_items=1000) or []:
        d.only(("jobId", "type"))
        kind = d.string("type", enum=("N_TO_N", "SEQUENTIAL"))
        job_id = d.string("jobId", max_len=2048)
        item: JsonDict = {}
        if kind:
            item["type"] = kind
        if job_id is not None:
            ref = names.parse_job_id(job_id, region, account)
            if ref is None:
                raise ClientError(f"{d.field('jobId')}: {job_id[:200]!r} is not a job id of yours")
            if ref.index is not None or ref.node is not None:
                raise not_supported(
                    f"{d.field('jobId')}: a dependency on one child or node of a job "
                    f"({job_id[:200]})",
                    "depend on the job itself (an array: with type N_TO_N for child-to-child)",
                )
            item["jobName"] = ref.name
        elif kind != "SEQUENTIAL":
            raise ClientError(f"{d.field('jobId')} is required unless type is SEQUENTIAL")
        out.append(item)
    return out


def build(
    body: Reader,
    *,
    job_id: str,
    namespace: str,
    queue: str,
    definition: JsonDict,
    region: str,
    account: str,
    now_ms: int,
) -> JsonDict:
    """Pure: the BatchJob manifest of a SubmitJob (queue and definition already resolved)."""
    body.only(SUBMIT_FIELDS)
    job_name = body.req_str("jobName", pattern=names.JOB_NAME, what=names.JOB_NAME_RULE)
    style = ((definition.get("metadata") or {}).get("annotations") or {}).get(names.STYLE) or "eks"
    dspec = definition.get("spec") or {}
    ranges = (dspec.get("nodeProperties") or {}).get("nodeRangeProperties") or [{}]
    template = dspec.get("template") or ranges[0].get("template") or {}
    containers = (template.get("spec") or {}).get("containers") or [{}]
    first = str(containers[0].get("name", "")) if isinstance(containers[0], dict) else ""
    spec: JsonDict = {
        "jobQueue": queue,
        "jobDefinition": (definition.get("metadata") or {}).get("name"),
    }
    params = body.str_map("parameters", max_items=1000, max_key=256)
    if params:
        spec["parameters"] = params
    multinode = (definition.get("spec") or {}).get("type") == "multinode"
    if multinode and (body.has("containerOverrides") or body.has("eksPropertiesOverride")):
        raise ClientError(
            "a multi-node job takes its overrides in nodeOverrides.nodePropertyOverrides, not "
            "in containerOverrides or eksPropertiesOverride"
        )
    ov = overrides(body, style, first)
    if ov:
        spec["overrides"] = ov
    no = body.struct("nodeOverrides")
    if no is not None:
        if not multinode:
            raise ClientError("nodeOverrides: the job definition is not of type multinode")
        node_ov = node_overrides(no, style, first)
        if node_ov:
            spec["nodeOverrides"] = node_ov
    consumable = consumables.requirements(body.struct("consumableResourcePropertiesOverride"))
    if consumable is not None:
        spec["consumableResourcePropertiesOverride"] = consumable[0]
    rs = definitions.retry_strategy(body.struct("retryStrategy"))
    if rs:
        spec["retryStrategy"] = rs
    to = definitions.timeout(body.struct("timeout"))
    if to:
        spec["timeout"] = to
    priority = body.integer("schedulingPriorityOverride", lo=0, hi=9999)
    if priority is not None:
        spec["schedulingPriorityOverride"] = priority
    share = body.string("shareIdentifier", max_len=255, min_len=1)
    if share is not None:
        spec["shareIdentifier"] = share
    ap = body.struct("arrayProperties")
    if ap is not None:
        ap.only(("size",))
        size = ap.integer("size", lo=2, hi=10_000)
        if size is not None:
            spec["arrayProperties"] = {"size": size}
    deps = depends_on(body, region, account)
    if deps:
        spec["dependsOn"] = deps
    annotations = {
        names.NAME: job_name,
        names.DEFINITION: f"{names.aws_name(definition)}:{definitions.revision_of(definition)}",
        names.CREATED_AT: str(now_ms),
        names.STYLE: style,
    }
    tags = definitions.tags(body)
    if tags:
        annotations[names.TAGS] = json.dumps(tags, sort_keys=True)
    # The AWS names of its consumable resources: the override's, else the definition's.
    aws_names = consumables.read_names(definition)
    if consumable is not None:
        aws_names = json.loads(consumables.names_annotation(consumable[1]))
    if aws_names:
        annotations[consumables.CONSUMABLE_NAMES] = json.dumps(aws_names, sort_keys=True)
    propagate = body.boolean("propagateTags")
    if propagate is not None:
        annotations[names.AWS] = json.dumps({"propagateTags": propagate})
    return {
        "apiVersion": API_VERSION,
        "kind": "BatchJob",
        "metadata": {"name": job_id, "namespace": namespace, "annotations": annotations},
        "spec": spec,
    }


def missing_resources(template: Mapping[str, Any]) -> list[str]:
    """Pure: which of vCPU and memory the containers of a resolved template do not request
    (limits stand in for missing requests, as in Kubernetes and kubatch's sizing)."""
    try:
        size = sum_requests((template.get("spec") or {}).get("containers") or [])
    except QuantityError:
        return []  # the semantic validation names the bad quantity
    return [what for what, amount in (("vCPU", size.mcpu), ("memory", size.memory)) if amount <= 0]


# --------------------------------------------------------------------------- views


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


def _ann(obj: Mapping[str, Any]) -> Mapping[str, str]:
    return _meta(obj).get("annotations") or {}


def _ms(value: Any) -> int | None:
    if isinstance(value, str) and value:
        from datetime import datetime

        try:
            return epoch_ms(datetime.fromisoformat(value.replace("Z", "+00:00")))
        except ValueError:
            return None
    return None


def created_ms(obj: Mapping[str, Any]) -> int:
    """Pure: submission time in epoch ms (API annotation, else creationTimestamp)."""
    raw = _ann(obj).get(names.CREATED_AT)
    if raw and raw.isdigit():
        return int(raw)
    return _ms(_meta(obj).get("creationTimestamp")) or 0


def job_name(obj: Mapping[str, Any]) -> str:
    return str(_ann(obj).get(names.NAME) or _meta(obj).get("name", ""))


def definition_ref(obj: Mapping[str, Any]) -> str:
    """Pure: AWS ``name:revision`` of the definition a job uses."""
    recorded = _ann(obj).get(names.DEFINITION)
    if recorded:
        return recorded
    spec = obj.get("spec") or {}
    gen = ((obj.get("status") or {}).get("jobDefinition") or {}).get("generation") or 1
    return f"{spec.get('jobDefinition', '')}:{gen}"


def job_arn(ref: JobRef | str, region: str, account: str) -> str:
    return str(Arn(region, account, "job", str(ref)))


def stopped_by(obj: Mapping[str, Any]) -> tuple[bool, bool]:
    """Pure: (isCancelled, isTerminated)."""
    how = _ann(obj).get(names.STOPPED)
    if how == "CancelJob":
        return True, False
    if how == "TerminateJob" or (obj.get("spec") or {}).get("terminate"):
        return False, True
    return False, False


_HOST = re.compile(r"node (\S+) was reclaimed")


def attempt_reason(attempt: Mapping[str, Any]) -> str | None:
    """Pure: an attempt's AWS statusReason (a reclaimed node reads as AWS's host message)."""
    released = STATUS_REASONS.get(str(attempt.get("reason") or ""))
    if attempt.get("reason") in (Reason.GANG_START_TIMEOUT, Reason.PREEMPTED) and released:
        return released
    if attempt.get("interrupted"):
        return f"Host EC2 (instance {attempt.get('nodeName') or 'unknown'}) terminated."
    if attempt.get("reason") == "DeadlineExceeded":
        return "Job attempt duration exceeded timeout"
    text = attempt.get("statusReason")
    if text:
        return str(text)
    code = attempt.get("exitCode")
    return _ESSENTIAL if code is not None else None


def attempts_view(
    attempts: Sequence[Mapping[str, Any]], namespace: str, container: str
) -> tuple[list[JsonDict], list[JsonDict]]:
    """Pure: (``attempts``, ``eksAttempts``) of the finished attempts."""
    ecs: list[JsonDict] = []
    eks_out: list[JsonDict] = []
    for a in attempts:
        stopped = _ms(a.get("stoppedAt"))
        if stopped is None:
            continue
        started = _ms(a.get("startedAt"))
        reason = attempt_reason(a)
        detail: JsonDict = {}
        if isinstance(a.get("exitCode"), int):
            detail["exitCode"] = a["exitCode"]
        if a.get("reason"):
            detail["reason"] = str(a["reason"])
        ecs.append(
            {
                "container": detail,
                "startedAt": started,
                "stoppedAt": stopped,
                "statusReason": reason,
            }
        )
        eks_out.append(
            {
                "containers": [{"name": container, **detail}],
                "podName": a.get("podName"),
                "podNamespace": namespace,
                "nodeName": a.get("nodeName"),
                "startedAt": started,
                "stoppedAt": stopped,
                "statusReason": reason,
            }
        )
    return ecs, eks_out
