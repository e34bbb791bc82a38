"""The API of #17: node ranges and their resolution, multi-node and consumable validation,
queue preemption, the ConsumableResource kind."""

from __future__ import annotations

from typing import Any

import pytest

from kubatch.api.models import dump, parse, parse_batch_job, parse_job_definition
from kubatch.api.multinode import node_sources, open_ended, parse_targets, runs
from kubatch.api.resolve import main_template, node_template, resolve_node_properties
from kubatch.api.validation import check_manifest, validate_batch_job

API = "kubatch.io/v1alpha1"


def container(name: str = "main", cpu: str = "1", cmd: list[str] | None = None) -> dict[str, Any]:
    c: dict[str, Any] = {"name": name, "image": "busybox",
                         "resources": {"requests": {"cpu": cpu, "memory": "1Gi"}}}  # fmt: skip
    if cmd:
        c["command"] = cmd
    return c


def template(cpu: str = "1", cmd: list[str] | None = None) -> dict[str, Any]:
    return {"spec": {"containers": [container(cpu=cpu, cmd=cmd)]}}


def mnp(num: int = 4, main: int = 0, ranges: list[dict[str, Any]] | None = None,
        **spec: Any) -> dict[str, Any]:  # fmt: skip
    props: dict[str, Any] = {"numNodes": num, "mainNode": main}
    if ranges is not None:
        props["nodeRangeProperties"] = ranges
    meta = {"name": "mnp", "namespace": "ns"}
    return {"apiVersion": API, "kind": "JobDefinition", "metadata": meta,
            "spec": {"type": "multinode", "nodeProperties": props, **spec}}  # fmt: skip


def job(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": API, "kind": "BatchJob", "metadata": {"name": "j", "namespace": "ns"},
            "spec": {"jobQueue": "q", "jobDefinition": "mnp", **spec}}  # fmt: skip


@pytest.mark.parametrize(
    ("text", "n", "want"),
    [
        ("0:3", 4, (0, 3)),
        (":3", 8, (0, 3)),
        ("4:", 8, (4, 7)),
        (":", 5, (0, 4)),
        ("2", 5, (2, 2)),
        ("3:1", 5, "the first node is after the last"),
        ("0:9", 5, "beyond the last node (4)"),
        ("a:b", 5, "is not a node range"),
    ],
)
def test_parse_targets(text: str, n: int, want: tuple[int, int] | str) -> None:
    got = parse_targets(text, n)
    if isinstance(want, str):
        assert isinstance(got, str)
        assert want in got
    else:
        assert got == want


def test_nested_ranges_override_the_wider_one_and_gaps_show() -> None:
    assert node_sources(["0:9", "4:5"], 10) == [0, 0, 0, 0, 1, 1, 0, 0, 0, 0]
    assert node_sources([":", "1"], 3) == [0, 1, 0]
    assert node_sources(["0:1"], 3) == [0, 0, None]
    assert open_ended("2:")
    assert open_ended(":")
    assert not open_ended(":3")
    assert runs(["a", "a", "b", "a"]) == [(0, 1), (2, 2), (3, 3)]


def test_resolution_per_node_with_overrides_and_parameters() -> None:
    defn = parse_job_definition(
        mnp(6, 0, [
            {"targetNodes": "0", "template": template("2", ["main", "Ref::size"])},
            {"targetNodes": "1:", "template": template("1", ["worker"])},
            {"targetNodes": "5", "template": template("1", ["last"])},
        ], parameters={"size": "big"})
    )  # fmt: skip
    bj = parse_batch_job(
        job(nodeOverrides={"nodePropertyOverrides": [
            {"targetNodes": "2:3", "containerOverrides": {"env": [{"name": "X", "value": "1"}]}},
        ]})
    )  # fmt: skip
    nodes = resolve_node_properties(defn, bj)
    assert nodes is not None
    assert [r.target_nodes for r in nodes.node_range_properties] == [
        "0:0",
        "1:1",
        "2:3",
        "4:4",
        "5:5",
    ]
    assert main_template(nodes)["spec"]["containers"][0]["command"] == ["main", "big"]
    assert node_template(nodes, 3)["spec"]["containers"][0]["env"] == [{"name": "X", "value": "1"}]
    assert node_template(nodes, 5)["spec"]["containers"][0]["command"] == ["last"]
    assert "env" not in node_template(nodes, 4)["spec"]["containers"][0]
    with pytest.raises(IndexError):
        node_template(nodes, 6)


def test_num_nodes_override_and_the_default_template() -> None:
    defn = parse_job_definition(mnp(4, 0, None, template=template("1")))
    nodes = resolve_node_properties(defn, parse_batch_job(job(nodeOverrides={"numNodes": 7})))
    assert nodes is not None
    assert (nodes.num_nodes, [r.target_nodes for r in nodes.node_range_properties]) == (7, ["0:6"])


def test_a_container_definition_has_no_nodes() -> None:
    defn = parse_job_definition(
        {
            "apiVersion": API,
            "kind": "JobDefinition",
            "metadata": {"name": "mnp"},
            "spec": {"template": template()},
        }
    )
    assert resolve_node_properties(defn, parse_batch_job(job())) is None


