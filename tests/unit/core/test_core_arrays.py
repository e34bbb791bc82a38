"""Arrays as AWS runs them (SEMANTICS §4): every child runs to its end, the parent is terminal
only when every child is, summaries add up; terminate and maxFailedChildren stop the array."""

from __future__ import annotations

from tests.unit.core.core_factories import (
    admitted,
    cycle,
    make_cache,
    make_ce,
    make_job,
    make_queue,
    of_type,
)

from kubatch.core.cache import Cache
from kubatch.core.decisions import Fail, Succeed, Terminate, UpdateArraySummary
from kubatch.core.lifecycle import Phase, Reason
from kubatch.core.model import Dependency, DependencyType


def cache(vcpus: int = 100) -> Cache:
    return make_cache((make_ce(vcpus=vcpus),), (make_queue(),))


def finish_all(c: Cache, key: str, now: float, code: int = 0) -> None:
    job = c.jobs[key]
    assert job.array is not None
    for i, _ce in sorted(job.array.active.items()):
        c.attempt_finished(key, i, job.array.child_attempt[i], now, exit_code=code)


def summary(c: Cache, key: str) -> dict[Phase, int]:
    job = c.jobs[key]
    assert job.array is not None
    return dict(job.array.summary())


def test_many_children_fail_the_rest_still_run_and_the_message_is_bounded() -> None:
    c = cache(vcpus=10)
    c.upsert_job(make_job("arr", array=60, parallelism=10), 0)
    now = 0.0
    while not c.jobs["ns/arr"].phase.terminal:
        now += 1
        cycle(c, now)
        job = c.jobs["ns/arr"]
        assert job.array is not None
        for i in sorted(job.array.active):
            c.attempt_finished("ns/arr", i, 1, now, exit_code=1 if i % 2 else 0)
        assert sum(summary(c, "ns/arr").values()) == 60
    ds = cycle(c, now + 1)
    [f] = of_type(ds, Fail)
    assert f.reason is Reason.ARRAY_CHILD_FAILED
    assert f.message.startswith("30 of 60 children failed: 1, 3, 5,")
    assert f.message.endswith("and 10 more")
    assert summary(c, "ns/arr") == {Phase.SUCCEEDED: 30, Phase.FAILED: 30}


def test_max_failed_children_zero_stops_at_the_first_final_failure() -> None:
    c = cache()
    c.upsert_job(make_job("arr", array=6, parallelism=2, max_failed=0), 0)
    cycle(c)
    c.attempt_finished("ns/arr", 0, 1, 1, exit_code=3)
    ds = cycle(c, 1)
    assert admitted(ds) == []
    [t] = of_type(ds, Terminate)  # the running sibling is stopped
    assert (t.index, t.reason) == (1, Reason.ARRAY_CHILD_FAILED)
    assert c.phase_of("ns/arr") is not Phase.FAILED  # until the stopped child has ended
    assert summary(c, "ns/arr") == {Phase.FAILED: 5, Phase.STARTING: 1}
    c.attempt_finished("ns/arr", 1, 1, 2, exit_code=None, interrupted=True)
    [f] = of_type(cycle(c, 2), Fail)
    assert f.reason is Reason.ARRAY_CHILD_FAILED
    assert "maxFailedChildren=0" in f.message
    assert summary(c, "ns/arr") == {Phase.FAILED: 6}


def test_max_failed_children_allows_up_to_n() -> None:
    c = cache()
    c.upsert_job(make_job("arr", array=4, max_failed=1), 0)
    cycle(c)
    c.attempt_finished("ns/arr", 0, 1, 1, exit_code=3)
    assert of_type(cycle(c, 1), Terminate) == []
    for i in (1, 2, 3):
        c.attempt_finished("ns/arr", i, 1, 2, exit_code=0)
    [f] = of_type(cycle(c, 2), Fail)
    assert f.message == "1 of 4 children failed: 0"


