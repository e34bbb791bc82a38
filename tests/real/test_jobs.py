"""Real containers decide: exit codes, retries, OOM kills, timeouts, terminate, parameters.

Every job of this module is submitted at once (module fixture ``submitted``) so that the
slowest one (the 60 s attempt timeout, the shortest AWS allows) sets the wall time; each test
then waits for its own job. The operator runs in-cluster from the chart (``operator``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from tests.real.conftest import (
    BUSYBOX,
    Real,
    batch_job,
    definition,
    wait_for_token,
)

from kubatch.local import chart, node

pytestmark = pytest.mark.timeout(600)

SIM_ANNOTATION = "sim.kubatch.io/"
# sh as PID 1 ignores SIGTERM: trap it so that a stop takes effect at once, not after the
# 30 s grace period (the kubelet's SIGKILL).
SLEEP_UNTIL_TERM = 'echo {}; trap "exit 143" TERM; sleep 600 & wait'


@pytest.fixture(scope="module")
def submitted(real: Real, operator: chart.Installed) -> Iterator[str]:
    ns = f"r-jobs-{int(time.time()) % 100000}"
    real.kubectl("create", "namespace", ns)
    wait_for_token(real, ns)
    real.apply(
        [
            definition(
                "exit-code",
                'echo "exiting with Ref::code"; exit Ref::code',
                parameters={"code": "3"},
                retry={
                    "attempts": 3,
                    "evaluateOnExit": [
                        {"onExitCode": "3", "action": "EXIT"},
                        {"onExitCode": "*", "action": "RETRY"},
                    ],
                },
            ),
            definition(
                "second-time-lucky",
                'echo "attempt $AWS_BATCH_JOB_ATTEMPT"; '
                '[ "$AWS_BATCH_JOB_ATTEMPT" -ge 2 ] || exit 7',
                retry={
                    "attempts": 3,
                    "evaluateOnExit": [
                        {"onExitCode": "7", "action": "Retry"},
                        {"onExitCode": "*", "action": "Exit"},
                    ],
                },
            ),
            definition(
                "hog",
                "echo allocating; x=0123456789; while true; do x=$x$x; done",
                memory_limit="20Mi",
                retry={
                    "attempts": 2,
                    "evaluateOnExit": [{"onReason": "OOMKilled", "action": "Exit"}],
                },
            ),
            definition("sleeper", SLEEP_UNTIL_TERM.format("sleeping"), timeout=60),
            definition("long", SLEEP_UNTIL_TERM.format("started")),
            definition(
                "greet",
                'echo "greeting=Ref::greeting index=$AWS_BATCH_JOB_ARRAY_INDEX '
                'size=$AWS_BATCH_JOB_ARRAY_SIZE queue=$AWS_BATCH_JQ_NAME"',
                parameters={"greeting": "default"},
            ),
            batch_job("exit-3", "exit-code"),
            batch_job("retried", "second-time-lucky"),
            batch_job("oom", "hog"),
            batch_job("timeout", "sleeper"),
            batch_job("terminated", "long"),
            batch_job(
                "params",
                "greet",
                parameters={"greeting": "bonjour"},
                arrayProperties={"size": 3},
            ),
        ],
        namespace=ns,
    )
    try:
        yield ns
    finally:
        real.kubectl("delete", "namespace", ns, "--wait=false", check=False)


def attempts(bj: dict[str, Any]) -> list[dict[str, Any]]:
    return list((bj.get("status") or {}).get("attempts") or [])


def terminated_state(pod: dict[str, Any]) -> dict[str, Any]:
    (cs,) = pod["status"]["containerStatuses"]
    term: dict[str, Any] = cs["state"]["terminated"]
    return term


def assert_real(pod: dict[str, Any]) -> None:
    """The pod ran on the real node, from the local image, with no simulator annotation."""
    assert pod["spec"]["nodeName"] == node.NODE_NAME
    annotations = pod["metadata"].get("annotations") or {}
    assert not [k for k in annotations if k.startswith(SIM_ANNOTATION)], annotations
    (cs,) = pod["status"]["containerStatuses"]
    assert cs["image"] == BUSYBOX
    assert cs["containerID"].startswith("containerd://"), cs


def running_container(real: Real, namespace: str, job: str) -> str | None:
    """The containerd ID of the job's running container, if it runs."""
    for pod in real.pods_of(namespace, job):
        for cs in pod["status"].get("containerStatuses") or []:
            if "running" in cs["state"]:
                return str(cs["containerID"]).removeprefix("containerd://")
    return None


def test_attempt_duration_stops_a_real_sleep(real: Real, submitted: str) -> None:
    # First in the module: the 60 s deadline runs while the other jobs finish.
    cid: str = real.wait(
        "the sleeper to run", lambda: running_container(real, submitted, "timeout"), 120
    )
    assert cid in real.running_tasks(), "a real sleep runs in containerd"
    (pod,) = real.pods_of(submitted, "timeout")
    assert_real(pod)
    assert real.logs(submitted, pod["metadata"]["name"]).strip() == "sleeping"
    bj = real.wait_phase(submitted, "timeout", timeout=240)
    st = bj["status"]
    assert (st["phase"], st["reason"]) == ("Failed", "AttemptTimeout"), st
    (only,) = attempts(bj)
    # SEMANTICS §3: the timeout counts from the attempt's start (its container running, as
    # AWS): kubatch stops the attempt then (the pod's own deadline, timeout + 60 s, is only a
    # backstop), so it ran its full 60 s and not much more (a cycle and the watch's latency).
    ran = seconds(only["startedAt"], only["stoppedAt"])
    assert 60 <= ran <= 68, (ran, only)
    # kubatch deleted the attempt's Job; the kubelet stopped the container.
    real.wait("containerd to stop the sleeper", lambda: cid not in real.running_tasks(), 60)


