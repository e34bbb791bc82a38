"""Argo CD health checks (Lua) run with lupa against objects shaped by kubatch's API models.

Every object is validated by ``kubatch.api.models.parse`` and dumped back to its wire form
(``dump``) before the script sees it, so the scripts read the fields the API really has. Argo CD
runs a health script with the object in the global ``obj`` and takes the table it returns.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from lupa import LuaRuntime

from kubatch.api.models import dump, parse

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "helm" / "kubatch" / "files" / "argocd"
SCRIPT_OF = {
    "BatchJob": "batchjob.lua",
    # one script for the three kinds whose status follows the kstatus conventions
    "JobQueue": "kstatus.lua",
    "ComputeEnvironment": "kstatus.lua",
    "JobDefinition": "kstatus.lua",
}
KINDS = tuple(SCRIPT_OF)
ARGO_STATUSES = {"Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown"}


def argocd_script(kind: str) -> str:
    """The health script Argo CD runs for ``kind`` (the chart's files/argocd)."""
    return (SCRIPTS / SCRIPT_OF[kind]).read_text()


def health(kind: str, body: dict[str, Any]) -> tuple[str, str]:
    """Run the kind's script the way Argo CD does; return (status, message)."""
    wire = dump(parse(body))
    lua = LuaRuntime(unpack_returned_tuples=True)
    lua.globals().obj = lua.table_from(wire, recursive=True)
    result = lua.execute(argocd_script(kind))
    status, message = str(result["status"]), str(result["message"] or "")
    assert status in ARGO_STATUSES
    return status, message


def meta(generation: int = 1) -> dict[str, Any]:
    return {"name": "x", "namespace": "default", "generation": generation}


def batch_job(status: dict[str, Any] | None, generation: int = 1) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": "kubatch.io/v1alpha1",
        "kind": "BatchJob",
        "metadata": meta(generation),
        "spec": {"jobQueue": "high", "jobDefinition": "align"},
    }
    if status is not None:
        body["status"] = status
    return body


def cond(type_: str, status: str, reason: str = "", message: str = "") -> dict[str, Any]:
    c = {"type": type_, "status": status, "observedGeneration": 1}
    if reason:
        c["reason"] = reason
    if message:
        c["message"] = message
    return c


ATTEMPT = {
    "number": 1,
    "jobName": "x-1",
    "podName": "x-1-abcde",
    "nodeName": "spot-1",
    "computeEnvironment": "spot",
    "capacityType": "Spot",
    "startedAt": "2026-01-01T00:00:00Z",
    "stoppedAt": "2026-01-01T00:01:00Z",
    "exitCode": 1,
    "reason": "NonZeroExitCode",
    "interrupted": False,
}


@pytest.mark.parametrize(
    ("status", "generation", "expected", "in_message"),
    [
        (None, 1, "Progressing", "Waiting"),
        ({"phase": "Submitted", "observedGeneration": 1}, 1, "Progressing", "Submitted"),
        (
            {"phase": "Pending", "reason": "WaitingForDependencies", "observedGeneration": 1},
            1,
            "Progressing",
            "WaitingForDependencies",
        ),
        (
            {
                "phase": "Runnable",
                "reason": "InsufficientCapacity",
                "queuePosition": 3,
                "observedGeneration": 1,
            },
            1,
            "Progressing",
            "queue position 3",
        ),
        (
            {"phase": "Runnable", "reason": "QueueDisabled", "observedGeneration": 1},
            1,
            "Suspended",
            "QueueDisabled",
        ),
        (
            {"phase": "Running", "computeEnvironment": "spot", "observedGeneration": 1},
            1,
            "Progressing",
            "Running",
        ),
        (
            {"phase": "Running", "observedGeneration": 1},
            2,
            "Progressing",
            "generation 2",
        ),
        (
            {
                "phase": "Succeeded",
                "reason": "Succeeded",
                "attempts": [{**ATTEMPT, "exitCode": 0, "reason": "Succeeded"}],
                "observedGeneration": 1,
            },
            1,
            "Healthy",
            "Succeeded",
        ),
        (
            {
                "phase": "Failed",
                "reason": "RetriesExhausted",
                "message": "exit code 1 after 3 attempts",
                "attempts": [ATTEMPT],
                "observedGeneration": 1,
            },
            1,
            "Degraded",
            "exit code 1 after 3 attempts",
        ),
        (
            {"phase": "Failed", "reason": "Terminated", "observedGeneration": 1},
            2,
            "Degraded",  # terminal phases are final: a later spec edit does not hide the failure
            "Terminated",
        ),
    ],
    ids=[
        "no-status",
        "submitted",
        "pending",
        "runnable-with-position",
        "queue-disabled",
        "running",
        "stale-generation",
        "succeeded",
        "failed",
        "failed-stale",
    ],
)
def test_batch_job_health(
    status: dict[str, Any] | None, generation: int, expected: str, in_message: str
) -> None:
    got, message = health("BatchJob", batch_job(status, generation))
    assert got == expected
    assert in_message in message


