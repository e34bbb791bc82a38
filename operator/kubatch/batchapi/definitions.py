"""Job definitions: RegisterJobDefinition -> a JobDefinition revision object, and back.

Pure. AWS keeps every revision of a job definition (``name:3``); kubatch's operator resolves
``spec.jobDefinition`` by object name and records the definition a job was submitted with. So
each revision registered through the API is its own, never-edited JobDefinition object
``<kube name>.<revision>`` labelled with the name and the revision; a job submitted with
``name`` or ``name:N`` names exactly that object, which later registrations do not change.
Deregistering marks the revision ``INACTIVE`` (an annotation): it stays for the jobs that use
it and for DescribeJobDefinitions, as on AWS. A JobDefinition written with kubectl (no
revision label) is shown as revision ``metadata.generation`` of its name.

The registered document (``containerProperties`` or ``eksProperties`` and the AWS-only
members) is kept in an annotation and returned unchanged; retries, timeout, parameters and
priority are read back from the spec, the source of truth.
"""

from __future__ import annotations

import json
import re
from typing import Any

from kubatch.api.models import API_VERSION
from kubatch.batchapi import consumables, eks, names, nodes, pods
from kubatch.batchapi.errors import ClientError, not_supported, prune
from kubatch.batchapi.names import Arn
from kubatch.batchapi.reader import Reader

JsonDict = dict[str, Any]
ACTIVE, INACTIVE = "ACTIVE", "INACTIVE"
REGISTER_FIELDS = (
    "jobDefinitionName",
    "type",
    "parameters",
    "schedulingPriority",
    "containerProperties",
    "nodeProperties",
    "retryStrategy",
    "propagateTags",
    "timeout",
    "tags",
    "platformCapabilities",
    "eksProperties",
    "ecsProperties",
    "consumableResourceProperties",
)
_EXIT_CODE = r"([0-9]+\*?|\*)"


def retry_strategy(r: Reader | None) -> JsonDict | None:
    """Pure: AWS ``retryStrategy`` -> kubatch's (actions case-insensitive in both)."""
    if r is None:
        return None
    r.only(("attempts", "evaluateOnExit"))
    out: JsonDict = {}
    attempts = r.integer("attempts", lo=1, hi=10)
    if attempts is not None:
        out["attempts"] = attempts
    rules = []
    for rule in r.structs("evaluateOnExit", max_items=5) or []:
        rule.only(("onStatusReason", "onReason", "onExitCode", "action"))
        item: JsonDict = {
            "action": rule.req_str(
                "action", enum=("RETRY", "EXIT", "retry", "exit", "Retry", "Exit")
            ).capitalize()
        }
        code = rule.string(
            "onExitCode",
            max_len=512,
            pattern=re.compile(_EXIT_CODE),
            what="digits, optionally ending with *",
        )
        if code is not None:
            item["onExitCode"] = code
        for key in ("onReason", "onStatusReason"):
            value = rule.string(key, max_len=512)
            if value is not None:
                item[key] = value
        if len(item) == 1:
            raise ClientError(f"{rule.path}: give onExitCode, onReason or onStatusReason")
        rules.append(item)
    if rules:
        out["evaluateOnExit"] = rules
    return out


def timeout(r: Reader | None) -> JsonDict | None:
    if r is None:
        return None
    r.only(("attemptDurationSeconds",))
    seconds = r.integer("attemptDurationSeconds", lo=60, hi=10**9)
    return None if seconds is None else {"attemptDurationSeconds": seconds}


def tags(r: Reader, key: str = "tags") -> dict[str, str] | None:
    """Pure: checked AWS tags (at most 50; ``aws:`` keys are reserved)."""
    values = r.str_map(key, max_items=50, max_key=128, max_value=256)
    for k in values or {}:
        if k.lower().startswith("aws:"):
            raise ClientError(f"{r.field(key)}: tag keys starting with 'aws:' are reserved")
    return values