def test_terminating_the_parent_stops_every_unfinished_child() -> None:
    c = cache(vcpus=2)
    spec = make_job("arr", array=5)
    c.upsert_job(spec, 0)
    cycle(c)
    c.attempt_started("ns/arr", 0, 1, 1)
    c.upsert_job(spec.__class__(**{**_fields(spec), "terminate_reason": "stop it"}), 1)
    ds = cycle(c, 1)
    assert sorted(t.index for t in of_type(ds, Terminate)) == [0, 1]  # type: ignore[type-var]
    assert summary(c, "ns/arr") == {Phase.FAILED: 3, Phase.RUNNING: 1, Phase.STARTING: 1}
    finish_all(c, "ns/arr", 2, code=143)
    ds = cycle(c, 2)
    [f] = of_type(ds, Fail)
    assert (f.reason, f.message) == (Reason.TERMINATED, "stop it")
    [s] = of_type(ds, UpdateArraySummary)
    assert (s.phase, dict(s.summary)) == (Phase.FAILED, {Phase.FAILED: 5})
    assert admitted(cycle(c, 3)) == []


def test_terminating_a_waiting_array_fails_it_with_every_child() -> None:
    c = make_cache((make_ce(),), (make_queue(enabled=False),))
    spec = make_job("arr", array=3)
    c.upsert_job(spec, 0)
    cycle(c)
    c.upsert_job(spec.__class__(**{**_fields(spec), "terminate_reason": "no"}), 1)
    ds = cycle(c, 1)
    [f] = of_type(ds, Fail)
    assert f.reason is Reason.TERMINATED
    assert summary(c, "ns/arr") == {Phase.FAILED: 3}


def test_sequential_failure_fails_the_children_after_it() -> None:
    c = cache()
    seq = Dependency(None, DependencyType.SEQUENTIAL)
    c.upsert_job(make_job("s", array=4, deps=(seq,)), 0)
    assert admitted(cycle(c)) == ["ns/s:0"]
    c.attempt_finished("ns/s", 0, 1, 1, exit_code=0)
    assert admitted(cycle(c, 1)) == ["ns/s:1"]
    c.attempt_finished("ns/s", 1, 1, 2, exit_code=9)
    [f] = of_type(cycle(c, 2), Fail)
    assert f.message == "3 of 4 children failed: 1"
    assert summary(c, "ns/s") == {Phase.SUCCEEDED: 1, Phase.FAILED: 3}


def test_parent_phase_never_moves_back_while_children_remain() -> None:
    c = cache(vcpus=1)
    c.upsert_job(make_job("arr", array=3), 0)
    cycle(c)
    assert c.phase_of("ns/arr") is Phase.STARTING
    c.attempt_started("ns/arr", 0, 1, 1)
    assert c.phase_of("ns/arr") is Phase.RUNNING
    c.attempt_finished("ns/arr", 0, 1, 2, exit_code=0)
    assert c.phase_of("ns/arr") is Phase.RUNNING  # no child running now, one has run
    assert admitted(cycle(c, 2)) == ["ns/arr:1"]
    assert c.phase_of("ns/arr") is Phase.RUNNING


def test_whole_dependency_failure_fails_a_pending_array_with_all_children() -> None:
    c = cache()
    c.upsert_job(make_job("p"), 0)
    c.upsert_job(make_job("arr", array=3, deps=(Dependency("p"),)), 0)
    cycle(c)
    c.attempt_finished("ns/p", None, 1, 1, exit_code=1)
    ds = cycle(c, 1)
    fails = {d.job_key: d.reason for d in of_type(ds, Fail)}
    assert fails["ns/arr"] is Reason.DEPENDENCY_FAILED
    assert summary(c, "ns/arr") == {Phase.FAILED: 3}


def test_restored_children_are_not_admitted_again() -> None:
    c = cache()
    spec = make_job("arr", array=4, parallelism=4)
    c.upsert_job(spec, 0)
    c.restore_child("ns/arr", 0, Phase.SUCCEEDED, 1, 0)
    c.restore_child("ns/arr", 1, Phase.FAILED, 2, 0)
    c.restore_child("ns/arr", 2, Phase.RUNNING, 1, 0, "ce")
    assert admitted(cycle(c)) == ["ns/arr:3"]
    assert c.ledgers["ce"].mcpu == 2000
    c.attempt_finished("ns/arr", 2, 1, 1, exit_code=0)
    c.attempt_finished("ns/arr", 3, 1, 1, exit_code=0)
    ds = cycle(c, 1)
    [f] = of_type(ds, Fail)
    assert f.message == "1 of 4 children failed: 1"
    assert not of_type(ds, Succeed)


def _fields(spec: object) -> dict[str, object]:
    return {f: getattr(spec, f) for f in spec.__slots__}  # type: ignore[attr-defined]
