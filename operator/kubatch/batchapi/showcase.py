"""One boto3 submission through the AWS Batch API, for ``kubatch demo`` (and anyone curious).

:func:`boto3_submission` serves the API in a background thread on a free loopback port with
a one-off access key for ``namespace``, registers a job definition, submits one job with an
unchanged boto3 client, waits for it to finish and returns what the demo prints. boto3 is a
development dependency: without it the function raises ``RuntimeError`` saying so.
"""

from __future__ import annotations

import asyncio
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from kubatch.adapters.kube import Kube
from kubatch.batchapi.identity import Identity, account_for
from kubatch.batchapi.server import BatchApi, KeyRing

REGION = "us-east-1"


@dataclass(frozen=True)
class Submission:
    job_id: str
    job_name: str
    status: str
    status_reason: str | None
    seconds: float
    lines: list[str]
    """What the demo shows, one line each."""


@contextmanager
def serve_in_thread(kubeconfig: str | None, who: Identity) -> Iterator[str]:
    """The API on 127.0.0.1:<free port> in a thread; yields its endpoint URL."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="batch-api", daemon=True)
    thread.start()
    holder: dict[str, Any] = {}

    async def start() -> str:
        kube = await Kube.from_environment(kubeconfig)
        runner = web.AppRunner(BatchApi(kube, KeyRing({who.access_key: who}), region=REGION).app())
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        holder.update(kube=kube, runner=runner)
        return f"http://127.0.0.1:{runner.addresses[0][1]}"

    async def stop() -> None:
        if "runner" in holder:
            await holder["runner"].cleanup()
        if "kube" in holder:
            await holder["kube"].close()

    try:
        yield asyncio.run_coroutine_threadsafe(start(), loop).result(30)
    finally:
        asyncio.run_coroutine_threadsafe(stop(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def boto3_submission(
    kubeconfig: str | None,
    namespace: str,
    queue: str,
    *,
    timeout: float = 120.0,
    clock: Callable[[], float] = time.monotonic,
) -> Submission:
    """Register a definition and submit one job to ``queue`` with boto3; wait for its end."""
    try:
        import boto3
    except ModuleNotFoundError as exc:  # pragma: no cover - depends on the environment
        raise RuntimeError("the boto3 submission needs boto3 (pip install boto3)") from exc
    who = Identity(
        "AKIDDEMO" + secrets.token_hex(4).upper(),
        secrets.token_hex(16),
        namespace,
        account_for(namespace),
    )
    t0 = clock()
    with serve_in_thread(kubeconfig, who) as url:
        batch = boto3.client(
            "batch",
            endpoint_url=url,
            region_name=REGION,
            aws_access_key_id=who.access_key,
            aws_secret_access_key=who.secret,
        )
        reg = batch.register_job_definition(
            jobDefinitionName="hello_from_boto3",
            type="container",
            containerProperties={
                "image": "busybox",
                "command": ["echo", "Ref::greeting"],
                "resourceRequirements": [
                    {"type": "VCPU", "value": "1"},
                    {"type": "MEMORY", "value": "256"},
                ],
            },
            parameters={"greeting": "hello"},
        )
        job = batch.submit_job(
            jobName="boto3-hello",
            jobQueue=queue,
            jobDefinition=reg["jobDefinitionArn"],
            parameters={"greeting": "hello from boto3"},
        )
        detail: dict[str, Any] = {}
        while clock() - t0 < timeout:
            detail = batch.describe_jobs(jobs=[job["jobId"]])["jobs"][0]
            if detail["status"] in ("SUCCEEDED", "FAILED"):
                break
            time.sleep(1.0)
    lines = [
        f"boto3: register_job_definition -> {reg['jobDefinitionName']}:{reg['revision']}",
        f"boto3: submit_job(jobQueue={queue!r}) -> jobId {job['jobId']}",
        f"boto3: describe_jobs -> {detail.get('status')} ({detail.get('statusReason', '')})",
    ]
    return Submission(
        job_id=job["jobId"],
        job_name=job["jobName"],
        status=str(detail.get("status")),
        status_reason=detail.get("statusReason"),
        seconds=clock() - t0,
        lines=lines,
    )
