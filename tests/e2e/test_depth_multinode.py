"""Multi-node parallel jobs (#17) on the real plane with simulated pools: a 4-node job on
spot nodes (one node per pod), one of its nodes reclaimed mid-run — the whole attempt is
interrupted, every node runs again — and the main node's exit decides (the other nodes exit
1 and the job still succeeds); the other nodes get the main node's pod IP."""

from __future__ import annotations

from typing import Any

import pytest
from tests.e2e.conftest import Stack
from tests.e2e.factories import API, make_ce, make_job, make_queue


def status(obj: dict[str, Any] | None) -> dict[str, Any]:
    st: dict[str, Any] = (obj or {}).get("status") or {}
    return st


def template(duration: float, exit_code: int, command: str) -> dict[str, Any]:
    ann = {"sim.kubatch.io/duration": str(duration), "sim.kubatch.io/exit-code": str(exit_code)}
    return {
        "metadata": {"annotations": ann},
        "spec": {"containers": [{"name": "main", "image": "busybox", "command": [command],
                                 "resources": {"requests": {"cpu": "2", "memory": "1Gi"}}}]},
    }  # fmt: skip


def mnp_definition(name: str) -> dict[str, Any]:
    """4 nodes: the main node (0) runs 25 s and exits 0; the others run 5 s and exit 1."""
    return {
        "apiVersion": API,
        "kind": "JobDefinition",
        "metadata": {"name": name},
        "spec": {
            "type": "multinode",
            "retryStrategy": {"attempts": 1},  # a lost node must not use it up
            "nodeProperties": {
                "numNodes": 4,
                "mainNode": 0,
                "startTimeoutSeconds": 120,
                "nodeRangeProperties": [
                    {"targetNodes": "0", "template": template(25, 0, "mpirun")},
                    {"targetNodes": "1:", "template": template(5, 1, "worker")},
                ],
            },
        },
    }


@pytest.mark.timeout(420)
def test_four_nodes_one_reclaimed_mid_run_and_the_main_node_decides(
    stack: Stack, namespace: str
) -> None:
    ns = namespace
    ce, q = f"{ns}-spot", f"{ns}-q"
    # m5.large has 2 vCPU: one node's pod per instance, 4 instances for the gang
    stack.apply([make_ce(ce, capacity_type="Spot", max_vcpus=8, instance_types=("m5.large",)),
                 make_queue(q, [ce])])  # fmt: skip
    stack.apply([mnp_definition("mpi"), make_job("train", q, "mpi")], ns)

    def running() -> dict[str, Any] | None:
        st = status(stack.get("batchjob", "train", ns))
        nodes = st.get("nodes") or []
        if st.get("phase") == "Running" and len(nodes) == 4:
            return st
        return None

    st = stack.wait("all 4 nodes running", running, timeout=120)
    assert [n["index"] for n in st["nodes"]] == [0, 1, 2, 3]
    assert [n["main"] for n in st["nodes"]] == [True, False, False, False]
    assert len({n["nodeName"] for n in st["nodes"]}) == 4  # one node's pod per instance
    main_ip = st["nodes"][0]["podIP"]
    for job in stack.list("jobs", ns, "-l", "kubatch.io/batchjob=train,kubatch.io/attempt=1"):
        env = {e["name"]: e.get("value") for e in
               job["spec"]["template"]["spec"]["containers"][0]["env"]}  # fmt: skip
        node = env["AWS_BATCH_JOB_NODE_INDEX"]
        assert (env["AWS_BATCH_JOB_NUM_NODES"], env["AWS_BATCH_JOB_MAIN_NODE_INDEX"]) == ("4", "0")
        if node == "0":
            assert "AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS" not in env
        else:
            assert env["AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS"] == main_ip, env

    # one spot instance of the pool is reclaimed mid-run: the whole attempt is interrupted
    out = stack.reclaim(ce, 0.25)
    assert out.count("reclaimed node/") == 1, out

    def second_attempt() -> dict[str, Any] | None:
        st = status(stack.get("batchjob", "train", ns))
        return st if len(st.get("attempts") or []) >= 2 else None

    st = stack.wait("the interrupted attempt to run again", second_attempt, timeout=90)
    first = st["attempts"][0]
    assert first["interrupted"] is True, first
    assert first.get("statusReason"), first

    done = status(stack.wait_phase(ns, "train", timeout=240))
    assert done["phase"] == "Succeeded", done  # nodes 1-3 exited 1: only the main node decides
    last = done["attempts"][-1]
    assert last["exitCode"] == 0, last
    assert len(done["attempts"]) == 2, done["attempts"]  # the lost node used no retry attempt
    nodes = {n["index"]: n for n in done["nodes"]}
    assert nodes[0]["exitCode"] == 0
    assert all(nodes[i].get("exitCode") == 1 for i in (1, 2, 3)), nodes
    # every node ran again in attempt 2, each in a Kubernetes Job of its own
    again = stack.list("jobs", ns, "-l", "kubatch.io/batchjob=train,kubatch.io/attempt=2")
    assert sorted(j["metadata"]["labels"]["kubatch.io/node-index"] for j in again) == [
        "0", "1", "2", "3"]  # fmt: skip
