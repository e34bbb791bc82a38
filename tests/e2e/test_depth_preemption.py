"""Preemption (#17) on the real plane: a high-priority queue that opts in preempts a
low-priority job on a full compute environment; the victim's attempt is recorded as
interrupted (reason Preempted) without using its single retry attempt, the urgent job runs,
and the victim runs again and completes later."""

from __future__ import annotations

from typing import Any

import pytest
from tests.e2e.conftest import Stack
from tests.e2e.factories import make_ce, make_definition, make_job, make_queue

from kubatch.devkit.promtext import parse_metrics, sample


def status(obj: dict[str, Any] | None) -> dict[str, Any]:
    st: dict[str, Any] = (obj or {}).get("status") or {}
    return st


def phase(stack: Stack, ns: str, name: str) -> str | None:
    return status(stack.get("batchjob", name, ns)).get("phase")


@pytest.mark.timeout(300)
def test_a_high_priority_queue_preempts_a_low_priority_job_that_completes_later(
    stack: Stack, namespace: str
) -> None:
    ns = namespace
    ce, hi, lo = f"{ns}-ce", f"{ns}-hi", f"{ns}-lo"
    stack.apply([
        make_ce(ce, max_vcpus=2, instance_types=("m5.large",)),
        make_queue(hi, [ce], priority=100, preemption={"reclaimFromQueues": "LowerPriority"}),
        make_queue(lo, [ce], priority=1),
    ])  # fmt: skip
    stack.apply([
        make_definition("long", duration=20, cpu="2", retry={"attempts": 1}),
        make_definition("short", duration=3, cpu="2"),
        make_job("victim", lo, "long"),
    ], ns)  # fmt: skip
    stack.wait("the low-priority job to run", lambda: phase(stack, ns, "victim") == "Running")
    stack.apply([make_job("urgent", hi, "short")], ns)  # the CE is full: 2 of 2 vCPUs

    urgent = status(stack.wait_phase(ns, "urgent", timeout=120))
    assert urgent["phase"] == "Succeeded", urgent
    victim = status(stack.wait_phase(ns, "victim", timeout=150))
    assert victim["phase"] == "Succeeded", victim  # it completed later
    first, second = victim["attempts"]  # its single retry attempt was not used up
    assert (first["reason"], first["interrupted"]) == ("Preempted", True), first
    assert "preempted" in first["statusReason"], first
    assert second.get("exitCode") == 0
    # the urgent job ran between the victim's two attempts
    assert first["stoppedAt"] <= urgent["startedAt"] <= second["startedAt"]
    events = stack.list("events", ns, "--field-selector", "involvedObject.name=victim")
    assert any(e["reason"] == "Preempted" and "urgent" in e["message"] for e in events)
    counted = sample(parse_metrics(stack.metrics()), "kubatch_job_preemptions_total",
                     queue=lo, preemptor_queue=hi)  # fmt: skip
    assert counted >= 1, "no preemption counted for the low-priority queue"
