"""Intake: what the watch handlers call. Parse, validate, feed the cache — never decide.

Every ``on_*`` method is synchronous, idempotent and never raises: a bad object becomes
``Failed/InvalidSpec`` (BatchJobs) or ``Ready=False`` (the other kinds) with a Warning Event,
and an unexpected error is logged and counted (``kubatch_handler_errors_total``) instead of
leaving the handler, so one tenant's object can never stop the operator for the others.
References may arrive in any order: a BatchJob whose JobDefinition does not exist yet waits
(``Submitted``, ``JobDefinitionNotFound``) and is fed again the moment it appears; one whose
queue does not exist waits in the cache (``JobQueueNotFound``).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
from collections.abc import Callable, Mapping
from typing import Any, Concatenate, ParamSpec, TypeVar

from kubatch.api import models as api
from kubatch.api.admission import MUTABLE_TEXT, changed_fields, immutable_part
from kubatch.api.models import dump
from kubatch.api.problems import InvalidResource, Problem
from kubatch.api.validation import validate
from kubatch.controller import convert
from kubatch.controller import status as st
from kubatch.controller.records import (
    EventLog,
    JobBook,
    JobRecord,
    ObjectNote,
    intern_json,
    object_ref,
)
from kubatch.controller.registry import Registry
from kubatch.core.cache import Cache
from kubatch.core.lifecycle import Phase, Reason
from kubatch.core.retry import RetrySpecError
from kubatch.metrics import Metrics

log = logging.getLogger("kubatch.intake")
JsonDict = dict[str, Any]
P = ParamSpec("P")
R = TypeVar("R")


def guarded(
    fn: Callable[Concatenate[Intake, P], None],
) -> Callable[Concatenate[Intake, P], None]:
    """Never let an exception leave a handler: log it, count it, carry on."""

    def wrapper(self: Intake, /, *args: P.args, **kwargs: P.kwargs) -> None:
        try:
            fn(self, *args, **kwargs)
        except Exception:
            log.exception("%s failed; the object is skipped", fn.__name__)
            if self.metrics is not None:
                self.metrics.count_handler_error(fn.__name__)

    functools.update_wrapper(wrapper, fn)
    return wrapper


class Intake:
    """Feeds the cache and the records from watch events."""

    def __init__(
        self,
        cache: Cache,
        jobs: JobBook,
        registry: Registry,
        events: EventLog,
        *,
        metrics: Metrics | None,
        clock: Callable[[], float],
        poke: Callable[[], None],
        forget_attempts: Callable[[str], None],
    ) -> None:
        self.cache = cache
        self.jobs = jobs
        self.registry = registry
        self.events = events
        self.metrics = metrics
        self.clock = clock
        self.poke = poke
        self.forget_attempts = forget_attempts
        self.invalid_jobs: dict[str, int | None] = {}  # key -> generation reported invalid

    # ------------------------------------------------------------------ validity notes

    def _validity(
        self, kind: str, name: str, generation: int | None, problems: list[Problem], ref: JsonDict
    ) -> bool:
        key = (kind, name)
        text = tuple(str(p) for p in problems)
        reg = self.registry
        old = reg.notes.get(key)
        if old is None or old.generation != generation or old.problems != text:
            reg.notes[key] = ObjectNote(generation, text, old.conditions if old else [])
            reg.dirty_notes.add(key)
            if problems:
                self.events.warn(ref, "InvalidSpec", "; ".join(text))
        return not problems

    # ------------------------------------------------------------------ compute environments

    @guarded
    def on_compute_environment(self, body: Mapping[str, Any], deleted: bool = False) -> None:
        reg = self.registry
        name = str((body.get("metadata") or {}).get("name", ""))
        if deleted:
            reg.ces.pop(name, None)
            reg.notes.pop(("ComputeEnvironment", name), None)
            self.cache.remove_compute_environment(name)
            if self.metrics:
                self.metrics.remove_ce(name)
            self.poke()
            return
        gen = (body.get("metadata") or {}).get("generation")
        try:
            ce: api.ComputeEnvironment | None = api.parse_compute_environment(body)
            problems = validate(ce)  # type: ignore[arg-type]
        except InvalidResource as err:
            ce, problems = None, list(err.problems)
        if not self._validity("ComputeEnvironment", name, gen, problems, object_ref(body)) or (
            ce is None
        ):
            if reg.ces.pop(name, None) is not None:
                self.cache.remove_compute_environment(name)
            self.poke()
            return
        reg.ces[name] = ce
        self.refresh_ce(name)
        self.poke()

    def refresh_ce(self, name: str) -> None:
        ce = self.registry.ces.get(name)
        if ce is not None:
            nodes = self.registry.pool_nodes(ce)
            self.cache.upsert_compute_environment(
                convert.ce_to_core(ce, nodes, self.registry.catalogue)
            )

    # ------------------------------------------------------------------ queues

    @guarded
    def on_job_queue(self, body: Mapping[str, Any], deleted: bool = False) -> None:
        """A queue is used as soon as its spec is valid; compute environments of its order
        that do not exist (yet) only make it ``Ready=False`` (its jobs use the others)."""
        reg = self.registry
        name = str((body.get("metadata") or {}).get("name", ""))
        if deleted:
            reg.queues.pop(name, None)
            reg.notes.pop(("JobQueue", name), None)
            self.cache.remove_queue(name)
            if self.metrics:
                self.metrics.remove_queue(name)
            self.poke()
            return
        gen = (body.get("metadata") or {}).get("generation")
        try:
            q: api.JobQueue | None = api.parse_job_queue(body)
            problems = validate(q)  # type: ignore[arg-type]
        except InvalidResource as err:
            q, problems = None, list(err.problems)
        if not self._validity("JobQueue", name, gen, problems, object_ref(body)) or q is None:
            if reg.queues.pop(name, None) is not None:
                self.cache.remove_queue(name)
            self.poke()
            return
        old = reg.queues.get(name)
        reg.queues[name] = q
        if old is None or old.metadata.generation != q.metadata.generation:
            self.cache.upsert_queue(convert.queue_to_core(q), self.clock())
            self.poke()

    # ------------------------------------------------------------------ consumable resources

    @guarded
    def on_consumable_resource(self, body: Mapping[str, Any], deleted: bool = False) -> None:
        """A ConsumableResource: its total applies at the next cycle; deleted, its jobs wait
        (units held by running attempts stay counted)."""
        name = str((body.get("metadata") or {}).get("name", ""))
        reg = self.registry
        if deleted:
            reg.consumables.pop(name, None)
            reg.notes.pop(("ConsumableResource", name), None)
            self.cache.consumables.remove(name)
            self.poke()
            return
        gen = (body.get("metadata") or {}).get("generation")
        try:
            res: api.ConsumableResource | None = api.parse_consumable_resource(body)
            problems = validate(res)  # type: ignore[arg-type]
        except InvalidResource as err:
            res, problems = None, list(err.problems)
        valid = self._validity("ConsumableResource", name, gen, problems, object_ref(body))
        if not valid or res is None:
            if reg.consumables.pop(name, None) is not None:
                self.cache.consumables.remove(name)
        else:
            reg.consumables[name] = res
            self.cache.consumables.upsert(convert.consumable_to_core(res))
        self.poke()

    # ------------------------------------------------------------------ definitions

    @guarded
    def on_job_definition(self, body: Mapping[str, Any], deleted: bool = False) -> None:
        reg = self.registry
        meta = body.get("metadata") or {}
        key = (str(meta.get("namespace") or "default"), str(meta.get("name", "")))
        note_key = f"{key[0]}/{key[1]}"
        if deleted:  # submitted jobs keep their pinned revision
            reg.definitions.pop(key, None)
            reg.notes.pop(("JobDefinition", note_key), None)
            return
        try:
            jd: api.JobDefinition | None = api.parse_job_definition(body)
            problems = validate(jd)  # type: ignore[arg-type]
        except InvalidResource as err:
            jd, problems = None, list(err.problems)
        gen = meta.get("generation")
        if self._validity("JobDefinition", note_key, gen, problems, object_ref(body)) and jd:
            reg.definitions[key] = jd
            for waiting in reg.unpark(*key):
                self._resubmit(waiting)
        else:
            reg.definitions.pop(key, None)
        self.poke()

    # ------------------------------------------------------------------ namespaces and nodes

    @guarded
    def on_namespace(self, body: Mapping[str, Any], deleted: bool = False) -> None:
        meta = body.get("metadata") or {}
        if not deleted:
            self.cache.set_namespace_labels(str(meta.get("name")), dict(meta.get("labels") or {}))

    @guarded
    def on_node(self, body: Mapping[str, Any], deleted: bool = False) -> None:
        reg = self.registry
        name = str((body.get("metadata") or {}).get("name", ""))
        old = reg.nodes.get(name)
        new: convert.NodeInfo | None = None
        if deleted:
            reg.nodes.pop(name, None)
        else:
            new = convert.node_info(body)
            if old is not None and old == new:
                return
            reg.nodes[name] = new
        for ce_name, ce in reg.ces.items():
            selector = convert.ce_node_selector(ce)
            if (old is not None and convert.in_pool(old, selector)) or (
                new is not None and convert.in_pool(new, selector)
            ):
                self.refresh_ce(ce_name)
        self.poke()

    # ------------------------------------------------------------------ batch jobs

    @guarded
    def on_batch_job(self, body: Mapping[str, Any], deleted: bool = False) -> None:
        meta = body.get("metadata") or {}
        ns, name = str(meta.get("namespace") or "default"), str(meta.get("name", ""))
        key = f"{ns}/{name}"
        if deleted:
            self.forget_job(key)
            return
        gen = meta.get("generation")
        rec = self.jobs.get(key)
        if rec is not None and rec.generation == gen and not self.registry.is_parked(key):
            return  # our own status write coming back, or a label/annotation change
        if (
            rec is not None
            and rec.uid == meta.get("uid")
            and isinstance(gen, int)
            and isinstance(rec.generation, int)
            and gen < rec.generation
        ):
            return  # an older version (kopf replays its list after a newer event came)
        if self.invalid_jobs.get(key, -1) == gen:
            return
        try:
            job = api.parse_batch_job(body)
        except InvalidResource as err:
            self._invalid(body, list(err.problems))
            return
        if rec is not None and not self.registry.is_parked(key):
            self._edit(rec, job)
            return
        status = job.status
        if status.phase is not None and status.job_definition is not None:
            self._restore(job, status.job_definition)
            return
        if status.phase is not None and status.phase.terminal:
            self.invalid_jobs[key] = gen  # finished before its definition was recorded
            return
        self._submit(job, body)

    def _resubmit(self, body: Mapping[str, Any]) -> None:
        """A parked job's definition appeared: submit it now."""
        try:
            job = api.parse_batch_job(body)
        except InvalidResource as err:
            self._invalid(body, list(err.problems))
            return
        self._submit(job, body)

    def forget_job(self, key: str) -> None:
        """The BatchJob was deleted: forget everything about it."""
        self.jobs.remove(key)
        self.invalid_jobs.pop(key, None)
        self.registry.forget_parked(key)
        self.cache.remove_job(key)
        self.forget_attempts(key)
        self.poke()

    def _submit(self, job: api.BatchJob, body: Mapping[str, Any]) -> None:
        ns = job.metadata.namespace or "default"
        key = f"{ns}/{job.metadata.name}"
        reg = self.registry
        defn = reg.definitions.get((ns, job.spec.job_definition))
        problems = validate(
            job, queues=reg.queues, definitions={defn.metadata.name: defn} if defn else {}
        )
        if problems:
            self._invalid(body, problems)
            return
        if defn is None:
            self._park(job, body)
            return
        try:
            rev = convert.revision(defn, job)
            spec = convert.job_to_core(job, rev)
        except (RetrySpecError, ValueError) as err:  # a backstop: validation catches these
            self._invalid(body, [Problem("spec", str(err))])
            return
        reg.forget_parked(key)
        rec = self._record(job, rev)
        self.jobs.stage(rec, {"jobDefinition": dump(rev), "createdAt": convert.rfc3339(
            rec.created_at or self.clock())})  # fmt: skip
        self.cache.upsert_job(spec, self.clock())
        if self.metrics:
            self.metrics.observe_submission(job.spec.job_queue)
        self.poke()

    def _park(self, job: api.BatchJob, body: Mapping[str, Any]) -> None:
        """The job's definition does not exist (yet): it waits, Submitted, and says so."""
        ns = job.metadata.namespace or "default"
        key = f"{ns}/{job.metadata.name}"
        first = not self.registry.is_parked(key)
        self.registry.park(ns, job.spec.job_definition, key, body)
        if not first:
            return
        rec = self.jobs.get(key) or self.jobs.add(self._bare_record(body))
        rec.generation = job.metadata.generation
        name = job.spec.job_definition
        note = self.registry.notes.get(("JobDefinition", f"{ns}/{name}"))
        if note is not None and note.problems:
            msg = f"job definition {name!r} is invalid: {'; '.join(note.problems)}"
        else:
            msg = f"job definition {name!r} does not exist in namespace {ns!r} (yet)"
        self.jobs.stage(rec, {"phase": str(Phase.SUBMITTED), "reason": str(
            Reason.UNKNOWN_JOB_DEFINITION), "message": msg, "createdAt": convert.rfc3339(
            rec.created_at or self.clock())})  # fmt: skip
        self.poke()

    def _edit(self, rec: JobRecord, job: api.BatchJob) -> None:
        """A change of a submitted job: only terminate, parallelism and the priority override
        apply; any other change is ignored and said so (the webhook rejects it up front)."""
        rec.generation = job.metadata.generation
        new = immutable_part(job.spec)
        fields = changed_fields(json.loads(rec.spec_json), new)
        if fields:
            msg = (f"{', '.join(fields)} cannot change after submission: the change is ignored "
                   f"({MUTABLE_TEXT})")  # fmt: skip
            self.events.warn(rec.ref(), "ImmutableFieldChanged", msg)
            rec.notice = msg
            self.jobs.stage(rec, {st.CONDITIONS: True})
        current = self.cache.job(rec.key)
        if current is None:
            return
        spec = current.spec
        arr = job.spec.array_properties
        override = job.spec.scheduling_priority_override
        self.cache.upsert_job(
            dataclasses.replace(
                spec,
                parallelism=arr.parallelism if arr is not None else spec.parallelism,
                terminate_reason=job.spec.terminate.reason if job.spec.terminate else None,
                scheduling_priority=override if override is not None else spec.scheduling_priority,
            ),
            self.clock(),
        )
        self.poke()

    def _record(self, job: api.BatchJob, rev: api.JobDefinitionRevision) -> JobRecord:
        meta = job.metadata
        arr = job.spec.array_properties
        return self.jobs.add(
            JobRecord(
                namespace=meta.namespace or "default",
                name=meta.name,
                uid=meta.uid or "",
                generation=meta.generation,
                queue=job.spec.job_queue,
                template_json=intern_json(rev.template or {}),
                array_size=arr.size if arr else None,
                created_at=convert.ts(meta.creation_timestamp),
                timeout_seconds=rev.timeout.attempt_duration_seconds if rev.timeout else None,
                spec_json=intern_json(immutable_part(job.spec)),
                indices=tuple(job.spec.rerun_of.indices) if job.spec.rerun_of else (),
                rerun_of=job.spec.rerun_of.job_name if job.spec.rerun_of else None,
                nodes_json=intern_json(dump(rev.node_properties)) if rev.node_properties else "",
            )
        )

    def _bare_record(self, body: Mapping[str, Any]) -> JobRecord:
        meta = body.get("metadata") or {}
        return JobRecord(
            namespace=str(meta.get("namespace") or "default"),
            name=str(meta.get("name", "")),
            uid=str(meta.get("uid", "")),
            generation=meta.get("generation"),
            queue=str((body.get("spec") or {}).get("jobQueue", "")),
            template_json="{}",
            array_size=None,
            created_at=convert.parse_time(meta.get("creationTimestamp")) or self.clock(),
            timeout_seconds=None,
        )

    def _restore(self, job: api.BatchJob, rev: api.JobDefinitionRevision) -> None:
        """After a restart: rebuild the cache entry of a submitted job from its status."""
        now = self.clock()
        rec = self._record(job, rev)
        status = job.status
        phase = status.phase or Phase.SUBMITTED
        rec.phase = phase
        rec.finished = phase.terminal
        if phase.terminal:
            rec.finished_at = convert.ts(status.stopped_at) or self.clock()
        rec.attempts = [dump(a) for a in status.attempts]
        rec.conditions = self.jobs.shared_conditions([dump(c) for c in status.conditions])
        written = dump(status)
        rec.written = {k: v for k, v in written.items() if k not in st.UNREMEMBERED}
        rec.started_at = convert.ts(status.started_at) or None
        rec.cost = status.cost or 0.0
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
            self.jobs.stage(rec, {"phase": str(phase)})
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
            waiting=(convert.reason(status.reason), status.queue_position),
        )
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

    def _invalid(self, body: Mapping[str, Any], problems: list[Problem]) -> None:
        meta = body.get("metadata") or {}
        key = f"{meta.get('namespace') or 'default'}/{meta.get('name', '')}"
        self.invalid_jobs[key] = meta.get("generation")
        self.registry.forget_parked(key)
        if (body.get("status") or {}).get("phase") == str(Phase.FAILED):
            return
        message = "; ".join(str(p) for p in problems)
        rec = self.jobs.get(key) or self.jobs.add(self._bare_record(body))
        rec.phase, rec.finished = Phase.FAILED, True
        stopped = convert.rfc3339(self.clock())
        self.jobs.stage(rec, {"phase": str(Phase.FAILED), "reason": str(Reason.INVALID_SPEC),
                              "message": message, "stoppedAt": stopped})  # fmt: skip
        self.events.warn(rec.ref(), str(Reason.INVALID_SPEC), message)
        self.poke()
