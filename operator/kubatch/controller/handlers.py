"""kopf registrations: thin handlers that parse, feed the operator's state and wake the loop.

Only event-watching handlers (``@kopf.on.event``) are used: they keep no progress or diff-base
annotations on the objects, so kopf itself adds no API writes per object. Run with
``kopf run -m kubatch.controller.handlers --standalone --all-namespaces`` or
``kubatch operator``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from typing import Any

import kopf

from kubatch.adapters.kube import (
    BATCHJOBS,
    COMPUTEENVIRONMENTS,
    JOBDEFINITIONS,
    JOBQUEUES,
    JOBS,
    NAMESPACES,
    NODES,
    PODS,
    Kube,
)
from kubatch.controller.loop import Loop
from kubatch.controller.operator import Operator
from kubatch.metrics import Metrics
from kubatch.render import labels as L

GROUP, VERSION = "kubatch.io", "v1alpha1"


class NoDiffBase(kopf.DiffBaseStorage):
    """kubatch registers only event handlers: kopf needs no diff-base of any object.

    kopf would otherwise deep-copy every event's body to build one (the largest share of
    the operator's CPU in the e2e benchmark), and never use it.
    """

    def build(self, *, body: Any, extra_fields: Any = None) -> Any:
        return None

    def fetch(self, *, body: Any) -> Any:
        return None

    def store(self, *, body: Any, patch: Any, essence: Any) -> None:
        return None


def _op(memo: Any) -> Operator:
    op: Operator = memo.op
    return op


def _deleted(event: Any) -> bool:
    return bool(event.get("type") == "DELETED")


@kopf.on.startup(id="kubatch_startup")
async def operator_startup(
    memo: Any, settings: kopf.OperatorSettings, logger: Any, **_: Any
) -> None:
    settings.posting.enabled = False
    settings.persistence.diffbase_storage = NoDiffBase()
    settings.scanning.disabled = True
    settings.watching.server_timeout = 600
    settings.watching.client_timeout = 660
    settings.networking.request_timeout = 120
    # kopf keeps a worker (and the last event body) per object until it idles out: keep that
    # short, thousands of BatchJobs would otherwise each hold a full body in memory.
    settings.batching.idle_timeout = 2.0
    metrics: Metrics | None = getattr(memo, "metrics", None)
    if metrics is None:
        metrics = Metrics()
        port = int(os.environ.get("KUBATCH_METRICS_PORT", "0") or 0)
        if port:
            metrics.start_http_server(port, os.environ.get("KUBATCH_METRICS_ADDR", "127.0.0.1"))
    kube = await Kube.from_environment(
        os.environ.get("KUBECONFIG") or None, on_write=metrics.count_write
    )
    op = Operator(kube, metrics)
    memo.op = op
    namespaces = getattr(memo, "namespaces", None)
    await rebuild(op, namespaces)
    op.ready.set()
    memo.loop_task = asyncio.create_task(Loop(op).run(), name="kubatch-scheduler")
    memo.watch_tasks = start_owned_watches(op, namespaces)
    logger.info("kubatch: cache rebuilt (%d jobs); scheduler running", len(op.records))


async def rebuild(op: Operator, namespaces: list[str] | None = None) -> None:
    """Restart safety: read the whole state from the cluster before admitting anything."""
    kube = op.kube
    for node in await kube.list(NODES):
        op.on_node(node)
    for ns in await kube.list(NAMESPACES):
        op.on_namespace(ns)
    for ce in await kube.list(COMPUTEENVIRONMENTS):
        op.on_compute_environment(ce)
    for q in await kube.list(JOBQUEUES):
        op.on_job_queue(q)
    scopes: list[str | None] = list(namespaces) if namespaces else [None]
    for ns_name in scopes:
        for jd in await kube.list(JOBDEFINITIONS, namespace=ns_name):
            op.on_job_definition(jd)
    bjs = []
    for ns_name in scopes:
        bjs.extend(await kube.list(BATCHJOBS, namespace=ns_name))
    # Jobs with a recorded definition first (restored), then new submissions in time order.
    bjs.sort(key=lambda b: (b.get("status") is None, b["metadata"].get("creationTimestamp", "")))
    for bj in bjs:
        op.on_batch_job(bj)
    selector = f"{L.MANAGED_BY}={L.MANAGER}"
    for ns_name in scopes:
        for pod in await kube.list(PODS, namespace=ns_name, labels=selector):
            op.on_pod(pod)
        for job in await kube.list(JOBS, namespace=ns_name, labels=selector):
            op.on_k8s_job(job)


def start_owned_watches(op: Operator, namespaces: list[str] | None) -> list[asyncio.Task[None]]:
    """Jobs and pods that kubatch made, watched with a server-side label selector.

    kopf filters labels on the client: it would receive every pod of the cluster. These
    watches see only kubatch's own Jobs and pods (label ``app.kubernetes.io/managed-by``).
    """
    selector = f"{L.MANAGED_BY}={L.MANAGER}"

    def feed_pod(kind: str, obj: Any) -> None:
        op.on_pod(obj, deleted=kind == "DELETED")

    def feed_job(kind: str, obj: Any) -> None:
        op.on_k8s_job(obj, deleted=kind == "DELETED")

    tasks = []
    scopes: list[str | None] = list(namespaces) if namespaces else [None]
    for ns in scopes:
        for res, feed in ((PODS, feed_pod), (JOBS, feed_job)):
            tasks.append(
                asyncio.create_task(
                    op.kube.watch(res, feed, namespace=ns, labels=selector),
                    name=f"kubatch-watch-{res.plural}-{ns or 'all'}",
                )
            )
    return tasks


@kopf.on.cleanup(id="kubatch_cleanup")
async def operator_cleanup(memo: Any, **_: Any) -> None:
    for watch in getattr(memo, "watch_tasks", None) or []:
        watch.cancel()
    task = getattr(memo, "loop_task", None)
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
    op = getattr(memo, "op", None)
    if op is not None:
        await op.kube.close()


@kopf.on.event(GROUP, VERSION, "batchjobs", id="batchjob_event")
async def batchjob_event(event: Any, memo: Any, **_: Any) -> None:
    _op(memo).on_batch_job(event["object"], deleted=_deleted(event))


@kopf.on.event(GROUP, VERSION, "jobdefinitions", id="jobdefinition_event")
async def jobdefinition_event(event: Any, memo: Any, **_: Any) -> None:
    _op(memo).on_job_definition(event["object"], deleted=_deleted(event))


@kopf.on.event(GROUP, VERSION, "jobqueues", id="jobqueue_event")
async def jobqueue_event(event: Any, memo: Any, **_: Any) -> None:
    _op(memo).on_job_queue(event["object"], deleted=_deleted(event))


@kopf.on.event(GROUP, VERSION, "computeenvironments", id="computeenvironment_event")
async def computeenvironment_event(event: Any, memo: Any, **_: Any) -> None:
    _op(memo).on_compute_environment(event["object"], deleted=_deleted(event))


@kopf.on.event("", "v1", "nodes", id="node_event")
async def node_event(event: Any, memo: Any, **_: Any) -> None:
    _op(memo).on_node(event["object"], deleted=_deleted(event))


@kopf.on.event("", "v1", "namespaces", id="namespace_event")
async def namespace_event(event: Any, memo: Any, **_: Any) -> None:
    _op(memo).on_namespace(event["object"], deleted=_deleted(event))


logging.getLogger("kopf.objects").setLevel(logging.WARNING)
