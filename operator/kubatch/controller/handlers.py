"""kopf registrations: thin handlers that parse, feed the operator's state and wake the loop.

Only event-watching handlers (``@kopf.on.event``) are used: they keep no progress or diff-base
annotations on the objects, so kopf itself adds no API writes per object. Every event goes to
the process's :class:`~kubatch.controller.replica.Replica`: to the operator while this
replica leads, to the standby's mirror otherwise. Run with ``kubatch operator``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import kopf

from kubatch.adapters import calls
from kubatch.adapters.kube import (
    BATCHJOBS,
    COMPUTEENVIRONMENTS,
    CONSUMABLERESOURCES,
    JOBDEFINITIONS,
    JOBQUEUES,
    NAMESPACES,
    NODES,
    Kube,
    Resource,
)
from kubatch.controller.leader import LeaderElector
from kubatch.controller.replica import Replica
from kubatch.controller.settings import Settings
from kubatch.controller.webhook import Webhook
from kubatch.metrics import Metrics

JsonDict = dict[str, Any]

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


def _feed(memo: Any, res: Resource, event: Any) -> None:
    replica: Replica = memo.replica
    replica.feed(res, event["object"], deleted=event.get("type") == "DELETED")
    if event.get("type") is None:  # kopf's first list of the kind (its watch then follows)
        replica.replayed(res)


def build_replica(kube: Kube, cfg: Settings, metrics: Metrics) -> Replica:
    """The replica, with leader election on a Lease in the operator's namespace unless
    disabled."""
    election = cfg.election
    if not election.enabled:
        return Replica(kube, cfg, metrics)

    def elector(on_change: Any) -> LeaderElector:
        return LeaderElector(
            kube,
            namespace=election.namespace or kube.namespace,
            name=election.name,
            identity=cfg.identity,
            timings=election.timings,
            on_change=on_change,
            metrics=metrics,
        )

    return Replica(kube, cfg, metrics, elector=elector)


@kopf.on.startup(id="kubatch_startup")
async def operator_startup(
    memo: Any, settings: kopf.OperatorSettings, logger: Any, **_: Any
) -> None:
    settings.posting.enabled = False
    settings.persistence.diffbase_storage = NoDiffBase()
    settings.scanning.disabled = True
    settings.watching.server_timeout = 600
    settings.watching.client_timeout = 660
    # kopf's first list of each kind (a replay of every object, thousands after a restart)
    # comes in pages: one answer of 10,000 BatchJobs held ≈ 90 MB of small objects while
    # replayed, and the heap it grew stays with the process.
    settings.watching.chunk_size = 500
    settings.networking.request_timeout = 120
    # kopf keeps a worker (and the last event body) per object until it idles out: keep that
    # short, thousands of BatchJobs would otherwise each hold a full body in memory.
    settings.batching.idle_timeout = 2.0
    # kopf holds each object's events this long to hand over only the last of a burst (0.1 s
    # by default): every new BatchJob would wait that long before the scheduler hears of
    # it. The intake is idempotent and cheap per event, so a short window is enough.
    settings.batching.batch_window = 0.01
    cfg: Settings = memo.settings
    metrics: Metrics = memo.metrics
    hook = cfg.webhook
    needs = calls.needs(webhook=hook.enabled, own_certs=hook.own_certs, register=hook.register,
                        election=cfg.election.enabled)  # fmt: skip
    kube = await Kube.from_environment(
        memo.kubeconfig,
        on_write=metrics.count_write,
        allowed=calls.allowed(needs) if cfg.strict_calls else None,
    )
    memo.kube = kube
    if hook.enabled and getattr(memo, "webhook_task", None) is None:
        # Served at once, by every replica, leading or not: it needs none of the state (and
        # once: kopf retries this handler when the start fails).
        def known(res: Resource, name: str, namespace: str | None) -> JsonDict | None:
            replica: Replica | None = getattr(memo, "replica", None)
            return replica.known(res, name, namespace) if replica is not None else None

        webhook = Webhook(kube, hook, namespace=kube.namespace, metrics=metrics, known=known)
        memo.webhook_task = asyncio.create_task(webhook.run(), name="kubatch-webhook")
    replica = build_replica(kube, cfg, metrics)
    memo.replica = replica
    await replica.start()
    role = "leading" if replica.leading else "standing by"
    logger.info("kubatch: %s started (%s)", cfg.identity, role)


@kopf.on.probe(id="leader")
async def leader_probe(memo: Any, **_: Any) -> dict[str, Any]:
    """/healthz says who leads (kopf serves the probes' results as JSON)."""
    replica: Replica | None = getattr(memo, "replica", None)
    return replica.describe() if replica is not None else {}


@kopf.on.cleanup(id="kubatch_cleanup")
async def operator_cleanup(memo: Any, **_: Any) -> None:
    replica: Replica | None = getattr(memo, "replica", None)
    if replica is not None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(replica.stop(release=True), timeout=10)
    task = getattr(memo, "webhook_task", None)
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
    kube: Kube | None = getattr(memo, "kube", None)
    if kube is not None:
        await kube.close()


@kopf.on.event(GROUP, VERSION, "batchjobs", id="batchjob_event")
async def batchjob_event(event: Any, memo: Any, **_: Any) -> None:
    _feed(memo, BATCHJOBS, event)


@kopf.on.event(GROUP, VERSION, "jobdefinitions", id="jobdefinition_event")
async def jobdefinition_event(event: Any, memo: Any, **_: Any) -> None:
    _feed(memo, JOBDEFINITIONS, event)


@kopf.on.event(GROUP, VERSION, "jobqueues", id="jobqueue_event")
async def jobqueue_event(event: Any, memo: Any, **_: Any) -> None:
    _feed(memo, JOBQUEUES, event)


@kopf.on.event(GROUP, VERSION, "computeenvironments", id="computeenvironment_event")
async def computeenvironment_event(event: Any, memo: Any, **_: Any) -> None:
    _feed(memo, COMPUTEENVIRONMENTS, event)


@kopf.on.event(GROUP, VERSION, "consumableresources", id="consumableresource_event")
async def consumableresource_event(event: Any, memo: Any, **_: Any) -> None:
    _feed(memo, CONSUMABLERESOURCES, event)


@kopf.on.event("", "v1", "nodes", id="node_event")
async def node_event(event: Any, memo: Any, **_: Any) -> None:
    _feed(memo, NODES, event)


@kopf.on.event("", "v1", "namespaces", id="namespace_event")
async def namespace_event(event: Any, memo: Any, **_: Any) -> None:
    _feed(memo, NAMESPACES, event)


logging.getLogger("kopf.objects").setLevel(logging.WARNING)
