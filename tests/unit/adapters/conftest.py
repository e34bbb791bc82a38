"""The scripted API server of the adapter tests, one per test."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from tests.unit.adapters.fake_api import FakeApi


@pytest.fixture
async def api() -> AsyncIterator[FakeApi]:
    fake = FakeApi()
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()
