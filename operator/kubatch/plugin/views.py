"""The pure half of ``kubectl batch``: parsing of the verbs' arguments, the manifests they
create, kubectl-style tables and ``-o json|yaml`` rendering. No I/O."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import yaml

from kubatch import API_VERSION
from kubatch.api.enums import DependencyCondition, DependencyType
from kubatch.core.lifecycle import Phase
from kubatch.insight.objects import (
    InsightError,
    Obj,
    age,
    condition,
    format_table,
    num_text,
    ready,
    status_of,
)

__all__ = [  # the object helpers live in kubatch.insight.objects; re-exported for the verbs
    "Obj", "PluginError", "age", "as_list", "build_batch_job", "ce_rows", "condition",
    "format_table", "job_rows", "num_text", "parse_depends_on", "parse_parameter",
    "queue_rows", "ready", "render_output", "status_of",
]  # fmt: skip

OUTPUTS = ("json", "yaml")


class PluginError(InsightError):
    """A user-facing error: printed as ``error: ...`` with exit code 1 (as is an
    :class:`~kubatch.insight.objects.InsightError`)."""


# --------------------------------------------------------------------------- pure: parsing


def parse_parameter(text: str) -> tuple[str, str]:
    """Pure: ``key=value`` -> (key, value); the value may contain ``=``."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise PluginError(f"parameter {text!r}: expected key=value")
    return key.strip(), value


def parse_depends_on(text: str) -> Obj:
    """Pure: ``NAME[:TYPE][:CONDITION]`` -> a ``spec.dependsOn`` entry.

    TYPE is ``N_TO_N`` or ``SEQUENTIAL`` (``SEQUENTIAL`` alone: no name), CONDITION is
    ``Succeeded`` (default), ``Completed`` or ``Failed``; both are case-insensitive and may be
    given in either order after the name.
    """
    parts = text.split(":")
    types = {t.value.upper(): t.value for t in DependencyType}
    conditions = {c.value.upper(): c.value for c in DependencyCondition}
    entry: Obj = {}
    name = parts[0].strip()
    if name.upper() in types and len(parts) == 1:
        name = ""
        parts = ["", *parts]
    if name:
        entry["jobName"] = name
    for part in parts[1:]:
        word = part.strip().upper()
        if word in types and "type" not in entry:
            entry["type"] = types[word]
        elif word in conditions and "condition" not in entry:
            entry["condition"] = conditions[word]
        else:
            raise PluginError(
                f"--depends-on {text!r}: {part!r} is neither a type "
                f"({', '.join(types.values())}) nor a condition ({', '.join(conditions.values())})"
            )
    if entry.get("type") == DependencyType.SEQUENTIAL.value and name:
        raise PluginError(f"--depends-on {text!r}: a SEQUENTIAL dependency names no job")
    if not name and entry.get("type") != DependencyType.SEQUENTIAL.value:
        raise PluginError(f"--depends-on {text!r}: a job name is required")
    return entry


def build_batch_job(
    job_definition: str,
    queue: str,
    *,
    namespace: str,
    name: str | None = None,
    parameters: Mapping[str, str] | None = None,
    array_size: int | None = None,
    parallelism: int | None = None,
    depends_on: Sequence[Obj] = (),
    share_identifier: str | None = None,
) -> Obj:
    """Pure: the BatchJob manifest ``submit`` creates (``generateName`` when no name)."""
    metadata: Obj = {"namespace": namespace}
    if name:
        metadata["name"] = name
    else:
        metadata["generateName"] = f"{job_definition[:50]}-"
    spec: Obj = {"jobQueue": queue, "jobDefinition": job_definition}
    if parameters:
        spec["parameters"] = dict(parameters)
    if array_size is not None:
        spec["arrayProperties"] = {"size": array_size}
        if parallelism is not None:
            spec["arrayProperties"]["parallelism"] = parallelism
    elif parallelism is not None:
        raise PluginError("--parallelism needs --array-size")
    if depends_on:
        spec["dependsOn"] = list(depends_on)
    if share_identifier:
        spec["shareIdentifier"] = share_identifier
    return {"apiVersion": API_VERSION, "kind": "BatchJob", "metadata": metadata, "spec": spec}


