"""Hypothesis strategies for kubatch manifests of the five kinds, valid and not.

A manifest is a valid object of its kind (small: it can run on the simulated pools) with zero
to three mutations: a field set to a value chosen for that field (the edges of its range, globs,
``Ref::`` to parameters that exist or not, names of objects that exist or not) or to junk of
any JSON type, a field removed, an unknown field added, or the whole spec replaced by junk.
Names come from small pools, so that references resolve often and a name is often applied
again (an UPDATE, where immutable fields of a BatchJob matter).

Values are bounded where a valid one would cost the machine (``minvCpus`` makes the
simulator start nodes at once; ``arrayProperties.size`` starts that many children): the fuzz
is about what the operator accepts, not about scaling.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any

from hypothesis import strategies as st
from tests.e2e.factories import API

JsonDict = dict[str, Any]
Path = tuple[str | int, ...]
DELETE = object()
"""A mutation's value: remove the field."""

POOL = 6
"""Names per kind that references can hit: ``<prefix>-ce0`` … ``<prefix>-ce5``."""

STRINGS = ["", " ", "x", "*", "a*", "*b", "a*b", "Host*EC2", "a?b", "Ref::p", "Ref::missing",
           "Ref::", "é-ü", "UPPER", "a" * 300, "\n", "-1", "1.5", "null", "m5.large"]  # fmt: skip
NUMBERS = [-1, 0, 1, 2, 3, 59, 60, 100, 101, 1000, 10001, 2**31, 2**63, 0.5, -0.5, 1e300]
JUNK_LEAF = st.one_of(
    st.none(), st.booleans(), st.sampled_from(NUMBERS), st.sampled_from(STRINGS),
    st.integers(-(2**40), 2**40), st.text(max_size=12),
)  # fmt: skip
JUNK: st.SearchStrategy[Any] = st.recursive(
    JUNK_LEAF,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.sampled_from(["a", "name", "spec", "x-y", "Ref::p", ""]), inner,
                        max_size=3),
    ),
    max_leaves=6,
)  # fmt: skip


COSTLY = {("spec", "computeResources", "minvCpus"), ("spec", "computeResources", "desiredvCpus"),
          ("spec", "arrayProperties")}  # fmt: skip
"""Fields whose valid large values would make the simulator start many nodes or children: only
the values meant for them (never junk integers)."""


KINDS = ["ComputeEnvironment", "JobQueue", "JobDefinition", "BatchJob"] * 2 + ["ConsumableResource"]
"""The kinds a manifest is of (a consumable resource half as often: it has two fields)."""

MUTATIONS = ["value"] * 12 + ["junk"] * 2 + ["delete"] * 2 + ["unknown", "spec"]
"""How often each mutation is picked: mostly a value meant for the field (what passes the
schema and only kubatch's own checks can judge)."""


def names(prefix: str, kind: str, odds: int = 3) -> st.SearchStrategy[str]:
    """A name of the pool (references resolve; once in ``odds``) or one of many others."""
    return (
        st.integers(0, odds - 1)
        .flatmap(lambda pick: st.integers(0, POOL - 1) if pick == 0 else st.integers(POOL, 5000))
        .map(lambda i: f"{prefix}-{kind}{i}")
    )


def small(lo: int, hi: int) -> st.SearchStrategy[int]:
    return st.integers(lo, hi)


def glob_rule() -> st.SearchStrategy[JsonDict]:
    keys = st.sampled_from(["onExitCode", "onReason", "onStatusReason"])
    values = st.sampled_from(["1", "1*", "*", "a*b", "Host*EC2", "OOM*", "", "137", "x" * 600])
    actions = st.sampled_from(["RETRY", "EXIT", "Retry", "exit", "stop", ""])
    return st.builds(lambda k, v, a: {k: v, "action": a}, keys, values, actions)


def retry_strategy() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.builds(
            lambda n, rules: {"attempts": n, "evaluateOnExit": rules},
            st.integers(0, 11),
            st.lists(glob_rule(), max_size=6),
        ),
        JUNK,
    )


