"""Spending limits per queue: charges in one-minute buckets, sliding windows, admissions wait
(BudgetExceeded, with when the window frees) and resume; running attempts are untouched."""

from __future__ import annotations

import pytest
from tests.unit.core.core_factories import admitted, cycle, make_cache, make_ce, make_job

from kubatch.core.budget import DAY, HOUR, Budget, Spend, state
from kubatch.core.decisions import SetWaiting, Terminate
from kubatch.core.lifecycle import Reason
from kubatch.core.model import JobQueue


def test_windows_slide_and_free_at_the_right_time() -> None:
    s = Spend()
    s.charge(3.0, 0.0)
    s.charge(4.0, 1800.0)
    s.charge(0.0, 1900.0)  # nothing charged: no bucket
    assert len(s.buckets) == 2
    assert s.spent(2000.0, HOUR) == pytest.approx(7.0)
    assert s.spent(4000.0, HOUR) == pytest.approx(4.0)  # the first charge aged out
    st = state(s, Budget(per_hour=5.0), 2000.0)
    assert (st.window, st.limit) == ("hour", 5.0)
    assert st.blocked_until == pytest.approx(0.0 + 60 + HOUR)  # when the $3 bucket leaves
    assert state(s, Budget(per_hour=5.0), st.blocked_until + 1).blocked_until is None
    assert state(s, Budget(per_day=100.0), 2000.0).blocked_until is None


def test_buckets_are_bounded_to_a_day() -> None:
    s = Spend()
    for minute in range(3 * 1440):
        s.charge(0.01, minute * 60.0)
    assert len(s.buckets) <= 1442
    assert s.spent(3 * 1440 * 60.0, DAY) == pytest.approx(14.4, rel=0.01)


def test_a_queue_over_its_limit_admits_nothing_new_and_says_until_when() -> None:
    q = JobQueue("q", compute_environments=("ce",), budget=Budget(per_hour=1.0))
    c = make_cache((make_ce(vcpus=8),), (q,))
    c.upsert_job(make_job("running"), 0)
    assert admitted(cycle(c, 0)) == ["ns/running"]
    c.charge("q", 1.5, 10.0)
    c.upsert_job(make_job("waits"), 10)
    ds = cycle(c, 20)
    assert admitted(ds) == []
    assert not [d for d in ds if isinstance(d, Terminate)]  # running attempts never stopped
    [w] = [d for d in ds if isinstance(d, SetWaiting)]
    assert w.reason is Reason.BUDGET_EXCEEDED
    assert w.resumes_at == pytest.approx(0.0 + 60 + HOUR)
    assert admitted(cycle(c, HOUR + 61)) == ["ns/waits"]


def test_waiting_jobs_learn_at_once_that_the_budget_is_reached() -> None:
    q = JobQueue("q", compute_environments=("ce",), budget=Budget(per_day=2.0))
    c = make_cache((make_ce(vcpus=1),), (q,))
    c.upsert_job(make_job("a"), 0)
    c.upsert_job(make_job("b"), 0)
    ds = cycle(c, 0)
    assert [d.reason for d in ds if isinstance(d, SetWaiting)] == [Reason.INSUFFICIENT_CAPACITY]
    c.charge("q", 2.0, 5.0)
    ds = cycle(c, 6)  # not a position-refresh cycle
    assert [d.reason for d in ds if isinstance(d, SetWaiting)] == [Reason.BUDGET_EXCEEDED]
