"""What a waiting job and a queue say about time and money: estimated start times from the
queue's admission rate, spending limits that make admissions wait (and never stop running
jobs), queue spend in status."""

from __future__ import annotations

from kubatch.timefmt import parse_time
from tests.component.conftest import (
    Harness,
    basic,
    make_ce,
    make_definition,
    make_job,
    make_node,
    make_queue,
)


async def test_a_waiting_job_gets_an_estimated_start_from_the_admission_rate(h: Harness) -> None:
    basic(h, vcpus=2)
    for i in range(4):
        h.apply(make_job(f"j{i}"))
    await h.cycle()
    st = h.status("j3")
    assert st["queuePosition"] == 2
    eta = parse_time(st["estimatedStartTime"])
    assert eta is not None
    # 2 admissions in the last 10 minutes: one every 300 s; position 2 -> about 600 s
    assert 500 <= eta - h.clock.now <= 700
    h.start_pods()
    await h.cycle()
    h.finish_pod(h.job_name("j0"))
    await h.cycle()
    assert "estimatedStartTime" not in h.status("j2")  # started: no estimate any more
    q = h.obj_status("JobQueue", "q")
    assert q["admissionsPerMinute"] > 0


async def test_spending_limit_makes_new_admissions_wait_and_says_until_when(h: Harness) -> None:
    h.apply(make_ce(vcpus=8), make_definition("d", cpu="4", mem="1Gi"))
    h.apply(make_queue(spendingLimit={"perHour": 0.1}))
    h.apply(make_node("m1", cpu="4", instance_type="m5.xlarge"))  # $0.192/h, the whole node
    h.apply(make_job("first"))
    await h.cycle()
    h.start_pods(node="m1")
    await h.cycle()
    await h.cycle(advance=1800)  # half an hour: $0.096 charged, below the limit
    h.apply(make_job("second"))
    await h.cycle()
    assert h.status("second")["phase"] == "Starting"
    h.start_pods(node="m1")
    await h.cycle(advance=600)  # both run: another $0.064 -> over $0.1 in the last hour
    h.apply(make_job("third"))
    await h.cycle(advance=3)
    st = h.status("third")
    assert (st["phase"], st["reason"]) == ("Runnable", "BudgetExceeded")
    assert "until 20" in st["message"]  # an RFC 3339 time
    assert h.status("first")["phase"] == "Running"  # running jobs are never stopped
    q = h.obj_status("JobQueue", "q")
    assert q["spend"]["lastHour"] > 0.1
    assert "blockedUntil" in q["spend"]
    assert [e["reason"] for e in h.events("BudgetExceeded")] == ["BudgetExceeded"]
    h.finish_pod(h.job_name("first"))
    h.finish_pod(h.job_name("second"))
    await h.cycle(advance=3700)  # an hour later the charges have aged out
    await h.cycle()
    assert h.status("third")["phase"] == "Starting"
    assert [e["reason"] for e in h.events("BudgetAvailable")] == ["BudgetAvailable"]


def _stuck_pod(h: Harness, job: str, status: dict[str, object]) -> None:
    h.start_pods(phase="Pending")
    pod = h.pod_of(h.job_name(job))
    pod["status"] = {"phase": "Pending", **status}
    h.kube.put(__import__("kubatch.adapters.kube", fromlist=["PODS"]).PODS, pod)


async def test_a_starting_job_says_why_its_pod_cannot_be_placed(h: Harness) -> None:
    basic(h)
    h.apply(make_job("u"))
    await h.cycle()
    _stuck_pod(h, "u", {"conditions": [{"type": "PodScheduled", "status": "False",
        "reason": "Unschedulable",
        "message": "0/3 nodes are available: 3 Insufficient example.com/fpga."}]})  # fmt: skip
    await h.cycle()
    st = h.status("u")
    assert (st["phase"], st["reason"]) == ("Starting", "Unschedulable")
    assert "3 Insufficient example.com/fpga" in st["message"]
    await h.cycle(advance=10_000)  # the scheduler may still place it: never ended for this
    assert h.status("u")["phase"] == "Starting"


async def test_an_image_that_cannot_be_pulled_ends_the_attempt_and_retries_decide(
    h: Harness,
) -> None:
    basic(h)
    h.apply(make_job("p", retryStrategy={"attempts": 2, "evaluateOnExit": [
        {"onReason": "CannotPullContainerError", "action": "Exit"}]}))  # fmt: skip
    await h.cycle()
    waiting = {"reason": "ErrImagePull", "message": "pull access denied for nope"}
    _stuck_pod(h, "p", {"containerStatuses": [{"name": "main", "image": "nope:1",
                                                "state": {"waiting": waiting}}]})  # fmt: skip
    await h.cycle()
    st = h.status("p")
    assert (st["phase"], st["reason"]) == ("Starting", "CannotPullContainerError")
    assert "pull access denied" in st["message"]
    await h.cycle(advance=590)
    assert h.status("p")["phase"] == "Starting"
    await h.cycle(advance=10)  # past timings.pull_timeout (600 s) since it was first seen
    await h.cycle()
    st = h.status("p")
    assert (st["phase"], st["reason"]) == ("Failed", "NonZeroExitCode")  # evaluateOnExit: Exit
    assert st["attempts"][0]["reason"] == "CannotPullContainerError"
    assert h.k8s_jobs() == []
