"""The benchmarks' pure halves: stage breakdowns, profile summaries, manifests and targets."""

from __future__ import annotations

from kubatch.api.models import BatchJob, ComputeEnvironment, JobDefinition, JobQueue
from kubatch.devkit.promtext import parse_metrics
from kubatch_bench import e2e_spec as spec
from kubatch_bench import profile, scale
from kubatch_bench.harness import job_controller
from kubatch_bench.trace import Trace, stage_table

MODELS = {
    "BatchJob": BatchJob,
    "ComputeEnvironment": ComputeEnvironment,
    "JobQueue": JobQueue,
    "JobDefinition": JobDefinition,
}


def _valid(doc: dict[str, object]) -> None:
    MODELS[str(doc["kind"])].model_validate(doc)


def test_trace_stages_are_differences_of_first_stamps() -> None:
    t = Trace()
    for i in range(10):
        t.stamp(f"j{i}", "created", 0.0)
        t.stamp(f"j{i}", "job", 1.0 + i)
        t.stamp(f"j{i}", "job", 99.0)  # a later stamp of the same mark is ignored
        t.on_pod(f"j{i}", {"spec": {}, "status": {"phase": "Pending"}}, 2.0 + i)
        t.on_pod(f"j{i}", {"spec": {"nodeName": "n"}, "status": {"phase": "Running"}}, 3.0 + i)
        t.on_pod(f"j{i}", {"spec": {"nodeName": "n"}, "status": {"phase": "Succeeded"}}, 5.0 + i)
        t.stamp(f"j{i}", "done", 5.5 + i)
    stages = t.stages()
    assert stages["queued"]["p50"] == 5.0  # nearest rank: the 5th of 1..10
    assert stages["queued"]["max"] == 10.0
    assert stages["job_controller"]["p99"] == 1.0
    assert stages["scheduler"]["p50"] == 1.0
    assert stages["node_start"]["p50"] == 0.0  # bound and running in one event
    assert stages["run"]["p50"] == 2.0
    assert stages["operator_end"]["p50"] == 0.5
    assert stages["starting"]["p50"] == 2.0
    assert stages["slot"]["count"] == 10
    assert "job_controller" in stage_table(stages)


def test_trace_skips_stages_without_both_stamps() -> None:
    t = Trace()
    t.stamp("a", "created", 0.0)
    t.stamp("a", "job", 1.0)
    stages = t.stages(["a", "missing"])
    assert list(stages) == ["queued"]
    assert stages["queued"]["count"] == 1


def test_profile_summary_shares_areas_and_leaves() -> None:
    lib = "/usr/lib/python3.11"
    site = "/v/lib/python3.11/site-packages"
    loop = f"run ({lib}/asyncio/base_events.py:1)"
    raw = "\n".join(
        [
            f"{loop};_process ({site}/kopf/_core/x.py:3);loads ({lib}/json/decoder.py:9) 30",
            f"{loop};_patch_job (/src/kubatch/controller/effects.py:300) 50",
            f"{loop};schedule (/src/kubatch/core/scheduler.py:10) 20",
            f"{loop};select (selectors.py:468) 300",
            "garbage line",
        ]
    )
    out = profile.summarise(raw)
    assert out["samples"] == 100
    areas = out["areas_percent_of_busy_samples"]
    assert areas["kopf (event processing, all)"] == 30.0
    assert areas["JSON decoding"] == 30.0
    assert areas["status patching (effects)"] == 50.0
    assert areas["scheduling core (schedule)"] == 20.0
    assert out["idle_samples"] == 300
    assert next(iter(out["top_self_percent"])).startswith("_patch_job (")
    assert profile.summarise("") == {"samples": 0, "idle_samples": 0}


def test_e2e_manifests_are_valid_kubatch_objects() -> None:
    for doc in spec.setup_manifests(256, 512, 10.0):
        _valid(doc)
    parent, kids = spec.fan_out("fo", 3)
    parents, child = spec.fan_in("fi", 3)
    for doc in (parent, *kids, *parents, child):
        _valid(doc)
    assert [d["jobName"] for d in child["spec"]["dependsOn"]] == [
        p["metadata"]["name"] for p in parents
    ]
    assert kids[0]["spec"]["dependsOn"] == [{"jobName": "fo-parent"}]
    assert spec.pod_template(10.0)["metadata"]["annotations"]["sim.kubatch.io/duration"] == "10"


