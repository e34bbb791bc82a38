"""The e2e benchmark's pure half: what it creates (manifests), what it aims at (targets), how
it reads the operator's writes and how it reports. No I/O."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kubatch.api import labels as L
from kubatch.devkit.promtext import Samples

API = "kubatch.io/v1alpha1"
NS = "kubatch-bench"
NS_RAW = "kubatch-bench-raw"
CE = "bench"
QUEUE = "bench"
DEFINITION = "bench-1s"
INSTANCE_TYPE = "m5.4xlarge"  # 16 vCPUs
NODE_VCPUS = 16
JOB_CPU = "1"
JOB_MEMORY = "512Mi"
DURATION = "1"

TARGETS = {
    "ratio": ("≥", 0.5),
    "seconds_to_all_jobs_created": ("≤", 100.0),
    "seconds_to_all_succeeded": ("≤", 250.0),
    "writes_per_batchjob": ("≤", 4.0),
    "submit_to_admitted_p99_s": ("≤", 1.0),
    "operator_peak_rss_mib": ("≤", 300.0),
}
TARGET_JOBS = 10000
TARGET_RSS_JOBS = 15000
TARGET_RATE = 50.0
WRITES = "kubatch_api_writes_total"


def pod_template() -> dict[str, Any]:
    """Pure: the pod template shared by the raw Jobs and the JobDefinition."""
    return {
        "metadata": {"annotations": {"sim.kubatch.io/duration": DURATION}},
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


def raw_job(name: str) -> dict[str, Any]:
    """Pure: a plain batch/v1 Job equivalent to what kubatch renders for one attempt."""
    tpl = pod_template()
    tpl["spec"]["restartPolicy"] = "Never"
    tpl["spec"]["nodeSelector"] = {L.COMPUTE_ENVIRONMENT: CE}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": NS_RAW},
        "spec": {"backoffLimit": 0, "template": tpl},
    }


def setup_manifests(vcpus: int) -> list[dict[str, Any]]:
    """Pure: the CE (fixed pool of ``vcpus``), the queue and the definition."""
    return [
        {
            "apiVersion": API,
            "kind": "ComputeEnvironment",
            "metadata": {"name": CE},
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
        },
        {
            "apiVersion": API,
            "kind": "JobQueue",
            "metadata": {"name": QUEUE},
            "spec": {
                "priority": 1,
                "state": "Enabled",
                "computeEnvironmentOrder": [{"order": 1, "computeEnvironment": CE}],
            },
        },
        {
            "apiVersion": API,
            "kind": "JobDefinition",
            "metadata": {"name": DEFINITION, "namespace": NS},
            "spec": {"template": pod_template()},
        },
    ]


def batchjob(name: str) -> dict[str, Any]:
    """Pure: one single-pod BatchJob."""
    return {
        "apiVersion": API,
        "kind": "BatchJob",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"jobQueue": QUEUE, "jobDefinition": DEFINITION},
    }


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
    """Mark each target met/missed (n/a where the run's size is not the target's)."""
    n = int(result["jobs"])
    out: dict[str, Any] = {}
    for key, target in TARGETS.items():
        value = result.get(key)
        status = judge(value, target)
        note = ""
        if key in ("seconds_to_all_jobs_created", "seconds_to_all_succeeded") and n != TARGET_JOBS:
            note = f"target is for {TARGET_JOBS} jobs; this run had {n}"
            status = f"n/a ({status} at N={n})"
        if key == "submit_to_admitted_p99_s" and result.get("latency_rate_per_s") != TARGET_RATE:
            note = f"target is at {TARGET_RATE}/s"
        if key == "operator_peak_rss_mib":
            present = int(result.get("batchjobs_present_at_end", 0))
            if present < TARGET_RSS_JOBS:
                note = (
                    f"measured with {present} BatchJobs present, target is with {TARGET_RSS_JOBS}"
                )
                status = f"n/a ({status} at {present})"
        out[key] = {"target": f"{target[0]} {target[1]:g}", "value": value, "status": status}
        if note:
            out[key]["note"] = note
    result["targets"] = out


def table(result: dict[str, Any]) -> str:
    """Pure: the figures and targets as an aligned text table."""
    rows = [("figure", "value", "target", "status")]
    for key, t in result["targets"].items():
        rows.append((key, str(t["value"]), t["target"], t["status"]))
    for key in (
        "raw_jobs_per_s",
        "batchjobs_per_s",
        "raw_seconds_to_all_succeeded",
        "operator_event_writes",
        "submit_to_admitted_p50_s",
        "batchjobs_present_at_end",
    ):
        rows.append((key, str(result.get(key)), "", ""))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
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
