"""The objects each insight answer is built from, gathered through kubatch's one client.

The only effectful module of :mod:`kubatch.insight`: async functions over
:class:`kubatch.adapters.kube.Kube` (reads only, plus the server-side dry run of ``plan``),
so that the kubectl plugin (which drives them from its own event loop) and the web console
(which awaits them) ask the cluster the same questions the same way. Lists that need rights
the caller may not have (every namespace, cluster-wide Jobs) fall back to the caller's own
namespace and say so in the returned notes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kubatch.adapters.kube import (
    BATCHJOBS,
    COMPUTEENVIRONMENTS,
    CONFIGMAPS,
    JOBDEFINITIONS,
    JOBQUEUES,
    JOBS,
    NODES,
    PODS,
    ApiError,
    Kube,
    Resource,
)
from kubatch.api import labels as L
from kubatch.api.records import parse_rows
from kubatch.core.catalogue import DEFAULT, Catalogue
from kubatch.insight import logs, plan, rates, timeline, top
from kubatch.insight.objects import InsightError, Obj, name_of

KUBATCH_MADE = f"{L.MANAGED_BY}={L.MANAGER}"


@dataclass
class Scoped:
    """Items listed, and a note when the list had to be narrowed to one namespace."""

    items: list[Obj]
    note: str | None = None
    notes: list[str] = field(default_factory=list)


async def list_wide(
    kube: Kube, res: Resource, namespace: str, *, labels: str | None = None
) -> Scoped:
    """Every namespace's objects if the caller may list them, else ``namespace``'s."""
    try:
        return Scoped(await kube.list(res, labels=labels))
    except ApiError as err:
        if not err.forbidden:
            raise
    items = await kube.list(res, namespace=namespace, labels=labels)
    return Scoped(items, f"{res.plural} of namespace {namespace} only (no right to list all)")


async def get_or_none(
    kube: Kube, res: Resource, name: str, namespace: str | None = None
) -> Obj | None:
    try:
        return await kube.get(res, name, namespace)
    except ApiError as err:
        if err.not_found:
            return None
        raise


# --------------------------------------------------------------------------- timeline


async def timeline_sources(
    kube: Kube,
    namespace: str | None,
    *,
    names: Sequence[str] = (),
    queue: str | None = None,
    labels: str | None = None,
) -> timeline.Sources:
    """The BatchJobs of ``namespace`` (every namespace: ``None``) — only ``names`` / of
    ``queue`` / matching ``labels`` when given — with kubatch's Jobs, pods and array
    records there."""
    jobs = await kube.list(BATCHJOBS, namespace=namespace, labels=labels)
    if names:
        wanted = set(names)
        missing = wanted - {name_of(j) for j in jobs}
        if missing:
            raise InsightError(f"batchjob(s) not found: {', '.join(sorted(missing))}")
        jobs = [j for j in jobs if name_of(j) in wanted]
    if queue:
        jobs = [j for j in jobs if (j.get("spec") or {}).get("jobQueue") == queue]
    k8s_jobs = await kube.list(JOBS, namespace=namespace, labels=KUBATCH_MADE)
    pods = await kube.list(PODS, namespace=namespace, labels=KUBATCH_MADE)
    cms = await kube.list(CONFIGMAPS, namespace=namespace, labels=L.ARRAY_RECORD)
    uids = {str((j.get("metadata") or {}).get("uid")) for j in jobs}

    def ours(o: Mapping[str, Any]) -> bool:
        return str(((o.get("metadata") or {}).get("labels") or {}).get(L.BATCHJOB_UID)) in uids

    return timeline.Sources(
        jobs=jobs,
        k8s_jobs=[j for j in k8s_jobs if ours(j)],
        pods=[p for p in pods if ours(p)],
        configmaps=cms,
    )


# --------------------------------------------------------------------------- plan


async def dry_run_create(kube: Kube, body: Mapping[str, Any], namespace: str) -> str | None:
    """Create ``body`` with ``dryRun=All``: the API server checks it (schema, admission
    webhooks) and stores nothing. ``None`` when it would be accepted, else its message."""
    try:
        await kube.request(
            "POST",
            BATCHJOBS.path(namespace),
            body=dict(body),
            params={"dryRun": "All"},
            resource="batchjobs",
        )
    except ApiError as err:
        if err.status in (400, 403, 409, 422):
            return f"the API server would reject it ({err.status} {err.reason}): {err.message}"
        raise
    return None


async def plan_job(
    kube: Kube,
    job_body: Mapping[str, Any],
    namespace: str,
    *,
    now: float,
    definition_body: Mapping[str, Any] | None = None,
    duration: float | None = None,
    window: float = rates.DEFAULT_WINDOW,
    catalogue: Catalogue = DEFAULT,
    server_dry_run: bool = True,
) -> plan.Plan:
    """Everything :func:`kubatch.insight.plan.build_plan` needs, read from the cluster; then
    the plan. ``definition_body`` (e.g. from the same file) wins over the cluster's."""
    body = dict(job_body)
    meta = dict(body.get("metadata") or {})
    ns = str(meta.get("namespace") or namespace)
    meta["namespace"] = ns
    body["metadata"] = meta
    spec = body.get("spec") or {}
    defn = definition_body
    if defn is None and spec.get("jobDefinition"):
        defn = await get_or_none(kube, JOBDEFINITIONS, str(spec["jobDefinition"]), ns)
    queue_name = str(spec.get("jobQueue") or "")
    queue = await get_or_none(kube, JOBQUEUES, queue_name) if queue_name else None
    ces: dict[str, Obj] = {}
    for o in (queue or {}).get("spec", {}).get("computeEnvironmentOrder") or []:
        ce = await get_or_none(kube, COMPUTEENVIRONMENTS, str(o.get("computeEnvironment")))
        if ce is not None:
            ces[name_of(ce)] = ce
    unmanaged = any((c.get("spec") or {}).get("type") == "Unmanaged" for c in ces.values())
    nodes = await kube.list(NODES) if unmanaged else []
    admitted = await list_wide(kube, JOBS, ns, labels=f"{L.QUEUE}={queue_name}")
    waiting = await list_wide(kube, BATCHJOBS, ns)
    measured = rates.admission_rate(rates.admission_times(admitted.items, queue_name), now, window)
    rate = rates.published_rate(queue, measured)
    ahead = rates.waiting_ahead(waiting.items, queue_name, rates.running_uids(admitted.items))
    if waiting.note:  # only the caller's namespace: the queue's own count covers the others
        ahead = max(ahead, rates.queue_waiting(queue))
    result = plan.build_plan(
        body,
        defn,
        queue,
        ces,
        now=now,
        rate=rate,
        ahead=ahead,
        nodes=nodes,
        catalogue=catalogue,
        duration=duration,
        namespace=ns,
        # The operator's estimates (and rate) divide by a fixed 10 minutes: far too late for a
        # queue that started admitting lately. They are the floor only when we measure nothing.
        floor=rates.last_estimate(waiting.items, queue_name) if rate is not measured else None,
    )
    extra: list[str] = [n for n in (admitted.note, waiting.note) if n]
    problems = list(result.problems)
    if server_dry_run:
        create = dict(body)
        if not (create.get("metadata") or {}).get("name"):
            create["metadata"] = {**create["metadata"], "generateName": "plan-"}
        rejected = await dry_run_create(kube, create, ns)
        if rejected:
            problems.insert(0, rejected)
    if extra or problems != list(result.problems):
        from dataclasses import replace

        result = replace(
            result,
            problems=tuple(problems),
            notes=result.notes + tuple(f"counted from {n}" for n in extra),
        )
    return result