def resources() -> st.SearchStrategy[Any]:
    quantities = st.sampled_from(["100m", "1", "2", "0", "-1", "abc", "1000", "600Gi", "1Gi",
                                  "512Mi", "1e3", ""])  # fmt: skip
    names_ = st.sampled_from(["cpu", "memory", "nvidia.com/gpu", "example.com/fpga", "vcpu"])
    return st.one_of(
        st.builds(lambda r: {"requests": r}, st.dictionaries(names_, quantities, max_size=3)),
        JUNK,
    )


def consumables(cr_names: st.SearchStrategy[str]) -> st.SearchStrategy[Any]:
    """A ``consumableResourceList`` holder: resources of the pool or not, any quantity."""
    item = st.builds(
        lambda n, q: {"consumableResource": n, "quantity": q},
        st.one_of(cr_names, st.sampled_from(["", "UPPER", "a" * 300, "Ref::p"])),
        st.sampled_from([-1, 0, 1, 2, 3, 10**9, "1"]),
    )
    return st.one_of(
        st.builds(lambda items: {"consumableResourceList": items}, st.lists(item, max_size=3)),
        st.sampled_from([{}, {"consumableResourceList": "x"}, {"consumableResourceList": [{}]}]),
    )


def node_properties() -> st.SearchStrategy[Any]:
    """A multi-node job's ``nodeProperties``: valid gangs of two or three, and ranges that
    leave nodes out, overlap, point past ``numNodes`` or do not parse."""
    container = {"name": "main", "image": "busybox", "command": ["echo", "node"],
                 "resources": {"requests": {"cpu": "250m", "memory": "64Mi"}}}  # fmt: skip
    template = {"spec": {"containers": [container]}}
    return st.builds(
        lambda n, main, ranges, start: {
            "numNodes": n,
            "mainNode": main,
            "nodeRangeProperties": ranges,
            **({"startTimeoutSeconds": start} if start is not None else {}),
        },
        st.sampled_from([0, 1, 2, 3, 1001]),
        st.sampled_from([0, 1, 5, -1]),
        st.lists(
            st.builds(
                lambda t, tpl: {"targetNodes": t, **({"template": tpl} if tpl else {})},
                st.sampled_from(["0:", ":", "0", "1", "0:0", "1:", "2:1", "0:9", "x", ""]),
                st.sampled_from([template, template, None, {"spec": {"containers": []}}]),
            ),
            min_size=1,
            max_size=3,
        ),
        st.sampled_from([None, 5, 10, 600]),
    )


def node_overrides() -> st.SearchStrategy[Any]:
    return st.builds(
        lambda n, t, c: {"numNodes": n,
                         "nodePropertyOverrides": [{"targetNodes": t, "containerOverrides": c}]},
        st.sampled_from([0, 1, 2, 3, 1001]),
        st.sampled_from(["0:", "1", "5:", "x"]),
        st.sampled_from([{"command": ["echo", "Ref::p"]}, {"env": [{"name": "A", "value": "1"}]},
                         {"resources": {"requests": {"cpu": "-1"}}}, {}]),
    )  # fmt: skip


