"""Failover (issue #12): two replicas, the leader killed with SIGKILL while a wave runs — the
standby takes over, no attempt gets a second Kubernetes Job, and the first admission after
the kill (a probe job submitted the moment the leader dies) happens within 15 s."""

from __future__ import annotations

from typing import Any

import pytest

from tests.chaos.conftest import scenario

pytestmark = pytest.mark.timeout(1500)


@pytest.fixture
def kills(fast_report: dict[str, Any]) -> dict[str, Any]:
    return scenario(fast_report, "leader-kill")


def test_the_standby_takes_over_each_time_and_then_back(kills: dict[str, Any]) -> None:
    faults = kills["faults"]
    assert len(faults) >= 2
    for f in faults:
        assert f["new_leader"], f
        assert f["new_leader"] != f["killed"], f
        assert f["takeover_s"] < 20, f
    # the killed replica came back as the standby and led again at the next kill
    assert faults[1]["killed"] == faults[0]["new_leader"]
    assert faults[1]["new_leader"] == faults[0]["killed"]


def test_no_duplicate_job_and_nothing_lost(kills: dict[str, Any]) -> None:
    assert kills["kubernetes_jobs"] > 0
    assert kills["duplicate_attempts"] == 0, kills["problems"]
    assert kills["lost"] == 0, kills["problems"]
    assert kills["orphans"] == 0, kills["problems"]


def test_first_admission_after_the_kill_within_15s(kills: dict[str, Any]) -> None:
    assert kills["probes_admitted"] == kills["probes"] >= 2
    assert max(kills["recovery_s"]) <= 15.0, kills["recovery_s"]
