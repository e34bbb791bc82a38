"""Job queues and compute environments: AWS shapes <-> kubatch's JobQueue and
ComputeEnvironment.

Pure. Enumerations change spelling (``SPOT`` <-> ``Spot``, ``BEST_FIT`` <-> ``BestFit``,
``ENABLED`` <-> ``Enabled``); AWS members that configure only AWS infrastructure (subnets,
security groups, roles, key pairs, images) are kept in an annotation and returned unchanged;
structured AWS-only members (launch templates, EKS and ECS settings) are accepted and ignored.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from kubatch.api.models import API_VERSION
from kubatch.batchapi import definitions, names
from kubatch.batchapi.errors import ClientError, not_supported, prune
from kubatch.batchapi.names import Arn
from kubatch.batchapi.reader import Reader

JsonDict = dict[str, Any]

STATE = {"ENABLED": "Enabled", "DISABLED": "Disabled"}
CAPACITY = {"EC2": "OnDemand", "SPOT": "Spot"}
STRATEGY = {
    "BEST_FIT": "BestFit",
    "BEST_FIT_PROGRESSIVE": "BestFitProgressive",
    "SPOT_CAPACITY_OPTIMIZED": "SpotCapacityOptimized",
    "SPOT_PRICE_CAPACITY_OPTIMIZED": "SpotPriceCapacityOptimized",
}
TIME_LIMIT_REASONS = {
    "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY": "InsufficientCapacity",
    "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT": "NoComputeEnvironmentCanFit",
    "MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE": "NoComputeEnvironmentCanFit",
}
_REASON_BACK = {
    "InsufficientCapacity": "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY",
    "NoComputeEnvironmentCanFit": "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT",
}
KEPT_STRINGS = ("ec2KeyPair", "instanceRole", "placementGroup", "spotIamFleetRole", "imageId")
KEPT_LISTS = ("subnets", "securityGroupIds")
IGNORED_STRUCTS = ("launchTemplate", "scalingPolicy", "managedInstancesProvider")


def _back(table: Mapping[str, str], value: Any) -> str | None:
    for k, v in table.items():
        if v == value:
            return k
    return None


def _status(obj: Mapping[str, Any]) -> tuple[str, str | None]:
    """Pure: AWS ``status`` and ``statusReason`` from the ``Ready`` condition."""
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready":
            ok = c.get("status") == "True"
            return ("VALID" if ok else "INVALID"), (c.get("message") or c.get("reason"))
    return "CREATING", "waiting for the kubatch operator"


def _kept(obj: Mapping[str, Any]) -> JsonDict:
    raw = ((obj.get("metadata") or {}).get("annotations") or {}).get(names.AWS)
    try:
        value = json.loads(raw) if raw else {}
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def _annotations(name: str, tags: dict[str, str] | None, kept: JsonDict) -> dict[str, str]:
    out = {names.NAME: name}
    if tags:
        out[names.TAGS] = json.dumps(tags, sort_keys=True)
    if kept:
        out[names.AWS] = json.dumps(kept, sort_keys=True, separators=(",", ":"))
    return out


# --------------------------------------------------------------------------- job queues


def time_limit_actions(r: Reader, key: str = "jobStateTimeLimitActions") -> list[JsonDict] | None:
    items = r.structs(key, max_items=5)
    if items is None:
        return None
    out = []
    for a in items:
        a.only(("reason", "state", "maxTimeSeconds", "action"))
        a.req_str("state", enum=("RUNNABLE",))
        reason = a.req_str("reason", max_len=256)
        if reason not in TIME_LIMIT_REASONS:
            raise ClientError(
                f"{a.field('reason')}: {reason[:80]!r} is not one of "
                + ", ".join(sorted(TIME_LIMIT_REASONS))
            )
        a.req_str("action", enum=("CANCEL", "TERMINATE"))
        seconds = a.integer("maxTimeSeconds", required=True, lo=600, hi=86400)
        out.append(
            {
                "state": "Runnable",
                "reason": TIME_LIMIT_REASONS[reason],
                "maxTimeSeconds": seconds,
                "action": "Cancel",
            }
        )
    return out


def queue_order(r: Reader, resolve: Any) -> list[JsonDict] | None:
    """``computeEnvironmentOrder`` with each CE name or ARN resolved by ``resolve(text, where)``
    to its Kubernetes name."""
    items = r.structs("computeEnvironmentOrder", max_items=10)
    if items is None:
        return None
    out = []
    for o in items:
        o.only(("order", "computeEnvironment"))
        order = o.integer("order", required=True, lo=0, hi=10**6)
        ce = o.req_str("computeEnvironment", max_len=2048)
        out.append(
            {"order": order, "computeEnvironment": resolve(ce, o.field("computeEnvironment"))}
        )
    return out


def queue_spec(r: Reader, resolve: Any, *, create: bool) -> JsonDict:
    """Pure (``resolve`` aside): the JobQueue spec (create) or spec patch (update)."""
    for key in ("schedulingPolicyArn", "serviceEnvironmentOrder"):
        if r.has(key):
            raise not_supported(
                key,
                "set spec.schedulingPolicy of the JobQueue with kubectl"
                if key == "schedulingPolicyArn"
                else "",
            )
    r.string(
        "jobQueueType",
        enum=("EKS", "ECS", "ECS_FARGATE", "SAGEMAKER_TRAINING", "ECS_MANAGED_INSTANCES"),
    )
    spec: JsonDict = {}
    state = r.string("state", enum=tuple(STATE))
    if state:
        spec["state"] = STATE[state]
    priority = r.integer("priority", required=create, lo=0, hi=1000)
    if priority is not None:
        spec["priority"] = priority
    order = queue_order(r, resolve)
    if order is not None:
        if not order:
            raise ClientError("computeEnvironmentOrder needs at least one compute environment")
        spec["computeEnvironmentOrder"] = order
    elif create:
        raise ClientError("computeEnvironmentOrder is required")
    actions = time_limit_actions(r)
    if actions is not None:
        spec["jobStateTimeLimitActions"] = actions
    return spec


def queue_manifest(r: Reader, name: str, resolve: Any) -> JsonDict:
    r.only(
        (
            "jobQueueName",
            "state",
            "schedulingPolicyArn",
            "priority",
            "computeEnvironmentOrder",
            "serviceEnvironmentOrder",
            "jobQueueType",
            "tags",
            "jobStateTimeLimitActions",
        )
    )
    spec = queue_spec(r, resolve, create=True)
    tags = definitions.tags(r)
    return {
        "apiVersion": API_VERSION,
        "kind": "JobQueue",
        "metadata": {"name": names.kube_name(name), "annotations": _annotations(name, tags, {})},
        "spec": spec,
    }


def queue_view(
    obj: Mapping[str, Any], region: str, account: str, ce_names: Mapping[str, str]
) -> JsonDict:
    spec = obj.get("spec") or {}
    name = names.aws_name(obj)
    status, reason = _status(obj)
    order = [
        {
            "order": int(o.get("order", 0)),
            "computeEnvironment": str(
                Arn(
                    region,
                    account,
                    "compute-environment",
                    ce_names.get(
                        str(o.get("computeEnvironment")), str(o.get("computeEnvironment"))
                    ),
                )
            ),
        }
        for o in spec.get("computeEnvironmentOrder") or []
        if isinstance(o, dict)
    ]
    actions = []
    for a in spec.get("jobStateTimeLimitActions") or []:
        reason_back = _REASON_BACK.get(str(a.get("reason")))
        if a.get("state") == "Runnable" and a.get("action") == "Cancel" and reason_back:
            actions.append(
                {
                    "reason": reason_back,
                    "state": "RUNNABLE",
                    "maxTimeSeconds": int(a.get("maxTimeSeconds", 600)),
                    "action": "CANCEL",
                }
            )
    out: JsonDict = {
        "jobQueueName": name,
        "jobQueueArn": str(Arn(region, account, "job-queue", name)),
        "state": _back(STATE, spec.get("state", "Enabled")) or "ENABLED",
        "status": status,
        "statusReason": reason,
        "priority": int(spec.get("priority", 1)),
        "computeEnvironmentOrder": order,
        "tags": definitions.read_tags(dict(obj)),
        "jobStateTimeLimitActions": actions,
    }
    if spec.get("schedulingPolicy"):
        out["schedulingPolicyArn"] = str(Arn(region, account, "scheduling-policy", name))
    result: JsonDict = prune(out)
    return result


# --------------------------------------------------------------------------- compute environments


def _instance_types(r: Reader) -> list[str] | None:
    types = r.strings("instanceTypes", max_items=100, max_len=64)
    if types is None:
        return None
    out = []
    for t in types:
        if t == "optimal":
            continue
        if "." not in t:
            raise ClientError(
                f"{r.field('instanceTypes')}: {t!r} is a family; kubatch matches exact instance "
                "types (m5.large), or 'optimal' for any"
            )
        out.append(t)
    return out


def compute_resources(r: Reader, *, create: bool, kept: JsonDict) -> JsonDict:
    cr: JsonDict = {}
    kind = r.string(
        "type",
        required=create,
        enum=("EC2", "SPOT", "FARGATE", "FARGATE_SPOT", "ECS_MANAGED_INSTANCES"),
    )
    if kind is not None:
        if kind not in CAPACITY:
            raise not_supported(f"{r.field('type')} {kind}", "use EC2 (on-demand) or SPOT")
        cr["capacityType"] = CAPACITY[kind]
    strategy = r.string(
        "allocationStrategy",
        enum=(*STRATEGY, "BEST_FIT_PROGRESSIVE_ORDERED", "SPOT_CAPACITY_OPTIMIZED_PRIORITIZED"),
    )
    if strategy is not None:
        if strategy not in STRATEGY:
            raise not_supported(f"{r.field('allocationStrategy')} {strategy}")
        cr["allocationStrategy"] = STRATEGY[strategy]
    for aws, kube in (
        ("minvCpus", "minvCpus"),
        ("maxvCpus", "maxvCpus"),
        ("desiredvCpus", "desiredvCpus"),
    ):
        value = r.integer(aws, required=create and aws == "maxvCpus", lo=0, hi=10**7)
        if value is not None:
            cr[kube] = value
    bid = r.integer("bidPercentage", lo=0, hi=100)
    if bid:
        cr["bidPercentage"] = bid
    types = _instance_types(r)
    if types is not None:
        cr["instanceTypes"] = types
    for key in KEPT_STRINGS:
        text = r.string(key, max_len=2048)
        if text is not None:
            kept[key] = text
    for key in KEPT_LISTS:
        values = r.strings(key, max_items=64, max_len=256)
        if values is not None:
            kept[key] = values
    cr_tags = r.str_map("tags", max_items=50, max_key=128, max_value=256)
    if cr_tags is not None:
        kept["tags"] = cr_tags
    for key in (*IGNORED_STRUCTS, "capacityTags"):
        r.struct(key)
    for e in r.structs("ec2Configuration", max_items=2) or []:
        e.req_str("imageType", max_len=256)
    r.boolean("updateToLatestImageVersion")
    return cr


CE_FIELDS = (
    "computeEnvironmentName",
    "type",
    "state",
    "unmanagedvCpus",
    "computeResources",
    "serviceRole",
    "tags",
    "eksConfiguration",
    "context",
    "ecsSettings",
)


def ce_manifest(r: Reader, name: str) -> JsonDict:
    r.only(CE_FIELDS)
    kind = r.req_str("type", enum=("MANAGED", "UNMANAGED"))
    kept: JsonDict = {}
    spec: JsonDict = {"type": kind.capitalize()}
    state = r.string("state", enum=tuple(STATE))
    if state:
        spec["state"] = STATE[state]
    cr = r.struct("computeResources")
    if kind == "MANAGED" and cr is None:
        raise ClientError("computeResources is required for a MANAGED compute environment")
    if cr is not None:
        cr.only(
            (
                "type",
                "allocationStrategy",
                "minvCpus",
                "maxvCpus",
                "desiredvCpus",
                "instanceTypes",
                "imageId",
                "subnets",
                "securityGroupIds",
                "ec2KeyPair",
                "instanceRole",
                "tags",
                "placementGroup",
                "bidPercentage",
                "spotIamFleetRole",
                "launchTemplate",
                "ec2Configuration",
                "scalingPolicy",
                "managedInstancesProvider",
                "capacityTags",
            )
        )
        cr_kept: JsonDict = {}
        spec["computeResources"] = compute_resources(cr, create=True, kept=cr_kept)
        if cr_kept:
            kept["computeResources"] = cr_kept
    _top_level(r, kept)
    tags = definitions.tags(r)
    return {
        "apiVersion": API_VERSION,
        "kind": "ComputeEnvironment",
        "metadata": {"name": names.kube_name(name), "annotations": _annotations(name, tags, kept)},
        "spec": spec,
    }


def _top_level(r: Reader, kept: JsonDict) -> None:
    for key in ("serviceRole", "context"):
        value = r.string(key, max_len=2048)
        if value is not None:
            kept[key] = value
    unmanaged = r.integer("unmanagedvCpus", lo=0, hi=10**7)
    if unmanaged is not None:
        kept["unmanagedvCpus"] = unmanaged
    for key in ("eksConfiguration", "ecsSettings", "updatePolicy"):
        r.struct(key)


def ce_update(r: Reader, current: Mapping[str, Any]) -> tuple[JsonDict, JsonDict]:
    """Pure: (spec patch, kept AWS members) of UpdateComputeEnvironment."""
    r.only(
        (
            "computeEnvironment",
            "state",
            "unmanagedvCpus",
            "computeResources",
            "serviceRole",
            "updatePolicy",
            "context",
            "ecsSettings",
            "eksConfiguration",
        )
    )
    kept = _kept(current)
    patch: JsonDict = {}
    state = r.string("state", enum=tuple(STATE))
    if state:
        patch["state"] = STATE[state]
    cr = r.struct("computeResources")
    if cr is not None:
        cr.only(
            (
                "minvCpus",
                "maxvCpus",
                "desiredvCpus",
                "subnets",
                "securityGroupIds",
                "allocationStrategy",
                "instanceTypes",
                "ec2KeyPair",
                "instanceRole",
                "tags",
                "placementGroup",
                "bidPercentage",
                "launchTemplate",
                "ec2Configuration",
                "updateToLatestImageVersion",
                "type",
                "imageId",
                "scalingPolicy",
                "managedInstancesProvider",
                "capacityTags",
            )
        )
        cr_kept: JsonDict = dict(kept.get("computeResources") or {})
        values = compute_resources(cr, create=False, kept=cr_kept)
        if values:
            patch["computeResources"] = values
        if cr_kept:
            kept["computeResources"] = cr_kept
    _top_level(r, kept)
    return patch, kept


def kept_annotation(kept: JsonDict) -> str:
    return json.dumps(kept, sort_keys=True, separators=(",", ":"))


def ce_view(obj: Mapping[str, Any], region: str, account: str) -> JsonDict:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    name = names.aws_name(obj)
    aws_status, reason = _status(obj)
    kept = _kept(obj)
    out: JsonDict = {
        "computeEnvironmentName": name,
        "computeEnvironmentArn": str(Arn(region, account, "compute-environment", name)),
        "type": str(spec.get("type", "Managed")).upper(),
        "state": _back(STATE, spec.get("state", "Enabled")) or "ENABLED",
        "status": aws_status,
        "statusReason": reason,
        "tags": definitions.read_tags(dict(obj)),
        "uuid": (obj.get("metadata") or {}).get("uid"),
        "containerOrchestrationType": "EKS",
        "serviceRole": kept.get("serviceRole"),
        "context": kept.get("context"),
        "unmanagedvCpus": kept.get("unmanagedvCpus"),
    }
    cr = spec.get("computeResources")
    if isinstance(cr, dict):
        desired = status.get("desiredvCpus", cr.get("desiredvCpus"))
        view: JsonDict = {
            "type": _back(CAPACITY, cr.get("capacityType", "OnDemand")) or "EC2",
            "allocationStrategy": _back(STRATEGY, cr.get("allocationStrategy", "BestFit")),
            "minvCpus": int(cr.get("minvCpus", 0)),
            "maxvCpus": int(cr.get("maxvCpus", 0)),
            "desiredvCpus": int(desired) if isinstance(desired, int | float) else None,
            "instanceTypes": list(cr.get("instanceTypes") or []) or ["optimal"],
            "bidPercentage": cr.get("bidPercentage"),
        }
        view.update(kept.get("computeResources") or {})
        out["computeResources"] = view
    result: JsonDict = prune(out)
    return result