def field_values(prefix: str) -> dict[str, dict[Path, st.SearchStrategy[Any]]]:
    """Per kind: the fields a mutation picks, each with values meant for it."""
    ce_names, q_names, d_names = (names(prefix, k) for k in ("ce", "q", "d"))
    job_names, cr_names = names(prefix, "j"), names(prefix, "cr")
    return {
        "ConsumableResource": {
            ("spec", "resourceType"): st.sampled_from(
                ["REPLENISHABLE", "NON_REPLENISHABLE", "replenishable", ""]
            ),
            ("spec", "totalQuantity"): st.sampled_from([-1, 0, 1, 2, 10**6, 2**63, "2", 1.5]),
        },
        "ComputeEnvironment": {
            ("spec", "type"): st.sampled_from(["Managed", "Unmanaged", "managed", "Fargate"]),
            ("spec", "state"): st.sampled_from(["Enabled", "Disabled", "ENABLED", ""]),
            ("spec", "computeResources"): st.sampled_from([None, {}, {"maxvCpus": 2}]),
            ("spec", "computeResources", "capacityType"): st.sampled_from(
                ["OnDemand", "Spot", "Reserved"]
            ),
            ("spec", "computeResources", "minvCpus"): st.sampled_from([-1, 0, 1, 2, 3, "2"]),
            ("spec", "computeResources", "maxvCpus"): st.sampled_from(
                [-1, 0, 1, 2, 4, 10**6, 2**63, "4", 2.5]
            ),
            ("spec", "computeResources", "desiredvCpus"): st.sampled_from([-1, 0, 1, 2, 99]),
            ("spec", "computeResources", "instanceTypes"): st.sampled_from(
                [
                    [],
                    ["m5.large"],
                    ["nope.large"],
                    ["m5.large", "m5.large"],
                    "m5.large",
                    [""],
                    ["p3.2xlarge"],
                    ["m5"],
                ]
            ),
            ("spec", "computeResources", "allocationStrategy"): st.sampled_from(
                ["BestFit", "BestFitProgressive", "SpotCapacityOptimized", "Cheapest"]
            ),
            ("spec", "computeResources", "bidPercentage"): st.sampled_from([0, 1, 50, 100, 101]),
            ("spec", "nodeSelector"): st.sampled_from([{"a": "b"}, {"": ""}, "x", {"a": 1}]),
            ("spec", "tolerations"): st.sampled_from(
                [[{"key": "k", "operator": "Exists"}], [{"effect": "Nope"}], "x"]
            ),
        },
        "JobQueue": {
            ("spec", "priority"): st.sampled_from([-1, 0, 1, 1000, 1001, "1"]),
            ("spec", "state"): st.sampled_from(["Enabled", "Disabled", "Paused"]),
            ("spec", "computeEnvironmentOrder"): st.lists(
                st.builds(
                    lambda o, c: {"order": o, "computeEnvironment": c}, st.integers(-1, 3), ce_names
                ),
                max_size=4,
            ),
            ("spec", "computeEnvironmentOrder", 0, "computeEnvironment"): st.one_of(
                ce_names, st.sampled_from(["", "Ref::p", "UPPER"])
            ),
            ("spec", "schedulingPolicy"): st.one_of(
                st.builds(
                    lambda d, r, s: {
                        "shareDecaySeconds": d,
                        "computeReservation": r,
                        "shareDistribution": s,
                    },
                    st.sampled_from([-1, 0, 3600, 604801]),
                    st.sampled_from([0, 50, 100]),
                    st.lists(
                        st.builds(
                            lambda i, w: {"shareIdentifier": i, "weightFactor": w},
                            st.sampled_from(["a", "a*", "", "b"]),
                            st.sampled_from([0, 0.5, 1, 1001]),
                        ),
                        max_size=3,
                    ),
                ),
                JUNK,
            ),
            ("spec", "ordering"): st.sampled_from(["FIFO", "Priority", "LIFO"]),
            ("spec", "jobStateTimeLimitActions"): st.lists(
                st.builds(
                    lambda s, t, a: {
                        "state": s,
                        "maxTimeSeconds": t,
                        "action": a,
                        "reason": "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY",
                    },
                    st.sampled_from(["Runnable", "Running", "x"]),
                    st.sampled_from([0, 1, 600, 86401]),
                    st.sampled_from(["Cancel", "Terminate", "x"]),
                ),
                max_size=2,
            ),
            ("spec", "namespaceSelector"): st.sampled_from(
                [
                    {"matchLabels": {"a": "b"}},
                    {"matchExpressions": [{"key": "a", "operator": "In", "values": []}]},
                    {"matchLabels": "x"},
                ]
            ),
            ("spec", "spendingLimit"): st.sampled_from(
                [{"perHour": 1.0}, {"perDay": 0}, {"perHour": -1}, {"perDay": 1e9}]
            ),
            ("spec", "finishedJobRetentionSeconds"): st.sampled_from([-1, 0, 60, "60"]),
            ("spec", "preemption"): st.builds(
                lambda r, w: {"reclaimFromQueues": r, "withinFairShare": w},
                st.sampled_from(["Never", "LowerPriority", "Always"]),
                st.sampled_from(["Never", "OverFairShare", "x"]),
            ),
        },
        "JobDefinition": {
            ("spec", "template"): st.sampled_from([{}, {"spec": {}}, {"spec": {"containers": []}}]),
            ("spec", "template", "spec", "containers", 0, "image"): st.sampled_from(
                ["", "busybox", "Ref::p", "UPPER:case"]
            ),
            ("spec", "template", "spec", "containers", 0, "command"): st.lists(
                st.sampled_from(["echo", "Ref::p", "Ref::missing", "Ref::", "Ref::Ref::p", ""]),
                max_size=3,
            ),
            ("spec", "template", "spec", "containers", 0, "resources"): resources(),
            ("spec", "template", "spec", "containers", 1): st.sampled_from(
                [{"name": "side", "image": "busybox"}, {"name": "main", "image": "busybox"}]
            ),
            ("spec", "parameters"): st.dictionaries(
                st.sampled_from(["p", "q", "", "Ref::p", "a b"]),
                st.sampled_from(["v", "", "Ref::q"]),
                max_size=3,
            ),
            ("spec", "retryStrategy"): retry_strategy(),
            ("spec", "timeout"): st.sampled_from(
                [{"attemptDurationSeconds": n} for n in (-1, 0, 59, 60, 3600)]
            ),
            ("spec", "schedulingPriority"): st.sampled_from([-1, 0, 9999, 10000]),
            ("spec", "interruptionBudget"): st.sampled_from([-1, 0, 3, 100, 101]),
            ("spec", "consumableResourceProperties"): consumables(cr_names),
            ("spec", "type"): st.sampled_from(["container", "multinode", "Multinode", ""]),
            ("spec", "nodeProperties"): node_properties(),
        },
        "BatchJob": {
            ("spec", "jobQueue"): st.one_of(q_names, st.sampled_from(["", "Ref::p", "UPPER"])),
            ("spec", "jobDefinition"): st.one_of(d_names, st.sampled_from(["", "a:b", "UPPER"])),
            ("spec", "parameters"): st.dictionaries(
                st.sampled_from(["p", "q", "", "Ref::p"]),
                st.sampled_from(["v", "", "Ref::p"]),
                max_size=3,
            ),
            ("spec", "overrides"): st.one_of(
                st.builds(
                    lambda c, r: {"command": c, "resources": r},
                    st.lists(st.sampled_from(["echo", "Ref::p", "Ref::zz"]), max_size=3),
                    resources(),
                ),
                st.sampled_from(
                    [
                        {"env": [{"name": "A", "value": "1"}]},
                        {"env": [{"name": "", "value": "1"}]},
                        {"command": []},
                    ]
                ),
                JUNK,
            ),
            ("spec", "retryStrategy"): retry_strategy(),
            ("spec", "timeout"): st.sampled_from(
                [{"attemptDurationSeconds": n} for n in (-1, 0, 59, 60, 3600)]
            ),
            ("spec", "schedulingPriorityOverride"): st.sampled_from([-1, 0, 5, 9999, 10000]),
            ("spec", "shareIdentifier"): st.sampled_from(["a", "", "a*", "b" * 256]),
            ("spec", "arrayProperties"): st.one_of(
                st.builds(
                    lambda s, p: {"size": s, "parallelism": p},
                    st.sampled_from([-1, 0, 1, 2, 3, 10001, 10**6]),
                    st.sampled_from([None, 0, 1, 2]),
                ),
                st.sampled_from([{}, {"size": "2"}, {"parallelism": 1}]),
            ),
            ("spec", "dependsOn"): st.lists(
                st.one_of(
                    st.builds(
                        lambda j, t: {"jobName": j, "type": t},
                        job_names,
                        st.sampled_from([None, "N_TO_N", "SEQUENTIAL", "x"]),
                    ),
                    st.sampled_from([{}, {"jobName": ""}, {"condition": "Failed"}]),
                ),
                max_size=3,
            ),
            ("spec", "terminate"): st.sampled_from([{}, {"reason": "fuzz"}, {"reason": ""}]),
            ("spec", "interruptionBudget"): st.sampled_from([-1, 0, 3, 101]),
            ("spec", "rerunOf"): st.builds(
                lambda j, i: {"jobName": j, "indices": i},
                job_names,
                st.lists(st.integers(-1, 3), max_size=3),
            ),
            ("spec", "consumableResourcePropertiesOverride"): consumables(cr_names),
            ("spec", "nodeOverrides"): node_overrides(),
        },
    }


