"""API writes per job on each path (DESIGN: writes are the scarce resource)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from kubatch.adapters.kube import PODS
from kubatch.controller.settings import Settings
from kubatch.core.lifecycle import Phase
from tests.component.conftest import NS, Harness, basic, make_job


async def test_job_admitted_on_arrival_costs_one_create_and_three_patches(h: Harness) -> None:
    basic(h)
    h.apply(make_job("a"))
    await h.cycle()
    st = h.status("a")
    assert (st["phase"], st["reason"]) == ("Starting", "Admitted")
    assert st["jobDefinition"]["name"] == "d"  # the submission record rides with Starting
    assert "queuePosition" not in st
    h.start_pods()
    await h.cycle()
    assert h.status("a")["phase"] == "Running"
    h.finish_pod(h.job_name("a"))
    await h.cycle()
    st = h.status("a")
    assert (st["phase"], st["reason"]) == ("Succeeded", "Succeeded")
    assert st["attempts"][0]["exitCode"] == 0
    assert h.writes("a") == {"create": 1, "status": 3}


async def test_waiting_job_costs_one_more_patch_with_reason_and_position(h: Harness) -> None:
    basic(h, vcpus=1)
    h.apply(make_job("a"), make_job("b"))
    await h.cycle()
    st = h.status("b")
    assert (st["phase"], st["reason"], st["queuePosition"]) == (
        "Runnable",
        "InsufficientCapacity",
        1,
    )
    h.start_pods()
    await h.cycle()
    h.finish_pod(h.job_name("a"))
    await h.cycle()
    assert h.status("b")["phase"] == "Starting"
    assert "queuePosition" not in h.status("b")  # absent once it stops waiting
    h.start_pods()
    await h.cycle()
    h.finish_pod(h.job_name("b"))
    await h.cycle()
    assert h.status("b")["phase"] == "Succeeded"
    assert h.writes("b") == {"create": 1, "status": 4}


async def test_retry_path_writes_and_events(h: Harness) -> None:
    basic(h)
    h.apply(make_job("r", retryStrategy={"attempts": 2}))
    await h.cycle()
    h.start_pods()
    await h.cycle()
    h.finish_pod(h.job_name("r"), exit_code=1)
    await h.cycle()
    st = h.status("r")
    assert st["phase"] == "Starting"  # retried and admitted again in one cycle
    assert [a.get("exitCode") for a in st["attempts"]] == [1, None]
    h.start_pods()
    await h.cycle()
    h.finish_pod(h.job_name("r", attempt=2))
    await h.cycle()
    assert h.status("r")["phase"] == "Succeeded"
    w = h.writes("r")
    assert w["create"] == 2
    assert w["status"] <= 5
    assert w["event"] == 1  # one Retrying event


async def test_array_parent_status_stays_bounded_and_coalesced(h: Harness) -> None:
    basic(h, vcpus=100)
    h.apply(make_job("arr", arrayProperties={"size": 20}))
    await h.cycle()
    st = h.status("arr")
    assert st["arrayStatusSummary"]["starting"] == 20
    assert sum(v for k, v in st["arrayStatusSummary"].items() if k != "size") == 20
    h.start_pods()
    await h.cycle()
    for i in range(20):
        h.finish_pod(h.job_name("arr", index=i))
    await h.cycle()
    st = h.status("arr")
    assert st["phase"] == "Succeeded"
    assert st["arrayStatusSummary"]["succeeded"] == 20
    assert h.writes("arr")["create"] == 20
    assert h.writes("arr")["status"] <= 3
    assert "attempts" not in st  # bounded: children are not listed in the parent


async def test_invalid_job_costs_one_patch_and_one_event(h: Harness) -> None:
    basic(h)
    h.apply(make_job("bad", retryStrategy={"evaluateOnExit": [{"onReason": "a*b",
                                                                "action": "Retry"}]}))  # fmt: skip
    await h.cycle()
    st = h.status("bad")
    assert (st["phase"], st["reason"]) == ("Failed", "InvalidSpec")
    assert "spec.retryStrategy.evaluateOnExit[0].onReason" in st["message"]
    assert h.writes("bad") == {"status": 1, "event": 1}


async def held() -> Harness:
    """A harness with the operator's default Starting hold (5 s)."""
    harness = Harness(Settings())
    await harness.start()
    assert harness.settings.timings.starting_hold == 5.0
    return harness


async def test_a_pod_that_runs_within_the_hold_makes_starting_and_running_one_write() -> None:
    h = await held()
    try:
        basic(h, vcpus=1)
        h.apply(make_job("a"), make_job("b"))
        await h.cycle()
        assert "phase" not in h.status("a")  # admitted; its Starting waits for the pod
        assert h.k8s_jobs() != []  # ... but its Kubernetes Job exists at once
        assert h.status("b")["phase"] == "Runnable"  # a waiting job is never held
        h.start_pods()
        await h.cycle()
        st = h.status("a")
        assert st["phase"] == "Running"
        assert st["attempts"][0]["podName"]
        assert st["computeEnvironment"] == "ce"
        assert st["startedAt"]
        h.finish_pod(h.job_name("a"))
        await h.cycle()
        assert h.status("a")["phase"] == "Succeeded"
        assert h.writes("a") == {"create": 1, "status": 2}
        # b waited: Runnable, then its own Starting+Running as one write, then Succeeded
        await h.cycle()
        h.start_pods()
        await h.cycle()
        h.finish_pod(h.job_name("b"))
        await h.cycle()
        assert h.status("b")["phase"] == "Succeeded"
        assert h.writes("b") == {"create": 1, "status": 3}
    finally:
        await h.stop()