def queue(state: str, conditions: list[dict[str, Any]] | None, observed: int | None = 1) -> Any:
    status: dict[str, Any] = {"jobCounts": {"runnable": 2, "running": 1}}
    if conditions is not None:
        status["conditions"] = conditions
    if observed is not None:
        status["observedGeneration"] = observed
    return {
        "apiVersion": "kubatch.io/v1alpha1",
        "kind": "JobQueue",
        "metadata": meta(),
        "spec": {
            "priority": 10,
            "state": state,
            "computeEnvironmentOrder": [{"order": 1, "computeEnvironment": "spot"}],
        },
        "status": status,
    }


def compute_environment(state: str, conditions: list[dict[str, Any]] | None) -> Any:
    return {
        "apiVersion": "kubatch.io/v1alpha1",
        "kind": "ComputeEnvironment",
        "metadata": meta(),
        "spec": {
            "type": "Managed",
            "state": state,
            "computeResources": {"capacityType": "Spot", "maxvCpus": 64},
        },
        "status": {
            "desiredvCpus": 8,
            "allocatedvCpus": 6,
            "capacityvCpus": 8,
            "nodes": 2,
            "conditions": conditions or [],
            "observedGeneration": 1,
        },
    }


def job_definition(conditions: list[dict[str, Any]] | None) -> Any:
    return {
        "apiVersion": "kubatch.io/v1alpha1",
        "kind": "JobDefinition",
        "metadata": meta(),
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": "main",
                            "image": "busybox",
                            "resources": {"requests": {"cpu": "1", "memory": "1Gi"}},
                        }
                    ]
                }
            }
        },
        "status": {"conditions": conditions or [], "observedGeneration": 1},
    }


READY_CASES = [
    ([cond("Ready", "True", "Ready")], "Healthy"),
    ([cond("Ready", "False", "InvalidSpec", "unknown compute environment")], "Degraded"),
    (
        [cond("Ready", "False", "Reconciling"), cond("Reconciling", "True", "Scaling")],
        "Progressing",
    ),
    ([cond("Ready", "Unknown")], "Progressing"),
    ([cond("Ready", "True"), cond("Stalled", "True", "InvalidSpec", "bad")], "Degraded"),
    ([], "Progressing"),
]
READY_IDS = ["ready", "not-ready", "reconciling", "unknown", "stalled", "no-conditions"]


@pytest.mark.parametrize(("conditions", "expected"), READY_CASES, ids=READY_IDS)
def test_queue_health(conditions: list[dict[str, Any]], expected: str) -> None:
    assert health("JobQueue", queue("Enabled", conditions))[0] == expected


@pytest.mark.parametrize(("conditions", "expected"), READY_CASES, ids=READY_IDS)
def test_compute_environment_health(conditions: list[dict[str, Any]], expected: str) -> None:
    assert health("ComputeEnvironment", compute_environment("Enabled", conditions))[0] == expected


@pytest.mark.parametrize(("conditions", "expected"), READY_CASES, ids=READY_IDS)
def test_job_definition_health(conditions: list[dict[str, Any]], expected: str) -> None:
    assert health("JobDefinition", job_definition(conditions))[0] == expected


def test_disabled_is_suspended_and_stale_generation_is_progressing() -> None:
    ready = [cond("Ready", "True")]
    assert health("JobQueue", queue("Disabled", ready))[0] == "Suspended"
    assert health("ComputeEnvironment", compute_environment("Disabled", ready)) == (
        "Suspended",
        "state is Disabled",
    )
    status, message = health("JobQueue", queue("Enabled", ready, observed=None))
    assert (status, "generation 1" in message) == ("Progressing", True)
    bumped = queue("Enabled", ready)
    bumped["metadata"]["generation"] = 2
    assert health("JobQueue", bumped)[0] == "Progressing"


def test_messages_name_the_reason() -> None:
    _, message = health(
        "JobQueue", queue("Enabled", [cond("Ready", "False", "InvalidSpec", "no such CE")])
    )
    assert message == "Ready=False (InvalidSpec): no such CE"


def test_the_chart_ships_one_script_per_status_convention() -> None:
    assert sorted(p.name for p in SCRIPTS.glob("*.lua")) == sorted(set(SCRIPT_OF.values()))


def test_gitops_doc_snippet_gives_every_kind_its_script() -> None:
    """The argocd-cm snippet of docs/gitops.md, parsed as kubectl would (the YAML anchor of
    the shared script resolved), has exactly the chart's script under each kind's key."""
    doc = (ROOT / "docs" / "gitops.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", doc, flags=re.DOTALL)
    snippets = [yaml.safe_load(b) for b in blocks if "name: argocd-cm" in b]
    assert len(snippets) == 1, "docs/gitops.md: one argocd-cm ConfigMap snippet"
    cm = snippets[0]
    assert (cm["kind"], cm["metadata"]["name"]) == ("ConfigMap", "argocd-cm")
    for kind in KINDS:
        key = f"resource.customizations.health.kubatch.io_{kind}"
        assert cm["data"].get(key) == argocd_script(kind), f"{kind}: docs/gitops.md is stale"
