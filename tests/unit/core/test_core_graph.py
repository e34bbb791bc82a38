"""Dependencies: conditions, unknown names, cycles, transitive failure, arrays
(AWS's N_TO_N and SEQUENTIAL examples), parallelism, summaries."""

from __future__ import annotations

import pytest
from tests.unit.core.core_factories import (
    admitted,
    cycle,
    make_cache,
    make_ce,
    make_job,
    make_queue,
    of_type,
)

from kubatch.core.decisions import Admit, Fail, SetWaiting, Succeed, UpdateArraySummary
from kubatch.core.lifecycle import Phase, Reason
from kubatch.core.model import Condition, Dependency, DependencyType


def cache(vcpus: int = 100):  # type: ignore[no-untyped-def]
    return make_cache((make_ce(vcpus=vcpus),), (make_queue(),))


def dep(
    name: str, cond: Condition = Condition.SUCCEEDED, typ: DependencyType = DependencyType.WHOLE
) -> Dependency:
    return Dependency(name, typ, cond)


CONDITIONS = [
    ("afterok-satisfied", Condition.SUCCEEDED, 0, Phase.RUNNABLE),
    ("afterok-unsatisfiable", Condition.SUCCEEDED, 1, Phase.FAILED),
    ("afterany-after-success", Condition.COMPLETED, 0, Phase.RUNNABLE),
    ("afterany-after-failure", Condition.COMPLETED, 1, Phase.RUNNABLE),
    ("afternotok-after-failure", Condition.FAILED, 1, Phase.RUNNABLE),
    ("afternotok-unsatisfiable", Condition.FAILED, 0, Phase.FAILED),
]


@pytest.mark.parametrize(
    ("cond", "exit_code", "phase"), [c[1:] for c in CONDITIONS], ids=[c[0] for c in CONDITIONS]
)
def test_conditions(cond: Condition, exit_code: int, phase: Phase) -> None:
    c = cache()
    c.upsert_job(make_job("parent"), 0)
    c.upsert_job(make_job("child", deps=(dep("parent", cond),)), 0)
    ds = cycle(c)
    assert admitted(ds) == ["ns/parent"]
    w = {d.job_key: d for d in of_type(ds, SetWaiting)}
    assert w["ns/child"].reason is Reason.WAITING_FOR_DEPENDENCIES
    c.attempt_finished("ns/parent", None, 1, 1, exit_code=exit_code)
    c2 = cycle(c, 1)
    if phase is Phase.FAILED:
        assert c.phase_of("ns/child") is Phase.FAILED
        fails = {d.job_key: d.reason for d in of_type(c2, Fail)}
        assert fails["ns/child"] is Reason.DEPENDENCY_FAILED
    else:
        assert admitted(c2) == ["ns/child"]


def test_any_number_of_dependencies() -> None:
    c = cache()
    for p in ("a", "b", "c"):
        c.upsert_job(make_job(p), 0)
    c.upsert_job(make_job("d", deps=tuple(dep(p) for p in "abc")), 0)
    cycle(c)
    for i, p in enumerate("ab"):
        c.attempt_finished(f"ns/{p}", None, 1, i, exit_code=0)
        assert admitted(cycle(c, i)) == []
    c.attempt_finished("ns/c", None, 1, 5, exit_code=0)
    assert admitted(cycle(c, 5)) == ["ns/d"]


def test_unknown_names_wait_then_release() -> None:
    c = cache()
    c.upsert_job(make_job("child", deps=(dep("later"),)), 0)
    assert admitted(cycle(c)) == []
    c.upsert_job(make_job("later"), 1)
    assert admitted(cycle(c, 1)) == ["ns/later"]
    c.attempt_finished("ns/later", None, 1, 2, exit_code=0)
    assert admitted(cycle(c, 2)) == ["ns/child"]


def test_dependencies_are_per_namespace() -> None:
    c = cache()
    c.upsert_job(make_job("p", ns="other"), 0)
    c.upsert_job(make_job("child", deps=(dep("p"),)), 0)
    cycle(c)
    c.attempt_finished("other/p", None, 1, 1, exit_code=0)
    assert admitted(cycle(c, 1)) == []


