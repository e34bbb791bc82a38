"""kubectl-batch: the pure half (parsing, manifests, tables, the ``why`` explanation)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
import yaml

from kubatch.api.models import parse_batch_job
from kubatch.core.resources import Resources
from kubatch.insight.why import ce_verdict, explain, format_explanation, job_size
from kubatch.plugin.cli import build_parser
from kubatch.plugin.views import (
    CE_HEADERS,
    JOB_HEADERS,
    QUEUE_HEADERS,
    PluginError,
    age,
    as_list,
    build_batch_job,
    ce_rows,
    format_table,
    job_rows,
    parse_depends_on,
    parse_parameter,
    queue_rows,
    render_output,
)
from kubatch.timefmt import rfc3339

NOW = datetime(2026, 1, 2, 12, 0, 0, tzinfo=UTC)


def ts(seconds_ago: float) -> str:
    return rfc3339(NOW.timestamp() - seconds_ago)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a", {"jobName": "a"}),
        ("a:N_TO_N", {"jobName": "a", "type": "N_TO_N"}),
        ("a:completed", {"jobName": "a", "condition": "Completed"}),
        ("a:N_TO_N:Failed", {"jobName": "a", "type": "N_TO_N", "condition": "Failed"}),
        ("a:Failed:n_to_n", {"jobName": "a", "type": "N_TO_N", "condition": "Failed"}),
        ("SEQUENTIAL", {"type": "SEQUENTIAL"}),
        (":SEQUENTIAL", {"type": "SEQUENTIAL"}),
    ],
    ids=["name", "type", "condition", "both", "either-order", "sequential", "sequential-colon"],
)
def test_parse_depends_on(text: str, expected: dict[str, str]) -> None:
    assert parse_depends_on(text) == expected


@pytest.mark.parametrize(
    "text", ["a:sometimes", "a:SEQUENTIAL", ":Failed", "a:N_TO_N:N_TO_N"], ids=str
)
def test_parse_depends_on_rejects(text: str) -> None:
    with pytest.raises(PluginError):
        parse_depends_on(text)


def test_parse_parameter() -> None:
    assert parse_parameter("input=s3://b/k?x=1") == ("input", "s3://b/k?x=1")
    assert parse_parameter("empty=") == ("empty", "")
    with pytest.raises(PluginError):
        parse_parameter("novalue")
    with pytest.raises(PluginError):
        parse_parameter("=x")


def test_build_batch_job_is_a_valid_batch_job() -> None:
    body = build_batch_job(
        "align",
        "high",
        namespace="genomics",
        name="run-1",
        parameters={"input": "a.bam"},
        array_size=10,
        parallelism=3,
        depends_on=[parse_depends_on("prep:N_TO_N")],
        share_identifier="teamA",
    )
    job = parse_batch_job(body)  # the API models accept what submit sends
    assert job.spec.array_properties is not None
    assert job.spec.array_properties.size == 10
    assert job.spec.array_properties.parallelism == 3
    assert job.spec.parameters == {"input": "a.bam"}
    assert body["metadata"] == {"namespace": "genomics", "name": "run-1"}
    assert body["spec"]["dependsOn"] == [{"jobName": "prep", "type": "N_TO_N"}]
    generated = build_batch_job("align", "high", namespace="ns")
    assert generated["metadata"] == {"namespace": "ns", "generateName": "align-"}
    assert "parameters" not in generated["spec"]
    with pytest.raises(PluginError):
        build_batch_job("align", "high", namespace="ns", parallelism=2)


def test_format_table_aligns_like_kubectl() -> None:
    text = format_table(["name", "phase"], [["a-long-name", "Running"], ["b", None]])
    assert text == "NAME          PHASE\na-long-name   Running\nb             <none>\n"


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [(5, "5s"), (119, "119s"), (300, "5m"), (303, "5m3s"), (3600, "60m"), (4 * 3600, "4h"),
     (4 * 3600 + 120, "4h2m"), (30 * 3600, "30h"), (3 * 86400, "3d"), (3 * 86400 + 7200, "3d2h"),
     (40 * 86400, "40d"), (800 * 86400, "2y")],
)  # fmt: skip
def test_age_is_human_like_kubectl(seconds: int, expected: str) -> None:
    assert age(ts(seconds), NOW) == expected


def test_age_of_garbage_is_unknown() -> None:
    assert age(None, NOW) == "<unknown>"
    assert age("yesterday", NOW) == "<unknown>"


def job(name: str, phase: str | None, **status: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": "kubatch.io/v1alpha1",
        "kind": "BatchJob",
        "metadata": {"name": name, "namespace": "ns", "creationTimestamp": ts(90)},
        "spec": {"jobQueue": "high", "jobDefinition": "align"},
        "status": {**({"phase": phase} if phase else {}), **status},
    }
    parse_batch_job(body)  # fixtures have the API's shape
    return body


def test_job_rows() -> None:
    rows = job_rows(
        [
            job("a", "Runnable", reason="InsufficientCapacity", queuePosition=2),
            job("b", None),
            job(
                "c",
                "Running",
                computeEnvironment="spot",
                attempts=[{"number": 1}, {"number": 2}],
                arrayStatusSummary={"size": 4, "succeeded": 1, "failed": 1, "running": 2},
            ),
        ],
        NOW,
    )
    assert rows[0] == ["a", "high", "Runnable", "InsufficientCapacity", 2, "-", "-", 0, "90s"]
    assert rows[1][2] == "Submitted"
    assert rows[2][5:8] == ["spot", "-", 2]
    assert len(rows[0]) == len(JOB_HEADERS)
    rows_all = job_rows([job("a", "Running")], NOW, all_namespaces=True)
    assert rows_all[0][0] == "ns"


def test_queue_and_ce_rows() -> None:
    q = {
        "metadata": {"name": "high", "creationTimestamp": ts(10)},
        "spec": {
            "priority": 10,
            "computeEnvironmentOrder": [
                {"order": 2, "computeEnvironment": "od"},
                {"order": 1, "computeEnvironment": "spot"},
            ],
        },
        "status": {
            "jobCounts": {"runnable": 4, "running": 2},
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }
    (row,) = queue_rows([q], NOW)
    assert len(row) == len(QUEUE_HEADERS)
    assert row[:5] == ["high", 10, "Enabled", "True", "spot,od"]
    assert row[QUEUE_HEADERS.index("RUNNABLE")] == 4
    assert row[QUEUE_HEADERS.index("FAILED")] == 0
    ce = {
        "metadata": {"name": "spot", "creationTimestamp": ts(10)},
        "spec": {"computeResources": {"capacityType": "Spot", "maxvCpus": 64}},
        "status": {"desiredvCpus": 8.0, "allocatedvCpus": 6.5, "capacityvCpus": 8, "nodes": 2},
    }
    (row,) = ce_rows([ce], NOW)
    assert len(row) == len(CE_HEADERS)
    assert row[:10] == ["spot", "Managed", "Enabled", "Spot", "0", "64", "8", "6.5", "8", "2"]
    assert row[10] == "Unknown"


def definition(cpu: str = "2", memory: str = "4Gi") -> dict[str, Any]:
    return {
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {"name": "main", "resources": {"requests": {"cpu": cpu, "memory": memory}}},
                        {
                            "name": "side",
                            "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}},
                        },
                    ]
                }
            }
        }
    }


def test_job_size_prefers_the_recorded_revision_then_definition_with_overrides() -> None:
    j = job("a", "Runnable")
    assert job_size(j, definition()) == Resources(2500, 5 * 2**30, 0)
    j["spec"]["overrides"] = {"resources": {"requests": {"cpu": "8"}}}
    assert job_size(j, definition()) == Resources(8500, 5 * 2**30, 0)
    j["status"]["jobDefinition"] = {"name": "align", **definition("1", "1Gi")["spec"]}
    assert job_size(j, None) == Resources(1500, 2 * 2**30, 0)
    assert job_size(job("b", None), None) is None


def ce(
    state: str = "Enabled", max_vcpus: int = 16, allocated: float | None = 0, **extra: Any
) -> Any:
    status: dict[str, Any] = {} if allocated is None else {"allocatedvCpus": allocated}
    status.update(extra)
    return {
        "spec": {
            "state": state,
            "computeResources": {"capacityType": "Spot", "maxvCpus": max_vcpus},
        },
        "status": status,
    }


@pytest.mark.parametrize(
    ("ce_obj", "can_run", "now", "why"),
    [
        (None, False, False, "does not exist"),
        (ce(state="Disabled"), False, False, "Disabled"),
        (
            ce(
                conditions=[
                    {"type": "Ready", "status": "False", "reason": "NoNodes", "message": "x"}
                ]
            ),
            False,
            False,
            "not Ready (NoNodes): x",
        ),
        (ce(max_vcpus=2), False, False, "can never fit: needs 4 vCPU > maxvCpus 2"),
        (ce(allocated=14), True, False, "full now: 14 of 16 vCPUs allocated, job needs 4"),
        (ce(allocated=12), True, True, "has room for 4 vCPU"),
        (ce(allocated=None), True, True, "has room"),
    ],
    ids=["missing", "disabled", "not-ready", "too-big", "full", "room", "no-status"],
)
def test_ce_verdict(ce_obj: Any, can_run: bool, now: bool, why: str) -> None:
    v = ce_verdict(1, "spot", ce_obj, Resources(4000, 2**30, 0))
    assert (v.can_run, v.now) == (can_run, now)
    assert why in v.why


def test_ce_verdict_is_the_core_fit_for_every_resource() -> None:
    """The plugin and the operator give one answer: a Managed CE by its instance types, an
    Unmanaged CE by its ready nodes (none yet: cannot tell, not never)."""
    gpu_job = Resources(4000, 8 * 2**30, 1)
    cpu_only = ce(max_vcpus=64)
    cpu_only["spec"]["computeResources"]["instanceTypes"] = ["m5.4xlarge"]
    v = ce_verdict(1, "cpu", cpu_only, gpu_job)
    assert (v.can_run, v.now) == (False, False)
    assert "1 GPU > 0" in v.why
    with_gpu = ce(max_vcpus=8)
    with_gpu["spec"]["computeResources"]["instanceTypes"] = ["p3.2xlarge"]
    v = ce_verdict(2, "gpu", with_gpu, gpu_job)
    assert (v.can_run, v.now) == (True, True)
    assert "fits p3.2xlarge" in v.why
    own = {"metadata": {"name": "own"}, "spec": {"type": "Unmanaged"}, "status": {}}
    v = ce_verdict(1, "own", own, Resources(2000, 2**30))
    assert (v.can_run, v.now) == (True, False)
    assert "cannot tell yet" in v.why
    node = {"metadata": {"name": "n1", "labels": {"kubatch.io/compute-environment": "own"}},
            "status": {"allocatable": {"cpu": "4", "memory": "8Gi"},
                       "conditions": [{"type": "Ready", "status": "True"}]}}  # fmt: skip
    assert ce_verdict(1, "own", own, Resources(2000, 2**30), [node]).now
    v = ce_verdict(1, "own", own, Resources(6000, 2**30), [node])
    assert not v.can_run
    assert "no node holds it" in v.why


def test_explain_and_its_text() -> None:
    j = job(
        "a",
        "Runnable",
        reason="InsufficientCapacity",
        message="waiting for 4 vCPU",
        queuePosition=3,
        attempts=[
            {
                "number": 1,
                "jobName": "a-1",
                "nodeName": "spot-7",
                "computeEnvironment": "spot",
                "capacityType": "Spot",
                "exitCode": 137,
                "reason": "Interrupted",
                "statusReason": "node spot-7 reclaimed",
                "interrupted": True,
            }
        ],
    )
    queue = {
        "metadata": {"name": "high"},
        "spec": {
            "priority": 10,
            "state": "Enabled",
            "computeEnvironmentOrder": [
                {"order": 2, "computeEnvironment": "od"},
                {"order": 1, "computeEnvironment": "spot"},
            ],
        },
    }
    info = explain(j, queue, {"spot": ce(allocated=14)}, definition("3500m", "1Gi"))
    assert info["phase"] == "Runnable"
    assert info["queuePosition"] == 3
    assert info["vcpus"] == 4
    assert [(c["name"], c["canRun"], c["hasRoomNow"]) for c in info["computeEnvironments"]] == [
        ("spot", True, False),
        ("od", False, False),
    ]
    json.dumps(info)  # -o json works
    text = format_explanation(info)
    assert "Queue:         high (priority 10, Enabled)" in text
    assert "Position:      3 in queue high" in text
    assert "Size:          4 vCPU, 2Gi memory, 0 GPU" in text
    assert "full now: 14 of 16 vCPUs allocated, job needs 4" in text
    assert "compute environment does not exist" in text
    assert "Interrupted (interrupted): node spot-7 reclaimed" in text
    no_queue = format_explanation(explain(j, None, {}, None))
    assert "high (not found)" in no_queue
    assert "Size:          unknown" in no_queue


def test_outputs() -> None:
    items = [{"kind": "BatchJob", "metadata": {"name": "a"}}]
    assert json.loads(render_output(as_list(items), "json"))["items"] == items
    assert yaml.safe_load(render_output(as_list(items), "yaml"))["kind"] == "List"


def test_common_flags_work_before_and_after_the_verb() -> None:
    parser = build_parser()
    a = parser.parse_args(["-n", "x", "--kubeconfig", "k", "ls", "--phase", "Running"])
    assert (a.namespace, a.kubeconfig, a.phase) == ("x", "k", ["Running"])
    b = parser.parse_args(["ls", "-n", "y", "--kubeconfig", "k2"])
    assert (b.namespace, b.kubeconfig) == ("y", "k2")
    c = parser.parse_args(["submit", "align", "-q", "high", "-p", "a=1", "-p", "b=2"])
    assert c.parameter == ["a=1", "b=2"]
    assert c.namespace is None
    assert (c.as_user, c.as_groups) == (None, None)
    d = parser.parse_args(["--as", "alice", "ls", "--as-group", "team-a", "--as-group", "dev"])
    assert (d.as_user, d.as_groups) == ("alice", ["team-a", "dev"])