def problems(bj: dict[str, Any], defn: dict[str, Any]) -> dict[str, str]:
    found = validate_batch_job(parse_batch_job(bj), definitions={"mnp": parse_job_definition(defn)})
    out: dict[str, str] = {}
    for p in found:
        out[p.field] = f"{out[p.field]}; {p.message}" if p.field in out else p.message
    return out


def test_arrays_of_multi_node_jobs_are_rejected_as_on_aws() -> None:
    got = problems(job(arrayProperties={"size": 3}), mnp(2, 0, None, template=template()))
    assert "cannot be an array job" in got["spec.arrayProperties"]


def test_container_overrides_are_not_for_multi_node_jobs() -> None:
    got = problems(job(overrides={"command": ["x"]}), mnp(2, 0, None, template=template()))
    assert "nodeOverrides.nodePropertyOverrides" in got["spec.overrides"]


def test_num_nodes_override_needs_an_open_range_and_room_for_the_main_node() -> None:
    closed = mnp(4, 3, [{"targetNodes": "0:3", "template": template()}])
    got = problems(job(nodeOverrides={"numNodes": 2}), closed)
    assert "ends open" in got["spec.nodeOverrides.numNodes"]
    opened = mnp(4, 3, [{"targetNodes": "0:", "template": template()}])
    got = problems(job(nodeOverrides={"numNodes": 2}), opened)
    assert "above the main node (3)" in got["spec.nodeOverrides.numNodes"]
    assert problems(job(nodeOverrides={"numNodes": 8}), opened) == {}


def test_every_node_must_be_sized() -> None:
    tmpl = {"spec": {"containers": [{"name": "m", "image": "busybox"}]}}
    got = problems(job(), mnp(2, 0, [{"targetNodes": "0:1", "template": tmpl}]))
    assert (
        "nodes 0:1 request no cpu or no memory" in got["spec.nodeOverrides.nodePropertyOverrides"]
    )


def test_bad_override_range_is_named() -> None:
    bad = job(nodeOverrides={"nodePropertyOverrides": [{"targetNodes": "1:9"}]})
    got = problems(bad, mnp(2, 0, None, template=template()))
    assert "beyond the last node" in got["spec.nodeOverrides.nodePropertyOverrides[0].targetNodes"]


def test_consumable_lists_and_preemption_round_trip() -> None:
    body = {"apiVersion": API, "kind": "JobQueue", "metadata": {"name": "q"},
            "spec": {"computeEnvironmentOrder": [{"order": 1, "computeEnvironment": "ce"}],
                     "preemption": {"reclaimFromQueues": "LowerPriority"}}}  # fmt: skip
    q = parse(body)
    assert dump(q)["spec"]["preemption"] == {
        "reclaimFromQueues": "LowerPriority", "withinFairShare": "Never"}  # fmt: skip
    assert check_manifest(body) == []
    res = {"apiVersion": API, "kind": "ConsumableResource", "metadata": {"name": "licence"},
           "spec": {"totalQuantity": 3}}  # fmt: skip
    parsed = dump(parse(res))
    assert parsed["spec"] == {"totalQuantity": 3, "resourceType": "REPLENISHABLE"}
    assert check_manifest(res) == []
    bj = job(consumableResourcePropertiesOverride={"consumableResourceList": [
        {"consumableResource": "licence", "quantity": 1},
        {"consumableResource": "licence", "quantity": 1}]})  # fmt: skip
    fields = [p.field for p in check_manifest(bj)]
    assert fields == [
        "spec.consumableResourcePropertiesOverride.consumableResourceList[1].consumableResource"
    ]


def test_node_status_uses_kubernetes_spelling() -> None:
    from kubatch.api.multinode import NodeStatus

    assert dump(NodeStatus(index=1, pod_ip="10.0.0.1")) == {
        "index": 1, "main": False, "podIP": "10.0.0.1"}  # fmt: skip


def test_the_depth_examples_are_valid() -> None:
    from pathlib import Path

    import yaml

    from kubatch.api.models import JobDefinition

    root = Path(__file__).resolve().parents[3] / "examples"
    docs = [d for p in sorted((root / "depth").glob("*.yaml"))
            for d in yaml.safe_load_all(p.read_text()) if d]  # fmt: skip
    assert {d["kind"] for d in docs} == {
        "JobDefinition", "BatchJob", "ConsumableResource", "JobQueue"}  # fmt: skip
    defs: dict[str, JobDefinition] = {
        d["metadata"]["name"]: parse_job_definition(d) for d in docs if d["kind"] == "JobDefinition"
    }
    for doc in docs:
        assert check_manifest(doc, definitions=defs) == [], doc["metadata"]["name"]
    mpi = parse_job_definition(next(d for d in docs if d["metadata"]["name"] == "mpi-train"))
    big = parse_batch_job(next(d for d in docs if d["metadata"]["name"] == "train-8-nodes"))
    nodes = resolve_node_properties(mpi, big)
    assert nodes is not None
    assert [r.target_nodes for r in nodes.node_range_properties] == ["0:0", "1:7"]
