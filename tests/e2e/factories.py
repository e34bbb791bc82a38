"""Manifest factories for end-to-end tests (``make_ce``, ``make_queue``, …)."""

from __future__ import annotations

from typing import Any

API = "kubatch.io/v1alpha1"


def make_ce(
    name: str,
    *,
    capacity_type: str = "OnDemand",
    max_vcpus: int = 16,
    min_vcpus: int = 0,
    instance_types: tuple[str, ...] = ("m5.large", "m5.xlarge"),
    state: str = "Enabled",
    bid_percentage: int | None = None,
) -> dict[str, Any]:
    cr: dict[str, Any] = {
        "capacityType": capacity_type,
        "minvCpus": min_vcpus,
        "maxvCpus": max_vcpus,
        "instanceTypes": list(instance_types),
        "allocationStrategy": "SpotCapacityOptimized" if capacity_type == "Spot" else "BestFit",
    }
    if bid_percentage is not None:
        cr["bidPercentage"] = bid_percentage
    return {
        "apiVersion": API,
        "kind": "ComputeEnvironment",
        "metadata": {"name": name},
        "spec": {"type": "Managed", "state": state, "computeResources": cr},
    }


def make_queue(
    name: str, ces: list[str], *, priority: int = 1, state: str = "Enabled", **extra: Any
) -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "JobQueue",
        "metadata": {"name": name},
        "spec": {
            "priority": priority,
            "state": state,
            "computeEnvironmentOrder": [
                {"order": i + 1, "computeEnvironment": ce} for i, ce in enumerate(ces)
            ],
            **extra,
        },
    }


def make_definition(
    name: str,
    *,
    duration: float = 1,
    exit_code: int | None = None,
    exit_code_by_index: str | None = None,
    oom: bool = False,
    cpu: str = "1",
    memory: str = "1Gi",
    command: list[str] | None = None,
    parameters: dict[str, str] | None = None,
    retry: dict[str, Any] | None = None,
    timeout: int | None = None,
) -> dict[str, Any]:
    ann = {"sim.kubatch.io/duration": str(duration)}
    if exit_code is not None:
        ann["sim.kubatch.io/exit-code"] = str(exit_code)
    if exit_code_by_index:
        ann["sim.kubatch.io/exit-code-by-index"] = exit_code_by_index
    if oom:
        ann["sim.kubatch.io/oom"] = "true"
    container: dict[str, Any] = {
        "name": "main",
        "image": "busybox",
        "resources": {"requests": {"cpu": cpu, "memory": memory}},
    }
    if command:
        container["command"] = command
    spec: dict[str, Any] = {
        "template": {"metadata": {"annotations": ann}, "spec": {"containers": [container]}}
    }
    if parameters:
        spec["parameters"] = parameters
    if retry:
        spec["retryStrategy"] = retry
    if timeout:
        spec["timeout"] = {"attemptDurationSeconds": timeout}
    return {"apiVersion": API, "kind": "JobDefinition", "metadata": {"name": name}, "spec": spec}


def make_job(name: str, queue: str, definition: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "BatchJob",
        "metadata": {"name": name},
        "spec": {"jobQueue": queue, "jobDefinition": definition, **spec},
    }