def build(body: Reader, namespace: str, revision: int) -> JsonDict:
    """Pure: the JobDefinition manifest of revision ``revision`` of a registration."""
    body.only(REGISTER_FIELDS)
    name = body.req_str("jobDefinitionName", pattern=names.AWS_NAME, what=names.NAME_RULE)
    kind = body.req_str("type", enum=("container", "multinode"))
    if body.has("ecsProperties"):
        raise not_supported("ecsProperties", "use containerProperties or eksProperties")
    cp, ep = body.struct("containerProperties"), body.struct("eksProperties")
    spec: JsonDict = {}
    properties: JsonDict
    if kind == "multinode":
        np = body.struct("nodeProperties", required=True)
        assert np is not None
        if cp is not None or ep is not None:
            raise ClientError(
                "a multinode job definition gives its containers in nodeProperties."
                "nodeRangeProperties (container or eksProperties), not in containerProperties "
                "or eksProperties"
            )
        spec["type"] = "multinode"
        spec["nodeProperties"], style = nodes.node_properties(np, namespace)
        properties = {"nodeProperties": dict(np.data)}
    else:
        if body.has("nodeProperties"):
            raise ClientError("nodeProperties: allowed only with type multinode")
        if (cp is None) == (ep is None):
            raise ClientError("give exactly one of containerProperties and eksProperties")
        if cp is not None:
            spec["template"], style = pods.container_template(cp), "container"
            properties = dict(cp.data)
        else:
            assert ep is not None
            spec["template"], style = eks.pod_template(ep, namespace), "eks"
            properties = dict(ep.data)
    consumable = consumables.requirements(body.struct("consumableResourceProperties"))
    if consumable is not None and consumable[0]["consumableResourceList"]:
        spec["consumableResourceProperties"] = consumable[0]
    platforms = body.strings(
        "platformCapabilities", max_items=3, enum=("EC2", "FARGATE", "MANAGED_INSTANCES")
    )
    params = body.str_map("parameters", max_items=1000, max_key=256)
    if params:
        spec["parameters"] = params
    rs = retry_strategy(body.struct("retryStrategy"))
    if rs:
        spec["retryStrategy"] = rs
    to = timeout(body.struct("timeout"))
    if to:
        spec["timeout"] = to
    priority = body.integer("schedulingPriority", lo=0, hi=9999)
    if priority is not None:
        spec["schedulingPriority"] = priority
    document = {
        "style": style,
        "properties": properties,
        "platformCapabilities": platforms,
        "propagateTags": body.boolean("propagateTags"),
    }
    annotations = {
        names.NAME: name,
        names.STATUS: ACTIVE,
        names.STYLE: style,
        names.PROPERTIES: json.dumps(prune(document), separators=(",", ":"), sort_keys=True),
    }
    tag_values = tags(body)
    if tag_values:
        annotations[names.TAGS] = json.dumps(tag_values, sort_keys=True)
    if consumable is not None and consumable[1]:
        annotations[consumables.CONSUMABLE_NAMES] = consumables.names_annotation(consumable[1])
    return {
        "apiVersion": API_VERSION,
        "kind": "JobDefinition",
        "metadata": {
            "name": names.revision_object(name, revision),
            "namespace": namespace,
            "labels": {
                names.DEFINITION_LABEL: names.kube_name(name),
                names.REVISION_LABEL: str(revision),
            },
            "annotations": annotations,
        },
        "spec": spec,
    }


# --------------------------------------------------------------------------- views


def revision_of(obj: JsonDict) -> int:
    """Pure: the AWS revision of a JobDefinition object."""
    meta = obj.get("metadata") or {}
    label = (meta.get("labels") or {}).get(names.REVISION_LABEL)
    if label and str(label).isdigit():
        return int(label)
    return int(meta.get("generation") or 1)


