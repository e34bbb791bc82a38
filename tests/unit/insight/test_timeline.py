"""insight.timeline and insight.draw: lanes from statuses, Jobs, pods and child records; the
text, SVG and HTML drawings of them."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from tests.unit.insight.factories import T, attempt, batchjob, k8s_job, pod, record

from kubatch.core.lifecycle import Phase
from kubatch.insight import draw
from kubatch.insight.timeline import (
    Outcome,
    Sources,
    Span,
    build_timeline,
    job_lane,
    summary,
)

SVG = "{http://www.w3.org/2000/svg}"


def spans(lane: object) -> list[tuple[str, float, float, str | None]]:
    return [
        (s.span.value, s.start - T, s.end - T, s.outcome.value if s.outcome else None)
        for s in lane.segments  # type: ignore[attr-defined]
    ]


def test_a_job_that_waited_started_ran_and_succeeded() -> None:
    job = batchjob("a", 0, "Succeeded", attempts=[attempt(1, 10, 30)], stopped=30)
    lane = job_lane(job, [k8s_job("a", 1, 4)], [], now=T + 100)
    assert spans(lane) == [
        ("Waiting", 0, 4, None),
        ("Starting", 4, 10, None),
        ("Running", 10, 30, "Succeeded"),
    ]
    assert lane.seconds(Span.WAITING) == 4
    assert lane.seconds(Span.RUNNING) == 20
    assert lane.compute_environments == [("ce", "OnDemand")]


def test_retries_and_interruptions_are_marked_and_waits_between_attempts_kept() -> None:
    job = batchjob(
        "a",
        0,
        "Failed",
        reason="RetriesExhausted",
        stopped=60,
        attempts=[
            attempt(1, 5, 10, ce="spot", capacity_type="Spot", exit_code=143, interrupted=True),
            attempt(2, 20, 30, exit_code=1),
            attempt(3, 40, 60, exit_code=1),
        ],
    )
    lane = job_lane(job, now=T + 100)
    ends = [(s.attempt, s.outcome) for s in lane.segments if s.outcome is not None]
    assert ends == [(1, Outcome.INTERRUPTED), (2, Outcome.RETRIED), (3, Outcome.FAILED)]
    waits = [(s.start - T, s.end - T) for s in lane.segments if s.span is Span.WAITING]
    assert waits == [(0, 5), (10, 20), (30, 40)]
    assert (lane.attempts, lane.retries, lane.interruptions) == (3, 1, 1)
    assert lane.compute_environments == [("spot", "Spot"), ("ce", "OnDemand")]


def test_a_terminated_job_ends_failed_not_interrupted() -> None:
    job = batchjob(
        "a",
        0,
        "Failed",
        reason="Terminated",
        stopped=20,
        attempts=[attempt(1, 5, 20, exit_code=None, interrupted=True)],
    )
    lane = job_lane(job, now=T + 100)
    assert lane.segments[-1].outcome is Outcome.FAILED


@pytest.mark.parametrize(
    ("phase", "expected"),
    [("Runnable", [("Waiting", 0, 50, None)]), ("Failed", [("Waiting", 0, 12, "Failed")])],
    ids=["still-waiting", "failed-before-running"],
)
def test_jobs_that_never_ran(phase: str, expected: list[tuple[str, float, float, str]]) -> None:
    job = batchjob("a", 0, phase, stopped=12 if phase == "Failed" else None)
    assert spans(job_lane(job, now=T + 50)) == expected


def test_a_running_attempt_runs_until_now_and_a_starting_one_starts_until_now() -> None:
    running = batchjob("a", 0, "Running", attempts=[attempt(1, 5, None)])
    assert spans(job_lane(running, now=T + 40))[-1] == ("Running", 5, 40, "Ongoing")
    starting = batchjob("b", 0, "Starting")
    lane = job_lane(starting, [k8s_job("b", 1, 8)], [pod("b", 1, None)], now=T + 40)
    assert spans(lane) == [("Waiting", 0, 8, None), ("Starting", 8, 40, "Ongoing")]


def test_array_children_from_jobs_pods_and_records() -> None:
    parent = batchjob("arr", 0, "Running", array=3)
    jobs = [
        k8s_job("arr", 1, 2, index=0, capacity="spot"),
        k8s_job("arr", 2, 12, index=0),
        k8s_job("arr", 1, 3, index=1),
        k8s_job("arr", 1, 4, index=2),
    ]
    pods = [
        pod("arr", 1, 3, None, index=0, reason="Terminated"),
        pod("arr", 2, 14, 20, index=0),
        pod("arr", 1, 5, 25, index=1, exit_code=3),
        pod("arr", 1, 6, None, index=2),
    ]
    rec = record(
        "arr", [(0, "Succeeded", 2, 0, 1), (1, "Failed", 1, 1, 0), (2, "Running", 1, 0, 0)]
    )
    tl = build_timeline(Sources([parent], jobs, pods, [rec]), T + 30)
    (lane,) = tl.lanes
    assert lane.array_size == 3
    assert [c.label for c in lane.children] == ["arr[0]", "arr[1]", "arr[2]"]
    c0, c1, c2 = lane.children
    assert [s.outcome for s in c0.segments if s.outcome] == [Outcome.INTERRUPTED, Outcome.SUCCEEDED]
    assert c0.compute_environments == [("ce", "Spot"), ("ce", "OnDemand")]
    assert c1.phase is Phase.FAILED
    assert c1.segments[-1].outcome is Outcome.FAILED
    assert c2.segments[-1].span is Span.RUNNING
    assert c2.segments[-1].end == T + 30
    assert (lane.attempts, lane.interruptions) == (4, 1)
    # all three ran at once from 6 s (child 2's start) to 15 s (child 0's reclaim); child 2
    # alone from 25 s to now
    assert max(n for _, n in lane.running) == 3
    assert lane.running[-2] == (T + 25, 1)
    assert lane.running[-1] == (T + 30, 0)


def test_earlier_child_attempts_without_pods_are_classified_by_the_record_counts() -> None:
    parent = batchjob("arr", 0, "Succeeded", array=2, stopped=50)
    jobs = [
        k8s_job("arr", 1, 1, index=0, ended=10),
        k8s_job("arr", 2, 12, index=0, ended=30),
        k8s_job("arr", 1, 1, index=1, ended=10),
        k8s_job("arr", 2, 12, index=1, ended=30),
    ]
    rec = record("arr", [(0, "Succeeded", 2, 1, 0), (1, "Succeeded", 2, 0, 1)])
    tl = build_timeline(Sources([parent], jobs, [], [rec]), T + 60)
    c0, c1 = tl.lanes[0].children
    assert c0.segments[1].outcome is Outcome.RETRIED
    assert c1.segments[1].outcome is Outcome.INTERRUPTED


def test_children_beyond_the_limit_are_counted_not_drawn() -> None:
    parent = batchjob("arr", 0, "Running", array=10)
    jobs = [k8s_job("arr", 1, 1, index=i) for i in range(10)]
    tl = build_timeline(Sources([parent], jobs), T + 5, children_limit=4)
    assert len(tl.lanes[0].children) == 4
    assert tl.lanes[0].hidden_children == 6


def test_lanes_by_creation_and_bounds() -> None:
    jobs = [
        batchjob("late", 10, "Runnable"),
        batchjob("early", 0, "Succeeded", attempts=[attempt(1, 1, 3)], stopped=3),
    ]
    tl = build_timeline(Sources(jobs), T + 20)
    assert [x.label for x in tl.lanes] == ["early", "late"]
    assert (tl.start, tl.end) == (T, T + 20)
    doc = summary(tl)
    assert [x["label"] for x in doc["lanes"]] == ["early", "late"]
    assert doc["lanes"][0]["segments"][-1]["outcome"] == "Succeeded"


def picture() -> object:
    jobs = [
        batchjob(
            "spotty",
            0,
            "Succeeded",
            stopped=40,
            attempts=[
                attempt(1, 5, 15, ce="spot", capacity_type="Spot", interrupted=True),
                attempt(2, 20, 40),
            ],
        ),
        batchjob(
            "flaky",
            0,
            "Failed",
            reason="RetriesExhausted",
            stopped=30,
            attempts=[attempt(1, 5, 10, exit_code=1), attempt(2, 15, 30, exit_code=1)],
        ),
        batchjob("arr", 0, "Running", array=2),
        batchjob("waiting & <odd>", 2, "Runnable"),
    ]
    ks = [k8s_job("arr", 1, 1, index=0), k8s_job("arr", 1, 2, index=1)]
    ps = [pod("arr", 1, 3, 20, index=0), pod("arr", 1, 4, None, index=1)]
    return build_timeline(Sources(jobs, ks, ps), T + 45, title="test run")


def test_svg_is_well_formed_and_shows_every_job_and_mark() -> None:
    tl = picture()
    svg = draw.timeline_svg(tl)  # type: ignore[arg-type]
    root = ET.fromstring(svg)
    texts = [t.text or "" for t in root.iter(f"{SVG}text")]
    for label in ("spotty", "flaky", "arr", "arr[0]", "arr[1]", "waiting & <odd>", "test run"):
        assert label in texts, label
    classes = [e.get("class") for e in root.iter() if e.get("class")]
    assert classes.count("bolt") >= 2  # spotty's interruption (+ the legend)
    assert classes.count("cross") >= 3  # flaky's retry and final failure (+ the legend)
    assert "running-children" in classes
    fills = {e.get("fill") for e in root.iter(f"{SVG}rect") if e.get("class") == "running"}
    assert {draw.COLORS["Spot"], draw.COLORS["OnDemand"]} <= fills


def test_html_embeds_the_svg_and_a_row_per_lane() -> None:
    page = draw.timeline_html(picture())  # type: ignore[arg-type]
    assert page.startswith("<!doctype html>")
    assert "<svg" in page
    assert page.count("<tr>") == 1 + 6  # the header, four jobs and two children
    assert "waiting &amp; &lt;odd&gt;" in page


def test_text_has_a_row_per_lane_marks_and_a_legend() -> None:
    text = draw.timeline_text(picture(), width=100)  # type: ignore[arg-type]
    lines = text.splitlines()
    rows = [line for line in lines if "│" in line]
    assert len(rows) == 6
    spotty = next(r for r in rows if r.startswith("spotty"))
    assert "↯" in spotty
    assert "▓" in spotty
    assert "█" in spotty
    flaky = next(r for r in rows if r.startswith("flaky"))
    assert flaky.count("✗") == 2
    assert all(len(r) <= 100 + 80 for r in rows)
    assert "↯ interrupted" in lines[-1]


@pytest.mark.parametrize(("seconds", "step"), [(9, 2), (45, 10), (600, 120), (7200, 900)])
def test_tick_steps_are_round(seconds: float, step: int) -> None:
    assert draw.tick_step(seconds) == step
