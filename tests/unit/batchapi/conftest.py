"""An in-process AWS Batch API on a fake Kubernetes, and boto3 clients for it."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp import web
from tests.unit.batchapi.shapes import Recorder

from kubatch.adapters.fake import FakeKube
from kubatch.batchapi.identity import Identity
from kubatch.batchapi.server import BatchApi, KeyRing

USER = Identity("AKIDUSER0001", "user-secret", "team-a", "111111111111")
OTHER = Identity("AKIDOTHER001", "other-secret", "team-b", "222222222222")
ADMIN = Identity("AKIDADMIN001", "admin-secret", "ops", "333333333333", admin=True)


@dataclass
class Server:
    url: str
    kube: FakeKube
    loop: asyncio.AbstractEventLoop
    recorder: Recorder

    def client(self, who: Identity = USER, **config: Any) -> Any:
        import boto3
        from botocore.config import Config

        return boto3.client(
            "batch",
            endpoint_url=self.url,
            region_name="us-east-1",
            aws_access_key_id=who.access_key,
            aws_secret_access_key=who.secret,
            config=Config(retries={"total_max_attempts": 1}, **config),
        )

    def run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    kube = FakeKube(clock=lambda: datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
    keys = KeyRing({i.access_key: i for i in (USER, OTHER, ADMIN)})
    recorder = Recorder()
    app = BatchApi(kube, keys, region="us-east-1", observer=recorder).app()
    loop = asyncio.new_event_loop()
    started = threading.Event()
    holder: dict[str, Any] = {}

    async def start() -> None:
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        holder["runner"] = runner
        holder["port"] = runner.addresses[0][1]
        started.set()

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(start(), loop)
    assert started.wait(10)
    try:
        yield Server(f"http://127.0.0.1:{holder['port']}", kube, loop, recorder)
        # Every answer the server gave in this module conforms to botocore's output shapes.
        assert recorder.answers > 0
        assert not recorder.problems, "\n".join(recorder.problems[:30])
    finally:
        asyncio.run_coroutine_threadsafe(holder["runner"].cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
