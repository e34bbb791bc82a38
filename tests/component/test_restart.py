"""Restart replay: a new operator rebuilds everything from lists and never runs an attempt
twice."""

from __future__ import annotations

import dataclasses

from kubatch.adapters.kube import BATCHJOBS
from kubatch.core.state import CacheConfig
from tests.component.conftest import NS, Harness, basic, make_job


async def test_restart_while_starting_creates_no_second_job(h: Harness) -> None:
    basic(h)
    h.apply(make_job("a"))
    await h.cycle()
    assert len(h.k8s_jobs()) == 1
    await h.restart()
    await h.cycle(3)
    assert len(h.k8s_jobs()) == 1
    assert h.status("a")["phase"] == "Starting"
    h.start_pods()
    await h.cycle()
    h.finish_pod(h.job_name("a"))
    await h.cycle()
    assert h.status("a")["phase"] == "Succeeded"
    assert h.writes("a")["create"] == 1


async def test_restart_replays_an_end_that_happened_while_down(h: Harness) -> None:
    basic(h)
    h.apply(make_job("a"))
    await h.cycle()
    h.start_pods()
    await h.cycle()
    await h.stop()
    h.finish_pod(h.job_name("a"), exit_code=0)  # while no operator runs
    await h.restart()
    await h.cycle()
    st = h.status("a")
    assert st["phase"] == "Succeeded"
    assert len(st["attempts"]) == 1


async def test_restart_retakes_capacity_of_running_jobs(h: Harness) -> None:
    basic(h, vcpus=1)
    h.apply(make_job("a"))
    await h.cycle()
    h.start_pods()
    await h.cycle()
    h.apply(make_job("b"))
    await h.restart()
    await h.cycle(2)
    assert h.status("a")["phase"] == "Running"
    assert h.status("b")["phase"] == "Runnable"  # the running job still holds the only vCPU
    h.finish_pod(h.job_name("a"))
    await h.cycle()
    assert h.status("b")["phase"] == "Starting"


async def test_restart_does_not_rerun_finished_jobs(h: Harness) -> None:
    basic(h)
    h.apply(make_job("a"))
    await h.cycle()
    h.start_pods()
    await h.cycle()
    h.finish_pod(h.job_name("a"), exit_code=1)
    await h.cycle()
    assert h.status("a")["phase"] == "Failed"
    await h.restart()
    await h.cycle(3)
    assert h.status("a")["phase"] == "Failed"
    assert len(h.k8s_jobs()) == 1


async def test_restart_keeps_waiting_order_and_dependencies(h: Harness) -> None:
    basic(h, vcpus=1)
    for job in (make_job("first"), make_job("second"), make_job("after", dependsOn=[
            {"jobName": "first"}])):  # fmt: skip
        h.apply(job)
        h.clock.now += 1  # submitted one second apart
    await h.cycle()
    await h.restart()
    await h.cycle()
    assert h.status("after")["reason"] == "WaitingForDependencies"
    h.start_pods()
    await h.cycle()
    h.finish_pod(h.job_name("first"))
    await h.cycle()
    assert h.status("second")["phase"] == "Starting"  # FIFO kept across the restart
    assert h.status("after")["phase"] == "Runnable"


async def test_restart_restores_array_children_without_readmitting(h: Harness) -> None:
    basic(h, vcpus=100)
    h.apply(make_job("arr", arrayProperties={"size": 4}))
    await h.cycle()
    h.start_pods()
    await h.cycle()
    h.finish_pod(h.job_name("arr", index=0))
    await h.cycle()
    await h.restart()
    await h.cycle(2)
    assert len(h.k8s_jobs()) == 4  # no child admitted twice
    for i in (1, 2, 3):
        h.finish_pod(h.job_name("arr", index=i))
    await h.cycle()
    st = h.status("arr")
    assert st["phase"] == "Succeeded", st


async def test_a_terminate_whose_delete_failed_is_carried_out_later(h: Harness) -> None:
    basic(h)
    h.apply(make_job("t"))
    await h.cycle()
    h.start_pods()
    await h.cycle()
    h.kube.fail("delete", "jobs", times=1)
    h.apply(make_job("t", terminate={"reason": "stop"}))
    await h.cycle()
    assert len(h.k8s_jobs()) == 1  # the delete failed
    await h.cycle(2)
    assert h.k8s_jobs() == []  # tried again
    st = h.status("t")
    assert (st["phase"], st["reason"]) == ("Failed", "Terminated")
    deletes = [w for w in h.kube.writes if w.verb == "delete" and w.resource == "jobs"]
    assert len(deletes) == 2


