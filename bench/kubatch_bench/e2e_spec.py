"""The e2e benchmark's pure half: what it creates (manifests), what it aims at (targets), how
it reads the operator's writes and how it reports. No I/O."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from kubatch.api import labels as L
from kubatch.devkit.promtext import Samples

API = "kubatch.io/v1alpha1"
NS = "kubatch-bench"
NS_RAW = "kubatch-bench-raw"
CE = "bench"
QUEUE = "bench"
DEFINITION = "bench"
CE_FREE = "bench-free"
"""A second pool, large enough that the latency and dependency phases never wait for room."""
QUEUE_FREE = "bench-free"
DEFINITION_FREE = "bench-free-1s"
INSTANCE_TYPE = "m5.4xlarge"  # 16 vCPUs
NODE_VCPUS = 16
JOB_CPU = "1"
JOB_MEMORY = "512Mi"

TARGETS = {
    "ratio": ("≥", 0.9),
    "seconds_to_all_jobs_created": ("≤", 100.0),
    "seconds_to_all_succeeded": ("≤", 250.0),
    "writes_per_batchjob": ("≤", 4.0),
    "free_submit_to_job_p99_s": ("≤", 1.0),
    "operator_peak_rss_mib": ("≤", 300.0),
    "restart_to_first_admission_s": ("≤", 10.0),
    "fan_out_release_p99_s": ("≤", 1.0),
    "fan_in_release_p99_s": ("≤", 1.0),
}
SIZED = ("seconds_to_all_jobs_created", "seconds_to_all_succeeded", "writes_per_batchjob")
"""Targets stated for N = TARGET_JOBS exactly."""
TIMED = ("seconds_to_all_jobs_created", "seconds_to_all_succeeded", "ratio", "writes_per_batchjob")
"""Figures that are only bounds when the phase timed out (writes: not every job had ended)."""
TARGET_JOBS = 10000
TARGET_RSS_JOBS = 15000
TARGET_RESTART_JOBS = 10000
TARGET_RATE = 50.0
WRITES = "kubatch_api_writes_total"


def pod_template(seconds: float) -> dict[str, Any]:
    """Pure: the pod template shared by the raw Jobs and the JobDefinition: one container of
    1 vCPU / 512Mi that the simulator runs for ``seconds``."""
    return {
        "metadata": {"annotations": {"sim.kubatch.io/duration": f"{seconds:g}"}},
        "spec": {
            "containers": [
                {
                    "name": "main",
                    "image": "busybox:1.36",
                    "resources": {"requests": {"cpu": JOB_CPU, "memory": JOB_MEMORY}},
                }
            ]
        },
    }


def raw_job(name: str, namespace: str, seconds: float) -> dict[str, Any]:
    """Pure: a plain batch/v1 Job equivalent to what kubatch renders for one attempt."""
    tpl = pod_template(seconds)
    tpl["spec"]["restartPolicy"] = "Never"
    tpl["spec"]["nodeSelector"] = {L.COMPUTE_ENVIRONMENT: CE}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"backoffLimit": 0, "template": tpl},
    }


def _ce(name: str, vcpus: int) -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "ComputeEnvironment",
        "metadata": {"name": name},
        "spec": {
            "type": "Managed",
            "state": "Enabled",
            "computeResources": {
                "capacityType": "OnDemand",
                "minvCpus": vcpus,
                "maxvCpus": vcpus,
                "instanceTypes": [INSTANCE_TYPE],
                "allocationStrategy": "BestFit",
            },
        },
    }


def _queue(name: str, ce: str) -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "JobQueue",
        "metadata": {"name": name},
        "spec": {
            "priority": 1,
            "state": "Enabled",
            "computeEnvironmentOrder": [{"order": 1, "computeEnvironment": ce}],
        },
    }


def _definition(name: str, seconds: float) -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "JobDefinition",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"template": pod_template(seconds)},
    }


def setup_manifests(vcpus: int, free_vcpus: int, seconds: float) -> list[dict[str, Any]]:
    """Pure: the measured pool (fixed at ``vcpus``) with its queue and a definition whose pods
    run ``seconds``; the free pool (``free_vcpus``) with its queue and a 1-s definition."""
    return [
        _ce(CE, vcpus),
        _queue(QUEUE, CE),
        _definition(DEFINITION, seconds),
        _ce(CE_FREE, free_vcpus),
        _queue(QUEUE_FREE, CE_FREE),
        _definition(DEFINITION_FREE, 1.0),
    ]


def batchjob(
    name: str,
    queue: str = QUEUE,
    definition: str = DEFINITION,
    depends_on: list[str] | None = None,
) -> dict[str, Any]:
    """Pure: one single-pod BatchJob (optionally depending on other jobs by name)."""
    spec: dict[str, Any] = {"jobQueue": queue, "jobDefinition": definition}
    if depends_on:
        spec["dependsOn"] = [{"jobName": d} for d in depends_on]
    return {"apiVersion": API, "kind": "BatchJob", "metadata": {"name": name, "namespace": NS},
            "spec": spec}  # fmt: skip


def fan_out(prefix: str, width: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Pure: one parent and ``width`` jobs depending on it (on the free pool)."""
    parent = batchjob(f"{prefix}-parent", QUEUE_FREE, DEFINITION_FREE)
    kids = [
        batchjob(f"{prefix}-child-{i:03d}", QUEUE_FREE, DEFINITION_FREE, [f"{prefix}-parent"])
        for i in range(width)
    ]
    return parent, kids


