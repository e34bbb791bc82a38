"""The operator's state: the scheduling cache plus what the effects need of each object.

Handlers call the ``on_*`` methods (synchronous: parse, feed the cache, mark what must be
written, wake the loop). The loop (``controller.loop``) is the only place that decides and
writes. Everything runs on one asyncio event loop, so no locks are needed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kubatch.adapters.kube import Kube
from kubatch.api import models as api
from kubatch.api.models import dump
from kubatch.api.problems import InvalidResource, Problem
from kubatch.api.validation import validate
from kubatch.controller import convert
from kubatch.core.cache import Cache
from kubatch.core.lifecycle import Phase
from kubatch.metrics import Metrics

log = logging.getLogger("kubatch")
JsonDict = dict[str, Any]
Clock = Callable[[], float]


@dataclass(slots=True)
class JobRecord:
    """What the effects need of one BatchJob (the cache holds what the scheduler needs)."""

    namespace: str
    name: str
    uid: str
    generation: int | None
    queue: str
    template_json: str  # the resolved pod template, as interned JSON (shared by equal ones)
    array_size: int | None
    created_at: float
    timeout_seconds: int | None
    attempts: list[JsonDict] = field(default_factory=list)
    written: JsonDict = field(default_factory=dict)  # status fields as last written
    pending: JsonDict = field(default_factory=dict)  # status fields to write next flush
    conditions: list[JsonDict] = field(default_factory=list)
    phase: Phase = Phase.SUBMITTED
    admitted_at: float | None = None
    started_at: float | None = None
    finished: bool = False

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def template(self) -> JsonDict:
        """A fresh copy of the resolved pod template."""
        out: JsonDict = json.loads(self.template_json)
        return out

    def ref(self) -> JsonDict:
        """The object reference used for Events."""
        return {
            "apiVersion": "kubatch.io/v1alpha1",
            "kind": "BatchJob",
            "metadata": {"name": self.name, "namespace": self.namespace, "uid": self.uid},
        }


@dataclass(slots=True)
class ObjectNote:
    """A cluster object's validity as last reported (to write conditions once per change)."""

    generation: int | None
    problems: tuple[str, ...]
    conditions: list[JsonDict] = field(default_factory=list)
    written: bool = False


@dataclass(frozen=True, slots=True)
class EventNote:
    """A Kubernetes Event to post (for what a user must notice)."""

    ref: JsonDict
    type: str
    reason: str
    message: str


def _problems_text(problems: list[Problem]) -> str:
    return "; ".join(str(p) for p in problems)


