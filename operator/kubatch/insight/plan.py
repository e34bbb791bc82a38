"""A dry run of a submission (``kubectl batch plan -f job.yaml``): nothing is created. Pure.

For the job as it would be submitted — its definition resolved with its overrides, exactly as
the operator would (``kubatch.api.resolve``) — and for each compute environment of its queue
in order: can the job ever fit there and, if not, why (every resource, from the instance
catalogue: ``kubatch.core.fit``); the instance type it would most likely land on (the
cheapest one that holds it); that type's price per hour and the estimated cost of one attempt
(``kubatch.core.cost``) for the definition's timeout or a duration the user gives; and, for
the queue, the estimated start (``kubatch.insight.rates``). Problems the operator would fail
the job for (``InvalidSpec``, ``NoComputeEnvironmentCanFit``) are said up front.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kubatch.api import models as api
from kubatch.api.pools import ce_node_selector, in_pool, node_info
from kubatch.api.problems import InvalidResource
from kubatch.api.resolve import resolve_pod_template
from kubatch.api.validation import check_manifest
from kubatch.core.catalogue import DEFAULT, Catalogue
from kubatch.core.cost import estimate_cost, node_price
from kubatch.core.resources import QuantityError, Resources, sum_requests, validate_job_size
from kubatch.insight.objects import (
    InsightError,
    Obj,
    duration_text,
    format_table,
    money,
    name_of,
    status_of,
)
from kubatch.insight.rates import Rate, StartEstimate, estimate_start
from kubatch.insight.why import Verdict, ce_verdict
from kubatch.timefmt import parse_time, rfc3339

DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> float:
    """Pure: ``90``, ``90s``, ``15m``, ``1h30m``, ``2d`` -> seconds (> 0)."""
    s = text.strip().lower()
    if not s:
        raise InsightError("--duration: empty")
    if s.replace(".", "", 1).isdigit():
        value = float(s)
    else:
        value, number = 0.0, ""
        for ch in s:
            if ch.isdigit() or ch == ".":
                number += ch
            elif ch in DURATION_UNITS and number:
                value += float(number) * DURATION_UNITS[ch]
                number = ""
            else:
                raise InsightError(f"--duration {text!r}: expected e.g. 90s, 15m, 1h30m, 2d")
        if number:
            raise InsightError(f"--duration {text!r}: a number without a unit at the end")
    if value <= 0:
        raise InsightError(f"--duration {text!r}: must be more than 0 seconds")
    return value


@dataclass(frozen=True, slots=True)
class Landing:
    """Where a job would most likely land on one CE: the cheapest shape that holds it."""

    instance_type: str
    price_per_hour: float
    node_vcpus: float
    spot: bool


@dataclass(frozen=True, slots=True)
class CePlan:
    """The plan for one compute environment of the queue."""

    verdict: Verdict
    landing: Landing | None = None
    attempt_cost: float | None = None

    def as_dict(self) -> Obj:
        v = self.verdict
        out: Obj = {
            "order": v.order,
            "name": v.name,
            "state": v.state,
            "capacityType": v.capacity_type,
            "canEverRun": v.can_run,
            "hasRoomNow": v.now,
            "why": v.why,
        }
        if self.landing is not None:
            out.update(
                instanceType=self.landing.instance_type,
                pricePerHour=round(self.landing.price_per_hour, 6),
                attemptCost=None if self.attempt_cost is None else round(self.attempt_cost, 6),
            )
        return out


@dataclass(frozen=True)
class Plan:
    """Everything ``plan`` says."""

    name: str
    namespace: str
    queue: str
    definition: str
    size: Resources | None
    children: int  # 1, or the array's size
    duration: float | None
    duration_source: str
    ces: tuple[CePlan, ...]
    start: StartEstimate
    problems: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    likely: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def likely_plan(self) -> CePlan | None:
        return next((c for c in self.ces if c.verdict.name == self.likely), None)

    def as_dict(self) -> Obj:
        likely = self.likely_plan
        one = likely.attempt_cost if likely is not None else None
        return {
            "name": self.name,
            "namespace": self.namespace,
            "queue": self.queue,
            "jobDefinition": self.definition,
            "size": self.size.human() if self.size is not None else None,
            "children": self.children,
            "durationSeconds": self.duration,
            "durationFrom": self.duration_source,
            "computeEnvironments": [c.as_dict() for c in self.ces],
            "likelyComputeEnvironment": self.likely,
            "estimatedAttemptCost": None if one is None else round(one, 6),
            "estimatedJobCost": None if one is None else round(one * self.children, 6),
            "estimatedStart": self.start.at,
            "queuePosition": self.start.position,
            "startBasis": self.start.basis,
            "problems": list(self.problems),
            "notes": list(self.notes),
        }


def landing(
    ce: Mapping[str, Any],
    size: Resources,
    nodes: Sequence[Mapping[str, Any]] = (),
    catalogue: Catalogue = DEFAULT,
) -> Landing | None:
    """Pure: the cheapest instance type (Managed: of its ``instanceTypes`` the catalogue
    knows, spot ones within ``bidPercentage``) or node (Unmanaged: of its pool) that holds a
    job of ``size``; ``None`` when none does or the CE cannot be read."""
    try:
        parsed = api.parse_compute_environment(ce)
    except InvalidResource:
        return None
    cr = parsed.spec.compute_resources
    spot = cr is not None and cr.capacity_type == api.CapacityType.SPOT
    options: list[Landing] = []
    if parsed.spec.type == api.ComputeEnvironmentType.MANAGED:
        for t in catalogue.select(cr.instance_types if cr is not None else []):
            bid = cr.bid_percentage if cr is not None and cr.bid_percentage else 100
            if spot and t.spot_price > t.on_demand_price * bid / 100:
                continue
            if size.fits_in(t.resources):
                options.append(Landing(t.name, t.price(spot), float(t.vcpus), spot))
    else:
        selector = ce_node_selector(parsed)
        for info in (node_info(n) for n in nodes):
            if info.usable and in_pool(info, selector) and size.fits_in(info.allocatable):
                itype = info.labels.get("node.kubernetes.io/instance-type")
                price = node_price(catalogue, itype, spot, info.price_per_hour)
                options.append(Landing(itype or info.name, price, info.allocatable.vcpus, spot))
    if not options:
        return None
    return min(options, key=lambda o: (o.price_per_hour, o.node_vcpus, o.instance_type))


def _definition_timeout(job: api.BatchJob, defn: api.JobDefinition | None) -> int | None:
    if job.spec.timeout is not None:
        return job.spec.timeout.attempt_duration_seconds
    if defn is not None and defn.spec.timeout is not None:
        return defn.spec.timeout.attempt_duration_seconds
    return None


def build_plan(
    job_body: Mapping[str, Any],
    definition_body: Mapping[str, Any] | None,
    queue_body: Mapping[str, Any] | None,
    ces: Mapping[str, Mapping[str, Any]],
    *,
    now: float,
    rate: Rate,
    ahead: int,
    nodes: Sequence[Mapping[str, Any]] = (),
    catalogue: Catalogue = DEFAULT,
    duration: float | None = None,
    floor: float | None = None,
    namespace: str = "default",
) -> Plan:
    """Pure: the plan of ``job_body`` (a BatchJob manifest) against the cluster's queue, CEs
    and definition as given. Raises :class:`InsightError` for a manifest that is not a
    BatchJob or cannot be read at all; every other problem is reported in the plan."""
    if job_body.get("kind") != "BatchJob":
        raise InsightError(f"plan needs a BatchJob manifest, not {job_body.get('kind')!r}")
    try:
        job = api.parse_batch_job(job_body)
    except InvalidResource as err:
        raise InsightError(f"the BatchJob is invalid: {err}") from None
    problems: list[str] = []
    notes: list[str] = []
    defn: api.JobDefinition | None = None
    queues: dict[str, api.JobQueue] = {}
    if definition_body is not None:
        try:
            defn = api.parse_job_definition(definition_body)
        except InvalidResource as err:
            problems.append(f"the JobDefinition is invalid: {err}")
    else:
        problems.append(
            f'jobdefinition "{job.spec.job_definition}" not found in namespace '
            f'"{namespace}": the job would wait (JobDefinitionNotFound)'
        )
    queue: api.JobQueue | None = None
    if queue_body is not None:
        try:
            queue = api.parse_job_queue(queue_body)
            queues[queue.metadata.name] = queue
        except InvalidResource as err:
            problems.append(f"the JobQueue is invalid: {err}")
    else:
        problems.append(
            f'jobqueue "{job.spec.job_queue}" not found: the job would wait (JobQueueNotFound)'
        )
    body = dict(job_body)
    meta = dict(body.get("metadata") or {})
    meta.setdefault("namespace", namespace)
    meta.setdefault("name", meta.get("generateName") or "planned")
    body["metadata"] = meta
    defs = {defn.metadata.name: defn} if defn is not None else {}
    problems += [f"InvalidSpec: {p}" for p in check_manifest(body, queues=queues, definitions=defs)]
    size: Resources | None = None
    if defn is not None:
        try:
            size = sum_requests(
                (resolve_pod_template(defn, job).get("spec") or {}).get("containers") or []
            )
        except (QuantityError, KeyError, ValueError) as err:
            problems.append(f"InvalidSpec: resources: {err}")
        if size is not None and (missing := validate_job_size(size)):
            problems.append(f"InvalidSpec: {missing}")
    source = "--duration"
    if duration is None:
        timeout = _definition_timeout(job, defn)
        if timeout is not None:
            duration, source = float(timeout), "timeout (attemptDurationSeconds: an upper bound)"
        else:
            source = "none: give --duration for a cost (the definition sets no timeout)"
    children = job.spec.array_properties.size if job.spec.array_properties else 1
    per_ce: list[CePlan] = []
    order = sorted(
        (queue_body or {}).get("spec", {}).get("computeEnvironmentOrder") or [],
        key=lambda o: o.get("order", 0),
    )
    for o in order:
        ce_name = str(o.get("computeEnvironment"))
        ce = ces.get(ce_name)
        verdict = ce_verdict(int(o.get("order", 0)), ce_name, ce, size, nodes, catalogue)
        land = (
            landing(ce, size, nodes, catalogue)
            if ce is not None and size is not None and verdict.can_run
            else None
        )
        cost = None
        if land is not None and duration is not None and size is not None:
            cost = estimate_cost(land.price_per_hour, duration, size.vcpus, land.node_vcpus)
        per_ce.append(CePlan(verdict, land, cost))
    if order and size is not None and not any(c.verdict.can_run for c in per_ce):
        problems.append(
            "NoComputeEnvironmentCanFit: the job would fail at once (no compute "
            "environment of its queue can ever hold it)"
        )
    now_room = next((c for c in per_ce if c.verdict.now), None)
    ever = next((c for c in per_ce if c.verdict.can_run), None)
    chosen = now_room or ever
    likely = chosen.verdict.name if chosen is not None else None
    if queue is not None and queue.spec.fair_share:
        notes.append(
            "fair-share queue: the position assumes first-in first-out within the "
            "queue; shares may move the job ahead or back"
        )
    if job.spec.depends_on:
        notes.append("the job has dependencies: it starts no earlier than they end")
    enabled = queue is not None and str(queue.spec.state) == "Enabled"
    strict = queue is not None and queue.spec.ordering == api.QueueOrdering.STRICT_FIFO
    start = estimate_start(
        now,
        ahead,
        rate,
        room_now=now_room is not None,
        strict_fifo=strict,
        floor=floor,
        can_run=ever is not None or size is None,
        enabled=enabled or queue is None,
    )
    chosen_cost = chosen.attempt_cost if chosen is not None else None
    start, budget_notes = _budget(queue, queue_body, start, chosen_cost, children)
    notes += budget_notes
    return Plan(
        name=name_of(job_body) or str(meta.get("name")),
        namespace=str(meta.get("namespace")),
        queue=job.spec.job_queue,
        definition=job.spec.job_definition,
        size=size,
        children=children,
        duration=duration,
        duration_source=source,
        ces=tuple(per_ce),
        start=start,
        problems=tuple(problems),
        notes=tuple(notes),
        likely=likely,
        extra={"queueStatus": dict(status_of(queue_body or {}))},
    )


def _budget(
    queue: api.JobQueue | None,
    queue_body: Mapping[str, Any] | None,
    start: StartEstimate,
    attempt_cost: float | None,
    children: int,
) -> tuple[StartEstimate, list[str]]:
    """The queue's spending limit: a start no earlier than the window frees (while the limit
    is reached, admissions wait with ``BudgetExceeded``), and what the job would use of it."""
    notes: list[str] = []
    limit = queue.spec.spending_limit if queue is not None else None
    if limit is None:
        return start, notes
    spend = status_of(queue_body or {}).get("spend") or {}
    blocked = parse_time(spend.get("blockedUntil")) if isinstance(spend, Mapping) else None
    if blocked is not None:
        notes.append(
            f"BudgetExceeded: the queue's spending limit is reached; admissions "
            f"resume at {rfc3339(blocked)}"
        )
        if start.at is not None and start.at < blocked:
            start = StartEstimate(
                blocked, start.position, start.basis + "; after the spending window frees"
            )
    if attempt_cost is not None:
        total = attempt_cost * children
        for window, cap, key in (
            ("hour", limit.per_hour, "lastHour"),
            ("day", limit.per_day, "lastDay"),
        ):
            if cap is None:
                continue
            spent = float(spend.get(key) or 0) if isinstance(spend, Mapping) else 0.0
            notes.append(
                f"spending limit {money(cap)} per {window}: {money(spent)} spent; "
                f"this job ≈ {money(total)} ({total / cap:.0%} of it)"
            )
    return start, notes


def plan_warnings(plan: Plan) -> list[str]:
    """Pure: the plan in a few short lines (admission warnings of a ``--dry-run=server``
    apply, a console's toast)."""
    out = list(plan.problems)
    likely = plan.likely_plan
    if likely is not None and likely.landing is not None:
        cost = (
            f", about {money(likely.attempt_cost)} per attempt"
            if likely.attempt_cost is not None
            else ""
        )
        out.append(
            f"would run on {likely.verdict.name} ({likely.landing.instance_type}, "
            f"{money(likely.landing.price_per_hour)}/h{cost})"
        )
    out.append(f"estimated start: {plan.start.basis}")
    return out


def format_plan(plan: Plan, now: float) -> str:
    """Pure: the text ``kubectl batch plan`` prints."""
    what = f"{plan.children} children" if plan.children > 1 else "one attempt"
    lines = [
        f"Job:           {plan.namespace}/{plan.name} (dry run: nothing was created)",
        f"Queue:         {plan.queue}",
        f"Definition:    {plan.definition}",
        f"Size:          {plan.size.human() if plan.size is not None else 'unknown'} ({what})",
        f"Duration:      {duration_text(plan.duration) if plan.duration else '-'} "
        f"({plan.duration_source})",
    ]
    if plan.problems:
        lines.append("Problems:")
        lines += [f"  - {p}" for p in plan.problems]
    lines.append("Compute environments (queue order):")
    if plan.ces:
        table = format_table(
            [
                "ORDER",
                "NAME",
                "CAPACITY-TYPE",
                "FITS",
                "INSTANCE-TYPE",
                "$/HOUR",
                "$/ATTEMPT",
                "WHY",
            ],
            [
                [
                    c.verdict.order,
                    c.verdict.name,
                    c.verdict.capacity_type,
                    "now" if c.verdict.now else ("later" if c.verdict.can_run else "never"),
                    c.landing.instance_type if c.landing else "-",
                    money(c.landing.price_per_hour) if c.landing else "-",
                    money(c.attempt_cost),
                    c.verdict.why,
                ]
                for c in plan.ces
            ],
        )
        lines += [f"  {line}" for line in table.splitlines()]
    else:
        lines.append("  <none>")
    likely = plan.likely_plan
    if likely is not None and likely.landing is not None:
        cost = likely.attempt_cost
        total = (
            f"; the whole array ≈ {money(cost * plan.children)}"
            if cost is not None and plan.children > 1
            else ""
        )
        lines.append(
            f"Most likely:   {likely.verdict.name}, {likely.landing.instance_type} "
            f"({'spot' if likely.landing.spot else 'on-demand'}), "
            f"{money(likely.landing.price_per_hour)}/h, {money(cost)} per attempt"
            f"{total}"
        )
    if plan.start.at is not None:
        wait = plan.start.at - now
        when = "now" if wait < 1 else f"in about {duration_text(wait)}"
        lines.append(
            f"Start:         {when} ({rfc3339(plan.start.at)}), position "
            f"{plan.start.position}: {plan.start.basis}"
        )
    else:
        lines.append(f"Start:         cannot tell: {plan.start.basis}")
    lines += [f"Note:          {n}" for n in plan.notes]
    return "\n".join(lines) + "\n"