async def test_a_stray_job_of_a_finished_batchjob_is_deleted_after_a_restart(h: Harness) -> None:
    """The status records a terminated job whose attempt never ended (the leader that wrote
    it died before its delete went out): the Job still running is deleted by the next one."""
    basic(h)
    h.apply(make_job("t"))
    await h.cycle()
    h.start_pods()
    await h.cycle()
    job = h.k8s_jobs()[0]["metadata"]["name"]
    deletes = len([w for w in h.kube.writes_to(job, "jobs") if w.verb == "delete"])
    assert deletes == 0
    bj = h.kube.get_object(BATCHJOBS, "t", NS)
    assert bj is not None
    bj["status"].update(phase="Failed", reason="Terminated", message="stop")
    h.kube.put(BATCHJOBS, bj)
    await h.restart()
    await h.cycle(2)
    assert [j["metadata"]["name"] for j in h.k8s_jobs()] == [], f"{job} still runs"
    assert h.status("t")["phase"] == "Failed"


async def test_a_terminate_after_a_takeover_stops_the_job_the_old_leader_created(
    h: Harness,
) -> None:
    """The old leader created the Job but its status (held while the pod starts) was never
    written; the new one sees a waiting job, fails it on terminate, and deletes that Job."""
    basic(h)
    h.apply(make_job("t"))
    await h.cycle()
    assert len(h.k8s_jobs()) == 1
    bj = h.kube.get_object(BATCHJOBS, "t", NS)
    assert bj is not None
    bj["status"] = {}  # what the old leader never wrote
    h.kube.put(BATCHJOBS, bj)
    await h.restart()
    h.apply(make_job("t", terminate={"reason": "stop"}))
    await h.cycle(3)
    assert h.status("t")["phase"] == "Failed"
    assert h.k8s_jobs() == []


async def test_an_attempt_whose_job_existed_is_replayed_until_the_api_server_answers(
    h: Harness,
) -> None:
    """The Job was created, its status write was lost (the leader went), and its pod failed
    while no operator ran: the new leader's admission finds the Job (a conflict) and replays
    its pods — a replay the API server does not answer is tried again, or the failed attempt
    would never end (its pod sends no more events)."""
    basic(h)
    h.apply(make_job("a", retryStrategy={"attempts": 2}))
    h.kube.fail("patch", "batchjobs/status", times=None)  # no status reaches the API server
    await h.cycle()
    assert len(h.k8s_jobs()) == 1
    await h.stop()
    h.kube.failures.clear()
    assert "attempts" not in h.status("a")
    h.start_pods()
    h.finish_pod(h.job_name("a"), exit_code=3)  # while no operator runs
    await h.restart()
    h.kube.fail("list", "pods", times=2)  # the replay's list of the Job's pods, twice
    await h.cycle(3)
    h.start_pods()
    await h.cycle()
    h.finish_pod(h.job_name("a", attempt=2))
    await h.cycle(2)
    st = h.status("a")
    assert st["phase"] == "Succeeded"
    assert [(a["number"], a.get("exitCode")) for a in st["attempts"]] == [(1, 3), (2, 0)]
    assert all(a.get("stoppedAt") for a in st["attempts"])
    assert len(h.k8s_jobs()) == 2  # one per attempt (the second create of 1 was a conflict)


async def test_a_restart_rewrites_no_waiting_jobs_status(h: Harness) -> None:
    """The new operator has seen no admission yet, so it cannot estimate start times: the
    estimates written before it stay (they are still ahead), rather than 10,000 waiting jobs'
    statuses being patched to clear them."""
    basic(h, vcpus=1)
    h.apply(*(make_job(f"j{i}") for i in range(5)))
    await h.cycle(3)
    h.start_pods()
    await h.cycle(3)
    before = {f"j{i}": h.status(f"j{i}") for i in range(1, 5)}
    assert all(st["phase"] == "Runnable" and st.get("estimatedStartTime")
               for st in before.values())  # fmt: skip
    n = len(h.kube.writes)
    await h.restart()
    await h.cycle(3)
    patched = [w.name for w in h.kube.writes[n:] if w.resource == "batchjobs/status"]
    assert patched == []
    assert {f"j{i}": h.status(f"j{i}") for i in range(1, 5)} == before


async def test_a_restart_rewrites_no_waiting_position_that_did_not_move(h: Harness) -> None:
    """Positions beyond the refresh depth are estimates made as the jobs arrived; a restart
    restores the jobs in name order. The new operator estimated them again in that order and
    patched every waiting job whose estimate differed (9,977 of 10,000 after one restart):
    a restored job's status now counts as written, its position as its estimate."""
    h.settings = dataclasses.replace(h.settings, cache=CacheConfig(position_refresh_depth=2))
    await h.restart()
    basic(h, vcpus=1)
    names = [f"j{i}" for i in range(8)]
    for name in reversed(names):  # same second, arriving in the reverse of their order
        h.apply(make_job(name))
    await h.cycle(3)
    before = {n: h.status(n).get("queuePosition") for n in names[1:]}
    assert before["j1"] == 1
    assert before["j2"] == 2
    n = len(h.kube.writes)
    await h.restart()
    await h.cycle(3)
    patched = [w.name for w in h.kube.writes[n:] if w.resource == "batchjobs/status"]
    assert patched == []
    assert {n: h.status(n).get("queuePosition") for n in names[1:]} == before
