"""Scheduler rules: priority, FIFO, StrictFIFO, capacity, CEs, fail fast, fair share,
time limits, namespaces, retries, interruptions, terminate, rollback."""

from __future__ import annotations

import pytest
from tests.unit.core.core_factories import (
    GI,
    admitted,
    cycle,
    make_cache,
    make_ce,
    make_job,
    make_queue,
    of_type,
)

from kubatch.core.decisions import (
    Admit,
    Fail,
    Retry,
    SetWaiting,
    SkipComputeEnvironment,
    Succeed,
    Terminate,
)
from kubatch.core.lifecycle import Phase, Reason
from kubatch.core.model import (
    FairSharePolicy,
    Shape,
    Share,
    StateTimeLimit,
    TimeLimitAction,
)
from kubatch.core.resources import Resources
from kubatch.core.selector import LabelSelector


def waiting(decisions: list[object]) -> dict[str, SetWaiting]:
    return {d.job_key: d for d in decisions if isinstance(d, SetWaiting)}


def test_fifo_by_submission_time_and_capacity_bound() -> None:
    c = make_cache((make_ce(vcpus=2),), (make_queue(),))
    for n in ("a", "b", "c"):
        c.upsert_job(make_job(n), 0)
    ds = cycle(c)
    assert admitted(ds) == ["ns/a", "ns/b"]
    w = waiting(ds)["ns/c"]
    assert (w.phase, w.reason, w.queue_position) == (
        Phase.RUNNABLE,
        Reason.INSUFFICIENT_CAPACITY,
        1,  # 1-based: the next job to start (SEMANTICS §4)
    )


def test_no_head_of_line_blocking() -> None:
    c = make_cache((make_ce(vcpus=4),), (make_queue(),))
    c.upsert_job(make_job("small1", vcpus=2), 0)
    c.upsert_job(make_job("big", vcpus=4), 0)
    c.upsert_job(make_job("small2", vcpus=2), 0)
    ds = cycle(c)
    assert admitted(ds) == ["ns/small1", "ns/small2"]
    assert waiting(ds)["ns/big"].queue_position == 1


def test_strict_fifo_blocks_behind_the_head() -> None:
    c = make_cache((make_ce(vcpus=4),), (make_queue(strict_fifo=True),))
    c.upsert_job(make_job("small1", vcpus=2), 0)
    c.upsert_job(make_job("big", vcpus=4), 0)
    c.upsert_job(make_job("small2", vcpus=2), 0)
    ds = cycle(c)
    assert admitted(ds) == ["ns/small1"]
    w = waiting(ds)
    assert w["ns/small2"].reason is Reason.BLOCKED_BY_QUEUE_HEAD
    assert w["ns/small2"].queue_position == 2


def test_a_held_job_waits_while_the_jobs_behind_it_go_first() -> None:
    """Held (its Kubernetes Job was refused): not admitted until the hold runs out."""
    c = make_cache((make_ce(vcpus=1),), (make_queue(),))
    c.upsert_job(make_job("a"), 0)
    c.upsert_job(make_job("b"), 0)
    [adm] = of_type(cycle(c, 0), Admit)
    assert adm.job_key == "ns/a"
    c.forget(adm, 0, hold=5)
    ds = cycle(c, 1)
    assert admitted(ds) == ["ns/b"]
    w = waiting(ds)["ns/a"]
    assert (w.reason, w.queue_position) == (Reason.JOB_CREATE_FAILED, 1)
    c.attempt_finished("ns/b", None, 1, 2, exit_code=0)
    assert admitted(cycle(c, 2)) == []  # room, but still held
    assert admitted(cycle(c, 5)) == ["ns/a"]


def test_a_held_strict_fifo_head_holds_its_queue_but_not_the_others() -> None:
    """A StrictFIFO head that does not fit reserves its CEs from lower-priority queues; one
    whose Job was refused does not (it might be refused for long: a tenant's quota)."""
    queues = (make_queue("strict", priority=10, strict_fifo=True), make_queue("low", priority=1))
    c = make_cache((make_ce(vcpus=1),), queues)
    c.upsert_job(make_job("head", queue="strict", created_at=0), 0)
    [adm] = of_type(cycle(c, 0), Admit)
    c.forget(adm, 0, hold=60)
    c.upsert_job(make_job("next", queue="strict", created_at=1), 1)
    c.upsert_job(make_job("other", queue="low", created_at=2), 1)
    ds = cycle(c, 1)
    assert admitted(ds) == ["ns/other"]
    w = waiting(ds)
    assert w["ns/head"].reason is Reason.JOB_CREATE_FAILED
    assert w["ns/next"].reason is Reason.BLOCKED_BY_QUEUE_HEAD


