"""The consumable resource operations: describe and list for every key; create, update and
delete for admin keys only (cluster-scoped, like queues and compute environments);
ListJobsByConsumableResource lists the caller's own jobs that take a resource."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from kubatch.adapters.kube import BATCHJOBS, CONSUMABLERESOURCES, JOBDEFINITIONS, ApiError
from kubatch.api.models import parse_consumable_resource
from kubatch.api.problems import InvalidResource
from kubatch.batchapi import consumables, definitions, jobs, lookup, names, pagination, views
from kubatch.batchapi.context import KUBE_ERRORS, Context, translate
from kubatch.batchapi.errors import ClientError
from kubatch.batchapi.operations import _place, _problems
from kubatch.batchapi.reader import Reader

JsonDict = dict[str, Any]
CLIENT_TOKEN = f"{names.PREFIX}/client-token"
"""On a ConsumableResource: the last UpdateConsumableResource's clientToken and request."""


def _answer(ctx: Context, name: str) -> JsonDict:
    return {
        "consumableResourceName": name,
        "consumableResourceArn": consumables.arn(ctx.region, ctx.account, name),
    }


async def create_consumable_resource(ctx: Context, body: Any) -> JsonDict:
    ctx.require_admin("CreateConsumableResource")
    r = Reader(body)
    r.only(("consumableResourceName", "totalQuantity", "resourceType", "tags"))
    name = r.req_str("consumableResourceName", pattern=names.AWS_NAME, what=names.NAME_RULE)
    manifest = consumables.manifest(r, name, definitions.tags(r), int(ctx.clock() * 1000))
    try:
        parse_consumable_resource(manifest)
    except InvalidResource as err:
        raise _problems("invalid consumable resource", err.problems) from err
    if await ctx.get(CONSUMABLERESOURCES, names.kube_name(name)) is not None:
        raise ClientError(f"consumableResourceName: consumable resource {name!r} already exists")
    await ctx.create(CONSUMABLERESOURCES, manifest)
    return _answer(ctx, name)


async def describe_consumable_resource(ctx: Context, body: Any) -> JsonDict:
    r = Reader(body)
    r.only(("consumableResource",))
    obj = await lookup.consumable_resource(
        ctx, r.req_str("consumableResource", max_len=2048), "consumableResource"
    )
    return consumables.describe_view(obj, ctx.region, ctx.account)


async def list_consumable_resources(ctx: Context, body: Any) -> JsonDict:
    r = Reader(body)
    r.only(("filters", "maxResults", "nextToken"))
    found = consumables.name_filter(r, ("CONSUMABLE_RESOURCE_NAME",))
    limit = r.integer("maxResults", lo=1, hi=100) or 100
    token = r.string("nextToken", max_len=4096)
    objs = [
        o
        for o in await ctx.list(CONSUMABLERESOURCES)
        if found is None or consumables.name_matches(names.aws_name(o), found[1])
    ]
    chosen, nxt = pagination.page(
        objs,
        lambda o: [names.aws_name(o)],
        token=token,
        limit=limit,
        digest=pagination.query_digest(list(found or ())),
    )
    out: JsonDict = {
        "consumableResources": [
            consumables.summary_view(o, ctx.region, ctx.account) for o in chosen
        ]
    }
    if nxt:
        out["nextToken"] = nxt
    return out


async def update_consumable_resource(ctx: Context, body: Any) -> JsonDict:
    ctx.require_admin("UpdateConsumableResource")
    r = Reader(body)
    r.only(("consumableResource", "operation", "quantity", "clientToken"))
    text = r.req_str("consumableResource", max_len=2048)
    operation = r.string("operation", enum=consumables.OPERATIONS) or "SET"
    quantity = r.integer("quantity", required=True, lo=0, hi=consumables.MAX_QUANTITY)
    assert quantity is not None
    token = r.string("clientToken", max_len=64)
    request = None
    if token:
        request = hashlib.sha256(
            json.dumps([token, text, operation, quantity]).encode()
        ).hexdigest()[:32]
    for _ in range(5):
        obj = await lookup.consumable_resource(ctx, text, "consumableResource")
        aws = names.aws_name(obj)
        meta = obj.get("metadata") or {}
        current = int((obj.get("spec") or {}).get("totalQuantity") or 0)
        if request is not None and (meta.get("annotations") or {}).get(CLIENT_TOKEN) == request:
            return {**_answer(ctx, aws), "totalQuantity": current}  # a retry: done already
        total = consumables.updated_total(current, operation, quantity, aws)
        patch: JsonDict = {
            "metadata": {"resourceVersion": meta.get("resourceVersion")},
            "spec": {"totalQuantity": total},
        }
        if request is not None:
            patch["metadata"]["annotations"] = {CLIENT_TOKEN: request}
        try:
            await ctx.kube.patch(CONSUMABLERESOURCES, str(meta.get("name")), patch)
        except ApiError as exc:
            if exc.status == 409:
                continue  # changed meanwhile: ADD/REMOVE apply to the new total
            raise translate(exc, f"updating consumable resource {aws}") from exc
        except KUBE_ERRORS as exc:
            raise translate(exc, f"updating consumable resource {aws}") from exc
        return {**_answer(ctx, aws), "totalQuantity": total}
    raise ClientError(f"consumable resource {text[:200]!r} keeps changing; try again")


