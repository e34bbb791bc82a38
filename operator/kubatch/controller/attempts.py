"""Attempts: what kubatch's Kubernetes Jobs and pods say about the attempts they run.

Fed by the watches of kubatch's own Jobs and pods (server-side label selector): an attempt
starts when its pod runs, ends when its pod ends — or when the pod vanishes (its node gone,
a terminate), its Job decides without a pod, or its timeout (counted from the attempt's
start, as AWS) runs out. Everything is kept per BatchJob and forgotten with it.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kubatch.adapters.kube import JOBS, PODS, ApiError
from kubatch.adapters.protocol import KubeApi
from kubatch.api import labels as L
from kubatch.controller import convert
from kubatch.controller.children import Children
from kubatch.controller.records import JobBook, JobRecord
from kubatch.controller.registry import Registry
from kubatch.controller.settings import Timings
from kubatch.core.cache import Cache
from kubatch.core.cost import estimate_cost
from kubatch.core.lifecycle import Phase
from kubatch.core.naming import job_name_for_attempt
from kubatch.metrics import Metrics

if TYPE_CHECKING:
    from kubatch.controller.gangs import Gangs

log = logging.getLogger("kubatch.attempts")
Ident = tuple[int | None, int]
"""(array index or None, attempt number) within one BatchJob."""


@dataclass(slots=True)
class AttemptLog:
    """What is known of one BatchJob's attempts beyond the cache."""

    started: set[Ident] = field(default_factory=set)
    finished: set[Ident] = field(default_factory=set)
    nodes: dict[Ident, str] = field(default_factory=dict)
    deadlines: dict[Ident, tuple[float, convert.AttemptLabels]] = field(default_factory=dict)
    charged: dict[Ident, float] = field(default_factory=dict)  # budget: charged up to when
    waits: dict[Ident, tuple[float, convert.PodWait]] = field(default_factory=dict)
    """Attempts whose pod does not run, since when and why."""


