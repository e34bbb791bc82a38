"""From a JobDefinition and a BatchJob to the pod template of the job's attempts.

Pure: no I/O. ``Ref::name`` substitution (AWS Batch parameters) and container overrides.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from kubatch.api.models import BatchJob, EnvVar, JobDefinition, dump
from kubatch.core.params import merge_parameters, substitute_all

#: ``Ref::name``: a parameter placeholder (same pattern as ``kubatch.core.params``, which does
#: the substitution). kubatch replaces it anywhere inside a string.
REF_PATTERN = re.compile(r"Ref::([A-Za-z0-9_-]+)")

#: Container lists of a pod spec whose command/args get parameters.
CONTAINER_LISTS = ("containers", "initContainers")


def parameter_references(value: str) -> list[str]:
    """Names of the parameters ``value`` refers to, in order (pure)."""
    return REF_PATTERN.findall(value)


def substitute_parameters(values: Sequence[str], parameters: Mapping[str, str]) -> list[str]:
    """Replace every ``Ref::name`` with its value; unknown names stay as they are (pure)."""
    return substitute_all(values, parameters) or []


def effective_parameters(defn: JobDefinition, job: BatchJob) -> dict[str, str]:
    """The definition's defaults overridden by the job's parameters (pure)."""
    return merge_parameters(defn.spec.parameters, job.spec.parameters)


def iter_container_strings(pod_spec: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """``(field path under the pod spec, value)`` of every command/args string (pure)."""
    for list_name in CONTAINER_LISTS:
        containers = pod_spec.get(list_name) or []
        for i, container in enumerate(containers):
            if not isinstance(container, Mapping):
                continue
            for key in ("command", "args"):
                for j, value in enumerate(container.get(key) or []):
                    if isinstance(value, str):
                        yield f"{list_name}[{i}].{key}[{j}]", value


def _merge_env(current: list[Any], overrides: Sequence[EnvVar]) -> list[Any]:
    by_name = {o.name: {"name": o.name, "value": o.value or ""} for o in overrides}
    merged = [by_name.pop(str(e.get("name")), e) if isinstance(e, Mapping) else e for e in current]
    return merged + list(by_name.values())


def resolve_pod_template(defn: JobDefinition, job: BatchJob) -> dict[str, Any]:
    """The pod template of the job's attempts (pure).

    Starts from the definition's template, applies ``spec.overrides`` to the first container
    (command and args replace; env merges by name; requests/limits merge key by key) and then
    substitutes ``Ref::name`` in every container's command and args with the job's parameters
    over the definition's defaults. The definition is not modified.
    """
    template = copy.deepcopy(dump(defn.spec.template))
    pod_spec: dict[str, Any] = template["spec"]
    containers: list[dict[str, Any]] = pod_spec["containers"]
    ov = job.spec.overrides
    if ov is not None and containers:
        first = containers[0]
        if ov.command is not None:
            first["command"] = list(ov.command)
        if ov.args is not None:
            first["args"] = list(ov.args)
        if ov.env:
            first["env"] = _merge_env(list(first.get("env") or []), ov.env)
        if ov.resources is not None:
            resources = first.setdefault("resources", {})
            for key in ("requests", "limits"):
                extra = getattr(ov.resources, key)
                if extra:
                    resources[key] = {**(resources.get(key) or {}), **extra}
    params = effective_parameters(defn, job)
    for list_name in CONTAINER_LISTS:
        for container in pod_spec.get(list_name) or []:
            for key in ("command", "args"):
                if container.get(key):
                    container[key] = substitute_parameters(container[key], params)
    return template
