"""Any input: one tenant's bad object never stops the others, never raises out of a handler,
and an edit of what cannot change is ignored and said so."""

from __future__ import annotations

import pytest

from kubatch.controller import convert
from tests.component.conftest import (
    Harness,
    basic,
    make_ce,
    make_definition,
    make_job,
    make_node,
    make_queue,
)

POISON_RULES = [{"onStatusReason": "Host*EC2", "action": "RETRY"}]


async def test_poison_job_fails_alone_and_others_flow(h: Harness) -> None:
    basic(h)
    h.apply(make_job("poison", retryStrategy={"attempts": 2, "evaluateOnExit": POISON_RULES}))
    h.apply(make_job("fine"))
    await h.cycle()
    st = h.status("poison")
    assert (st["phase"], st["reason"]) == ("Failed", "InvalidSpec")
    assert "evaluateOnExit[0].onStatusReason" in st["message"]
    assert "only allowed at the end" in st["message"]
    assert h.status("fine")["phase"] == "Starting"
    assert h.handler_errors() == 0


async def test_poison_definition_is_not_ready_and_its_jobs_wait(h: Harness) -> None:
    h.apply(make_ce(), make_queue())
    h.apply(make_definition("bad", retryStrategy={"attempts": 2, "evaluateOnExit": [
        {"onReason": "OOM*Killed", "action": "Exit"}]}))  # fmt: skip
    h.apply(make_job("j", definition="bad"))
    await h.cycle(3)
    ready = {c["type"]: c for c in h.obj_status("JobDefinition", "bad", "ns")["conditions"]}
    assert (ready["Ready"]["status"], ready["Ready"]["reason"]) == ("False", "InvalidSpec")
    st = h.status("j")
    assert (st["phase"], st["reason"]) == ("Submitted", "JobDefinitionNotFound")
    assert "is invalid" in st["message"]
    h.apply(make_definition("bad"))  # fixed
    await h.cycle()
    assert h.status("j")["phase"] == "Starting"


