"""sim.kubelet: the made-up log of a simulated container; where a simulated node's kubelet
answers."""

from __future__ import annotations

from typing import Any

from kubatch.sim.kubelet import render, simulated_log
from kubatch.sim.nodes import host_ip, kubelet_endpoint
from kubatch.timefmt import rfc3339

T = 1_800_000_000.0


def pod(state: dict[str, Any], duration: str = "10") -> dict[str, Any]:
    return {
        "metadata": {
            "name": "p",
            "namespace": "ns",
            "annotations": {"sim.kubatch.io/duration": duration, "sim.kubatch.io/exit-code": "3"},
        },
        "spec": {
            "nodeName": "sim-n1",
            "containers": [
                {
                    "name": "main",
                    "image": "busybox",
                    "command": ["sh", "-c", "echo HG002"],
                    "env": [
                        {"name": "AWS_BATCH_JOB_ATTEMPT", "value": "2"},
                        {"name": "AWS_BATCH_JOB_ARRAY_INDEX", "value": "7"},
                        {"name": "OTHER", "value": "x"},
                    ],
                }
            ],
        },
        "status": {"containerStatuses": [{"name": "main", "state": state}]},
    }


def test_a_running_container_says_who_it_is_and_how_far_it_got() -> None:
    lines = [
        text
        for _, text in simulated_log(pod({"running": {"startedAt": rfc3339(T)}}), "main", T + 4.5)
    ]
    assert "pod ns/p on node sim-n1" in lines[0]
    assert "sh -c echo HG002" in lines[1]
    assert lines[2].endswith("AWS_BATCH_JOB_ATTEMPT=2 AWS_BATCH_JOB_ARRAY_INDEX=7")
    assert "runs 10s, then exits 3" in lines[3]
    assert [x for x in lines if "working" in x] == [
        f"[kubatch-sim] working: {s}s of 10s" for s in (1, 2, 3, 4)
    ]


def test_a_finished_container_ends_with_its_exit() -> None:
    state = {
        "terminated": {
            "startedAt": rfc3339(T),
            "finishedAt": rfc3339(T + 10),
            "exitCode": 3,
            "reason": "Error",
        }
    }
    lines = simulated_log(pod(state), "main", T + 100)
    assert lines[-1] == (T + 10, "[kubatch-sim] exit 3 Error")
    assert len([x for _, x in lines if "working" in x]) == 9
    assert simulated_log(pod({"waiting": {}}), "main", T) == []
    assert simulated_log(pod(state), "nope", T) == []
    stamped = render(lines[-1:], timestamps=True).decode()
    assert stamped.startswith(rfc3339(T + 10)[:-1] + ".000000000Z ")


def test_long_runs_are_summarised_in_at_most_twenty_progress_lines() -> None:
    state = {"running": {"startedAt": rfc3339(T)}}
    lines = simulated_log(pod(state, duration="3600"), "main", T + 7200)
    assert len([x for _, x in lines if "working" in x]) == 19


def test_kubelet_endpoint_is_loopback_only_with_the_log_server() -> None:
    served = kubelet_endpoint("sim-n1", 4567)
    assert served["daemonEndpoints"] == {"kubeletEndpoint": {"Port": 4567}}
    assert {a["address"] for a in served["addresses"]} == {"127.0.0.1"}
    assert served["addresses"][0]["type"] == "Hostname"  # the API server's first preference
    plain = kubelet_endpoint("sim-n1", None)
    assert "daemonEndpoints" not in plain
    assert {"type": "InternalIP", "address": host_ip("sim-n1")} in plain["addresses"]
