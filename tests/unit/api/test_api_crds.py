"""Generated CRDs: committed files are current, schemas are structural, names and columns."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kubatch.api.crds import KIND_INFOS, build_crds, main, rendered_files, stale_files

ROOT = Path(__file__).resolve().parents[3]


def test_committed_crds_equal_generated() -> None:
    stale = stale_files(ROOT / "crds", ROOT / "helm" / "kubatch" / "files" / "crds")
    assert stale == [], f"run `make crds`: stale {stale}"


def test_generation_is_deterministic() -> None:
    assert rendered_files() == rendered_files()


def _nodes(schema: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    yield path, schema
    for name, sub in schema.get("properties", {}).items():
        yield from _nodes(sub, f"{path}.{name}")
    if "items" in schema:
        yield from _nodes(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from _nodes(schema["additionalProperties"], f"{path}{{}}")


@pytest.mark.parametrize("crd", build_crds(), ids=lambda c: c["spec"]["names"]["kind"])
def test_schema_is_structural(crd: dict[str, Any]) -> None:
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for path, node in _nodes(schema):
        for banned in ("$ref", "anyOf", "oneOf", "allOf", "title", "const", "nullable"):
            assert banned not in node, f"{path}: {banned}"
        assert node.get("additionalProperties", {}) is not False, path
        assert not ("properties" in node and "additionalProperties" in node), path
        typed = "type" in node or node.get("x-kubernetes-int-or-string")
        assert typed, f"{path} has no type"
        assert "x-kubernetes-validations" not in node, f"{path}: CEL only with cel=True"
        if node.get("exclusiveMinimum") is not None:
            assert node["exclusiveMinimum"] is True, path
        assert "default" not in node or not path.startswith(".status"), path


def test_cel_rules_only_on_request() -> None:
    text = "".join(str(c) for c in build_crds(cel=True))
    assert "x-kubernetes-validations" in text
    assert "self.minvCpus" not in text or "maxvCpus" in text
    assert "x-kubernetes-validations" not in "".join(str(c) for c in build_crds())


def test_pod_template_shell() -> None:
    (jd,) = [c for c in build_crds() if c["spec"]["names"]["kind"] == "JobDefinition"]
    spec = jd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    template = spec["properties"]["template"]
    pod = template["properties"]["spec"]
    assert pod["x-kubernetes-preserve-unknown-fields"] is True
    assert pod["required"] == ["containers"]
    containers = pod["properties"]["containers"]
    assert containers["minItems"] == 1
    item = containers["items"]
    # resources are optional: as on AWS, vCPU and memory may come from the job's overrides
    assert set(item["required"]) == {"name", "image"}
    requests = item["properties"]["resources"]["properties"]["requests"]
    assert requests["additionalProperties"] == {"x-kubernetes-int-or-string": True}


EXPECTED_COLUMNS = {
    "BatchJob": ["Phase", "Queue", "Reason", "Attempts", "CE", "Age"],
    "JobQueue": ["Priority", "State", "Runnable", "Running", "Age"],
    "ComputeEnvironment": ["Type", "Capacity", "Desired", "Allocated", "Max vCPUs", "State", "Age"],
    "JobDefinition": ["Image", "Attempts", "Timeout", "Ready", "Age"],
    "ConsumableResource": ["Type", "Total", "In Use", "Available", "Age"],
}


@pytest.mark.parametrize("crd", build_crds(), ids=lambda c: c["spec"]["names"]["kind"])
def test_names_scope_and_columns(crd: dict[str, Any]) -> None:
    names = crd["spec"]["names"]
    kind = names["kind"]
    short = {"BatchJob": "bj", "JobQueue": "jq", "ComputeEnvironment": "ce", "JobDefinition": "jd",
             "ConsumableResource": "cres"}  # fmt: skip
    assert names["shortNames"] == [short[kind]]
    assert names["categories"] == ["batch"]
    assert crd["spec"]["group"] == "kubatch.io"
    namespaced = kind in ("BatchJob", "JobDefinition")
    assert crd["spec"]["scope"] == ("Namespaced" if namespaced else "Cluster")
    version = crd["spec"]["versions"][0]
    assert version["name"] == "v1alpha1"
    assert version["subresources"] == {"status": {}}
    default_columns = [
        c["name"] for c in version["additionalPrinterColumns"] if not c.get("priority")
    ]
    assert default_columns == EXPECTED_COLUMNS[kind]


def test_defaults_and_enums_reach_the_schema() -> None:
    (ce,) = [c for c in build_crds() if c["spec"]["names"]["kind"] == "ComputeEnvironment"]
    spec = ce["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert spec["properties"]["state"]["default"] == "Enabled"
    assert spec["properties"]["state"]["enum"] == ["Enabled", "Disabled"]
    resources = spec["properties"]["computeResources"]
    assert resources["properties"]["minvCpus"]["default"] == 0
    assert resources["properties"]["bidPercentage"]["maximum"] == 100
    assert resources["required"] == ["maxvCpus"]


def test_main_writes_and_checks(tmp_path: Path) -> None:
    out, chart = tmp_path / "crds", tmp_path / "chart"
    assert main(["--out", str(out), "--check"]) == 1
    assert main(["--out", str(out), "--chart", str(chart)]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(info.file_name for info in KIND_INFOS)
    assert sorted(p.name for p in chart.iterdir()) == names
    assert main(["--out", str(out), "--chart", str(chart), "--check"]) == 0
    (out / names[0]).write_text("edited\n")
    assert main(["--out", str(out), "--check"]) == 1
