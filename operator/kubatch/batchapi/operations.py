"""The job and job definition operations (every key may call them, in its own namespace)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from kubatch.adapters.kube import BATCHJOBS, JOBDEFINITIONS, NAMESPACES, ApiError
from kubatch.api.models import parse_batch_job, parse_job_definition, parse_job_queue
from kubatch.api.problems import InvalidResource, Problem
from kubatch.api.resolve import resolve_node_properties, resolve_pod_template
from kubatch.api.validation import validate_batch_job, validate_job_definition
from kubatch.batchapi import consumables, definitions, jobs, lookup, names, nodes, pagination, views
from kubatch.batchapi.children import Child, array_children
from kubatch.batchapi.context import KUBE_ERRORS, Context, translate
from kubatch.batchapi.errors import ClientError, not_supported
from kubatch.batchapi.reader import Reader
from kubatch.core.selector import LabelSelector, SelectorError

JsonDict = dict[str, Any]
WAITING = (None, "Submitted", "Pending", "Runnable")


def _problems(what: str, problems: list[Problem] | tuple[Problem, ...]) -> ClientError:
    return ClientError(f"{what}: " + "; ".join(str(p) for p in problems[:10]))


async def _namespace_allowed(ctx: Context, queue: JsonDict) -> None:
    selector = (queue.get("spec") or {}).get("namespaceSelector")
    if not selector:
        return
    ns = await ctx.get(NAMESPACES, ctx.namespace)
    labels = ((ns or {}).get("metadata") or {}).get("labels") or {}
    try:
        allowed = LabelSelector.parse(selector).matches(labels)
    except SelectorError:
        allowed = False
    if not allowed:
        raise ClientError(
            f"jobQueue: namespace {ctx.namespace!r} may not submit to job queue "
            f"{names.aws_name(queue)!r} (its namespaceSelector)"
        )


# --------------------------------------------------------------------------- jobs


async def submit_job(ctx: Context, body: Any) -> JsonDict:
    r = Reader(body)
    r.only(jobs.SUBMIT_FIELDS)
    r.req_str("jobName", pattern=names.JOB_NAME, what=names.JOB_NAME_RULE)
    queue = await lookup.queue(ctx, r.req_str("jobQueue", max_len=2048))
    await _namespace_allowed(ctx, queue)
    ref = names.parse_definition_ref(r.req_str("jobDefinition", max_len=2048))
    definition = await lookup.definition(ctx, ref)
    job_id = str(uuid.uuid4())
    manifest = jobs.build(
        r,
        job_id=job_id,
        namespace=ctx.namespace,
        queue=str(queue["metadata"]["name"]),
        definition=definition,
        region=ctx.region,
        account=ctx.account,
        now_ms=int(ctx.clock() * 1000),
    )
    deps = [d["jobName"] for d in manifest["spec"].get("dependsOn", []) if d.get("jobName")]
    found = await asyncio.gather(*(lookup.job(ctx, d) for d in deps))
    for dep, obj in zip(deps, found, strict=True):
        if obj is None:
            raise ClientError(f"dependsOn: job {dep!r} does not exist")
    try:
        job = parse_batch_job(manifest)
        defn = parse_job_definition(definition)
        q = parse_job_queue(queue)
    except InvalidResource as err:
        raise _problems("invalid job", err.problems) from err
    await check_consumables(ctx, manifest)
    missing = _missing(defn, job)
    if missing:
        raise ClientError(
            f"the job has no {' and no '.join(missing)}: give them in the job definition's "
            "resourceRequirements or in containerOverrides.resourceRequirements"
        )
    dname = str(definition["metadata"]["name"])
    problems = validate_batch_job(
        job, queues={job.spec.job_queue: q}, definitions={dname: defn}
    ) + validate_job_definition(defn)
    if problems:
        raise _problems("invalid job", problems)
    await ctx.create(BATCHJOBS, manifest, ctx.namespace)
    return {
        "jobArn": jobs.job_arn(job_id, ctx.region, ctx.account),
        "jobName": manifest["metadata"]["annotations"][names.NAME],
        "jobId": job_id,
    }


def _missing(defn: Any, job: Any) -> list[str]:
    """What vCPU/memory the job's pod lacks (a multi-node job's ranges are checked by
    kubatch's validation, which names the nodes)."""
    if defn.spec.node_properties is not None:
        return []
    return jobs.missing_resources(resolve_pod_template(defn, job))


