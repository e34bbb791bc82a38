"""Job queues, compute environments (describe: every key; create/update/delete: admin keys
only) and tags."""

from __future__ import annotations

import json
from typing import Any

from kubatch.adapters.kube import (
    BATCHJOBS,
    COMPUTEENVIRONMENTS,
    CONSUMABLERESOURCES,
    JOBDEFINITIONS,
    JOBQUEUES,
    Resource,
)
from kubatch.api.models import parse_compute_environment, parse_job_queue
from kubatch.api.problems import InvalidResource, Problem
from kubatch.api.validation import validate_compute_environment, validate_job_queue
from kubatch.batchapi import definitions, lookup, names, pagination, queues
from kubatch.batchapi.context import Context
from kubatch.batchapi.errors import ClientError, not_supported
from kubatch.batchapi.operations import _problems
from kubatch.batchapi.reader import Reader

JsonDict = dict[str, Any]


def _merge(base: Any, patch: Any) -> Any:
    """Pure: JSON merge patch (RFC 7386) of ``patch`` onto ``base``."""
    if not isinstance(patch, dict):
        return patch
    out = dict(base) if isinstance(base, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = _merge(out.get(k), v)
    return out


async def _describe(
    ctx: Context, body: Any, key: str, res: Resource, kind: str, view: Any
) -> JsonDict:
    r = Reader(body)
    r.only((key, "maxResults", "nextToken"))
    wanted = {
        names.resource_name(t, kind, ctx.region, ctx.account, f"{key}[{i}]")
        for i, t in enumerate(r.strings(key, max_items=100, max_len=2048) or [])
    }
    limit = r.integer("maxResults", lo=1, hi=100) or 100
    token = r.string("nextToken", max_len=4096)
    objs = [o for o in await ctx.list(res) if not wanted or names.aws_name(o) in wanted]
    chosen, nxt = pagination.page(
        objs,
        lambda o: [names.aws_name(o)],
        token=token,
        limit=limit,
        digest=pagination.query_digest(sorted(wanted)),
    )
    out: JsonDict = {key: [view(o) for o in chosen]}
    if nxt:
        out["nextToken"] = nxt
    return out


async def describe_job_queues(ctx: Context, body: Any) -> JsonDict:
    ces = {
        str(c["metadata"]["name"]): names.aws_name(c) for c in await ctx.list(COMPUTEENVIRONMENTS)
    }
    return await _describe(
        ctx,
        body,
        "jobQueues",
        JOBQUEUES,
        "job-queue",
        lambda o: queues.queue_view(o, ctx.region, ctx.account, ces),
    )


async def describe_compute_environments(ctx: Context, body: Any) -> JsonDict:
    return await _describe(
        ctx,
        body,
        "computeEnvironments",
        COMPUTEENVIRONMENTS,
        "compute-environment",
        lambda o: queues.ce_view(o, ctx.region, ctx.account),
    )


async def _ce_resolver(ctx: Context, order: list[Reader] | None) -> dict[str, str]:
    """AWS name or ARN -> Kubernetes name of every CE named in ``computeEnvironmentOrder``."""
    found: dict[str, str] = {}
    for o in order or []:
        text = o.string("computeEnvironment", max_len=2048)
        if text is not None and text not in found:
            ce = await lookup.compute_environment(ctx, text, o.field("computeEnvironment"))
            found[text] = str(ce["metadata"]["name"])
    return found


def _check_queue(manifest: JsonDict, ce_names: list[str]) -> None:
    try:
        q = parse_job_queue(manifest)
    except InvalidResource as err:
        raise _problems("invalid job queue", err.problems) from err
    problems = validate_job_queue(q)
    for i, o in enumerate(q.spec.compute_environment_order):
        if o.compute_environment not in ce_names:
            problems.append(
                Problem(
                    f"computeEnvironmentOrder[{i}].computeEnvironment",
                    f"compute environment {o.compute_environment!r} does not exist",
                )
            )
    if problems:
        raise _problems("invalid job queue", problems)


async def create_job_queue(ctx: Context, body: Any) -> JsonDict:
    ctx.require_admin("CreateJobQueue")
    r = Reader(body)
    name = r.req_str("jobQueueName", pattern=names.AWS_NAME, what=names.NAME_RULE)
    if await ctx.get(JOBQUEUES, names.kube_name(name)) is not None:
        raise ClientError(f"jobQueueName: job queue {name!r} already exists")
    resolved = await _ce_resolver(ctx, r.structs("computeEnvironmentOrder", max_items=10))
    manifest = queues.queue_manifest(r, name, lambda text, where: resolved[text])
    _check_queue(manifest, list(resolved.values()))
    await ctx.create(JOBQUEUES, manifest)
    return {
        "jobQueueName": name,
        "jobQueueArn": f"arn:aws:batch:{ctx.region}:{ctx.account}:job-queue/{name}",
    }


async def update_job_queue(ctx: Context, body: Any) -> JsonDict:
    ctx.require_admin("UpdateJobQueue")
    r = Reader(body)
    r.only(
        (
            "jobQueue",
            "state",
            "schedulingPolicyArn",
            "priority",
            "computeEnvironmentOrder",
            "serviceEnvironmentOrder",
            "jobStateTimeLimitActions",
        )
    )
    obj = await lookup.queue(ctx, r.req_str("jobQueue", max_len=2048))
    resolved = await _ce_resolver(ctx, r.structs("computeEnvironmentOrder", max_items=10))
    patch = queues.queue_spec(r, lambda text, where: resolved[text], create=False)
    merged = {**obj, "spec": _merge(obj.get("spec") or {}, patch)}
    all_ces = [str(c["metadata"]["name"]) for c in await ctx.list(COMPUTEENVIRONMENTS)]
    _check_queue(merged, all_ces)
    if patch:
        await ctx.patch(JOBQUEUES, str(obj["metadata"]["name"]), {"spec": patch})
    name = names.aws_name(obj)
    return {
        "jobQueueName": name,
        "jobQueueArn": f"arn:aws:batch:{ctx.region}:{ctx.account}:job-queue/{name}",
    }


async def delete_job_queue(ctx: Context, body: Any) -> JsonDict:
    ctx.require_admin("DeleteJobQueue")
    r = Reader(body)
    r.only(("jobQueue",))
    obj = await lookup.queue(ctx, r.req_str("jobQueue", max_len=2048))
    if (obj.get("spec") or {}).get("state", "Enabled") != "Disabled":
        raise ClientError(
            f"job queue {names.aws_name(obj)!r} must be DISABLED before it is deleted "
            "(UpdateJobQueue state=DISABLED)"
        )
    await ctx.delete(JOBQUEUES, str(obj["metadata"]["name"]))
    return {}


def _check_ce(manifest: JsonDict) -> None:
    try:
        ce = parse_compute_environment(manifest)
    except InvalidResource as err:
        raise _problems("invalid compute environment", err.problems) from err
    problems = validate_compute_environment(ce)
    if problems:
        raise _problems("invalid compute environment", problems)


def _ce_arn(ctx: Context, name: str) -> str:
    return f"arn:aws:batch:{ctx.region}:{ctx.account}:compute-environment/{name}"


async def create_compute_environment(ctx: Context, body: Any) -> JsonDict:
    ctx.require_admin("CreateComputeEnvironment")
    r = Reader(body)
    name = r.req_str("computeEnvironmentName", pattern=names.AWS_NAME, what=names.NAME_RULE)
    if await ctx.get(COMPUTEENVIRONMENTS, names.kube_name(name)) is not None:
        raise ClientError(f"computeEnvironmentName: compute environment {name!r} already exists")
    manifest = queues.ce_manifest(r, name)
    _check_ce(manifest)
    await ctx.create(COMPUTEENVIRONMENTS, manifest)
    return {"computeEnvironmentName": name, "computeEnvironmentArn": _ce_arn(ctx, name)}


async def update_compute_environment(ctx: Context, body: Any) -> JsonDict:
    ctx.require_admin("UpdateComputeEnvironment")
    r = Reader(body)
    text = r.req_str("computeEnvironment", max_len=2048)
    obj = await lookup.compute_environment(ctx, text, "computeEnvironment")
    patch, kept = queues.ce_update(r, obj)
    merged = {**obj, "spec": _merge(obj.get("spec") or {}, patch)}
    _check_ce(merged)
    change: JsonDict = {"metadata": {"annotations": {names.AWS: queues.kept_annotation(kept)}}}
    if patch:
        change["spec"] = patch
    await ctx.patch(COMPUTEENVIRONMENTS, str(obj["metadata"]["name"]), change)
    name = names.aws_name(obj)
    return {"computeEnvironmentName": name, "computeEnvironmentArn": _ce_arn(ctx, name)}


async def delete_compute_environment(ctx: Context, body: Any) -> JsonDict:
    ctx.require_admin("DeleteComputeEnvironment")
    r = Reader(body)
    r.only(("computeEnvironment",))
    obj = await lookup.compute_environment(
        ctx, r.req_str("computeEnvironment", max_len=2048), "computeEnvironment"
    )
    kname, aws = str(obj["metadata"]["name"]), names.aws_name(obj)
    if (obj.get("spec") or {}).get("state", "Enabled") != "Disabled":
        raise ClientError(f"compute environment {aws!r} must be DISABLED before it is deleted")
    users = [
        names.aws_name(q)
        for q in await ctx.list(JOBQUEUES)
        if any(
            o.get("computeEnvironment") == kname
            for o in (q.get("spec") or {}).get("computeEnvironmentOrder") or []
        )
    ]
    if users:
        raise ClientError(
            f"compute environment {aws!r} is used by job queue(s) {', '.join(sorted(users))}"
        )
    await ctx.delete(COMPUTEENVIRONMENTS, kname)
    return {}


# --------------------------------------------------------------------------- tags


async def _tagged(ctx: Context, arn_text: str, change: bool) -> tuple[Resource, JsonDict]:
    arn = names.parse_arn(arn_text)
    if arn.region != ctx.region or arn.account != ctx.account:
        raise ClientError(f"resourceArn: {arn_text[:200]!r} is not in your region and account")
    obj: JsonDict | None
    if arn.kind == "job":
        ref = names.parse_job_id(arn.resource, ctx.region, ctx.account)
        if ref is not None and (ref.index is not None or ref.node is not None):
            raise not_supported("tags on one child or node of a job", "tag the job itself")
        obj = await lookup.job(ctx, ref.name) if ref is not None else None
        res: Resource = BATCHJOBS
    elif arn.kind == "job-definition":
        ref_def = names.parse_definition_ref(arn.resource, "resourceArn")
        if ref_def.revision is None:
            raise ClientError("resourceArn: a job definition ARN names a revision (name:N)")
        obj = await lookup.definition(ctx, ref_def, active=False)
        res = JOBDEFINITIONS
    elif arn.kind == "job-queue":
        if change:
            ctx.require_admin("TagResource")
        obj = await lookup.queue(ctx, arn_text, "resourceArn")
        res = JOBQUEUES
    elif arn.kind == "consumable-resource":
        if change:
            ctx.require_admin("TagResource")
        obj = await lookup.consumable_resource(ctx, arn_text, "resourceArn")
        res = CONSUMABLERESOURCES
    else:
        if change:
            ctx.require_admin("TagResource")
        obj = await lookup.compute_environment(ctx, arn_text, "resourceArn")
        res = COMPUTEENVIRONMENTS
    if obj is None:
        raise ClientError(f"resourceArn: {arn_text[:200]!r} does not exist")
    return res, obj


async def _write_tags(ctx: Context, res: Resource, obj: JsonDict, tags: dict[str, str]) -> None:
    ns = ctx.namespace if res.namespaced else None
    patch = {"metadata": {"annotations": {names.TAGS: json.dumps(tags, sort_keys=True)}}}
    await ctx.patch(res, str(obj["metadata"]["name"]), patch, ns)


async def list_tags(ctx: Context, arn: str) -> JsonDict:
    _, obj = await _tagged(ctx, arn, change=False)
    return {"tags": definitions.read_tags(obj)}


async def tag_resource(ctx: Context, arn: str, body: Any) -> JsonDict:
    r = Reader(body)
    r.only(("tags",))
    new = definitions.tags(r) or {}
    if not r.has("tags"):
        raise ClientError("tags is required")
    res, obj = await _tagged(ctx, arn, change=True)
    merged = {**definitions.read_tags(obj), **new}
    if len(merged) > 50:
        raise ClientError("a resource has at most 50 tags")
    await _write_tags(ctx, res, obj, merged)
    return {}


async def untag_resource(ctx: Context, arn: str, keys: list[str]) -> JsonDict:
    if not keys:
        raise ClientError("tagKeys is required")
    for k in keys:
        if len(k) > 128 or not k:
            raise ClientError(f"tagKeys: {k[:140]!r} is not a tag key")
    res, obj = await _tagged(ctx, arn, change=True)
    remaining = {k: v for k, v in definitions.read_tags(obj).items() if k not in keys}
    await _write_tags(ctx, res, obj, remaining)
    return {}