async def test_an_unexpected_error_is_counted_never_raised(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    basic(h)
    real = convert.job_to_core

    def explode(job, rev):  # type: ignore[no-untyped-def]
        if job.metadata.name == "boom":
            raise RuntimeError("a bug")
        return real(job, rev)

    monkeypatch.setattr(convert, "job_to_core", explode)
    h.apply(make_job("boom"), make_job("fine"))
    await h.cycle()
    assert h.handler_errors() == 1
    assert h.status("fine")["phase"] == "Starting"


async def test_restart_with_poison_objects_rebuilds_and_admits(h: Harness) -> None:
    basic(h)
    h.apply(make_job("poison", retryStrategy={"attempts": 2, "evaluateOnExit": POISON_RULES}))
    bad_rule = {"onReason": "a*b", "action": "Exit"}
    h.apply(make_definition("bad", retryStrategy={"evaluateOnExit": [bad_rule]}))
    await h.cycle()
    await h.restart()
    await h.restart()
    h.apply(make_job("after"))
    await h.cycle()
    assert h.op.ready.is_set()
    assert h.status("after")["phase"] == "Starting"
    assert h.handler_errors() == 0


async def test_editing_the_queue_of_a_waiting_job_is_ignored_and_said(h: Harness) -> None:
    h.apply(make_ce("a", vcpus=1), make_ce("b", vcpus=8), make_definition())
    h.apply(make_queue("qa", ces=("a",)), make_queue("qb", ces=("b",)))
    h.apply(make_job("blocker", queue="qa"), make_job("w", queue="qa"))
    await h.cycle()
    assert h.status("w")["phase"] == "Runnable"
    h.apply(make_job("w", queue="qb"))  # an edit of an immutable field
    await h.cycle(3)
    st = h.status("w")
    assert st["phase"] == "Runnable"  # still waits on qa: the edit changed nothing
    conds = {c["type"]: c for c in st["conditions"]}
    assert conds["SpecChangeIgnored"]["status"] == "True"
    assert "spec.jobQueue cannot change" in conds["SpecChangeIgnored"]["message"]
    assert [e["reason"] for e in h.events("ImmutableFieldChanged")] == ["ImmutableFieldChanged"]
    counts = h.obj_status("JobQueue", "qb").get("jobCounts", {})
    assert all(v >= 0 for v in counts.values())
    assert counts.get("runnable", 0) == 0


async def test_parallelism_and_terminate_may_change(h: Harness) -> None:
    basic(h, vcpus=100)
    h.apply(make_job("arr", arrayProperties={"size": 6, "parallelism": 2}))
    await h.cycle()
    assert len(h.k8s_jobs()) == 2
    h.apply(make_job("arr", arrayProperties={"size": 6, "parallelism": 4}))
    await h.cycle()
    assert len(h.k8s_jobs()) == 4
    h.apply(make_job("arr", arrayProperties={"size": 6, "parallelism": 4},
                     terminate={"reason": "enough"}))  # fmt: skip
    await h.cycle()
    assert h.k8s_jobs() == []  # every running child stopped
    await h.cycle()
    st = h.status("arr")
    assert (st["phase"], st["reason"], st["message"]) == ("Failed", "Terminated", "enough")
    assert st["arrayStatusSummary"]["failed"] == 6


async def test_terminate_a_running_job(h: Harness) -> None:
    basic(h)
    h.apply(make_job("t"))
    await h.cycle()
    h.start_pods()
    await h.cycle()
    h.apply(make_job("t", terminate={"reason": "stop"}))
    await h.cycle()
    assert h.k8s_jobs() == []
    await h.cycle()
    st = h.status("t")
    assert (st["phase"], st["reason"], st["message"]) == ("Failed", "Terminated", "stop")


async def test_size_may_come_from_overrides_and_must_come_from_somewhere(h: Harness) -> None:
    h.apply(make_ce(), make_queue(), make_definition("nosize", cpu=None, mem=None))
    h.apply(make_job("sized", definition="nosize", overrides={"resources": {"requests": {
        "cpu": "2", "memory": "2Gi"}}}))  # fmt: skip
    h.apply(make_job("unsized", definition="nosize"))
    await h.cycle()
    assert h.status("sized")["phase"] == "Starting"
    st = h.status("unsized")
    assert (st["phase"], st["reason"]) == ("Failed", "InvalidSpec")
    assert "requests no cpu and memory" in st["message"]


async def test_unmanaged_ce_without_compute_resources(h: Harness) -> None:
    h.apply({"apiVersion": "kubatch.io/v1alpha1", "kind": "ComputeEnvironment",
             "metadata": {"name": "own"}, "spec": {"type": "Unmanaged"}})  # fmt: skip
    h.apply(make_queue(ces=("own",)), make_definition(), make_job("a"))
    await h.cycle()
    st = h.status("a")
    assert (st["phase"], st["reason"]) == ("Runnable", "InsufficientCapacity")  # no node yet
    h.apply(make_node("n1", cpu="4", ce="own"))
    await h.cycle()
    assert h.status("a")["phase"] == "Starting"


async def test_managed_ce_limited_to_one_instance_type_fails_what_never_fits(h: Harness) -> None:
    h.apply(make_ce(vcpus=64, computeResources={"maxvCpus": 64, "instanceTypes": ["m5.large"]}))
    h.apply(make_queue(), make_definition("big", cpu="32", mem="8Gi"))
    h.apply(make_definition("huge", cpu="1", mem="600Gi"), make_job("b", definition="big"))
    h.apply(make_job("m", definition="huge"))
    await h.cycle()
    for name, what in (("b", "32 vCPU > 2"), ("m", "600Gi memory > 8Gi")):
        st = h.status(name)
        assert (st["phase"], st["reason"]) == ("Failed", "NoComputeEnvironmentCanFit"), st
        assert what in st["message"]