def test_failure_propagates_transitively() -> None:
    c = cache()
    c.upsert_job(make_job("a"), 0)
    c.upsert_job(make_job("b", deps=(dep("a"),)), 0)
    c.upsert_job(make_job("c", deps=(dep("b"),)), 0)
    c.upsert_job(make_job("d", deps=(dep("c", Condition.COMPLETED),)), 0)
    cycle(c)
    c.attempt_finished("ns/a", None, 1, 1, exit_code=1)
    ds = cycle(c, 1)
    assert {d.job_key: d.reason for d in of_type(ds, Fail)} == {
        "ns/a": Reason.RETRIES_EXHAUSTED,
        "ns/b": Reason.DEPENDENCY_FAILED,
        "ns/c": Reason.DEPENDENCY_FAILED,
    }
    assert admitted(ds) == ["ns/d"]  # afterany: c's failure satisfies d


def test_cycles_fail_with_dependency_cycle() -> None:
    c = cache()
    c.upsert_job(make_job("a", deps=(dep("c"),)), 0)
    c.upsert_job(make_job("b", deps=(dep("a"),)), 0)
    c.upsert_job(make_job("c", deps=(dep("b"),)), 0)
    c.upsert_job(make_job("outside", deps=(dep("c"),)), 0)
    ds = cycle(c)
    fails = {d.job_key: d.reason for d in of_type(ds, Fail)}
    assert fails == {
        "ns/a": Reason.DEPENDENCY_CYCLE,
        "ns/b": Reason.DEPENDENCY_CYCLE,
        "ns/c": Reason.DEPENDENCY_CYCLE,
        "ns/outside": Reason.DEPENDENCY_FAILED,
    }
    assert admitted(ds) == []


def test_self_dependency_is_a_cycle() -> None:
    c = cache()
    c.upsert_job(make_job("a", deps=(dep("a"),)), 0)
    [f] = of_type(cycle(c), Fail)
    assert f.reason is Reason.DEPENDENCY_CYCLE


def test_array_children_up_to_parallelism_and_changeable() -> None:
    c = cache()
    c.upsert_job(make_job("arr", array=5, parallelism=2), 0)
    assert admitted(cycle(c)) == ["ns/arr:0", "ns/arr:1"]
    c.upsert_job(make_job("arr", array=5, parallelism=4), 1)
    assert admitted(cycle(c, 1)) == ["ns/arr:2", "ns/arr:3"]


def test_array_children_up_to_capacity() -> None:
    c = cache(vcpus=3)
    c.upsert_job(make_job("arr", array=5), 0)
    assert admitted(cycle(c)) == ["ns/arr:0", "ns/arr:1", "ns/arr:2"]


def test_array_per_child_attempts_summary_and_parent_phase() -> None:
    c = cache()
    c.upsert_job(make_job("arr", array=3, attempts=2), 0)
    ds = cycle(c)
    assert len(of_type(ds, Admit)) == 3
    c.attempt_started("ns/arr", 0, 1, 1)
    c.attempt_finished("ns/arr", 1, 1, 1, exit_code=1)  # child 1 retries
    ds = cycle(c, 1)
    [adm] = of_type(ds, Admit)
    assert (adm.index, adm.attempt) == (1, 2)
    [s] = of_type(ds, UpdateArraySummary)
    assert s.phase is Phase.RUNNING
    assert dict(s.summary) == {Phase.RUNNING: 1, Phase.STARTING: 2}
    for i, a in ((0, 1), (1, 2), (2, 1)):
        c.attempt_finished("ns/arr", i, a, 2, exit_code=0)
    ds = cycle(c, 2)
    assert Succeed("ns/arr") in ds
    [s] = of_type(ds, UpdateArraySummary)
    assert (s.phase, dict(s.summary)) == (Phase.SUCCEEDED, {Phase.SUCCEEDED: 3})


def test_array_child_failure_never_stops_its_siblings() -> None:
    """SEMANTICS §4 (as AWS): a child's final failure never stops its siblings; the parent
    fails only after its last child ended, naming the failed index. (Until this change the
    array stopped at the first final failure and abandoned its waiting children.)"""
    c = cache()
    c.upsert_job(make_job("arr", array=4, parallelism=2), 0)
    cycle(c)
    c.attempt_finished("ns/arr", 0, 1, 1, exit_code=2)
    ds = cycle(c, 1)
    assert admitted(ds) == ["ns/arr:2"]  # the freed slot runs the next child
    assert c.phase_of("ns/arr") is Phase.RUNNING
    c.attempt_finished("ns/arr", 1, 1, 2, exit_code=0)
    assert admitted(cycle(c, 2)) == ["ns/arr:3"]
    assert c.phase_of("ns/arr") is Phase.RUNNING
    c.attempt_finished("ns/arr", 2, 1, 3, exit_code=0)
    c.attempt_finished("ns/arr", 3, 1, 3, exit_code=0)
    ds = cycle(c, 3)
    [f] = of_type(ds, Fail)
    assert f.reason is Reason.ARRAY_CHILD_FAILED
    assert f.message == "1 of 4 children failed: 0"
    [s] = of_type(ds, UpdateArraySummary)
    assert (s.phase, dict(s.summary)) == (Phase.FAILED, {Phase.SUCCEEDED: 3, Phase.FAILED: 1})


