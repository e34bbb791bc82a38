"""Finding the objects an AWS name or id refers to, within the caller's reach."""

from __future__ import annotations

from typing import Any

from kubatch.adapters.kube import (
    BATCHJOBS,
    COMPUTEENVIRONMENTS,
    CONSUMABLERESOURCES,
    JOBDEFINITIONS,
    JOBQUEUES,
)
from kubatch.batchapi import definitions, names
from kubatch.batchapi.context import Context
from kubatch.batchapi.errors import ClientError
from kubatch.batchapi.names import DefinitionRef

JsonDict = dict[str, Any]


async def queue(ctx: Context, text: str, where: str = "jobQueue") -> JsonDict:
    """The JobQueue of an AWS name or ARN; ClientException when there is none."""
    aws = names.resource_name(text, "job-queue", ctx.region, ctx.account, where)
    obj = await ctx.get(JOBQUEUES, names.kube_name(aws))
    if obj is None or not names.owns(obj, aws):
        raise ClientError(f"{where}: job queue {aws!r} does not exist")
    return obj


async def compute_environment(ctx: Context, text: str, where: str) -> JsonDict:
    aws = names.resource_name(text, "compute-environment", ctx.region, ctx.account, where)
    obj = await ctx.get(COMPUTEENVIRONMENTS, names.kube_name(aws))
    if obj is None or not names.owns(obj, aws):
        raise ClientError(f"{where}: compute environment {aws!r} does not exist")
    return obj


async def consumable_resource(ctx: Context, text: str, where: str) -> JsonDict:
    """The ConsumableResource of an AWS name or ARN; ClientException when there is none."""
    aws = names.resource_name(text, "consumable-resource", ctx.region, ctx.account, where)
    obj = await ctx.get(CONSUMABLERESOURCES, names.kube_name(aws))
    if obj is None or not names.owns(obj, aws):
        raise ClientError(f"{where}: consumable resource {aws!r} does not exist")
    return obj


async def queue_names(ctx: Context) -> dict[str, str]:
    """Kubernetes name -> AWS name of every queue (memoised per request)."""
    memo = ctx.cache.get("queue_names")
    if memo is None:
        memo = {str(q["metadata"]["name"]): names.aws_name(q) for q in await ctx.list(JOBQUEUES)}
        ctx.cache["queue_names"] = memo
    return dict(memo)


async def revisions(ctx: Context, name: str) -> list[JsonDict]:
    """Every JobDefinition object of AWS name ``name`` (API revisions and a kubectl one)."""
    kube = names.kube_name(name)
    found = [
        d
        for d in await ctx.list(
            JOBDEFINITIONS, ctx.namespace, labels=f"{names.DEFINITION_LABEL}={kube}"
        )
        if names.owns(d, name)
    ]
    plain = await ctx.get(JOBDEFINITIONS, kube, ctx.namespace)
    if plain is not None and names.owns(plain, name) and not definitions.is_revision_object(plain):
        found.append(plain)
    return found


async def definition(ctx: Context, ref: DefinitionRef, *, active: bool = True) -> JsonDict:
    """The JobDefinition object of ``name`` (latest active revision) or ``name:revision``."""
    if ref.revision is not None:
        obj = await ctx.get(
            JOBDEFINITIONS, names.revision_object(ref.name, ref.revision), ctx.namespace
        )
        if obj is None or not names.owns(obj, ref.name):
            plain = await ctx.get(JOBDEFINITIONS, names.kube_name(ref.name), ctx.namespace)
            ok = (
                plain is not None
                and names.owns(plain, ref.name)
                and not definitions.is_revision_object(plain)
                and definitions.revision_of(plain) == ref.revision
            )
            obj = plain if ok else None
        if obj is None:
            raise ClientError(f"jobDefinition: {ref} does not exist")
    else:
        candidates = [
            d
            for d in await revisions(ctx, ref.name)
            if not active or definitions.status_of(d) == definitions.ACTIVE
        ]
        if not candidates:
            raise ClientError(f"jobDefinition: no ACTIVE revision of {ref.name!r} exists")
        api_revisions = [d for d in candidates if definitions.is_revision_object(d)]
        obj = max(api_revisions or candidates, key=definitions.revision_of)
    if active and definitions.status_of(obj) != definitions.ACTIVE:
        raise ClientError(f"jobDefinition: {ref} is INACTIVE (deregistered)")
    return obj


async def job(ctx: Context, name: str) -> JsonDict | None:
    return await ctx.get(BATCHJOBS, name, ctx.namespace)
