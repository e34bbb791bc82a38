"""insight.plan and insight.rates: fit per CE with the reason, the likely instance type, its
price and an attempt's cost, the start estimate; and what the plan says is wrong."""

from __future__ import annotations

import pytest
from tests.unit.insight.factories import T, batchjob, ce, definition, k8s_job, node, queue

from kubatch.core.catalogue import DEFAULT
from kubatch.core.cost import estimate_cost
from kubatch.core.resources import Resources
from kubatch.insight.objects import InsightError
from kubatch.insight.plan import build_plan, format_plan, landing, parse_duration, plan_warnings
from kubatch.insight.rates import (
    Rate,
    admission_rate,
    admission_times,
    estimate_start,
    last_estimate,
    published_rate,
    running_uids,
    waiting_ahead,
)
from kubatch.timefmt import rfc3339

NO_RATE = Rate(0, 300, None)


def job(**spec: object) -> dict[str, object]:
    return {
        "apiVersion": "kubatch.io/v1alpha1",
        "kind": "BatchJob",
        "metadata": {"name": "p", "namespace": "ns"},
        "spec": {"jobQueue": "q", "jobDefinition": "d", **spec},
    }


def plan(
    defn: dict[str, object] | None = None,
    ces: list[dict[str, object]] | None = None,
    q: dict[str, object] | None = None,
    body: dict[str, object] | None = None,
    **kw: object,
):  # type: ignore[no-untyped-def]
    ces = (
        ces
        if ces is not None
        else [ce("small", max_vcpus=2, instance_types=("m5.large",)), ce("big", max_vcpus=64)]
    )
    q = q if q is not None else queue("q", [c["metadata"]["name"] for c in ces])  # type: ignore[index]
    kw.setdefault("rate", NO_RATE)
    kw.setdefault("ahead", 0)
    return build_plan(
        body or job(),
        definition() if defn is None else defn,
        q,
        {c["metadata"]["name"]: c for c in ces},
        now=T,
        **kw,
    )  # type: ignore[index, arg-type]


def test_per_ce_verdicts_landing_price_and_cost() -> None:
    p = plan(definition(cpu="4", memory="8Gi"), duration=1800)
    small, big = p.ces
    assert not small.verdict.can_run
    assert "maxvCpus 2" in small.verdict.why
    assert small.landing is None
    assert big.verdict.can_run
    assert big.verdict.now
    assert big.landing is not None
    assert big.landing.instance_type == "m5.xlarge"  # the cheapest of its types that holds it
    assert big.landing.price_per_hour == DEFAULT["m5.xlarge"].on_demand_price
    assert big.attempt_cost == pytest.approx(estimate_cost(0.192, 1800, 4, 4))
    assert p.likely == "big"
    assert p.start.at == T
    assert p.problems == ()
    doc = p.as_dict()
    assert doc["estimatedAttemptCost"] == pytest.approx(0.096)
    assert doc["computeEnvironments"][0]["canEverRun"] is False
    text = format_plan(p, T)
    assert "never" in text
    assert "m5.xlarge" in text
    assert "Start:         now" in text


def test_every_resource_is_judged_from_the_catalogue() -> None:
    p = plan(
        definition(cpu="1", memory="1Gi", **{"nvidia.com/gpu": "1"}),
        ces=[ce("cpu", instance_types=("m5",)), ce("gpu", instance_types=("p3",))],
    )
    cpu, gpu = p.ces
    assert not cpu.verdict.can_run
    assert "1 GPU > 0" in cpu.verdict.why
    assert gpu.landing is not None
    assert gpu.landing.instance_type == "p3.2xlarge"


def test_spot_landing_respects_bid_percentage_and_uses_spot_prices() -> None:
    size = Resources(1000, 1024**3)
    types = ("m5.large", "c5.large")
    # c5.large: spot 0.032 of on-demand 0.085 (37.6%); m5.large: 0.035 of 0.096 (36.5%)
    both = landing(ce("s", capacity_type="Spot", instance_types=types, bid=38), size)
    assert both is not None
    assert both.spot
    assert (both.instance_type, both.price_per_hour) == ("c5.large", 0.032)
    only_m5 = landing(ce("s", capacity_type="Spot", instance_types=types, bid=37), size)
    assert only_m5 is not None
    assert only_m5.instance_type == "m5.large"
    assert landing(ce("s", capacity_type="Spot", instance_types=types, bid=30), size) is None


