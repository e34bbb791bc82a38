"""The aws CLI (v1, from PyPI), unchanged, against kubatch: a subprocess with an isolated
environment (its own config and credentials files, no ~/.aws), auto-pagination, and the
exit status 255 with AWS's message on an error."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from tests.e2e.batchapi_support import Api, api, eventually, pool
from tests.e2e.conftest import Stack

from kubatch.batchapi.identity import Identity

pytestmark = pytest.mark.timeout(300)
__all__ = ["api"]
AWS = Path(sys.executable).with_name("aws")


class Cli:
    def __init__(self, api: Api, who: Identity, home: Path) -> None:
        home.mkdir(parents=True, exist_ok=True)
        (home / "credentials").write_text(
            f"[default]\naws_access_key_id = {who.access_key}\n"
            f"aws_secret_access_key = {who.secret}\n"
        )
        (home / "config").write_text("[default]\nregion = us-east-1\noutput = json\n")
        keep = ("PATH", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT")
        self.env = {k: v for k, v in os.environ.items() if k in keep}
        self.env.update(
            HOME=str(home),
            AWS_CONFIG_FILE=str(home / "config"),
            AWS_SHARED_CREDENTIALS_FILE=str(home / "credentials"),
            AWS_EC2_METADATA_DISABLED="true",
            AWS_PAGER="",
        )
        self.url = api.url

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [str(AWS), "batch", *args, "--endpoint-url", self.url],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"aws batch {' '.join(args)}: {proc.returncode}\n{proc.stderr}")
        return proc

    def json(self, *args: str) -> Any:
        return json.loads(self.run(*args).stdout or "{}")


def test_aws_cli(stack: Stack, api: Api, namespace: str, tmp_path: Path) -> None:
    assert AWS.exists(), "the aws CLI (awscli) is a dev dependency"
    _, queue = pool(api, namespace)
    cli = Cli(api, api.key_for(namespace), tmp_path / "aws-home")
    queues = cli.json("describe-job-queues", "--job-queues", queue)["jobQueues"]
    assert queues[0]["jobQueueName"] == queue
    assert queues[0]["status"] == "VALID"
    reg = cli.json(
        "register-job-definition",
        "--job-definition-name",
        "Cli_Def",
        "--type",
        "container",
        "--container-properties",
        json.dumps(
            {
                "image": "busybox",
                "command": ["true"],
                "resourceRequirements": [
                    {"type": "VCPU", "value": "1"},
                    {"type": "MEMORY", "value": "128"},
                ],
            }
        ),
    )
    assert reg["revision"] == 1
    ids = [
        cli.json(
            "submit-job",
            "--job-name",
            f"cli-{i}",
            "--job-queue",
            queue,
            "--job-definition",
            "Cli_Def:1",
        )["jobId"]
        for i in range(3)
    ]
    # Auto-pagination: the CLI follows nextToken across pages of one and prints them all.
    listed = cli.json(
        "list-jobs",
        "--job-queue",
        queue,
        "--page-size",
        "1",
        "--filters",
        "name=JOB_NAME,values=cli-*",
    )["jobSummaryList"]
    assert sorted(j["jobId"] for j in listed) == sorted(ids)
    one = cli.json(
        "list-jobs",
        "--job-queue",
        queue,
        "--max-items",
        "1",
        "--filters",
        "name=JOB_NAME,values=cli-*",
    )
    assert len(one["jobSummaryList"]) == 1
    assert one["NextToken"]

    def done() -> bool:
        jobs = cli.json("describe-jobs", "--jobs", *ids)["jobs"]
        return len(jobs) == 3 and all(j["status"] == "SUCCEEDED" for j in jobs)

    eventually("the CLI's jobs to succeed", done, 120, every=2)
    succeeded = cli.json("list-jobs", "--job-queue", queue, "--job-status", "SUCCEEDED")
    assert sorted(j["jobId"] for j in succeeded["jobSummaryList"]) == sorted(ids)
    # An error: exit status 255 and AWS's message.
    bad = cli.run(
        "submit-job",
        "--job-name",
        "x",
        "--job-queue",
        "No_Such_Queue",
        "--job-definition",
        "Cli_Def",
        check=False,
    )
    assert bad.returncode == 255
    assert "An error occurred (ClientException) when calling the SubmitJob operation:" in bad.stderr
    assert "No_Such_Queue" in bad.stderr
    denied = cli.run(
        "create-job-queue",
        "--job-queue-name",
        "q",
        "--priority",
        "1",
        "--compute-environment-order",
        "order=1,computeEnvironment=x",
        check=False,
    )
    assert denied.returncode == 255
    assert "AccessDeniedException" in denied.stderr
