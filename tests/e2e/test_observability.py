"""Observability end to end: ``/metrics`` of the running operator against what really happened,
and the Argo CD health scripts against the real objects that run left behind.

Six jobs on their own compute environment and queue: four succeed, one fails after a retry
(``retryStrategy.attempts: 2``, exit code 1 twice) and one depends on that one and so fails
without ever running. Other tests share the operator, so every assertion filters on this
test's queue and compute environment label values.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from lupa import LuaRuntime
from prometheus_client.parser import text_string_to_metric_families
from tests.e2e.conftest import Stack
from tests.e2e.factories import make_ce, make_definition, make_job, make_queue
from tests.unit.test_argocd_health import argocd_script

pytestmark = pytest.mark.timeout(300)

ARGO_STATUSES = {"Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown"}
MAX_VCPUS = 8

Sample = tuple[str, dict[str, str], float]


def samples(text: str) -> list[Sample]:
    """Every sample of an exposition, parsed by prometheus-client's own parser."""
    return [
        (s.name, dict(s.labels), float(s.value))
        for family in text_string_to_metric_families(text)
        for s in family.samples
    ]


def value(all_samples: list[Sample], name: str, **labels: str) -> float | None:
    """The one sample called ``name`` whose labels include ``labels`` (None when absent)."""
    found = [
        v
        for n, lab, v in all_samples
        if n == name and all(lab.get(k) == x for k, x in labels.items())
    ]
    assert len(found) <= 1, f"{name}{labels} matches {len(found)} samples"
    return found[0] if found else None


def total(all_samples: list[Sample], name: str, **labels: str) -> float:
    """The sum of every ``name`` sample whose labels include ``labels``."""
    return sum(
        v
        for n, lab, v in all_samples
        if n == name and all(lab.get(k) == x for k, x in labels.items())
    )


def argo_health(kind: str, obj: dict[str, Any]) -> tuple[str, str]:
    """Run the chart's Argo CD script of ``kind`` on a real object the way Argo CD does."""
    script = argocd_script(kind)
    lua = LuaRuntime(unpack_returned_tuples=True)
    lua.globals().obj = lua.table_from(obj, recursive=True)
    result = lua.execute(script)
    status, message = str(result["status"]), str(result["message"] or "")
    assert status in ARGO_STATUSES, (kind, status, message)
    return status, message