def test_array_summary_is_bounded() -> None:
    c = cache(vcpus=20000)
    c.upsert_job(make_job("big", array=10000, vcpus=1), 0)
    [s] = of_type(cycle(c), UpdateArraySummary)
    assert len(s.summary) <= len(Phase)


def test_aws_n_to_n_example() -> None:
    """AWS: B (size 10) N_TO_N on A (size 10): B:i starts after A:i completes."""
    c = cache()
    c.upsert_job(make_job("A", array=10), 0)
    c.upsert_job(make_job("B", array=10, deps=(dep("A", typ=DependencyType.N_TO_N),)), 0)
    assert all(k.startswith("ns/A:") for k in admitted(cycle(c)))
    c.attempt_finished("ns/A", 3, 1, 1, exit_code=0)
    c.attempt_finished("ns/A", 7, 1, 1, exit_code=0)
    assert admitted(cycle(c, 1)) == ["ns/B:3", "ns/B:7"]


def test_n_to_n_child_failure_fails_matching_dependent_child() -> None:
    """B:i fails (DependencyFailed) when A:i fails; B's other children still run."""
    c = cache()
    c.upsert_job(make_job("A", array=2), 0)
    c.upsert_job(make_job("B", array=2, deps=(dep("A", typ=DependencyType.N_TO_N),)), 0)
    cycle(c)
    c.attempt_finished("ns/A", 0, 1, 1, exit_code=1)
    c.attempt_finished("ns/A", 1, 1, 1, exit_code=0)
    ds = cycle(c, 1)
    assert admitted(ds) == ["ns/B:1"]
    fails = {d.job_key: d.reason for d in of_type(ds, Fail)}
    assert fails == {"ns/A": Reason.ARRAY_CHILD_FAILED}
    c.attempt_finished("ns/B", 1, 1, 2, exit_code=0)
    [f] = of_type(cycle(c, 2), Fail)
    assert (f.job_key, f.reason) == ("ns/B", Reason.ARRAY_CHILD_FAILED)
    assert f.message == "1 of 2 children failed: 0"


def test_n_to_n_size_mismatch_is_invalid() -> None:
    c = cache()
    c.upsert_job(make_job("A", array=2), 0)
    c.upsert_job(make_job("B", array=3, deps=(dep("A", typ=DependencyType.N_TO_N),)), 0)
    fails = {d.job_key: d.reason for d in of_type(cycle(c), Fail)}
    assert fails == {"ns/B": Reason.INVALID_SPEC}


def test_aws_sequential_example() -> None:
    """AWS: an array of size 10 with SEQUENTIAL runs its children one after another."""
    c = cache()
    seq = Dependency(None, DependencyType.SEQUENTIAL)
    c.upsert_job(make_job("S", array=10, deps=(seq,)), 0)
    order = admitted(cycle(c))
    for i in range(9):
        c.attempt_finished("ns/S", i, 1, i + 1, exit_code=0)
        order += admitted(cycle(c, i + 1))
    assert order == [f"ns/S:{i}" for i in range(10)]


def test_whole_dependency_on_an_array_waits_for_all_children() -> None:
    c = cache()
    c.upsert_job(make_job("A", array=3), 0)
    c.upsert_job(make_job("after", deps=(dep("A"),)), 0)
    cycle(c)
    for i in range(2):
        c.attempt_finished("ns/A", i, 1, 1, exit_code=0)
    assert admitted(cycle(c, 1)) == []
    c.attempt_finished("ns/A", 2, 1, 2, exit_code=0)
    assert admitted(cycle(c, 2)) == ["ns/after"]


def test_array_children_spill_to_the_next_ce_in_one_cycle() -> None:
    c = make_cache((make_ce("a", 2), make_ce("b", 2)), (make_queue(ces=("a", "b")),))
    c.upsert_job(make_job("arr", array=5), 0)
    ds = cycle(c)
    assert [(d.index, d.compute_environment) for d in of_type(ds, Admit)] == [
        (0, "a"),
        (1, "a"),
        (2, "b"),
        (3, "b"),
    ]
