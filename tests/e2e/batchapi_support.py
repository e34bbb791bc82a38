"""The AWS Batch API for end-to-end tests: served in-process (a thread with its own event
loop) against the e2e tier's real control plane, where the ``stack`` fixture's operator and
simulated node pools run the jobs. Every answer is checked against botocore's output shapes.

Import the fixtures into a test module: ``from tests.e2e.batchapi_support import api, …``.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import web
from tests.e2e.conftest import Stack
from tests.unit.batchapi.shapes import Recorder

from kubatch.adapters.kube import Kube
from kubatch.batchapi.identity import Identity, account_for
from kubatch.batchapi.server import BatchApi, KeyRing
from kubatch.devkit.polling import eventually as devkit_eventually

REGION = "us-east-1"


@dataclass
class Api:
    url: str
    keys: KeyRing
    recorder: Recorder
    admin: Identity

    def key_for(self, namespace: str, *, admin: bool = False) -> Identity:
        """A fresh access key whose jobs and definitions live in ``namespace``."""
        suffix = uuid.uuid4().hex[:12].upper()
        who = Identity(f"AKID{suffix}", uuid.uuid4().hex, namespace, account_for(namespace), admin)
        self.keys.static[who.access_key] = who
        return who

    def client(self, who: Identity) -> Any:
        import boto3
        from botocore.config import Config

        return boto3.client(
            "batch",
            endpoint_url=self.url,
            region_name=REGION,
            aws_access_key_id=who.access_key,
            aws_secret_access_key=who.secret,
            config=Config(retries={"total_max_attempts": 2}),
        )


@pytest.fixture(scope="session")
def api(stack: Stack) -> Iterator[Api]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    admin = Identity("AKIDE2EADMIN", "e2e-admin-secret", "default", "000000000001", admin=True)
    keys = KeyRing({admin.access_key: admin})
    recorder = Recorder()
    holder: dict[str, Any] = {}

    async def start() -> str:
        kube = await Kube.from_environment(str(stack.plane.kubeconfig))
        runner = web.AppRunner(BatchApi(kube, keys, region=REGION, observer=recorder).app())
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        holder.update(kube=kube, runner=runner)
        return f"http://127.0.0.1:{runner.addresses[0][1]}"

    url = asyncio.run_coroutine_threadsafe(start(), loop).result(30)
    try:
        yield Api(url, keys, recorder, admin)
        assert recorder.answers > 0
        assert not recorder.problems, "\n".join(recorder.problems[:30])
    finally:

        async def stop() -> None:
            await holder["runner"].cleanup()
            await holder["kube"].close()

        asyncio.run_coroutine_threadsafe(stop(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


def eventually(
    what: str, probe: Callable[[], Any], timeout: float = 120, every: float = 0.5
) -> Any:
    """devkit's ``eventually`` with this module's positional signature."""
    return devkit_eventually(probe, what=what, timeout=timeout, every=every)


def pool(api: Api, ns: str, *, max_vcpus: int = 16) -> tuple[str, str]:
    """A compute environment and a queue of AWS names (upper case, ``_``), made through the API."""
    a = api.client(api.admin)
    ce, q = f"CE_{ns}", f"Queue_{ns}"
    a.create_compute_environment(
        computeEnvironmentName=ce,
        type="MANAGED",
        serviceRole="arn:aws:iam::000000000001:role/batch",
        computeResources={
            "type": "EC2",
            "maxvCpus": max_vcpus,
            "minvCpus": 0,
            "instanceTypes": ["m5.large", "m5.xlarge"],
            "subnets": ["subnet-e2e"],
        },
    )
    a.create_job_queue(
        jobQueueName=q,
        priority=10,
        computeEnvironmentOrder=[{"order": 1, "computeEnvironment": ce}],
    )
    eventually(
        f"queue {q} VALID",
        lambda: a.describe_job_queues(jobQueues=[q])["jobQueues"][0]["status"] == "VALID",
        60,
    )
    return ce, q


def wait_job(
    client: Any,
    job_id: str,
    states: tuple[str, ...] = ("SUCCEEDED", "FAILED"),
    timeout: float = 120,
) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        jobs = client.describe_jobs(jobs=[job_id])["jobs"]
        return jobs[0] if jobs and jobs[0]["status"] in states else None

    result: dict[str, Any] = eventually(f"job {job_id} in {states}", probe, timeout, every=1.0)
    return result