# --------------------------------------------------------------------------- pure: tables


def job_rows(
    jobs: Iterable[Mapping[str, Any]], now: datetime, *, all_namespaces: bool = False
) -> list[list[object]]:
    """Pure: rows for ``ls``; see ``JOB_HEADERS``."""
    rows: list[list[object]] = []
    for job in jobs:
        meta, spec, st = job.get("metadata", {}), job.get("spec", {}), status_of(job)
        attempts = st.get("attempts") or []
        array = spec.get("arrayProperties") or {}
        summary = st.get("arrayStatusSummary") or {}
        done = summary.get("succeeded", 0) + summary.get("failed", 0)
        row = [
            meta.get("name"),
            spec.get("jobQueue"),
            st.get("phase") or Phase.SUBMITTED.value,
            st.get("reason"),
            st.get("queuePosition") if st.get("queuePosition") is not None else "-",
            st.get("computeEnvironment") or "-",
            f"{done}/{array['size']}" if array.get("size") else "-",
            st.get("attemptCount") or len(attempts),
            age(meta.get("creationTimestamp"), now),
        ]
        rows.append(([meta.get("namespace")] if all_namespaces else []) + row)
    return rows


JOB_HEADERS = ["NAME", "QUEUE", "PHASE", "REASON", "POSITION", "CE", "ARRAY", "ATTEMPTS", "AGE"]


def queue_rows(queues: Iterable[Mapping[str, Any]], now: datetime) -> list[list[object]]:
    """Pure: rows for ``queues``; see ``QUEUE_HEADERS``."""
    rows: list[list[object]] = []
    for q in queues:
        meta, spec, st = q.get("metadata", {}), q.get("spec", {}), status_of(q)
        order = sorted(spec.get("computeEnvironmentOrder") or [], key=lambda o: o.get("order", 0))
        counts = st.get("jobCounts") or {}
        rows.append(
            [
                meta.get("name"),
                spec.get("priority", 0),
                spec.get("state", "Enabled"),
                ready(q),
                ",".join(str(o.get("computeEnvironment")) for o in order) or "-",
                *(counts.get(p.value.lower(), 0) for p in Phase),
                age(meta.get("creationTimestamp"), now),
            ]
        )
    return rows


QUEUE_HEADERS = [
    "NAME",
    "PRIORITY",
    "STATE",
    "READY",
    "COMPUTE-ENVIRONMENTS",
    *(p.value.upper() for p in Phase),
    "AGE",
]


def ce_rows(ces: Iterable[Mapping[str, Any]], now: datetime) -> list[list[object]]:
    """Pure: rows for ``ces``; see ``CE_HEADERS``."""
    rows: list[list[object]] = []
    for ce in ces:
        meta, spec, st = ce.get("metadata", {}), ce.get("spec", {}), status_of(ce)
        cr = spec.get("computeResources") or {}
        rows.append(
            [
                meta.get("name"),
                spec.get("type", "Managed"),
                spec.get("state", "Enabled"),
                cr.get("capacityType", "OnDemand"),
                num_text(cr.get("minvCpus", 0)),
                num_text(cr.get("maxvCpus")),
                num_text(st.get("desiredvCpus")),
                num_text(st.get("allocatedvCpus")),
                num_text(st.get("capacityvCpus")),
                num_text(st.get("nodes")),
                ready(ce),
                age(meta.get("creationTimestamp"), now),
            ]
        )
    return rows


CE_HEADERS = [
    "NAME",
    "TYPE",
    "STATE",
    "CAPACITY-TYPE",
    "MIN-VCPUS",
    "MAX-VCPUS",
    "DESIRED",
    "ALLOCATED",
    "CAPACITY",
    "NODES",
    "READY",
    "AGE",
]


def render_output(data: object, fmt: str) -> str:
    """Pure: ``-o json`` / ``-o yaml`` rendering."""
    if fmt == "json":
        return json.dumps(data, indent=4, sort_keys=False, default=str) + "\n"
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False)


def as_list(items: Sequence[Obj]) -> Obj:
    """Pure: kubectl's ``List`` wrapper for several objects."""
    return {"apiVersion": "v1", "kind": "List", "items": list(items), "metadata": {}}