async def check_consumables(ctx: Context, manifest: JsonDict) -> None:
    """Every consumable resource a job or definition names exists (as on AWS)."""
    raw = (manifest.get("metadata") or {}).get("annotations", {}).get(consumables.CONSUMABLE_NAMES)
    spec = manifest.get("spec") or {}
    props = spec.get("consumableResourceProperties") or spec.get(
        "consumableResourcePropertiesOverride"
    )
    if not raw or not props:
        return
    for aws in consumables.read_names(manifest).values():
        await lookup.consumable_resource(ctx, aws, "consumableResource")


async def _node_record(ctx: Context, obj: JsonDict) -> JsonDict | None:
    """A multi-node job's resolved nodeProperties (recorded, else from its definition)."""
    revision = (obj.get("status") or {}).get("jobDefinition") or {}
    recorded = revision.get("nodeProperties")
    if isinstance(recorded, dict):
        return recorded
    if revision.get("template") is not None:
        return None  # recorded by the operator: not a multi-node job
    name = str((obj.get("spec") or {}).get("jobDefinition", ""))
    memo = ctx.cache.setdefault("definitions", {})
    if name not in memo:
        memo[name] = await ctx.get(JOBDEFINITIONS, name, ctx.namespace)
    defn = memo[name]
    if defn is None or (defn.get("spec") or {}).get("type") != "multinode":
        return None
    try:
        record = resolve_node_properties(parse_job_definition(defn), parse_batch_job(obj))
    except (InvalidResource, ValueError, IndexError):
        return None
    return None if record is None else record.model_dump(by_alias=True, exclude_none=True)


async def _place(ctx: Context) -> views.Place:
    return views.Place(ctx.region, ctx.account, ctx.namespace, await lookup.queue_names(ctx))


async def _definition_template(ctx: Context, obj: JsonDict) -> JsonDict | None:
    """The resolved pod template of a job the operator has not recorded yet."""
    if ((obj.get("status") or {}).get("jobDefinition") or {}).get("template"):
        return None
    name = str((obj.get("spec") or {}).get("jobDefinition", ""))
    memo = ctx.cache.setdefault("definitions", {})
    if name not in memo:
        memo[name] = await ctx.get(JOBDEFINITIONS, name, ctx.namespace)
    defn = memo[name]
    if defn is None:
        return None
    try:
        return resolve_pod_template(parse_job_definition(defn), parse_batch_job(obj))
    except InvalidResource:
        return None


async def _children(ctx: Context, parent: JsonDict) -> dict[int, Child]:
    memo = ctx.cache.setdefault("children", {})
    key = parent["metadata"]["name"]
    if key not in memo:
        try:
            memo[key] = await array_children(ctx.kube, ctx.namespace, parent)
        except KUBE_ERRORS as exc:
            raise translate(exc, "listing the children of an array job") from exc
    result: dict[int, Child] = memo[key]
    return result


async def describe_jobs(ctx: Context, body: Any) -> JsonDict:
    r = Reader(body)
    r.only(("jobs",))
    ids = r.strings("jobs", required=True, max_items=100, max_len=2048) or []
    refs = [names.parse_job_id(i, ctx.region, ctx.account, "jobs", ctx.namespace) for i in ids]
    wanted = sorted({ref.name for ref in refs if ref is not None})
    objs = dict(
        zip(wanted, await asyncio.gather(*(lookup.job(ctx, n) for n in wanted)), strict=True)
    )
    place = await _place(ctx)
    out = []
    for ref in refs:
        obj = objs.get(ref.name) if ref is not None else None
        if ref is None or obj is None:
            continue
        template = await _definition_template(ctx, obj)
        record = await _node_record(ctx, obj)
        if ref.node is not None:
            node = _nodes(obj, record).get(ref.node)
            if node is not None:
                out.append(views.detail(obj, place, definition_template=template, node=node))
            continue
        child = None
        if ref.index is not None:
            if not (obj.get("spec") or {}).get("arrayProperties"):
                continue
            child = (await _children(ctx, obj)).get(ref.index)
            if child is None:
                continue
        out.append(
            views.detail(obj, place, definition_template=template, child=child, node_record=record)
        )
    return {"jobs": out}


