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
from typing import Any

import kopf

from kubatch.adapters import calls
from kubatch.adapters.kube import Kube
from kubatch.controller.operator import Operator
from kubatch.controller.settings import Settings
from kubatch.controller.webhook import Webhook
from kubatch.metrics import Metrics

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
    cfg: Settings = memo.settings
    metrics: Metrics = memo.metrics
    hook = cfg.webhook
    needs = calls.needs(webhook=hook.enabled, own_certs=hook.own_certs, register=hook.register)
    kube = await Kube.from_environment(
        memo.kubeconfig,
        on_write=metrics.count_write,
        allowed=calls.allowed(needs) if cfg.strict_calls else None,
    )
    op = Operator(kube, cfg, metrics)
    memo.op = op
    if hook.enabled and getattr(memo, "webhook_task", None) is None:
        # Served at once, by every replica: it needs none of the state (and once: kopf
        # retries this handler when the rebuild fails).
        webhook = Webhook(kube, hook, namespace=kube.namespace, metrics=metrics)
        memo.webhook_task = asyncio.create_task(webhook.run(), name="kubatch-webhook")
    await op.rebuild()
    memo.loop_task = asyncio.create_task(op.loop.run(), name="kubatch-scheduler")
    memo.watch_tasks = op.owned_watches()
    logger.info("kubatch: cache rebuilt (%d jobs); scheduler running", len(op.jobs))


@kopf.on.cleanup(id="kubatch_cleanup")
async def operator_cleanup(memo: Any, **_: Any) -> None:
    for watch in getattr(memo, "watch_tasks", None) or []:
        watch.cancel()
    for name in ("loop_task", "webhook_task"):
        task = getattr(memo, name, None)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
    op = getattr(memo, "op", None)
    if op is not None:
        await op.kube.close()


@kopf.on.event(GROUP, VERSION, "batchjobs", id="batchjob_event")
async def batchjob_event(event: Any, memo: Any, **_: Any) -> None:
    _op(memo).intake.on_batch_job(event["object"], deleted=_deleted(event))


@kopf.on.event(GROUP, VERSION, "jobdefinitions", id="jobdefinition_event")
async def jobdefinition_event(event: Any, memo: Any, **_: Any) -> None:
    _op(memo).intake.on_job_definition(event["object"], deleted=_deleted(event))


@kopf.on.event(GROUP, VERSION, "jobqueues", id="jobqueue_event")
async def jobqueue_event(event: Any, memo: Any, **_: Any) -> None:
    _op(memo).intake.on_job_queue(event["object"], deleted=_deleted(event))


@kopf.on.event(GROUP, VERSION, "computeenvironments", id="computeenvironment_event")
async def computeenvironment_event(event: Any, memo: Any, **_: Any) -> None:
    _op(memo).intake.on_compute_environment(event["object"], deleted=_deleted(event))


@kopf.on.event(GROUP, VERSION, "consumableresources", id="consumableresource_event")
async def consumableresource_event(event: Any, memo: Any, **_: Any) -> None:
    _op(memo).intake.on_consumable_resource(event["object"], deleted=_deleted(event))


@kopf.on.event("", "v1", "nodes", id="node_event")
async def node_event(event: Any, memo: Any, **_: Any) -> None:
    _op(memo).intake.on_node(event["object"], deleted=_deleted(event))


@kopf.on.event("", "v1", "namespaces", id="namespace_event")
async def namespace_event(event: Any, memo: Any, **_: Any) -> None:
    _op(memo).intake.on_namespace(event["object"], deleted=_deleted(event))


logging.getLogger("kopf.objects").setLevel(logging.WARNING)
