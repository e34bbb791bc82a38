"""Arrays as AWS runs them (issue #19), on the real plane with simulated pools: every child
runs to its end, the summary adds up at every sample, the parent is terminal only after its
last child; a SIGKILL mid-array loses and duplicates nothing; terminate and
maxFailedChildren stop an array; ``kubectl batch rerun --failed`` runs exactly the failed
indices with their original index values; children are visible with ``ls --array`` and
``why JOB:I``."""

from __future__ import annotations

import io
import time
from typing import Any

import pytest
from tests.e2e.conftest import Stack
from tests.e2e.factories import make_ce, make_definition, make_job, make_queue

from kubatch.plugin.cli import main as kubectl_batch

PHASES = ("submitted", "pending", "runnable", "starting", "running", "succeeded", "failed")


def status(obj: dict[str, Any]) -> dict[str, Any]:
    st: dict[str, Any] = obj.get("status") or {}
    return st


def plugin(stack: Stack, *argv: str) -> str:
    out = io.StringIO()
    code = kubectl_batch(["--kubeconfig", str(stack.plane.kubeconfig), *argv], out=out)
    assert code == 0, out.getvalue()
    return out.getvalue()


def follow_array(
    stack: Stack,
    ns: str,
    name: str,
    size: int,
    timeout: float,
    on_sample: Any = None,
    min_samples: int = 3,
) -> dict[str, Any]:
    """Sample the parent until it is terminal; every sample's summary must add up to the size
    and a terminal parent must show only finished children."""
    deadline = time.monotonic() + timeout
    samples = 0
    while time.monotonic() < deadline:
        obj = stack.get("batchjob", name, ns) or {}
        st = status(obj)
        summary = st.get("arrayStatusSummary")
        if summary:
            samples += 1
            assert sum(summary.get(p, 0) for p in PHASES) == size, summary
            if st.get("phase") in ("Succeeded", "Failed"):
                assert summary["succeeded"] + summary["failed"] == size, summary
                assert samples >= min_samples, "too few samples to say anything"
                return obj
        if on_sample is not None:
            on_sample(st)
        time.sleep(1.0)
    raise AssertionError(f"{ns}/{name} not terminal after {timeout}s: {status(obj)}")


def setup(stack: Stack, ns: str, vcpus: int = 64) -> str:
    ce, q = f"{ns}-ce", f"{ns}-q"
    itype = {4: "m5.xlarge", 8: "m5.2xlarge"}.get(vcpus, "m5.4xlarge")
    stack.apply([make_ce(ce, max_vcpus=vcpus, instance_types=(itype,)),
                 make_queue(q, [ce])])  # fmt: skip
    return q


@pytest.mark.timeout(900)
def test_two_thousand_children_every_one_runs_to_its_end(stack: Stack, namespace: str) -> None:
    ns = namespace
    q = setup(stack, ns)
    stack.apply([make_definition("shard", duration=1, cpu="500m", memory="256Mi",
                                 exit_code_by_index="7=3,1999=4")], ns)  # fmt: skip
    stack.apply(
        [make_job("big", q, "shard", arrayProperties={"size": 2000, "parallelism": 100})], ns
    )
    obj = follow_array(stack, ns, "big", 2000, timeout=700)
    st = status(obj)
    assert st["phase"] == "Failed"
    assert st["reason"] == "ArrayChildFailed"
    assert st["message"] == "2 of 2000 children failed: 7, 1999"
    assert (st["arrayStatusSummary"]["succeeded"], st["arrayStatusSummary"]["failed"]) == (1998, 2)
    # the parent became terminal only after its last child: no Kubernetes Job still running
    for job in stack.list("jobs", ns, "-l", "kubatch.io/batchjob=big"):
        assert (job.get("status") or {}).get("active", 0) == 0, job["metadata"]["name"]
    # children you can see: the failed ones, paged, and one explained
    failed = plugin(stack, "-n", ns, "ls", "--array", "big", "--phase", "Failed")
    rows = [line.split() for line in failed.splitlines()[1:]]
    assert [(r[0], r[1], r[3]) for r in rows] == [("7", "Failed", "3"), ("1999", "Failed", "4")]
    page = plugin(stack, "-n", ns, "ls", "--array", "big", "--limit", "10", "--offset", "1990")
    assert len(page.splitlines()) == 11
    why = plugin(stack, "-n", ns, "why", "big:7")
    assert "Phase:         Failed" in why
    assert "Last exit:     3" in why
    # re-run only what failed: exactly indices 7 and 1999, each as itself
    out = plugin(stack, "-n", ns, "rerun", "big", "--failed")
    assert "big-rerun-1 re-runs 2 failed child(ren) of big" in out
    rerun = follow_array(stack, ns, "big-rerun-1", 2, timeout=120, min_samples=1)
    assert status(rerun)["message"] == "2 of 2 children failed: 0, 1"  # they fail again
    seen = set()
    for job in stack.list("jobs", ns, "-l", "kubatch.io/batchjob=big-rerun-1"):
        env = {e["name"]: e["value"] for e in
               job["spec"]["template"]["spec"]["containers"][0]["env"]}  # fmt: skip
        assert env["KUBATCH_RERUN_OF"] == "big"
        seen.add(env["AWS_BATCH_JOB_ARRAY_INDEX"])
    assert seen == {"7", "1999"}


