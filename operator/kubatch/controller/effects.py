"""Effects: the loop's writes — the only code that changes the cluster.

For each cycle's decisions: stage the status they imply (in decision order), create the
Kubernetes Job of each admitted attempt (``forget`` in the cache when the create fails; an
existing Job after a restart is the same attempt), delete the Job of a terminated attempt,
then write every job's staged status as ONE merge patch (``status.patch_for``), post the
Events a user must notice, and now and then publish queue and compute-environment status.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import math
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any

from kubatch.adapters.kube import (
    BATCHJOBS,
    COMPUTEENVIRONMENTS,
    CONFIGMAPS,
    CONSUMABLERESOURCES,
    EVENTS,
    JOBDEFINITIONS,
    JOBQUEUES,
    JOBS,
    ApiError,
    Resource,
)
from kubatch.adapters.protocol import KubeApi
from kubatch.api import labels as L
from kubatch.api import models as api
from kubatch.api import records as rc
from kubatch.controller import children as ch
from kubatch.controller import convert
from kubatch.controller import status as st
from kubatch.controller.attempts import Attempts
from kubatch.controller.records import EventLog, EventNote, JobBook, JobRecord
from kubatch.controller.registry import Registry
from kubatch.controller.settings import Settings
from kubatch.core.cache import Cache
from kubatch.core.decisions import (
    Admit,
    Decision,
    Fail,
    Preempt,
    Retry,
    SetWaiting,
    Succeed,
    Terminate,
    UpdateArraySummary,
)
from kubatch.core.lifecycle import Phase, Reason
from kubatch.core.naming import split_key
from kubatch.metrics import Metrics
from kubatch.render.job import AttemptRef, Placement, build_job

if TYPE_CHECKING:
    from kubatch.controller.consumables import Consumables
    from kubatch.controller.gangs import Gangs
    from kubatch.controller.stops import Stops

log = logging.getLogger("kubatch.effects")
JsonDict = dict[str, Any]

STAGE_YIELD = 1000
"""Decisions staged (or patches built) between two turns of the event loop: a cycle over
100,000 jobs must not hold the loop past the Lease's renew deadline."""
EVENTS_PER_CYCLE = 200
REFUSAL_BACKOFF_S = (1.0, 60.0)
"""A job whose Kubernetes Job the API server refused waits 1 s before it is tried again,
twice as long after each refusal in a row, at most 60 s."""
OBJECT_KINDS: dict[str, Resource] = {
    "JobQueue": JOBQUEUES,
    "ComputeEnvironment": COMPUTEENVIRONMENTS,
    "JobDefinition": JOBDEFINITIONS,
    "ConsumableResource": CONSUMABLERESOURCES,
}


async def bounded(coros: Iterable[Awaitable[None]], limit: int) -> None:
    """Run ``coros`` with at most ``limit`` in flight."""
    sem = asyncio.Semaphore(limit)

    async def one(c: Awaitable[None]) -> None:
        async with sem:
            await c

    await asyncio.gather(*(one(c) for c in coros))


class Rates:
    """Attempts admitted per queue over the last ``window`` seconds (ETAs, plans)."""

    def __init__(self, window: float = 600.0) -> None:
        self.window = window
        self.times: dict[str, deque[float]] = {}

    def admitted(self, queue: str, now: float) -> None:
        self.times.setdefault(queue, deque()).append(now)

    def per_second(self, queue: str, now: float) -> float:
        times = self.times.get(queue)
        if not times:
            return 0.0
        while times and times[0] < now - self.window:
            times.popleft()
        return len(times) / self.window


def refusal_backoff(refusals: int) -> float:
    """Pure: seconds before a job whose Job create was refused ``refusals`` times in a row is
    admitted again (:data:`REFUSAL_BACKOFF_S`)."""
    first, most = REFUSAL_BACKOFF_S
    return float(min(most, first * 2 ** min(max(refusals - 1, 0), 16)))