def test_unmanaged_landing_is_the_cheapest_node_of_its_pool() -> None:
    pool = ce("own", kind="Unmanaged")
    nodes = [
        node("a", "own", "8", "32Gi", price=0.5),
        node("b", "own", "2", "4Gi", price=0.1),
        node("c", "other", "8", "32Gi", price=0.01),
    ]
    p = plan(definition(cpu="2", memory="2Gi"), ces=[pool], nodes=nodes, duration=3600)
    (only,) = p.ces
    assert only.landing is not None
    assert only.landing.price_per_hour == 0.1
    assert only.attempt_cost == pytest.approx(0.1)


def test_duration_from_the_timeout_and_arrays_multiply() -> None:
    p = plan(definition(timeout=600), body=job(arrayProperties={"size": 10}))
    assert p.duration == 600
    assert "timeout" in p.duration_source
    assert p.children == 10
    doc = p.as_dict()
    assert doc["estimatedJobCost"] == pytest.approx(doc["estimatedAttemptCost"] * 10)
    assert plan().duration is None


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("no-definition", "JobDefinitionNotFound"),
        ("no-queue", "JobQueueNotFound"),
        ("too-big", "NoComputeEnvironmentCanFit"),
        ("no-memory", "InvalidSpec"),
        ("bad-param", "InvalidSpec"),
    ],
)
def test_problems_the_operator_would_fail_or_park_the_job_for(case: str, expected: str) -> None:
    if case == "no-definition":
        p = build_plan(
            job(), None, queue("q", ["big"]), {"big": ce("big")}, now=T, rate=NO_RATE, ahead=0
        )
    elif case == "no-queue":
        p = build_plan(job(), definition(), None, {}, now=T, rate=NO_RATE, ahead=0)
    elif case == "too-big":
        p = plan(definition(cpu="200"))
    elif case == "no-memory":
        d = definition()
        del d["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["memory"]  # type: ignore[index]
        p = plan(d)
    else:
        p = plan(body=job(parameters={"x": "1"}, overrides={"command": ["echo", "Ref::nope"]}))
    assert any(expected in problem for problem in p.problems), p.problems
    assert any(expected in w for w in plan_warnings(p))


def test_not_a_batchjob_is_an_error() -> None:
    with pytest.raises(InsightError, match="BatchJob"):
        build_plan({"kind": "JobQueue"}, None, None, {}, now=T, rate=NO_RATE, ahead=0)
    with pytest.raises(InsightError, match="invalid"):
        build_plan(job(arrayProperties={"size": 1}), None, None, {}, now=T, rate=NO_RATE, ahead=0)


@pytest.mark.parametrize(
    ("text", "seconds"), [("90", 90), ("90s", 90), ("15m", 900), ("1h30m", 5400), ("2d", 172800)]
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "0", "-5", "5x", "1h30", "m"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(InsightError):
        parse_duration(text)


# --------------------------------------------------------------------------- rates


def test_admission_rate_over_the_window_or_since_the_first_admission() -> None:
    jobs = [k8s_job("a", 1, t) for t in (-1000, 100, 150, 200, 250)] + [
        k8s_job("b", 1, 240, queue="other")
    ]
    times = admission_times(jobs, "q")
    assert len(times) == 5
    rate = admission_rate(times, T + 300, window=300)
    assert rate.admissions == 4
    assert rate.per_second == pytest.approx(4 / 300)
    young = admission_rate([T + 280, T + 290], T + 300, window=300)
    assert young.per_second == pytest.approx(2 / 20)
    assert admission_rate([T - 1000], T, window=300).per_second is None


def test_waiting_ahead_counts_admissions_not_parents() -> None:
    jobs = [
        batchjob("a", 0, "Runnable"),
        batchjob("b", 0, "Running"),
        batchjob("c", 0, "Runnable", queue="other"),
        batchjob("arr", 0, "Running", array=10, arrayStatusSummary={"runnable": 7}),
    ]
    assert waiting_ahead(jobs, "q") == 8


def test_jobs_admitted_but_still_runnable_in_status_are_not_ahead() -> None:
    jobs = [batchjob("a", 0, "Runnable"), batchjob("b", 1, "Runnable"), batchjob("c", 2, None)]
    k8s = [k8s_job("a", 1, 5), k8s_job("old", 1, 0, ended=3), k8s_job("arr", 1, 4, index=0)]
    admitted = running_uids(k8s)
    assert admitted == {"a-uid"}
    assert waiting_ahead(jobs, "q", admitted) == 2  # b, and c not yet seen by the operator


def test_start_estimates() -> None:
    rate = Rate(30, 300, 0.1)
    assert estimate_start(T, 0, NO_RATE, room_now=True).at == T
    assert estimate_start(T, 3, rate, room_now=True).at == T  # FIFO: it fits, it passes
    strict = estimate_start(T, 3, rate, room_now=True, strict_fifo=True)
    assert strict.at == pytest.approx(T + 35)  # (3 ahead + half an interval) / 0.1
    assert strict.position == 4
    assert estimate_start(T, 9, rate, room_now=False).at == pytest.approx(T + 95)
    floored = estimate_start(T, 0, rate, room_now=False, floor=T + 500)
    assert floored.at == pytest.approx(T + 510)
    assert estimate_start(T, 2, NO_RATE, room_now=False).at is None
    assert estimate_start(T, 0, rate, room_now=True, enabled=False).at is None
    assert estimate_start(T, 0, rate, room_now=True, can_run=False).at is None


def test_last_estimate_is_the_operators_latest_for_a_waiting_job() -> None:
    jobs = [
        batchjob("a", 0, "Runnable", estimatedStartTime=rfc3339(T + 50)),
        batchjob("b", 0, "Runnable", estimatedStartTime=rfc3339(T + 90)),
        batchjob("c", 0, "Succeeded", estimatedStartTime=rfc3339(T + 500)),
    ]
    assert last_estimate(jobs, "q") == T + 90
    assert last_estimate(jobs, "other") is None


def test_plan_start_from_rate_and_ahead_when_no_room() -> None:
    full = ce("full", max_vcpus=4, allocated=4)
    p = plan(ces=[full], rate=Rate(20, 200, 0.1), ahead=4)
    assert not p.ces[0].verdict.now
    assert p.start.at == pytest.approx(T + 45)
    assert p.start.position == 5
    assert "4 waiting ahead" in p.start.basis


def test_a_reached_spending_limit_delays_the_start_and_the_plan_says_what_it_would_use() -> None:
    q = queue("q", ["big"], spendingLimit={"perHour": 0.5})
    q["status"] = {"spend": {"lastHour": 0.5, "lastDay": 0.5, "blockedUntil": rfc3339(T + 900)}}
    p = plan(ces=[ce("big")], q=q, duration=3600)
    assert p.start.at == T + 900
    assert "spending window frees" in p.start.basis
    assert any("BudgetExceeded" in n for n in p.notes)
    used = next(n for n in p.notes if "per hour" in n)
    # an m5.xlarge hour ($0.192) for the 2-vCPU job, half of the 4-vCPU node: $0.096, 19%
    assert "$0.0960 (19% of it)" in used


def test_the_operators_published_rate_when_nothing_can_be_measured() -> None:
    q = queue("q", ["big"])
    q["status"] = {"admissionsPerMinute": 12.0}
    assert published_rate(q, NO_RATE).per_second == pytest.approx(0.2)
    measured = Rate(3, 60, 0.05)
    assert published_rate(q, measured) is measured
    assert published_rate(queue("q", ["big"]), NO_RATE) is NO_RATE
