"""boto3, unchanged, against kubatch: the AWS Batch API on the real control plane with the
operator and simulated node pools running the jobs. Every answer the server gives here is
checked against botocore's output shapes (the ``api`` fixture)."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from tests.e2e.batchapi_support import Api, api, eventually, pool, wait_job
from tests.e2e.conftest import Stack

from kubatch.batchapi import names

pytestmark = pytest.mark.timeout(420)
__all__ = ["api"]

RESOURCES = [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "256"}]


def sim_definition(
    client: Any,
    name: str,
    *,
    duration: float = 1,
    exit_code: int | None = None,
    by_index: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """An EKS-style definition whose pod annotations drive the simulated pod."""
    annotations = {"sim.kubatch.io/duration": str(duration)}
    if exit_code is not None:
        annotations["sim.kubatch.io/exit-code"] = str(exit_code)
    if by_index:
        annotations["sim.kubatch.io/exit-code-by-index"] = by_index
    result: dict[str, Any] = client.register_job_definition(
        jobDefinitionName=name,
        type="container",
        eksProperties={
            "podProperties": {
                "containers": [
                    {
                        "name": "main",
                        "image": "busybox",
                        "command": ["sh", "-c", "Ref::what"],
                        "resources": {"requests": {"cpu": "500m", "memory": "256Mi"}},
                    }
                ],
                "metadata": {"annotations": annotations},
            }
        },
        parameters={"what": "true"},
        **extra,
    )
    return result


def test_boto3_scenario(stack: Stack, api: Api, namespace: str) -> None:
    ns = namespace
    _, queue = pool(api, ns)
    batch = api.client(api.key_for(ns))

    # A container-style definition (AWS's ECS shape) and a plain job.
    reg = batch.register_job_definition(
        jobDefinitionName="Hello_World",
        type="container",
        containerProperties={
            "image": "busybox",
            "command": ["echo", "Ref::who"],
            "resourceRequirements": RESOURCES,
            "environment": [{"name": "GREETING", "value": "hi"}],
        },
        parameters={"who": "world"},
    )
    assert reg["revision"] == 1
    plain = batch.submit_job(
        jobName="hello", jobQueue=queue, jobDefinition="Hello_World", parameters={"who": "kubatch"}
    )
    done = wait_job(batch, plain["jobId"])
    assert done["status"] == "SUCCEEDED", done
    assert done["statusReason"] == "Essential container in task exited"
    assert done["container"]["command"] == ["echo", "kubatch"]
    assert done["container"]["exitCode"] == 0
    assert [a["container"]["exitCode"] for a in done["attempts"]] == [0]
    assert done["createdAt"] <= done["startedAt"] <= done["stoppedAt"]
    assert done["eksAttempts"][0]["podName"]
    assert done["eksAttempts"][0]["nodeName"].startswith("sim-")
    # The BatchJob is an ordinary kubatch object: kubectl sees it under the job id.
    bj = stack.get("batchjob", plain["jobId"], ns)
    assert bj is not None
    assert bj["metadata"]["annotations"][names.NAME] == "hello"
    container = stack.list("jobs", ns, "-l", f"kubatch.io/batchjob={plain['jobId']}")[0]["spec"][
        "template"
    ]["spec"]["containers"][0]
    assert container["args"] == ["echo", "kubatch"]
    assert {"name": "AWS_BATCH_JOB_ATTEMPT", "value": "1"} in container["env"]

    # Arrays: N_TO_N on another array, and SEQUENTIAL children.
    sim_definition(batch, "Stage")
    first = batch.submit_job(
        jobName="stage-1", jobQueue=queue, jobDefinition="Stage", arrayProperties={"size": 3}
    )
    second = batch.submit_job(
        jobName="stage-2",
        jobQueue=queue,
        jobDefinition="Stage:1",
        arrayProperties={"size": 3},
        dependsOn=[{"jobId": first["jobId"], "type": "N_TO_N"}],
    )
    chain = batch.submit_job(
        jobName="chain",
        jobQueue=queue,
        jobDefinition="Stage",
        arrayProperties={"size": 3},
        dependsOn=[{"type": "SEQUENTIAL"}],
    )
    for job in (first, second, chain):
        parent = wait_job(batch, job["jobId"], timeout=180)
        assert parent["status"] == "SUCCEEDED", parent
        assert parent["arrayProperties"]["size"] == 3
        assert parent["arrayProperties"]["statusSummary"]["SUCCEEDED"] == 3
    kids = batch.describe_jobs(jobs=[f"{second['jobId']}:{i}" for i in range(3)])["jobs"]
    assert [k["status"] for k in kids] == ["SUCCEEDED"] * 3
    assert kids[1]["dependsOn"] == [{"jobId": f"{first['jobId']}:1", "type": "N_TO_N"}]
    upstream = batch.describe_jobs(jobs=[f"{first['jobId']}:{i}" for i in range(3)])["jobs"]
    for up, down in zip(upstream, kids, strict=True):
        assert up["stoppedAt"] // 1000 <= down["startedAt"] // 1000, (up, down)
    links = batch.describe_jobs(jobs=[f"{chain['jobId']}:{i}" for i in range(3)])["jobs"]
    for before, after in itertools.pairwise(links):
        assert before["stoppedAt"] // 1000 <= after["startedAt"] // 1000, (before, after)
    listed = batch.list_jobs(arrayJobId=chain["jobId"], jobStatus="SUCCEEDED")["jobSummaryList"]
    assert sorted(j["arrayProperties"]["index"] for j in listed) == [0, 1, 2]

    # A retry strategy: exit code 3 retried once, then the job fails with both attempts.
    sim_definition(
        batch,
        "Flaky",
        exit_code=3,
        retryStrategy={"attempts": 2, "evaluateOnExit": [{"onExitCode": "3", "action": "RETRY"}]},
    )
    flaky = wait_job(
        batch, batch.submit_job(jobName="flaky", jobQueue=queue, jobDefinition="Flaky")["jobId"]
    )
    assert flaky["status"] == "FAILED"
    assert [a["container"]["exitCode"] for a in flaky["attempts"]] == [3, 3]
    assert flaky["eksProperties"]["podProperties"]["containers"][0]["exitCode"] == 3
    assert flaky["retryStrategy"]["attempts"] == 2

    # ListJobs with page size 2 (boto3's paginator follows nextToken).
    pages = list(
        batch.get_paginator("list_jobs").paginate(
            jobQueue=queue, jobStatus="SUCCEEDED", PaginationConfig={"PageSize": 2}
        )
    )
    ids = [j["jobId"] for p in pages for j in p["jobSummaryList"]]
    assert len(pages) >= 2
    assert all(len(p["jobSummaryList"]) <= 2 for p in pages)
    assert sorted(ids) == sorted([plain["jobId"], first["jobId"], second["jobId"], chain["jobId"]])
    failed = batch.list_jobs(jobQueue=queue, jobStatus="FAILED")["jobSummaryList"]
    assert [j["jobName"] for j in failed] == ["flaky"]

    # Cancel a job waiting for its dependency; terminate a running one.
    sim_definition(batch, "Slow", duration=60)
    slow = batch.submit_job(jobName="slow", jobQueue=queue, jobDefinition="Slow")
    waiting = batch.submit_job(
        jobName="waiting",
        jobQueue=queue,
        jobDefinition="Slow",
        dependsOn=[{"jobId": slow["jobId"]}],
    )
    wait_job(batch, slow["jobId"], ("RUNNING",))
    assert wait_job(batch, waiting["jobId"], ("PENDING",))["status"] == "PENDING"
    batch.cancel_job(jobId=slow["jobId"], reason="cancel ignores running jobs")
    batch.cancel_job(jobId=waiting["jobId"], reason="no longer needed")
    cancelled = wait_job(batch, waiting["jobId"])
    assert cancelled["status"] == "FAILED"
    assert cancelled["isCancelled"] is True
    assert cancelled["statusReason"] == "no longer needed"
    assert batch.describe_jobs(jobs=[slow["jobId"]])["jobs"][0]["status"] == "RUNNING"
    batch.terminate_job(jobId=slow["jobId"], reason="operator stop")
    stopped = wait_job(batch, slow["jobId"], timeout=60)
    assert stopped["status"] == "FAILED"
    assert stopped["isTerminated"] is True
    assert stopped["statusReason"] == "operator stop"
    eventually(
        "the terminated job's pods to go",
        lambda: (
            not [
                p
                for p in stack.list("pods", ns, "-l", f"kubatch.io/batchjob={slow['jobId']}")
                if p["status"].get("phase") == "Running"
            ]
        ),
        60,
    )


def test_identity_and_namespaces(stack: Stack, api: Api, namespace: str) -> None:
    _, queue = pool(api, namespace)
    mine, theirs = api.client(api.key_for(namespace)), api.client(api.key_for("default"))
    mine.register_job_definition(
        jobDefinitionName="Only_Mine",
        type="container",
        containerProperties={"image": "busybox", "resourceRequirements": RESOURCES},
    )
    job = mine.submit_job(jobName="private", jobQueue=queue, jobDefinition="Only_Mine")
    assert theirs.describe_jobs(jobs=[job["jobId"]])["jobs"] == []
    assert not [
        d
        for d in theirs.describe_job_definitions()["jobDefinitions"]
        if d["jobDefinitionName"] == "Only_Mine"
    ]
    # A kubectl-made BatchJob in the namespace is visible too, its name being its id.
    stack.apply(
        [
            {
                "apiVersion": "kubatch.io/v1alpha1",
                "kind": "BatchJob",
                "metadata": {"name": "by-kubectl"},
                "spec": {
                    "jobQueue": names.kube_name(queue),
                    "jobDefinition": names.revision_object("Only_Mine", 1),
                },
            }
        ],
        namespace,
    )
    seen = wait_job(mine, "by-kubectl")
    assert seen["jobName"] == "by-kubectl"
    assert seen["status"] == "SUCCEEDED"
    assert wait_job(mine, job["jobId"])["status"] == "SUCCEEDED"
    with pytest.raises(Exception, match="UnrecognizedClientException"):
        api.client(
            type(api.admin)("AKIDNOBODY01", "x", "default", "000000000000")
        ).describe_job_queues()


def test_demo_boto3_submission(stack: Stack, namespace: str) -> None:
    """The function ``kubatch demo`` calls: one boto3 submission, start to end."""
    from tests.e2e.factories import make_ce, make_queue

    from kubatch.batchapi.showcase import boto3_submission

    stack.apply([make_ce(f"{namespace}-ce"), make_queue(f"{namespace}-q", [f"{namespace}-ce"])])
    result = boto3_submission(str(stack.plane.kubeconfig), namespace, f"{namespace}-q")
    assert result.status == "SUCCEEDED", result
    assert result.status_reason == "Essential container in task exited"
    assert stack.get("batchjob", result.job_id, namespace) is not None
    assert len(result.lines) == 3


def test_vcpus_and_memory_may_come_from_the_overrides(
    stack: Stack, api: Api, namespace: str
) -> None:
    """SEMANTICS §3: a definition without vCPU and memory; each job gives them, or is refused
    at SubmitJob naming what is missing."""
    from botocore.exceptions import ClientError

    _, queue = pool(api, namespace)
    batch = api.client(api.key_for(namespace))
    batch.register_job_definition(
        jobDefinitionName="No_Size",
        type="container",
        containerProperties={"image": "busybox", "command": ["true"]},
    )
    with pytest.raises(ClientError) as err:
        batch.submit_job(jobName="unsized", jobQueue=queue, jobDefinition="No_Size")
    message = err.value.response["Error"]["Message"]
    assert err.value.response["Error"]["Code"] == "ClientException"
    assert "no vCPU and no memory" in message
    with pytest.raises(ClientError, match="no memory"):
        batch.submit_job(
            jobName="half",
            jobQueue=queue,
            jobDefinition="No_Size",
            containerOverrides={"resourceRequirements": [RESOURCES[0]]},
        )
    job = batch.submit_job(
        jobName="sized",
        jobQueue=queue,
        jobDefinition="No_Size",
        containerOverrides={"resourceRequirements": RESOURCES},
    )
    done = wait_job(batch, job["jobId"])
    assert done["status"] == "SUCCEEDED", done
    sizes = {r["type"]: r["value"] for r in done["container"]["resourceRequirements"]}
    assert sizes == {"VCPU": "1", "MEMORY": "256"}
