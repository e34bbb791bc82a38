"""The console's in-memory index: rows, filters, paging, counts, dependents, listeners."""

from __future__ import annotations

from typing import Any

from kubatch.console.index import Filters, Index, job_row


def bj(ns: str, name: str, *, queue: str = "q", phase: str | None = None, created: int = 0,
       deps: tuple[str, ...] = (), reason: str = "") -> dict[str, Any]:  # fmt: skip
    status: dict[str, Any] = {}
    if phase:
        status = {"phase": phase, "reason": reason}
    return {
        "metadata": {
            "namespace": ns,
            "name": name,
            "uid": f"uid-{ns}-{name}",
            "creationTimestamp": f"2026-01-01T00:{created // 60:02d}:{created % 60:02d}Z",
        },
        "spec": {"jobQueue": queue, "dependsOn": [{"jobName": d} for d in deps]},
        "status": status,
    }


def test_a_half_written_job_still_has_a_row() -> None:
    row = job_row({"metadata": {"name": "x"}})
    assert (row.name, row.phase, row.queue, row.created, row.attempts) == (
        "x",
        "Submitted",
        "",
        0.0,
        0,
    )


def test_filters_paging_newest_first_and_visibility() -> None:
    ix = Index()
    ix.sync("jobs", [bj("a", f"job-{i:03d}", created=i, phase="Succeeded") for i in range(120)])
    ix.apply("jobs", "ADDED", bj("b", "other", created=500, phase="Failed", reason="Boom"))
    page = ix.query(Filters(), None, page=1, size=50)
    assert page.total == 121
    assert page.pages == 3
    assert [r.name for r in page.rows[:2]] == ["other", "job-119"]
    last = ix.query(Filters(), None, page=3, size=50)
    assert [r.name for r in last.rows] == [f"job-{i:03d}" for i in range(20, -1, -1)]
    assert ix.query(Filters(name="job-11"), None).total == 10  # job-110 to job-119
    assert [r.name for r in ix.query(Filters(reason="Boom"), None).rows] == ["other"]
    assert ix.query(Filters(phase="Failed"), {"a"}).total == 0  # b is not readable
    assert ix.query(Filters(), {"a"}).total == 120
    assert ix.query(Filters(namespace="b"), None).total == 1
    assert ix.reasons({"a"}) == []
    assert ix.reasons(None) == ["Boom"]


def test_counts_follow_phase_changes_and_deletions() -> None:
    ix = Index()
    ix.apply("jobs", "ADDED", bj("a", "j1", phase="Runnable"))
    ix.apply("jobs", "ADDED", bj("b", "j2", phase="Runnable"))
    ix.apply("jobs", "MODIFIED", bj("a", "j1", phase="Running"))
    assert ix.counts_by_queue(None)["q"] == {"Running": 1, "Runnable": 1}
    assert ix.counts_by_queue({"a"})["q"] == {"Running": 1}
    ix.apply("jobs", "DELETED", bj("a", "j1", phase="Running"))
    assert ix.counts_by_queue({"a"}) == {}
    # a relist without j2: it is gone too
    ix.sync("jobs", [])
    assert ix.counts_by_queue(None) == {}
    assert ix.query(Filters(), None).total == 0


def test_dependents_both_ways_and_listeners() -> None:
    ix = Index()
    seen: list[set[tuple[str, ...]]] = []
    ix.listeners.append(seen.append)
    ix.apply("jobs", "ADDED", bj("a", "second", deps=("first",)))
    ix.apply("jobs", "ADDED", bj("a", "third", deps=("first",)))
    assert ix.dependents("a", "first") == ["second", "third"]
    assert ix.dependents("b", "first") == []
    ix.apply("jobs", "MODIFIED", bj("a", "third", deps=("first",)))  # unchanged: no event
    ix.apply("jobs", "DELETED", bj("a", "second"))
    assert ix.dependents("a", "first") == ["third"]
    assert seen == [{("job", "a", "second")}, {("job", "a", "third")}, {("job", "a", "second")}]
    ix.sync("queues", [{"metadata": {"name": "q1"}}])
    ix.apply("ces", "ADDED", {"metadata": {"name": "ce1"}})
    assert seen[-2:] == [{("queue", "q1")}, {("ce", "ce1")}]
    assert ix.synced == {"queues"}


def test_counted_and_scanned_totals_agree() -> None:
    ix = Index()
    phases = ("Runnable", "Running", "Succeeded", "Failed")
    items = [
        bj(f"ns{i % 3}", f"j{i:03d}", queue=f"q{i % 2}", phase=phases[i % 4], created=i,
           reason="R" if i % 5 == 0 else "")
        for i in range(200)
    ]  # fmt: skip
    ix.sync("jobs", items)
    for f in (Filters(queue="q1"), Filters(namespace="ns2", phase="Failed"), Filters(reason="R")):
        for allowed in (None, {"ns0", "ns2"}):
            want = [
                r for r in sorted(ix.jobs.values(), key=lambda r: r.order)
                if f.matches(r) and (allowed is None or r.namespace in allowed)
            ]  # fmt: skip
            for page in (1, 2, 9):
                got = ix.query(f, allowed, page=page, size=7)
                assert got.total == len(want)
                assert list(got.rows) == want[(page - 1) * 7 : page * 7]