def base(kind: str, prefix: str, name: str, ref: Callable[[str], str]) -> JsonDict:
    """A valid, small object of ``kind`` (its references from the pools via ``ref``)."""
    meta: JsonDict = {"name": name}
    if kind == "ConsumableResource":
        spec: JsonDict = {"resourceType": "REPLENISHABLE", "totalQuantity": 2}
    elif kind == "ComputeEnvironment":
        spec = {"type": "Managed", "state": "Enabled", "computeResources": {
            "minvCpus": 0, "maxvCpus": 4, "instanceTypes": ["m5.large"]}}  # fmt: skip
    elif kind == "JobQueue":
        spec = {"priority": 1, "computeEnvironmentOrder": [
            {"order": 1, "computeEnvironment": ref("ce")}]}  # fmt: skip
    elif kind == "JobDefinition":
        container = {"name": "main", "image": "busybox", "command": ["echo", "Ref::p"],
                     "resources": {"requests": {"cpu": "250m", "memory": "256Mi"}}}  # fmt: skip
        spec = {"parameters": {"p": "hello"}, "template": {
            "metadata": {"annotations": {"sim.kubatch.io/duration": "0.2"}},
            "spec": {"containers": [container]}}}  # fmt: skip
    else:
        spec = {"jobQueue": ref("q"), "jobDefinition": ref("d")}
    return {"apiVersion": API, "kind": kind, "metadata": meta, "spec": spec}