def _nodes(obj: JsonDict, record: JsonDict | None) -> dict[int, nodes.Node]:
    if record is None:
        return {}
    parent = jobs.aws_status((obj.get("status") or {}).get("phase"))
    return {n.index: n for n in nodes.nodes_of(obj, record, parent)}


LIST_FILTERS = ("JOB_NAME", "JOB_DEFINITION", "BEFORE_CREATED_AT", "AFTER_CREATED_AT")


def _filter(name: str, value: str, place: views.Place) -> Any:
    if name in ("BEFORE_CREATED_AT", "AFTER_CREATED_AT"):
        if not value.isdigit():
            raise ClientError(f"filters: {name} takes epoch milliseconds, not {value[:40]!r}")
        limit = int(value)
        if name == "BEFORE_CREATED_AT":
            return lambda o: jobs.created_ms(o) < limit
        return lambda o: jobs.created_ms(o) > limit
    prefix = value.endswith("*")
    needle = value[:-1] if prefix else value
    if name == "JOB_NAME":
        low = needle.lower()
        return lambda o: (
            jobs.job_name(o).lower().startswith(low) if prefix else jobs.job_name(o).lower() == low
        )
    if names.is_arn(needle):
        needle = names.parse_arn(needle, "filters").resource
    with_revision = ":" in needle

    def match(o: JsonDict) -> bool:
        ref = jobs.definition_ref(o)
        text = ref if with_revision or prefix else ref.partition(":")[0]
        return text.startswith(needle) if prefix else text == needle

    return match


async def list_jobs(ctx: Context, body: Any) -> JsonDict:
    r = Reader(body)
    r.only(
        (
            "jobQueue",
            "arrayJobId",
            "multiNodeJobId",
            "jobStatus",
            "maxResults",
            "nextToken",
            "filters",
        )
    )
    status = r.string("jobStatus", enum=jobs.STATUSES)
    token = r.string("nextToken", max_len=4096)
    filters = r.structs("filters", max_items=1)
    if filters:
        filters[0].only(("name", "values"))
        fname = filters[0].req_str("name", enum=LIST_FILTERS)
        values = filters[0].strings("values", required=True, max_items=1, max_len=2048) or []
        if len(values) != 1:
            raise ClientError("filters[0].values needs exactly one value")
    limit = r.integer("maxResults", lo=1, hi=1000) or (100 if filters else 1000)
    if filters:
        limit = min(limit, 100)
    queue_text, array_id = r.string("jobQueue", max_len=2048), r.string("arrayJobId", max_len=2048)
    mnp_id = r.string("multiNodeJobId", max_len=2048)
    if sum(x is not None for x in (queue_text, array_id, mnp_id)) != 1:
        raise ClientError("give exactly one of jobQueue, arrayJobId and multiNodeJobId")
    place = await _place(ctx)
    digest = pagination.query_digest(
        {
            k: body.get(k)
            for k in ("jobQueue", "arrayJobId", "multiNodeJobId", "jobStatus", "filters")
        }
    )
    if mnp_id is not None:
        ref = names.parse_job_id(mnp_id, ctx.region, ctx.account, "multiNodeJobId", ctx.namespace)
        plain = ref is not None and ref.index is None and ref.node is None
        parent = await lookup.job(ctx, ref.name) if ref is not None and plain else None
        record = await _node_record(ctx, parent) if parent is not None else None
        if parent is None or record is None:
            raise ClientError(f"multiNodeJobId: {mnp_id[:200]!r} is not a multi-node job of yours")
        want = status or "RUNNING"
        all_nodes = _nodes(parent, record).values()
        picked = [n for n in all_nodes if filters or n.status == want]
        if filters:
            keep = _filter(fname, values[0], place)
            picked = picked if keep(parent) else []
        chosen_nodes, nxt = pagination.page(
            picked, lambda n: [n.index], token=token, limit=limit, digest=digest
        )
        summaries = [views.summary(parent, place, node=n) for n in chosen_nodes]
    elif array_id is not None:
        ref = names.parse_job_id(array_id, ctx.region, ctx.account, "arrayJobId", ctx.namespace)
        parent = await lookup.job(ctx, ref.name) if ref is not None and ref.index is None else None
        if parent is None or not (parent.get("spec") or {}).get("arrayProperties"):
            raise ClientError(f"arrayJobId: {array_id[:200]!r} is not an array job of yours")
        want = status or "RUNNING"
        kids = [c for c in (await _children(ctx, parent)).values() if c.status == want]
        chosen, nxt = pagination.page(
            kids, lambda c: [c.index], token=token, limit=limit, digest=digest
        )
        summaries = [views.summary(parent, place, child=c) for c in chosen]
    else:
        assert queue_text is not None
        queue = await lookup.queue(ctx, queue_text)
        qname = queue["metadata"]["name"]
        objs = [
            o
            for o in await ctx.list(BATCHJOBS, ctx.namespace)
            if (o.get("spec") or {}).get("jobQueue") == qname
        ]
        if filters:
            keep = _filter(fname, values[0], place)
            objs = [o for o in objs if keep(o)]
        else:
            want = status or "RUNNING"
            objs = [
                o for o in objs if jobs.aws_status((o.get("status") or {}).get("phase")) == want
            ]
        chosen_objs, nxt = pagination.page(
            objs,
            lambda o: [-jobs.created_ms(o), str(o["metadata"]["name"])],
            token=token,
            limit=limit,
            digest=digest,
        )
        summaries = [views.summary(o, place) for o in chosen_objs]
    out: JsonDict = {"jobSummaryList": summaries}
    if nxt:
        out["nextToken"] = nxt
    return out