def fan_in(prefix: str, width: int) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Pure: ``width`` parents and one job depending on all of them (on the free pool)."""
    parents = [
        batchjob(f"{prefix}-parent-{i:03d}", QUEUE_FREE, DEFINITION_FREE) for i in range(width)
    ]
    child = batchjob(
        f"{prefix}-child",
        QUEUE_FREE,
        DEFINITION_FREE,
        [p["metadata"]["name"] for p in parents],
    )
    return parents, child


def writes_by_verb_resource(metrics: Samples) -> dict[tuple[str, str], float]:
    """Pure: ``kubatch_api_writes_total`` by (verb, resource)."""
    out: dict[tuple[str, str], float] = {}
    for labels, value in (metrics.get(WRITES) or {}).items():
        d = dict(labels)
        out[(d.get("verb", ""), d.get("resource", ""))] = value
    return out


def writes_delta(
    before: Mapping[tuple[str, str], float], after: Mapping[tuple[str, str], float]
) -> dict[str, int]:
    """Pure: per ``verb resource`` increase between two scrapes (zero rows dropped)."""
    out: dict[str, int] = {}
    for key, value in after.items():
        d = round(value - before.get(key, 0.0))
        if d:
            out[f"{key[0]} {key[1]}"] = d
    return dict(sorted(out.items()))


def judge(value: float | None, target: tuple[str, float]) -> str:
    """Pure: ``met``/``missed`` for a value against (``≥``|``≤``, bound); ``n/a`` for None."""
    if value is None:
        return "n/a"
    op, bound = target
    ok = value >= bound if op == "≥" else value <= bound
    return "met" if ok else "missed"


def add_targets(result: dict[str, Any]) -> None:
    """Mark each target met/missed (``n/a`` where the run is not the target's size)."""
    n = int(result["jobs"])
    out: dict[str, Any] = {}
    for key, target in TARGETS.items():
        value = result.get(key)
        status = judge(value, target)
        note = ""
        if key in SIZED and n != TARGET_JOBS:
            note = f"target is for {TARGET_JOBS} jobs; this run had {n}"
            status = f"n/a ({status} at N={n})"
        if key == "ratio" and value is None:
            note = "no raw phase in this run"
        if key == "free_submit_to_job_p99_s" and result.get("latency_rate_per_s") != TARGET_RATE:
            note = f"target is at {TARGET_RATE:g}/s"
            status = f"n/a ({status})"
        if key == "operator_peak_rss_mib":
            present = int(result.get("batchjobs_present_at_end", 0))
            if present < TARGET_RSS_JOBS:
                note = f"measured with {present} BatchJobs present, target is with " + str(
                    TARGET_RSS_JOBS
                )
                status = f"n/a ({status} at {present})"
        if key == "restart_to_first_admission_s":
            present = int(result.get("restart_batchjobs_present", 0))
            if present < TARGET_RESTART_JOBS:
                note = f"{present} BatchJobs present, target is with {TARGET_RESTART_JOBS}"
                status = f"n/a ({status} at {present})"
        if key in TIMED and result.get("timed_out"):
            note = f"the phase timed out: the value is a lower bound ({result['timed_out'][0]})"
            status = "missed (timed out)" if status != "met" else "n/a (timed out)"
        out[key] = {"target": f"{target[0]} {target[1]:g}", "value": value, "status": status}
        if note:
            out[key]["note"] = note
    result["targets"] = out


def table(result: dict[str, Any]) -> str:
    """Pure: the figures and targets as an aligned text table, then each size's row."""
    rows = [("figure", "value", "target", "status")]
    for key, t in result["targets"].items():
        rows.append((key, str(t["value"]), t["target"], t["status"]))
    for key in (
        "raw_jobs_per_s",
        "batchjobs_per_s",
        "raw_seconds_to_all_succeeded",
        "operator_cpu_s_per_1000_batchjobs",
        "operator_event_writes",
        "submit_to_job_p99_s",
        "batchjobs_present_at_end",
    ):
        rows.append((key, str(result.get(key)), "", ""))
    text = _align(rows)
    sizes = result.get("sizes") or []
    if len(sizes) > 1:
        srows = [tuple(label for label, _ in SIZE_COLUMNS)]
        srows += [tuple(str(row.get(key)) for _, key in SIZE_COLUMNS) for row in sizes]
        text += "\n\n" + _align(srows)
    return text


SIZE_COLUMNS = (
    ("N", "jobs"),
    ("raw all done s", "raw_seconds_to_all_succeeded"),
    ("all Jobs s", "seconds_to_all_jobs_created"),
    ("all done s", "seconds_to_all_succeeded"),
    ("ratio", "ratio"),
    ("writes/job", "writes_per_batchjob"),
    ("cpu s/1000", "operator_cpu_s_per_1000_batchjobs"),
)


def _align(rows: Sequence[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def phase_counts(phases: Mapping[str, str], names: list[str]) -> str:
    """Pure: ``Phase=count`` over ``names`` (a progress line)."""
    counts: dict[str, int] = {}
    for x in names:
        p = phases.get(x) or "(no status)"
        counts[p] = counts.get(p, 0) + 1
    return ", ".join(f"{k}={v}" for k, v in sorted(counts.items()))