def test_higher_priority_queue_first() -> None:
    c = make_cache(
        (make_ce(vcpus=1),), (make_queue("low", priority=1), make_queue("high", priority=10))
    )
    c.upsert_job(make_job("l", queue="low", created_at=0), 0)
    c.upsert_job(make_job("h", queue="high", created_at=5), 0)
    assert admitted(cycle(c)) == ["ns/h"]


def test_first_ce_in_order_with_room() -> None:
    c = make_cache((make_ce("a", 1), make_ce("b", 4)), (make_queue(ces=("a", "b")),))
    c.upsert_job(make_job("x"), 0)
    c.upsert_job(make_job("y"), 0)
    ds = cycle(c)
    assert [d.compute_environment for d in of_type(ds, Admit)] == ["a", "b"]


def test_memory_and_gpu_and_node_capacity_bound_admission() -> None:
    ce = make_ce(vcpus=100, node_capacity=Resources(8000, 4 * GI, 1))
    c = make_cache((ce,), (make_queue(),))
    c.upsert_job(make_job("m1", mem_gi=3), 0)
    c.upsert_job(make_job("m2", mem_gi=3), 0)
    c.upsert_job(make_job("g1", mem_gi=1, gpu=1), 0)
    c.upsert_job(make_job("g2", mem_gi=0, gpu=1), 0)
    assert admitted(cycle(c)) == ["ns/m1", "ns/g1"]


@pytest.mark.parametrize(
    ("queue_enabled", "ce_enabled", "reason"),
    [(False, True, Reason.QUEUE_DISABLED), (True, False, Reason.COMPUTE_ENVIRONMENT_DISABLED)],
    ids=["queue-disabled", "ce-disabled"],
)
def test_disabled_queue_or_ce_admits_nothing(
    queue_enabled: bool, ce_enabled: bool, reason: Reason
) -> None:
    c = make_cache((make_ce(enabled=ce_enabled),), (make_queue(enabled=queue_enabled),))
    c.upsert_job(make_job("a"), 0)
    ds = cycle(c)
    assert admitted(ds) == []
    assert waiting(ds)["ns/a"].reason is reason


def test_fail_fast_names_largest_placement() -> None:
    ces = (
        make_ce("small", 2),
        make_ce("gpu", 8, shapes=(Shape("p", Resources(4000, 16 * GI, 1)),)),
    )
    c = make_cache(ces, (make_queue(ces=("small", "gpu")),))
    c.upsert_job(make_job("huge", vcpus=6), 0)
    ds = cycle(c)
    [f] = of_type(ds, Fail)
    assert f.reason is Reason.NO_COMPUTE_ENVIRONMENT_CAN_FIT
    assert "4 vCPU" in f.message
    assert "gpu" in f.message


def test_unknown_queue_waits_then_runs() -> None:
    c = make_cache((make_ce(),))
    c.upsert_job(make_job("a", queue="later"), 0)
    ds = cycle(c)
    assert waiting(ds)["ns/a"].reason is Reason.UNKNOWN_QUEUE
    c.upsert_queue(make_queue("later"), 1)
    assert admitted(cycle(c, 1)) == ["ns/a"]


def test_namespace_selector_rejects_other_namespaces() -> None:
    sel = LabelSelector.parse({"matchLabels": {"team": "ml"}})
    c = make_cache((make_ce(),), (make_queue(selector=sel),))
    c.set_namespace_labels("ml", {"team": "ml"})
    c.upsert_job(make_job("ok", ns="ml"), 0)
    c.upsert_job(make_job("no", ns="web"), 0)
    ds = cycle(c)
    assert admitted(ds) == ["ml/ok"]
    [f] = of_type(ds, Fail)
    assert (f.job_key, f.reason) == ("web/no", Reason.QUEUE_NOT_ALLOWED)


def test_forget_rolls_back_an_admission() -> None:
    c = make_cache((make_ce(vcpus=1),), (make_queue(),))
    c.upsert_job(make_job("a"), 0)
    [adm] = of_type(cycle(c), Admit)
    c.forget(adm, 1)
    assert c.phase_of("ns/a") is Phase.RUNNABLE
    assert c.ledgers["ce"].mcpu == 0
    [again] = of_type(cycle(c, 2), Admit)
    assert again.attempt == 1
    assert again.k8s_job_name == adm.k8s_job_name