def test_metrics_and_argocd_health_match_what_happened(stack: Stack, namespace: str) -> None:
    ns = namespace
    ce, q = f"{ns}-ce", f"{ns}-q"
    stack.apply([make_ce(ce, max_vcpus=MAX_VCPUS), make_queue(q, [ce])])
    ok = [f"ok-{i}" for i in range(4)]
    stack.apply(
        [
            make_definition("ok", duration=1, cpu="500m"),
            make_definition("flaky", duration=1, cpu="500m", exit_code=1, retry={"attempts": 2}),
            *(make_job(name, q, "ok") for name in ok),
            make_job("flaky", q, "flaky"),
            make_job("after-flaky", q, "ok", dependsOn=[{"jobName": "flaky"}]),
        ],
        ns,
    )
    final = {name: stack.wait_phase(ns, name) for name in [*ok, "flaky", "after-flaky"]}
    phases = {name: bj["status"]["phase"] for name, bj in final.items()}
    assert phases == {**dict.fromkeys(ok, "Succeeded"), "flaky": "Failed", "after-flaky": "Failed"}
    assert len(final["flaky"]["status"]["attempts"]) == 2, final["flaky"]["status"]
    assert not final["after-flaky"]["status"].get("attempts"), final["after-flaky"]["status"]
    started = [n for n, bj in final.items() if bj["status"].get("startedAt")]

    # Gauges are published every 2 s (queue and CE status): wait until the CE's allocation is
    # back to 0 and the queue's jobs-per-phase gauge shows all six ended.
    def settled() -> list[Sample] | None:
        s = samples(stack.metrics())
        alloc = value(s, "kubatch_compute_environment_allocated_vcpus", compute_environment=ce)
        ended = [value(s, "kubatch_jobs", queue=q, phase=p) for p in ("Succeeded", "Failed")]
        return s if alloc == 0 and ended == [4, 2] else None

    m = stack.wait(f"{ce} allocated vCPUs back to 0", settled, timeout=60)

    # Every family is kubatch_-prefixed or a process/python collector of prometheus-client.
    families = {f.name for f in text_string_to_metric_families(stack.metrics())}
    assert {
        "kubatch_job_submissions",
        "kubatch_job_completions",
        "kubatch_job_wait_seconds",
        "kubatch_compute_environment_allocated_vcpus",
        "kubatch_api_writes",
    } <= families

    # Counters per queue: exactly what happened.
    assert value(m, "kubatch_job_submissions_total", queue=q) == 6
    assert value(m, "kubatch_job_completions_total", queue=q, phase="Succeeded") == 4
    assert value(m, "kubatch_job_completions_total", queue=q, phase="Failed") == 2
    assert value(m, "kubatch_job_retries_total", queue=q) == 1
    failures = Counter(
        {
            lab["reason"]: v
            for n, lab, v in m
            if n == "kubatch_job_failures_total" and lab["queue"] == q and v
        }
    )
    expected_reasons = Counter(
        final[n]["status"]["reason"] for n in ("flaky", "after-flaky")
    )  # e.g. NonZeroExitCode / RetriesExhausted and DependencyFailed
    assert failures == expected_reasons, (failures, expected_reasons)
    assert expected_reasons["DependencyFailed"] == 1
    # Admissions: one per attempt (4 + 2), all on demand.
    assert total(m, "kubatch_job_admissions_total", queue=q) == 6
    assert value(m, "kubatch_job_admissions_total", queue=q, capacity_type="OnDemand") == 6
    assert total(m, "kubatch_job_interruptions_total", queue=q) == 0

    # Histograms: one wait observation per job that started, one run observation per job
    # that finished after running; counts and +Inf buckets agree.
    for hist in ("kubatch_job_wait_seconds", "kubatch_job_run_seconds"):
        count = value(m, f"{hist}_count", queue=q)
        assert count == len(started) == 5, (hist, count, started)
        assert value(m, f"{hist}_bucket", queue=q, le="+Inf") == count
        assert (value(m, f"{hist}_sum", queue=q) or 0) >= 0
    # Simulated runs last ~1s each: every run lands well under the 60s bucket.
    assert value(m, "kubatch_job_run_seconds_bucket", queue=q, le="60.0") == 5

    # Jobs per phase gauge: all six are terminal now.
    assert value(m, "kubatch_jobs", queue=q, phase="Succeeded") == 4
    assert value(m, "kubatch_jobs", queue=q, phase="Failed") == 2
    for phase in ("Submitted", "Pending", "Runnable", "Starting", "Running"):
        assert value(m, "kubatch_jobs", queue=q, phase=phase) == 0, phase

    # CE gauges.
    assert value(m, "kubatch_compute_environment_allocated_vcpus", compute_environment=ce) == 0
    assert value(m, "kubatch_compute_environment_max_vcpus", compute_environment=ce) == MAX_VCPUS
    assert value(m, "kubatch_compute_environment_desired_vcpus", compute_environment=ce) is not None
    capacity = value(m, "kubatch_compute_environment_capacity_vcpus", compute_environment=ce)
    assert capacity is not None
    assert 0 <= capacity <= MAX_VCPUS
    assert (
        value(
            m,
            "kubatch_compute_environment_info",
            compute_environment=ce,
            capacity_type="OnDemand",
            state="Enabled",
        )
        == 1
    )

    # API writes (shared across tests, so only a lower bound): at least our 6 Job creates
    # (whatever the verb label says, see test_api_write_verbs_are_kubernetes_verbs) and the
    # status patches of our six BatchJobs.
    assert total(m, "kubatch_api_writes_total", resource="jobs") >= 6
    assert total(m, "kubatch_api_writes_total", verb="patch", resource="batchjobs/status") >= 6
    # The scheduler ran and admitted.
    assert total(m, "kubatch_scheduler_cycles_total") > 0
    assert total(m, "kubatch_scheduler_decisions_total", type="Admit") >= 6
    assert total(m, "kubatch_scheduler_cycle_duration_seconds_count") > 0

    # (c) Argo CD health of the real objects this run left behind.
    for name in ok:
        bj = stack.get("batchjob", name, ns)
        assert bj is not None
        assert argo_health("BatchJob", bj)[0] == "Healthy", (name, bj["status"])
    for name in ("flaky", "after-flaky"):
        bj = stack.get("batchjob", name, ns)
        assert bj is not None
        status, message = argo_health("BatchJob", bj)
        assert status == "Degraded", (name, status, message)
        assert bj["status"]["reason"] in message
    queue_obj = stack.get("jobqueue", q)
    ce_obj = stack.get("computeenvironment", ce)
    assert queue_obj is not None
    assert ce_obj is not None
    assert argo_health("JobQueue", queue_obj)[0] == "Healthy", queue_obj.get("status")
    assert argo_health("ComputeEnvironment", ce_obj)[0] == "Healthy", ce_obj.get("status")
    for name in ("ok", "flaky"):
        defn = stack.get("jobdefinition", name, ns)
        assert defn is not None
        assert argo_health("JobDefinition", defn)[0] == "Healthy", defn.get("status")

    # Disabling the queue is "Suspended" to Argo CD once kubatch observed it.
    stack.kubectl("patch", "jobqueue", q, "--type=merge", "-p", '{"spec":{"state":"Disabled"}}')
    disabled = stack.get("jobqueue", q)
    assert disabled is not None
    assert argo_health("JobQueue", disabled)[0] == "Suspended"
    # A BatchJob kubatch has not seen yet (no status) is Progressing.
    fresh = make_job("fresh", q, "ok")
    fresh["metadata"].update(namespace=ns, generation=1)
    assert argo_health("BatchJob", fresh)[0] == "Progressing"


def test_api_write_verbs_are_kubernetes_verbs(stack: Stack, namespace: str) -> None:
    ns = namespace
    ce, q = f"{ns}-ce", f"{ns}-q"
    stack.apply([make_ce(ce, max_vcpus=2), make_queue(q, [ce])])
    stack.apply([make_definition("ok", duration=0.5, cpu="250m"), make_job("one", q, "ok")], ns)
    assert stack.wait_phase(ns, "one")["status"]["phase"] == "Succeeded"
    m = samples(stack.metrics())
    verbs = {lab["verb"] for n, lab, _ in m if n == "kubatch_api_writes_total"}
    assert verbs <= {"create", "update", "patch", "delete"}, verbs
    assert total(m, "kubatch_api_writes_total", verb="create", resource="jobs") >= 1
