"""The chart's rendered manifests are accepted by the real API server; its RBAC is least privilege.

No kubelet runs on the local plane, so the operator pod never starts: this checks that the API
server accepts every object (schema, RBAC, Deployment) and what the ServiceAccount may do.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubatch.local.helm import ensure_helm

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "kubatch"

Kubectl = Callable[..., "subprocess.CompletedProcess[str]"]


def crd_documents() -> list[dict[str, Any]]:
    """The chart's CRDs (generated into helm/kubatch/files/crds/ by ``make crds``)."""
    docs: list[dict[str, Any]] = []
    for path in sorted((CHART / "files" / "crds").glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def render(release: str, namespace: str) -> list[dict[str, Any]]:
    proc = subprocess.run(
        [str(ensure_helm()), "template", release, str(CHART), "--namespace", namespace],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


@pytest.fixture
def installed(kubectl: Kubectl, namespace: str) -> Iterator[tuple[str, str, list[dict[str, Any]]]]:
    release = f"r{namespace[-6:]}"
    docs = render(release, namespace)
    crds = crd_documents()
    if crds:
        kubectl("apply", "-f", "-", input=yaml.safe_dump_all(crds))
        for crd in crds:
            kubectl(
                "wait",
                "--for=condition=Established",
                f"crd/{crd['metadata']['name']}",
                "--timeout=60s",
            )
    try:
        kubectl("apply", "-f", "-", input=yaml.safe_dump_all(docs), namespace=namespace)
        yield release, namespace, docs
    finally:
        for doc in docs:
            if doc["kind"] in ("ClusterRole", "ClusterRoleBinding"):
                kubectl("delete", doc["kind"], doc["metadata"]["name"], check=False)


def test_rendered_chart_is_accepted_by_the_api_server(
    kubectl: Kubectl, installed: tuple[str, str, list[dict[str, Any]]]
) -> None:
    release, ns, docs = installed
    for doc in docs:
        scoped = [] if doc["kind"].startswith("Cluster") else ["-n", ns]
        got = json.loads(
            kubectl("get", doc["kind"], doc["metadata"]["name"], *scoped, "-o", "json").stdout
        )
        assert got["metadata"]["name"] == doc["metadata"]["name"]
    dep = json.loads(
        kubectl("get", "deployment", f"{release}-kubatch", "-n", ns, "-o", "json").stdout
    )
    assert dep["spec"]["replicas"] == 2  # one leads through a Lease, one waits warm
    assert dep["spec"]["strategy"]["type"] == "RollingUpdate"
    container = dep["spec"]["template"]["spec"]["containers"][0]
    # the API server kept the restricted security context as rendered (no field was dropped)
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert dep["spec"]["template"]["spec"]["securityContext"]["seccompProfile"] == {
        "type": "RuntimeDefault"
    }
    cm = json.loads(
        kubectl("get", "configmap", f"{release}-kubatch-dashboard", "-n", ns, "-o", "json").stdout
    )
    assert json.loads(cm["data"]["kubatch.json"])["uid"] == "kubatch"


def test_chart_crds_are_served(kubectl: Kubectl, installed: object) -> None:
    crds = crd_documents()
    assert crds, "helm/kubatch/files/crds/ is empty: run make crds"
    served = kubectl("api-resources", "--api-group=kubatch.io", "-o", "name").stdout.split()
    assert sorted(served) == sorted(
        f"{p}.kubatch.io"
        for p in (
            "batchjobs",
            "jobqueues",
            "computeenvironments",
            "jobdefinitions",
            "consumableresources",
        )
    )


ALLOWED = [
    ("watch", "batchjobs.kubatch.io", None),
    ("patch", "batchjobs.kubatch.io", "status"),
    ("update", "computeenvironments.kubatch.io", "status"),
    ("list", "jobdefinitions.kubatch.io", None),
    ("create", "jobs.batch", None),
    ("delete", "jobs.batch", None),
    ("delete", "pods", None),
    ("watch", "nodes", None),
    ("list", "namespaces", None),
    ("create", "events", None),
    ("list", "configmaps", None),
    ("create", "configmaps", None),
    ("list", "customresourcedefinitions.apiextensions.k8s.io", None),
    ("watch", "consumableresources.kubatch.io", None),  # scheduling depth (#17)
    ("patch", "consumableresources.kubatch.io", "status"),
]
DENIED = [
    ("get", "secrets", None),
    ("get", "configmaps", None),
    ("create", "batchjobs.kubatch.io", None),
    ("delete", "jobqueues.kubatch.io", None),
    ("create", "pods", None),
    ("patch", "nodes", None),
    ("patch", "jobs.batch", None),
    ("create", "customresourcedefinitions.apiextensions.k8s.io", None),
    ("create", "clusterkopfpeerings.kopf.dev", None),
    ("create", "leases.coordination.k8s.io", None),
]


def can_i(kubectl: Kubectl, sa: str, verb: str, resource: str, sub: str | None) -> bool:
    args = ["auth", "can-i", verb, resource, f"--as={sa}", "--all-namespaces"]
    if sub:
        args.append(f"--subresource={sub}")
    out = kubectl(*args, check=False).stdout.strip()
    assert out in ("yes", "no"), out
    return out == "yes"


def test_service_account_has_exactly_the_permissions_it_needs(
    kubectl: Kubectl, installed: tuple[str, str, list[dict[str, Any]]]
) -> None:
    release, ns, _ = installed
    sa = f"system:serviceaccount:{ns}:{release}-kubatch"
    for verb, resource, sub in ALLOWED:
        assert can_i(kubectl, sa, verb, resource, sub), f"cannot {verb} {resource}/{sub or ''}"
    for verb, resource, sub in DENIED:
        assert not can_i(kubectl, sa, verb, resource, sub), f"may {verb} {resource}"