def test_retry_then_success() -> None:
    c = make_cache((make_ce(),), (make_queue(),))
    c.upsert_job(make_job("a", attempts=2), 0)
    cycle(c)
    c.attempt_finished("ns/a", None, 1, 1, exit_code=3)
    ds = cycle(c, 1)
    [r] = of_type(ds, Retry)
    assert (r.attempt, r.interrupted) == (1, False)
    [adm] = of_type(ds, Admit)
    assert adm.attempt == 2
    c.attempt_finished("ns/a", None, 2, 2, exit_code=0)
    assert of_type(cycle(c, 2), Succeed) == [Succeed("ns/a")]


def test_stale_attempt_reports_are_ignored() -> None:
    c = make_cache((make_ce(),), (make_queue(),))
    c.upsert_job(make_job("a", attempts=2), 0)
    cycle(c)
    c.attempt_finished("ns/a", None, 1, 1, exit_code=0)
    c.attempt_finished("ns/a", None, 1, 1, exit_code=1)
    assert c.phase_of("ns/a") is Phase.SUCCEEDED
    assert c.ledgers["ce"].mcpu == 0


def test_timeout_is_not_retried() -> None:
    c = make_cache((make_ce(),), (make_queue(),))
    c.upsert_job(make_job("a", attempts=3, timeout=60), 0)
    [adm] = of_type(cycle(c), Admit)
    assert adm.timeout_seconds == 60
    c.attempt_finished("ns/a", None, 1, 61, exit_code=None, timed_out=True)
    [f] = of_type(cycle(c, 61), Fail)
    assert f.reason is Reason.ATTEMPT_TIMEOUT


def test_interruptions_use_their_own_budget_then_fall_back() -> None:
    ces = (make_ce("spot", 4, capacity_type="Spot"), make_ce("od", 4))
    c = make_cache(ces, (make_queue(ces=("spot", "od")),))
    c.upsert_job(make_job("a", attempts=1, interruption_budget=2), 0)
    used = []
    for t in range(4):
        [adm] = of_type(cycle(c, t), Admit)
        used.append(adm.compute_environment)
        c.attempt_finished(
            "ns/a",
            None,
            adm.attempt,
            t + 0.5,
            exit_code=None,
            interrupted=True,
            status_reason="node spot-1 reclaimed",
        )
    assert used == ["spot", "spot", "spot", "od"]
    assert c.phase_of("ns/a") is Phase.RUNNABLE  # od: budget again, attempts untouched


def test_interrupted_without_fallback_fails() -> None:
    c = make_cache((make_ce(),), (make_queue(),))
    c.upsert_job(make_job("a", interruption_budget=0), 0)
    [_adm] = of_type(cycle(c), Admit)
    c.attempt_finished("ns/a", None, 1, 1, exit_code=None, interrupted=True)
    [f] = of_type(cycle(c, 1), Fail)
    assert f.reason is Reason.INTERRUPTED


def test_terminate_before_start_fails_at_once() -> None:
    c = make_cache((make_ce(vcpus=1),), (make_queue(),))
    c.upsert_job(make_job("blocker"), 0)
    c.upsert_job(make_job("a"), 0)
    cycle(c)
    c.upsert_job(make_job("a", terminate="user asked"), 1)
    [f] = of_type(cycle(c, 1), Fail)
    assert (f.job_key, f.reason, f.message) == ("ns/a", Reason.TERMINATED, "user asked")


def test_terminate_after_start_stops_the_attempt_then_fails() -> None:
    c = make_cache((make_ce(),), (make_queue(),))
    c.upsert_job(make_job("a", attempts=3), 0)
    [adm] = of_type(cycle(c), Admit)
    c.attempt_started("ns/a", None, 1, 1)
    c.upsert_job(make_job("a", attempts=3, terminate="stop"), 2)
    [t] = of_type(cycle(c, 2), Terminate)
    assert t.k8s_job_name == adm.k8s_job_name
    c.attempt_finished("ns/a", None, 1, 3, exit_code=143)
    [f] = of_type(cycle(c, 3), Fail)
    assert f.reason is Reason.TERMINATED


