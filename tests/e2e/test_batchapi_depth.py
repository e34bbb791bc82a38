"""Issue #17's features through boto3, unchanged, on the real control plane with the operator
and simulated node pools: a multi-node parallel job registered and submitted (with
``nodeOverrides``) through the AWS API runs and succeeds, DescribeJobs and ListJobs showing its
nodes (``<jobId>#N``); a consumable resource created through the API lets two jobs run only one
at a time. Every answer is checked against botocore's output shapes (the ``api`` fixture)."""

from __future__ import annotations

from typing import Any

import pytest
from tests.e2e.batchapi_support import Api, api, eventually, pool, wait_job
from tests.e2e.conftest import Stack
from tests.e2e.test_batchapi_process import client, served

from kubatch.batchapi import names

pytestmark = pytest.mark.timeout(300)
__all__ = ["api", "served"]


def pod(command: str, duration: float, cpu: str = "500m") -> dict[str, Any]:
    """EKS-style podProperties whose annotations drive the simulated pod."""
    return {
        "containers": [
            {
                "name": "main",
                "image": "busybox",
                "command": [command],
                "resources": {"requests": {"cpu": cpu, "memory": "256Mi"}},
            }
        ],
        "metadata": {"annotations": {"sim.kubatch.io/duration": str(duration)}},
    }


def test_multinode_job_through_boto3(stack: Stack, api: Api, namespace: str) -> None:
    ns = namespace
    _, queue = pool(api, ns)
    batch = api.client(api.key_for(ns))
    reg = batch.register_job_definition(
        jobDefinitionName="MPI_Train",
        type="multinode",
        nodeProperties={
            "numNodes": 2,
            "mainNode": 0,
            "nodeRangeProperties": [
                {"targetNodes": "0", "eksProperties": {"podProperties": pod("mpirun", 10)}},
                {"targetNodes": "1:", "eksProperties": {"podProperties": pod("worker", 8)}},
            ],
        },
        retryStrategy={"attempts": 1},
    )
    shown = batch.describe_job_definitions(jobDefinitions=[reg["jobDefinitionArn"]])
    assert shown["jobDefinitions"][0]["type"] == "multinode"
    assert shown["jobDefinitions"][0]["nodeProperties"]["numNodes"] == 2
    job_id = batch.submit_job(
        jobName="train",
        jobQueue=queue,
        jobDefinition="MPI_Train",
        nodeOverrides={
            "numNodes": 3,
            "nodePropertyOverrides": [
                {
                    "targetNodes": "1:",
                    "eksPropertiesOverride": {
                        "podProperties": {"containers": [{"args": ["--rank-from-env"]}]}
                    },
                }
            ],
        },
    )["jobId"]
    obj = stack.get("batchjob", job_id, ns)
    assert obj is not None
    assert obj["spec"]["nodeOverrides"]["numNodes"] == 3

    def running_nodes() -> list[dict[str, Any]] | None:
        ids = [f"{job_id}#{i}" for i in range(3)]
        found = batch.describe_jobs(jobs=ids)["jobs"]
        return found if [d["status"] for d in found] == ["RUNNING"] * 3 else None

    nodes = eventually("the 3 nodes running", running_nodes, 90, every=0.5)
    assert [d["nodeDetails"] for d in nodes] == [
        {"nodeIndex": 0, "isMainNode": True},
        {"nodeIndex": 1, "isMainNode": False},
        {"nodeIndex": 2, "isMainNode": False},
    ]
    done = wait_job(batch, job_id, timeout=120)
    assert done["status"] == "SUCCEEDED", done.get("statusReason")
    assert done["nodeProperties"]["numNodes"] == 3
    assert done["nodeProperties"]["mainNode"] == 0
    ranges = done["nodeProperties"]["nodeRangeProperties"]
    assert {r["targetNodes"] for r in ranges} == {"0:0", "1:2"}
    worker = next(r for r in ranges if r["targetNodes"] == "1:2")
    assert worker["eksProperties"]["podProperties"]["containers"][0]["args"] == ["--rank-from-env"]
    finished = batch.list_jobs(multiNodeJobId=job_id, jobStatus="SUCCEEDED")["jobSummaryList"]
    assert [s["jobId"] for s in finished] == [f"{job_id}#0", f"{job_id}#1", f"{job_id}#2"]
    assert [s["nodeProperties"]["isMainNode"] for s in finished] == [True, False, False]
    main = batch.describe_jobs(jobs=[f"{job_id}#0"])["jobs"][0]
    assert main["eksProperties"]["podProperties"]["containers"][0]["exitCode"] == 0


