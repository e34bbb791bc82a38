"""A differential check against moto's AWS Batch mock: the same calls, answered by kubatch
(real plane, operator, simulated pools) and by moto, give the same keys with the same types.

moto simplifies AWS's behaviour (its jobs succeed at once, its values are placeholders), so
only shapes are compared: every key both return has the same JSON type, and every key moto
returns that kubatch does not is in :data:`MOTO_ONLY`, each with the reason kubatch has none.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from tests.e2e.batchapi_support import Api, api, pool, wait_job
from tests.e2e.conftest import Stack

pytestmark = pytest.mark.timeout(300)
__all__ = ["api"]

MOTO_ONLY = {
    # ECS tasks and CloudWatch log streams do not exist on Kubernetes; the pod of each
    # attempt is in eksAttempts[].podName instead.
    "DescribeJobs.jobs[].attempts[].container.containerInstanceArn",
    "DescribeJobs.jobs[].attempts[].container.taskArn",
    "DescribeJobs.jobs[].attempts[].container.logStreamName",
    "DescribeJobs.jobs[].attempts[].container.networkInterfaces",
    "DescribeJobs.jobs[].container.logStreamName",
    # Deprecated forms of resourceRequirements (VCPU, MEMORY), which kubatch returns.
    "DescribeJobs.jobs[].container.vcpus",
    "DescribeJobs.jobs[].container.memory",
    # An ECS cluster per compute environment: kubatch's pools are Kubernetes nodes.
    "DescribeComputeEnvironments.computeEnvironments[].ecsClusterArn",
}
CP = {
    "image": "busybox",
    "command": ["true"],
    "resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "128"}],
}


def signature(value: Any, path: str, out: dict[str, str]) -> None:
    """Every key path of a response and its JSON type (list items merged under ``[]``)."""
    if isinstance(value, dict):
        out[path] = "object"
        for k, v in value.items():
            signature(v, f"{path}.{k}", out)
    elif isinstance(value, list):
        out[path] = "array"
        for v in value:
            signature(v, f"{path}[]", out)
    else:
        out[path] = {bool: "boolean", int: "number", float: "number", str: "string"}.get(
            type(value), type(value).__name__
        )


def scenario(client: Any, queue: str, ce: str, wait: Callable[[str], None]) -> dict[str, Any]:
    """The calls made against both; the answers by operation name."""
    out: dict[str, Any] = {}
    out["RegisterJobDefinition"] = client.register_job_definition(
        jobDefinitionName="Diff_Def", type="container", containerProperties=CP
    )
    out["SubmitJob"] = client.submit_job(jobName="diff", jobQueue=queue, jobDefinition="Diff_Def")
    job_id = out["SubmitJob"]["jobId"]
    wait(job_id)
    out["DescribeJobs"] = client.describe_jobs(jobs=[job_id])
    out["ListJobs"] = client.list_jobs(jobQueue=queue, jobStatus="SUCCEEDED")
    out["DescribeJobDefinitions"] = client.describe_job_definitions(jobDefinitions=["Diff_Def:1"])
    out["DescribeJobQueues"] = client.describe_job_queues(jobQueues=[queue])
    out["DescribeComputeEnvironments"] = client.describe_compute_environments(
        computeEnvironments=[ce]
    )
    client.tag_resource(resourceArn=out["SubmitJob"]["jobArn"], tags={"k": "v"})
    out["ListTagsForResource"] = client.list_tags_for_resource(
        resourceArn=out["SubmitJob"]["jobArn"]
    )
    for answer in out.values():
        answer.pop("ResponseMetadata", None)
    return out


def moto_answers() -> dict[str, Any]:
    import boto3
    from moto import mock_aws

    with mock_aws(config={"batch": {"use_docker": False}}):
        b = boto3.client("batch", region_name="us-east-1")
        role = boto3.client("iam", region_name="us-east-1").create_role(
            RoleName="batch", AssumeRolePolicyDocument="{}"
        )["Role"]["Arn"]
        b.create_compute_environment(
            computeEnvironmentName="Diff_CE", type="UNMANAGED", state="ENABLED", serviceRole=role
        )
        b.create_job_queue(
            jobQueueName="Diff_Q",
            priority=1,
            state="ENABLED",
            computeEnvironmentOrder=[{"order": 1, "computeEnvironment": "Diff_CE"}],
        )

        def wait(job_id: str) -> None:
            for _ in range(60):
                if b.describe_jobs(jobs=[job_id])["jobs"][0]["status"] == "SUCCEEDED":
                    return
                time.sleep(0.25)
            raise AssertionError("moto's job did not succeed")

        return scenario(b, "Diff_Q", "Diff_CE", wait)


def test_same_keys_and_types_as_moto(stack: Stack, api: Api, namespace: str) -> None:
    theirs = moto_answers()
    ce, queue = pool(api, namespace)
    client = api.client(api.key_for(namespace))
    ours = scenario(client, queue, ce, lambda job_id: wait_job(client, job_id))
    assert ours["DescribeJobs"]["jobs"][0]["status"] == "SUCCEEDED"
    mismatched, missing = [], []
    for op in theirs:
        a, b = {}, {}
        signature(ours[op], op, a)
        signature(theirs[op], op, b)
        mismatched += [
            f"{p}: ours {a[p]}, moto {b[p]}" for p in sorted(a.keys() & b.keys()) if a[p] != b[p]
        ]
        missing += [p for p in sorted(b.keys() - a.keys()) if p not in MOTO_ONLY]
    assert not mismatched, mismatched
    assert not missing, missing
    # kubatch returns what moto leaves out too (AWS's own members: every answer is checked
    # against botocore's shapes by the api fixture).
    job = ours["DescribeJobs"]["jobs"][0]
    assert {"eksAttempts", "isCancelled", "isTerminated", "statusReason"} <= job.keys()
