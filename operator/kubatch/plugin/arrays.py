"""Array children from kubectl: ``ls --array JOB``, ``why JOB:7``, ``rerun JOB --failed``.

The parent's status holds counts only; each child's phase, attempts, exit code, node and
compute environment are in the array's child records (ConfigMaps ``<job>-children-<k>``,
written by the operator; see ``kubatch.controller.children``). The pure parts are here; the
verbs (I/O) call them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from kubatch.api import labels as L
from kubatch.api.records import DATA_KEY, parse_rows
from kubatch.core.lifecycle import Phase
from kubatch.plugin.views import Obj, PluginError, format_table, status_of

CHILD_HEADERS = ["INDEX", "PHASE", "ATTEMPTS", "EXIT", "REASON", "NODE", "CE"]
CHILD_REF = re.compile(r"^(?P<name>[^:]+):(?P<index>\d+)$")


def split_child(ref: str) -> tuple[str, int | None]:
    """Pure: ``JOB:7`` -> (``JOB``, 7); ``JOB`` -> (``JOB``, None)."""
    m = CHILD_REF.match(ref)
    return (m.group("name"), int(m.group("index"))) if m else (ref, None)


def record_selector(job_name: str) -> str:
    """The label selector of an array's record ConfigMaps."""
    return f"{L.ARRAY_RECORD},{L.BATCHJOB}={job_name}"


def child_rows(configmaps: Iterable[Mapping[str, Any]]) -> list[Obj]:
    """Pure: every child of an array's record chunks, by index."""
    out: list[Obj] = []
    for cm in configmaps:
        text = str((cm.get("data") or {}).get(DATA_KEY, ""))
        for r in parse_rows(text):
            row = r.as_dict()
            row.update(failures=r.failures, interruptions=r.interruptions)
            out.append(row)
    out.sort(key=lambda r: int(r["index"]))
    return out


def filter_rows(
    rows: Sequence[Obj], phases: Sequence[str] | None, offset: int, limit: int
) -> tuple[list[Obj], int]:
    """Pure: rows in ``phases`` (any when empty), one page; and how many matched."""
    wanted = {p.lower() for p in phases or []}
    matched = [r for r in rows if not wanted or str(r["phase"]).lower() in wanted]
    return matched[offset : offset + limit], len(matched)


def children_table(rows: Sequence[Obj]) -> str:
    """Pure: the table ``ls --array`` prints."""
    return format_table(
        CHILD_HEADERS,
        [
            [
                r["index"],
                r["phase"],
                r["attempts"],
                "" if r["exitCode"] is None else r["exitCode"],
                r["reason"] or "",
                r["node"] or "",
                r["computeEnvironment"] or "",
            ]
            for r in rows
        ],
    )


def explain_child(job: Mapping[str, Any], row: Obj | None, index: int) -> str:
    """Pure: what ``why JOB:7`` prints."""
    meta, st = job.get("metadata", {}), status_of(job)
    size = (job.get("spec", {}).get("arrayProperties") or {}).get("size")
    lines = [
        f"Name:          {meta.get('name')}:{index}",
        f"Namespace:     {meta.get('namespace')}",
        f"Array:         {meta.get('name')} ({st.get('phase') or 'Submitted'}, size {size})",
    ]
    if size is not None and not 0 <= index < int(size):
        raise PluginError(f"index {index} is outside the array (size {size})")
    if row is None:
        lines.append("Phase:         unknown (no record yet: the operator writes records every few")
        lines.append("               seconds while children change)")
        return "\n".join(lines) + "\n"
    phase = str(row["phase"])
    lines += [
        f"Phase:         {phase}",
        f"Attempts:      {row['attempts']} (failed {row['failures']}, "
        f"interrupted {row['interruptions']})",
    ]
    if row["exitCode"] is not None or row["reason"]:
        lines.append(f"Last exit:     {row['exitCode']} {row['reason'] or ''}".rstrip())
    if row["node"] or row["computeEnvironment"]:
        lines.append(
            f"Ran on:        node {row['node'] or '?'}, {row['computeEnvironment'] or '?'}"
        )
    if row["message"]:
        lines.append(f"Message:       {row['message']}")
    waiting = {
        Phase.PENDING.value: "waits for its dependencies (N_TO_N on the same index of another "
        "array, or the previous child of a SEQUENTIAL array)",
        Phase.RUNNABLE.value: f"waits to be admitted: {st.get('reason') or 'capacity'}"
        + (f" ({st['message']})" if st.get("message") else ""),
    }
    if phase in waiting:
        lines.append(f"Why:           {waiting[phase]}")
    return "\n".join(lines) + "\n"


RERUN_KEEP = (
    "jobQueue", "jobDefinition", "parameters", "overrides", "retryStrategy", "timeout",
    "schedulingPriorityOverride", "shareIdentifier", "interruptionBudget",
)  # fmt: skip


def rerun_body(job: Mapping[str, Any], indices: Sequence[int], name: str) -> Obj:
    """Pure: a BatchJob that runs exactly ``indices`` of array ``job`` again, each child as
    its original index (one index: a plain job that keeps it). Same definition, parameters,
    queue and overrides; no dependencies (they were met by the original)."""
    if not indices:
        raise PluginError(f"{job['metadata']['name']} has no failed children to re-run")
    spec = job.get("spec", {})
    body_spec: Obj = {k: spec[k] for k in RERUN_KEEP if k in spec}
    original = job["metadata"]["name"]
    body_spec["rerunOf"] = {"jobName": original, "indices": sorted(indices)}
    if len(indices) > 1:
        arr: Obj = {"size": len(indices)}
        parallelism = (spec.get("arrayProperties") or {}).get("parallelism")
        if parallelism:
            arr["parallelism"] = parallelism
        body_spec["arrayProperties"] = arr
    return {
        "apiVersion": "kubatch.io/v1alpha1",
        "kind": "BatchJob",
        "metadata": {
            "name": name,
            "namespace": job["metadata"].get("namespace"),
            "labels": {"kubatch.io/rerun-of": original[:63]},
        },
        "spec": body_spec,
    }


def rerun_name(original: str, existing: Iterable[str]) -> str:
    """Pure: ``<job>-rerun-<n>``, the first n not taken."""
    taken = set(existing)
    n = 1
    while f"{original}-rerun-{n}" in taken:
        n += 1
    return f"{original}-rerun-{n}"[:253]
