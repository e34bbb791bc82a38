"""Deleting a BatchJob forgets everything about it (no state grows for the process's life)."""

from __future__ import annotations

from tests.component.conftest import Harness, basic, make_job


def known(h: Harness, key: str) -> list[str]:
    op = h.op
    where = []
    if op.jobs.get(key) is not None:
        where.append("records")
    if key in op.jobs.dirty:
        where.append("dirty")
    if op.cache.job(key) is not None:
        where.append("cache")
    if key in op.attempts.logs:
        where.append("attempts")
    if op.registry.is_parked(key):
        where.append("parked")
    if key in op.intake.invalid_jobs:
        where.append("invalid")
    return where


async def test_deleting_a_running_job_forgets_it_and_releases_capacity(h: Harness) -> None:
    basic(h, vcpus=1)
    h.apply(make_job("a"), make_job("b"))
    await h.cycle()
    h.start_pods()
    await h.cycle()
    assert known(h, "ns/a")
    h.delete("BatchJob", "a")
    assert known(h, "ns/a") == []
    assert h.k8s_jobs() == [j for j in h.k8s_jobs() if "a-" not in j["metadata"]["name"][:2]]
    await h.cycle()
    assert h.status("b")["phase"] == "Starting"  # the freed vCPU went to b


async def test_deleting_a_finished_job_forgets_its_attempts(h: Harness) -> None:
    basic(h)
    h.apply(make_job("a"))
    await h.cycle()
    h.start_pods()
    await h.cycle()
    h.finish_pod(h.job_name("a"))
    await h.cycle()
    assert "attempts" in known(h, "ns/a")
    h.delete("BatchJob", "a")
    assert known(h, "ns/a") == []


async def test_deleting_a_parked_or_invalid_job_forgets_it(h: Harness) -> None:
    basic(h)
    h.apply(make_job("parked", definition="nope"))
    h.apply(make_job("bad", retryStrategy={"attempts": 2, "evaluateOnExit": [
        {"onStatusReason": "Host*EC2", "action": "RETRY"}]}))  # fmt: skip
    await h.cycle()
    assert "parked" in known(h, "ns/parked")
    assert "invalid" in known(h, "ns/bad")
    h.delete("BatchJob", "parked")
    h.delete("BatchJob", "bad")
    assert known(h, "ns/parked") == []
    assert known(h, "ns/bad") == []
    h.apply(__import__("tests.component.conftest", fromlist=["x"]).make_definition("nope"))
    await h.cycle()
    assert h.kube.get_object(__import__("kubatch.adapters.kube", fromlist=["x"]).BATCHJOBS,
                             "parked", "ns") is None  # fmt: skip


async def test_ended_attempts_jobs_are_deleted_after_the_retention() -> None:
    from kubatch.controller.settings import Settings

    h = Harness(Settings(job_retention=3600))
    await h.start()
    try:
        basic(h)
        h.apply(make_job("a", retryStrategy={"attempts": 2}))
        await h.cycle()
        h.start_pods()
        await h.cycle()
        h.finish_pod(h.job_name("a"), exit_code=1)
        await h.cycle()
        assert len(h.k8s_jobs()) == 2  # the failed attempt's Job is kept for its logs
        await h.cycle(advance=3601)
        names = [j["metadata"]["name"] for j in h.k8s_jobs()]
        assert names == [h.job_name("a", attempt=2)]
        assert [a["number"] for a in h.status("a")["attempts"]] == [1, 2]  # the record stays
    finally:
        await h.stop()


async def test_queue_retention_never_deletes_a_job_an_unfinished_one_needs(h: Harness) -> None:
    from kubatch.adapters.kube import BATCHJOBS
    from tests.component.conftest import make_ce, make_definition, make_queue

    h.apply(make_ce(), make_definition(), make_queue(finishedJobRetentionSeconds=60))
    h.apply(make_job("parent"), make_job("slow"), make_job("lonely"))
    h.apply(make_job("child", dependsOn=[{"jobName": "parent"}, {"jobName": "slow"}]))
    await h.cycle()
    h.start_pods()
    await h.cycle()
    h.finish_pod(h.job_name("parent"))
    h.finish_pod(h.job_name("lonely"))
    await h.cycle()
    await h.cycle(advance=61)

    def left() -> set[str]:
        return {o["metadata"]["name"] for o in h.kube.all(BATCHJOBS, "ns")}

    assert "lonely" not in left()  # finished, needed by nobody: deleted after 60 s
    assert "parent" in left()  # finished, but "child" (waiting) still needs it
    h.finish_pod(h.job_name("slow"))
    await h.cycle()
    h.start_pods()
    await h.cycle()
    h.finish_pod(h.job_name("child"))
    await h.cycle()
    await h.cycle(advance=61)
    assert left() == set()  # everything finished and kept its 60 s: all gone
