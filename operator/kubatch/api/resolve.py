"""From a JobDefinition and a BatchJob to the pod template of the job's attempts.

Pure: no I/O. ``Ref::name`` substitution (AWS Batch parameters) and container overrides.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from kubatch.api.models import BatchJob, ContainerOverrides, EnvVar, JobDefinition, dump
from kubatch.api.multinode import (
    NodePropertiesRevision,
    NodeRangeRevision,
    node_sources,
    parse_targets,
    runs,
)
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
    """The pod template of the job's attempts (pure); of its main node for a multi-node job.

    Starts from the definition's template, applies ``spec.overrides`` to the first container
    (command and args replace; env merges by name; requests/limits merge key by key) and then
    substitutes ``Ref::name`` in every container's command and args with the job's parameters
    over the definition's defaults. The definition is not modified.
    """
    nodes = resolve_node_properties(defn, job)
    if nodes is not None:
        return main_template(nodes)
    if defn.spec.template is None:
        raise ValueError("spec.template: required for a container job definition")
    template = copy.deepcopy(dump(defn.spec.template))
    return apply_overrides(template, [job.spec.overrides], effective_parameters(defn, job))


def apply_overrides(
    template: dict[str, Any],
    overrides: Sequence[ContainerOverrides | None],
    params: Mapping[str, str],
) -> dict[str, Any]:
    """Pure (changes and returns ``template``, a copy of the caller's): ``overrides`` in order
    on the first container, then ``Ref::name`` substituted in every container."""
    pod_spec: dict[str, Any] = template["spec"]
    containers: list[dict[str, Any]] = pod_spec["containers"]
    for ov in overrides:
        if ov is None or not containers:
            continue
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
    for list_name in CONTAINER_LISTS:
        for container in pod_spec.get(list_name) or []:
            for key in ("command", "args"):
                if container.get(key):
                    container[key] = substitute_parameters(container[key], params)
    return template


def num_nodes(defn: JobDefinition, job: BatchJob) -> int | None:
    """Pure: how many nodes a multi-node job runs (``None``: not a multi-node job)."""
    npp = defn.spec.node_properties
    if npp is None:
        return None
    no = job.spec.node_overrides
    return no.num_nodes if no is not None and no.num_nodes else npp.num_nodes


def resolve_node_properties(defn: JobDefinition, job: BatchJob) -> NodePropertiesRevision | None:
    """The nodes of a multi-node job as they run (pure; ``None`` for a container job): each
    node's template (its narrowest range's, else ``spec.template``), the job's
    ``nodePropertyOverrides`` applied in order, parameters substituted; nodes sharing a
    resolved template in a row form one range. Raises ``ValueError`` for ranges that do not
    hold (``kubatch.api.validation`` reports them first)."""
    npp = defn.spec.node_properties
    n = num_nodes(defn, job)
    if npp is None or n is None:
        return None
    ranges = npp.node_range_properties
    sources = node_sources([r.target_nodes for r in ranges], n) if ranges else [None] * n
    if isinstance(sources, str):
        raise ValueError(f"spec.nodeProperties.{sources}")
    no = job.spec.node_overrides
    applied: list[list[int]] = [[] for _ in range(n)]
    for k, o in enumerate(no.node_property_overrides if no is not None else []):
        span = parse_targets(o.target_nodes, n)
        if isinstance(span, str):
            raise ValueError(f"spec.nodeOverrides.nodePropertyOverrides[{k}].targetNodes: {span}")
        for i in range(span[0], span[1] + 1):
            applied[i].append(k)
    params = effective_parameters(defn, job)
    resolved: dict[tuple[int | None, tuple[int, ...]], dict[str, Any]] = {}
    per_node: list[dict[str, Any]] = []
    for i in range(n):
        src = sources[i]
        key = (src, tuple(applied[i]))
        if key not in resolved:
            base = ranges[src].template if src is not None else None
            base = base or defn.spec.template
            if base is None:
                raise ValueError(f"node {i}: no range with a template and no spec.template")
            ovs = [no.node_property_overrides[k].container_overrides for k in key[1]] if no else []
            resolved[key] = apply_overrides(copy.deepcopy(dump(base)), ovs, params)
        per_node.append(resolved[key])
    return NodePropertiesRevision(
        num_nodes=n,
        main_node=npp.main_node,
        start_timeout_seconds=npp.start_timeout_seconds,
        node_range_properties=[
            NodeRangeRevision(target_nodes=f"{a}:{b}", template=per_node[a])
            for a, b in runs(per_node)
        ],
    )


def main_template(nodes: NodePropertiesRevision) -> dict[str, Any]:
    """Pure: the resolved template of the main node."""
    return node_template(nodes, nodes.main_node)


def node_template(nodes: NodePropertiesRevision, index: int) -> dict[str, Any]:
    """Pure: the resolved template of node ``index`` (a fresh copy)."""
    for r in nodes.node_range_properties:
        first, _, last = r.target_nodes.partition(":")
        if int(first) <= index <= int(last):
            return copy.deepcopy(r.template or {})
    raise IndexError(f"node {index} is outside 0..{nodes.num_nodes - 1}")
