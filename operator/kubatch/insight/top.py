"""Queues and compute environments now (``kubectl batch top``). Pure.

Per queue: its jobs per phase (the queue's status, every namespace), its admissions per
minute over a recent window (its Kubernetes Jobs' creation times), and the longest wait of a
job still waiting (from the BatchJobs the caller could list). Per compute environment: the
vCPUs admitted against ``maxvCpus`` (a bar), the ready capacity, the nodes and what they cost
per hour (each node's price annotation, else the instance catalogue's price).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from kubatch.api import labels as L
from kubatch.core.catalogue import DEFAULT, Catalogue
from kubatch.core.cost import node_price
from kubatch.core.lifecycle import Phase
from kubatch.insight.objects import (
    Obj,
    duration_text,
    format_table,
    money,
    name_of,
    num_text,
    phase_of,
    ready,
    status_of,
)
from kubatch.insight.rates import DEFAULT_WINDOW, admission_rate, admission_times
from kubatch.timefmt import parse_time

WAITING = (Phase.SUBMITTED, Phase.PENDING, Phase.RUNNABLE)


def bar(used: float, limit: float, width: int = 10) -> str:
    """Pure: ``████░░░░░░`` for ``used`` out of ``limit``."""
    if limit <= 0:
        return "░" * width
    full = max(0, min(width, round(used / limit * width)))
    return "█" * full + "░" * (width - full)


def oldest_waiting(jobs: Iterable[Mapping[str, Any]], queue: str, now: float) -> float | None:
    """Pure: seconds the longest-waiting job of ``queue`` has waited (None: none waits)."""
    oldest: float | None = None
    for job in jobs:
        if (job.get("spec") or {}).get("jobQueue") != queue or phase_of(job) not in WAITING:
            continue
        t = parse_time(status_of(job).get("createdAt")) or parse_time(
            (job.get("metadata") or {}).get("creationTimestamp")
        )
        if t is not None and (oldest is None or t < oldest):
            oldest = t
    return None if oldest is None else max(0.0, now - oldest)


def node_cost_per_ce(
    nodes: Iterable[Mapping[str, Any]], catalogue: Catalogue = DEFAULT
) -> dict[str, tuple[int, float]]:
    """Pure: nodes and dollars per hour of each compute environment's pool (by node label)."""
    out: dict[str, tuple[int, float]] = {}
    for node in nodes:
        labels = (node.get("metadata") or {}).get("labels") or {}
        ce = labels.get(L.COMPUTE_ENVIRONMENT)
        if not ce:
            continue
        try:
            annotated = float(
                ((node.get("metadata") or {}).get("annotations") or {}).get(L.PRICE_PER_HOUR) or 0
            )
        except ValueError:
            annotated = 0.0
        spot = str(labels.get(L.CAPACITY_TYPE, "")).lower() == L.SPOT
        price = node_price(catalogue, labels.get(L.INSTANCE_TYPE), spot, annotated)
        count, dollars = out.get(ce, (0, 0.0))
        out[ce] = (count + 1, dollars + price)
    return out


def top_view(
    queues: Sequence[Mapping[str, Any]],
    ces: Sequence[Mapping[str, Any]],
    *,
    now: float,
    nodes: Sequence[Mapping[str, Any]] = (),
    k8s_jobs: Sequence[Mapping[str, Any]] = (),
    jobs: Sequence[Mapping[str, Any]] = (),
    window: float = DEFAULT_WINDOW,
    catalogue: Catalogue = DEFAULT,
) -> Obj:
    """Pure: what ``top`` shows, JSON-ready (queues by priority, then CEs by name)."""
    qrows = []
    for q in sorted(
        queues, key=lambda q: (-int((q.get("spec") or {}).get("priority", 0)), name_of(q))
    ):
        name, spec = name_of(q), q.get("spec") or {}
        counts = status_of(q).get("jobCounts") or {}
        rate = admission_rate(admission_times(k8s_jobs, name), now, window)
        order = sorted(spec.get("computeEnvironmentOrder") or [], key=lambda o: o.get("order", 0))
        qrows.append(
            {
                "name": name,
                "priority": spec.get("priority", 0),
                "state": spec.get("state", "Enabled"),
                "ready": ready(q),
                "waiting": sum(int(counts.get(p.value.lower(), 0)) for p in WAITING),
                **{
                    p.value.lower(): int(counts.get(p.value.lower(), 0))
                    for p in (Phase.STARTING, Phase.RUNNING, Phase.SUCCEEDED, Phase.FAILED)
                },
                "admissionsPerMinute": rate.per_minute,
                "oldestWaitSeconds": oldest_waiting(jobs, name, now),
                "computeEnvironments": [str(o.get("computeEnvironment")) for o in order],
            }
        )
    pools = node_cost_per_ce(nodes, catalogue)
    crows = []
    for ce in sorted(ces, key=name_of):
        name, spec, st = name_of(ce), ce.get("spec") or {}, status_of(ce)
        cr = spec.get("computeResources") or {}
        count, dollars = pools.get(name, (0, 0.0))
        crows.append(
            {
                "name": name,
                "type": spec.get("type", "Managed"),
                "capacityType": cr.get("capacityType", "OnDemand"),
                "state": spec.get("state", "Enabled"),
                "ready": ready(ce),
                "allocatedvCpus": st.get("allocatedvCpus"),
                "maxvCpus": cr.get("maxvCpus"),
                "capacityvCpus": st.get("capacityvCpus"),
                "desiredvCpus": st.get("desiredvCpus"),
                "nodes": st.get("nodes") if st.get("nodes") is not None else count,
                "dollarsPerHour": round(dollars, 6),
            }
        )
    return {"now": now, "windowSeconds": window, "queues": qrows, "computeEnvironments": crows}


def format_top(view: Mapping[str, Any]) -> str:
    """Pure: the two tables ``top`` prints."""
    q = format_table(
        [
            "QUEUE",
            "PRIORITY",
            "STATE",
            "WAITING",
            "STARTING",
            "RUNNING",
            "SUCCEEDED",
            "FAILED",
            "ADMITTED/MIN",
            "OLDEST-WAIT",
            "COMPUTE-ENVIRONMENTS",
        ],
        [
            [
                r["name"],
                r["priority"],
                r["state"],
                r["waiting"],
                r["starting"],
                r["running"],
                r["succeeded"],
                r["failed"],
                "-" if r["admissionsPerMinute"] is None else f"{r['admissionsPerMinute']:.1f}",
                duration_text(r["oldestWaitSeconds"]),
                ",".join(r["computeEnvironments"]) or "-",
            ]
            for r in view["queues"]
        ],
    )
    c = format_table(
        [
            "COMPUTE-ENVIRONMENT",
            "TYPE",
            "CAPACITY-TYPE",
            "STATE",
            "ALLOCATED/MAX",
            "",
            "CAPACITY",
            "DESIRED",
            "NODES",
            "$/HOUR",
        ],
        [
            [
                r["name"],
                r["type"],
                r["capacityType"],
                r["state"],
                f"{num_text(r['allocatedvCpus'] or 0)}/{num_text(r['maxvCpus'])}",
                bar(float(r["allocatedvCpus"] or 0), float(r["maxvCpus"] or 0)),
                num_text(r["capacityvCpus"]),
                num_text(r["desiredvCpus"]),
                num_text(r["nodes"]),
                money(r["dollarsPerHour"]),
            ]
            for r in view["computeEnvironments"]
        ],
    )
    window = duration_text(float(view.get("windowSeconds") or 0))
    return f"{q}\n{c}\n(admissions per minute over the last {window})\n"