# --------------------------------------------------------------------------- top


async def top_view(
    kube: Kube,
    namespace: str,
    *,
    now: float,
    window: float = rates.DEFAULT_WINDOW,
    catalogue: Catalogue = DEFAULT,
) -> Obj:
    """Queues and compute environments now (see :func:`kubatch.insight.top.top_view`)."""
    queues = await kube.list(JOBQUEUES)
    ces = await kube.list(COMPUTEENVIRONMENTS)
    nodes = await kube.list(NODES, labels=L.COMPUTE_ENVIRONMENT)
    k8s_jobs = await list_wide(kube, JOBS, namespace, labels=KUBATCH_MADE)
    jobs = await list_wide(kube, BATCHJOBS, namespace)
    view = top.top_view(
        queues,
        ces,
        now=now,
        nodes=nodes,
        k8s_jobs=k8s_jobs.items,
        jobs=jobs.items,
        window=window,
        catalogue=catalogue,
    )
    view["notes"] = [n for n in (k8s_jobs.note, jobs.note) if n]
    return view


# --------------------------------------------------------------------------- logs


async def log_target(
    kube: Kube, namespace: str, name: str, *, attempt: int | None, index: int | None
) -> logs.LogTarget:
    """The attempt whose log to read (see :func:`kubatch.insight.logs.log_target`)."""
    job = await get_or_none(kube, BATCHJOBS, name, namespace)
    if job is None:
        raise InsightError(f'batchjob "{name}" not found in namespace "{namespace}"')
    row = None
    child_jobs: list[Obj] = []
    if index is not None and (job.get("spec") or {}).get("arrayProperties"):
        uid = str((job.get("metadata") or {}).get("uid"))
        child_jobs = await kube.list(
            JOBS, namespace=namespace, labels=f"{L.BATCHJOB_UID}={uid},{L.ARRAY_INDEX}={index}"
        )
        cms = await kube.list(CONFIGMAPS, namespace=namespace, labels=L.ARRAY_RECORD)
        for cm in cms:
            owners = (cm.get("metadata") or {}).get("ownerReferences") or []
            if any(o.get("uid") == uid for o in owners):
                for r in parse_rows(str((cm.get("data") or {}).get("children.tsv", ""))):
                    if r.index == index:
                        row = r
    return logs.log_target(job, attempt=attempt, index=index, row=row, child_jobs=child_jobs)


