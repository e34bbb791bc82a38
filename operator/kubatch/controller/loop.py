"""The scheduler loop and its effects: the one place that decides and writes.

Each cycle: settle vanished pods, take a snapshot, ``schedule`` it, ``assume`` every decision,
carry the decisions out (create Jobs — ``forget`` on failure —, delete Jobs), coalesce all
status changes of a job into one merge patch, post Events, and now and then publish queue
and compute-environment status and gauges.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import math
import time
from collections import Counter
from collections.abc import Awaitable, Iterable
from typing import Any

from kubatch.adapters.kube import (
    BATCHJOBS,
    COMPUTEENVIRONMENTS,
    EVENTS,
    JOBDEFINITIONS,
    JOBQUEUES,
    JOBS,
    PODS,
    ApiError,
)
from kubatch.api import models as api
from kubatch.controller import convert
from kubatch.controller import status as st
from kubatch.controller.operator import JobRecord, Operator
from kubatch.core.decisions import (
    Admit,
    Decision,
    Fail,
    Retry,
    SetWaiting,
    Succeed,
    Terminate,
    UpdateArraySummary,
)
from kubatch.core.lifecycle import Phase
from kubatch.core.naming import job_name_for_attempt, split_key
from kubatch.core.scheduler import schedule
from kubatch.render.job import AttemptRef, Placement, build_job

log = logging.getLogger("kubatch.loop")
JsonDict = dict[str, Any]
WRITE_CONCURRENCY = 48
DEBOUNCE_SECONDS = 0.03
IDLE_SECONDS = 1.0
OBJECT_STATUS_SECONDS = 2.0
VERDICT_GRACE_SECONDS = 3.0
DEADLINE_GRACE_SECONDS = 15.0
SUBMISSION_FIELDS = frozenset({"jobDefinition", "createdAt"})


async def _bounded(coros: Iterable[Awaitable[None]], limit: int = WRITE_CONCURRENCY) -> None:
    sem = asyncio.Semaphore(limit)

    async def one(c: Awaitable[None]) -> None:
        async with sem:
            await c

    await asyncio.gather(*(one(c) for c in coros))


class Loop:
    def __init__(self, op: Operator) -> None:
        self.op = op
        self._last_objects = 0.0
        self._written_objects: dict[tuple[str, str], JsonDict] = {}

    async def run(self) -> None:
        op = self.op
        await op.ready.wait()
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(op.wake.wait(), timeout=IDLE_SECONDS)
            await asyncio.sleep(DEBOUNCE_SECONDS)
            op.wake.clear()
            try:
                await self.cycle()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("scheduler cycle failed; retrying")
                await asyncio.sleep(0.5)
                op.poke()

    # ------------------------------------------------------------------ one cycle

    async def cycle(self) -> None:
        op = self.op
        await self._settle_vanished()
        now = op.now()
        t0 = time.perf_counter()
        snap = op.cache.snapshot(now)
        decisions = schedule(snap, now)
        op.cache.assume_all(decisions, now)
        elapsed = time.perf_counter() - t0
        if op.metrics is not None:
            kinds = Counter(type(d).__name__ for d in decisions)
            op.metrics.observe_cycle(elapsed, kinds)
        # Status first, in decision order (a Retry of attempt n, then the Admit of n+1 in the
        # same cycle must leave the job Starting, not Runnable).
        for d in decisions:
            if not isinstance(d, Admit | Terminate):
                self._record(d, now)
        admits = [d for d in decisions if isinstance(d, Admit)]
        stops = [d for d in decisions if isinstance(d, Terminate)]
        if admits or stops:
            await _bounded(
                [self._admit(d, now) for d in admits] + [self._terminate(d) for d in stops]
            )
        await self._flush()
        await self._post_events()
        if time.monotonic() - self._last_objects >= OBJECT_STATUS_SECONDS:
            self._last_objects = time.monotonic()
            await self._publish_objects(now)

    # ------------------------------------------------------------------ effects: Jobs

    def _placement(self, ce_name: str) -> Placement:
        ce = self.op.ces.get(ce_name)
        if ce is None:
            return Placement(ce_name, "OnDemand")
        return Placement(
            compute_environment=ce_name,
            capacity_type=convert.capacity_type(ce),
            node_selector=convert.ce_node_selector(ce),
            tolerations=convert.ce_tolerations(ce),
        )

    async def _admit(self, d: Admit, now: float) -> None:
        op = self.op
        rec = op.records.get(d.job_key)
        if rec is None:
            op.cache.forget(d, now)
            return
        ns, name, _ = split_key(d.job_key)
        placement = self._placement(d.compute_environment)
        manifest = build_job(
            name=d.k8s_job_name,
            ref=AttemptRef(
                namespace=ns,
                name=name,
                uid=rec.uid,
                queue=rec.queue,
                attempt=d.attempt,
                index=d.index,
                array_size=rec.array_size,
            ),
            placement=placement,
            pod_template=rec.template,
            timeout_seconds=d.timeout_seconds,
        )
        existed = False
        try:
            await op.kube.create(JOBS, manifest, namespace=ns)
        except ApiError as exc:
            if exc.conflict:
                existed = True  # created before a restart: the same attempt, not a second Job
            elif exc.not_found or exc.status in (400, 403, 422):
                op.cache.forget(d, op.now())
                log.warning("cannot create Job %s/%s: %s", ns, d.k8s_job_name, exc)
                if exc.status != 404:
                    op.warn(rec.ref(), "JobCreateFailed", str(exc)[:500])
                return
            else:
                op.cache.forget(d, op.now())
                op.poke()
                return
        except (OSError, TimeoutError) as exc:
            op.cache.forget(d, op.now())
            log.warning("creating Job %s/%s failed (%s); will retry", ns, d.k8s_job_name, exc)
            op.poke()
            return
        if op.metrics is not None:
            wait = None
            if d.attempt == 1 and rec.admitted_at is None:
                wait = now - rec.created_at if rec.created_at else None
            op.metrics.observe_admission(rec.queue, wait, placement.capacity_type)
        if rec.admitted_at is None:
            rec.admitted_at = now
        if d.index is None:
            if not any(a.get("number") == d.attempt for a in rec.attempts):
                rec.attempts.append(
                    {
                        "number": d.attempt,
                        "jobName": d.k8s_job_name,
                        "computeEnvironment": d.compute_environment,
                        "capacityType": placement.capacity_type,
                    }
                )
            rec.phase = Phase.STARTING
            rec.pending.update(
                phase=str(Phase.STARTING),
                reason="Admitted",
                message=f"Kubernetes Job {d.k8s_job_name} created on {d.compute_environment}",
                queuePosition=None,
                computeEnvironment=d.compute_environment,
                capacityType=placement.capacity_type,
                attempts=rec.attempts,
            )
            op.dirty.add(d.job_key)
        if existed:
            await self._replay_existing(ns, d.k8s_job_name)

    async def _replay_existing(self, ns: str, job_name: str) -> None:
        """A Job of this attempt already existed: feed what its pods already did."""
        op = self.op
        try:
            pods = await op.kube.list(PODS, namespace=ns, labels=f"job-name={job_name}")
            job = await op.kube.get(JOBS, job_name, namespace=ns)
        except (ApiError, OSError, TimeoutError):
            return
        for pod in pods:
            op.on_pod(pod)
        op.on_k8s_job(job)

    async def _terminate(self, d: Terminate) -> None:
        op = self.op
        ns, _, _ = split_key(d.job_key)
        try:
            await op.kube.delete(JOBS, d.k8s_job_name, namespace=ns)
        except (ApiError, OSError, TimeoutError) as exc:
            log.warning("deleting Job %s/%s failed: %s", ns, d.k8s_job_name, exc)

    def _settle_job_verdicts(self) -> None:
        """Attempts whose Job finished but whose pod never reported (gone): the Job decides."""
        op = self.op
        if not op.job_verdicts:
            return
        now = op.now()
        keep = []
        for seen, key, lab, ok in op.job_verdicts:
            rec = op.records.get(key)
            if rec is None or not op._live(key, lab.index, lab.attempt):
                continue
            if now - seen < VERDICT_GRACE_SECONDS:
                keep.append((seen, key, lab, ok))
                continue
            out = convert.PodOutcome(
                exit_code=0 if ok else None,
                reason="Completed" if ok else "Failed",
                status_reason=None if ok else "the attempt's pod is gone; its Job failed",
                interrupted=False,
                started_at=None,
                stopped_at=now,
            )
            op._finish(rec, lab, out, None, None, timed_out=False)
        op.job_verdicts = keep
        if keep:
            op.poke()

    async def _enforce_deadlines(self) -> None:
        """Backstop for attempt timeouts: the Job's ``activeDeadlineSeconds`` normally stops
        an attempt; one still running well past its timeout is stopped by kubatch."""
        op = self.op
        if not op.deadlines:
            return
        now = op.now()
        late = [
            (ident, lab)
            for ident, (expires, lab) in op.deadlines.items()
            if now > expires + DEADLINE_GRACE_SECONDS
        ]
        for ident, lab in late:
            op.deadlines.pop(ident, None)
            rec = op.records.get(ident[0])
            if rec is None or not op._live(rec.key, lab.index, lab.attempt):
                continue
            name = job_name_for_attempt(rec.name, rec.uid, lab.index, lab.attempt)
            log.info("attempt %s of %s is past its timeout: stopping Job %s", lab.attempt,
                     rec.key, name)  # fmt: skip
            with contextlib.suppress(ApiError, OSError, TimeoutError):
                await op.kube.delete(JOBS, name, namespace=rec.namespace)
            out = convert.PodOutcome(
                exit_code=None,
                reason="DeadlineExceeded",
                status_reason=f"attempt exceeded its timeout of {rec.timeout_seconds}s",
                interrupted=False,
                started_at=None,
                stopped_at=now,
            )
            op._finish(rec, lab, out, None, op.pod_nodes.get(ident), timed_out=True)

    async def _settle_vanished(self) -> None:
        op = self.op
        self._settle_job_verdicts()
        await self._enforce_deadlines()
        if not op.vanished:
            return
        batch, op.vanished = op.vanished, []
        for key, lab, pod_name, node in batch:
            rec = op.records.get(key)
            if rec is None:
                continue
            name = job_name_for_attempt(rec.name, rec.uid, lab.index, lab.attempt)
            timed_out = False
            try:
                job = await op.kube.get(JOBS, name, namespace=rec.namespace)
                timed_out = convert.job_deadline_exceeded(job)
            except ApiError:
                job = None
            except (OSError, TimeoutError):
                op.vanished.append((key, lab, pod_name, node))
                continue
            if timed_out:
                op.on_k8s_job(job or {})
                continue
            out = convert.PodOutcome(
                exit_code=None,
                reason="PodDeleted",
                status_reason=(
                    f"pod {pod_name} was deleted"
                    + (f" with its node {node}" if node and node not in op.nodes else "")
                ),
                interrupted=True,
                started_at=None,
                stopped_at=op.now(),
            )
            op._finish(rec, lab, out, pod_name, node, timed_out=False)

    # ------------------------------------------------------------------ status of jobs

    def _record(self, d: Decision, now: float) -> None:
        op = self.op
        rec = op.records.get(d.job_key)
        if rec is None:
            return
        p = rec.pending
        if isinstance(d, SetWaiting):
            if rec.finished:
                return
            rec.phase = d.phase
            p.update(
                phase=str(d.phase),
                reason=str(d.reason),
                message=d.message,
                queuePosition=d.queue_position,
            )
        elif isinstance(d, Retry):
            if d.index is not None:
                return
            rec.phase = Phase.RUNNABLE
            p.update(
                phase=str(Phase.RUNNABLE),
                reason=str(d.reason) if d.reason else "Retrying",
                message=d.message,
                attempts=rec.attempts,
            )
            kind = "Interrupted" if d.interrupted else "Retrying"
            op.events.append(_event(rec, "Warning" if d.interrupted else "Normal", kind, d.message))
            if op.metrics is not None and not d.interrupted:
                op.metrics.observe_retry(rec.queue)
        elif isinstance(d, Fail | Succeed):
            if rec.finished:
                return
            rec.finished = True
            phase = Phase.FAILED if isinstance(d, Fail) else Phase.SUCCEEDED
            rec.phase = phase
            p.update(phase=str(phase), queuePosition=None, stoppedAt=convert.rfc3339(now))
            if isinstance(d, Fail):
                p.update(reason=str(d.reason), message=d.message)
                op.warn(rec.ref(), str(d.reason), d.message)
            else:
                p.update(
                    reason=str(phase),
                    message="all children succeeded" if rec.array_size else "exit code 0",
                )
            if rec.attempts:
                p["attempts"] = rec.attempts
            if op.metrics is not None:
                run = now - rec.started_at if rec.started_at else None
                op.metrics.observe_completion(
                    rec.queue,
                    phase,
                    run,
                    0.0,
                    reason=str(d.reason) if isinstance(d, Fail) else None,
                )
        elif isinstance(d, UpdateArraySummary):
            if not rec.finished or d.phase.terminal:
                rec.phase = d.phase
                p["phase"] = str(d.phase)
                if d.phase in (Phase.RUNNING, Phase.STARTING) and rec.started_at is None:
                    rec.started_at = now
                    p["startedAt"] = convert.rfc3339(now)
                if d.phase is Phase.RUNNING:
                    p.update(reason="Running", message="children running", queuePosition=None)
            p["arrayStatusSummary"] = st.summary_dict(rec.array_size or 0, d.summary)
        else:
            return
        op.dirty.add(d.job_key)

    async def _flush(self) -> None:
        op = self.op
        if not op.dirty:
            return
        keys, op.dirty = op.dirty, set()
        now_iso = convert.rfc3339(op.now())
        work = []
        for key in keys:
            rec = op.records.get(key)
            if rec is None or not rec.pending:
                continue
            if rec.pending.keys() <= SUBMISSION_FIELDS:
                # The definition revision of a job the scheduler has not looked at yet: it
                # goes out with the job's first phase (next cycle), not in a patch of its own.
                op.dirty.add(key)
                continue
            patch = st.strip_equal(st.without_nulls(rec.pending, rec.written), rec.written)
            rec.pending = {}
            if not patch:
                continue
            phase = Phase(str(patch.get("phase") or rec.written.get("phase") or rec.phase))
            if "phase" in patch or "reason" in patch:
                reason = patch.get("reason", rec.written.get("reason"))
                message = patch.get("message", rec.written.get("message")) or ""
                rec.conditions = st.job_conditions(
                    phase, reason, message, rec.generation, now_iso, rec.conditions
                )
                patch["conditions"] = rec.conditions
                patch["observedGeneration"] = rec.generation
            if "attempts" in patch:
                patch["attemptCount"] = len(rec.attempts)
            work.append(self._patch_job(rec, patch))
        await _bounded(work)

    async def _patch_job(self, rec: JobRecord, patch: JsonDict) -> None:
        op = self.op
        log.debug("status patch %s: %s", rec.key, ",".join(sorted(patch)))
        try:
            await op.kube.patch(
                BATCHJOBS, rec.name, {"status": patch}, namespace=rec.namespace, status=True
            )
        except ApiError as exc:
            if exc.not_found:
                return
            log.warning("status patch of %s failed: %s (patch %s)", rec.key, exc, patch)
            self._requeue(rec, patch)
            return
        except (OSError, TimeoutError) as exc:
            log.warning("status patch of %s failed: %s", rec.key, exc)
            self._requeue(rec, patch)
            return
        # A copy: ``attempts`` is the record's own list, which later events mutate in place.
        rec.written.update(copy.deepcopy(patch))

    def _requeue(self, rec: JobRecord, patch: JsonDict) -> None:
        rec.pending = {**patch, **rec.pending}
        self.op.dirty.add(rec.key)
        self.op.poke()

    async def _post_events(self) -> None:
        op = self.op
        if not op.events:
            return
        batch, op.events = op.events[:200], op.events[200:]
        if op.events:
            op.poke()
        await _bounded([self._post_event(e.ref, e.type, e.reason, e.message) for e in batch], 8)

    async def _post_event(self, ref: JsonDict, etype: str, reason: str, message: str) -> None:
        meta = ref.get("metadata") or {}
        ns = meta.get("namespace") or "default"
        now_iso = convert.rfc3339(self.op.now())
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{meta.get('name', 'kubatch')}.", "namespace": ns},
            "involvedObject": {
                "apiVersion": ref.get("apiVersion"),
                "kind": ref.get("kind"),
                "name": meta.get("name"),
                "namespace": meta.get("namespace"),
                "uid": meta.get("uid"),
            },
            "type": etype,
            "reason": reason[:128],
            "message": message[:1024],
            "source": {"component": "kubatch"},
            "reportingComponent": "kubatch",
            "reportingInstance": "kubatch-operator",
            "firstTimestamp": now_iso,
            "lastTimestamp": now_iso,
            "count": 1,
        }
        try:
            await self.op.kube.create(EVENTS, body, namespace=ns)
        except (ApiError, OSError, TimeoutError) as exc:
            log.debug("event not posted: %s", exc)

    # ------------------------------------------------------------------ queues and CEs

    async def _publish_objects(self, now: float) -> None:
        op = self.op
        now_iso = convert.rfc3339(now)
        counts = op.queue_counts()
        work: list[Awaitable[None]] = []
        for name, q in op.queues.items():
            c = counts.get(name, Counter())
            if op.metrics is not None:
                op.metrics.set_queue_phase_counts(name, {Phase(k): v for k, v in c.items()})
            enabled = q.spec.state == api.State.ENABLED
            status: JsonDict = {
                "jobCounts": {str(p).lower(): c.get(str(p), 0) for p in Phase},
                "observedGeneration": q.metadata.generation,
            }
            status["conditions"] = st.ready_conditions(
                True,
                "Enabled" if enabled else "Disabled",
                "accepting and admitting jobs" if enabled else "accepting jobs, admitting none",
                q.metadata.generation,
                now_iso,
                self._prev_conditions("JobQueue", name),
            )
            work.append(self._patch_object("JobQueue", name, status))
        backlog = self._backlog()
        for name, ce in op.ces.items():
            cr = ce.spec.compute_resources
            max_v = cr.max_vcpus if cr else 0
            min_v = cr.min_vcpus if cr else 0
            led = op.cache.ledgers.get(name)
            allocated = led.mcpu / 1000 if led is not None else 0.0
            pool = [n for n in op.pool_nodes(ce) if n.usable]
            capacity = sum(n.allocatable.mcpu for n in pool) / 1000
            desired = max(min_v, min(max_v, math.ceil(allocated + backlog.get(name, 0) / 1000)))
            if ce.spec.type != api.ComputeEnvironmentType.MANAGED:
                desired = math.ceil(capacity)
            enabled = ce.spec.state == api.State.ENABLED
            if op.metrics is not None:
                op.metrics.set_ce(
                    name,
                    desired,
                    allocated,
                    capacity,
                    max_v,
                    capacity_type=convert.capacity_type(ce),
                    state=str(ce.spec.state),
                )
            status = {
                "desiredvCpus": desired,
                "allocatedvCpus": allocated,
                "capacityvCpus": capacity,
                "nodes": len(pool),
                "observedGeneration": ce.metadata.generation,
                "conditions": st.ready_conditions(
                    enabled,
                    "Enabled" if enabled else "Disabled",
                    f"{len(pool)} ready node(s), {capacity:g} vCPUs"
                    if enabled
                    else "disabled: admits no new jobs",
                    ce.metadata.generation,
                    now_iso,
                    self._prev_conditions("ComputeEnvironment", name),
                ),
            }
            work.append(self._patch_object("ComputeEnvironment", name, status))
        for (kind, name), note in list(op.notes.items()):
            if kind == "JobDefinition" or note.problems:
                if note.written and (kind, name) not in op.dirty_objects:
                    continue
                if note.problems:
                    conds = st.invalid_conditions(
                        "; ".join(note.problems), note.generation, now_iso, note.conditions
                    )
                else:
                    conds = st.ready_conditions(
                        True, "Valid", "definition is valid", note.generation, now_iso,
                        note.conditions,
                    )  # fmt: skip
                note.conditions = conds
                note.written = True
                work.append(
                    self._patch_object(
                        kind, name, {"conditions": conds, "observedGeneration": note.generation}
                    )
                )
        op.dirty_objects.clear()
        await _bounded(work, 8)

    def _prev_conditions(self, kind: str, name: str) -> list[JsonDict]:
        prev = self._written_objects.get((kind, name)) or {}
        conds: list[JsonDict] = prev.get("conditions") or []
        return conds

    def _backlog(self) -> dict[str, int]:
        """Milli-vCPUs of Runnable jobs per CE they would go to first (managed scaling)."""
        op = self.op
        out: dict[str, int] = {}
        for key, rec in op.records.items():
            if rec.phase is not Phase.RUNNABLE:
                continue
            q = op.queues.get(rec.queue)
            if q is None:
                continue
            job = op.cache.jobs.get(key)
            if job is None:
                continue
            order = sorted(q.spec.compute_environment_order, key=lambda o: o.order)
            for o in order:
                ce = op.ces.get(o.compute_environment)
                if ce is not None and ce.spec.state == api.State.ENABLED:
                    n = rec.array_size or 1
                    out[o.compute_environment] = (
                        out.get(o.compute_environment, 0) + job.spec.size.mcpu * n
                    )
                    break
        return out

    async def _patch_object(self, kind: str, name: str, status: JsonDict) -> None:
        key = (kind, name)
        prev = self._written_objects.get(key)
        comparable = {k: v for k, v in status.items() if k != "conditions"}
        prev_cmp = {k: v for k, v in (prev or {}).items() if k != "conditions"}
        if (
            prev is not None
            and comparable == prev_cmp
            and _same_conditions(status.get("conditions"), prev.get("conditions"))
        ):
            return
        res = {
            "JobQueue": JOBQUEUES,
            "ComputeEnvironment": COMPUTEENVIRONMENTS,
            "JobDefinition": JOBDEFINITIONS,
        }[kind]
        ns = None
        obj_name = name
        if kind == "JobDefinition":
            ns, obj_name = name.split("/", 1)
        try:
            await self.op.kube.patch(res, obj_name, {"status": status}, namespace=ns, status=True)
        except (ApiError, OSError, TimeoutError) as exc:
            log.debug("status of %s %s not written: %s", kind, name, exc)
            return
        self._written_objects[key] = status


def _same_conditions(a: Any, b: Any) -> bool:
    def strip(cs: Any) -> list[tuple[Any, ...]]:
        return [(c.get("type"), c.get("status"), c.get("reason"), c.get("message"))
                for c in cs or []]  # fmt: skip

    return strip(a) == strip(b)


def _event(rec: JobRecord, etype: str, reason: str, message: str) -> Any:
    from kubatch.controller.operator import EventNote

    return EventNote(rec.ref(), etype, reason, message)
