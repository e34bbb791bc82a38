"""Issue #17's features through the AWS API, with boto3 against the server in-process:
multi-node parallel jobs (nodeProperties, nodeOverrides, ``<jobId>#N``), consumable resources
(the six operations, definitions' and jobs' properties) and the new status reasons. Every
answer is checked against botocore's output shapes by the module's server fixture."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError as BotoError
from tests.unit.batchapi.conftest import ADMIN, OTHER, USER, Server

from kubatch.adapters.kube import BATCHJOBS, CONSUMABLERESOURCES, JOBDEFINITIONS
from kubatch.batchapi import jobs, names
from kubatch.core.lifecycle import Reason

RES = [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "256"}]
MAIN = {"image": "busybox", "command": ["main"], "resourceRequirements": RES}
WORKER = {"image": "busybox", "command": ["worker"], "resourceRequirements": RES}
NODES = {
    "numNodes": 3,
    "mainNode": 0,
    "nodeRangeProperties": [
        {"targetNodes": "0", "container": MAIN},
        {"targetNodes": "1:", "container": WORKER},
    ],
}


def code(err: pytest.ExceptionInfo[BotoError]) -> str:
    return str(err.value.response["Error"]["Code"])


def message(err: pytest.ExceptionInfo[BotoError]) -> str:
    return str(err.value.response["Error"]["Message"])


@pytest.fixture(scope="module")
def setup(server: Server) -> dict[str, Any]:
    a = server.client(ADMIN)
    a.create_compute_environment(
        computeEnvironmentName="Depth_Pool",
        type="MANAGED",
        computeResources={"type": "EC2", "maxvCpus": 16, "instanceTypes": ["optimal"]},
    )
    a.create_job_queue(
        jobQueueName="depth-q",
        priority=1,
        computeEnvironmentOrder=[{"order": 1, "computeEnvironment": "Depth_Pool"}],
    )
    u = server.client(USER)
    mnp = u.register_job_definition(jobDefinitionName="mpi", type="multinode", nodeProperties=NODES)
    return {"admin": a, "user": u, "mnp": mnp}


def _job(server: Server, job_id: str) -> dict[str, Any]:
    return server.kube.stored(BATCHJOBS, job_id, "team-a")


# --------------------------------------------------------------------------- multi-node


def test_multinode_definition_round_trip(server: Server, setup: dict[str, Any]) -> None:
    u = setup["user"]
    assert setup["mnp"]["revision"] == 1
    obj = server.run(server.kube.get(JOBDEFINITIONS, "mpi.1", "team-a"))
    spec = obj["spec"]
    assert spec["type"] == "multinode"
    assert "template" not in spec
    np = spec["nodeProperties"]
    assert (np["numNodes"], np["mainNode"]) == (3, 0)
    assert [r["targetNodes"] for r in np["nodeRangeProperties"]] == ["0", "1:"]
    worker = np["nodeRangeProperties"][1]["template"]["spec"]["containers"][0]
    assert worker["args"] == ["worker"]
    assert worker["resources"]["requests"]["cpu"] == "1"
    shown = u.describe_job_definitions(jobDefinitions=["mpi:1"])["jobDefinitions"][0]
    assert shown["type"] == "multinode"
    assert "containerProperties" not in shown
    ranges = shown["nodeProperties"]["nodeRangeProperties"]
    assert shown["nodeProperties"]["numNodes"] == 3
    assert ranges[0]["targetNodes"] == "0"
    assert ranges[1]["container"]["command"] == ["worker"]
    assert ranges[1]["container"]["resourceRequirements"] == RES


def test_multinode_eks_ranges(server: Server, setup: dict[str, Any]) -> None:
    u = setup["user"]
    pod = {
        "containers": [
            {
                "name": "mpi",
                "image": "busybox",
                "command": ["run"],
                "resources": {"requests": {"cpu": "1", "memory": "256Mi"}},
            }
        ]
    }
    u.register_job_definition(
        jobDefinitionName="mpi-eks",
        type="multinode",
        nodeProperties={
            "numNodes": 2,
            "mainNode": 1,
            "nodeRangeProperties": [{"targetNodes": ":", "eksProperties": {"podProperties": pod}}],
        },
    )
    shown = u.describe_job_definitions(jobDefinitionName="mpi-eks")["jobDefinitions"][0]
    assert shown["containerOrchestrationType"] == "EKS"
    rng = shown["nodeProperties"]["nodeRangeProperties"][0]
    assert rng["eksProperties"]["podProperties"]["containers"][0]["name"] == "mpi"
    job = u.submit_job(
        jobName="e",
        jobQueue="depth-q",
        jobDefinition="mpi-eks",
        nodeOverrides={
            "nodePropertyOverrides": [
                {
                    "targetNodes": "0:1",
                    "eksPropertiesOverride": {
                        "podProperties": {"containers": [{"args": ["--fast"]}]}
                    },
                }
            ]
        },
    )
    spec = _job(server, job["jobId"])["spec"]
    assert spec["nodeOverrides"]["nodePropertyOverrides"] == [
        {"targetNodes": "0:1", "containerOverrides": {"args": ["--fast"]}}
    ]


@pytest.mark.parametrize(
    ("props", "extra", "text"),
    [
        ({**NODES, "mainNode": 3}, {}, "mainNode"),
        (
            {**NODES, "nodeRangeProperties": [{"targetNodes": "0:5", "container": MAIN}]},
            {},
            "beyond the last node",
        ),
        (
            {**NODES, "nodeRangeProperties": [{"targetNodes": "0:1", "container": MAIN}]},
            {},
            "must account for every node",  # node 2 has no range
        ),
        (
            {
                **NODES,
                "nodeRangeProperties": [
                    {"targetNodes": "0", "container": MAIN},
                    {
                        "targetNodes": "1:",
                        "eksProperties": {"podProperties": {"containers": [{"image": "busybox"}]}},
                    },
                ],
            },
            {},
            "not a mix",
        ),
        (
            {
                **NODES,
                "nodeRangeProperties": [
                    {"targetNodes": ":", "ecsProperties": {"taskProperties": []}}
                ],
            },
            {},
            "not supported",
        ),
        (
            {
                **NODES,
                "nodeRangeProperties": [
                    {
                        "targetNodes": ":",
                        "container": MAIN,
                        "consumableResourceProperties": {"consumableResourceList": []},
                    }
                ],
            },
            {},
            "per job",
        ),
        (NODES, {"containerProperties": MAIN}, "not in containerProperties"),
        (
            {**NODES, "nodeRangeProperties": [{"targetNodes": "x", "container": MAIN}]},
            {},
            "not a node range",
        ),
    ],
)
def test_multinode_registration_errors(
    setup: dict[str, Any], props: dict[str, Any], extra: dict[str, Any], text: str
) -> None:
    with pytest.raises(BotoError) as err:
        setup["user"].register_job_definition(
            jobDefinitionName="bad-mnp", type="multinode", nodeProperties=props, **extra
        )
    assert code(err) == "ClientException"
    assert text in message(err)


def test_node_properties_need_type_multinode(setup: dict[str, Any]) -> None:
    with pytest.raises(BotoError) as err:
        setup["user"].register_job_definition(
            jobDefinitionName="c", type="container", containerProperties=MAIN, nodeProperties=NODES
        )
    assert "only with type multinode" in message(err)


def test_submit_with_node_overrides(server: Server, setup: dict[str, Any]) -> None:
    u = setup["user"]
    job = u.submit_job(
        jobName="mpi-run",
        jobQueue="depth-q",
        jobDefinition="mpi:1",
        nodeOverrides={
            "numNodes": 4,
            "nodePropertyOverrides": [
                {
                    "targetNodes": "1:",
                    "containerOverrides": {
                        "command": ["worker", "--n"],
                        "environment": [{"name": "ROLE", "value": "w"}],
                        "resourceRequirements": [{"type": "VCPU", "value": "2"}],
                    },
                }
            ],
        },
    )
    spec = _job(server, job["jobId"])["spec"]
    assert spec["nodeOverrides"] == {
        "numNodes": 4,
        "nodePropertyOverrides": [
            {
                "targetNodes": "1:",
                "containerOverrides": {
                    "args": ["worker", "--n"],
                    "env": [{"name": "ROLE", "value": "w"}],
                    "resources": {"requests": {"cpu": "2"}},
                },
            }
        ],
    }
    # Before the operator records anything, the nodes come from the definition + overrides.
    d = u.describe_jobs(jobs=[job["jobId"]])["jobs"][0]
    assert d["nodeProperties"]["numNodes"] == 4
    assert d["nodeProperties"]["mainNode"] == 0
    summaries = u.list_jobs(jobQueue="depth-q", jobStatus="SUBMITTED")["jobSummaryList"]
    mine = next(s for s in summaries if s["jobId"] == job["jobId"])
    assert mine["nodeProperties"] == {"numNodes": 4}


@pytest.mark.parametrize(
    ("params", "text"),
    [
        ({"containerOverrides": {"command": ["x"]}}, "nodeOverrides.nodePropertyOverrides"),
        ({"nodeOverrides": {"numNodes": 2000}}, "numNodes"),
        (
            {"nodeOverrides": {"nodePropertyOverrides": [{"targetNodes": "0:9"}]}},
            "beyond",
        ),
        ({"arrayProperties": {"size": 2}}, "array"),
        (
            {
                "nodeOverrides": {
                    "nodePropertyOverrides": [
                        {
                            "targetNodes": "0",
                            "consumableResourcePropertiesOverride": {"consumableResourceList": []},
                        }
                    ]
                }
            },
            "top level",
        ),
        (
            {
                "nodeOverrides": {
                    "nodePropertyOverrides": [
                        {
                            "targetNodes": "0",
                            "containerOverrides": {"command": ["a"]},
                            "eksPropertiesOverride": {"podProperties": {}},
                        }
                    ]
                }
            },
            "not both",
        ),
    ],
)
def test_submit_multinode_errors(setup: dict[str, Any], params: dict[str, Any], text: str) -> None:
    with pytest.raises(BotoError) as err:
        setup["user"].submit_job(jobName="x", jobQueue="depth-q", jobDefinition="mpi", **params)
    assert code(err) == "ClientException"
    assert text in message(err)


def test_nodes_of_a_running_job(server: Server, setup: dict[str, Any]) -> None:
    u = setup["user"]
    job_id = u.submit_job(jobName="nodes", jobQueue="depth-q", jobDefinition="mpi")["jobId"]
    main_t = {"spec": {"containers": [{"name": "main", "image": "busybox", "args": ["main"]}]}}
    work_t = {"spec": {"containers": [{"name": "main", "image": "busybox", "args": ["worker"]}]}}
    obj = _job(server, job_id)
    obj["status"] = {
        "phase": "Running",
        "startedAt": "2026-01-01T00:00:00Z",
        "jobDefinition": {
            "name": "mpi.1",
            "template": main_t,
            "nodeProperties": {
                "numNodes": 3,
                "mainNode": 0,
                "nodeRangeProperties": [
                    {"targetNodes": "0:0", "template": main_t},
                    {"targetNodes": "1:2", "template": work_t},
                ],
            },
        },
        "nodes": [
            {"index": 0, "main": True, "phase": "Running", "podName": "p0"},
            {"index": 1, "phase": "Succeeded", "exitCode": 0, "podName": "p1"},
            {"index": 2, "phase": "Pending"},
        ],
    }
    parent, n0, n1, n2, n9 = (
        u.describe_jobs(jobs=[job_id, f"{job_id}#0", f"{job_id}#1", f"{job_id}#2", f"{job_id}#9"])[
            "jobs"
        ]
        + [None]
    )[:5]
    assert n9 is None  # no such node: left out, as unknown ids are
    assert parent["nodeProperties"]["numNodes"] == 3
    assert [r["targetNodes"] for r in parent["nodeProperties"]["nodeRangeProperties"]] == [
        "0:0",
        "1:2",
    ]
    assert "nodeDetails" not in parent
    assert n0["jobId"] == f"{job_id}#0"
    assert n0["jobArn"].endswith(f":job/{job_id}#0")
    assert n0["nodeDetails"] == {"nodeIndex": 0, "isMainNode": True}
    assert (n0["status"], n1["status"], n2["status"]) == ("RUNNING", "SUCCEEDED", "STARTING")
    assert n1["nodeDetails"] == {"nodeIndex": 1, "isMainNode": False}
    assert n1["container"]["command"] == ["worker"]
    assert n0["container"]["command"] == ["main"]
    running = u.list_jobs(multiNodeJobId=job_id)["jobSummaryList"]
    assert [s["jobId"] for s in running] == [f"{job_id}#0"]
    assert running[0]["nodeProperties"] == {"isMainNode": True, "numNodes": 3, "nodeIndex": 0}
    done = u.list_jobs(multiNodeJobId=job_id, jobStatus="SUCCEEDED")["jobSummaryList"]
    assert [s["jobId"] for s in done] == [f"{job_id}#1"]
    every = u.list_jobs(
        multiNodeJobId=job_id, filters=[{"name": "JOB_NAME", "values": ["nodes"]}], maxResults=2
    )
    assert len(every["jobSummaryList"]) == 2
    assert every["nextToken"]
    # Finished: the nodes still running end with the job.
    obj["status"]["phase"] = "Failed"
    obj["status"]["stoppedAt"] = "2026-01-01T00:10:00Z"
    states = [d["status"] for d in u.describe_jobs(jobs=[f"{job_id}#0", f"{job_id}#1"])["jobs"]]
    assert states == ["FAILED", "SUCCEEDED"]
    with pytest.raises(BotoError) as err:
        u.list_jobs(multiNodeJobId="no-such-job")
    assert "not a multi-node job" in message(err)
    with pytest.raises(BotoError) as err:
        u.list_jobs(multiNodeJobId=job_id, jobQueue="depth-q")
    assert "exactly one of" in message(err)
    with pytest.raises(BotoError) as err:
        u.terminate_job(jobId=f"{job_id}#1", reason="x")
    assert "not supported" in message(err)
    # Another namespace's key sees no node of it.
    assert server.client(OTHER).describe_jobs(jobs=[f"{job_id}#0"])["jobs"] == []


def test_node_ids_parse() -> None:
    ref = names.parse_job_id("abc#3", "us-east-1", "1")
    assert ref is not None
    assert (ref.name, ref.index, ref.node) == ("abc", None, 3)
    assert str(ref) == "abc#3"
    arn = names.parse_job_id("arn:aws:batch:us-east-1:1:job/abc#2", "us-east-1", "1")
    assert arn is not None
    assert arn.node == 2
    assert names.parse_job_id("abc:1#2", "us-east-1", "1") is None
    assert names.parse_job_id("abc#x", "us-east-1", "1") is None


def test_new_status_reasons() -> None:
    preempted = jobs.status_reason(Reason.PREEMPTED, "attempt 1 preempted")
    assert preempted is not None
    assert preempted.startswith("Job attempt preempted")
    assert preempted.endswith("attempt 1 preempted")
    gang = jobs.status_reason(Reason.GANG_START_TIMEOUT, None)
    assert gang is not None
    assert "multi-node" in gang
    # A released attempt is not a host termination (what SDK retry rules look for).
    attempt = {"interrupted": True, "reason": "Preempted", "nodeName": "n1"}
    reason = jobs.attempt_reason(attempt)
    assert reason is not None
    assert "preempted" in reason
    assert "Host EC2" not in reason
    spot = jobs.attempt_reason({"interrupted": True, "nodeName": "n1"})
    assert spot == "Host EC2 (instance n1) terminated."


# --------------------------------------------------------------------------- consumables


def test_consumable_resource_lifecycle(server: Server, setup: dict[str, Any]) -> None:
    a, u = setup["admin"], setup["user"]
    out = a.create_consumable_resource(
        consumableResourceName="Licence_Pool", totalQuantity=2, tags={"k": "v"}
    )
    assert out["consumableResourceArn"] == (
        "arn:aws:batch:us-east-1:333333333333:consumable-resource/Licence_Pool"
    )
    kube = names.kube_name("Licence_Pool")
    obj = server.kube.stored(CONSUMABLERESOURCES, kube)
    assert obj["spec"] == {"totalQuantity": 2, "resourceType": "REPLENISHABLE"}
    with pytest.raises(BotoError) as err:
        a.create_consumable_resource(consumableResourceName="Licence_Pool", totalQuantity=1)
    assert "already exists" in message(err)
    with pytest.raises(BotoError) as err:
        u.create_consumable_resource(consumableResourceName="mine", totalQuantity=1)
    assert code(err) == "AccessDeniedException"
    with pytest.raises(BotoError) as err:
        a.create_consumable_resource(consumableResourceName="neg", totalQuantity=-1)
    assert "totalQuantity" in message(err)
    a.create_consumable_resource(
        consumableResourceName="db-slots", totalQuantity=5, resourceType="NON_REPLENISHABLE"
    )
    # Every key sees them (cluster-scoped), with the operator's status when there is one.
    obj["status"] = {"inUseQuantity": 1, "availableQuantity": 1}
    d = u.describe_consumable_resource(consumableResource="Licence_Pool")
    assert (d["totalQuantity"], d["inUseQuantity"], d["availableQuantity"]) == (2, 1, 1)
    assert d["resourceType"] == "REPLENISHABLE"
    assert d["tags"] == {"k": "v"}
    assert d["createdAt"] > 0
    listed = u.list_consumable_resources()["consumableResources"]
    assert [c["consumableResourceName"] for c in listed] == ["Licence_Pool", "db-slots"]
    only = u.list_consumable_resources(
        filters=[{"name": "CONSUMABLE_RESOURCE_NAME", "values": ["licence*"]}]
    )["consumableResources"]
    assert [c["consumableResourceName"] for c in only] == ["Licence_Pool"]
    pages = list(
        u.get_paginator("list_consumable_resources").paginate(PaginationConfig={"PageSize": 1})
    )
    assert [len(p["consumableResources"]) for p in pages] == [1, 1]
    # Update: SET, ADD, REMOVE; a retried call (same clientToken) applies once.
    assert (
        a.update_consumable_resource(
            consumableResource="Licence_Pool", operation="ADD", quantity=3, clientToken="t1"
        )["totalQuantity"]
        == 5
    )
    assert (
        a.update_consumable_resource(
            consumableResource="Licence_Pool", operation="ADD", quantity=3, clientToken="t1"
        )["totalQuantity"]
        == 5
    )
    assert (
        a.update_consumable_resource(
            consumableResource=out["consumableResourceArn"], operation="REMOVE", quantity=4
        )["totalQuantity"]
        == 1
    )
    assert (
        a.update_consumable_resource(consumableResource="Licence_Pool", quantity=1)["totalQuantity"]
        == 1
    )
    with pytest.raises(BotoError) as err:
        a.update_consumable_resource(
            consumableResource="Licence_Pool", operation="REMOVE", quantity=2
        )
    assert "cannot remove 2" in message(err)
    with pytest.raises(BotoError) as err:
        u.update_consumable_resource(consumableResource="Licence_Pool", quantity=9)
    assert code(err) == "AccessDeniedException"
    # Tags on a consumable resource: admin to change, every key to read.
    a.tag_resource(resourceArn=out["consumableResourceArn"], tags={"cost": "x"})
    mine = "arn:aws:batch:us-east-1:111111111111:consumable-resource/Licence_Pool"
    assert u.list_tags_for_resource(resourceArn=mine)["tags"] == {
        "k": "v",
        "cost": "x",
    }
    with pytest.raises(BotoError) as err:
        u.describe_consumable_resource(consumableResource="nothing")
    assert "does not exist" in message(err)
    with pytest.raises(BotoError) as err:
        u.delete_consumable_resource(consumableResource="db-slots")
    assert code(err) == "AccessDeniedException"
    a.delete_consumable_resource(consumableResource="db-slots")
    assert server.kube.get_object(CONSUMABLERESOURCES, "db-slots") is None
    assert u.list_consumable_resources()["consumableResources"][0]["totalQuantity"] == 1


def test_jobs_and_definitions_take_consumables(server: Server, setup: dict[str, Any]) -> None:
    a, u = setup["admin"], setup["user"]
    a.create_consumable_resource(consumableResourceName="Seats", totalQuantity=4)
    kube = names.kube_name("Seats")
    u.register_job_definition(
        jobDefinitionName="licensed",
        type="container",
        containerProperties=MAIN,
        consumableResourceProperties={
            "consumableResourceList": [{"consumableResource": "Seats", "quantity": 2}]
        },
    )
    defn = server.run(server.kube.get(JOBDEFINITIONS, "licensed.1", "team-a"))
    assert defn["spec"]["consumableResourceProperties"] == {
        "consumableResourceList": [{"consumableResource": kube, "quantity": 2}]
    }
    shown = u.describe_job_definitions(jobDefinitionName="licensed")["jobDefinitions"][0]
    assert shown["consumableResourceProperties"] == {
        "consumableResourceList": [{"consumableResource": "Seats", "quantity": 2}]
    }
    with pytest.raises(BotoError) as err:
        u.register_job_definition(
            jobDefinitionName="bad",
            type="container",
            containerProperties=MAIN,
            consumableResourceProperties={
                "consumableResourceList": [{"consumableResource": "ghost", "quantity": 1}]
            },
        )
    assert "consumable resource 'ghost' does not exist" in message(err)
    with pytest.raises(BotoError) as err:
        u.register_job_definition(
            jobDefinitionName="bad",
            type="container",
            containerProperties=MAIN,
            consumableResourceProperties={
                "consumableResourceList": [
                    {"consumableResource": "Seats", "quantity": 1},
                    {"consumableResource": "Seats", "quantity": 1},
                ]
            },
        )
    assert "listed twice" in message(err)
    plain = u.submit_job(jobName="uses-def", jobQueue="depth-q", jobDefinition="licensed")
    arn = "arn:aws:batch:us-east-1:111111111111:consumable-resource/Seats"
    over = u.submit_job(
        jobName="uses-override",
        jobQueue="depth-q",
        jobDefinition="licensed",
        consumableResourcePropertiesOverride={
            "consumableResourceList": [{"consumableResource": arn, "quantity": 3}]
        },
    )
    assert _job(server, over["jobId"])["spec"]["consumableResourcePropertiesOverride"] == {
        "consumableResourceList": [{"consumableResource": kube, "quantity": 3}]
    }
    d = u.describe_jobs(jobs=[over["jobId"]])["jobs"][0]
    assert d["consumableResourceProperties"] == {
        "consumableResourceList": [{"consumableResource": "Seats", "quantity": 3}]
    }
    # A job that takes the definition's resources shows their AWS names once recorded.
    _job(server, plain["jobId"])["status"] = {
        "jobDefinition": {
            "name": "licensed.1",
            "template": {"spec": {"containers": [{"name": "main", "image": "busybox"}]}},
            "consumableResourceProperties": defn["spec"]["consumableResourceProperties"],
        }
    }
    d = u.describe_jobs(jobs=[plain["jobId"]])["jobs"][0]
    assert d["consumableResourceProperties"] == {
        "consumableResourceList": [{"consumableResource": "Seats", "quantity": 2}]
    }
    with pytest.raises(BotoError) as err:
        u.submit_job(
            jobName="x",
            jobQueue="depth-q",
            jobDefinition="licensed",
            consumableResourcePropertiesOverride={
                "consumableResourceList": [{"consumableResource": "Seats", "quantity": 0}]
            },
        )
    assert "quantity" in message(err)
    listed = u.list_jobs_by_consumable_resource(consumableResource="Seats")["jobs"]
    assert {(j["jobName"], j["quantity"]) for j in listed} == {
        ("uses-def", 2),
        ("uses-override", 3),
    }
    assert all(j["jobStatus"] == "SUBMITTED" for j in listed)
    assert all(j["jobQueueArn"].endswith(":job-queue/depth-q") for j in listed)
    named = u.list_jobs_by_consumable_resource(
        consumableResource="Seats", filters=[{"name": "JOB_NAME", "values": ["USES-D*"]}]
    )["jobs"]
    assert [j["jobArn"].rpartition("/")[2] for j in named] == [plain["jobId"]]
    running = u.list_jobs_by_consumable_resource(
        consumableResource="Seats", filters=[{"name": "JOB_STATUS", "values": ["RUNNING"]}]
    )["jobs"]
    assert running == []
    with pytest.raises(BotoError) as err:
        u.list_jobs_by_consumable_resource(
            consumableResource="Seats", filters=[{"name": "JOB_STATUS", "values": ["DONE"]}]
        )
    assert "not one of" in message(err)
    # Another namespace's key sees the resource but none of team-a's jobs.
    assert (
        server.client(OTHER).list_jobs_by_consumable_resource(consumableResource="Seats")["jobs"]
        == []
    )
    assert USER.namespace == "team-a"
    assert server.run(server.kube.get(BATCHJOBS, plain["jobId"], "team-a"))["metadata"]


def test_multinode_nodes_without_resources_are_refused_at_submit(setup: dict[str, Any]) -> None:
    u = setup["user"]
    bare = {"image": "busybox", "command": ["x"]}
    u.register_job_definition(
        jobDefinitionName="bare-mnp",
        type="multinode",
        nodeProperties={
            "numNodes": 2,
            "mainNode": 0,
            "nodeRangeProperties": [
                {"targetNodes": "0", "container": MAIN},
                {"targetNodes": "1", "container": bare},
            ],
        },
    )
    with pytest.raises(BotoError) as err:
        u.submit_job(jobName="x", jobQueue="depth-q", jobDefinition="bare-mnp")
    assert "nodes 1:1 request no cpu or no memory" in message(err)
    with pytest.raises(BotoError) as err:  # the definition's ranges end closed
        u.submit_job(
            jobName="x", jobQueue="depth-q", jobDefinition="bare-mnp", nodeOverrides={"numNodes": 3}
        )
    assert "ends open" in message(err)
    ok = u.submit_job(
        jobName="x",
        jobQueue="depth-q",
        jobDefinition="bare-mnp",
        nodeOverrides={
            "nodePropertyOverrides": [
                {"targetNodes": "1", "containerOverrides": {"resourceRequirements": RES}}
            ]
        },
    )
    assert ok["jobId"]