@pytest.mark.parametrize(
    ("action", "expected"),
    [(TimeLimitAction.CANCEL, Fail), (TimeLimitAction.FALLBACK, SkipComputeEnvironment)],
    ids=["cancel", "fallback"],
)
def test_runnable_state_time_limit(action: TimeLimitAction, expected: type) -> None:
    lim = StateTimeLimit(Phase.RUNNABLE, 600, action, reason="InsufficientCapacity")
    c = make_cache((make_ce("a", 1), make_ce("b", 1)), (make_queue(ces=("a", "b"), limits=(lim,)),))
    c.upsert_job(make_job("blocker-a"), 0)
    c.upsert_job(make_job("blocker-b"), 0)
    c.upsert_job(make_job("x"), 0)
    assert admitted(cycle(c, 0)) == ["ns/blocker-a", "ns/blocker-b"]
    assert of_type(cycle(c, 599), expected) == []
    assert len(of_type(cycle(c, 601), expected)) == 1
    c.attempt_finished("ns/blocker-a", None, 1, 602, exit_code=0)
    ds = cycle(c, 602)
    if expected is Fail:
        assert c.phase_of("ns/x") is Phase.FAILED
        assert admitted(ds) == []
    else:  # x now only targets b: a's free room is not for it
        assert admitted(ds) == []
        c.attempt_finished("ns/blocker-b", None, 1, 603, exit_code=0)
        [adm] = of_type(cycle(c, 603), Admit)
        assert (adm.job_key, adm.compute_environment) == ("ns/x", "b")


def test_pending_state_time_limit_cancels() -> None:
    lim = StateTimeLimit(Phase.PENDING, 10, TimeLimitAction.CANCEL)
    c = make_cache((make_ce(),), (make_queue(limits=(lim,)),))
    from kubatch.core.model import Dependency

    c.upsert_job(make_job("x", deps=(Dependency("never"),)), 0)
    cycle(c, 0)
    [f] = of_type(cycle(c, 11), Fail)
    assert f.reason is Reason.STATE_TIME_LIMIT


def test_fair_share_lower_weight_gets_bigger_share() -> None:
    fs = FairSharePolicy(shares=(Share("a", 0.5), Share("b", 1.0)))
    c = make_cache((make_ce(vcpus=6),), (make_queue(fair_share=fs),))
    for i in range(10):
        c.upsert_job(make_job(f"a{i}", share="a"), 0)
        c.upsert_job(make_job(f"b{i}", share="b"), 0)
    adm = admitted(cycle(c))
    assert sum(k.startswith("ns/a") for k in adm) == 4
    assert sum(k.startswith("ns/b") for k in adm) == 2


def test_fair_share_scheduling_priority_within_share() -> None:
    fs = FairSharePolicy(shares=(Share("a", 1.0),))
    c = make_cache((make_ce(vcpus=1),), (make_queue(fair_share=fs),))
    c.upsert_job(make_job("low", share="a", priority=1), 0)
    c.upsert_job(make_job("high", share="a", priority=9), 0)
    assert admitted(cycle(c)) == ["ns/high"]


def test_fair_share_compute_reservation_keeps_room_for_new_shares() -> None:
    fs = FairSharePolicy(compute_reservation=50, shares=(Share("a", 1.0),))
    c = make_cache((make_ce(vcpus=4),), (make_queue(fair_share=fs),))
    for i in range(4):
        c.upsert_job(make_job(f"a{i}", share="a"), 0)
    # the first admission makes share a active: reserved = 4 x 0.5 = 2 vCPU for new shares
    assert len(admitted(cycle(c))) == 2
    assert len(admitted(cycle(c, 1))) == 0
    c.upsert_job(make_job("b0", share="b"), 2)
    assert admitted(cycle(c, 2)) == ["ns/b0"]


def test_waiting_status_is_coalesced() -> None:
    c = make_cache((make_ce(vcpus=1),), (make_queue(),))
    c.upsert_job(make_job("a"), 0)
    c.upsert_job(make_job("b"), 0)
    first = cycle(c, 0)
    assert "ns/b" in waiting(first)
    assert waiting(cycle(c, 1)) == {}  # nothing changed: nothing to write


def test_every_runnable_job_gets_a_position_on_refresh() -> None:
    c = make_cache((make_ce(vcpus=1),), (make_queue(),))
    for i in range(5):
        c.upsert_job(make_job(f"j{i}"), 0)
    cycle(c, 0)
    c.attempt_finished("ns/j0", None, 1, 1, exit_code=0)
    cycle(c, 1)
    ds = cycle(c, 100)  # refresh
    w = waiting(ds)
    assert [w[f"ns/j{i}"].queue_position for i in (2, 3, 4)] == [1, 2, 3]


