"""The scripted API server of the adapter tests, and a client logged in to it, per test."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from tests.unit.adapters.fake_api import FakeApi, kube_for

from kubatch.adapters.kube import Kube


@pytest.fixture
async def api() -> AsyncIterator[FakeApi]:
    fake = FakeApi()
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()


@pytest.fixture
async def kube(api: FakeApi) -> AsyncIterator[Kube]:
    client = kube_for(f"http://127.0.0.1:{api.port}")
    try:
        yield client
    finally:
        await client.close()