async def log_pod(kube: Kube, target: logs.LogTarget) -> Obj:
    """The pod of the target's attempt."""
    pods = await kube.list(PODS, namespace=target.namespace, labels=target.pod_selector)
    if not pods and target.pod:
        pod = await get_or_none(kube, PODS, target.pod, target.namespace)
        pods = [pod] if pod is not None else []
    return dict(logs.choose_pod(pods, target))


async def log_lines(
    kube: Kube,
    pod: Mapping[str, Any],
    *,
    container: str | None = None,
    follow: bool = False,
    tail_lines: int | None = None,
    timestamps: bool = False,
) -> AsyncIterator[str]:
    """The lines of the pod's container log (following it with ``follow``)."""
    meta = pod.get("metadata") or {}
    name, ns = str(meta.get("name")), str(meta.get("namespace"))
    chosen = logs.container_of(pod, container)
    waiting = logs.pod_waiting(pod)
    if waiting is not None and not follow:
        raise InsightError(f"pod {name} has no log yet: {waiting}")
    try:
        async for line in kube.logs(
            ns, name, container=chosen, follow=follow, tail_lines=tail_lines, timestamps=timestamps
        ):
            yield line
    except ApiError as err:
        raise InsightError(
            f"cannot read the log of pod {name} (container {chosen}): {err.status} {err.message}"
        ) from None


async def wait_started(kube: Kube, pod: Obj, *, every: float = 1.0, limit: float = 600.0) -> Obj:
    """The pod again once its container has started (or ended): a followed log starts there.
    Gives up after ``limit`` seconds with :class:`InsightError` (saying why it waits)."""
    import asyncio

    waited = 0.0
    while (why := logs.pod_waiting(pod)) is not None:
        if waited >= limit:
            raise InsightError(f"the pod has not started after {limit:.0f} s: {why}")
        await asyncio.sleep(every)
        waited += every
        meta = pod.get("metadata") or {}
        pod = await kube.get(PODS, str(meta.get("name")), str(meta.get("namespace")))
    return pod
