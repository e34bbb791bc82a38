"""``kubatch batch-api`` as its own process, exactly as the chart runs it: the ServiceAccount,
ClusterRole and Role that ``helm template --set batchApi.enabled=true`` renders are applied
to the real plane, the ServiceAccount's token is its only credential, and the access keys
come from a Kubernetes Secret. A permission the server needs and the chart lacks shows up as
a ServerException here."""

from __future__ import annotations

import base64
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.e2e.batchapi_support import eventually, wait_job
from tests.e2e.conftest import ROOT, Stack
from tests.e2e.test_chart_rbac import can_i, sa_token, write_kubeconfig

from kubatch.devkit.process import Child, free_port
from kubatch.devkit.stack import kubatch_argv
from kubatch.local.helm import ensure_helm

pytestmark = pytest.mark.timeout(300)
KINDS = ("ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")


def render(release: str, namespace: str) -> list[dict[str, Any]]:
    proc = subprocess.run(
        [
            str(ensure_helm()),
            "template",
            release,
            str(ROOT / "helm" / "kubatch"),
            "--namespace",
            namespace,
            "--set",
            "batchApi.enabled=true",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    docs = [d for d in yaml.safe_load_all(proc.stdout) if d]
    return [d for d in docs if d["kind"] in KINDS and "batch-api" in d["metadata"]["name"]]


@pytest.fixture
def served(stack: Stack, namespace: str) -> Iterator[tuple[str, dict[str, str]]]:
    rbac = render(namespace, namespace)
    assert sorted(d["kind"] for d in rbac) == sorted(KINDS)
    sa = next(d for d in rbac if d["kind"] == "ServiceAccount")["metadata"]["name"]
    secret = "kubatch-batch-api-keys"
    user = {"akid": "AKIDPROCESS1", "secret": "process-secret"}
    admin = {"akid": "AKIDPROCADM1", "secret": "admin-secret"}
    data = {
        user["akid"]: f"{user['secret']}:{namespace}",
        admin["akid"]: f'{{"secretAccessKey": "{admin["secret"]}", "namespace": "{namespace}", '
        f'"accountId": "123456789012", "admin": true}}',
        "BROKEN": "no-namespace",
    }
    stack.apply(rbac)
    stack.apply(
        [
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": secret},
                "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
            }
        ],
        namespace,
    )
    kubeconfig = stack.workdir / f"{namespace}-batch-api.kubeconfig"
    write_kubeconfig(stack.plane.kubeconfig, sa_token(stack, namespace, sa), kubeconfig)
    assert can_i(stack, kubeconfig, "create", "batchjobs.kubatch.io", "-n", namespace)
    assert not can_i(stack, kubeconfig, "list", "secrets", "-n", namespace)
    assert not can_i(
        stack, kubeconfig, "patch", "batchjobs.kubatch.io", "--subresource=status", "-n", namespace
    )
    port = free_port()
    proc = Child(
        "batch-api",
        kubatch_argv(
            "batch-api",
            "--port",
            str(port),
            "--kubeconfig",
            str(kubeconfig),
            "--keys-secret",
            f"{namespace}/{secret}",
        ),
        stack.workdir / f"{namespace}-batch-api.log",
        {**stack.env, "KUBECONFIG": str(kubeconfig)},
        cwd=ROOT,
    )
    proc.start()
    try:
        eventually("the server to listen", lambda: "listening on port" in proc.log.read_text(), 30)
        yield f"http://127.0.0.1:{port}", {"user": user, "admin": admin, "log": str(proc.log)}
    finally:
        proc.stop()
        for doc in rbac:
            if doc["kind"] in ("ClusterRole", "ClusterRoleBinding"):
                stack.kubectl("delete", doc["kind"].lower(), doc["metadata"]["name"], check=False)


def client(url: str, key: dict[str, str]) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        "batch",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id=key["akid"],
        aws_secret_access_key=key["secret"],
        config=Config(retries={"total_max_attempts": 1}),
    )


def test_the_process_under_the_charts_rbac_with_keys_from_a_secret(
    stack: Stack, namespace: str, served: tuple[str, dict[str, Any]]
) -> None:
    url, keys = served
    admin, user = client(url, keys["admin"]), client(url, keys["user"])
    ce = f"ce-{namespace}"
    admin.create_compute_environment(
        computeEnvironmentName=ce,
        type="MANAGED",
        computeResources={"type": "EC2", "maxvCpus": 4, "instanceTypes": ["m5.large"]},
    )
    admin.create_job_queue(
        jobQueueName=f"q-{namespace}",
        priority=1,
        computeEnvironmentOrder=[{"order": 1, "computeEnvironment": ce}],
    )
    arn = admin.describe_job_queues(jobQueues=[f"q-{namespace}"])["jobQueues"][0]["jobQueueArn"]
    assert ":123456789012:" in arn  # the Secret's JSON form gave this account id
    user.register_job_definition(
        jobDefinitionName="Proc_Def",
        type="container",
        containerProperties={
            "image": "busybox",
            "resourceRequirements": [
                {"type": "VCPU", "value": "1"},
                {"type": "MEMORY", "value": "128"},
            ],
        },
    )
    job = user.submit_job(
        jobName="from-process", jobQueue=f"q-{namespace}", jobDefinition="Proc_Def"
    )
    done = wait_job(user, job["jobId"])
    assert done["status"] == "SUCCEEDED", done
    kids = user.list_jobs(jobQueue=f"q-{namespace}", jobStatus="SUCCEEDED")["jobSummaryList"]
    assert [k["jobId"] for k in kids] == [job["jobId"]]
    with pytest.raises(Exception, match="AccessDeniedException"):
        user.delete_job_queue(jobQueue=f"q-{namespace}")
    admin.update_job_queue(jobQueue=f"q-{namespace}", state="DISABLED")
    admin.delete_job_queue(jobQueue=f"q-{namespace}")
    admin.update_compute_environment(computeEnvironment=ce, state="DISABLED")
    admin.delete_compute_environment(computeEnvironment=ce)
    log = Path(keys["log"]).read_text()
    assert "key BROKEN" in log  # a bad entry is reported and skipped, the others work
    assert "403" not in log, log[-3000:]
    assert "Traceback" not in log, log[-3000:]
