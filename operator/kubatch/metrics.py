"""Every Prometheus metric of kubatch, in one place (SEMANTICS §7).

One ``Metrics`` instance owns a dedicated ``CollectorRegistry`` (no module-global registry, so
tests and several operators in one process never collide); the operator keeps the instance in
kopf's ``memo`` and calls the ``observe_*`` / ``set_*`` / ``count_*`` methods. Conventions:
``kubatch_`` prefix, base units (seconds, dollars, vCPUs), counters end in ``_total``, label
values come from bounded sets (queue and compute environment names, the ``Phase`` enum,
decision kinds, API verbs and resources). ``docs/observability.md`` documents each metric.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Mapping
from wsgiref.simple_server import WSGIServer

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    start_http_server,
)

from kubatch.core.cost import estimate_cost
from kubatch.core.lifecycle import Phase, Reason

__all__ = ["Metrics", "estimate_cost"]

PREFIX = "kubatch_"

WAIT_BUCKETS: tuple[float, ...] = (
    1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400, 43200, 86400,
)  # fmt: skip
"""Submit → start: from seconds (an idle pool) to a day (a long backlog)."""
RUN_BUCKETS: tuple[float, ...] = (
    1, 10, 30, 60, 300, 600, 1800, 3600, 7200, 14400, 43200, 86400, 172800,
)  # fmt: skip
"""Run time of an attempt: batch jobs run from seconds to days."""
CYCLE_BUCKETS: tuple[float, ...] = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
)  # fmt: skip
"""One scheduler cycle: milliseconds normally; seconds means trouble."""

CAPACITY_TYPES = frozenset({"OnDemand", "Spot"})
TERMINAL_PHASES = frozenset({Phase.SUCCEEDED, Phase.FAILED})
OTHER = "Other"
"""Label value substituted for anything outside a bounded set (keeps cardinality bounded)."""


def _capacity_type(value: str) -> str:
    return value if value in CAPACITY_TYPES else OTHER


def _reason(value: str | None) -> str:
    if not value:
        return OTHER
    return value if value in Reason._value2member_map_ else OTHER


class Metrics:
    """The operator's metrics. Thread-safe (prometheus_client metrics are)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.jobs = Gauge(
            "kubatch_jobs",
            "BatchJobs per queue and phase (an array counts once, as its parent).",
            ["queue", "phase"],
            registry=r,
        )
        self.array_children = Gauge(
            "kubatch_array_children",
            "Children of the array jobs of a queue, per phase (no per-array label).",
            ["queue", "phase"],
            registry=r,
        )
        self.submissions = Counter(
            "kubatch_job_submissions_total",
            "BatchJobs accepted into a queue.",
            ["queue"],
            registry=r,
        )
        self.admissions = Counter(
            "kubatch_job_admissions_total",
            "Attempts admitted to a compute environment (Kubernetes Job created).",
            ["queue", "capacity_type"],
            registry=r,
        )
        self.completions = Counter(
            "kubatch_job_completions_total",
            "BatchJobs that reached a terminal phase.",
            ["queue", "phase"],
            registry=r,
        )
        self.failures = Counter(
            "kubatch_job_failures_total",
            "BatchJobs that ended Failed, by reason.",
            ["queue", "reason"],
            registry=r,
        )
        self.retries = Counter(
            "kubatch_job_retries_total",
            "Failed attempts sent back to Runnable by the retry strategy.",
            ["queue"],
            registry=r,
        )
        self.interruptions = Counter(
            "kubatch_job_interruptions_total",
            "Attempts interrupted by a reclaimed (spot) node or a pod disruption.",
            ["queue", "capacity_type"],
            registry=r,
        )
        self.wait_seconds = Histogram(
            "kubatch_job_wait_seconds",
            "Time from submission to the start of the first attempt.",
            ["queue"],
            buckets=WAIT_BUCKETS,
            registry=r,
        )
        self.run_seconds = Histogram(
            "kubatch_job_run_seconds",
            "Run time of finished BatchJobs (last attempt start to stop).",
            ["queue"],
            buckets=RUN_BUCKETS,
            registry=r,
        )
        self.cost = Counter(
            "kubatch_estimated_cost_dollars_total",
            "Estimated spend: pool price per hour x attempt run time x vCPU share.",
            ["queue", "capacity_type"],
            registry=r,
        )
        ce = ["compute_environment"]
        self.ce_desired = Gauge(
            "kubatch_compute_environment_desired_vcpus",
            "vCPUs the compute environment wants (status.desiredvCpus).",
            ce,
            registry=r,
        )
        self.ce_allocated = Gauge(
            "kubatch_compute_environment_allocated_vcpus",
            "vCPUs of Starting and Running jobs admitted to the compute environment.",
            ce,
            registry=r,
        )
        self.ce_capacity = Gauge(
            "kubatch_compute_environment_capacity_vcpus",
            "vCPUs of the compute environment's ready nodes.",
            ce,
            registry=r,
        )
        self.ce_max = Gauge(
            "kubatch_compute_environment_max_vcpus",
            "spec.computeResources.maxvCpus of the compute environment.",
            ce,
            registry=r,
        )
        self.ce_info = Gauge(
            "kubatch_compute_environment_info",
            "Always 1; carries the compute environment's capacity type and state for joins.",
            ["compute_environment", "capacity_type", "state"],
            registry=r,
        )
        self.cycle_seconds = Histogram(
            "kubatch_scheduler_cycle_duration_seconds",
            "Duration of one scheduler cycle (snapshot, schedule, effects).",
            buckets=CYCLE_BUCKETS,
            registry=r,
        )
        self.cycles = Counter(
            "kubatch_scheduler_cycles_total",
            "Scheduler cycles run.",
            registry=r,
        )
        self.decisions = Counter(
            "kubatch_scheduler_decisions_total",
            "Decisions taken by the scheduler, by kind (Admit, Fail, Requeue, ...).",
            ["type"],
            registry=r,
        )
        self.api_writes = Counter(
            "kubatch_api_writes_total",
            "Writes to the Kubernetes API (the scarce resource), by verb and resource.",
            ["verb", "resource"],
            registry=r,
        )
        self.queue_spend = Gauge(
            "kubatch_queue_spend_dollars",
            "Estimated dollars a queue's attempts cost in the last hour and day (sliding).",
            ["queue", "window"],
            registry=r,
        )
        self.queue_budget_exceeded = Gauge(
            "kubatch_queue_budget_exceeded",
            "1 while a queue's spending limit is reached (its admissions wait), else 0.",
            ["queue"],
            registry=r,
        )
        # scheduling depth (#17)
        self.preemptions = Counter(
            "kubatch_job_preemptions_total",
            "Attempts preempted, by the victim's queue and the queue they made room for.",
            ["queue", "preemptor_queue"],
            registry=r,
        )
        self.gang_releases = Counter(
            "kubatch_gang_releases_total",
            "Multi-node attempts released whole: not every node ran within the start timeout.",
            ["queue"],
            registry=r,
        )
        self.consumable_units = Gauge(
            "kubatch_consumable_resource_units",
            "Units of a consumable resource: total, in use (or used up) and available.",
            ["resource", "state"],
            registry=r,
        )
        self.handler_errors = Counter(
            "kubatch_handler_errors_total",
            "Unexpected errors caught in the operator's event handlers, by handler (0 normally).",
            ["handler"],
            registry=r,
        )
        self.admission_reviews = Counter(
            "kubatch_admission_reviews_total",
            "Admission reviews the validating webhook answered, by kind, operation and verdict.",
            ["kind", "operation", "allowed"],
            registry=r,
        )
        self.leader = Gauge(
            "kubatch_leader",
            "1 while this replica leads (holds the leader Lease and may write), else 0.",
            ["identity"],
            registry=r,
        )
        self.leader_changes = Counter(
            "kubatch_leader_changes_total",
            "Times this replica started (to=leader) or stopped (to=standby) leading.",
            ["identity", "to"],
            registry=r,
        )
        self.watch_relists = Counter(
            "kubatch_watch_relists_total",
            "Complete lists a watch of kubatch's own Jobs, pods or records took again after "
            "it had been down (410 Gone: its resourceVersion was compacted away, or an error).",
            ["resource"],
            registry=r,
        )
        for resource in ("pods", "jobs", "configmaps"):  # 0 until a watch relists
            self.watch_relists.labels(resource=resource)
        self._ce_info_labels: dict[str, tuple[str, str]] = {}
        self._leading: dict[str, bool] = {}
        self._lock = threading.Lock()

    # -- jobs -------------------------------------------------------------------------------
    def observe_submission(self, queue: str) -> None:
        """A BatchJob was accepted into ``queue``."""
        self.submissions.labels(queue=queue).inc()
        # A queue's rare-event counters start at 0, so their panels show 0 rather than nothing.
        self.gang_releases.labels(queue=queue)

    def observe_admission(
        self, queue: str, wait_seconds: float | None = None, capacity_type: str = "OnDemand"
    ) -> None:
        """An attempt was admitted; ``wait_seconds`` (submit → start) for the first attempt only."""
        self.admissions.labels(queue=queue, capacity_type=_capacity_type(capacity_type)).inc()
        if wait_seconds is not None:
            self.wait_seconds.labels(queue=queue).observe(max(0.0, wait_seconds))

    def observe_completion(
        self,
        queue: str,
        phase: Phase | str,
        run_seconds: float | None = None,
        cost: float = 0.0,
        *,
        capacity_type: str = "OnDemand",
        reason: Reason | str | None = None,
    ) -> None:
        """A BatchJob reached Succeeded or Failed; ``cost``: dollars of its last attempt."""
        terminal = Phase(phase)
        if terminal not in TERMINAL_PHASES:
            raise ValueError(f"observe_completion needs a terminal phase, not {terminal}")
        self.completions.labels(queue=queue, phase=terminal.value).inc()
        if terminal is Phase.FAILED:
            self.failures.labels(queue=queue, reason=_reason(reason)).inc()
        if run_seconds is not None:
            self.run_seconds.labels(queue=queue).observe(max(0.0, run_seconds))
        self.observe_cost(queue, capacity_type, cost)

    def observe_retry(self, queue: str, cost: float = 0.0, capacity_type: str = "OnDemand") -> None:
        """A failed attempt goes back to Runnable; ``cost`` is what the failed attempt cost."""
        self.retries.labels(queue=queue).inc()
        self.observe_cost(queue, capacity_type, cost)

    def observe_interruption(
        self, queue: str, capacity_type: str = "Spot", cost: float = 0.0
    ) -> None:
        """An attempt lost its node (spot reclaim / disruption); ``cost`` is what it had cost."""
        ct = _capacity_type(capacity_type)
        self.interruptions.labels(queue=queue, capacity_type=ct).inc()
        self.observe_cost(queue, capacity_type, cost)

    def observe_cost(self, queue: str, capacity_type: str, dollars: float) -> None:
        """Add an attempt's estimated dollars (see ``estimate_cost``); zero or less is ignored."""
        if dollars > 0:
            self.cost.labels(queue=queue, capacity_type=_capacity_type(capacity_type)).inc(dollars)

    def set_queue_phase_counts(self, queue: str, counts: Mapping[Phase | str, int]) -> None:
        """Publish the number of jobs per phase of ``queue``; phases absent from counts are 0."""
        known = {Phase(p): n for p, n in counts.items()}
        for phase in Phase:
            self.jobs.labels(queue=queue, phase=phase.value).set(known.get(phase, 0))

    def set_array_children(self, queue: str, counts: Mapping[Phase, int]) -> None:
        """Publish the children of ``queue``'s arrays per phase (absent phases are 0)."""
        for phase in Phase:
            self.array_children.labels(queue=queue, phase=phase.value).set(counts.get(phase, 0))

    def set_spend(self, queue: str, hour: float, day: float, exceeded: bool) -> None:
        """A queue's spend per window, and whether its limit is reached."""
        self.queue_spend.labels(queue=queue, window="hour").set(hour)
        self.queue_spend.labels(queue=queue, window="day").set(day)
        self.queue_budget_exceeded.labels(queue=queue).set(1 if exceeded else 0)

    def observe_preemption(self, queue: str, preemptor_queue: str) -> None:
        """An attempt of ``queue`` was preempted for a job of ``preemptor_queue``."""
        self.preemptions.labels(queue=queue, preemptor_queue=preemptor_queue).inc()

    def observe_gang_release(self, queue: str) -> None:
        """A multi-node attempt of ``queue`` was released whole by its start timer."""
        self.gang_releases.labels(queue=queue).inc()

    def set_consumable(self, name: str, total: int, in_use: int, available: int) -> None:
        """A consumable resource's units."""
        for state, value in (("total", total), ("in_use", in_use), ("available", available)):
            self.consumable_units.labels(resource=name, state=state).set(value)

    def remove_consumable(self, name: str) -> None:
        """Forget a deleted consumable resource's gauges."""
        for state in ("total", "in_use", "available"):
            with contextlib.suppress(KeyError):
                self.consumable_units.remove(name, state)

    def remove_queue(self, queue: str) -> None:
        """Forget a deleted queue's gauges (counters stay: they are cumulative)."""
        for phase in Phase:
            with contextlib.suppress(KeyError):
                self.jobs.remove(queue, phase.value)
            with contextlib.suppress(KeyError):
                self.array_children.remove(queue, phase.value)

    # -- compute environments ---------------------------------------------------------------
    def set_ce(
        self,
        name: str,
        desired: float,
        allocated: float,
        capacity: float,
        max: float,  # the SEMANTICS word (maxvCpus)
        *,
        capacity_type: str = "OnDemand",
        state: str = "Enabled",
    ) -> None:
        """Publish a compute environment's vCPU figures and its capacity type/state."""
        self.ce_desired.labels(compute_environment=name).set(desired)
        self.ce_allocated.labels(compute_environment=name).set(allocated)
        self.ce_capacity.labels(compute_environment=name).set(capacity)
        self.ce_max.labels(compute_environment=name).set(max)
        info = (_capacity_type(capacity_type), state if state in ("Enabled", "Disabled") else OTHER)
        with self._lock:
            previous = self._ce_info_labels.get(name)
            if previous is not None and previous != info:
                self.ce_info.remove(name, *previous)
            self._ce_info_labels[name] = info
        self.ce_info.labels(name, *info).set(1)

    def remove_ce(self, name: str) -> None:
        """Forget a deleted compute environment's gauges."""
        for gauge in (self.ce_desired, self.ce_allocated, self.ce_capacity, self.ce_max):
            with contextlib.suppress(KeyError):
                gauge.remove(name)
        with self._lock:
            info = self._ce_info_labels.pop(name, None)
        if info is not None:
            with contextlib.suppress(KeyError):
                self.ce_info.remove(name, *info)

    # -- leader election ----------------------------------------------------------------
    def set_leader(self, identity: str, leading: bool) -> None:
        """Whether replica ``identity`` leads; a change is counted."""
        with self._lock:
            before = self._leading.get(identity)
            self._leading[identity] = leading
        if before is not None and before != leading:
            self.leader_changes.labels(identity=identity,
                                       to="leader" if leading else "standby").inc()  # fmt: skip
        elif before is None and leading:
            self.leader_changes.labels(identity=identity, to="leader").inc()
        self.leader.labels(identity=identity).set(1 if leading else 0)

    def count_relist(self, resource: str) -> None:
        """A watch listed again (after 410 Gone or an error)."""
        self.watch_relists.labels(resource=resource).inc()

    def clear_leader_gauges(self) -> None:
        """A replica that stops leading stops publishing the state it no longer keeps: the
        per-queue and per-compute-environment gauges go (counters stay: cumulative)."""
        for gauge in (self.jobs, self.array_children, self.ce_desired, self.ce_allocated,
                      self.ce_capacity, self.ce_max, self.ce_info, self.queue_spend,
                      self.queue_budget_exceeded):  # fmt: skip
            gauge.clear()
        with self._lock:
            self._ce_info_labels.clear()

    # -- scheduler and API ------------------------------------------------------------------
    def observe_cycle(self, seconds: float, decisions_by_type: Mapping[str, int]) -> None:
        """One scheduler cycle took ``seconds`` and took these decisions (kind → count)."""
        self.cycle_seconds.observe(max(0.0, seconds))
        self.cycles.inc()
        for kind, n in decisions_by_type.items():
            if n > 0:
                self.decisions.labels(type=kind).inc(n)

    def count_write(self, verb: str, resource: str, n: int = 1) -> None:
        """``n`` writes (create/patch/update/delete) to the API for ``resource`` (e.g. jobs)."""
        self.api_writes.labels(verb=verb, resource=resource).inc(n)

    def count_handler_error(self, handler: str) -> None:
        """An event handler met an unexpected error (logged; the object was skipped)."""
        self.handler_errors.labels(handler=handler).inc()

    def observe_admission_review(self, kind: str, operation: str, allowed: bool) -> None:
        """The webhook answered a review (labels bounded: kubatch's kinds, CREATE/UPDATE)."""
        kinds = ("BatchJob", "JobDefinition", "JobQueue", "ComputeEnvironment",
                 "ConsumableResource")  # fmt: skip
        self.admission_reviews.labels(
            kind=kind if kind in kinds else "other",
            operation=operation if operation in ("CREATE", "UPDATE") else "other",
            allowed=str(allowed).lower(),
        ).inc()

    # -- exposition -------------------------------------------------------------------------
    def exposition(self) -> bytes:
        """The registry in Prometheus text format (what ``/metrics`` serves)."""
        return generate_latest(self.registry)

    def start_http_server(
        self, port: int, addr: str = "127.0.0.1"
    ) -> tuple[WSGIServer, threading.Thread]:
        """Serve ``/metrics`` from a daemon thread. Stop with ``server.shutdown()``.

        In a cluster pass ``addr="0.0.0.0"`` (the chart does); ``port=0`` picks a free port
        (read it from ``server.server_port``).
        """
        return start_http_server(port, addr=addr, registry=self.registry)