class Effects:
    """Carries out decisions and writes status."""

    def __init__(
        self,
        cache: Cache,
        jobs: JobBook,
        registry: Registry,
        events: EventLog,
        attempts: Attempts,
        children: ch.Children,
        *,
        kube: KubeApi,
        settings: Settings,
        metrics: Metrics | None,
        clock: Callable[[], float],
        poke: Callable[[], None],
    ) -> None:
        self.cache = cache
        self.jobs = jobs
        self.registry = registry
        self.events = events
        self.attempts = attempts
        self.children = children
        self.kube = kube
        self.settings = settings
        self.metrics = metrics
        self.clock = clock
        self.poke = poke
        self._written_objects: dict[tuple[str, str], JsonDict] = {}
        self.rates = Rates()
        self._blocked: set[str] = set()  # queues whose spending limit is reached
        self._completions: dict[str, tuple[Phase, float | None, str | None]] = {}
        # scheduling depth (#17), set by the operator: multi-node jobs, stops, consumables
        self.gangs: Gangs | None = None
        self.stops: Stops | None = None
        self.consumables: Consumables | None = None

    # ------------------------------------------------------------------ decisions

    async def apply(self, decisions: list[Decision], now: float) -> None:
        """Stage the status of every decision (in order: a Retry of attempt n then the
        Admit of n+1 in one cycle leaves the job Starting), then create and delete Jobs."""
        for d in decisions:
            if isinstance(d, Admit):
                self.rates.admitted(d.queue, now)
        for i, d in enumerate(decisions, 1):
            if not isinstance(d, Admit | Terminate | Preempt):
                self._stage(d, now)
            if i % STAGE_YIELD == 0:
                await asyncio.sleep(0)  # tens of thousands at once: the Lease is renewed meanwhile
        go = [d for d in decisions if isinstance(d, Admit)]
        if go and self.consumables is not None:
            go = await self.consumables.write_ahead(go)  # used-up units recorded first
        admits = [self._admit(d, now) for d in go]
        stops = [self._terminate(d) for d in decisions if isinstance(d, Terminate)]
        if self.stops is not None:
            stops += [self.stops.preempt(d) for d in decisions if isinstance(d, Preempt)]
        if admits or stops:
            await bounded([*admits, *stops], self.settings.write_concurrency)

    def placement(self, ce_name: str) -> Placement:
        ce = self.registry.ces.get(ce_name)
        if ce is None:
            return Placement(ce_name, "OnDemand")
        cr = ce.spec.compute_resources
        return Placement(
            compute_environment=ce_name,
            capacity_type=convert.capacity_type(ce),
            node_selector=convert.ce_node_selector(ce),
            tolerations=convert.ce_tolerations(ce),
            instance_types=convert.instance_type_names(
                self.registry.catalogue, cr.instance_types if cr is not None else []
            ),
        )

    async def _admit(self, d: Admit, now: float) -> None:
        rec = self.jobs.get(d.job_key)
        if rec is None:
            self.cache.forget(d, now)
            return
        ns, name, _ = split_key(d.job_key)
        placement = self.placement(d.compute_environment)
        manifest = build_job(
            name=d.k8s_job_name,
            ref=AttemptRef(
                ns,
                name,
                rec.uid,
                rec.queue,
                d.attempt,
                d.index,
                rec.array_size,
                rec.indices,
                rec.rerun_of,
            ),
            placement=placement,
            pod_template=rec.template,
            timeout_seconds=d.timeout_seconds,
            deadline_grace=int(self.settings.timings.deadline_grace),
        )
        gangs = self.gangs if rec.nodes_json else None
        if gangs is not None:  # a multi-node job: its main node's Job first (controller.gangs)
            manifest = gangs.main_manifest(rec, d.attempt, d.compute_environment)
        existed = False
        try:
            await self.kube.create(JOBS, manifest, namespace=ns)
        except ApiError as exc:
            if exc.conflict:
                existed = True  # created before a restart: the same attempt, not a second Job
            elif exc.not_found or exc.status in (400, 403, 422):
                # Refused (a quota, RBAC, a namespace being deleted): trying again every cycle
                # would only repeat it, and take the room of the jobs behind it each time.
                rec.refusals += 1
                hold = refusal_backoff(rec.refusals)
                self.cache.forget(d, self.clock(), hold=hold)
                log.warning("cannot create Job %s/%s (refused %d in a row; again in %.0f s): %s",
                            ns, d.k8s_job_name, rec.refusals, hold, exc)  # fmt: skip
                if exc.status != 404:
                    self.events.warn(rec.ref(), "JobCreateFailed", str(exc)[:500])
                return
            else:
                self.cache.forget(d, self.clock())
                self.poke()
                return
        except (OSError, TimeoutError) as exc:
            self.cache.forget(d, self.clock())
            log.warning("creating Job %s/%s failed (%s); will retry", ns, d.k8s_job_name, exc)
            self.poke()
            return
        if self.metrics is not None:
            wait = None
            if d.attempt == 1 and rec.admitted_at is None and rec.created_at:
                wait = now - rec.created_at
            self.metrics.observe_admission(rec.queue, wait, placement.capacity_type)
        if rec.admitted_at is None:
            rec.admitted_at = now
        rec.refusals = 0
        if gangs is not None:
            gangs.admitted(rec, d.attempt, d.compute_environment)

        if d.index is None:
            if rec.attempt(d.attempt) is None:
                rec.attempts.append(
                    {
                        "number": d.attempt,
                        "jobName": d.k8s_job_name,
                        "computeEnvironment": d.compute_environment,
                        "capacityType": placement.capacity_type,
                    }
                )
            rec.phase = Phase.STARTING
            rec.hold_until = now + self.settings.timings.starting_hold
            self.jobs.stage(rec, st.admitted_fields(d, placement.capacity_type, rec.attempts))
        if existed:
            await self.attempts.replay(ns, d.k8s_job_name)

    async def _terminate(self, d: Terminate) -> None:
        if self.stops is not None and await self.stops.terminate(d):
            return  # every node of a multi-node attempt, or a gang released whole
        ns, _, _ = split_key(d.job_key)
        try:
            await self.kube.delete(JOBS, d.k8s_job_name, namespace=ns)
        except (ApiError, OSError, TimeoutError) as exc:
            log.warning("deleting Job %s/%s failed (tried again): %s", ns, d.k8s_job_name, exc)
            self.attempts.stray(ns, d.k8s_job_name)

    # ------------------------------------------------------------------ status of jobs

    def _stage(self, d: Decision, now: float) -> None:
        rec = self.jobs.get(d.job_key)
        if rec is None:
            return
        fields: JsonDict | None = None
        if isinstance(d, SetWaiting):
            if rec.finished:
                return
            rec.phase = d.phase
            eta = None
            rate = self.rates.per_second(rec.queue, now)
            if d.queue_position is not None and rate > 0 and d.resumes_at is None:
                eta = now + d.queue_position / rate
            fields = st.waiting_fields(d, eta)
            if eta is None and rate <= 0 and d.queue_position is not None:
                # No admission seen yet (a restart, a takeover): the rate is unknown, not
                # zero — an estimate written before that is still ahead stays (a restart
                # would otherwise rewrite every waiting job's status to clear it).
                before = convert.parse_time(rec.written.get("estimatedStartTime"))
                if before is not None and before > now and d.resumes_at is None:
                    del fields["estimatedStartTime"]
        elif isinstance(d, Retry):
            if d.index is not None:
                return
            rec.phase = Phase.RUNNABLE
            released = self.stops is not None and self.stops.retried(rec, d)
            fields = st.retry_fields(d, rec.attempts)
            kind = "Interrupted" if d.interrupted else "Retrying"
            if released:
                pass  # preempted / released: its Event was posted when it was stopped
            elif d.interrupted:
                self.events.warn(rec.ref(), kind, d.message)
            else:
                self.events.note(rec.ref(), kind, d.message)
                if self.metrics is not None:
                    self.metrics.observe_retry(rec.queue)
        elif isinstance(d, Fail | Succeed):
            if rec.finished:
                return
            rec.finished = True
            rec.finished_at = now
            for a in rec.attempts:  # an attempt whose end was never recorded: its Job goes
                if a.get("jobName") and not a.get("stoppedAt"):
                    self.attempts.stray(rec.namespace, str(a["jobName"]))
            if isinstance(d, Fail) and d.reason is Reason.TERMINATED and not rec.attempts:
                self.attempts.sweep(rec.namespace, rec.uid)
            rec.phase = Phase.FAILED if isinstance(d, Fail) else Phase.SUCCEEDED
            fields = st.final_fields(d, convert.rfc3339(now), rec.attempts, rec.array_size)
            if isinstance(d, Fail):
                self.events.warn(rec.ref(), str(d.reason), d.message)
            run = now - rec.started_at if rec.started_at else None
            reason = str(d.reason) if isinstance(d, Fail) else None
            # Counted once the status that says so is written: a replica that dies or stops
            # leading before the write leaves the count to the one that writes it, so the
            # counters summed over the replicas' lifetimes agree with the statuses.
            self._completions[rec.key] = (rec.phase, run, reason)
        elif isinstance(d, UpdateArraySummary):
            if rec.finished and not d.phase.terminal:
                return
            rec.phase = d.phase
            first_start = d.phase in (Phase.RUNNING, Phase.STARTING) and rec.started_at is None
            if first_start:
                rec.started_at = now
            fields = st.summary_fields(d, rec.array_size or 0, now if first_start else None)
            if rec.array_size:
                self.children.changed(rec.key, rec.array_size)
        if fields is not None:
            self.jobs.stage(rec, fields)

    async def flush(self) -> None:
        """Write each job's staged status as one merge patch."""
        keys = self.jobs.take_dirty()
        if not keys:
            return
        now = self.clock()
        now_iso = convert.rfc3339(now)
        work = []
        for i, key in enumerate(keys, 1):
            if i % STAGE_YIELD == 0:
                await asyncio.sleep(0)  # building 70,000 patches takes seconds: let others run
            rec = self.jobs.get(key)
            if rec is None or not rec.pending:
                continue
            if now < rec.hold_until and st.only_admitted(rec.pending, rec.written):
                self.jobs.dirty.add(key)  # Starting waits for Running a moment (Timings)
                continue
            out = st.patch_for(
                rec.pending,
                rec.written,
                phase=rec.phase,
                generation=rec.generation,
                conditions=rec.conditions,
                now_iso=now_iso,
                attempt_count=len(rec.attempts),
                notice=rec.notice,
            )
            if out is None:
                if rec.pending.keys() <= st.SUBMISSION_FIELDS:
                    self.jobs.dirty.add(key)  # rides with the job's first phase
                else:
                    rec.pending = {}
                continue
            patch, conditions = out
            rec.conditions = self.jobs.shared_conditions(conditions)
            rec.pending = {}
            work.append(self._patch_job(rec, patch))
        await bounded(work, self.settings.write_concurrency)

    async def _patch_job(self, rec: JobRecord, patch: JsonDict) -> None:
        log.debug("status patch %s: %s", rec.key, ",".join(sorted(patch)))
        try:
            await self.kube.patch(
                BATCHJOBS, rec.name, {"status": patch}, namespace=rec.namespace, status=True
            )
        except ApiError as exc:
            if exc.not_found:
                return
            if exc.status in (400, 422):  # a patch the API server will never take: a bug
                log.error("status patch of %s rejected: %s (patch %s)", rec.key, exc, patch)
                if self.metrics is not None:
                    self.metrics.count_handler_error("status_patch")
                return
            log.warning("status patch of %s failed: %s", rec.key, exc)
            self._requeue(rec, patch)
            return
        except (OSError, TimeoutError) as exc:
            log.warning("status patch of %s failed: %s", rec.key, exc)
            self._requeue(rec, patch)
            return
        done = self._completions.pop(rec.key, None) if "phase" in patch else None
        if done is not None and self.metrics is not None and patch["phase"] == str(done[0]):
            self.metrics.observe_completion(rec.queue, done[0], done[1], 0.0, reason=done[2])
        for k, v in patch.items():
            if v is None:
                rec.written.pop(k, None)
            elif k not in st.UNREMEMBERED:
                # A copy: ``attempts`` is the record's own list, which later events mutate.
                rec.written[k] = v if isinstance(v, str | int | float) else copy.deepcopy(v)

    def _requeue(self, rec: JobRecord, patch: JsonDict) -> None:
        rec.pending = {**patch, **rec.pending}
        self.jobs.dirty.add(rec.key)
        self.poke()

    # ------------------------------------------------------------------ array child records

    async def flush_children(self, now: float) -> None:
        """Write the changed chunks of the arrays whose records are due (coalesced; at once
        for a parent that finished)."""
        final = {k for k in self.children.logs if (r := self.jobs.get(k)) and r.finished}
        work = []
        for key in self.children.due(now, final):
            rec, view = self.jobs.get(key), self.cache.job(key)
            entry = self.children.logs[key]
            if rec is None or view is None or view.array is None:
                entry.dirty.clear()
                continue
            for chunk in sorted(entry.dirty):
                work.append(self._write_chunk(rec, chunk, self.children.render(key, view, chunk)))
            entry.dirty.clear()
            self.children.flushed_at[key] = now
        if work:
            await bounded(work, 8)

    async def _write_chunk(self, rec: JobRecord, chunk: int, text: str) -> None:
        entry = self.children.logs.get(rec.key)
        if entry is None:
            return
        digest = hash(text)
        if entry.hashes.get(chunk) == digest:
            return
        labels = {L.MANAGED_BY: L.MANAGER, L.ARRAY_RECORD: "true", L.BATCHJOB: rec.name,
                  L.BATCHJOB_UID: rec.uid}  # fmt: skip
        name = rc.chunk_name(rec.name, chunk)
        try:
            if chunk in entry.written:
                patch = {"data": {rc.DATA_KEY: text}}
                await self.kube.patch(CONFIGMAPS, name, patch, namespace=rec.namespace)
            else:
                body = rc.configmap(rec.namespace, rec.name, rec.uid, chunk, text, labels)
                try:
                    await self.kube.create(CONFIGMAPS, body, namespace=rec.namespace)
                except ApiError as exc:
                    if not exc.conflict:
                        raise
                    patch = {"data": {rc.DATA_KEY: text}}
                    await self.kube.patch(CONFIGMAPS, name, patch, namespace=rec.namespace)
        except (ApiError, OSError, TimeoutError) as exc:
            log.warning("child record %s/%s not written: %s", rec.namespace, name, exc)
            entry.dirty.add(chunk)
            self.poke()
            return
        entry.written.add(chunk)
        entry.hashes[chunk] = digest

    # ------------------------------------------------------------------ retention

    async def retain(self, now: float) -> None:
        """Delete, paced, what has been kept long enough: the Kubernetes Jobs (and so the
        pods) of ended attempts after ``job_retention``; finished BatchJobs of queues with
        ``finishedJobRetentionSeconds`` — never one that an unfinished job still depends on."""
        budget = self.settings.retention_deletes_per_cycle
        work: list[Awaitable[None]] = []
        if self.settings.job_retention > 0:
            cutoff = now - self.settings.job_retention
            for key, ended in self.attempts.ended.items():
                ns = key.partition("/")[0]
                for name, when in list(ended.items()):
                    if when <= cutoff and len(work) < budget:
                        ended.pop(name)
                        work.append(self._delete(JOBS, name, ns))
        for rec in list(self.jobs.records.values()):
            if len(work) >= budget:
                break
            keep = self._queue_retention(rec.queue)
            if keep is None or not rec.finished or rec.finished_at is None:
                continue
            if now - rec.finished_at >= keep and not self.cache.needed_by_unfinished(rec.key):
                rec.finished_at = None  # asked once; the DELETED event forgets it
                work.append(self._delete(BATCHJOBS, rec.name, rec.namespace))
        if work:
            await bounded(work, 8)

    def _queue_retention(self, queue: str) -> float | None:
        q = self.registry.queues.get(queue)
        keep = q.spec.finished_job_retention_seconds if q is not None else None
        return float(keep) if keep is not None else None

    async def _delete(self, res: Resource, name: str, ns: str) -> None:
        try:
            await self.kube.delete(res, name, namespace=ns)
        except (ApiError, OSError, TimeoutError) as exc:
            log.debug("retention: %s %s/%s not deleted: %s", res.plural, ns, name, exc)

    # ------------------------------------------------------------------ events

    async def post_events(self) -> None:
        if not self.events:
            return
        batch = self.events.take(EVENTS_PER_CYCLE)
        if self.events:
            self.poke()
        await bounded([self._post_event(e) for e in batch], 8)

    async def _post_event(self, e: EventNote) -> None:
        meta = e.ref.get("metadata") or {}
        ns = meta.get("namespace") or "default"
        body = st.event_body(e, convert.rfc3339(self.clock()), self.settings.identity)
        try:
            await self.kube.create(EVENTS, body, namespace=ns)
        except (ApiError, OSError, TimeoutError) as exc:
            log.debug("event not posted: %s", exc)

    # ------------------------------------------------------------------ queues and CEs

    async def publish_objects(self, now: float) -> None:
        """Queue and compute-environment status and gauges (written when changed), and the
        validity conditions of definitions and invalid objects."""
        now_iso = convert.rfc3339(now)
        work: list[Awaitable[None]] = []
        counts = self.queue_counts()
        reg = self.registry
        children = self.cache.children_by_queue()
        for name, q in reg.queues.items():
            c = counts.get(name, Counter())
            if self.metrics is not None:
                self.metrics.set_queue_phase_counts(name, {Phase(k): v for k, v in c.items()})
                self.metrics.set_array_children(name, children.get(name, {}))
            prev = self._prev_conditions("JobQueue", name)
            status = st.queue_status(q, c, now_iso, prev, reg.missing_ces(q))
            status["admissionsPerMinute"] = round(self.rates.per_second(name, now) * 60, 2)
            spent = self.cache.budget_state(name, now)
            if spent is not None:
                status["spend"] = st.spend_fields(spent)
                self._budget_events(q, spent)
                if self.metrics is not None:
                    self.metrics.set_spend(name, spent.spent_hour, spent.spent_day,
                                           spent.blocked_until is not None)  # fmt: skip
            work.append(self._patch_object("JobQueue", name, status))
        if self.consumables is not None:
            await self.consumables.publish()
        backlog = self.cache.backlog()
        for name, ce in reg.ces.items():
            status = self._ce_status(name, ce, backlog.get(name, 0), now_iso)
            work.append(self._patch_object("ComputeEnvironment", name, status))
        for (kind, name), note in list(reg.notes.items()):
            if kind == "JobDefinition" or note.problems:
                if note.written and (kind, name) not in reg.dirty_notes:
                    continue
                note.conditions = st.note_conditions(note, now_iso)
                note.written = True
                body = {"conditions": note.conditions, "observedGeneration": note.generation}
                work.append(self._patch_object(kind, name, body))
        reg.dirty_notes.clear()
        await bounded(work, 8)

    def _budget_events(self, q: api.JobQueue, spent: Any) -> None:
        """One Warning when a queue's spending limit is reached, one Normal when it frees."""
        name = q.metadata.name
        ref = {"apiVersion": "kubatch.io/v1alpha1", "kind": "JobQueue",
               "metadata": {"name": name, "uid": q.metadata.uid}}  # fmt: skip
        if spent.blocked_until is not None and name not in self._blocked:
            self._blocked.add(name)
            msg = (f"spending limit ${spent.limit:g} per {spent.window} reached; new admissions "
                   f"wait until {convert.rfc3339(spent.blocked_until)}")  # fmt: skip
            self.events.warn(ref, "BudgetExceeded", msg)
        elif spent.blocked_until is None and name in self._blocked:
            self._blocked.discard(name)
            self.events.note(ref, "BudgetAvailable", "spending window freed: admitting again")

    def _ce_status(
        self, name: str, ce: api.ComputeEnvironment, backlog: int, now_iso: str
    ) -> JsonDict:
        cr = ce.spec.compute_resources
        max_v = cr.max_vcpus if cr else 0
        min_v = cr.min_vcpus if cr else 0
        allocated = self.cache.allocated(name).mcpu / 1000
        pool = [n for n in self.registry.pool_nodes(ce) if n.usable]
        capacity = sum(n.allocatable.mcpu for n in pool) / 1000
        desired = max(min_v, min(max_v, math.ceil(allocated + backlog / 1000)))
        if ce.spec.type != api.ComputeEnvironmentType.MANAGED:
            desired = math.ceil(capacity)
        if self.metrics is not None:
            ctype, state = convert.capacity_type(ce), str(ce.spec.state)
            self.metrics.set_ce(name, desired, allocated, capacity, max_v,
                                capacity_type=ctype, state=state)  # fmt: skip
        prev = self._prev_conditions("ComputeEnvironment", name)
        return st.ce_status(ce, desired, allocated, capacity, len(pool), now_iso, prev)

    def queue_counts(self) -> dict[str, Counter[str]]:
        """Jobs per queue and phase, from what was last staged."""
        out: dict[str, Counter[str]] = {q: Counter() for q in self.registry.queues}
        for rec in self.jobs.records.values():
            out.setdefault(rec.queue, Counter())[str(rec.phase)] += 1
        return out

    def _prev_conditions(self, kind: str, name: str) -> list[JsonDict]:
        prev = self._written_objects.get((kind, name)) or {}
        conds: list[JsonDict] = prev.get("conditions") or []
        return conds

    async def _patch_object(self, kind: str, name: str, status: JsonDict) -> None:
        key = (kind, name)
        prev = self._written_objects.get(key)
        if prev is not None and st.same_object_status(status, prev):
            return
        ns, obj_name = (name.split("/", 1)) if kind == "JobDefinition" else (None, name)
        try:
            await self.kube.patch(
                OBJECT_KINDS[kind], obj_name, {"status": status}, namespace=ns, status=True
            )
        except (ApiError, OSError, TimeoutError) as exc:
            log.debug("status of %s %s not written: %s", kind, name, exc)
            return
        self._written_objects[key] = status

    def forget_object(self, kind: str, name: str) -> None:
        with contextlib.suppress(KeyError):
            del self._written_objects[(kind, name)]
