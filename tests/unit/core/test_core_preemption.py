"""Preemption in the core: who may be preempted (lower-priority queues, shares over their fair
share), in which order (youngest first), never more than needed; victims keep their capacity
until they end and run again uncounted."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st
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
from kubatch.core.decisions import Admit, Fail, Preempt, Retry, SetWaiting, Succeed
from kubatch.core.lifecycle import Phase, Reason
from kubatch.core.model import FairSharePolicy, JobQueue, PreemptionPolicy, Share
from kubatch.core.resources import Resources

LOWER = PreemptionPolicy(lower_priority=True)


def two_queues(vcpus: int = 4, policy: PreemptionPolicy | None = LOWER) -> Cache:
    hi = replace(make_queue("hi", priority=10), preemption=policy)
    lo = make_queue("lo", priority=1)
    return make_cache((make_ce(vcpus=vcpus),), (hi, lo))


def fill(c: Cache, n: int, queue: str = "lo", vcpus: float = 1, prefix: str = "low") -> None:
    for i in range(n):
        c.upsert_job(make_job(f"{prefix}{i}", queue, vcpus=vcpus), 0)
    cycle(c, 1)
    for i in range(n):
        c.attempt_started(f"ns/{prefix}{i}", None, 1, 10 + i)  # low0 is the oldest


def preempts(ds: list[object]) -> list[str]:
    return [d.job_key for d in ds if isinstance(d, Preempt)]


def test_lower_priority_victims_youngest_first_and_no_more_than_needed() -> None:
    c = two_queues()
    fill(c, 4)
    c.upsert_job(make_job("high", "hi", vcpus=2), 20)
    ds = cycle(c, 21)
    assert preempts(ds) == ["ns/low3", "ns/low2"]  # the youngest two: 2 vCPU are needed
    [p] = [d for d in ds if isinstance(d, Preempt) and d.job_key == "ns/low3"]
    assert isinstance(p, Preempt)
    assert (p.preemptor, p.preemptor_queue, p.queue, p.compute_environment) == (
        "ns/high",
        "hi",
        "lo",
        "ce",
    )
    w = {d.job_key: d for d in ds if isinstance(d, SetWaiting)}["ns/high"]
    assert w.reason is Reason.PREEMPTING
    assert "preempting 2 job(s) on ce" in w.message
    assert admitted(ds) == []  # the victims hold their capacity until they have ended


def test_attempts_not_running_yet_go_first() -> None:
    c = two_queues()
    fill(c, 3)
    c.upsert_job(make_job("fresh", "lo"), 15)
    cycle(c, 15)  # Starting, its pod not running yet: no work lost
    c.upsert_job(make_job("high", "hi"), 20)
    assert preempts(cycle(c, 21)) == ["ns/fresh"]


def test_victims_run_again_uncounted_and_the_preemptor_gets_the_room() -> None:
    c = two_queues()
    fill(c, 4)
    c.upsert_job(make_job("high", "hi", vcpus=2), 20)
    cycle(c, 21)
    assert preempts(cycle(c, 22)) == []  # in flight: not preempted twice
    c.attempt_finished("ns/low3", None, 1, 23, exit_code=143, interrupted=True,
                       status_reason="pod deleted")  # fmt: skip
    assert admitted(cycle(c, 24)) == []  # one of two ended: still waiting
    c.attempt_finished("ns/low2", None, 1, 25, exit_code=None, interrupted=True)
    ds = cycle(c, 26)
    assert admitted(ds) == ["ns/high"]
    retries = [d for d in of_type(ds, Retry) if isinstance(d, Retry)]
    assert {(r.job_key, r.reason, r.interrupted) for r in retries} == {
        ("ns/low2", Reason.PREEMPTED, True)
    }
    for key in ("ns/low2", "ns/low3"):
        job = c.jobs[key]
        assert (job.phase, job.failures, job.interruptions) == (Phase.RUNNABLE, 0, 0)
    c.attempt_finished("ns/high", None, 1, 30, exit_code=0)
    ds = cycle(c, 31)
    assert sorted(admitted(ds)) == ["ns/low2", "ns/low3"]  # the victims complete later
    assert {d.attempt for d in ds if isinstance(d, Admit)} == {2}


def test_never_from_an_equal_or_higher_priority_queue() -> None:
    hi = replace(make_queue("hi", priority=10), preemption=LOWER)
    same = make_queue("same", priority=10)
    top = make_queue("top", priority=50)
    c = make_cache((make_ce(vcpus=2),), (hi, same, top))
    c.upsert_job(make_job("s", "same"), 0)
    c.upsert_job(make_job("t", "top"), 0)
    cycle(c, 1)
    c.upsert_job(make_job("high", "hi"), 2)
    ds = cycle(c, 3)
    assert preempts(ds) == []
    w = {d.job_key: d for d in ds if isinstance(d, SetWaiting)}["ns/high"]
    assert w.reason is Reason.INSUFFICIENT_CAPACITY


def test_only_queues_that_opt_in_preempt() -> None:
    c = two_queues(policy=None)
    fill(c, 4)
    c.upsert_job(make_job("high", "hi"), 20)
    assert preempts(cycle(c, 21)) == []


def test_a_victim_that_succeeds_in_its_grace_period_succeeded() -> None:
    c = two_queues(vcpus=1)
    fill(c, 1)
    c.upsert_job(make_job("high", "hi"), 20)
    assert preempts(cycle(c, 21)) == ["ns/low0"]
    c.attempt_finished("ns/low0", None, 1, 22, exit_code=0)
    ds = cycle(c, 23)
    assert of_type(ds, Succeed)
    assert admitted(ds) == ["ns/high"]


def test_terminating_a_victim_fails_it_as_terminated() -> None:
    c = two_queues(vcpus=1)
    fill(c, 1)
    c.upsert_job(make_job("high", "hi"), 20)
    cycle(c, 21)
    c.upsert_job(make_job("low0", "lo", terminate="stop"), 22)
    c.attempt_finished("ns/low0", None, 1, 23, exit_code=143)
    [fail] = of_type(cycle(c, 24), Fail)
    assert isinstance(fail, Fail)
    assert fail.reason is Reason.TERMINATED


def test_two_preemptors_in_one_cycle_each_get_their_own_victims() -> None:
    c = two_queues()
    fill(c, 4)
    c.upsert_job(make_job("h1", "hi"), 20)
    c.upsert_job(make_job("h2", "hi"), 20)
    ds = cycle(c, 21)
    assert preempts(ds) == ["ns/low3", "ns/low2"]
    for key in ("ns/low3", "ns/low2"):
        c.attempt_finished(key, None, 1, 22, exit_code=None, interrupted=True)
    assert admitted(cycle(c, 23)) == ["ns/h1", "ns/h2"]


def test_array_children_are_preempted_one_by_one() -> None:
    c = two_queues(vcpus=3)
    c.upsert_job(make_job("arr", "lo", array=3), 0)
    cycle(c, 1)
    for i in range(3):
        c.attempt_started("ns/arr", i, 1, 10 + i)
    c.upsert_job(make_job("high", "hi"), 20)
    ds = cycle(c, 21)
    assert [(d.job_key, d.index) for d in ds if isinstance(d, Preempt)] == [("ns/arr", 2)]
    c.attempt_finished("ns/arr", 2, 1, 22, exit_code=None, interrupted=True)
    ds = cycle(c, 23)
    assert admitted(ds) == ["ns/high"]
    arr = c.jobs["ns/arr"].array
    assert arr is not None
    assert (arr.child_failures[2], arr.child_interruptions[2], 2 in arr.ready) == (0, 0, True)


def fair_queue(policy: PreemptionPolicy | None) -> JobQueue:
    fs = FairSharePolicy(shares=(Share("a", 1.0), Share("b", 1.0)))
    return replace(make_queue("fs", priority=5, fair_share=fs), preemption=policy)


def test_fair_share_reclaims_from_a_share_over_its_fair_share() -> None:
    c = make_cache((make_ce(vcpus=4),), (fair_queue(PreemptionPolicy(fair_share=True)),))
    for i in range(4):
        c.upsert_job(replace(make_job(f"a{i}", "fs"), share_identifier="a"), 0)
    cycle(c, 1)
    for i in range(4):
        c.attempt_started(f"ns/a{i}", None, 1, 10 + i)
    c.upsert_job(replace(make_job("b0", "fs", vcpus=2), share_identifier="b"), 20)
    ds = cycle(c, 21)
    # fair share is 2 vCPU each; "a" runs 4: two of its youngest go, and no more
    assert preempts(ds) == ["ns/a3", "ns/a2"]
    for key in ("ns/a3", "ns/a2"):
        c.attempt_finished(key, None, 1, 22, exit_code=None, interrupted=True)
    assert admitted(cycle(c, 23)) == ["ns/b0"]
    # never the reverse: "a" is now under its fair share, "b" at it — "a" waits
    c.upsert_job(replace(make_job("a9", "fs"), share_identifier="a"), 24)
    assert preempts(cycle(c, 25)) == []


def test_fair_share_does_not_preempt_to_go_over_its_own_fair_share() -> None:
    c = make_cache((make_ce(vcpus=4),), (fair_queue(PreemptionPolicy(fair_share=True)),))
    for i in range(4):
        c.upsert_job(replace(make_job(f"a{i}", "fs"), share_identifier="a"), 0)
    cycle(c, 1)
    c.upsert_job(replace(make_job("bbig", "fs", vcpus=3), share_identifier="b"), 20)
    assert preempts(cycle(c, 21)) == []  # 3 > b's fair share of 2


def test_a_gang_preemptor_frees_the_whole_gang_size() -> None:
    from kubatch.core.model import Gang, NodeRange

    c = two_queues()
    fill(c, 4)
    g = Gang(3, 0, (NodeRange(0, 2, Resources(1000, 2**30)),))
    c.upsert_job(replace(make_job("mnp", "hi"), size=g.total(), gang=g), 20)
    assert preempts(cycle(c, 21)) == ["ns/low3", "ns/low2", "ns/low1"]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.integers(1, 4), st.integers(0, 1)), min_size=1, max_size=8),
    st.integers(1, 6),
    st.integers(0, 4),
)
def test_never_more_than_needed_and_only_lower_priority(
    running: list[tuple[int, int]], need: int, free: int
) -> None:
    """Random running jobs of a lower (0) or equal (1) priority queue on one CE: a preemption
    frees enough, and could not spare any one of its victims."""
    total = sum(v for v, _ in running) + free
    hi = replace(make_queue("hi", priority=10), preemption=LOWER)
    eq = make_queue("eq", priority=10)
    lo = make_queue("lo", priority=1)
    c = make_cache((make_ce(vcpus=total),), (hi, eq, lo))
    for i, (v, q) in enumerate(running):
        c.upsert_job(make_job(f"r{i}", ("lo", "eq")[q], vcpus=v), 0)
    cycle(c, 1)
    sizes = {f"ns/r{i}": v for i, (v, _) in enumerate(running)}
    queues = {f"ns/r{i}": ("lo", "eq")[q] for i, (v, q) in enumerate(running)}
    c.upsert_job(make_job("high", "hi", vcpus=need), 2)
    ds = cycle(c, 3)
    victims = preempts(ds)
    if need <= free:
        assert admitted(ds) == ["ns/high"]
        assert victims == []
        return
    assert all(queues[k] == "lo" for k in victims)
    freed = sum(sizes[k] for k in victims)
    lower = sum(v for k, v in sizes.items() if queues[k] == "lo")
    if victims:
        assert free + freed >= need
        assert all(free + freed - sizes[k] < need for k in victims)  # minimal
    else:
        assert free + lower < need  # nothing could have made room