def test_a_consumable_resource_made_with_boto3_runs_two_jobs_one_at_a_time(
    stack: Stack, api: Api, namespace: str
) -> None:
    ns = namespace
    _, queue = pool(api, ns)
    admin = api.client(api.admin)
    batch = api.client(api.key_for(ns))
    licence = f"Licence_{ns}"  # not a Kubernetes name: mapped, shown back unchanged
    made = admin.create_consumable_resource(consumableResourceName=licence, totalQuantity=1)
    try:
        batch.register_job_definition(
            jobDefinitionName="solver",
            type="container",
            eksProperties={"podProperties": pod("solve", 8, cpu="1")},
            consumableResourceProperties={
                "consumableResourceList": [{"consumableResource": licence, "quantity": 1}]
            },
        )
        first = batch.submit_job(jobName="first", jobQueue=queue, jobDefinition="solver")
        second = batch.submit_job(jobName="second", jobQueue=queue, jobDefinition="solver")
        ids = [first["jobId"], second["jobId"]]

        def one_runs_one_waits() -> dict[str, dict[str, Any]] | None:
            found = {d["jobId"]: d for d in batch.describe_jobs(jobs=ids)["jobs"]}
            states = sorted(d["status"] for d in found.values())
            waiting = [d for d in found.values() if d["status"] == "RUNNABLE"]
            if states == ["RUNNABLE", "RUNNING"] and waiting[0].get("statusReason"):
                return found
            return None

        found = eventually("one job running, the other waiting", one_runs_one_waits, 90, 0.5)
        waiting = next(d for d in found.values() if d["status"] == "RUNNABLE")
        assert names.kube_name(licence) in waiting["statusReason"], waiting["statusReason"]
        assert waiting["consumableResourceProperties"] == {
            "consumableResourceList": [{"consumableResource": licence, "quantity": 1}]
        }
        described = eventually(
            "the licence in use",
            lambda: (
                d
                if (d := batch.describe_consumable_resource(consumableResource=licence))[
                    "inUseQuantity"
                ]
                == 1
                else None
            ),
            30,
        )
        assert described["availableQuantity"] == 0
        assert described["consumableResourceArn"].endswith(f":consumable-resource/{licence}")
        listed = batch.list_jobs_by_consumable_resource(consumableResource=licence)["jobs"]
        assert sorted(j["jobName"] for j in listed) == ["first", "second"]
        assert {j["quantity"] for j in listed} == {1}
        a, b = (wait_job(batch, i, timeout=90) for i in ids)
        assert (a["status"], b["status"]) == ("SUCCEEDED", "SUCCEEDED")
        before, after = sorted((a, b), key=lambda d: d["startedAt"])
        assert after["startedAt"] >= before["stoppedAt"]  # one after the other
        free = eventually(
            "the licence free again",
            lambda: (
                d
                if (d := batch.describe_consumable_resource(consumableResource=licence))[
                    "inUseQuantity"
                ]
                == 0
                else None
            ),
            30,
        )
        assert free["availableQuantity"] == 1
    finally:
        admin.delete_consumable_resource(consumableResource=made["consumableResourceArn"])
    assert stack.get("consumableresource", names.kube_name(licence)) is None


def test_consumable_resources_under_the_charts_rbac(
    stack: Stack, namespace: str, served: tuple[str, dict[str, Any]]
) -> None:
    """The server as a process with exactly the chart's role manages consumable resources."""
    url, keys = served
    admin, user = client(url, keys["admin"]), client(url, keys["user"])
    name = f"seats-{namespace}"
    admin.create_consumable_resource(consumableResourceName=name, totalQuantity=2)
    admin.update_consumable_resource(consumableResource=name, operation="ADD", quantity=1)
    assert user.describe_consumable_resource(consumableResource=name)["totalQuantity"] == 3
    listed = user.list_consumable_resources(
        filters=[{"name": "CONSUMABLE_RESOURCE_NAME", "values": [name]}]
    )["consumableResources"]
    assert [c["consumableResourceName"] for c in listed] == [name]
    assert user.list_jobs_by_consumable_resource(consumableResource=name)["jobs"] == []
    admin.delete_consumable_resource(consumableResource=name)
    assert stack.get("consumableresource", name) is None