class Attempts:
    """Feeds attempt starts and ends to the cache; stages the attempt records of plain jobs."""

    def __init__(
        self,
        cache: Cache,
        jobs: JobBook,
        registry: Registry,
        children: Children,
        *,
        kube: KubeApi,
        metrics: Metrics | None,
        clock: Callable[[], float],
        poke: Callable[[], None],
        timings: Timings,
    ) -> None:
        self.cache = cache
        self.jobs = jobs
        self.registry = registry
        self.children = children
        self.kube = kube
        self.metrics = metrics
        self.clock = clock
        self.poke = poke
        self.timings = timings
        self.logs: dict[str, AttemptLog] = {}
        self.vanished: list[tuple[str, convert.AttemptLabels, str, str | None]] = []
        self.ended: dict[str, dict[str, float]] = {}
        """Kubernetes Jobs of ended attempts, per BatchJob key (Job name -> when it ended),
        deleted after the retention (``Effects.retain``); their record stays in the status."""
        self.verdicts: list[tuple[float, str, convert.AttemptLabels, bool]] = []
        self.suspects: list[tuple[str, int | None, int, bool]] = []
        """Active attempts whose Job (False) or pod (True) a relist did not show: checked by
        ``settle`` (the object may be newer than the list), ended when really gone."""
        self.sweeps: set[tuple[str, str]] = set()  # (namespace, BatchJob uid): see ``sweep``
        self.strays: dict[tuple[str, str], int] = {}
        """(namespace, name) of Kubernetes Jobs still running for a finished BatchJob -> tries
        left: the delete of a terminate that never happened (the leader was killed or cut off
        in between, or the delete failed), replayed by ``settle``."""
        self.replays: set[tuple[str, str]] = set()
        """(namespace, Job name) of attempts whose Job existed when admitted, and whose
        replay (``replay``) the API server did not answer: tried again by ``settle``."""
        self.gangs: Gangs | None = None  # the nodes of multi-node jobs (set by the operator)

    def forget(self, key: str) -> None:
        """The BatchJob was deleted: drop what was known of its attempts (its Jobs go with it:
        they are owned)."""
        self.logs.pop(key, None)
        self.ended.pop(key, None)
        self.children.forget(key)
        self.vanished = [v for v in self.vanished if v[0] != key]
        self.verdicts = [v for v in self.verdicts if v[1] != key]
        self.suspects = [v for v in self.suspects if v[0] != key]

    def log_of(self, key: str) -> AttemptLog:
        entry = self.logs.get(key)
        if entry is None:
            entry = self.logs[key] = AttemptLog()
        return entry

    def recorded_end(self, key: str, index: int | None, number: int) -> None:
        """After a restart: this attempt's end is already in the job's status."""
        self.log_of(key).finished.add((index, number))

    def _attempt_of(self, obj: Mapping[str, Any]) -> tuple[JobRecord, convert.AttemptLabels] | None:
        labels = convert.attempt_labels(obj)
        if labels is None:
            return None
        rec = self.jobs.get(labels.key)
        if rec is None or (labels.uid and rec.uid and labels.uid != rec.uid):
            return None
        return rec, labels

    def restore_from_job(self, body: Mapping[str, Any]) -> None:
        """After a restart: the Kubernetes Job of an array child's attempt that is not behind
        the child's record is that child's attempt in progress (or just ended: its pod will
        say) — restored as Starting so that it is never admitted twice."""
        found = self._attempt_of(body)
        if found is None:
            return
        rec, lab = found
        job = self.cache.job(rec.key)
        if lab.index is None or job is None or job.array is None:
            return
        if not 0 <= lab.index < job.array.size or lab.attempt < job.array.child_attempt[lab.index]:
            return  # an older attempt than the record's
        self.cache.restore_child(rec.key, lab.index, Phase.STARTING, lab.attempt, self.clock(),
                                 lab.compute_environment)  # fmt: skip

    # ------------------------------------------------------------------ watch events

    def on_pod(self, body: Mapping[str, Any], deleted: bool = False) -> None:
        found = self._attempt_of(body)
        if found is None:
            return
        rec, lab = found
        if lab.node is not None and self.gangs is not None:
            self.gangs.on_pod(rec, lab, body, deleted)  # a node of a multi-node job
            return
        ident = (lab.index, lab.attempt)
        alog = self.log_of(rec.key)
        if ident in alog.finished or not self.cache.is_active(rec.key, lab.index, lab.attempt):
            return
        status = body.get("status") or {}
        phase = status.get("phase")
        node = (body.get("spec") or {}).get("nodeName")
        if node:
            alog.nodes[ident] = node
        now = self.clock()
        pod_name = str((body.get("metadata") or {}).get("name", ""))
        if phase in ("Running", "Succeeded", "Failed") and ident not in alog.started:
            self.started(rec, lab, convert.pod_started_at(body) or now, pod_name, node)
        if phase == "Pending" and not deleted:
            self.waiting(rec, lab, alog, convert.pod_wait(body), now)
        if phase in ("Succeeded", "Failed"):
            out = convert.pod_outcome(body)
            self.finish(rec, lab, out, pod_name, node, timed_out=out.reason == "DeadlineExceeded")
        elif deleted:
            # The pod vanished without a final status: stopped by a terminate or its timeout,
            # or its node went away. ``settle`` looks at the Job to tell.
            self.vanished.append((rec.key, lab, pod_name, node))
            self.poke()

    def started(
        self, rec: JobRecord, lab: convert.AttemptLabels, at: float, pod: str, node: str | None
    ) -> None:
        """The attempt started (its pod runs; a multi-node job's: every node's pod ran)."""
        ident = (lab.index, lab.attempt)
        alog = self.log_of(rec.key)
        alog.started.add(ident)
        if node:
            alog.nodes[ident] = node
        self.cache.attempt_started(rec.key, lab.index, lab.attempt, self.clock())
        if rec.timeout_seconds:
            alog.deadlines[ident] = (at + rec.timeout_seconds, lab)
        alog.charged[ident] = at
        if lab.index is None:
            self._started(rec, lab.attempt, pod, node, at)
        elif rec.array_size:
            self.children.started(rec.key, rec.array_size, lab.index, node,
                                  lab.compute_environment)  # fmt: skip
        self.poke()

    def waiting(
        self,
        rec: JobRecord,
        lab: convert.AttemptLabels,
        alog: AttemptLog,
        wait: convert.PodWait | None,
        now: float,
    ) -> None:
        """A Starting attempt whose pod does not run says why, in the cluster's words (plain
        jobs: in the status message, once per change)."""
        ident = (lab.index, lab.attempt)
        seen = alog.waits.get(ident)
        if wait is None:
            alog.waits.pop(ident, None)
            return
        if seen is not None and seen[1] == wait:
            return
        since = seen[0] if seen is not None and seen[1].kind == wait.kind else now
        alog.waits[ident] = (since, wait)
        if lab.index is None:
            text = f"the pod cannot run yet: {wait.text}"
            if wait.kind == "Unschedulable":
                text = f"the scheduler cannot place the pod: {wait.text}"
            self.jobs.stage(rec, {"reason": wait.kind, "message": text[:1000]})
        self.poke()

    def _started(
        self, rec: JobRecord, attempt: int, pod: str, node: str | None, started: float
    ) -> None:
        a = rec.attempt(attempt)
        if a is not None:
            a.update({k: v for k, v in (("podName", pod), ("nodeName", node),
                      ("startedAt", convert.rfc3339(started))) if v})  # fmt: skip
        fields: dict[str, Any] = {
            "phase": str(Phase.RUNNING),
            "reason": "Running",
            "message": f"running on node {node}",
            "queuePosition": None,
            "attempts": rec.attempts,
        }
        if rec.started_at is None:
            rec.started_at = started
            fields["startedAt"] = convert.rfc3339(started)
        rec.phase = Phase.RUNNING
        self.jobs.stage(rec, fields)

    def on_k8s_job(self, body: Mapping[str, Any], deleted: bool = False) -> None:
        found = self._attempt_of(body)
        if found is None:
            return
        rec, lab = found
        worker = self.gangs is not None and self.gangs.on_job(rec, lab, deleted)
        if convert.job_deadline_exceeded(body) and lab.node is None:  # an older kubatch's Job
            self._timed_out(rec, lab, self.log_of(rec.key).nodes.get((lab.index, lab.attempt)))
            return
        active = self.cache.is_active(rec.key, lab.index, lab.attempt)
        name = str((body.get("metadata") or {}).get("name", ""))
        ended = self.ended.setdefault(rec.key, {})
        if deleted:
            ended.pop(name, None)
        elif not active and name not in ended:
            # An ended attempt's Job (seen after a restart, or an older attempt): its end is
            # when the Job finished, else now.
            ended[name] = convert.job_finished_at(body) or self.clock()
        if deleted and active:
            # The attempt's Job is gone (stopped by kubatch, or deleted by someone): its pod
            # goes with it, whether or not one ever ran.
            self.vanished.append((rec.key, lab, "", None))
            self.poke()
            return
        done = convert.job_finished(body)
        if not deleted and not active and done is None and self._unended(rec, lab):
            # still running, though its BatchJob finished and the attempt's end was never
            # recorded: a terminate whose delete did not happen (the leader died in between)
            self.stray(rec.namespace, name)
        if done is not None and active and not worker:  # a multi-node job's: the main node's
            # Normally the pod's own final status arrives first and decides. If the pod is
            # gone (deleted with its node while the operator was down), the Job's verdict
            # decides after a grace period (``settle``).
            self.verdicts.append((self.clock(), rec.key, lab, done))
            self.poke()

    # ------------------------------------------------------------------ relists

    def active(self) -> list[tuple[JobRecord, int | None, int]]:
        """Every attempt the cache runs now: (record, array index or None, attempt); the
        multi-node jobs' are left to ``controller.gangs`` (one Job per node)."""
        out: list[tuple[JobRecord, int | None, int]] = []
        for key, job in self.cache.jobs.items():
            rec = self.jobs.get(key)
            if rec is None or job.spec.gang is not None:
                continue
            if job.array is not None:
                arr = job.array
                out += [(rec, i, arr.child_attempt[i]) for i in arr.active]
            elif job.phase in (Phase.STARTING, Phase.RUNNING) and job.attempt:
                out.append((rec, None, job.attempt))
        return out

    def sync_jobs(self, items: Sequence[Mapping[str, Any]]) -> None:
        """A complete list of kubatch's Jobs (the watch relisted, e.g. after 410 Gone): feed
        each, and suspect the active attempts whose Job the list lacks — deleted while the
        watch was down, or created after the list was taken (``settle`` tells)."""
        names = set()
        for body in items:
            names.add(str((body.get("metadata") or {}).get("name", "")))
            self.on_k8s_job(body)
        for rec, index, attempt in self.active():
            if job_name_for_attempt(rec.name, rec.uid, index, attempt) not in names:
                self.suspects.append((rec.key, index, attempt, False))
        if self.suspects:
            self.poke()

    def sync_pods(self, items: Sequence[Mapping[str, Any]]) -> None:
        """A complete list of kubatch's pods: feed each, and suspect the started attempts
        whose pod the list lacks (deleted with its node while the watch was down)."""
        owners = set()
        for body in items:
            owners.add(str(((body.get("metadata") or {}).get("labels") or {}).get("job-name")))
            self.on_pod(body)
        for rec, index, attempt in self.active():
            alog = self.logs.get(rec.key)
            if alog is None or (index, attempt) not in alog.started:
                continue
            if job_name_for_attempt(rec.name, rec.uid, index, attempt) not in owners:
                self.suspects.append((rec.key, index, attempt, True))
        if self.suspects:
            self.poke()

    # ------------------------------------------------------------------ an attempt ends

    def finish(
        self,
        rec: JobRecord,
        lab: convert.AttemptLabels,
        out: convert.PodOutcome,
        pod_name: str | None,
        node: str | None,
        *,
        timed_out: bool,
    ) -> None:
        ident = (lab.index, lab.attempt)
        alog = self.log_of(rec.key)
        if ident in alog.finished or not self.cache.is_active(rec.key, lab.index, lab.attempt):
            return
        alog.finished.add(ident)
        alog.started.discard(ident)
        alog.deadlines.pop(ident, None)
        alog.waits.pop(ident, None)
        now = self.clock()
        self._charge(rec, ident, alog, out.stopped_at or now)
        alog.charged.pop(ident, None)
        alog.nodes.pop(ident, None)
        job_name = job_name_for_attempt(rec.name, rec.uid, lab.job_index, lab.attempt)
        self.ended.setdefault(rec.key, {})[job_name] = now
        cost = self._cost(rec, lab, out, node, now)
        self.cache.attempt_finished(
            rec.key,
            lab.index,
            lab.attempt,
            now,
            exit_code=out.exit_code,
            reason=out.reason,
            status_reason=out.status_reason,
            interrupted=out.interrupted,
            timed_out=timed_out,
        )
        rec.cost += cost
        if lab.index is not None and rec.array_size:
            self.children.ended(
                rec.key,
                rec.array_size,
                lab.index,
                exit_code=out.exit_code,
                reason=out.reason,
                message=out.status_reason,
                node=node,
                ce=lab.compute_environment,
                failed=out.interrupted or timed_out or out.exit_code != 0,
            )
        if lab.index is None:
            a = rec.attempt(lab.attempt)
            if a is not None:
                fields: dict[str, Any] = {
                    "stoppedAt": convert.rfc3339(out.stopped_at or now),
                    "exitCode": out.exit_code,
                    "reason": out.reason,
                    "statusReason": out.status_reason,
                    "interrupted": out.interrupted,
                    "podName": pod_name,
                    "nodeName": node,
                    "cost": round(cost, 6),
                }
                a.update({k: v for k, v in fields.items() if v not in (None, "")})
            # Not staged on its own: the verdict (Retry, Fail or Succeed) the cache has just
            # queued comes out of the next cycle and carries the attempt's end in its patch.
            rec.pending["attempts"] = rec.attempts
            rec.pending["cost"] = round(rec.cost, 6)
        self.poke()

    def _cost(
        self,
        rec: JobRecord,
        lab: convert.AttemptLabels,
        out: convert.PodOutcome,
        node: str | None,
        now: float,
    ) -> float:
        """The attempt's estimated dollars (also counted in the metrics)."""
        reg = self.registry
        info = reg.nodes.get(node or "")
        ce = reg.ces.get(lab.compute_environment)
        ctype = convert.capacity_type(ce) if ce is not None else "OnDemand"
        cost = 0.0
        if info is not None and out.started_at:
            job = self.cache.job(rec.key)
            vcpus = job.spec.size.vcpus if job is not None else 1.0
            run = (out.stopped_at or now) - out.started_at
            cost = estimate_cost(reg.node_price(info), run, vcpus, info.allocatable.vcpus)
        if self.metrics is not None:
            if out.interrupted:
                self.metrics.observe_interruption(rec.queue, ctype, cost)
            else:
                self.metrics.observe_cost(rec.queue, ctype, cost)
        return cost

    def _timed_out(self, rec: JobRecord, lab: convert.AttemptLabels, node: str | None) -> None:
        out = convert.PodOutcome(
            exit_code=None,
            reason="DeadlineExceeded",
            status_reason=f"attempt exceeded its timeout of {rec.timeout_seconds}s",
            interrupted=False,
            started_at=None,
            stopped_at=self.clock(),
        )
        self.finish(rec, lab, out, None, node, timed_out=True)

    # ------------------------------------------------------------------ budgets

    def charge_running(self, now: float) -> None:
        """Charge each queue the cost of its running attempts since their last charge (what
        spending limits count; see ``kubatch.core.budget``)."""
        for key, alog in self.logs.items():
            if not alog.charged:
                continue
            rec = self.jobs.get(key)
            if rec is None:
                continue
            for ident in list(alog.charged):
                self._charge(rec, ident, alog, now)

    def _charge(self, rec: JobRecord, ident: Ident, alog: AttemptLog, until: float) -> None:
        since = alog.charged.get(ident)
        if since is None or until <= since:
            return
        alog.charged[ident] = until
        info = self.registry.nodes.get(alog.nodes.get(ident, ""))
        job = self.cache.job(rec.key)
        if info is None or job is None:
            return
        price = self.registry.node_price(info)
        dollars = estimate_cost(price, until - since, job.spec.size.vcpus, info.allocatable.vcpus)
        self.cache.charge(rec.queue, dollars, until)

    # ------------------------------------------------------------------ settled by the loop

    def _unended(self, rec: JobRecord, lab: convert.AttemptLabels) -> bool:
        """A finished (single) job's attempt that its status records without an end."""
        if not rec.finished or lab.index is not None:
            return False
        if (lab.index, lab.attempt) in self.log_of(rec.key).finished:
            return False
        record = rec.attempt(lab.attempt)
        return record is not None and not record.get("stoppedAt")

    def stray(self, namespace: str, name: str, tries: int = 10) -> None:
        """A Job that must go (its BatchJob finished while it ran): deleted by ``settle``."""
        self.strays.setdefault((namespace, name), tries)
        self.poke()

    def sweep(self, namespace: str, uid: str) -> None:
        """A job terminated before its status recorded an attempt: a Job the previous leader
        created for it (its status still held) may run; ``settle`` lists and deletes it."""
        self.sweeps.add((namespace, uid))
        self.poke()

    async def _sweep(self) -> None:
        for ns, uid in list(self.sweeps):
            try:
                jobs = await self.kube.list(JOBS, namespace=ns, labels=f"{L.BATCHJOB_UID}={uid}")
            except (ApiError, OSError, TimeoutError):
                continue  # next cycle
            self.sweeps.discard((ns, uid))
            for body in jobs:
                if convert.job_finished(body) is None:
                    self.stray(ns, str((body.get("metadata") or {}).get("name", "")))

    async def _stop_strays(self) -> None:
        await self._sweep()
        for (ns, name), left in list(self.strays.items()):
            try:
                await self.kube.delete(JOBS, name, namespace=ns)
            except (ApiError, OSError, TimeoutError) as exc:
                if left > 1:
                    self.strays[(ns, name)] = left - 1
                    continue
                log.warning("deleting the stray Job %s/%s failed: %s", ns, name, exc)
            self.strays.pop((ns, name), None)

    async def replay(self, namespace: str, job_name: str) -> None:
        """An admitted attempt's Job already existed (made before a restart or a takeover):
        feed what its pods and the Job already did. Their events came while the attempt was
        not known to be active and were passed over; a pod that has already ended sends no
        more, so a replay the API server does not answer is tried again (``settle``) rather
        than dropped — the attempt would otherwise wait for ever."""
        try:
            pods = await self.kube.list(PODS, namespace=namespace, labels=f"job-name={job_name}")
            job = await self.kube.get(JOBS, job_name, namespace=namespace)
        except ApiError as exc:
            if exc.not_found:  # deleted since: its DELETED event ends the attempt
                self.replays.discard((namespace, job_name))
                return
            self._replay_later(namespace, job_name, exc)
            return
        except (OSError, TimeoutError) as exc:
            self._replay_later(namespace, job_name, exc)
            return
        self.replays.discard((namespace, job_name))
        for pod in pods:
            self.on_pod(pod)
        self.on_k8s_job(job)

    def _replay_later(self, namespace: str, job_name: str, exc: Exception) -> None:
        log.info("replaying the existing Job %s/%s failed (%s); again next cycle",
                 namespace, job_name, exc)  # fmt: skip
        self.replays.add((namespace, job_name))
        self.poke()

    async def _replay_pending(self) -> None:
        for namespace, job_name in list(self.replays):
            await self.replay(namespace, job_name)

    async def settle(self) -> None:
        """Each cycle: Job verdicts past their grace, timeouts, vanished pods (and the nodes of
        multi-node jobs: ``controller.gangs``; strays)."""
        if self.gangs is not None:
            await self.gangs.settle()
        await self._stop_strays()
        await self._replay_pending()
        await self._settle_verdicts()
        await self._settle_suspects()
        await self._enforce_deadlines()
        await self._end_stuck()
        await self._settle_vanished()

    async def _settle_verdicts(self) -> None:
        """A Job said it finished but its pod never reported (a slow watch, or a pod that is
        gone): ask for the pod first — its status is the full story — and let the Job decide
        only when there is no pod any more."""
        if not self.verdicts:
            return
        now = self.clock()
        keep = []
        for seen, key, lab, ok in self.verdicts:
            rec = self.jobs.get(key)
            if rec is None or not self.cache.is_active(key, lab.index, lab.attempt):
                continue
            if now - seen < self.timings.verdict_grace:
                keep.append((seen, key, lab, ok))
                continue
            name = job_name_for_attempt(rec.name, rec.uid, lab.job_index, lab.attempt)
            try:
                pods = await self.kube.list(
                    PODS, namespace=rec.namespace, labels=f"job-name={name}"
                )
            except (ApiError, OSError, TimeoutError):
                keep.append((seen, key, lab, ok))
                continue
            for pod in pods:
                self.on_pod(pod)
            if not self.cache.is_active(key, lab.index, lab.attempt):
                continue  # the pod decided
            out = convert.PodOutcome(
                exit_code=0 if ok else None,
                reason="Completed" if ok else "Failed",
                status_reason=None if ok else "the attempt's pod is gone; its Job failed",
                interrupted=False,
                started_at=None,
                stopped_at=now,
            )
            self.finish(rec, lab, out, None, None, timed_out=False)
        self.verdicts = keep
        if keep:
            self.poke()

    async def _settle_suspects(self) -> None:
        """Ask the API server about what a relist did not show: a Job that is really gone
        ends its attempt (as a deletion does); a pod that is gone while its Job lives is a
        vanished pod (its node went)."""
        if not self.suspects:
            return
        batch, self.suspects = self.suspects, []
        for key, index, attempt, pod in batch:
            rec = self.jobs.get(key)
            if rec is None or not self.cache.is_active(key, index, attempt):
                continue
            name = job_name_for_attempt(rec.name, rec.uid, index, attempt)
            lab = convert.AttemptLabels(rec.namespace, rec.name, rec.uid, attempt, index,
                                        self._ce_of(rec, attempt))  # fmt: skip
            try:
                if pod:
                    pods = await self.kube.list(PODS, namespace=rec.namespace,
                                                labels=f"job-name={name}")  # fmt: skip
                    for body in pods:
                        self.on_pod(body)
                    if not pods and self.cache.is_active(key, index, attempt):
                        node = self.log_of(key).nodes.get((index, attempt))
                        known = str((rec.attempt(attempt) or {}).get("podName") or "")
                        self.vanished.append((key, lab, known or f"of Job {name}", node))
                    continue
                await self.kube.get(JOBS, name, namespace=rec.namespace)
            except ApiError as exc:
                if exc.not_found and not pod:
                    log.info("the Job %s/%s of an active attempt is gone", rec.namespace, name)
                    self.vanished.append((key, lab, "", None))
                else:
                    self.suspects.append((key, index, attempt, pod))
            except (OSError, TimeoutError):
                self.suspects.append((key, index, attempt, pod))
        if self.vanished or self.suspects:
            self.poke()

    async def _enforce_deadlines(self) -> None:
        """An attempt's timeout counts from its start (its pod running), as on AWS: when it
        runs out, kubatch stops the attempt (the pod's own, longer deadline is a backstop)."""
        now = self.clock()
        late = [
            (key, ident, lab)
            for key, alog in self.logs.items()
            for ident, (expires, lab) in alog.deadlines.items()
            if now >= expires
        ]
        for key, ident, lab in late:
            alog = self.logs[key]
            alog.deadlines.pop(ident, None)
            rec = self.jobs.get(key)
            if rec is None or not self.cache.is_active(key, lab.index, lab.attempt):
                continue
            log.info("attempt %s of %s reached its timeout: stopping it", lab.attempt, key)
            await self.stop_jobs(rec, lab.index, lab.attempt)
            self._timed_out(rec, lab, alog.nodes.get(ident))

    async def _end_stuck(self) -> None:
        """An attempt whose container cannot be pulled or created ends after a bounded time
        (``timings.pull_timeout``) with that reason, as on AWS; the retry strategy decides."""
        now = self.clock()
        limit = self.timings.pull_timeout
        stuck = [
            (key, ident, since, wait)
            for key, alog in self.logs.items()
            for ident, (since, wait) in alog.waits.items()
            if wait.blocking and now - since >= limit
        ]
        for key, ident, since, wait in stuck:
            rec = self.jobs.get(key)
            index, attempt = ident
            if rec is None or not self.cache.is_active(key, index, attempt):
                continue
            await self.stop_jobs(rec, index, attempt)
            lab = convert.AttemptLabels(rec.namespace, rec.name, rec.uid, attempt, index,
                                        self._ce_of(rec, attempt))  # fmt: skip
            out = convert.PodOutcome(
                exit_code=None,
                reason=wait.kind,
                status_reason=f"{wait.kind}: {wait.text} (for {int(now - since)}s)",
                interrupted=False,
                started_at=None,
                stopped_at=now,
            )
            self.finish(rec, lab, out, None, None, timed_out=False)

    async def stop_jobs(self, rec: JobRecord, index: int | None, attempt: int) -> None:
        """Delete the Kubernetes Job(s) of an attempt (every node's, for a multi-node job)."""
        if rec.nodes_json and self.gangs is not None:
            await self.gangs.delete_all(rec, attempt)
            return
        name = job_name_for_attempt(rec.name, rec.uid, index, attempt)
        with contextlib.suppress(ApiError, OSError, TimeoutError):
            await self.kube.delete(JOBS, name, namespace=rec.namespace)

    @staticmethod
    def _ce_of(rec: JobRecord, attempt: int) -> str:
        a = rec.attempt(attempt)
        return str((a or {}).get("computeEnvironment") or "")

    async def _settle_vanished(self) -> None:
        if not self.vanished:
            return
        batch, self.vanished = self.vanished, []
        for key, lab, pod_name, node in batch:
            rec = self.jobs.get(key)
            if rec is None:
                continue
            name = job_name_for_attempt(rec.name, rec.uid, lab.job_index, lab.attempt)
            try:
                job = await self.kube.get(JOBS, name, namespace=rec.namespace)
            except ApiError:
                job = {}
            except (OSError, TimeoutError):
                self.vanished.append((key, lab, pod_name, node))
                continue
            if convert.job_deadline_exceeded(job):
                self._timed_out(rec, lab, node)
                continue
            gone = node is not None and node not in self.registry.nodes
            what = f"pod {pod_name}" if pod_name else f"Kubernetes Job {name}"
            out = convert.PodOutcome(
                exit_code=None,
                reason="PodDeleted",
                status_reason=f"{what} was deleted" + (f" with its node {node}" if gone else ""),
                interrupted=True,
                started_at=None,
                stopped_at=self.clock(),
            )
            self.finish(rec, lab, out, pod_name, node, timed_out=False)