def set_path(doc: JsonDict, path: Path, value: Any) -> None:
    """Set (or with :data:`DELETE` remove) ``path`` in ``doc``, making what is missing on the
    way (a dict for a key, a list padded with dicts for an index)."""
    node: Any = doc
    for i, key in enumerate(path[:-1]):
        nxt = path[i + 1]
        empty: Any = [] if isinstance(nxt, int) else {}
        if isinstance(key, int):
            if not isinstance(node, list):
                return
            while len(node) <= key:
                node.append({})
            if not isinstance(node[key], type(empty)):
                node[key] = empty
            node = node[key]
        else:
            if not isinstance(node, dict):
                return
            if not isinstance(node.get(key), type(empty)):
                node[key] = empty
            node = node[key]
    last = path[-1]
    if isinstance(last, int):
        if isinstance(node, list):
            while len(node) <= last:
                node.append({})
            if value is DELETE:
                node.pop(last)
            else:
                node[last] = value
    elif isinstance(node, dict):
        if value is DELETE:
            node.pop(last, None)
        else:
            node[last] = value


@st.composite
def manifest(draw: st.DrawFn, prefix: str, namespace: str) -> JsonDict:
    """One manifest of any of the five kinds, ``metadata.namespace`` set for namespaced ones
    and the label ``kubatch-fuzz=<prefix>`` on every object (so a run can delete them)."""
    kind = draw(st.sampled_from(KINDS))
    short = {"ComputeEnvironment": "ce", "JobQueue": "q", "JobDefinition": "d",
             "BatchJob": "j", "ConsumableResource": "cr"}[kind]  # fmt: skip
    name = draw(names(prefix, short, odds=6 if kind == "BatchJob" else 3))

    def ref(k: str) -> str:
        return f"{prefix}-{k}{draw(st.integers(0, POOL))}"  # POOL itself: never exists

    doc = base(kind, prefix, name, ref)
    fields: Mapping[Path, st.SearchStrategy[Any]] = field_values(prefix)[kind]
    paths = sorted(fields, key=repr)
    for _ in range(draw(st.sampled_from([0, 0, 1, 1, 1, 2, 2, 3]))):
        what = draw(st.sampled_from(MUTATIONS))
        path = draw(st.sampled_from(paths))
        if what == "value":
            set_path(doc, path, draw(fields[path]))
        elif what == "junk":
            set_path(doc, path, draw(fields[path] if path in COSTLY else JUNK))
        elif what == "delete":
            set_path(doc, path, DELETE)
        elif what == "unknown":
            set_path(doc, (*path[:-1], "fuzzUnknownField"), draw(JUNK_LEAF))
        else:
            doc["spec"] = draw(st.one_of(JUNK, st.dictionaries(
                st.sampled_from([p[1] for p in paths if isinstance(p[1], str)]), JUNK,
                max_size=4)))  # fmt: skip
    doc = copy.deepcopy(doc)
    doc["metadata"] = {"name": name, "labels": {"kubatch-fuzz": prefix}}
    if kind in ("JobDefinition", "BatchJob"):
        doc["metadata"]["namespace"] = namespace
    return doc