def test_exit_code_3_ends_the_job_by_evaluate_on_exit(real: Real, submitted: str) -> None:
    bj = real.wait_phase(submitted, "exit-3")
    st = bj["status"]
    assert st["phase"] == "Failed", st
    (only,) = attempts(bj)  # EXIT on 3: no retry although 3 attempts are allowed
    assert only["exitCode"] == 3, only
    (pod,) = real.pods_of(submitted, "exit-3")
    assert_real(pod)
    assert terminated_state(pod)["exitCode"] == 3
    assert real.logs(submitted, pod["metadata"]["name"]).strip() == "exiting with 3"


def test_the_real_exit_code_decides_the_retry(real: Real, submitted: str) -> None:
    bj = real.wait_phase(submitted, "retried")
    st = bj["status"]
    assert st["phase"] == "Succeeded", st
    assert [a.get("exitCode") for a in attempts(bj)] == [7, 0], attempts(bj)
    pods = sorted(
        real.pods_of(submitted, "retried"),
        key=lambda p: p["metadata"]["labels"]["kubatch.io/attempt"],
    )
    assert [terminated_state(p)["exitCode"] for p in pods] == [7, 0]
    assert [real.logs(submitted, p["metadata"]["name"]).strip() for p in pods] == [
        "attempt 1",
        "attempt 2",
    ]
    for pod in pods:
        assert_real(pod)


def test_over_its_memory_limit_the_kernel_kills_it(real: Real, submitted: str) -> None:
    bj = real.wait_phase(submitted, "oom")
    st = bj["status"]
    assert st["phase"] == "Failed", st
    (only,) = attempts(bj)  # onReason OOMKilled -> Exit
    assert only["exitCode"] == 137, only
    assert only["reason"] == "OOMKilled", only
    (pod,) = real.pods_of(submitted, "oom")
    assert_real(pod)
    term = terminated_state(pod)  # written by the kubelet from containerd's OOM event
    assert (term["reason"], term["exitCode"]) == ("OOMKilled", 137), term
    limit = pod["spec"]["containers"][0]["resources"]["limits"]["memory"]
    assert limit == "20Mi"


def test_terminate_stops_a_running_container(real: Real, submitted: str) -> None:
    real.wait_phase(submitted, "terminated", ("Running",))
    cid: str = real.wait(
        "the container of 'terminated' to run",
        lambda: running_container(real, submitted, "terminated"),
        60,
    )
    assert cid in real.running_tasks()
    real.kubectl(
        "patch", "batchjob", "terminated", "--type=merge",
        "-p", json.dumps({"spec": {"terminate": {"reason": "stopped by the real tier"}}}),
        namespace=submitted,
    )  # fmt: skip
    bj = real.wait_phase(submitted, "terminated", timeout=90)
    assert bj["status"]["phase"] == "Failed", bj["status"]
    assert bj["status"]["reason"] == "Terminated", bj["status"]
    real.wait("containerd to stop the container", lambda: cid not in real.running_tasks(), 90)


def test_parameters_and_array_index_reach_the_container(real: Real, submitted: str) -> None:
    bj = real.wait_phase(submitted, "params")
    assert bj["status"]["phase"] == "Succeeded", bj["status"]
    lines = {}
    for pod in real.pods_of(submitted, "params"):
        assert_real(pod)
        index = pod["metadata"]["labels"]["kubatch.io/array-index"]
        lines[index] = real.logs(submitted, pod["metadata"]["name"]).strip()
    assert lines == {str(i): f"greeting=bonjour index={i} size=3 queue=real" for i in range(3)}, (
        lines
    )


def test_busybox_is_on_the_node_and_nothing_was_pulled(real: Real, submitted: str) -> None:
    real.wait_phase(submitted, "params")
    n = real.get("node", node.NODE_NAME)
    assert n is not None
    names = [name for image in n["status"].get("images") or [] for name in image["names"]]
    assert any("busybox" in name for name in names), names
    events = real.list("events", submitted)
    reasons = {e["reason"] for e in events}
    assert "Pulling" not in reasons, sorted(reasons)
    assert "Failed" not in reasons, sorted(reasons)
    assert "Pulled" in reasons  # "already present on machine"
    pulled = [e["message"] for e in events if e["reason"] == "Pulled"]
    assert all("already present on machine" in m for m in pulled), pulled


def seconds(start: str, stop: str) -> float:
    from datetime import datetime

    def parse(s: str) -> datetime:
        return datetime.fromisoformat(s.replace("Z", "+00:00"))

    return (parse(stop) - parse(start)).total_seconds()
