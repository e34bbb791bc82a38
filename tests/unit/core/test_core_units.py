"""resources, params, selector, naming: table-driven."""

from __future__ import annotations

import re

import pytest

from kubatch.core.naming import child_key, job_key, job_name_for_attempt, split_key
from kubatch.core.params import merge_parameters, substitute, substitute_all
from kubatch.core.resources import (
    QuantityError,
    Resources,
    parse_cpu,
    parse_memory,
    sum_requests,
    validate_job_size,
)
from kubatch.core.selector import LabelSelector, SelectorError

CPU = [
    ("millis", "500m", 500),
    ("whole", "2", 2000),
    ("fraction", "1.5", 1500),
    ("int", 3, 3000),
    ("tiny-rounds-up", "0.0001", 1),
    ("kilo", "1k", 1_000_000),
]


@pytest.mark.parametrize(("value", "mcpu"), [c[1:] for c in CPU], ids=[c[0] for c in CPU])
def test_parse_cpu(value: str, mcpu: int) -> None:
    assert parse_cpu(value) == mcpu


MEM = [
    ("Gi", "4Gi", 4 * 2**30),
    ("Mi", "512Mi", 512 * 2**20),
    ("Ki", "1Ki", 1024),
    ("M-decimal", "1M", 1_000_000),
    ("G-decimal", "2G", 2_000_000_000),
    ("bytes", "128974848", 128974848),
    ("exponent", "1e3", 1000),
    ("fractional-Gi", "1.5Gi", 3 * 2**29),
]


@pytest.mark.parametrize(("value", "nbytes"), [c[1:] for c in MEM], ids=[c[0] for c in MEM])
def test_parse_memory(value: str, nbytes: int) -> None:
    assert parse_memory(value) == nbytes


@pytest.mark.parametrize("bad", ["", "abc", "-1", "1Zi", "Gi"])
def test_parse_rejects_garbage(bad: str) -> None:
    with pytest.raises(QuantityError):
        parse_memory(bad)


def test_sum_requests_adds_containers_and_defaults_requests_to_limits() -> None:
    containers = [
        {"resources": {"requests": {"cpu": "500m", "memory": "1Gi"}}},
        {"resources": {"limits": {"cpu": "1", "memory": "512Mi", "nvidia.com/gpu": "1"}}},
        {"name": "no-resources"},
    ]
    assert sum_requests(containers) == Resources(1500, 2**30 + 2**29, 1)


@pytest.mark.parametrize(
    ("size", "ok"),
    [(Resources(1000, 1), True), (Resources(0, 1), False), (Resources(1000, 0), False)],
    ids=["cpu-and-memory", "no-cpu", "no-memory"],
)
def test_validate_job_size(size: Resources, ok: bool) -> None:
    assert (validate_job_size(size) is None) is ok


def test_resources_fit_and_human() -> None:
    assert Resources(1000, 10).fits_in(Resources(1000, 10))
    assert not Resources(1001, 10).fits_in(Resources(1000, 10))
    assert Resources(2000, 4 * 2**30, 1).human() == "2 vCPU, 4Gi memory, 1 GPU"


PARAMS = [
    ("default", "echo Ref::msg", {"msg": "hi"}, "echo hi"),
    ("two", "Ref::a-Ref::b", {"a": "1", "b": "2"}, "1-2"),
    ("missing-left-as-is", "Ref::nope", {}, "Ref::nope"),
    ("no-placeholder", "plain", {"x": "y"}, "plain"),
]


@pytest.mark.parametrize(
    ("value", "params", "out"), [c[1:] for c in PARAMS], ids=[c[0] for c in PARAMS]
)
def test_substitute(value: str, params: dict[str, str], out: str) -> None:
    assert substitute(value, params) == out


def test_job_parameters_override_definition_defaults() -> None:
    merged = merge_parameters({"a": "def", "b": "keep"}, {"a": "job"})
    assert substitute_all(["Ref::a", "Ref::b"], merged) == ["job", "keep"]
    assert substitute_all(None, merged) is None


SEL = [
    ("empty-matches-all", None, {}, True),
    ("matchLabels", {"matchLabels": {"team": "a"}}, {"team": "a"}, True),
    ("matchLabels-miss", {"matchLabels": {"team": "a"}}, {"team": "b"}, False),
    (
        "In",
        {"matchExpressions": [{"key": "t", "operator": "In", "values": ["x", "y"]}]},
        {"t": "y"},
        True,
    ),
    (
        "NotIn-absent",
        {"matchExpressions": [{"key": "t", "operator": "NotIn", "values": ["x"]}]},
        {},
        True,
    ),
    (
        "NotIn-hit",
        {"matchExpressions": [{"key": "t", "operator": "NotIn", "values": ["x"]}]},
        {"t": "x"},
        False,
    ),
    ("Exists", {"matchExpressions": [{"key": "t", "operator": "Exists"}]}, {"t": ""}, True),
    (
        "DoesNotExist",
        {"matchExpressions": [{"key": "t", "operator": "DoesNotExist"}]},
        {"t": "1"},
        False,
    ),
]


@pytest.mark.parametrize(("sel", "labels", "ok"), [c[1:] for c in SEL], ids=[c[0] for c in SEL])
def test_namespace_selector(
    sel: dict[str, object] | None, labels: dict[str, str], ok: bool
) -> None:
    assert LabelSelector.parse(sel).matches(labels) is ok


def test_selector_rejects_bad_operator() -> None:
    with pytest.raises(SelectorError):
        LabelSelector.parse({"matchExpressions": [{"key": "k", "operator": "Gt"}]})


def test_keys_round_trip() -> None:
    k = job_key("ns", "name")
    assert split_key(k) == ("ns", "name", None)
    assert split_key(child_key(k, 7)) == ("ns", "name", 7)


DNS = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


@pytest.mark.parametrize(
    ("name", "index", "attempt"),
    [("train", None, 1), ("x" * 80, 9999, 10), ("Weird_Name.v2", 3, 2), ("---", None, 1)],
    ids=["short", "long-truncated", "sanitized", "degenerate"],
)
def test_job_name_for_attempt_is_dns1123_and_deterministic(
    name: str, index: int | None, attempt: int
) -> None:
    n = job_name_for_attempt(name, "uid-1", index, attempt)
    assert len(n) <= 63
    assert DNS.match(n)
    assert n == job_name_for_attempt(name, "uid-1", index, attempt)
    assert n != job_name_for_attempt(name, "uid-2", index, attempt)
    assert n != job_name_for_attempt(name, "uid-1", index, attempt + 1)
