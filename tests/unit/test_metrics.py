"""kubatch.metrics: exposition parses, names follow Prometheus conventions, methods count right."""

from __future__ import annotations

import re
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from kubatch.core.lifecycle import Phase
from kubatch.metrics import Metrics, estimate_cost

NAME_RE = re.compile(r"^kubatch_[a-z][a-z0-9_]*$")
UNBOUNDED_LABELS = {"job", "name", "pod", "node", "namespace", "uid", "attempt", "le_"}
BAD_UNITS = ("milliseconds", "minutes", "hours", "_ms", "bytes_total", "percent", "cents")


def _samples(m: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(m.exposition().decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def _value(m: Metrics, name: str, **labels: str) -> float:
    return _samples(m)[(name, tuple(sorted(labels.items())))]


def _exercise(m: Metrics) -> None:
    m.observe_submission("high")
    m.observe_submission("high")
    m.observe_admission("high", wait_seconds=12.0, capacity_type="Spot")
    m.observe_completion("high", Phase.SUCCEEDED, run_seconds=30.0, cost=0.5)
    m.observe_completion("high", "Failed", run_seconds=4.0, reason="RetriesExhausted")
    m.observe_retry("high", cost=0.1, capacity_type="Spot")
    m.observe_interruption("high", capacity_type="Spot", cost=0.2)
    m.set_queue_phase_counts("high", {Phase.RUNNING: 3, "Runnable": 2})
    m.set_ce("spot", desired=8, allocated=6, capacity=8, max=16, capacity_type="Spot")
    m.observe_cycle(0.004, {"Admit": 2, "Fail": 0})
    m.count_write("create", "jobs")
    m.count_write("patch", "batchjobs/status", 3)
    m.count_handler_error("on_batch_job")
    m.observe_admission_review("BatchJob", "CREATE", allowed=False)
    m.observe_admission_review("Pod", "DELETE", allowed=True)  # bounded: "other"
    m.set_leader("kubatch-0", True)
    m.count_relist("pods")
    m.observe_preemption("low", "high")
    m.observe_gang_release("high")
    m.set_consumable("licence", 4, 1, 3)


def test_exposition_parses_and_every_family_is_prefixed() -> None:
    m = Metrics()
    _exercise(m)
    families = list(text_string_to_metric_families(m.exposition().decode()))
    assert len(families) >= 18
    for family in families:
        assert NAME_RE.match(family.name), family.name
        assert family.documentation.strip(), f"{family.name} has no help text"


def test_names_follow_prometheus_conventions_walking_the_registry() -> None:
    m = Metrics()
    _exercise(m)
    seen_types: set[str] = set()
    for family in m.registry.collect():
        seen_types.add(family.type)
        name = family.name
        assert NAME_RE.match(name), name
        for bad in BAD_UNITS:
            assert bad not in name, f"{name}: use base units"
        if family.type == "counter":
            # prometheus_client strips _total from the family; every sample carries it back.
            assert {s.name for s in family.samples} <= {f"{name}_total", f"{name}_created"}
            assert any(s.name == f"{name}_total" for s in family.samples), name
        else:
            assert not name.endswith("_total"), f"{name}: only counters end in _total"
        if family.type == "histogram":
            assert name.endswith("_seconds"), f"{name}: histograms here measure time in seconds"
        if "time" in name or "duration" in name or "wait" in name:
            assert name.endswith(("_seconds", "_seconds_total")), name
        for sample in family.samples:
            labels = set(sample.labels) - {"le"}
            assert not labels & UNBOUNDED_LABELS, f"{name}: unbounded label {labels}"
    assert seen_types == {"counter", "gauge", "histogram"}


def test_required_metric_families_exist() -> None:
    names = {f.name for f in Metrics().registry.collect()}
    required = {
        "kubatch_jobs",
        "kubatch_job_submissions",
        "kubatch_job_admissions",
        "kubatch_job_completions",
        "kubatch_job_failures",
        "kubatch_job_retries",
        "kubatch_job_interruptions",
        "kubatch_job_wait_seconds",
        "kubatch_job_run_seconds",
        "kubatch_compute_environment_desired_vcpus",
        "kubatch_compute_environment_allocated_vcpus",
        "kubatch_compute_environment_capacity_vcpus",
        "kubatch_compute_environment_max_vcpus",
        "kubatch_scheduler_cycle_duration_seconds",
        "kubatch_scheduler_decisions",
        "kubatch_api_writes",
        "kubatch_estimated_cost_dollars",
    }
    assert required <= names, required - names


def test_methods_count_what_happened() -> None:
    m = Metrics()
    _exercise(m)
    assert _value(m, "kubatch_job_submissions_total", queue="high") == 2
    assert _value(m, "kubatch_job_admissions_total", queue="high", capacity_type="Spot") == 1
    assert _value(m, "kubatch_job_completions_total", queue="high", phase="Succeeded") == 1
    assert _value(m, "kubatch_job_completions_total", queue="high", phase="Failed") == 1
    assert _value(m, "kubatch_job_failures_total", queue="high", reason="RetriesExhausted") == 1
    assert _value(m, "kubatch_job_retries_total", queue="high") == 1
    assert _value(m, "kubatch_job_interruptions_total", queue="high", capacity_type="Spot") == 1
    assert _value(m, "kubatch_job_wait_seconds_count", queue="high") == 1
    assert _value(m, "kubatch_job_wait_seconds_sum", queue="high") == 12.0
    assert _value(m, "kubatch_job_wait_seconds_bucket", queue="high", le="10.0") == 0
    assert _value(m, "kubatch_job_wait_seconds_bucket", queue="high", le="30.0") == 1
    assert _value(m, "kubatch_job_run_seconds_sum", queue="high") == 34.0
    cost_od = _value(
        m, "kubatch_estimated_cost_dollars_total", queue="high", capacity_type="OnDemand"
    )
    cost_spot = _value(
        m, "kubatch_estimated_cost_dollars_total", queue="high", capacity_type="Spot"
    )
    assert cost_od == pytest.approx(0.5)
    assert cost_spot == pytest.approx(0.3)
    assert _value(m, "kubatch_jobs", queue="high", phase="Running") == 3
    assert _value(m, "kubatch_jobs", queue="high", phase="Runnable") == 2
    assert _value(m, "kubatch_jobs", queue="high", phase="Succeeded") == 0
    assert _value(m, "kubatch_compute_environment_allocated_vcpus", compute_environment="spot") == 6
    assert _value(m, "kubatch_compute_environment_max_vcpus", compute_environment="spot") == 16
    assert (
        _value(
            m,
            "kubatch_compute_environment_info",
            compute_environment="spot",
            capacity_type="Spot",
            state="Enabled",
        )
        == 1
    )
    assert _value(m, "kubatch_scheduler_cycle_duration_seconds_count") == 1
    assert _value(m, "kubatch_scheduler_cycles_total") == 1
    assert _value(m, "kubatch_scheduler_decisions_total", type="Admit") == 2
    assert ("kubatch_scheduler_decisions_total", (("type", "Fail"),)) not in _samples(m)
    assert _value(m, "kubatch_api_writes_total", verb="patch", resource="batchjobs/status") == 3


def test_phase_counts_reset_phases_that_emptied() -> None:
    m = Metrics()
    m.set_queue_phase_counts("q", {Phase.RUNNING: 5})
    m.set_queue_phase_counts("q", {Phase.SUCCEEDED: 5})
    assert _value(m, "kubatch_jobs", queue="q", phase="Running") == 0
    assert _value(m, "kubatch_jobs", queue="q", phase="Succeeded") == 5
    m.remove_queue("q")
    assert not any(name == "kubatch_jobs" for name, _ in _samples(m))


def test_completion_needs_a_terminal_phase() -> None:
    with pytest.raises(ValueError, match="terminal"):
        Metrics().observe_completion("q", Phase.RUNNING)


@pytest.mark.parametrize(
    ("reason", "expected"),
    [("DependencyFailed", "DependencyFailed"), ("free text from a pod", "Other"), (None, "Other")],
    ids=["known-reason", "unbounded-text", "missing"],
)
def test_failure_reason_label_is_bounded(reason: str | None, expected: str) -> None:
    m = Metrics()
    m.observe_completion("q", Phase.FAILED, reason=reason)
    assert _value(m, "kubatch_job_failures_total", queue="q", reason=expected) == 1


def test_capacity_type_label_is_bounded() -> None:
    m = Metrics()
    m.observe_admission("q", capacity_type="whatever-a-user-typed")
    assert _value(m, "kubatch_job_admissions_total", queue="q", capacity_type="Other") == 1


def test_ce_info_follows_changes_and_remove_ce_forgets() -> None:
    m = Metrics()
    m.set_ce("ce", 1, 1, 1, 4, capacity_type="Spot", state="Enabled")
    m.set_ce("ce", 1, 1, 1, 4, capacity_type="Spot", state="Disabled")
    infos = [k for k in _samples(m) if k[0] == "kubatch_compute_environment_info"]
    assert infos == [
        (
            "kubatch_compute_environment_info",
            (("capacity_type", "Spot"), ("compute_environment", "ce"), ("state", "Disabled")),
        )
    ]
    m.remove_ce("ce")
    assert not any(name.startswith("kubatch_compute_environment") for name, _ in _samples(m))


def test_instances_do_not_share_a_registry() -> None:
    a, b = Metrics(), Metrics()
    a.observe_submission("q")
    assert _value(a, "kubatch_job_submissions_total", queue="q") == 1
    assert ("kubatch_job_submissions_total", (("queue", "q"),)) not in _samples(b)


@pytest.mark.parametrize(
    ("price", "seconds", "job_vcpus", "node_vcpus", "expected"),
    [
        (0.40, 3600, 2, 4, 0.20),
        (0.40, 1800, 4, 4, 0.20),
        (1.00, 3600, 8, 4, 1.00),  # never more than the whole node
        (0.0, 3600, 1, 1, 0.0),
        (0.5, -5, 1, 1, 0.0),
        (0.5, 3600, 1, 0, 0.5),
    ],
    ids=["half-node", "half-hour", "capped-at-node", "free", "negative-time", "unknown-node"],
)
def test_estimate_cost(
    price: float, seconds: float, job_vcpus: float, node_vcpus: float, expected: float
) -> None:
    assert estimate_cost(price, seconds, job_vcpus, node_vcpus) == pytest.approx(expected)


def test_http_server_serves_the_registry_on_loopback() -> None:
    m = Metrics()
    m.observe_submission("served")
    server, thread = m.start_http_server(0)
    try:
        port = server.server_port
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            body = resp.read().decode()
        assert server.server_address[0] == "127.0.0.1"
    finally:
        server.shutdown()
        server.server_close()
    thread.join(timeout=5)
    assert not thread.is_alive()
    samples = [s for f in text_string_to_metric_families(body) for s in f.samples]
    assert Sample("kubatch_job_submissions_total", {"queue": "served"}, 1.0) in [
        Sample(s.name, s.labels, s.value) for s in samples
    ]


def test_every_metric_is_documented() -> None:
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "observability.md").read_text()
    for family in Metrics().registry.collect():
        series = f"{family.name}_total" if family.type == "counter" else family.name
        assert f"| `{series}` | {family.type}" in doc, f"{series} missing in docs/observability.md"


def test_a_queues_gang_releases_start_at_zero() -> None:
    m = Metrics()
    m.observe_submission("q")
    assert _value(m, "kubatch_gang_releases_total", queue="q") == 0.0
    m.observe_gang_release("q")
    assert _value(m, "kubatch_gang_releases_total", queue="q") == 1.0
