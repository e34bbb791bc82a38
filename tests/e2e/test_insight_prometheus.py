"""The dashboard and the alerting rules, proven on a real Prometheus (Debian's 2.42).

A Prometheus on loopback scrapes the running operator every second and evaluates the chart's
PrometheusRule, rendered by Helm with test-sized ``for:`` windows (``alerts.for.*``,
``alerts.window``). A workload exercises every panel of dashboards/kubatch.json — jobs that
succeed, fail, retry, an array, spot capacity that is reclaimed, a second wave of
submissions — and provokes alerts: a
queue stuck behind a disabled compute environment while another has room
(KubatchQueueStuck), a compute environment full to its maxvCpus
(KubatchComputeEnvironmentAtMax), a queue whose jobs all fail (KubatchJobFailuresHigh), a
queue over its spending limit (KubatchBudgetReached).
Then every panel's query returns data over the run, and those alerts fire for exactly the
objects that provoked them.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.e2e.conftest import Stack
from tests.e2e.factories import API, make_ce, make_definition, make_job, make_queue
from tests.unit.test_alerts import render_rules

from kubatch.devkit.prometheus import PrometheusServer, ensure
from kubatch.local.helm import ensure_helm

pytestmark = pytest.mark.timeout(420)

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "dashboards" / "kubatch.json"
SHORT = (
    "alerts.enabled=true",
    "alerts.window=30s",
    "alerts.for.queueStuck=3s",
    "alerts.for.computeEnvironmentAtMax=3s",
    "alerts.for.jobFailuresHigh=2s",
    "alerts.for.budgetReached=2s",
    "alerts.thresholds.minFailures=3",
)


def panel_exprs() -> list[tuple[str, str]]:
    def walk(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for p in panels:
            yield p
            yield from walk(p.get("panels") or [])

    doc = json.loads(DASHBOARD.read_text())
    return [
        (f"{p['title']}/{t['refId']}", t["expr"])
        for p in walk(doc["panels"])
        for t in p.get("targets") or []
        if t.get("expr")
    ]


def grafana(expr: str, range_seconds: int) -> str:
    """The expression as Grafana sends it: variables at "All", short intervals."""
    for var, value in (
        ("$__rate_interval", "15s"),
        ("$__interval", "5s"),
        ("$__range", f"{range_seconds}s"),
        ("$queue", ".*"),
        ("$compute_environment", ".*"),
    ):
        expr = expr.replace(var, value)
    assert "$" not in expr, expr
    return expr


def finite_points(result: list[dict[str, Any]]) -> int:
    return sum(
        1
        for series in result
        for _, v in series.get("values") or []
        if not math.isnan(float(v)) and not math.isinf(float(v))
    )


@pytest.fixture(scope="module")
def prometheus(
    stack: Stack, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PrometheusServer]:
    work = tmp_path_factory.mktemp("prometheus")
    rules = render_rules(ensure_helm(), *SHORT)
    assert rules is not None
    (work / "rules.yaml").write_text(yaml.safe_dump(rules))
    server = PrometheusServer(
        work,
        [f"127.0.0.1:{stack.processes.metrics_port}"],
        [work / "rules.yaml"],
        interval=1.0,
        tools=ensure(),
    )
    server.start()
    try:
        server.wait_scraped()
        yield server
    finally:
        server.stop()


def firing(prom: PrometheusServer, name: str, **labels: str) -> list[dict[str, Any]]:
    return [
        a
        for a in prom.alerts()
        if a["labels"].get("alertname") == name
        and a["state"] == "firing"
        and all(a["labels"].get(k) == v for k, v in labels.items())
    ]


def test_every_panel_returns_data_and_alerts_fire(
    stack: Stack, namespace: str, prometheus: PrometheusServer
) -> None:
    ns = namespace
    t0 = time.time()
    od, spot, small, off = f"{ns}-od", f"{ns}-spot", f"{ns}-small", f"{ns}-off"
    q, qf, qs, qx, qb = f"{ns}-q", f"{ns}-fail", f"{ns}-stuck", f"{ns}-full", f"{ns}-budget"
    qp, licence = f"{ns}-urgent", f"{ns}-licence"
    stack.apply(
        [
            make_ce(od, max_vcpus=16),
            make_ce(spot, capacity_type="Spot", max_vcpus=8, bid_percentage=100),
            make_ce(small, max_vcpus=2, instance_types=("m5.large",)),
            make_ce(off, max_vcpus=8, state="Disabled"),
            make_queue(q, [spot, od]),
            make_queue(qf, [od]),
            make_queue(qs, [off]),
            make_queue(qx, [small]),
            make_queue(qb, [od], spendingLimit={"perHour": 0.0001}),
            # depth (#17): a queue that preempts the full CE's jobs, a licence pool
            make_queue(qp, [small], priority=100,
                       preemption={"reclaimFromQueues": "LowerPriority"}),
            {"apiVersion": API, "kind": "ConsumableResource", "metadata": {"name": licence},
             "spec": {"totalQuantity": 2, "resourceType": "REPLENISHABLE"}},
        ]
    )  # fmt: skip
    licensed = make_definition("licensed", duration=2, cpu="500m", memory="512Mi")
    licensed["spec"]["consumableResourceProperties"] = {
        "consumableResourceList": [{"consumableResource": licence, "quantity": 1}]
    }
    stack.apply(
        [
            make_definition("ok", duration=2, cpu="500m", memory="512Mi"),
            licensed,
            make_definition("long", duration=25, cpu="1", memory="512Mi"),
            make_definition(
                "flaky", duration=1, cpu="500m", memory="512Mi", exit_code=1, retry={"attempts": 2}
            ),
            # failures spread over scrapes: a counter series is born at its first increment, so a
            # burst within one scrape would show no increase at all
            *(
                make_definition(
                    f"bad{i}", duration=1 + 2 * i, cpu="250m", memory="256Mi", exit_code=2
                )
                for i in range(5)
            ),
            *(make_job(f"ok-{i}", q, "ok") for i in range(4)),
            make_job("licensed", q, "licensed"),
            make_job("arr", q, "ok", arrayProperties={"size": 6, "parallelism": 3}),
            make_job("spotty", q, "long"),
            make_job("flaky", q, "flaky"),
            *(make_job(f"bad-{i}", qf, f"bad{i}") for i in range(5)),
            *(make_job(f"stuck-{i}", qs, "ok") for i in range(2)),
            *(make_job(f"fill-{i}", qx, "long") for i in range(2)),
            *(make_job(f"spend-{i}", qb, "long") for i in range(3)),
        ],
        ns,
    )

    # Interruptions: reclaim the spot pool once the long job runs there.
    def spotty_running() -> bool:
        st = (stack.get("batchjob", "spotty", ns) or {}).get("status") or {}
        return st.get("phase") == "Running" and st.get("computeEnvironment") == spot

    stack.wait("spotty running on spot", spotty_running, timeout=90)
    stack.reclaim(spot, 1.0)
    for name in [*(f"ok-{i}" for i in range(4)), "arr", "flaky", *(f"bad-{i}" for i in range(5))]:
        stack.wait_phase(ns, name, timeout=150)

    # Alerts: each fires for the objects that provoked it, and only for them.
    stack.wait(
        "KubatchQueueStuck for the stuck queue",
        lambda: firing(prometheus, "KubatchQueueStuck", queue=qs),
        timeout=90,
    )
    stack.wait(
        "KubatchComputeEnvironmentAtMax for the full CE",
        lambda: firing(prometheus, "KubatchComputeEnvironmentAtMax", compute_environment=small),
        timeout=90,
    )
    stack.wait(
        "KubatchJobFailuresHigh for the failing queue",
        lambda: firing(prometheus, "KubatchJobFailuresHigh", queue=qf),
        timeout=90,
    )
    stack.wait(
        "KubatchBudgetReached for the queue over its spending limit",
        lambda: firing(prometheus, "KubatchBudgetReached", queue=qb),
        timeout=90,
    )
    budget = stack.get("jobqueue", qb) or {}
    assert (budget.get("status") or {}).get("spend", {}).get("blockedUntil"), budget
    mine = {q, qf, qs, qx, qb}
    for a in firing(prometheus, "KubatchQueueStuck"):
        assert a["labels"]["queue"] not in mine - {qs}, a  # a queue over budget is not stuck
    for a in firing(prometheus, "KubatchJobFailuresHigh"):
        assert a["labels"]["queue"] not in mine - {qf}, a
    assert not firing(prometheus, "KubatchComputeEnvironmentAtMax", compute_environment=od)
    assert not firing(prometheus, "KubatchOperatorDown")
    assert not firing(prometheus, "KubatchNotLeading")
    stuck = firing(prometheus, "KubatchQueueStuck", queue=qs)[0]
    assert float(stuck["value"]) == 2, stuck
    assert qs in stuck["annotations"]["summary"]

    # The full CE's high-priority queue preempts one of its low-priority jobs.
    stack.apply([make_job("urgent", qp, "ok")], ns)
    stack.wait_phase(ns, "urgent", timeout=120)
    stack.wait_phase(ns, "licensed", timeout=60)

    stack.wait_phase(ns, "spotty", timeout=150)
    # A second wave into series that exist by now (Prometheus sees a counter's first
    # increment only once the series has a sample before it).
    stack.apply([make_job(f"late-{i}", q, "ok") for i in range(3)], ns)
    for i in range(3):
        stack.wait_phase(ns, f"late-{i}", timeout=60)
    time.sleep(3)  # two more scrapes

    # Every panel returns data over the run (as Grafana asks: "All", a short rate interval).
    end = time.time()
    span = int(end - t0) + 5
    empty = []
    for where, expr in panel_exprs():
        result = prometheus.query_range(grafana(expr, span), t0, end, step=2)
        if finite_points(result) == 0:
            empty.append(f"{where}: {expr}")
    assert not empty, "panels without data:\n" + "\n".join(empty)

    # What the panels show is what happened: this run's interruptions and retries.
    interruptions = prometheus.query(
        f'sum(kubatch_job_interruptions_total{{queue="{q}",capacity_type="Spot"}})'
    )
    assert interruptions, "no interruption series"
    assert float(interruptions[0]["value"][1]) >= 1, interruptions
    retries = prometheus.query(f'sum(kubatch_job_retries_total{{queue="{q}"}})')
    assert retries, "no retry series"
    assert float(retries[0]["value"][1]) == 1, retries
    preempted = prometheus.query(
        f'sum(kubatch_job_preemptions_total{{queue="{qx}",preemptor_queue="{qp}"}})'
    )
    assert preempted, "no preemption series"
    assert float(preempted[0]["value"][1]) == 1, preempted
    total = prometheus.query(
        f'kubatch_consumable_resource_units{{resource="{licence}",state="total"}}'
    )
    assert total, "no consumable resource series"
    assert float(total[0]["value"][1]) == 2, total
