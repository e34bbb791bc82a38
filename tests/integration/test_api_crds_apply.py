"""CRDs and examples on the real local control plane (kube-apiserver 1.20)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.manifests.corpus import EXAMPLES, example_documents

from kubatch.api.crds import KIND_INFOS, build_crds

ROOT = Path(__file__).resolve().parents[2]
Kubectl = Callable[..., Any]


@pytest.fixture(scope="session")
def crds(kubectl: Kubectl) -> list[str]:
    """The committed CRDs, applied and Established."""
    kubectl("apply", "-f", str(ROOT / "crds"))
    names = [info.crd_name for info in KIND_INFOS]
    kubectl("wait", "--for", "condition=established", "--timeout=60s", *[f"crd/{n}" for n in names])
    return names


def test_crds_become_established(kubectl: Kubectl, crds: list[str]) -> None:
    for name in crds:
        out = json.loads(kubectl("get", "crd", name, "-o", "json").stdout)
        conditions = {c["type"]: c["status"] for c in out["status"]["conditions"]}
        assert conditions.get("Established") == "True", (name, conditions)
        assert conditions.get("NonStructuralSchema") in (None, "False"), (name, conditions)
    resources = kubectl("api-resources", "--api-group=kubatch.io", "-o", "wide").stdout
    for short in ("bj", "jq", "ce", "jd"):
        assert f" {short} " in resources, resources
    assert "batch" in resources


def test_cel_variant_is_ignored_by_a_1_20_server(
    kubectl: Kubectl, crds: list[str], tmp_path: Path
) -> None:
    """1.20 does not know x-kubernetes-validations: kubectl's client-side validation rejects
    the field, the server accepts the CRD and drops it. The committed CRDs carry no CEL."""
    version = json.loads(kubectl("version", "-o", "json").stdout)["serverVersion"]
    if (int(version["major"]), int(version["minor"].rstrip("+"))) >= (1, 25):
        pytest.skip("CEL is understood by this server; this test is about 1.20-1.24")
    cel = tmp_path / "cel.yaml"
    cel.write_text(yaml.safe_dump_all(build_crds(cel=True)))
    rejected = kubectl("apply", "-f", str(cel), check=False)
    assert rejected.returncode != 0
    assert "x-kubernetes-validations" in rejected.stderr
    try:
        kubectl("apply", "--validate=false", "-f", str(cel))
        stored = json.loads(kubectl("get", "crd", "batchjobs.kubatch.io", "-o", "json").stdout)
        schema = stored["spec"]["versions"][0]["schema"]
        assert "x-kubernetes-validations" not in json.dumps(schema)
    finally:
        kubectl("apply", "-f", str(ROOT / "crds"))


def _apply_examples(kubectl: Kubectl, namespace: str) -> None:
    for path in sorted(EXAMPLES.glob("*.yaml")):
        out = kubectl("apply", "-f", str(path), namespace=namespace)
        assert "created" in out.stdout or "unchanged" in out.stdout or "configured" in out.stdout


def test_every_example_applies_and_lists(kubectl: Kubectl, crds: list[str], namespace: str) -> None:
    _apply_examples(kubectl, namespace)
    docs = example_documents()
    listing = kubectl("get", "bj,jq,ce,jd", namespace=namespace).stdout
    for header in (
        "PHASE   QUEUE",
        "ATTEMPTS",
        "PRIORITY   STATE     RUNNABLE   RUNNING",
        "TYPE      CAPACITY   DESIRED   ALLOCATED   MAX VCPUS   STATE",
        "IMAGE",
    ):
        assert header in listing, listing
    batch = kubectl("get", "batch", namespace=namespace).stdout
    for doc in docs:
        assert f"{doc['kind'].lower()}.kubatch.io/{doc['metadata']['name']} " in batch, batch
    # printer columns show the spec values
    row = next(
        line
        for line in listing.splitlines()
        if line.startswith("computeenvironment.kubatch.io/spot-pool")
    )
    assert row.split()[1:3] == ["Managed", "Spot"]
    assert "64" in row.split()


def test_server_applies_schema_defaults(kubectl: Kubectl, crds: list[str], namespace: str) -> None:
    _apply_examples(kubectl, namespace)
    ce = json.loads(kubectl("get", "ce", "on-demand-pool", "-o", "json").stdout)
    assert ce["spec"]["state"] == "Enabled"
    assert ce["spec"]["computeResources"]["allocationStrategy"] == "BestFit"
    job = json.loads(
        kubectl("get", "bj", "encode-frames", "-o", "json", namespace=namespace).stdout
    )
    # the example writes no condition: the schema's default fills it in
    assert job["spec"]["dependsOn"][0] == {
        "jobName": "render-frames",
        "type": "N_TO_N",
        "condition": "Succeeded",
    }
    jq = json.loads(kubectl("get", "jq", "high-priority", "-o", "json").stdout)
    assert jq["spec"]["ordering"] == "FIFO"


def test_status_subresource_accepts_operator_status(
    kubectl: Kubectl, crds: list[str], namespace: str
) -> None:
    """What the operator writes to status survives pruning (printer columns show it)."""
    _apply_examples(kubectl, namespace)
    status = {
        "status": {
            "phase": "Running",
            "reason": "Running",
            "computeEnvironment": "spot-pool",
            "attemptCount": 1,
            "attempts": [{"number": 1, "interrupted": False, "capacityType": "Spot"}],
            "conditions": [{"type": "Ready", "status": "True", "observedGeneration": 1}],
            "kopf": {"progress": {}},
        }
    }
    # kubectl 1.20 cannot patch the status subresource: use the raw API
    out = kubectl(
        "get",
        "--raw",
        f"/apis/kubatch.io/v1alpha1/namespaces/{namespace}/batchjobs/transcode-trailer",
    )
    body = json.loads(out.stdout)
    body.update(status)
    path = Path(f"/tmp/kubatch-status-{namespace}.json")
    path.write_text(json.dumps(body))
    try:
        replaced = kubectl(
            "replace",
            "--raw",
            f"/apis/kubatch.io/v1alpha1/namespaces/{namespace}/batchjobs/transcode-trailer/status",
            "-f",
            str(path),
        )
    finally:
        path.unlink()
    stored = json.loads(replaced.stdout)["status"]
    assert stored["attempts"][0]["capacityType"] == "Spot"
    row = kubectl("get", "bj", "transcode-trailer", namespace=namespace).stdout.splitlines()[1]
    assert row.split()[1:5] == ["Running", "high-priority", "Running", "1"]
    assert "spot-pool" in row
