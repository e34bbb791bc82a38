"""Attempts kubatch stops on purpose: preemption, gangs released, multi-node terminates.

A preempted attempt (``Preempt``) and a gang released by its start timer (``Terminate`` with
reason ``GangStartTimeout``) have their Kubernetes Jobs deleted in the *foreground*: a Job
disappears only once its pods have ended, each within its own termination grace period
(``terminationGracePeriodSeconds`` of the pod template, 30 s by default: SIGTERM, then
SIGKILL). Until then the attempt keeps its capacity — the preemptor waits — and its end, seen
by ``Attempts`` when the pod is gone, comes back to the core as an interruption that the core
turns into a retry counting against nothing (``kubatch.core.preemption.released_end``). The
attempt is recorded with reason ``Preempted`` / ``GangStartTimeout``; the victim gets a
Warning Event naming its preemptor, and ``kubatch_job_preemptions_total`` counts it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from kubatch.adapters.kube import JOBS, ApiError
from kubatch.adapters.protocol import KubeApi
from kubatch.controller.records import EventLog, JobBook, JobRecord
from kubatch.core.decisions import Preempt, Retry, Terminate
from kubatch.core.holdings import RELEASES
from kubatch.core.lifecycle import Reason
from kubatch.core.naming import split_key
from kubatch.metrics import Metrics

if TYPE_CHECKING:
    from kubatch.controller.gangs import Gangs

log = logging.getLogger("kubatch.stops")


class Stops:
    """Carries out ``Preempt`` and the ``Terminate`` of multi-node attempts."""

    def __init__(
        self,
        jobs: JobBook,
        events: EventLog,
        *,
        kube: KubeApi,
        metrics: Metrics | None,
        gangs: Callable[[], Gangs | None],
    ) -> None:
        self.jobs = jobs
        self.events = events
        self.kube = kube
        self.metrics = metrics
        self.gangs = gangs

    async def preempt(self, d: Preempt) -> None:
        """Stop a victim: its Job(s) go once its pod(s) have ended."""
        rec = self.jobs.get(d.job_key)
        if rec is None:
            return
        self.events.warn(rec.ref(), str(Reason.PREEMPTED), d.message)
        if self.metrics is not None:
            self.metrics.observe_preemption(d.queue, d.preemptor_queue)
        await self._stop(rec, d.attempt, d.k8s_job_name, foreground=True)

    async def terminate(self, d: Terminate) -> bool:
        """The Job(s) of a multi-node attempt, or a gang released whole (``False``: a plain
        Terminate, the effects' usual business)."""
        rec = self.jobs.get(d.job_key)
        released = d.reason is Reason.GANG_START_TIMEOUT
        if rec is None or not (rec.nodes_json or released):
            return False
        await self._stop(rec, d.attempt, d.k8s_job_name, foreground=released)
        return True

    async def _stop(self, rec: JobRecord, attempt: int, name: str, *, foreground: bool) -> None:
        gangs = self.gangs()
        if rec.nodes_json and gangs is not None:
            await gangs.delete_all(rec, attempt, foreground=foreground)
            return
        ns, _, _ = split_key(rec.key)
        try:
            await self.kube.delete(JOBS, name, namespace=ns, background=not foreground)
        except (ApiError, OSError, TimeoutError) as exc:
            log.warning("deleting Job %s/%s failed: %s", ns, name, exc)

    def retried(self, rec: JobRecord, d: Retry) -> bool:
        """A released attempt ends as a retry: record its reason on the attempt, count a
        gang's release (``True``: it was one of kubatch's own releases)."""
        if d.reason not in RELEASES:
            return False
        a = rec.attempt(d.attempt)
        if a is not None:
            a.update({"reason": str(d.reason), "statusReason": d.message, "interrupted": True})
        if d.reason is Reason.GANG_START_TIMEOUT:
            self.events.warn(rec.ref(), str(d.reason), d.message)
            if self.metrics is not None:
                self.metrics.observe_gang_release(rec.queue)
        return True
