"""Any order: GitOps tools apply objects in no guaranteed order, and watch events of
different kinds race; the outcome never depends on it."""

from __future__ import annotations

import itertools

import pytest

from kubatch.adapters.kube import BATCHJOBS
from tests.component.conftest import (
    NS,
    Harness,
    basic,
    make_ce,
    make_definition,
    make_job,
    make_queue,
)


@pytest.mark.parametrize(
    "order",
    list(itertools.permutations(["ce", "queue", "definition", "job"])),
    ids="-".join,
)
async def test_every_apply_order_ends_succeeded(order: tuple[str, ...]) -> None:
    h = Harness()
    await h.start()
    try:
        objs = {"ce": make_ce(), "queue": make_queue(), "definition": make_definition(),
                "job": make_job("a")}  # fmt: skip
        for name in order:
            h.apply(objs[name])
            await h.cycle()
        await h.cycle()
        h.start_pods()
        await h.cycle()
        h.finish_pod(h.job_name("a"))
        await h.cycle()
        assert h.status("a")["phase"] == "Succeeded"
        assert h.handler_errors() == 0
    finally:
        await h.stop()


async def test_job_before_its_definition_waits_submitted_then_runs(h: Harness) -> None:
    h.apply(make_ce(), make_queue(), make_job("a", definition="later"))
    await h.cycle()
    st = h.status("a")
    assert (st["phase"], st["reason"]) == ("Submitted", "JobDefinitionNotFound")
    assert "'later'" in st["message"]
    h.apply(make_definition("later"))
    await h.cycle()
    assert h.status("a")["phase"] == "Starting"


async def test_job_before_its_queue_waits_submitted_then_runs(h: Harness) -> None:
    h.apply(make_ce(), make_definition(), make_job("a", queue="later"))
    await h.cycle()
    st = h.status("a")
    assert (st["phase"], st["reason"]) == ("Submitted", "JobQueueNotFound")
    h.apply(make_queue("later"))
    await h.cycle()
    assert h.status("a")["phase"] == "Starting"


async def test_queue_before_its_ce_is_not_ready_until_the_ce_appears(h: Harness) -> None:
    h.apply(make_queue(ces=("later",)), make_definition(), make_job("a"))
    await h.cycle()
    cond = {c["type"]: c for c in h.obj_status("JobQueue", "q")["conditions"]}
    assert (cond["Ready"]["status"], cond["Ready"]["reason"]) == (
        "False",
        "ComputeEnvironmentNotFound",
    )
    assert "later" in cond["Ready"]["message"]
    st = h.status("a")
    assert (st["phase"], st["reason"]) == ("Runnable", "ComputeEnvironmentNotFound")
    h.apply(make_ce("later"))
    await h.cycle(3)
    cond = {c["type"]: c for c in h.obj_status("JobQueue", "q")["conditions"]}
    assert cond["Ready"]["status"] == "True"
    assert h.status("a")["phase"] == "Starting"


async def test_dependent_applied_before_its_parent(h: Harness) -> None:
    basic(h)
    h.apply(make_job("child", dependsOn=[{"jobName": "parent"}]))
    await h.cycle()
    assert h.status("child")["reason"] == "WaitingForDependencies"
    h.apply(make_job("parent"))
    await h.cycle()
    h.start_pods()
    await h.cycle()
    h.finish_pod(h.job_name("parent"))
    await h.cycle()
    assert h.status("child")["phase"] == "Starting"


async def test_pod_events_delivered_in_reverse_order(h: Harness) -> None:
    """A late 'Running' event after the pod's final event changes nothing."""
    basic(h)
    h.apply(make_job("a"))
    await h.cycle()
    h.kube.hold()
    h.start_pods()
    h.finish_pod(h.job_name("a"), exit_code=0)
    assert h.kube.deliver(lambda events: list(reversed(events))) == 2
    await h.cycle()
    st = h.status("a")
    assert st["phase"] == "Succeeded"
    assert st["attempts"][0]["exitCode"] == 0


async def test_definition_and_job_in_one_apply_race_either_way(h: Harness) -> None:
    h.apply(make_ce(), make_queue())
    await h.cycle()
    h.kube.hold()
    h.apply(make_definition(), make_job("a"))
    h.kube.deliver(lambda events: list(reversed(events)))  # the job's event first
    await h.cycle()
    assert h.status("a")["phase"] == "Starting"


async def test_an_older_version_delivered_after_a_newer_one_changes_nothing(h: Harness) -> None:
    """After a start, kubatch's own watch may hand over an edit before kopf replays the list
    it took earlier: the older version must not undo the edit (the priority override here)."""
    basic(h, vcpus=1)
    h.apply(make_job("run"), make_job("a", schedulingPriorityOverride=1))
    await h.cycle()
    old = h.kube.get_object(BATCHJOBS, "a", NS)
    assert old is not None
    h.apply(make_job("a", schedulingPriorityOverride=9))
    await h.cycle()
    rec = h.op.jobs.get(f"{NS}/a")
    assert rec is not None
    assert rec.generation == 2
    h.op.intake.on_batch_job(old)  # kopf's replay of generation 1
    assert rec.generation == 2
    job = h.op.cache.job(f"{NS}/a")
    assert job is not None
    assert job.spec.scheduling_priority == 9
