"""Simulated nodes speak kubatch's vocabulary: its label keys, the API's capacity types."""

from __future__ import annotations

import pytest

from kubatch.api import labels as L
from kubatch.api.enums import CapacityType
from kubatch.core.catalogue import BUILTIN, Catalogue
from kubatch.sim.nodes import (
    NodeSpec,
    build_node,
    node_spec_from_object,
    parse_capacity_type,
    parse_nodes_file,
)
from kubatch.timefmt import rfc3339

T0 = 1_700_000_000.0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("spot", CapacityType.SPOT),
        ("Spot", CapacityType.SPOT),
        ("on-demand", CapacityType.ON_DEMAND),
        ("OnDemand", CapacityType.ON_DEMAND),
    ],
)
def test_capacity_type_from_labels_and_api_words(text: str, expected: CapacityType) -> None:
    assert parse_capacity_type(text) is expected


def test_unknown_capacity_type_names_the_choices() -> None:
    with pytest.raises(ValueError, match=r"'preemptible'.*'spot' or 'on-demand'"):
        parse_capacity_type("preemptible")


@pytest.mark.parametrize("capacity", list(CapacityType))
def test_node_round_trip(capacity: CapacityType) -> None:
    itype = Catalogue(BUILTIN)["m5.xlarge"]
    spec = NodeSpec("sim-a", "pool", "m5.xlarge", capacity, itype.vcpus, 0.1, T0, managed=True)
    node = build_node(spec, itype, T0, {"team": "x"})
    labels = node["metadata"]["labels"]
    assert labels[L.CAPACITY_TYPE] == L.capacity_label_value(capacity)
    assert labels[L.COMPUTE_ENVIRONMENT] == "pool"
    assert labels[L.INSTANCE_TYPE] == "m5.xlarge"
    assert labels["team"] == "x"
    assert node["metadata"]["annotations"][L.PRICE_PER_HOUR] == "0.1000"
    spot = capacity is CapacityType.SPOT
    assert bool(node["spec"].get("taints")) is spot
    node["metadata"]["creationTimestamp"] = rfc3339(T0)
    assert node_spec_from_object(node) == spec


def test_nodes_file_entries_and_deterministic_names() -> None:
    doc = {
        "nodes": [
            {
                "computeEnvironment": "u",
                "instanceType": "m5.large",
                "count": 2,
                "labels": {"pool": "a"},
            },
            {"computeEnvironment": "s", "instanceType": "c5.xlarge", "capacityType": "Spot"},
        ]
    }
    wanted = parse_nodes_file(doc, Catalogue(BUILTIN))
    assert [(w.compute_environment, w.capacity_type) for w in wanted] == [
        ("u", CapacityType.ON_DEMAND),
        ("u", CapacityType.ON_DEMAND),
        ("s", CapacityType.SPOT),
    ]
    assert wanted[0].labels == {"pool": "a"}
    assert len({w.name for w in wanted}) == 3
    assert parse_nodes_file(doc, Catalogue(BUILTIN)) == wanted  # same names on every run
    assert parse_nodes_file(doc["nodes"], Catalogue(BUILTIN)) == wanted  # the list alone
    assert parse_nodes_file(None, Catalogue(BUILTIN)) == []


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"instanceType": "m5.large"}, r"entry 1: computeEnvironment required"),
        (
            {"computeEnvironment": "u", "instanceType": "m9.huge"},
            r"unknown instance type 'm9.huge'",
        ),
        ({"computeEnvironment": "u", "instanceType": "m5.large", "capacityType": "x"}, r"'x'"),
        ({"computeEnvironment": "u", "instanceType": "m5.large", "count": -1}, r"0 or more"),
        ("m5.large", r"expected a mapping"),
    ],
    ids=["no-ce", "unknown-type", "bad-capacity", "negative-count", "not-a-mapping"],
)
def test_nodes_file_errors_name_the_entry(entry: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_nodes_file({"nodes": [entry]}, Catalogue(BUILTIN))