def test_a_fresh_job_behind_the_walk_is_not_counted_behind_jobs_admitted_in_its_cycle() -> None:
    """Its first position is exact: the jobs admitted in the cycle that first sees it were
    counted ahead of it when it was submitted, and are gone from the queue now."""
    c = make_cache((make_ce(vcpus=1),), (make_queue(),))
    for name in ("run", "a", "b"):
        c.upsert_job(make_job(name), 0)
    assert admitted(cycle(c, 0)) == ["ns/run"]
    c.attempt_finished("ns/run", None, 1, 1, exit_code=0)
    c.upsert_job(make_job("c"), 1)  # behind a and b: estimated 3rd when submitted
    ds = cycle(c, 1)  # not a refresh: the walk stops at the full pool after admitting a
    assert admitted(ds) == ["ns/a"]
    w = waiting(ds)
    assert "ns/b" not in w  # its written position (2) is refreshed later (hysteresis)
    assert w["ns/c"].queue_position == 2
    assert waiting(cycle(c, 100))["ns/b"].queue_position == 1  # the refresh agrees
    assert "ns/c" not in waiting(cycle(c, 200))  # still 2: nothing to write


def test_restore_after_restart_keeps_capacity_and_attempts() -> None:
    c = make_cache((make_ce(vcpus=2),), (make_queue(),))
    c.restore_job(
        make_job("run", attempts=3),
        0,
        phase=Phase.RUNNING,
        attempt=2,
        failures=1,
        compute_environment="ce",
    )
    c.restore_job(make_job("done"), 0, phase=Phase.SUCCEEDED, attempt=1)
    c.upsert_job(make_job("arr", array=3), 0)
    c.restore_child("ns/arr", 0, Phase.RUNNING, 1, 0, "ce")
    c.restore_child("ns/arr", 1, Phase.SUCCEEDED, 1, 0)
    c.upsert_job(make_job("wait"), 0)
    ds = cycle(c)
    assert admitted(ds) == []  # 2 vCPU held by the restored attempts
    assert c.ledgers["ce"].mcpu == 2000
    c.attempt_finished("ns/run", None, 2, 1, exit_code=0)
    assert admitted(cycle(c, 1)) == ["ns/arr:2"]


@pytest.mark.parametrize(
    ("action", "final"),
    [(TimeLimitAction.CANCEL, Phase.FAILED), (TimeLimitAction.FALLBACK, Phase.STARTING)],
    ids=["cancel", "fallback"],
)
def test_starting_state_time_limit_stops_the_attempt(action: TimeLimitAction, final: Phase) -> None:
    lim = StateTimeLimit(Phase.STARTING, 300, action)
    c = make_cache((make_ce("a"), make_ce("b")), (make_queue(ces=("a", "b"), limits=(lim,)),))
    c.upsert_job(make_job("x"), 0)
    [adm] = of_type(cycle(c, 0), Admit)
    assert adm.compute_environment == "a"
    [t] = of_type(cycle(c, 301), Terminate)
    assert (t.reason, t.k8s_job_name) == (Reason.STATE_TIME_LIMIT, adm.k8s_job_name)
    c.attempt_finished("ns/x", None, 1, 302, exit_code=None)
    ds = cycle(c, 302)
    assert c.phase_of("ns/x") is final
    if final is Phase.FAILED:
        [f] = of_type(ds, Fail)
        assert f.reason is Reason.STATE_TIME_LIMIT
    else:
        [again] = of_type(ds, Admit)
        assert (again.compute_environment, again.attempt) == ("b", 2)


@pytest.mark.parametrize(
    ("old", "new", "write"),
    [(None, 5, True), (5, 4, True), (150, 149, False), (150, 135, True), (5000, 4600, False)],
    ids=["first", "front-exact", "deep-small-move", "deep-10pct", "deep-8pct"],
)
def test_position_hysteresis(old: int | None, new: int, write: bool) -> None:
    from kubatch.core.scheduler import _moved_enough

    assert _moved_enough(old, new) is write


def test_position_refresh_depth_bounds_the_walk() -> None:
    from kubatch.core.cache import CacheConfig

    c = make_cache((make_ce(vcpus=1),), (make_queue(),), CacheConfig(position_refresh_depth=3))
    c.upsert_job(make_job("blocker"), 0)
    for i in range(6):
        c.upsert_job(make_job(f"j{i}"), 0)
    first = waiting(cycle(c, 0))
    assert len(first) == 6  # every new job gets a status (estimated position)
    c.remove_job("ns/j0")
    again = waiting(cycle(c, 100))
    assert set(again) <= {"ns/j1", "ns/j2", "ns/j3"}
    assert again["ns/j1"].queue_position == 1