@pytest.mark.timeout(900)
def test_sigkill_mid_array_loses_and_duplicates_nothing(stack: Stack, namespace: str) -> None:
    ns = namespace
    q = setup(stack, ns)
    stack.apply([make_definition("shard", duration=2, cpu="500m", memory="256Mi",
                                 exit_code_by_index="11=5")], ns)  # fmt: skip
    stack.apply(
        [make_job("killed", q, "shard", arrayProperties={"size": 600, "parallelism": 60})], ns
    )
    kills: list[float] = []

    def chaos(st: dict[str, Any]) -> None:
        done = (st.get("arrayStatusSummary") or {}).get("succeeded", 0)
        if len(kills) < 2 and done >= 150 * (len(kills) + 1):
            stack.kill_operator()
            kills.append(time.monotonic())
            time.sleep(2)
            stack.start_operator()

    obj = follow_array(stack, ns, "killed", 600, timeout=700, on_sample=chaos)
    assert len(kills) == 2
    st = status(obj)
    assert st["message"] == "1 of 600 children failed: 11"
    jobs = stack.list("jobs", ns, "-l", "kubatch.io/batchjob=killed")
    per_attempt: dict[tuple[str, str], int] = {}
    for job in jobs:
        labels = job["metadata"]["labels"]
        key = (labels["kubatch.io/array-index"], labels["kubatch.io/attempt"])
        per_attempt[key] = per_attempt.get(key, 0) + 1
    assert max(per_attempt.values()) == 1  # no attempt has two Kubernetes Jobs
    assert {i for i, _ in per_attempt} == {str(i) for i in range(600)}  # every child ran
    assert all(a == "1" for _, a in per_attempt)  # and none ran twice


@pytest.mark.timeout(300)
def test_terminated_array_leaves_no_child_running_or_waiting(stack: Stack, namespace: str) -> None:
    ns = namespace
    q = setup(stack, ns, vcpus=8)
    stack.apply([make_definition("long", duration=600, cpu="1", memory="256Mi")], ns)
    stack.apply([make_job("stopme", q, "long", arrayProperties={"size": 40, "parallelism": 8})], ns)
    stack.wait("children running",
               lambda: (status(stack.get("batchjob", "stopme", ns) or {})
                        .get("arrayStatusSummary") or {}).get("running", 0) >= 4)  # fmt: skip
    stack.kubectl("patch", "batchjob", "stopme", "--type=merge", "-p",
                  '{"spec": {"terminate": {"reason": "enough"}}}', namespace=ns)  # fmt: skip
    obj = stack.wait_phase(ns, "stopme", timeout=120)
    st = status(obj)
    assert (st["phase"], st["reason"], st["message"]) == ("Failed", "Terminated", "enough")
    assert st["arrayStatusSummary"]["failed"] == 40
    stack.wait("every child's Job gone",
               lambda: not stack.list("jobs", ns, "-l", "kubatch.io/batchjob=stopme"))  # fmt: skip


@pytest.mark.timeout(300)
def test_max_failed_children_zero_stops_at_the_first_final_failure(
    stack: Stack, namespace: str
) -> None:
    ns = namespace
    q = setup(stack, ns, vcpus=4)
    stack.apply([make_definition("step", duration=2, cpu="1", memory="256Mi",
                                 exit_code_by_index="2=9")], ns)  # fmt: skip
    job = make_job("strict", q, "step", arrayProperties={"size": 50, "parallelism": 4})
    job["spec"]["arrayProperties"]["maxFailedChildren"] = 0
    stack.apply([job], ns)
    obj = stack.wait_phase(ns, "strict", timeout=120)
    st = status(obj)
    assert (st["phase"], st["reason"]) == ("Failed", "ArrayChildFailed")
    assert "maxFailedChildren=0" in st["message"]
    summary = st["arrayStatusSummary"]
    assert summary["succeeded"] < 10  # the rest never started
    assert summary["succeeded"] + summary["failed"] == 50