def status_of(obj: JsonDict) -> str:
    ann = (obj.get("metadata") or {}).get("annotations") or {}
    return INACTIVE if ann.get(names.STATUS) == INACTIVE else ACTIVE


def is_revision_object(obj: JsonDict) -> bool:
    return names.REVISION_LABEL in ((obj.get("metadata") or {}).get("labels") or {})


def read_tags(obj: JsonDict) -> dict[str, str]:
    """Pure: the AWS tags kept on an object."""
    raw = ((obj.get("metadata") or {}).get("annotations") or {}).get(names.TAGS)
    try:
        value = json.loads(raw) if raw else {}
    except json.JSONDecodeError:
        return {}
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}


def document_of(obj: JsonDict) -> JsonDict:
    raw = ((obj.get("metadata") or {}).get("annotations") or {}).get(names.PROPERTIES)
    try:
        doc = json.loads(raw) if raw else {}
    except json.JSONDecodeError:
        doc = {}
    return doc if isinstance(doc, dict) else {}


def retry_view(rs: Any) -> JsonDict | None:
    if not isinstance(rs, dict):
        return None
    out: JsonDict = {}
    if isinstance(rs.get("attempts"), int):
        out["attempts"] = rs["attempts"]
    rules = []
    for rule in rs.get("evaluateOnExit") or []:
        if isinstance(rule, dict):
            item = {
                k: str(rule[k]) for k in ("onStatusReason", "onReason", "onExitCode") if rule.get(k)
            }
            item["action"] = str(rule.get("action", "")).upper()
            rules.append(item)
    if rules:
        out["evaluateOnExit"] = rules
    return out


def arn(obj: JsonDict, region: str, account: str) -> str:
    return str(Arn(region, account, "job-definition", f"{names.aws_name(obj)}:{revision_of(obj)}"))


def view(obj: JsonDict, region: str, account: str) -> JsonDict:
    """Pure: the AWS ``JobDefinition`` shape of a JobDefinition object."""
    spec = obj.get("spec") or {}
    template = spec.get("template") or {}
    doc = document_of(obj)
    style = doc.get("style") or "eks"
    out: JsonDict = {
        "jobDefinitionName": names.aws_name(obj),
        "jobDefinitionArn": arn(obj, region, account),
        "revision": revision_of(obj),
        "status": status_of(obj),
        "type": "multinode" if spec.get("type") == "multinode" else "container",
        "parameters": dict(spec.get("parameters") or {}),
        "tags": read_tags(obj),
        "platformCapabilities": doc.get("platformCapabilities") or ["EC2"],
        "containerOrchestrationType": "ECS" if style == "container" else "EKS",
    }
    if isinstance(spec.get("schedulingPriority"), int):
        out["schedulingPriority"] = spec["schedulingPriority"]
    retry = retry_view(spec.get("retryStrategy"))
    if retry is not None:
        out["retryStrategy"] = retry
    to = spec.get("timeout") or {}
    if isinstance(to, dict) and isinstance(to.get("attemptDurationSeconds"), int):
        out["timeout"] = {"attemptDurationSeconds": to["attemptDurationSeconds"]}
    if doc.get("propagateTags") is not None:
        out["propagateTags"] = bool(doc["propagateTags"])
    consumable = consumables.properties_view(
        spec.get("consumableResourceProperties"), consumables.read_names(obj)
    )
    if consumable is not None:
        out["consumableResourceProperties"] = consumable
    properties = doc.get("properties")
    if out["type"] == "multinode":
        np = (
            nodes.registered_view(properties) if isinstance(properties, dict) else None
        ) or nodes.spec_view(spec, style)
        if np is not None:
            out["nodeProperties"] = np
    elif style == "container":
        out["containerProperties"] = pods.with_defaults(
            properties if isinstance(properties, dict) else pods.template_container(template)
        )
    else:
        out["eksProperties"] = (
            properties
            if isinstance(properties, dict)
            else {"podProperties": eks.pod_properties(template)}
        )
    return out