async def delete_consumable_resource(ctx: Context, body: Any) -> JsonDict:
    ctx.require_admin("DeleteConsumableResource")
    r = Reader(body)
    r.only(("consumableResource",))
    obj = await lookup.consumable_resource(
        ctx, r.req_str("consumableResource", max_len=2048), "consumableResource"
    )
    await ctx.delete(CONSUMABLERESOURCES, str(obj["metadata"]["name"]))
    return {}


async def _requirements(ctx: Context, job: JsonDict) -> JsonDict | None:
    """A job's consumable resources: its override, else what the operator recorded, else its
    definition's."""
    spec = job.get("spec") or {}
    if "consumableResourcePropertiesOverride" in spec:
        value = spec["consumableResourcePropertiesOverride"]
        return value if isinstance(value, dict) else None
    recorded = (job.get("status") or {}).get("jobDefinition") or {}
    if recorded.get("template") is not None or recorded.get("nodeProperties") is not None:
        value = recorded.get("consumableResourceProperties")
        return value if isinstance(value, dict) else None
    name = str(spec.get("jobDefinition", ""))
    memo = ctx.cache.setdefault("definitions", {})
    if name not in memo:
        memo[name] = await ctx.get(JOBDEFINITIONS, name, ctx.namespace)
    value = ((memo[name] or {}).get("spec") or {}).get("consumableResourceProperties")
    return value if isinstance(value, dict) else None


async def list_jobs_by_consumable_resource(ctx: Context, body: Any) -> JsonDict:
    r = Reader(body)
    r.only(("consumableResource", "filters", "maxResults", "nextToken"))
    text = r.req_str("consumableResource", max_len=2048)
    found = consumables.name_filter(r, ("JOB_STATUS", "JOB_NAME"))
    if found is not None and found[0] == "JOB_STATUS" and found[1] not in jobs.STATUSES:
        raise ClientError(
            f"filters[0].values[0]: {found[1][:40]!r} is not one of {', '.join(jobs.STATUSES)}"
        )
    limit = r.integer("maxResults", lo=1, hi=100) or 100
    token = r.string("nextToken", max_len=4096)
    obj = await lookup.consumable_resource(ctx, text, "consumableResource")
    kube, aws = str(obj["metadata"]["name"]), names.aws_name(obj)
    place = await _place(ctx)
    picked: list[tuple[JsonDict, JsonDict, int]] = []
    for job in await ctx.list(BATCHJOBS, ctx.namespace):
        props = await _requirements(ctx, job)
        items = [
            i for i in (props or {}).get("consumableResourceList") or [] if isinstance(i, dict)
        ]
        mine = [i for i in items if i.get("consumableResource") == kube]
        if not mine:
            continue
        status = jobs.aws_status((job.get("status") or {}).get("phase"))
        if found is not None and found[0] == "JOB_STATUS" and status != found[1]:
            continue
        if (
            found is not None
            and found[0] == "JOB_NAME"
            and not consumables.name_matches(jobs.job_name(job), found[1])
        ):
            continue
        picked.append((job, props or {}, int(mine[0].get("quantity") or 0)))
    chosen, nxt = pagination.page(
        picked,
        lambda p: [-jobs.created_ms(p[0]), str(p[0]["metadata"]["name"])],
        token=token,
        limit=limit,
        digest=pagination.query_digest([aws, list(found or ())]),
    )
    out: JsonDict = {"jobs": [_job_summary(job, props, q, place) for job, props, q in chosen]}
    if nxt:
        out["nextToken"] = nxt
    return out


def _job_summary(job: JsonDict, props: JsonDict, quantity: int, place: views.Place) -> JsonDict:
    """Pure: a ``ListJobsByConsumableResourceSummary``."""
    brief = views.summary(job, place)
    out: JsonDict = {
        "jobArn": brief["jobArn"],
        "jobQueueArn": place.queue_arn(str((job.get("spec") or {}).get("jobQueue", ""))),
        "jobName": brief["jobName"],
        "jobDefinitionArn": brief.get("jobDefinition"),
        "shareIdentifier": brief.get("shareIdentifier"),
        "jobStatus": brief["status"],
        "quantity": quantity,
        "statusReason": brief.get("statusReason"),
        "startedAt": brief.get("startedAt"),
        "createdAt": brief["createdAt"],
        "consumableResourceProperties": consumables.properties_view(
            props, consumables.read_names(job)
        )
        or {"consumableResourceList": []},
    }
    return {k: v for k, v in out.items() if v is not None}
