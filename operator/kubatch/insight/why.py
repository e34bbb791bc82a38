"""Why a job is where it is (``kubectl batch why``; the console's job page): where it
stands and, per compute environment of its queue, whether it could ever run there and whether
it has room now. Pure.

``ce_verdict`` asks the core's fit module (``kubatch.core.fit``), the one answer the operator
acts on, whether the job can ever run on each CE.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kubatch.api import models as api
from kubatch.api.pools import ce_node_selector, ce_to_core, in_pool, node_info
from kubatch.api.problems import InvalidResource
from kubatch.core.catalogue import DEFAULT, Catalogue
from kubatch.core.fit import Fit, ce_fit
from kubatch.core.lifecycle import Phase
from kubatch.core.resources import QuantityError, Resources, parse_cpu, sum_requests
from kubatch.insight.objects import Obj, condition, format_table, num_text, status_of


def job_size(job: Mapping[str, Any], definition: Mapping[str, Any] | None) -> Resources | None:
    """Pure: the resources one attempt (one array child) requests, or None if unknown.

    Uses the definition revision recorded in the job's status when there is one (what the
    operator admits), else the JobDefinition's template with ``spec.overrides.resources``.
    """
    revision = status_of(job).get("jobDefinition") or {}
    template = revision.get("template") if isinstance(revision, Mapping) else None
    overrides: Mapping[str, Any] = {}
    if not isinstance(template, Mapping):
        template = (definition or {}).get("spec", {}).get("template")
        overrides = (job.get("spec", {}).get("overrides") or {}).get("resources") or {}
    if not isinstance(template, Mapping):
        return None
    containers = [dict(c) for c in (template.get("spec") or {}).get("containers") or []]
    if not containers:
        return None
    if overrides:
        first = dict(containers[0])
        res = {k: dict(v) for k, v in (first.get("resources") or {}).items()}
        for key in ("requests", "limits"):
            res.setdefault(key, {}).update(overrides.get(key) or {})
        first["resources"] = res
        containers[0] = first
    try:
        return sum_requests(containers)
    except QuantityError:
        return None


@dataclass(frozen=True)
class Verdict:
    """Whether a compute environment could take the job, and why (not)."""

    order: int
    name: str
    can_run: bool
    now: bool
    why: str
    state: str = "-"
    capacity_type: str = "-"
    max_vcpus: str = "-"
    allocated_vcpus: str = "-"


def ce_verdict(
    order: int,
    name: str,
    ce: Mapping[str, Any] | None,
    size: Resources | None,
    nodes: Sequence[Mapping[str, Any]] = (),
    catalogue: Catalogue = DEFAULT,
) -> Verdict:
    """Pure: could ``ce`` ever take a job of ``size`` (``can_run``), and now (``now``)?

    "Ever" is the core's fit (``kubatch.core.fit``: one node shape must hold every resource
    the job asks for; Managed CEs from the instance catalogue, Unmanaged CEs from ``nodes``),
    the same answer the operator acts on; "now" compares with the vCPUs allocated.
    """
    if ce is None:
        return Verdict(order, name, False, False, "compute environment does not exist")
    spec, st = ce.get("spec", {}), status_of(ce)
    cr = spec.get("computeResources") or {}
    state = str(spec.get("state", "Enabled"))
    base = {
        "state": state,
        "capacity_type": str(cr.get("capacityType", "OnDemand")),
        "max_vcpus": num_text(cr.get("maxvCpus")),
        "allocated_vcpus": num_text(st.get("allocatedvCpus")),
    }
    if state == "Disabled":
        return Verdict(order, name, False, False, "Disabled: admits nothing new", **base)
    ready = condition(ce, "Ready")
    if ready is not None and ready.get("status") == "False":
        why = f"not Ready ({ready.get('reason') or 'no reason'})"
        if ready.get("message"):
            why += f": {ready['message']}"
        return Verdict(order, name, False, False, why, **base)
    if size is None:
        return Verdict(order, name, True, False, "job size unknown", **base)
    try:
        parsed = api.parse_compute_environment(ce)
    except InvalidResource as err:
        return Verdict(order, name, False, False, f"invalid: {err}", **base)
    infos = [node_info(n) for n in nodes]
    selector = ce_node_selector(parsed)
    core_ce = ce_to_core(parsed, [n for n in infos if in_pool(n, selector)], catalogue)
    verdict = ce_fit(size, core_ce)
    if verdict.fit is Fit.NO:
        return Verdict(order, name, False, False, f"can never fit: {verdict.why}", **base)
    if verdict.fit is Fit.UNKNOWN:
        return Verdict(order, name, True, False, f"cannot tell yet: {verdict.why}", **base)
    where = f" (fits {verdict.shape.name})" if verdict.shape is not None else ""
    allocated = st.get("allocatedvCpus")
    limit = core_ce.limit().mcpu
    if allocated is not None and size.mcpu > limit - parse_cpu(allocated):
        return Verdict(
            order,
            name,
            True,
            False,
            f"full now: {num_text(allocated)} of {num_text(cr.get('maxvCpus'))} vCPUs "
            f"allocated, job needs {size.vcpus:g}{where}",
            **base,
        )
    return Verdict(order, name, True, True, f"has room for {size.vcpus:g} vCPU{where}", **base)


def explain(
    job: Mapping[str, Any],
    queue: Mapping[str, Any] | None,
    ces: Mapping[str, Mapping[str, Any]],
    definition: Mapping[str, Any] | None,
    nodes: Sequence[Mapping[str, Any]] = (),
) -> Obj:
    """Pure: everything ``why`` says about a job, as a JSON-ready dict."""
    meta, spec, st = job.get("metadata", {}), job.get("spec", {}), status_of(job)
    size = job_size(job, definition)
    verdicts: list[Verdict] = []
    if queue is not None:
        order = sorted(
            queue.get("spec", {}).get("computeEnvironmentOrder") or [],
            key=lambda o: o.get("order", 0),
        )
        for o in order:
            ce_name = str(o.get("computeEnvironment"))
            verdicts.append(
                ce_verdict(int(o.get("order", 0)), ce_name, ces.get(ce_name), size, nodes)
            )
    return {
        "name": meta.get("name"),
        "namespace": meta.get("namespace"),
        "queue": spec.get("jobQueue"),
        "queueFound": queue is not None,
        "queueState": (queue or {}).get("spec", {}).get("state", "Enabled") if queue else None,
        "queuePriority": (queue or {}).get("spec", {}).get("priority") if queue else None,
        "jobDefinition": spec.get("jobDefinition"),
        "phase": st.get("phase") or Phase.SUBMITTED.value,
        "reason": st.get("reason"),
        "message": st.get("message"),
        "queuePosition": st.get("queuePosition"),
        "estimatedStartTime": st.get("estimatedStartTime"),
        "computeEnvironment": st.get("computeEnvironment"),
        "size": size.human() if size else None,
        "vcpus": size.vcpus if size else None,
        "computeEnvironments": [
            {
                "order": v.order,
                "name": v.name,
                "state": v.state,
                "capacityType": v.capacity_type,
                "maxvCpus": v.max_vcpus,
                "allocatedvCpus": v.allocated_vcpus,
                "canRun": v.can_run,
                "hasRoomNow": v.now,
                "why": v.why,
            }
            for v in verdicts
        ],
        "attempts": list(st.get("attempts") or []),
        "arrayStatusSummary": st.get("arrayStatusSummary"),
    }


def format_explanation(info: Mapping[str, Any]) -> str:
    """Pure: the text ``why`` prints (kubectl describe style)."""
    lines = [
        f"Name:          {info['name']}",
        f"Namespace:     {info['namespace']}",
        f"Definition:    {info['jobDefinition']}",
    ]
    queue = f"{info['queue']}"
    if not info["queueFound"]:
        queue += " (not found)"
    else:
        queue += f" (priority {info['queuePriority']}, {info['queueState']})"
    lines.append(f"Queue:         {queue}")
    lines.append(f"Phase:         {info['phase']}")
    lines.append(f"Reason:        {info['reason'] or '<none>'}")
    lines.append(f"Message:       {info['message'] or '<none>'}")
    if info["queuePosition"] is not None:
        lines.append(f"Position:      {info['queuePosition']} in queue {info['queue']}")
    if info.get("estimatedStartTime"):
        lines.append(f"Estimated:     start at {info['estimatedStartTime']}")
    if info["computeEnvironment"]:
        lines.append(f"Placed on:     {info['computeEnvironment']}")
    lines.append(f"Size:          {info['size'] or 'unknown'}")
    summary = info.get("arrayStatusSummary")
    if summary:
        parts = [f"{k} {v}" for k, v in summary.items() if v]
        lines.append(f"Array:         {', '.join(parts)}")
    out = "\n".join(lines) + "\n"
    out += "Compute environments (queue order):\n"
    if info["computeEnvironments"]:
        table = format_table(
            ["ORDER", "NAME", "STATE", "CAPACITY-TYPE", "MAX-VCPUS", "ALLOCATED", "FITS", "WHY"],
            [
                [
                    c["order"],
                    c["name"],
                    c["state"],
                    c["capacityType"],
                    c["maxvCpus"],
                    c["allocatedvCpus"],
                    "yes" if c["hasRoomNow"] else ("later" if c["canRun"] else "no"),
                    c["why"],
                ]
                for c in info["computeEnvironments"]
            ],
        )
        out += "".join(f"  {line}\n" for line in table.splitlines())
    else:
        out += "  <none>\n"
    out += "Attempts:\n"
    if info["attempts"]:
        table = format_table(
            ["#", "JOB", "NODE", "CE", "CAPACITY-TYPE", "STARTED", "STOPPED", "EXIT", "REASON"],
            [
                [
                    a.get("number"),
                    a.get("jobName"),
                    a.get("nodeName"),
                    a.get("computeEnvironment"),
                    a.get("capacityType"),
                    a.get("startedAt"),
                    a.get("stoppedAt"),
                    a.get("exitCode"),
                    (a.get("reason") or "")
                    + (" (interrupted)" if a.get("interrupted") else "")
                    + (f": {a['statusReason']}" if a.get("statusReason") else ""),
                ]
                for a in info["attempts"]
            ],
        )
        out += "".join(f"  {line}\n" for line in table.splitlines())
    else:
        out += "  <none>\n"
    return out