async def test_starting_is_written_once_the_hold_ends_or_at_once_with_a_reason() -> None:
    h = await held()
    try:
        basic(h)
        h.apply(make_job("slow"))
        await h.cycle(advance=1)
        await h.cycle(advance=1)
        assert "phase" not in h.status("slow")
        await h.cycle(advance=4)  # the hold (5 s) is over and the pod does not run yet
        assert (h.status("slow")["phase"], h.status("slow")["reason"]) == ("Starting", "Admitted")

        h.apply(make_job("stuck"))
        await h.cycle(advance=1)
        assert "phase" not in h.status("stuck")
        h.start_pods(phase="Pending")  # the scheduler cannot place it: say so now
        pod = h.pod_of(h.job_name("stuck"))
        pod["status"] = {"phase": "Pending", "conditions": [{
            "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
            "message": "0/3 nodes are available: 3 Insufficient cpu."}]}  # fmt: skip
        h.kube.put(PODS, pod)
        await h.cycle(advance=0.5)
        st = h.status("stuck")
        assert (st["phase"], st["reason"]) == ("Starting", "Unschedulable")
    finally:
        await h.stop()


async def test_a_retry_of_a_running_job_is_shown_at_once() -> None:
    h = await held()
    try:
        basic(h)
        h.apply(make_job("r", retryStrategy={"attempts": 2}))
        await h.cycle()
        h.start_pods()
        await h.cycle()
        assert h.status("r")["phase"] == "Running"
        h.finish_pod(h.job_name("r"), exit_code=1)
        await h.cycle()
        st = h.status("r")  # attempt 1 failed and attempt 2 is admitted: no hold
        assert st["phase"] == "Starting"
        assert [a.get("exitCode") for a in st["attempts"]] == [1, None]
    finally:
        await h.stop()


async def test_the_loop_creates_jobs_while_status_writes_are_slow(h: Harness) -> None:
    """The running loop: a slow status write (an API server under load) never delays the
    next admission's Kubernetes Job; the status follows once the write is through."""
    basic(h)
    patch = h.kube.patch
    slow = asyncio.Event()

    async def slow_status(*args: Any, **kw: Any) -> Any:
        if kw.get("status"):
            await slow.wait()
        return await patch(*args, **kw)

    h.kube.patch = slow_status  # type: ignore[method-assign]
    loop = asyncio.create_task(h.op.loop.run())
    try:
        h.apply(make_job("a"))
        await until(lambda: len(h.k8s_jobs()) == 1)
        h.start_pods()  # a's Running status is now stuck in a slow write
        await asyncio.sleep(0.5)
        h.apply(make_job("b"))
        await until(lambda: len(h.k8s_jobs()) == 2)  # not behind a's write
        assert "phase" not in h.status("a")
        slow.set()
        await until(lambda: h.status("a").get("phase") == "Running")
    finally:
        loop.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await loop


async def until(cond: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not cond():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_records_keep_no_copy_of_what_is_written_once(h: Harness) -> None:
    """The definition is written with a job's first phase and never compared again: no
    record keeps a copy of it (kilobytes per job at 100,000 jobs). Waiting jobs written in the
    same second share their condition objects; what is written is unchanged."""
    basic(h, vcpus=1)
    h.apply(*(make_job(f"j{i}") for i in range(5)))
    await h.cycle()
    recs = [h.op.jobs.get(f"{NS}/j{i}") for i in range(5)]
    assert all(r is not None for r in recs)
    for r in recs:
        assert r is not None
        assert "jobDefinition" not in r.written
        assert "conditions" not in r.written
        assert r.written["phase"] in ("Starting", "Runnable")
    waiting = [r for r in recs if r is not None and r.phase is Phase.RUNNABLE]
    assert len(waiting) == 4
    first = waiting[0].conditions
    assert [c["type"] for c in first][:2] == ["Ready", "Reconciling"]
    for r in waiting[1:]:
        assert all(a is b for a, b in zip(r.conditions, first, strict=True))
    for i in range(5):
        st = h.status(f"j{i}")
        assert st["jobDefinition"]["name"] == "d"
        assert {c["type"] for c in st["conditions"]} >= {"Ready", "Reconciling"}
    # A later write still goes out once, without the definition again.
    h.start_pods()
    await h.cycle()
    h.finish_pod(h.job_name("j0"))
    await h.cycle()
    assert h.status("j1")["phase"] == "Starting"
    assert h.writes("j1") == {"create": 1, "status": 2}
