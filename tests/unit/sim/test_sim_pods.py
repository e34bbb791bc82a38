"""Behaviour annotations and kubelet-like statuses (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from kubatch.sim.pods import (
    Behaviour,
    TerminationReason,
    array_index,
    behaviour_of,
    build_disrupted_status,
    build_running_status,
    build_terminated_status,
    parse_exit_codes_by_index,
    parse_quantity,
    pod_requests,
)
from kubatch.timefmt import rfc3339

T0 = 1_700_000_000.0


def make_pod(
    annotations: dict[str, str] | None = None,
    env: dict[str, str] | None = None,
    labels: dict[str, str] | None = None,
    containers: int = 1,
    requests: dict[str, str] | None = None,
) -> dict[str, Any]:
    cs = [
        {
            "name": f"c{i}",
            "image": "busybox:1.36",
            "env": [{"name": k, "value": v} for k, v in (env or {}).items()] if i == 0 else [],
            "resources": {"requests": requests or {}},
        }
        for i in range(containers)
    ]
    return {
        "metadata": {
            "name": "p",
            "namespace": "ns",
            "uid": "u-1",
            "annotations": annotations or {},
            "labels": labels or {},
        },
        "spec": {"containers": cs},
    }


@pytest.mark.parametrize(
    ("annotations", "env", "labels", "expected"),
    [
        pytest.param({}, {}, {}, Behaviour(1.0, 0, False), id="defaults"),
        pytest.param({"sim.kubatch.io/duration": "2.5"}, {}, {}, Behaviour(2.5, 0), id="duration"),
        pytest.param({"sim.kubatch.io/exit-code": "3"}, {}, {}, Behaviour(1.0, 3), id="exit-code"),
        pytest.param({"sim.kubatch.io/oom": "true"}, {}, {}, Behaviour(1.0, 137, True), id="oom"),
        pytest.param(
            {"sim.kubatch.io/exit-code-by-index": "3=1,7=137"},
            {"AWS_BATCH_JOB_ARRAY_INDEX": "7"},
            {},
            Behaviour(1.0, 137),
            id="by-index-aws-env",
        ),
        pytest.param(
            {"sim.kubatch.io/exit-code-by-index": "3=1,7=137"},
            {"KUBATCH_JOB_ARRAY_INDEX": "3"},
            {},
            Behaviour(1.0, 1),
            id="by-index-kubatch-env",
        ),
        pytest.param(
            {"sim.kubatch.io/exit-code-by-index": "3=1", "sim.kubatch.io/exit-code": "2"},
            {},
            {"kubatch.io/array-index": "4"},
            Behaviour(1.0, 2),
            id="by-index-no-match-falls-back",
        ),
        pytest.param(
            {"sim.kubatch.io/exit-code-by-index": "3=9"},
            {},
            {"kubatch.io/array-index": "3"},
            Behaviour(1.0, 9),
            id="by-index-label",
        ),
        pytest.param(
            {"sim.kubatch.io/exit-code-by-attempt": "1=3,2=3"},
            {},
            {"kubatch.io/attempt": "2"},
            Behaviour(1.0, 3),
            id="by-attempt-fails-the-second",
        ),
        pytest.param(
            {"sim.kubatch.io/exit-code-by-attempt": "1=3", "sim.kubatch.io/exit-code": "0"},
            {},
            {"kubatch.io/attempt": "2"},
            Behaviour(1.0, 0),
            id="by-attempt-succeeds-the-second",
        ),
    ],
)
def test_behaviour_of(
    annotations: dict[str, str], env: dict[str, str], labels: dict[str, str], expected: Behaviour
) -> None:
    assert behaviour_of(make_pod(annotations, env, labels)) == expected


def test_exit_codes_by_index_ignores_garbage() -> None:
    assert parse_exit_codes_by_index(" 3=1, x=2,7=137,9") == {3: 1, 7: 137}


def test_array_index_env_wins_over_label() -> None:
    pod = make_pod(env={"AWS_BATCH_JOB_ARRAY_INDEX": "5"}, labels={"kubatch.io/array-index": "6"})
    assert array_index(pod) == 5
    assert array_index(make_pod()) is None


@pytest.mark.parametrize(
    ("q", "v"), [("500m", 0.5), ("2", 2.0), ("1Gi", 2**30), ("1k", 1000.0), (3, 3.0)]
)
def test_parse_quantity(q: object, v: float) -> None:
    assert parse_quantity(q) == v


def test_pod_requests_sums_containers() -> None:
    pod = make_pod(
        containers=2, requests={"cpu": "1500m", "memory": "512Mi", "nvidia.com/gpu": "1"}
    )
    r = pod_requests(pod)
    assert (r.vcpus, r.memory_mib, r.gpus) == (3.0, 1024.0, 2)


def test_running_status_looks_like_a_kubelet() -> None:
    s = build_running_status(make_pod(containers=2), "10.1.2.3", T0)
    assert s["phase"] == "Running"
    assert s["hostIP"] == "10.1.2.3"
    assert s["podIP"].startswith("10.244.")
    ready = {c["type"]: c["status"] for c in s["conditions"]}
    assert ready == {
        "Initialized": "True",
        "Ready": "True",
        "ContainersReady": "True",
        "PodScheduled": "True",
    }
    for cs in s["containerStatuses"]:
        assert cs["ready"] is True
        assert cs["state"]["running"]["startedAt"] == rfc3339(T0)
        assert cs["containerID"].startswith("containerd://")
        assert "@sha256:" in cs["imageID"]


@pytest.mark.parametrize(
    ("behaviour", "phase", "code", "reason"),
    [
        pytest.param(Behaviour(1, 0), "Succeeded", 0, TerminationReason.COMPLETED, id="ok"),
        pytest.param(Behaviour(1, 3), "Failed", 3, TerminationReason.ERROR, id="exit-3"),
        pytest.param(
            Behaviour(1, 137, True), "Failed", 137, TerminationReason.OOM_KILLED, id="oom"
        ),
    ],
)
def test_terminated_status(behaviour: Behaviour, phase: str, code: int, reason: str) -> None:
    s = build_terminated_status(make_pod(containers=2), behaviour, T0, T0 + 5)
    assert s["phase"] == phase
    main, sidecar = s["containerStatuses"]
    term = main["state"]["terminated"]
    assert (term["exitCode"], term["reason"]) == (code, reason)
    assert term["startedAt"] == rfc3339(T0)
    assert term["finishedAt"] == rfc3339(T0 + 5)
    assert sidecar["state"]["terminated"]["exitCode"] == 0
    assert {c["type"]: c["status"] for c in s["conditions"]}["Ready"] == "False"


def test_disrupted_status_names_node_and_sets_disruption_condition() -> None:
    s = build_disrupted_status(make_pod(containers=2), "node-a", T0, T0 + 1)
    assert s["phase"] == "Failed"
    assert s["reason"] == "Terminated"
    assert "node-a" in s["message"]
    cond = next(c for c in s["conditions"] if c["type"] == "DisruptionTarget")
    assert cond["status"] == "True"
    assert cond["reason"] == "TerminationByKubelet"
    assert all(cs["state"]["terminated"]["exitCode"] == 143 for cs in s["containerStatuses"])


def test_disrupted_before_start_uses_now() -> None:
    s = build_disrupted_status(make_pod(), "n", None, T0)
    assert s["containerStatuses"][0]["state"]["terminated"]["startedAt"] == rfc3339(T0)
