"""The chaos tier's fast subset runs once per session (a plane, the simulator and two
operators of its own, stopped by PID at the end); its tests read the report."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kubatch.devkit.chaos.run import run
from kubatch.devkit.chaos.scenarios import FAST, SCENARIOS


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "chaos" in item.nodeid.split("/"):
            item.add_marker(pytest.mark.chaos)


@pytest.fixture(scope="session")
def fast_report() -> Iterator[dict[str, Any]]:
    """``kubatch bench chaos --fast``, in-process: every scenario, fewer jobs."""
    work = Path(tempfile.mkdtemp(prefix="kubatch-chaos-fast-"))
    try:
        yield asyncio.run(run(work, FAST, tuple(SCENARIOS), say=print))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def scenario(report: dict[str, Any], name: str) -> dict[str, Any]:
    by_name = {r["scenario"]: r for r in report["scenarios"]}
    assert name in by_name, f"{name} did not run; logs:\n{report['logs_tail']}"
    return by_name[name]
