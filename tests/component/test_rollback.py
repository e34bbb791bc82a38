"""A failed write never loses a job nor makes a second attempt."""

from __future__ import annotations

from tests.component.conftest import Harness, basic, make_job


async def test_failed_create_rolls_the_admission_back(h: Harness) -> None:
    basic(h, vcpus=1)
    h.kube.fail("create", "jobs", status=500)
    h.apply(make_job("a"))
    await h.cycle()
    assert h.k8s_jobs() == []
    assert h.op.cache.phase_of("ns/a").value == "Runnable"  # type: ignore[union-attr]
    assert h.op.cache.allocated("ce").mcpu == 0  # capacity given back
    await h.cycle()
    assert len(h.k8s_jobs()) == 1
    assert h.status("a")["phase"] == "Starting"


async def test_forbidden_create_warns_and_keeps_the_job_waiting(h: Harness) -> None:
    basic(h)
    h.kube.fail("create", "jobs", status=403)
    h.apply(make_job("a"))
    await h.cycle()
    assert [e["reason"] for e in h.events("JobCreateFailed")] == ["JobCreateFailed"]
    await h.cycle()
    assert h.status("a")["phase"] == "Starting"


async def test_failed_status_patch_is_written_next_cycle(h: Harness) -> None:
    basic(h)
    h.kube.fail("patch", "batchjobs/status", status=500)
    h.apply(make_job("a"))
    await h.cycle()
    assert h.status("a") == {}
    await h.cycle()
    assert h.status("a")["phase"] == "Starting"
    assert len(h.k8s_jobs()) == 1


async def test_connection_error_on_create_is_retried(h: Harness) -> None:
    basic(h)
    h.kube.fail("create", "jobs", error=OSError("connection reset"))
    h.apply(make_job("a"))
    await h.cycle(2)
    assert len(h.k8s_jobs()) == 1
    assert h.writes("a")["create"] == 2  # one failed, one made


async def test_create_conflict_after_a_lost_answer_is_the_same_attempt(h: Harness) -> None:
    """The create reached the API server but its answer was lost: the next try meets 409."""
    basic(h)
    h.apply(make_job("a"))
    await h.cycle()
    name = h.job_name("a")
    h.op.cache.forget(  # as if the write had failed on our side
        next(d for d in [_admit_of(h, "ns/a")]), h.clock.now
    )
    await h.cycle()
    assert [j["metadata"]["name"] for j in h.k8s_jobs()] == [name]
    assert h.status("a")["phase"] == "Starting"


def _admit_of(h: Harness, key: str):  # type: ignore[no-untyped-def]
    from kubatch.core.decisions import Admit
    from kubatch.core.resources import Resources

    job = h.op.cache.job(key)
    assert job is not None
    return Admit(key, None, job.attempt, "ce", "OnDemand", "q", Resources(1000, 2**30),
                 h.job_name("a"), None)  # fmt: skip
