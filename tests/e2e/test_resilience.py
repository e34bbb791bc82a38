"""Interruptions, timeouts and operator restarts, end to end."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from typing import Any

import pytest
from tests.e2e.conftest import Stack
from tests.e2e.factories import make_ce, make_definition, make_job, make_queue

from kubatch.adapters.kube import Kube, Resource


def status(bj: dict[str, Any] | None) -> dict[str, Any]:
    s: dict[str, Any] = (bj or {}).get("status") or {}
    return s


@pytest.mark.timeout(400)
def test_spot_reclaim_is_an_interruption_then_falls_back_to_on_demand(
    stack: Stack, namespace: str
) -> None:
    ns = namespace
    spot, od, q = f"{ns}-spot", f"{ns}-od", f"{ns}-q"
    stack.apply([make_ce(spot, capacity_type="Spot", max_vcpus=8), make_ce(od, max_vcpus=8),
                 make_queue(q, [spot, od])])  # fmt: skip
    # attempts: 1 -> a single burned attempt would fail the job.
    stack.apply([make_definition("long", duration=12, cpu="1", retry={"attempts": 1}),
                 make_job("genome", q, "long")], ns)  # fmt: skip
    reclaims = 0
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        st = status(stack.get("batchjob", "genome", ns))
        if st.get("phase") in ("Succeeded", "Failed"):
            break
        if st.get("phase") == "Running" and st.get("computeEnvironment") == spot and reclaims < 5:
            attempts_before = len(st.get("attempts") or [])
            stack.reclaim(spot, 1.0)
            reclaims += 1
            stack.wait(
                "the interrupted attempt to be recorded",
                lambda n=attempts_before: len(
                    status(stack.get("batchjob", "genome", ns)).get("attempts") or []
                ) > n or status(stack.get("batchjob", "genome", ns)).get("computeEnvironment")
                != spot,
                timeout=60,
            )  # fmt: skip
        time.sleep(0.5)
    st = status(stack.wait_phase(ns, "genome", timeout=120))
    attempts = st["attempts"]
    assert st["phase"] == "Succeeded", st
    assert reclaims >= 1
    interrupted = [a for a in attempts if a.get("interrupted")]
    assert len(interrupted) >= 1
    assert all(a.get("interrupted") for a in attempts[:-1]), attempts
    for a in interrupted:
        assert a["computeEnvironment"] == spot
        assert "node" in (a.get("statusReason") or ""), a
    assert attempts[-1]["computeEnvironment"] == od, "after the interruption budget: on-demand"
    # The default budget: 3 interruptions are retried where they happened; the 4th falls back.
    assert len(interrupted) == 4, attempts
    events = stack.list("events", ns, "--field-selector", "involvedObject.name=genome")
    assert any(e["reason"] == "Interrupted" for e in events)


@pytest.mark.timeout(300)
def test_attempt_timeout(stack: Stack, namespace: str) -> None:
    ns = namespace
    ce, q = f"{ns}-ce", f"{ns}-q"
    stack.apply([make_ce(ce), make_queue(q, [ce])])
    stack.apply([make_definition("slow", duration=600, cpu="500m", timeout=60),
                 make_job("stuck", q, "slow")], ns)  # fmt: skip
    st = status(stack.wait_phase(ns, "stuck", timeout=200))
    assert (st["phase"], st["reason"]) == ("Failed", "AttemptTimeout"), st
    [attempt] = st["attempts"]
    # SEMANTICS §3: the timeout counts from the attempt's start (its container running), as
    # AWS does — kubatch stops the attempt itself; the Job has no deadline of its own (it
    # would count the time waiting for a node), the pod's is a backstop with a grace.
    ran = _ts(attempt["stoppedAt"]) - _ts(attempt["startedAt"])
    assert 59 <= ran <= 75, attempt
    assert attempt["reason"] == "DeadlineExceeded"
    stack.wait("the attempt's Job deleted",
               lambda: not stack.list("jobs", ns, "-l", "kubatch.io/batchjob=stuck"))  # fmt: skip


@pytest.mark.timeout(900)
def test_restart_with_sigkill_loses_nothing_and_duplicates_nothing(
    stack: Stack, namespace: str
) -> None:
    ns = namespace
    ce, q = f"{ns}-ce", f"{ns}-q"
    stack.apply([make_ce(ce, max_vcpus=24, instance_types=("m5.2xlarge",)), make_queue(q, [ce])])
    retry = {"attempts": 2, "evaluateOnExit": [{"onExitCode": "1", "action": "Retry"}]}
    defs = [
        make_definition("ok", duration=1, cpu="500m"),
        make_definition("bad", duration=1, exit_code=2, cpu="500m"),
        make_definition("flaky", duration=1, exit_code=1, cpu="500m", retry=retry),
    ]
    expected: dict[str, str] = {}
    jobs = []
    for i in range(300):
        kind = "bad" if i % 25 == 0 else "flaky" if i % 30 == 1 else "ok"
        expected[f"j{i:03d}"] = "Succeeded" if kind == "ok" else "Failed"
        jobs.append(make_job(f"j{i:03d}", q, kind))
    stack.apply(defs, ns)
    t0 = time.monotonic()
    stack.apply(jobs[:150], ns)
    kills = 0
    # Submitting while no operator runs needs the webhook off (failurePolicy Fail: with one
    # replica down, the API server refuses kubatch objects until it is back).
    with stack.webhook_off():
        for moment, batch in ((2.0, jobs[150:]), (8.0, None), (16.0, None)):
            time.sleep(max(0.0, t0 + moment - time.monotonic()))
            stack.kill_operator()
            kills += 1
            if batch:
                stack.apply(batch, ns)  # submitted while the operator is down
            time.sleep(1.0)
            stack.start_operator()
    assert kills == 3

    def all_done() -> bool:
        items = stack.list("batchjobs", ns)
        return len(items) == 300 and all(
            status(b).get("phase") in ("Succeeded", "Failed") for b in items
        )

    try:
        stack.wait("all 300 jobs to finish", all_done, timeout=400, every=2)
    except AssertionError:
        left = Counter(
            (status(b).get("phase"), status(b).get("reason")) for b in stack.list("batchjobs", ns)
        )
        raise AssertionError(f"not all jobs finished: {dict(left)}") from None
    items = {b["metadata"]["name"]: b for b in stack.list("batchjobs", ns)}
    wrong = {n: status(b).get("phase") for n, b in items.items()
             if status(b).get("phase") != expected[n]}  # fmt: skip
    assert not wrong, f"jobs in the wrong terminal phase: {wrong}"
    k8s = stack.list("jobs", ns)
    labels = [j["metadata"]["labels"] for j in k8s]
    per_attempt = Counter((lb["kubatch.io/batchjob"], lb["kubatch.io/attempt"]) for lb in labels)
    assert max(per_attempt.values()) == 1, "an attempt got two Kubernetes Jobs"
    for name, bj in items.items():
        n_jobs = sum(1 for (b, _) in per_attempt if b == name)
        attempts = status(bj).get("attempts") or []
        assert n_jobs == len(attempts), f"{name}: {n_jobs} Jobs for {len(attempts)} attempts"
        if name.startswith("j") and expected[name] == "Failed" and int(name[1:]) % 30 == 1:
            assert len(attempts) == 2, f"{name}: retried once per its retryStrategy: {attempts}"


def _ts(value: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


QUOTAS = Resource("", "v1", "resourcequotas")


def refuse_jobs(stack: Stack, namespace: str) -> None:
    """A ResourceQuota that allows no Job in ``namespace``, with the status the quota
    controller would write (this plane does not run it; admission reads the status)."""
    hard = {"count/jobs.batch": "0"}
    quota = {"metadata": {"name": "no-jobs"}, "spec": {"hard": hard}}
    status = {"status": {"hard": hard, "used": {"count/jobs.batch": "0"}}}

    async def make() -> None:
        async with await Kube.from_environment(stack.processes.kubeconfig) as kube:
            await kube.create(QUOTAS, quota, namespace)
            await kube.patch(QUOTAS, "no-jobs", status, namespace, status=True)

    asyncio.run(make())


@pytest.mark.timeout(300)
def test_a_namespace_whose_quota_refuses_its_jobs_does_not_hold_another_tenants(
    stack: Stack, namespace: str
) -> None:
    """Tenant a's ResourceQuota refuses Jobs (the API server's quota admission: 403); its
    BatchJob, first in a queue whose pool holds one job, waits JobCreateFailed with a Warning
    Event while tenant b's job behind it runs; once the quota is gone, a's job runs too."""
    a, b = namespace, f"{namespace}-b"
    ce, q = f"{a}-one", f"{a}-q"
    stack.kubectl("create", "namespace", b)
    try:
        stack.apply([make_ce(ce, max_vcpus=2, instance_types=("m5.large",)),
                     make_queue(q, [ce])])  # fmt: skip
        refuse_jobs(stack, a)
        one = make_definition("one", duration=1, cpu="1500m", memory="1Gi")  # one at a time
        stack.apply([one, make_job("refused", q, "one")], a)

        def refused_status() -> dict[str, Any] | None:
            st = status(stack.get("batchjob", "refused", a))
            return st if st.get("reason") == "JobCreateFailed" else None

        refused = stack.wait("a's job to wait JobCreateFailed", refused_status, timeout=60)
        assert refused["phase"] == "Runnable"
        events = stack.kubectl("get", "events", "--field-selector", "reason=JobCreateFailed",
                               "-o", "json", namespace=a)  # fmt: skip
        messages = [e["message"] for e in json.loads(events.stdout)["items"]]
        assert any("quota" in m for m in messages), messages
        stack.apply([one, make_job("other", q, "one")], b)
        assert stack.wait_phase(b, "other", timeout=120)["status"]["phase"] == "Succeeded"
        # tried again with a backoff, not every cycle: a handful of Events in all
        events = stack.kubectl("get", "events", "--field-selector", "reason=JobCreateFailed",
                               "-o", "json", namespace=a)  # fmt: skip
        count = sum(int(e.get("count") or 1) for e in json.loads(events.stdout)["items"])
        assert 1 <= count <= 10, count
        assert status(stack.get("batchjob", "refused", a))["phase"] == "Runnable"
        stack.kubectl("delete", "resourcequota", "no-jobs", namespace=a)
        assert stack.wait_phase(a, "refused", timeout=120)["status"]["phase"] == "Succeeded"
    finally:
        stack.kubectl("delete", "namespace", b, "--wait=false", check=False)
