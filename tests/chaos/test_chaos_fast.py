"""The chaos tier's fast subset (``make test``): the seven fault scenarios of ``make chaos``
with fewer jobs and shorter faults (``kubatch.devkit.chaos.scenarios.FAST``). The invariants
are checked from the cluster (docs/reliability.md, "Faults"); each scenario is a test here.
"""

from __future__ import annotations

from typing import Any

import pytest

from kubatch.devkit.chaos.scenarios import FAST, SCENARIOS
from tests.chaos.conftest import scenario

pytestmark = pytest.mark.timeout(1500)


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_no_job_is_lost_or_run_twice_and_nothing_is_left_behind(
    fast_report: dict[str, Any], name: str
) -> None:
    r = scenario(fast_report, name)
    assert r["faults_injected"] >= 1, r
    assert r["jobs"] >= FAST.jobs, r
    assert r["problems"] == {}, r["problems"]
    assert (r["lost"], r["wrong_phase"], r["duplicate_attempts"], r["orphans"]) == (0, 0, 0, 0)
    assert r["untracked_jobs"] == 0, r
    assert r["retries_used_by_interruptions"] == 0, r
    assert r["finished_in_time"], r


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_metrics_agree_and_admission_resumes_after_the_fault(
    fast_report: dict[str, Any], name: str
) -> None:
    r = scenario(fast_report, name)
    assert r["metrics_agree"], (r["completions_counted"], r["completions_in_status"])
    assert r["probes_admitted"] == r["probes"] > 0, r
    assert r["recovery_max_s"] is not None
    assert r["recovery_max_s"] < 60, r["recovery_s"]


def test_every_scenario_ran_and_held(fast_report: dict[str, Any]) -> None:
    assert [r["scenario"] for r in fast_report["scenarios"]] == list(SCENARIOS)
    assert fast_report["ok"], fast_report["logs_tail"]