def test_targets_are_judged_only_at_their_size() -> None:
    result = {"jobs": 2000, "ratio": 0.95, "seconds_to_all_succeeded": 80.0,
              "writes_per_batchjob": 4.2, "free_submit_to_job_p99_s": 0.4,
              "latency_rate_per_s": 50.0, "operator_peak_rss_mib": 250.0,
              "batchjobs_present_at_end": 15000, "restart_to_first_admission_s": 3.0,
              "restart_batchjobs_present": 2001}  # fmt: skip
    spec.add_targets(result)
    t = result["targets"]
    assert t["ratio"]["status"] == "met"
    assert t["seconds_to_all_succeeded"]["status"] == "n/a (met at N=2000)"
    assert t["writes_per_batchjob"]["status"] == "n/a (missed at N=2000)"
    assert t["free_submit_to_job_p99_s"]["status"] == "met"
    assert t["operator_peak_rss_mib"]["status"] == "met"
    assert t["restart_to_first_admission_s"]["status"].startswith("n/a")
    assert t["fan_in_release_p99_s"]["status"] == "n/a"
    result["jobs"] = 10000
    spec.add_targets(result)
    assert result["targets"]["writes_per_batchjob"]["status"] == "missed"


def test_a_timed_out_phase_is_reported_as_a_missed_lower_bound() -> None:
    result = {"jobs": 10000, "ratio": 0.4, "seconds_to_all_jobs_created": 1500.0,
              "seconds_to_all_succeeded": 1500.0, "writes_per_batchjob": 3.9,
              "timed_out": ["timed out waiting for every BatchJob's Kubernetes Job"]}  # fmt: skip
    spec.add_targets(result)
    t = result["targets"]
    assert t["seconds_to_all_jobs_created"]["status"] == "missed (timed out)"
    assert "lower bound" in t["seconds_to_all_succeeded"]["note"]
    assert t["ratio"]["status"] == "missed (timed out)"
    assert t["writes_per_batchjob"]["status"] == "n/a (timed out)"  # not every job had ended
    result["ratio"] = 0.95
    spec.add_targets(result)
    assert result["targets"]["ratio"]["status"] == "n/a (timed out)"


def test_scale_manifests_and_summary() -> None:
    for doc in [*scale.manifests(), scale.job("a"), scale.job("b", size=100)]:
        _valid(doc)
    result = {"steps": [
        {"batchjobs": 10000, "restart_to_first_admission_s": 4.0, "vm_hwm_mib": 200.0},
        {"batchjobs": 15000, "vm_hwm_mib": 290.0},
        {"batchjobs": 100000, "restart_to_first_admission_s": 70.0, "vm_hwm_mib": 900.0,
         "vm_hwm_mib_after_restart": 1100.0},
    ]}  # fmt: skip
    scale.summarise(result)
    t = result["targets"]
    assert t["restart_to_first_admission_s_with_10000"]["status"] == "met"
    assert t["restart_to_first_admission_s_with_100000"]["status"] == "missed"
    assert t["rss_mib_with_100000"]["value"] == 1100.0
    assert t["rss_mib_with_100000"]["status"] == "missed"
    assert (t["rss_mib_with_15000"]["value"], t["rss_mib_with_15000"]["status"]) == (290.0, "met")


def test_job_controller_figures_are_differences_of_two_scrapes() -> None:
    def scrape(syncs: int, busy: float, waited: float, calls: int, call_s: float) -> str:
        pods = '{url="https://h/api/v1/namespaces/%7Bnamespace%7D/pods",verb="POST"}'
        events = '{url="https://h/api/v1/namespaces/%7Bnamespace%7D/events",verb="POST"}'
        return "\n".join([
            "# TYPE workqueue_work_duration_seconds histogram",
            f'workqueue_work_duration_seconds_sum{{name="job"}} {busy}',
            f'workqueue_work_duration_seconds_count{{name="job"}} {syncs}',
            f'workqueue_work_duration_seconds_sum{{name="garbagecollector"}} {busy * 9}',
            f'workqueue_work_duration_seconds_count{{name="garbagecollector"}} {syncs * 9}',
            "# TYPE workqueue_queue_duration_seconds histogram",
            f'workqueue_queue_duration_seconds_sum{{name="job"}} {waited}',
            f'workqueue_queue_duration_seconds_count{{name="job"}} {syncs}',
            "# TYPE rest_client_request_duration_seconds histogram",
            f"rest_client_request_duration_seconds_sum{pods} {call_s}",
            f"rest_client_request_duration_seconds_count{pods} {calls}",
            f"rest_client_request_duration_seconds_sum{events} 999",
            f"rest_client_request_duration_seconds_count{events} 999",
            "",
        ])  # fmt: skip

    before = parse_metrics(scrape(100, 10.0, 50.0, 40, 2.0))
    after = parse_metrics(scrape(400, 70.0, 6050.0, 240, 22.0))
    jc = job_controller(before, after, seconds=12.0, jobs=100)
    assert jc == {
        "syncs_per_job": 3.0,
        "mean_sync_ms": 200.0,
        "mean_queue_wait_s": 20.0,
        "busy_workers": 5.0,
        "api_calls_per_job": 2.0,
        "mean_api_call_ms": 100.0,
    }
    assert job_controller({}, after, 12.0, 100) == {}, "no scrape (not a local plane): nothing"
