"""The API in-process on a fake Kubernetes, driven by boto3: operations, identity and
namespaces, admin rights, revisions, errors. Every answer is checked against botocore's
output shapes by the module's server fixture."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError as BotoError
from tests.unit.batchapi.conftest import ADMIN, OTHER, USER, Server

from kubatch.adapters.kube import BATCHJOBS, JOBDEFINITIONS, ApiError
from kubatch.batchapi import names

CP = {
    "image": "busybox",
    "command": ["run", "Ref::sample"],
    "resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "512"}],
}


def code(err: pytest.ExceptionInfo[BotoError]) -> str:
    return str(err.value.response["Error"]["Code"])


@pytest.fixture(scope="module")
def setup(server: Server) -> dict[str, Any]:
    a = server.client(ADMIN)
    a.create_compute_environment(
        computeEnvironmentName="Pool_1",
        type="MANAGED",
        state="ENABLED",
        computeResources={
            "type": "EC2",
            "maxvCpus": 8,
            "instanceTypes": ["optimal"],
            "subnets": ["subnet-1"],
            "securityGroupIds": ["sg-1"],
        },
    )
    a.create_job_queue(
        jobQueueName="Main_Q",
        priority=5,
        computeEnvironmentOrder=[{"order": 1, "computeEnvironment": "Pool_1"}],
    )
    u = server.client(USER)
    r1 = u.register_job_definition(
        jobDefinitionName="Align_v1",
        type="container",
        containerProperties=CP,
        parameters={"sample": "S0"},
    )
    return {"admin": a, "user": u, "def": r1}


def test_register_revisions_and_deregister(server: Server, setup: dict[str, Any]) -> None:
    u = setup["user"]
    assert setup["def"]["revision"] == 1
    r2 = u.register_job_definition(
        jobDefinitionName="Align_v1",
        type="container",
        containerProperties={**CP, "image": "busybox:2"},
    )
    assert r2["revision"] == 2
    assert r2["jobDefinitionArn"].endswith(":111111111111:job-definition/Align_v1:2")
    defs = u.describe_job_definitions(jobDefinitionName="Align_v1")["jobDefinitions"]
    assert [(d["revision"], d["status"]) for d in defs] == [(1, "ACTIVE"), (2, "ACTIVE")]
    assert defs[1]["containerProperties"]["image"] == "busybox:2"  # returned as registered
    shown = defs[0]["containerProperties"]
    assert {k: v for k, v in shown.items() if v != []} == CP  # as registered, AWS defaults added
    u.deregister_job_definition(jobDefinition="Align_v1:2")
    inactive = u.describe_job_definitions(jobDefinitions=["Align_v1:2"])["jobDefinitions"]
    assert inactive[0]["status"] == "INACTIVE"
    # "Align_v1" resolves to the latest ACTIVE revision: 1 again.
    job = u.submit_job(jobName="j", jobQueue="Main_Q", jobDefinition="Align_v1")
    obj = server.run(server.kube.get(BATCHJOBS, job["jobId"], "team-a"))
    assert obj["spec"]["jobDefinition"] == names.revision_object("Align_v1", 1)
    with pytest.raises(BotoError) as err:
        u.submit_job(jobName="j", jobQueue="Main_Q", jobDefinition="Align_v1:2")
    assert code(err) == "ClientException"
    assert "INACTIVE" in str(err.value)
    # Each revision is its own object; none is ever edited by a later registration.
    objs = server.run(server.kube.list(JOBDEFINITIONS, namespace="team-a"))
    assert {o["metadata"]["name"] for o in objs} >= {
        "align-v1-" + names.kube_name("Align_v1")[-8:] + ".1"
    }


def test_submit_translates_to_a_batchjob(server: Server, setup: dict[str, Any]) -> None:
    u = setup["user"]
    first = u.submit_job(jobName="first", jobQueue="Main_Q", jobDefinition="Align_v1:1")
    job = u.submit_job(
        jobName="Second_Job",
        jobQueue="arn:aws:batch:us-east-1:111111111111:job-queue/Main_Q",
        jobDefinition="Align_v1:1",
        parameters={"sample": "S42"},
        arrayProperties={"size": 4},
        dependsOn=[{"jobId": first["jobId"], "type": "N_TO_N"}],
        containerOverrides={
            "command": ["other"],
            "environment": [{"name": "X", "value": "1"}],
            "resourceRequirements": [{"type": "MEMORY", "value": "1024"}],
        },
        retryStrategy={"attempts": 3, "evaluateOnExit": [{"onExitCode": "137", "action": "RETRY"}]},
        timeout={"attemptDurationSeconds": 120},
        tags={"team": "a"},
        propagateTags=True,
        schedulingPriorityOverride=5,
    )
    obj = server.run(server.kube.get(BATCHJOBS, job["jobId"], "team-a"))
    spec = obj["spec"]
    assert spec["jobQueue"] == names.kube_name("Main_Q")
    assert spec["dependsOn"] == [{"jobName": first["jobId"], "type": "N_TO_N"}]
    assert spec["overrides"] == {
        "args": ["other"],
        "env": [{"name": "X", "value": "1"}],
        "resources": {"requests": {"memory": "1024Mi"}, "limits": {"memory": "1024Mi"}},
    }
    assert spec["retryStrategy"]["evaluateOnExit"] == [{"onExitCode": "137", "action": "Retry"}]
    assert obj["metadata"]["annotations"][names.NAME] == "Second_Job"
    (d,) = u.describe_jobs(jobs=[job["jobId"]])["jobs"]
    assert d["jobName"] == "Second_Job"
    assert d["status"] == "SUBMITTED"
    assert d["arrayProperties"]["size"] == 4
    assert sum(d["arrayProperties"]["statusSummary"].values()) == 0
    assert d["jobDefinition"].endswith("job-definition/Align_v1:1")
    assert d["container"]["command"] == ["other"]  # resolved with overrides and parameters
    assert d["tags"] == {"team": "a"}
    assert d["propagateTags"] is True
    kids = u.describe_jobs(jobs=[f"{job['jobId']}:2", f"{job['jobId']}:9"])["jobs"]
    assert [k["jobId"] for k in kids] == [f"{job['jobId']}:2"]
    assert kids[0]["status"] == "PENDING"
    assert kids[0]["arrayProperties"] == {"index": 2}
    assert kids[0]["dependsOn"] == [{"jobId": f"{first['jobId']}:2", "type": "N_TO_N"}]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"jobQueue": "Nope"}, "does not exist"),
        ({"jobDefinition": "Nope"}, "no ACTIVE revision"),
        ({"jobDefinition": "Align_v1:99"}, "does not exist"),
        ({"jobName": "-bad"}, "jobName"),
        ({"dependsOn": [{"jobId": "no-such-job"}]}, "does not exist"),
        ({"dependsOn": [{"jobId": "x:1"}]}, "not supported"),
        (
            {"dependsOn": [{"type": "N_TO_N", "jobId": "x"}], "arrayProperties": {"size": 1}},
            "at least 2",
        ),
        ({"arrayProperties": {"size": 20000}}, "at most 10000"),
        (
            {"containerOverrides": {"environment": [{"name": "AWS_BATCH_X", "value": "1"}]}},
            "reserved",
        ),
        (
            {"parameters": {"other": "1"}, "containerOverrides": {"command": ["Ref::missing"]}},
            "undefined parameter",
        ),
        ({"nodeOverrides": {"numNodes": 2}}, "not of type multinode"),
        ({"ecsPropertiesOverride": {"taskProperties": []}}, "not supported"),
        ({"shareIdentifier": "a"}, "fair-share"),
        ({"timeout": {"attemptDurationSeconds": 10}}, "at least 60"),
        (
            {"eksPropertiesOverride": {"podProperties": {"containers": [{"image": "other"}]}}},
            "not supported",
        ),
    ],
)
def test_submit_errors_are_client_exceptions(
    setup: dict[str, Any], params: dict[str, Any], message: str
) -> None:
    base = {"jobName": "x", "jobQueue": "Main_Q", "jobDefinition": "Align_v1:1"}
    with pytest.raises(BotoError) as err:
        setup["user"].submit_job(**{**base, **params})
    assert code(err) == "ClientException"
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert message in err.value.response["Error"]["Message"]


def test_namespaces_are_isolated(server: Server, setup: dict[str, Any]) -> None:
    u, o = setup["user"], server.client(OTHER)
    job = u.submit_job(jobName="mine", jobQueue="Main_Q", jobDefinition="Align_v1:1")
    assert o.describe_jobs(jobs=[job["jobId"], job["jobArn"]])["jobs"] == []
    assert o.describe_job_definitions()["jobDefinitions"] == []
    with pytest.raises(BotoError):
        o.cancel_job(jobId=job["jobId"], reason="x")
    with pytest.raises(BotoError):
        o.submit_job(jobName="x", jobQueue="Main_Q", jobDefinition="Align_v1")
    with pytest.raises(BotoError):
        o.list_tags_for_resource(resourceArn=job["jobArn"])
    assert [q["jobQueueName"] for q in o.describe_job_queues()["jobQueues"]] == ["Main_Q"]


def test_admin_operations_need_an_admin_key(setup: dict[str, Any]) -> None:
    u, a = setup["user"], setup["admin"]
    with pytest.raises(BotoError) as err:
        u.create_job_queue(
            jobQueueName="q2",
            priority=1,
            computeEnvironmentOrder=[{"order": 1, "computeEnvironment": "Pool_1"}],
        )
    assert code(err) == "AccessDeniedException"
    with pytest.raises(BotoError) as err:
        a.create_job_queue(
            jobQueueName="q2",
            priority=1,
            computeEnvironmentOrder=[{"order": 1, "computeEnvironment": "Missing"}],
        )
    assert "does not exist" in str(err.value)
    a.create_compute_environment(computeEnvironmentName="Spare", type="UNMANAGED")
    a.create_job_queue(
        jobQueueName="q2",
        priority=1,
        state="DISABLED",
        computeEnvironmentOrder=[{"order": 1, "computeEnvironment": "Spare"}],
        jobStateTimeLimitActions=[
            {
                "reason": "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY",
                "state": "RUNNABLE",
                "maxTimeSeconds": 600,
                "action": "CANCEL",
            }
        ],
    )
    (q,) = a.describe_job_queues(jobQueues=["q2"])["jobQueues"]
    assert q["state"] == "DISABLED"
    assert q["jobStateTimeLimitActions"][0]["maxTimeSeconds"] == 600
    a.update_job_queue(jobQueue="q2", priority=9)
    assert a.describe_job_queues(jobQueues=["q2"])["jobQueues"][0]["priority"] == 9
    a.update_compute_environment(computeEnvironment="Spare", state="DISABLED")
    with pytest.raises(BotoError, match="used by job queue"):
        a.delete_compute_environment(computeEnvironment="Spare")
    a.delete_job_queue(jobQueue="q2")
    a.delete_compute_environment(computeEnvironment="Spare")
    a.update_compute_environment(computeEnvironment="Pool_1", computeResources={"maxvCpus": 16})
    (ce,) = a.describe_compute_environments(computeEnvironments=["Pool_1"])["computeEnvironments"]
    assert ce["computeResources"]["maxvCpus"] == 16
    assert ce["computeResources"]["subnets"] == ["subnet-1"]
    with pytest.raises(BotoError, match="minvCpus"):
        a.update_compute_environment(computeEnvironment="Pool_1", computeResources={"minvCpus": 99})


def test_cancel_terminate_and_list_pagination(server: Server, setup: dict[str, Any]) -> None:
    u = setup["user"]
    ids = [
        u.submit_job(jobName=f"page-{i}", jobQueue="Main_Q", jobDefinition="Align_v1:1")["jobId"]
        for i in range(5)
    ]
    for i, phase in enumerate(["Running", "Running", "Running", "Runnable", "Succeeded"]):
        server.kube.stored(BATCHJOBS, ids[i], "team-a")["status"] = {"phase": phase}
    running = [
        j["jobId"]
        for p in u.get_paginator("list_jobs").paginate(
            jobQueue="Main_Q", PaginationConfig={"PageSize": 2}
        )
        for j in p["jobSummaryList"]
    ]
    assert sorted(running) == sorted(ids[:3])
    first = u.list_jobs(jobQueue="Main_Q", maxResults=2)
    assert len(first["jobSummaryList"]) == 2
    assert first["nextToken"]
    with pytest.raises(BotoError, match="different request"):
        u.list_jobs(jobQueue="Main_Q", jobStatus="RUNNABLE", nextToken=first["nextToken"])
    named = u.list_jobs(jobQueue="Main_Q", filters=[{"name": "JOB_NAME", "values": ["PAGE-*"]}])
    assert len(named["jobSummaryList"]) == 5  # a filter ignores jobStatus, case-insensitive
    u.cancel_job(jobId=ids[0], reason="too late")  # RUNNING: AWS does not cancel it
    assert "terminate" not in server.kube.stored(BATCHJOBS, ids[0], "team-a")["spec"]
    u.cancel_job(jobId=ids[3], reason="not needed")
    assert server.kube.stored(BATCHJOBS, ids[3], "team-a")["spec"]["terminate"] == {
        "reason": "not needed"
    }
    u.terminate_job(jobId=ids[1], reason="stop")
    (d,) = u.describe_jobs(jobs=[ids[1]])["jobs"]
    assert d["isTerminated"] is True
    assert d["isCancelled"] is False
    out = u.terminate_jobs(jobs=[ids[2], "missing-job"], reason="bulk")
    assert out["successful"] == [ids[2]]
    assert out["errors"][0]["job"] == "missing-job"


def test_unsupported_and_unknown_operations_are_client_errors(server: Server) -> None:
    u = server.client(USER)
    with pytest.raises(BotoError) as err:
        u.create_scheduling_policy(name="p")
    assert code(err) == "ClientException"
    assert "not supported" in str(err.value)
    with pytest.raises(BotoError) as err:
        u.register_job_definition(
            jobDefinitionName="m",
            type="multinode",
            nodeProperties={"numNodes": 2, "mainNode": 0, "nodeRangeProperties": []},
        )
    assert "nodeRangeProperties needs at least one range" in str(err.value)
    with pytest.raises(BotoError, match="ecsProperties"):
        u.register_job_definition(
            jobDefinitionName="e", type="container", ecsProperties={"taskProperties": []}
        )


def test_kubernetes_failures_are_server_exceptions(server: Server) -> None:
    u = server.client(USER)
    etcd_down = ApiError(503, "Unavailable", '{"message": "etcd down"}')
    server.kube.fail("list", JOBDEFINITIONS.plural, error=etcd_down)
    with pytest.raises(BotoError) as err:
        u.describe_job_definitions()
    assert code(err) == "ServerException"
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    invalid = ApiError(422, "Invalid", '{"message": "spec.x: Invalid value"}')
    server.kube.fail("list", JOBDEFINITIONS.plural, error=invalid)
    with pytest.raises(BotoError) as err:
        u.describe_job_definitions()
    assert code(err) == "ClientException"
    assert "Invalid value" in str(err.value)


def test_tags(setup: dict[str, Any]) -> None:
    u, a = setup["user"], setup["admin"]
    arn = setup["def"]["jobDefinitionArn"]
    u.tag_resource(resourceArn=arn, tags={"k1": "v1", "k2": "v2"})
    u.untag_resource(resourceArn=arn, tagKeys=["k1"])
    assert u.list_tags_for_resource(resourceArn=arn)["tags"] == {"k2": "v2"}
    qarn = "arn:aws:batch:us-east-1:111111111111:job-queue/Main_Q"
    with pytest.raises(BotoError) as err:
        u.tag_resource(resourceArn=qarn, tags={"a": "b"})
    assert code(err) == "AccessDeniedException"
    a.tag_resource(resourceArn=qarn.replace("111111111111", "333333333333"), tags={"a": "b"})
    assert u.list_tags_for_resource(resourceArn=qarn)["tags"] == {"a": "b"}
    with pytest.raises(BotoError, match="reserved"):
        u.tag_resource(resourceArn=arn, tags={"aws:x": "y"})
