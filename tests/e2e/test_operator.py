"""The operator end to end: real control plane, simulated pools, real Job controller and
scheduler. Each test builds its own compute environments and queues (named after its
namespace) so that tests do not share capacity.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from tests.e2e.conftest import Stack
from tests.e2e.factories import make_ce, make_definition, make_job, make_queue

pytestmark = pytest.mark.timeout(300)


def status(bj: dict[str, Any]) -> dict[str, Any]:
    s: dict[str, Any] = bj.get("status") or {}
    return s


def setup_pool(
    stack: Stack, ns: str, *, max_vcpus: int = 16, capacity_type: str = "OnDemand", **q: Any
) -> tuple[str, str]:
    ce, queue = f"{ns}-ce", f"{ns}-q"
    stack.apply([make_ce(ce, max_vcpus=max_vcpus, capacity_type=capacity_type),
                 make_queue(queue, [ce], **q)])  # fmt: skip
    return ce, queue


def k8s_jobs(stack: Stack, ns: str, batchjob: str) -> list[dict[str, Any]]:
    return stack.list("jobs", ns, "-l", f"kubatch.io/batchjob={batchjob}")


def test_single_job_with_parameters(stack: Stack, namespace: str) -> None:
    ns = namespace
    ce, q = setup_pool(stack, ns)
    stack.apply(
        [
            make_definition(
                "align", command=["align", "--sample", "Ref::sample", "--ref", "Ref::genome"],
                parameters={"sample": "default-sample", "genome": "hg38"},
            ),
            make_job("one", q, "align", parameters={"sample": "S42"}),
        ],
        ns,
    )  # fmt: skip
    bj = stack.wait_phase(ns, "one")
    st = status(bj)
    assert st["phase"] == "Succeeded", st
    assert st["computeEnvironment"] == ce
    assert len(st["attempts"]) == 1
    att = st["attempts"][0]
    assert att["exitCode"] == 0
    assert att["nodeName"].startswith("sim-")
    assert att["computeEnvironment"] == ce
    assert st["jobDefinition"]["name"] == "align"
    assert {c["type"]: c["status"] for c in st["conditions"]}["Ready"] == "True"
    jobs = k8s_jobs(stack, ns, "one")
    assert len(jobs) == 1
    job = jobs[0]
    assert job["metadata"]["name"] == att["jobName"]
    assert job["spec"]["backoffLimit"] == 0
    assert job["metadata"]["ownerReferences"][0]["kind"] == "BatchJob"
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["align", "--sample", "S42", "--ref", "hg38"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["AWS_BATCH_JOB_ID"] == env["KUBATCH_JOB_ID"] == f"{ns}/one"
    assert env["AWS_BATCH_JOB_ATTEMPT"] == "1"
    assert env["AWS_BATCH_JQ_NAME"] == q
    assert env["AWS_BATCH_CE_NAME"] == ce
    assert job["spec"]["template"]["spec"]["nodeSelector"] == {"kubatch.io/compute-environment": ce}
    # Deleting the BatchJob removes its Kubernetes Jobs (garbage collector, ownerReference).
    stack.kubectl("delete", "batchjob", "one", namespace=ns)
    stack.wait("the Job to be collected", lambda: not k8s_jobs(stack, ns, "one"), timeout=60)


def test_array_respects_parallelism(stack: Stack, namespace: str) -> None:
    ns = namespace
    _, q = setup_pool(stack, ns)
    stack.apply([make_definition("render", duration=2, cpu="500m"),
                 make_job("frames", q, "render",
                          arrayProperties={"size": 8, "parallelism": 3})], ns)  # fmt: skip
    peak = 0
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        pods = stack.list("pods", ns, "-l", "kubatch.io/batchjob=frames")
        active = [p for p in pods if p["status"].get("phase") in ("Pending", "Running")]
        peak = max(peak, len(active))
        bj = stack.get("batchjob", "frames", ns) or {}
        if status(bj).get("phase") in ("Succeeded", "Failed"):
            break
        time.sleep(0.3)
    st = status(stack.wait_phase(ns, "frames"))
    assert st["phase"] == "Succeeded", st
    assert st["arrayStatusSummary"]["succeeded"] == 8
    assert st["arrayStatusSummary"]["size"] == 8
    assert 1 <= peak <= 3, f"{peak} children ran at once with parallelism 3"
    indexes = sorted(int(j["metadata"]["labels"]["kubatch.io/array-index"])
                     for j in k8s_jobs(stack, ns, "frames"))  # fmt: skip
    assert indexes == list(range(8))


def _times(stack: Stack, ns: str, name: str) -> dict[int, tuple[float, float]]:
    """Array index -> (Job created, Job completed) as epoch seconds."""
    from kubatch.timefmt import parse_time

    out = {}
    for j in k8s_jobs(stack, ns, name):
        idx = int(j["metadata"]["labels"]["kubatch.io/array-index"])
        created = parse_time(j["metadata"]["creationTimestamp"]) or 0.0
        done = parse_time((j.get("status") or {}).get("completionTime")) or 0.0
        out[idx] = (created, done)
    return out


def test_n_to_n_and_sequential(stack: Stack, namespace: str) -> None:
    ns = namespace
    _, q = setup_pool(stack, ns)
    stack.apply(
        [
            make_definition("step", duration=1, cpu="500m"),
            make_job("a", q, "step", arrayProperties={"size": 3}),
            make_job("b", q, "step", arrayProperties={"size": 3},
                     dependsOn=[{"jobName": "a", "type": "N_TO_N"}]),
            make_job("c", q, "step", arrayProperties={"size": 3},
                     dependsOn=[{"type": "SEQUENTIAL"}]),
        ],
        ns,
    )  # fmt: skip
    for name in ("a", "b", "c"):
        assert status(stack.wait_phase(ns, name))["phase"] == "Succeeded"
    a, b, c = (_times(stack, ns, n) for n in ("a", "b", "c"))
    for i in range(3):
        assert b[i][0] >= a[i][1], f"b[{i}] was created before a[{i}] finished"
    for i in range(1, 3):
        assert c[i][0] >= c[i - 1][1], f"c[{i}] started before c[{i - 1}] finished"


def test_dependency_conditions_and_failure_propagation(stack: Stack, namespace: str) -> None:
    ns = namespace
    _, q = setup_pool(stack, ns)
    stack.apply(
        [
            make_definition("ok", duration=1, cpu="250m"),
            make_definition("bad", duration=1, exit_code=1, cpu="250m"),
            make_job("import", q, "bad"),
            make_job("transform", q, "ok", dependsOn=[{"jobName": "import"}]),
            make_job("publish", q, "ok", dependsOn=[{"jobName": "transform"}]),
            make_job("cleanup", q, "ok",
                     dependsOn=[{"jobName": "import", "condition": "Failed"}]),
            make_job("report", q, "ok",
                     dependsOn=[{"jobName": "import", "condition": "Completed"}]),
        ],
        ns,
    )  # fmt: skip
    assert status(stack.wait_phase(ns, "import"))["phase"] == "Failed"
    for name in ("transform", "publish"):
        st = status(stack.wait_phase(ns, name))
        assert (st["phase"], st["reason"]) == ("Failed", "DependencyFailed"), st
        assert not k8s_jobs(stack, ns, name), "a job whose dependency failed never runs"
    for name in ("cleanup", "report"):
        assert status(stack.wait_phase(ns, name))["phase"] == "Succeeded", name


def test_evaluate_on_exit_retry_and_exit(stack: Stack, namespace: str) -> None:
    ns = namespace
    _, q = setup_pool(stack, ns)
    rules = [{"onExitCode": "2", "action": "EXIT"}, {"onExitCode": "1", "action": "retry"}]
    stack.apply(
        [
            make_definition("flaky", duration=1, exit_code=1, cpu="250m",
                            retry={"attempts": 3, "evaluateOnExit": rules}),
            make_definition("broken", duration=1, exit_code=2, cpu="250m",
                            retry={"attempts": 3, "evaluateOnExit": rules}),
            make_job("retried", q, "flaky"),
            make_job("exited", q, "broken"),
        ],
        ns,
    )  # fmt: skip
    retried = status(stack.wait_phase(ns, "retried"))
    assert retried["phase"] == "Failed"
    assert [a["exitCode"] for a in retried["attempts"]] == [1, 1, 1]
    assert len(k8s_jobs(stack, ns, "retried")) == 3, "one Kubernetes Job per attempt"
    exited = status(stack.wait_phase(ns, "exited"))
    assert exited["phase"] == "Failed"
    assert [a["exitCode"] for a in exited["attempts"]] == [2]
    events = stack.list("events", ns, "--field-selector", "involvedObject.name=retried")
    assert any(e["reason"] == "Retrying" for e in events), [e["reason"] for e in events]


def test_oom_is_reported(stack: Stack, namespace: str) -> None:
    ns = namespace
    _, q = setup_pool(stack, ns)
    stack.apply([make_definition("hungry", oom=True, cpu="250m"),
                 make_job("oom", q, "hungry")], ns)  # fmt: skip
    st = status(stack.wait_phase(ns, "oom"))
    assert st["phase"] == "Failed"
    att = st["attempts"][-1]
    assert (att["exitCode"], att["reason"]) == (137, "OOMKilled"), att


def test_fail_fast_when_no_compute_environment_can_fit(stack: Stack, namespace: str) -> None:
    ns = namespace
    _, q = setup_pool(stack, ns, max_vcpus=8)
    stack.apply([make_definition("huge", cpu="64"), make_job("big", q, "huge")], ns)
    st = status(stack.wait_phase(ns, "big", timeout=30))
    assert (st["phase"], st["reason"]) == ("Failed", "NoComputeEnvironmentCanFit"), st
    assert "8" in st["message"], st["message"]
    assert not k8s_jobs(stack, ns, "big")
    events = stack.list("events", ns, "--field-selector", "involvedObject.name=big")
    assert any(e["type"] == "Warning" for e in events)


def test_terminate_queued_and_running(stack: Stack, namespace: str) -> None:
    ns = namespace
    ce, q = f"{ns}-ce", f"{ns}-q"
    stack.apply([make_ce(ce), make_queue(q, [ce]), make_queue(f"{q}-off", [ce], state="Disabled")])
    stack.apply([make_definition("long", duration=300, cpu="250m"),
                 make_job("queued", f"{q}-off", "long"), make_job("running", q, "long")],
                ns)  # fmt: skip
    queued = status(stack.wait_phase(ns, "queued", ("Runnable",), timeout=30))
    assert queued["reason"] == "QueueDisabled"
    stack.wait_phase(ns, "running", ("Running",), timeout=60)
    patch = json.dumps({"spec": {"terminate": {"reason": "operator asked"}}})
    for name in ("queued", "running"):
        stack.kubectl("patch", "batchjob", name, "--type=merge", "-p", patch, namespace=ns)
    for name in ("queued", "running"):
        st = status(stack.wait_phase(ns, name, timeout=60))
        assert (st["phase"], st["reason"]) == ("Failed", "Terminated"), st
    assert not k8s_jobs(stack, ns, "queued")
    stack.wait("the running attempt's Job to be deleted",
               lambda: not k8s_jobs(stack, ns, "running"), timeout=60)  # fmt: skip


def test_priority_between_queues_sharing_a_ce(stack: Stack, namespace: str) -> None:
    ns = namespace
    ce = f"{ns}-ce"
    stack.apply([make_ce(ce, max_vcpus=2), make_queue(f"{ns}-low", [ce], priority=1),
                 make_queue(f"{ns}-high", [ce], priority=100)])  # fmt: skip
    stack.apply([make_definition("work", duration=3, cpu="1"),
                 make_job("blocker-1", f"{ns}-low", "work"),
                 make_job("blocker-2", f"{ns}-low", "work")], ns)  # fmt: skip
    stack.wait_phase(ns, "blocker-1", ("Starting", "Running"), timeout=30)
    stack.wait_phase(ns, "blocker-2", ("Starting", "Running"), timeout=30)
    stack.apply([make_job(f"low-{i}", f"{ns}-low", "work") for i in range(3)], ns)
    time.sleep(1.0)
    stack.apply([make_job(f"high-{i}", f"{ns}-high", "work") for i in range(2)], ns)
    names = [f"low-{i}" for i in range(3)] + [f"high-{i}" for i in range(2)]
    started: dict[str, float] = {}
    from kubatch.timefmt import parse_time

    for name in names:
        st = status(stack.wait_phase(ns, name, timeout=120))
        assert st["phase"] == "Succeeded"
        started[name] = parse_time(st["attempts"][0]["startedAt"]) or 0.0
    assert max(started["high-0"], started["high-1"]) <= min(
        started[f"low-{i}"] for i in range(3)
    ), f"a low-priority job started before a waiting high-priority one: {started}"


def test_max_vcpus_never_exceeded(stack: Stack, namespace: str) -> None:
    ns = namespace
    _, q = setup_pool(stack, ns, max_vcpus=3)
    stack.apply([make_definition("w", duration=1, cpu="1")]
                + [make_job(f"j{i}", q, "w") for i in range(10)], ns)  # fmt: skip
    peak = 0.0
    deadline = time.monotonic() + 150
    while time.monotonic() < deadline:
        items = stack.list("batchjobs", ns)
        active = [b for b in items if status(b).get("phase") in ("Starting", "Running")]
        peak = max(peak, float(len(active)))
        if all(status(b).get("phase") in ("Succeeded", "Failed") for b in items):
            break
        time.sleep(0.25)
    items = stack.list("batchjobs", ns)
    assert all(status(b).get("phase") == "Succeeded" for b in items)
    assert peak <= 3, f"{peak} vCPUs admitted on a CE with maxvCpus 3"
    assert peak >= 2, "the CE was never used in parallel"
