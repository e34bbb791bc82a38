"""Consumable resources in the AWS API: ``consumableResourceProperties`` <-> kubatch's, and a
``ConsumableResource`` object <-> AWS's shapes.

Pure. A consumable resource is cluster-scoped, like queues and compute environments: every key
sees them all, only admin keys create, update and delete them. Its AWS name follows the
queue's rules (kept when it is a Kubernetes name, else a hashed form plus the annotation).
Jobs and definitions name resources by AWS name or ARN; the spec holds the Kubernetes name,
the AWS names are kept in the object's annotation and shown back.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from kubatch.api.models import API_VERSION
from kubatch.batchapi import names
from kubatch.batchapi.errors import ClientError
from kubatch.batchapi.names import Arn
from kubatch.batchapi.reader import Reader

JsonDict = dict[str, Any]
TYPES = ("REPLENISHABLE", "NON_REPLENISHABLE")
MAX_QUANTITY = 2**53
"""kubatch's limit on quantities (JSON numbers stay exact)."""
OPERATIONS = ("SET", "ADD", "REMOVE")


def requirements(r: Reader | None) -> tuple[JsonDict, list[str]] | None:
    """Pure: (kubatch ``consumableResourceProperties``, the names or ARNs as given) of AWS
    ``consumableResourceProperties``; each resource at most once."""
    if r is None:
        return None
    r.only(("consumableResourceList",))
    items = r.structs("consumableResourceList", max_items=16) or []
    out: list[JsonDict] = []
    given: list[str] = []
    seen: set[str] = set()
    for it in items:
        it.only(("consumableResource", "quantity"))
        text = it.req_str("consumableResource", max_len=2048)
        aws = text
        if names.is_arn(text):
            arn = names.parse_arn(text, it.field("consumableResource"))
            if arn.kind != "consumable-resource":
                raise ClientError(
                    f"{it.field('consumableResource')}: {text[:200]!r} is not a consumable "
                    "resource ARN"
                )
            aws = arn.resource
        if not names.AWS_NAME.fullmatch(aws):
            raise ClientError(
                f"{it.field('consumableResource')}: {aws[:140]!r} is not a valid name "
                f"({names.NAME_RULE})"
            )
        if aws in seen:
            raise ClientError(f"{it.field('consumableResource')}: {aws!r} is listed twice")
        seen.add(aws)
        quantity = it.integer("quantity", required=True, lo=1, hi=MAX_QUANTITY)
        out.append({"consumableResource": names.kube_name(aws), "quantity": quantity})
        given.append(text)
    return {"consumableResourceList": out}, given


def aws_names(given: list[str]) -> list[str]:
    """Pure: the AWS names of names or ARNs already checked by :func:`requirements`."""
    return [names.parse_arn(t).resource if names.is_arn(t) else t for t in given]


def properties_view(props: Any, aws: Mapping[str, str] | None = None) -> JsonDict | None:
    """Pure: AWS ``consumableResourceProperties`` of kubatch's (``aws``: Kubernetes name ->
    AWS name, for names that differ)."""
    if not isinstance(props, dict):
        return None
    items = [
        {
            "consumableResource": (aws or {}).get(
                str(i.get("consumableResource")), str(i.get("consumableResource"))
            ),
            "quantity": int(i.get("quantity") or 0),
        }
        for i in props.get("consumableResourceList") or []
        if isinstance(i, dict)
    ]
    return {"consumableResourceList": items} if items else None


def names_annotation(given: list[str]) -> str:
    """Pure: the annotation mapping Kubernetes names to the AWS names a caller used."""
    mapping = {names.kube_name(a): a for a in aws_names(given)}
    return json.dumps(mapping, sort_keys=True, separators=(",", ":"))


def read_names(obj: Mapping[str, Any]) -> dict[str, str]:
    raw = ((obj.get("metadata") or {}).get("annotations") or {}).get(CONSUMABLE_NAMES)
    try:
        value = json.loads(raw) if raw else {}
    except json.JSONDecodeError:
        return {}
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}


CONSUMABLE_NAMES = f"{names.PREFIX}/consumable-names"
"""On a definition revision or a job: Kubernetes name -> AWS name of its consumable resources."""


