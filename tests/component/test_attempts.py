"""What kubatch's Jobs and pods say about attempts: timeouts from the attempt's start,
interruptions, Job verdicts without a pod, cost, and a deleted compute environment."""

from __future__ import annotations

import pytest

from kubatch.adapters.kube import JOBS, NODES, PODS
from tests.component.conftest import (
    Harness,
    basic,
    make_ce,
    make_definition,
    make_job,
    make_node,
    make_queue,
)


async def test_timeout_counts_from_the_attempts_start(h: Harness) -> None:
    basic(h)
    h.apply(make_job("t", timeout={"attemptDurationSeconds": 60}))
    await h.cycle()
    await h.cycle(advance=300)  # waiting for a node does not count
    assert h.status("t")["phase"] == "Starting"
    h.start_pods()
    await h.cycle(advance=1)
    await h.cycle(advance=30)
    assert h.status("t")["phase"] == "Running"
    await h.cycle(advance=31)
    st = h.status("t")
    assert (st["phase"], st["reason"]) == ("Failed", "AttemptTimeout")
    assert h.k8s_jobs() == []  # the attempt was stopped
    assert st["attempts"][0]["reason"] == "DeadlineExceeded"


async def test_reclaimed_node_is_an_interruption_not_a_failure(h: Harness) -> None:
    basic(h)
    h.apply(make_job("s", retryStrategy={"attempts": 1}))
    await h.cycle()
    h.start_pods(node="spot-1")
    await h.cycle()
    pod = h.pod_of(h.job_name("s"))
    h.kube.remove(PODS, pod["metadata"]["name"], "ns")  # the node took it away
    await h.cycle()
    st = h.status("s")
    assert st["phase"] == "Starting"  # retried at once although attempts is 1
    assert st["attempts"][0]["interrupted"] is True
    assert "was deleted" in st["attempts"][0]["statusReason"]
    assert [e["reason"] for e in h.events("Interrupted")] == ["Interrupted"]


@pytest.mark.parametrize(("budget", "phase"), [(0, "Failed"), (1, "Starting")])
async def test_interruption_budget_is_configurable(h: Harness, budget: int, phase: str) -> None:
    basic(h)
    h.apply(make_definition("d", interruptionBudget=budget), make_job("s"))
    await h.cycle()
    h.start_pods()
    await h.cycle()
    h.kube.remove(PODS, h.pod_of(h.job_name("s"))["metadata"]["name"], "ns")
    await h.cycle()
    assert h.status("s")["phase"] == phase


async def test_job_verdict_decides_when_the_pod_is_gone(h: Harness) -> None:
    basic(h)
    h.apply(make_job("v"))
    await h.cycle()
    job = h.kube.get_object(JOBS, h.job_name("v"), "ns")
    assert job is not None
    job["status"] = {"conditions": [{"type": "Complete", "status": "True"}]}
    h.kube.put(JOBS, job)
    await h.cycle()
    assert h.status("v")["phase"] == "Starting"  # grace: the pod may still report
    await h.cycle(advance=5)
    assert h.status("v")["phase"] == "Succeeded"


async def test_cost_comes_from_the_catalogue_without_a_price_annotation(h: Harness) -> None:
    basic(h)
    h.apply(make_node("real-1", cpu="4", instance_type="m5.xlarge"))  # on-demand $0.192/h
    h.apply(make_job("c", overrides={"resources": {"requests": {"cpu": "2"}}}))
    await h.cycle()
    h.start_pods(node="real-1")
    await h.cycle()
    h.finish_pod(h.job_name("c"), run_seconds=3600)
    await h.cycle()
    st = h.status("c")
    assert st["attempts"][0]["cost"] == pytest.approx(0.096, abs=1e-6)  # half the node, 1 h
    assert st["cost"] == pytest.approx(0.096, abs=1e-6)


async def test_deleted_ce_stops_its_attempts_and_they_run_elsewhere(h: Harness) -> None:
    h.apply(make_ce("a"), make_ce("b"), make_queue(ces=("a", "b")), make_definition())
    h.apply(make_job("x", retryStrategy={"attempts": 1}))
    await h.cycle()
    assert h.status("x")["computeEnvironment"] == "a"
    h.start_pods()
    await h.cycle()
    h.delete("ComputeEnvironment", "a", None)
    await h.cycle()
    await h.cycle()
    st = h.status("x")
    assert st["phase"] == "Starting"
    assert st["computeEnvironment"] == "b"
    assert st["attempts"][0]["interrupted"] is True  # not counted against attempts: 1


async def test_a_ce_deleted_and_back_before_its_attempts_ended_still_retries_them(
    h: Harness,
) -> None:
    h.apply(make_ce("a"), make_ce("b"), make_queue(ces=("a", "b")), make_definition())
    h.apply(make_job("x", retryStrategy={"attempts": 1}))
    await h.cycle()
    h.start_pods()
    await h.cycle()
    h.kube.hold()  # the attempt's end is seen only after the CE is back
    h.delete("ComputeEnvironment", "a", None)
    h.kube.deliver()
    h.kube.hold()
    await h.cycle()  # its attempt is stopped
    h.apply(make_ce("a"))
    h.kube.deliver()
    await h.cycle(2)
    st = h.status("x")
    assert st["phase"] in ("Runnable", "Starting"), st
    assert st["attempts"][0]["interrupted"] is True


async def test_node_removed_while_operator_down(h: Harness) -> None:
    basic(h)
    h.apply(make_node("n1"), make_job("a"))
    await h.cycle()
    h.start_pods(node="n1")
    await h.cycle()
    await h.stop()
    h.kube.remove(PODS, h.pod_of(h.job_name("a"))["metadata"]["name"], "ns")
    h.kube.remove(NODES, "n1")
    job = h.kube.get_object(JOBS, h.job_name("a"), "ns")
    assert job is not None
    job["status"] = {"conditions": [{"type": "Failed", "status": "True",
                                     "reason": "BackoffLimitExceeded"}]}  # fmt: skip
    h.kube.put(JOBS, job)
    await h.restart()
    await h.cycle(advance=5)
    await h.cycle()
    st = h.status("a")
    assert st["phase"] == "Failed"
    assert "its Job failed" in st["attempts"][0]["statusReason"]
