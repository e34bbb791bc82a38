"""The chaos tier's pure parts: the outcome each spec implies, how the waves are split into
batches, and the invariants over the cluster's objects (kubatch.devkit.chaos)."""

from __future__ import annotations

from typing import Any

from kubatch.api import labels as L
from kubatch.devkit.chaos import invariants, workload
from kubatch.devkit.chaos.run import _agree, _split
from kubatch.devkit.chaos.workload import Behaviour, Mix, Plan, Retry

RETRY3 = Retry(3, (("3", "Retry"),))


def test_outcomes_follow_from_the_spec_alone() -> None:
    plans = [
        Plan("ok", "ok"),
        Plan("fail", "fail", behaviour=Behaviour(exit_code=2)),
        Plan("flaky", "flaky", behaviour=Behaviour(by_attempt={1: 3}), retry=RETRY3),
        Plan("exhausted", "x", behaviour=Behaviour(exit_code=3), retry=Retry(2, (("3", "Retry"),))),
        Plan(
            "exit",
            "exit",
            behaviour=Behaviour(exit_code=4),
            retry=Retry(3, (("4", "Exit"), ("*", "Retry"))),
        ),
        Plan("timeout", "t", behaviour=Behaviour(600.0), timeout=60),
        Plan("arr", "a", behaviour=Behaviour(by_index={3: 1}), array=6),
        Plan("after-fail", "c", depends_on=("fail",)),
        Plan("after-after", "c", depends_on=("after-fail",)),
        Plan("term", "t", terminate_after=2.0),
    ]
    got = {k: (o.phase, o.failures) for k, o in workload.expected(plans).items()}
    assert got == {
        "ok": ("Succeeded", 0),
        "fail": ("Failed", 1),
        "flaky": ("Succeeded", 1),
        "exhausted": ("Failed", 2),
        "exit": ("Failed", 1),
        "timeout": ("Failed", 1),
        "arr": ("Failed", None),
        "after-fail": ("Failed", 0),
        "after-after": ("Failed", 0),
        "term": ("Failed", None),
    }


def test_an_interruption_shifts_which_attempt_the_simulator_fails() -> None:
    flaky = Plan("flaky", "flaky", behaviour=Behaviour(by_attempt={1: 3}), retry=RETRY3)
    assert workload.failures_given(flaky, []) == 1
    assert workload.failures_given(flaky, [1]) == 0  # attempt 2 exits 0
    assert workload.failures_given(flaky, [2]) == 1
    always = Plan("x", "x", behaviour=Behaviour(exit_code=3), retry=Retry(2, (("3", "Retry"),)))
    assert workload.failures_given(always, [1, 2]) == 2  # interruptions never use retries


def test_a_wave_has_every_kind_and_batches_keep_dependencies_first() -> None:
    plans = workload.wave("w", 150, Mix(timeout=1, side=3).scaled(150))
    assert len(plans) == 150
    kinds = {p.kind for p in plans}
    assert {"fail", "flaky", "exhausted", "exit", "timeout", "terminate", "array", "chain",
            "parent", "fanin", "side", "ok"} <= kinds  # fmt: skip
    batches = _split(plans, 5)
    assert sum(len(b) for b in batches) == 150
    where = {p.name: i for i, b in enumerate(batches) for p in b}
    for p in plans:
        assert all(where[d] <= where[p.name] for d in p.depends_on), p.name


def _bj(name: str, phase: str, *attempts: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"name": name, "uid": f"uid-{name}"},
            "spec": {"jobQueue": "q"},
            "status": {"phase": phase, "attempts": list(attempts)}}  # fmt: skip


def _job(owner: str, attempt: int, name: str = "", active: int = 0) -> dict[str, Any]:
    labels = {L.BATCHJOB: owner, L.BATCHJOB_UID: f"uid-{owner}", L.ATTEMPT: str(attempt)}
    return {"metadata": {"name": name or f"{owner}-{attempt}", "labels": labels},
            "status": {"active": active}}  # fmt: skip


def test_invariants_name_what_broke() -> None:
    plans = [Plan("a", "ok"), Plan("b", "ok"), Plan("c", "ok")]
    outcomes = workload.expected(plans)
    done = {"number": 1, "stoppedAt": "t", "exitCode": 0}
    bjs = [_bj("a", "Succeeded", done), _bj("b", "Running", {"number": 1})]
    jobs = [
        _job("a", 1),
        _job("a", 1, name="a-1-again"),  # a second Job for one attempt
        _job("gone", 1),  # its BatchJob does not exist
        _job("b", 2),  # an attempt the status does not record
    ]
    pods = [{"metadata": {"name": "p", "labels": {"job-name": "nope"}}, "status": {}}]
    f = invariants.check(plans, outcomes, bjs, jobs, pods)
    assert not f.ok
    assert f.lost == ["b (Running: None)", "c (gone)"]
    assert f.duplicate_attempts == ["a attempt 1: 2 Jobs"]
    assert f.orphans == ["Job gone-1 (its BatchJob gone is gone)", "pod p (its Job nope is gone)"]
    assert f.untracked == ["Job b-2 (attempt 2 of b)"]
    clean = invariants.check(plans[:1], outcomes, bjs[:1], jobs[:1], [])
    assert clean.ok, clean.problems()


def test_a_retry_count_that_differs_names_every_attempt() -> None:
    """A flaky job (fails once, then succeeds) whose status shows no failed attempt: the
    finding lists the attempts as recorded (what the next occurrence needs)."""
    plans = [next(p for p in workload.wave("w", 150, Mix().scaled(150)) if p.kind == "flaky")]
    outcomes = workload.expected(plans)
    n = plans[0].name
    assert outcomes[n].failures == 1
    ok = {"number": 2, "stoppedAt": "t", "exitCode": 0, "reason": "Completed"}
    f = invariants.check(plans, outcomes, [_bj(n, "Succeeded", ok)], [_job(n, 2)], [])
    [finding] = f.retries_used
    assert finding.startswith(f"{n} (flaky): 0 failed attempts counted, expected 1")
    assert "attempts: #2 exit 0 Completed" in finding
    first = {"number": 1, "stoppedAt": "t", "exitCode": 1, "reason": "Error"}
    both = _bj(n, "Succeeded", first, ok)
    assert invariants.check(plans, outcomes, [both], [_job(n, 1), _job(n, 2)], []).ok


def test_counters_may_be_short_by_the_kills_never_over() -> None:
    want = invariants.completions([_bj("a", "Succeeded"), _bj("b", "Failed")], {"a", "b"})
    assert _agree({("q", "Succeeded"): 1, ("q", "Failed"): 1}, want, tolerance=0)
    assert _agree({("q", "Succeeded"): 1}, want, tolerance=1)
    assert not _agree({("q", "Succeeded"): 1}, want, tolerance=0)
    assert not _agree({("q", "Succeeded"): 2, ("q", "Failed"): 1}, want, tolerance=5)