async def _stop(ctx: Context, job_id: str, reason: str, operation: str) -> None:
    ref = names.parse_job_id(job_id, ctx.region, ctx.account, namespace=ctx.namespace)
    if ref is None:
        raise ClientError(f"jobId: {job_id[:200]!r} is not a job id of yours")
    if ref.index is not None or ref.node is not None:
        raise not_supported(
            f"{operation} of one child or node of a job ({job_id[:200]})",
            f"stop the job {ref.name}",
        )
    for _ in range(5):
        obj = await lookup.job(ctx, ref.name)
        if obj is None:
            raise ClientError(f"jobId: job {ref.name!r} does not exist")
        phase = (obj.get("status") or {}).get("phase")
        if phase in ("Succeeded", "Failed") or (obj.get("spec") or {}).get("terminate"):
            return
        if operation == "CancelJob" and phase not in WAITING:
            return  # AWS: a job already STARTING or RUNNING is not cancelled
        patch = {
            "metadata": {
                "resourceVersion": obj["metadata"].get("resourceVersion"),
                "annotations": {names.STOPPED: operation},
            },
            "spec": {"terminate": {"reason": reason}},
        }
        try:
            await ctx.kube.patch(BATCHJOBS, ref.name, patch, ctx.namespace)
            return
        except ApiError as exc:
            if exc.status != 409:
                raise translate(exc, f"stopping job {ref.name}") from exc
        except KUBE_ERRORS as exc:
            raise translate(exc, f"stopping job {ref.name}") from exc
    raise ClientError(f"job {ref.name} keeps changing; try again")


async def cancel_job(ctx: Context, body: Any) -> JsonDict:
    r = Reader(body)
    r.only(("jobId", "reason"))
    await _stop(
        ctx, r.req_str("jobId", max_len=2048), r.req_str("reason", max_len=1024), "CancelJob"
    )
    return {}


async def terminate_job(ctx: Context, body: Any) -> JsonDict:
    r = Reader(body)
    r.only(("jobId", "reason"))
    await _stop(
        ctx, r.req_str("jobId", max_len=2048), r.req_str("reason", max_len=1024), "TerminateJob"
    )
    return {}


async def _stop_many(ctx: Context, body: Any, operation: str) -> JsonDict:
    r = Reader(body)
    r.only(("jobs", "reason"))
    ids = r.strings("jobs", required=True, max_items=100, max_len=2048) or []
    reason = r.req_str("reason", max_len=1024)
    ok: list[str] = []
    errors: list[JsonDict] = []
    for job_id in ids:
        try:
            await _stop(ctx, job_id, reason, operation)
            ok.append(job_id)
        except ClientError as exc:
            errors.append({"job": job_id, "code": exc.code, "message": exc.message})
    return {"successful": ok, "errors": errors}