# --------------------------------------------------------------------------- the kind


def manifest(r: Reader, name: str, tags: dict[str, str] | None, now_ms: int) -> JsonDict:
    """Pure: the ConsumableResource of a CreateConsumableResource."""
    total = r.integer("totalQuantity", lo=0, hi=MAX_QUANTITY)
    kind = r.string("resourceType", enum=TYPES) or "REPLENISHABLE"
    annotations = {names.NAME: name, names.CREATED_AT: str(now_ms)}
    if tags:
        annotations[names.TAGS] = json.dumps(tags, sort_keys=True)
    return {
        "apiVersion": API_VERSION,
        "kind": "ConsumableResource",
        "metadata": {"name": names.kube_name(name), "annotations": annotations},
        "spec": {"totalQuantity": total or 0, "resourceType": kind},
    }


def updated_total(current: int, operation: str, quantity: int, name: str) -> int:
    """Pure: the total after an UpdateConsumableResource."""
    if operation == "SET":
        return quantity
    if operation == "ADD":
        total = current + quantity
        if total > MAX_QUANTITY:
            raise ClientError(f"quantity: {name!r} would exceed {MAX_QUANTITY} units")
        return total
    if quantity > current:
        raise ClientError(
            f"quantity: cannot remove {quantity} units from {name!r}, which has {current}"
        )
    return current - quantity


def arn(region: str, account: str, name: str) -> str:
    return str(Arn(region, account, "consumable-resource", name))


def _quantities(obj: Mapping[str, Any]) -> tuple[int, int, int]:
    """Pure: (total, in use, available); before the operator's first status, nothing in use."""
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    total = int(spec.get("totalQuantity") or 0)
    used = status.get("inUseQuantity")
    in_use = int(used) if isinstance(used, int) else 0
    available = status.get("availableQuantity")
    avail = int(available) if isinstance(available, int) else max(total - in_use, 0)
    return total, in_use, avail


def _created(obj: Mapping[str, Any]) -> int | None:
    from kubatch.batchapi.jobs import created_ms

    return created_ms(obj) or None


def describe_view(obj: Mapping[str, Any], region: str, account: str) -> JsonDict:
    """Pure: DescribeConsumableResource's answer."""
    from kubatch.batchapi.definitions import read_tags

    name = names.aws_name(obj)
    total, in_use, avail = _quantities(obj)
    out: JsonDict = {
        "consumableResourceName": name,
        "consumableResourceArn": arn(region, account, name),
        "totalQuantity": total,
        "inUseQuantity": in_use,
        "availableQuantity": avail,
        "resourceType": str((obj.get("spec") or {}).get("resourceType") or "REPLENISHABLE"),
        "tags": read_tags(dict(obj)),
    }
    created = _created(obj)
    if created is not None:
        out["createdAt"] = created
    return out


def summary_view(obj: Mapping[str, Any], region: str, account: str) -> JsonDict:
    """Pure: a ``ConsumableResourceSummary`` (ListConsumableResources)."""
    name = names.aws_name(obj)
    total, in_use, _ = _quantities(obj)
    return {
        "consumableResourceArn": arn(region, account, name),
        "consumableResourceName": name,
        "totalQuantity": total,
        "inUseQuantity": in_use,
        "resourceType": str((obj.get("spec") or {}).get("resourceType") or "REPLENISHABLE"),
    }


def name_filter(r: Reader, allowed: tuple[str, ...]) -> tuple[str, str] | None:
    """Pure: the single ``(name, value)`` filter of a list call, or None."""
    filters = r.structs("filters", max_items=1)
    if not filters:
        return None
    filters[0].only(("name", "values"))
    fname = filters[0].req_str("name", enum=allowed)
    values = filters[0].strings("values", required=True, max_items=1, max_len=2048) or []
    if len(values) != 1:
        raise ClientError("filters[0].values needs exactly one value")
    return fname, values[0]


def name_matches(name: str, pattern: str) -> bool:
    """Pure: AWS's case-insensitive name filter (``*`` suffix: prefix)."""
    low, pat = name.lower(), pattern.lower()
    return low.startswith(pat[:-1]) if pat.endswith("*") else low == pat
