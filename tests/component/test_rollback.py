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


async def test_a_refused_job_does_not_take_the_room_of_the_jobs_behind_it(h: Harness) -> None:
    """Before, the refused job was admitted first again every cycle, took the only room and
    gave it back after the refusal: the job behind it never started."""
    basic(h, vcpus=1)
    h.kube.fail("create", "jobs", status=403, times=None)
    h.apply(make_job("a"))
    await h.cycle()
    [name] = {w.name for w in h.kube.writes if (w.verb, w.resource) == ("create", "jobs")}
    h.kube.failures.clear()
    h.kube.fail("create", "jobs", status=403, name=name, times=None)
    h.apply(make_job("b"))
    await h.cycle(advance=0.5)  # within a's hold
    assert h.status("b")["phase"] == "Starting"
    st = h.status("a")
    assert (st["phase"], st["reason"]) == ("Runnable", "JobCreateFailed")
    assert "could not be created" in st["message"]


async def test_a_refused_job_is_tried_again_less_and_less_often_then_starts(h: Harness) -> None:
    basic(h)
    h.kube.fail("create", "jobs", status=403, times=None)
    h.apply(make_job("a"))
    await h.cycle(40, advance=0.5)  # 20 s: every cycle would be 40 creates
    creates = [w for w in h.kube.writes if (w.verb, w.resource) == ("create", "jobs")]
    assert 4 <= len(creates) <= 6  # after 1, 2, 4, 8 s: at 0, 1, 3, 7, 15 s
    assert len(h.events("JobCreateFailed")) == len(creates)
    assert h.status("a")["reason"] == "JobCreateFailed"
    h.kube.failures.clear()  # the quota was raised
    await h.cycle(34, advance=0.5)  # the 16-s hold runs out at 31 s
    assert h.status("a")["phase"] == "Starting"
    assert len(h.k8s_jobs()) == 1


async def test_a_refused_job_starts_again_at_the_first_backoff_once_created(h: Harness) -> None:
    """Refusals in a row: one Job created resets the count (its retry waits 1 s again)."""
    from kubatch.controller.effects import refusal_backoff

    assert [refusal_backoff(n) for n in (1, 2, 3, 4, 7, 8, 100)] == [1, 2, 4, 8, 60, 60, 60]
    basic(h)
    h.kube.fail("create", "jobs", status=403, times=2)
    h.apply(make_job("a"))
    await h.cycle(4)  # refused at 1 s and 2 s (held 1 s), created at 4 s (held 2 s)
    assert h.status("a")["phase"] == "Starting"
    rec = h.op.jobs.get("ns/a")
    assert rec is not None
    assert rec.refusals == 0