async def cancel_jobs(ctx: Context, body: Any) -> JsonDict:
    return await _stop_many(ctx, body, "CancelJob")


async def terminate_jobs(ctx: Context, body: Any) -> JsonDict:
    return await _stop_many(ctx, body, "TerminateJob")


# --------------------------------------------------------------------------- job definitions


async def register_job_definition(ctx: Context, body: Any) -> JsonDict:
    r = Reader(body)
    name = r.req_str("jobDefinitionName", pattern=names.AWS_NAME, what=names.NAME_RULE)
    existing = await lookup.revisions(ctx, name)
    revision = max((definitions.revision_of(d) for d in existing), default=0) + 1
    for _ in range(10):
        manifest = definitions.build(r, ctx.namespace, revision)
        await check_consumables(ctx, manifest)
        try:
            problems = validate_job_definition(parse_job_definition(manifest))
        except InvalidResource as err:
            raise _problems("invalid job definition", err.problems) from err
        if problems:
            raise _problems("invalid job definition", problems)
        try:
            await ctx.kube.create(JOBDEFINITIONS, manifest, ctx.namespace)
        except ApiError as exc:
            if exc.status == 409:
                revision += 1  # registered concurrently: take the next number
                continue
            raise translate(exc, "registering the job definition") from exc
        except KUBE_ERRORS as exc:
            raise translate(exc, "registering the job definition") from exc
        return {
            "jobDefinitionName": name,
            "jobDefinitionArn": definitions.arn(manifest, ctx.region, ctx.account),
            "revision": revision,
        }
    raise ClientError(f"job definition {name!r} is being registered concurrently; try again")


async def describe_job_definitions(ctx: Context, body: Any) -> JsonDict:
    r = Reader(body)
    r.only(("jobDefinitions", "maxResults", "jobDefinitionName", "status", "nextToken"))
    wanted = [
        names.parse_definition_ref(t, f"jobDefinitions[{i}]")
        for i, t in enumerate(r.strings("jobDefinitions", max_items=100, max_len=2048) or [])
    ]
    by_name = r.string("jobDefinitionName", pattern=names.AWS_NAME, what=names.NAME_RULE)
    status = r.string("status", enum=(definitions.ACTIVE, definitions.INACTIVE))
    limit = r.integer("maxResults", lo=1, hi=100) or 100
    token = r.string("nextToken", max_len=4096)
    objs = await ctx.list(JOBDEFINITIONS, ctx.namespace)

    def keep(o: JsonDict) -> bool:
        name, rev = names.aws_name(o), definitions.revision_of(o)
        if wanted and not any(w.name == name and w.revision in (None, rev) for w in wanted):
            return False
        if by_name is not None and name != by_name:
            return False
        return status is None or definitions.status_of(o) == status

    digest = pagination.query_digest([str(w) for w in wanted] + [by_name, status])
    chosen, nxt = pagination.page(
        [o for o in objs if keep(o)],
        lambda o: [names.aws_name(o), definitions.revision_of(o)],
        token=token,
        limit=limit,
        digest=digest,
    )
    out: JsonDict = {
        "jobDefinitions": [definitions.view(o, ctx.region, ctx.account) for o in chosen]
    }
    if nxt:
        out["nextToken"] = nxt
    return out


async def deregister_job_definition(ctx: Context, body: Any) -> JsonDict:
    r = Reader(body)
    r.only(("jobDefinition",))
    ref = names.parse_definition_ref(r.req_str("jobDefinition", max_len=2048))
    if ref.revision is None:
        raise ClientError("jobDefinition: give name:revision or the ARN of the revision")
    obj = await lookup.definition(ctx, ref, active=False)
    await ctx.patch(
        JOBDEFINITIONS,
        str(obj["metadata"]["name"]),
        {"metadata": {"annotations": {names.STATUS: definitions.INACTIVE}}},
        ctx.namespace,
    )
    return {}