class Operator:
    """Operator-wide state, kept in kopf's memo (no module globals)."""

    def __init__(self, kube: Kube, metrics: Metrics | None = None, clock: Clock = time.time):
        self.kube = kube
        self.metrics = metrics
        self.clock = clock
        self.cache = Cache()
        self.wake = asyncio.Event()
        self.ready = asyncio.Event()  # set once the cache was rebuilt from lists
        self.records: dict[str, JobRecord] = {}
        self.ces: dict[str, api.ComputeEnvironment] = {}
        self.queues: dict[str, api.JobQueue] = {}
        self.definitions: dict[tuple[str, str], api.JobDefinition] = {}
        self.nodes: dict[str, convert.NodeInfo] = {}
        self.notes: dict[tuple[str, str], ObjectNote] = {}  # (kind, name) -> validity
        self.dirty: set[str] = set()  # BatchJob keys with pending status fields
        self.dirty_objects: set[tuple[str, str]] = set()  # (kind, name) of queues/CEs/defs
        self.events: list[EventNote] = []
        self.invalid_jobs: dict[str, int | None] = {}  # key -> generation reported invalid
        self.finished_attempts: set[tuple[str, int | None, int]] = set()
        self.started_attempts: set[tuple[str, int | None, int]] = set()
        self.pod_nodes: dict[tuple[str, int | None, int], str] = {}
        self.vanished: list[tuple[str, convert.AttemptLabels, str, str | None]] = []
        self.attempt_cost: dict[str, float] = {}
        self.invalid_queues: dict[str, Mapping[str, Any]] = {}
        self.job_verdicts: list[tuple[float, str, convert.AttemptLabels, bool]] = []
        # running attempts with a timeout -> (when it expires, labels): kubatch's own backstop
        self.deadlines: dict[tuple[str, int | None, int], tuple[float, convert.AttemptLabels]] = {}

    # ------------------------------------------------------------------ helpers

    def poke(self) -> None:
        self.wake.set()

    def now(self) -> float:
        return self.clock()

    def warn(self, ref: JsonDict, reason: str, message: str) -> None:
        self.events.append(EventNote(ref, "Warning", reason, message))

    def note(self, ref: JsonDict, reason: str, message: str) -> None:
        self.events.append(EventNote(ref, "Normal", reason, message))

    # ------------------------------------------------------------------ cluster objects

    def _validity(
        self, kind: str, name: str, generation: int | None, problems: list[Problem], ref: JsonDict
    ) -> bool:
        key = (kind, name)
        text = tuple(str(p) for p in problems)
        old = self.notes.get(key)
        if old is None or old.generation != generation or old.problems != text:
            self.notes[key] = ObjectNote(generation, text, old.conditions if old else [])
            self.dirty_objects.add(key)
            if problems:
                self.warn(ref, "InvalidSpec", _problems_text(problems))
        return not problems

    def on_compute_environment(self, body: Mapping[str, Any], deleted: bool = False) -> None:
        name = str((body.get("metadata") or {}).get("name", ""))
        if deleted:
            self.ces.pop(name, None)
            self.notes.pop(("ComputeEnvironment", name), None)
            self.cache.remove_compute_environment(name)
            if self.metrics:
                self.metrics.remove_ce(name)
            self.poke()
            return
        gen = (body.get("metadata") or {}).get("generation")
        try:
            ce = api.parse_compute_environment(body)
            problems = validate(ce)
        except InvalidResource as err:
            ce, problems = None, list(err.problems)
        ok = self._validity("ComputeEnvironment", name, gen, problems, _ref(body))
        if not ok or ce is None:
            if name in self.ces:
                self.ces.pop(name)
                self.cache.remove_compute_environment(name)
            self.poke()
            return
        new = name not in self.ces
        self.ces[name] = ce
        self._refresh_ce(name)
        if new:
            for body_ in list(self.invalid_queues.values()):
                self.on_job_queue(body_)
        self.poke()

    def _refresh_ce(self, name: str) -> None:
        ce = self.ces.get(name)
        if ce is None:
            return
        self.cache.upsert_compute_environment(convert.ce_to_core(ce, self.pool_nodes(ce)))

    def pool_nodes(self, ce: api.ComputeEnvironment) -> list[convert.NodeInfo]:
        selector = convert.ce_node_selector(ce)
        return [n for n in self.nodes.values() if convert.in_pool(n, selector)]

    def on_job_queue(self, body: Mapping[str, Any], deleted: bool = False) -> None:
        name = str((body.get("metadata") or {}).get("name", ""))
        if deleted:
            self.invalid_queues.pop(name, None)
            self.queues.pop(name, None)
            self.notes.pop(("JobQueue", name), None)
            self.cache.remove_queue(name)
            if self.metrics:
                self.metrics.remove_queue(name)
            self.poke()
            return
        gen = (body.get("metadata") or {}).get("generation")
        try:
            q = api.parse_job_queue(body)
            problems = validate(q, compute_environments=set(self.ces))
        except InvalidResource as err:
            q, problems = None, list(err.problems)
        ok = self._validity("JobQueue", name, gen, problems, _ref(body))
        if not ok or q is None:
            # kept to validate again when a compute environment appears (GitOps order)
            self.invalid_queues[name] = body
            if name in self.queues:
                self.queues.pop(name)
                self.cache.remove_queue(name)
            self.poke()
            return
        self.invalid_queues.pop(name, None)
        self.queues[name] = q
        self.cache.upsert_queue(convert.queue_to_core(q), self.now())
        self.poke()

    def on_job_definition(self, body: Mapping[str, Any], deleted: bool = False) -> None:
        meta = body.get("metadata") or {}
        key = (str(meta.get("namespace") or "default"), str(meta.get("name", "")))
        note_key = f"{key[0]}/{key[1]}"
        if deleted:
            self.definitions.pop(key, None)
            self.notes.pop(("JobDefinition", note_key), None)
            return
        try:
            jd = api.parse_job_definition(body)
            problems = validate(jd)
        except InvalidResource as err:
            jd, problems = None, list(err.problems)
        ok = self._validity("JobDefinition", note_key, meta.get("generation"), problems, _ref(body))
        if ok and jd is not None:
            self.definitions[key] = jd
        else:
            self.definitions.pop(key, None)
        self.poke()

    def on_namespace(self, body: Mapping[str, Any], deleted: bool = False) -> None:
        meta = body.get("metadata") or {}
        if not deleted:
            self.cache.set_namespace_labels(str(meta.get("name")), dict(meta.get("labels") or {}))

    def on_node(self, body: Mapping[str, Any], deleted: bool = False) -> None:
        name = str((body.get("metadata") or {}).get("name", ""))
        old = self.nodes.get(name)
        if deleted:
            self.nodes.pop(name, None)
            new = None
        else:
            new = convert.node_info(body)
            if old is not None and old == new:
                return
            self.nodes[name] = new
        for ce_name, ce in self.ces.items():
            selector = convert.ce_node_selector(ce)
            if (old is not None and convert.in_pool(old, selector)) or (
                new is not None and convert.in_pool(new, selector)
            ):
                self._refresh_ce(ce_name)
        self.poke()

    # ------------------------------------------------------------------ batch jobs

    def on_batch_job(self, body: Mapping[str, Any], deleted: bool = False) -> None:
        meta = body.get("metadata") or {}
        ns, name = str(meta.get("namespace") or "default"), str(meta.get("name", ""))
        key = f"{ns}/{name}"
        if deleted:
            self.records.pop(key, None)
            self.invalid_jobs.pop(key, None)
            self.dirty.discard(key)
            self.cache.remove_job(key)
            self.poke()
            return
        gen = meta.get("generation")
        rec = self.records.get(key)
        if rec is not None and rec.generation == gen:
            return  # our own status write coming back, or a label/annotation change
        if key in self.invalid_jobs and self.invalid_jobs[key] == gen:
            return
        now = self.now()
        try:
            job = api.parse_batch_job(body)
        except InvalidResource as err:
            self._invalid_job(body, list(err.problems))
            return
        if rec is not None:
            # A change of a submitted job: only parallelism and terminate matter.
            rev = job.status.job_definition
            if rev is None:
                rev = api.JobDefinitionRevision(name=job.spec.job_definition, template=rec.template)
            rec.generation = gen
            self.cache.upsert_job(convert.job_to_core(job, rev), now)
            self.poke()
            return
        status = job.status
        if status.phase is not None and status.job_definition is not None:
            self._restore(job, status.job_definition, now)
            return
        if status.phase is not None and status.phase.terminal:
            return  # finished before its definition was recorded (e.g. InvalidSpec)
        problems = validate(
            job,
            queues=self.queues,
            definitions={n: d for (dns, n), d in self.definitions.items() if dns == ns},
        )
        if problems:
            self._invalid_job(body, problems)
            return
        defn = self.definitions[(ns, job.spec.job_definition)]
        rev = convert.revision(defn, job)
        spec = convert.job_to_core(job, rev)
        rec = self._record(job, rev)
        rec.pending["jobDefinition"] = dump(rev)
        rec.pending["createdAt"] = convert.rfc3339(rec.created_at or now)
        self.dirty.add(key)
        self.cache.upsert_job(spec, now)
        if self.metrics:
            self.metrics.observe_submission(job.spec.job_queue)
        self.poke()

    def _record(self, job: api.BatchJob, rev: api.JobDefinitionRevision) -> JobRecord:
        meta = job.metadata
        arr = job.spec.array_properties
        rec = JobRecord(
            namespace=meta.namespace or "default",
            name=meta.name,
            uid=meta.uid or "",
            generation=meta.generation,
            queue=job.spec.job_queue,
            template_json=self._intern(rev.template or {}),
            array_size=arr.size if arr else None,
            created_at=convert.ts(meta.creation_timestamp),
            timeout_seconds=rev.timeout.attempt_duration_seconds if rev.timeout else None,
        )
        self.records[rec.key] = rec
        return rec

    @staticmethod
    def _intern(template: JsonDict) -> str:
        """The template as compact JSON, interned: thousands of jobs of one definition and
        parameters share one string instead of each keeping a tree of dicts."""
        return sys.intern(json.dumps(template, sort_keys=True, separators=(",", ":")))

    def _restore(self, job: api.BatchJob, rev: api.JobDefinitionRevision, now: float) -> None:
        """After a restart: rebuild the cache entry of a submitted job from its status."""
        rec = self._record(job, rev)
        status = job.status
        phase = status.phase or Phase.SUBMITTED
        rec.phase = phase
        rec.finished = phase.terminal
        rec.attempts = [dump(a) for a in status.attempts]
        rec.conditions = [dump(c) for c in status.conditions]
        written = dump(status)
        rec.written = {k: v for k, v in written.items() if k not in ("jobDefinition", "conditions")}
        rec.started_at = convert.ts(status.started_at) or None
        last = status.attempts[-1] if status.attempts else None
        ce = status.compute_environment
        if last is not None and last.stopped_at is None and not phase.terminal:
            # An attempt was admitted and has not ended: the job is Starting (or Running)
            # whatever phase the status shows, on that attempt's compute environment.
            if phase not in (Phase.STARTING, Phase.RUNNING):
                phase = Phase.STARTING
            ce = last.compute_environment or ce
        if phase is not rec.phase:
            rec.phase = phase
            rec.pending["phase"] = str(phase)
            self.dirty.add(rec.key)
        replay = phase in (Phase.STARTING, Phase.RUNNING) and last is not None and last.stopped_at
        counted = status.attempts[:-1] if replay else status.attempts
        failures = sum(1 for a in counted if a.exit_code not in (None, 0) and not a.interrupted)
        self.cache.restore_job(
            convert.job_to_core(job, rev),
            now,
            phase=phase,
            attempt=len(status.attempts),
            failures=failures,
            compute_environment=ce,
        )
        for a in status.attempts:
            if a.stopped_at is not None:
                self.finished_attempts.add((rec.key, None, a.number))
        if replay and last is not None:
            # The attempt's end was written but not its verdict (killed in between): replay
            # the recorded outcome; its pod may be gone by now.
            self.cache.attempt_started(rec.key, None, last.number, now)
            self.cache.attempt_finished(
                rec.key,
                None,
                last.number,
                now,
                exit_code=last.exit_code,
                reason=last.reason,
                status_reason=last.status_reason,
                interrupted=last.interrupted,
                timed_out=last.reason == "DeadlineExceeded",
            )
        self.poke()

    def _invalid_job(self, body: Mapping[str, Any], problems: list[Problem]) -> None:
        meta = body.get("metadata") or {}
        ns, name = str(meta.get("namespace") or "default"), str(meta.get("name", ""))
        key = f"{ns}/{name}"
        self.invalid_jobs[key] = meta.get("generation")
        status = body.get("status") or {}
        if status.get("phase") == str(Phase.FAILED):
            return
        message = _problems_text(problems)
        rec = JobRecord(
            namespace=ns,
            name=name,
            uid=str(meta.get("uid", "")),
            generation=meta.get("generation"),
            queue=str((body.get("spec") or {}).get("jobQueue", "")),
            template_json="{}",
            array_size=None,
            created_at=convert.parse_time(meta.get("creationTimestamp")) or self.now(),
            timeout_seconds=None,
        )
        rec.pending.update(
            phase=str(Phase.FAILED),
            reason="InvalidSpec",
            message=message,
            stoppedAt=convert.rfc3339(self.now()),
        )
        rec.phase = Phase.FAILED
        rec.finished = True
        self.records[key] = rec
        self.dirty.add(key)
        self.warn(rec.ref(), "InvalidSpec", message)
        self.poke()

    # ------------------------------------------------------------------ jobs and pods

    def _attempt_of(self, obj: Mapping[str, Any]) -> tuple[JobRecord, convert.AttemptLabels] | None:
        labels = convert.attempt_labels(obj)
        if labels is None:
            return None
        rec = self.records.get(labels.key)
        if rec is None or (labels.uid and rec.uid and labels.uid != rec.uid):
            return None
        return rec, labels

    def _live(self, key: str, index: int | None, attempt: int) -> bool:
        """Whether the cache runs this attempt now (Starting/Running). Reports about other
        attempts are not recorded, so that a replay after an admission still counts."""
        job = self.cache.jobs.get(key)
        if job is None:
            return False
        if index is not None and job.array is not None:
            arr = job.array
            return index in arr.active and arr.child_attempt[index] == attempt
        return job.phase in (Phase.STARTING, Phase.RUNNING) and job.attempt == attempt

    def on_pod(self, body: Mapping[str, Any], deleted: bool = False) -> None:
        found = self._attempt_of(body)
        if found is None:
            return
        rec, lab = found
        ident = (rec.key, lab.index, lab.attempt)
        if ident in self.finished_attempts or not self._live(rec.key, lab.index, lab.attempt):
            return
        status = body.get("status") or {}
        phase = status.get("phase")
        node = (body.get("spec") or {}).get("nodeName")
        if node:
            self.pod_nodes[ident] = node
        now = self.now()
        pod_name = str((body.get("metadata") or {}).get("name", ""))
        if phase in ("Running", "Succeeded", "Failed") and ident not in self.started_attempts:
            self.started_attempts.add(ident)
            started = convert.pod_started_at(body) or now
            self.cache.attempt_started(rec.key, lab.index, lab.attempt, now)
            if rec.timeout_seconds:
                self.deadlines[ident] = (started + rec.timeout_seconds, lab)
            if lab.index is None:
                self._update_attempt(
                    rec,
                    lab.attempt,
                    podName=pod_name,
                    nodeName=node,
                    startedAt=convert.rfc3339(started),
                )
                if rec.started_at is None:
                    rec.started_at = started
                    rec.pending["startedAt"] = convert.rfc3339(started)
                rec.phase = Phase.RUNNING
                rec.pending["phase"] = str(Phase.RUNNING)
                rec.pending["reason"] = "Running"
                rec.pending["message"] = f"running on node {node}"
                rec.pending["queuePosition"] = None
                self.dirty.add(rec.key)
            self.poke()
        if phase in ("Succeeded", "Failed"):
            out = convert.pod_outcome(body)
            self._finish(rec, lab, out, pod_name, node, timed_out=False)
        elif deleted:
            # The pod vanished without a final status: stopped by its Job's deadline, by a
            # terminate, or by a node that went away. The loop looks at the Job to tell.
            self.vanished.append((rec.key, lab, pod_name, node))
            self.poke()

    def on_k8s_job(self, body: Mapping[str, Any], deleted: bool = False) -> None:
        found = self._attempt_of(body)
        if found is None:
            return
        rec, lab = found
        if convert.job_deadline_exceeded(body):
            out = convert.PodOutcome(
                exit_code=None,
                reason="DeadlineExceeded",
                status_reason=f"attempt exceeded its timeout of {rec.timeout_seconds}s",
                interrupted=False,
                started_at=None,
                stopped_at=self.now(),
            )
            self._finish(rec, lab, out, None, self.pod_nodes.get((rec.key, lab.index, lab.attempt)),
                         timed_out=True)  # fmt: skip
            return
        done = convert.job_finished(body)
        if done is not None and self._live(rec.key, lab.index, lab.attempt):
            # Normally the pod's own final status arrives first and decides. If the pod is
            # gone (deleted with its node while the operator was down), the Job's verdict
            # decides after a grace period (see Loop._settle_vanished).
            self.job_verdicts.append((self.now(), rec.key, lab, done))
            self.poke()

    def _finish(
        self,
        rec: JobRecord,
        lab: convert.AttemptLabels,
        out: convert.PodOutcome,
        pod_name: str | None,
        node: str | None,
        *,
        timed_out: bool,
    ) -> None:
        ident = (rec.key, lab.index, lab.attempt)
        if ident in self.finished_attempts or not self._live(rec.key, lab.index, lab.attempt):
            return
        self.finished_attempts.add(ident)
        self.started_attempts.discard(ident)
        self.deadlines.pop(ident, None)
        self.pod_nodes.pop(ident, None)
        now = self.now()
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
        if lab.index is None:
            fields: JsonDict = {
                "stoppedAt": convert.rfc3339(out.stopped_at or now),
                "exitCode": out.exit_code,
                "reason": out.reason,
                "statusReason": out.status_reason,
                "interrupted": out.interrupted,
            }
            if pod_name:
                fields["podName"] = pod_name
            if node:
                fields["nodeName"] = node
            # Not marked dirty: the verdict (Retry, Fail or Succeed) the cache has just queued
            # comes out of the next cycle and carries the attempt's end in the same patch.
            self._update_attempt(rec, lab.attempt, **fields)
        self._observe_attempt_end(rec, lab, out, node, now)
        self.poke()

    def _observe_attempt_end(
        self,
        rec: JobRecord,
        lab: convert.AttemptLabels,
        out: convert.PodOutcome,
        node: str | None,
        now: float,
    ) -> None:
        if self.metrics is None:
            return
        ce = self.ces.get(lab.compute_environment)
        ctype = convert.capacity_type(ce) if ce else "OnDemand"
        cost = 0.0
        info = self.nodes.get(node or "")
        if info is not None and out.started_at:
            from kubatch.metrics import estimate_cost

            size = convert.job_size(rec.template)
            cost = estimate_cost(
                info.price_per_hour,
                (out.stopped_at or now) - out.started_at,
                size.vcpus,
                info.allocatable.vcpus,
            )
        if out.interrupted:
            self.metrics.observe_interruption(rec.queue, ctype, cost)
        else:
            self.metrics.observe_cost(rec.queue, ctype, cost)
        self.attempt_cost[rec.key] = self.attempt_cost.get(rec.key, 0.0) + cost

    def _update_attempt(self, rec: JobRecord, number: int, **fields: Any) -> None:
        for a in rec.attempts:
            if a.get("number") == number:
                a.update({k: v for k, v in fields.items() if v is not None})
                rec.pending["attempts"] = rec.attempts
                return

    # ------------------------------------------------------------------ summaries

    def queue_counts(self) -> dict[str, Counter[str]]:
        """Jobs per queue and phase, from what was last written."""
        out: dict[str, Counter[str]] = {q: Counter() for q in self.queues}
        for rec in self.records.values():
            out.setdefault(rec.queue, Counter())[str(rec.phase)] += 1
        return out


def _ref(body: Mapping[str, Any]) -> JsonDict:
    meta = body.get("metadata") or {}
    ref: JsonDict = {
        "apiVersion": body.get("apiVersion", "kubatch.io/v1alpha1"),
        "kind": body.get("kind", ""),
        "metadata": {"name": meta.get("name"), "uid": meta.get("uid")},
    }
    if meta.get("namespace"):
        ref["metadata"]["namespace"] = meta["namespace"]
    return ref
