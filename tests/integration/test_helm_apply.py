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

from kubatch.adapters import calls
from kubatch.adapters.calls import Scope
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
    # The webhook configuration only on a dry run: nothing serves it on this plane, and with
    # failurePolicy Fail it would stop every later test from creating kubatch objects.
    hooks = [d for d in docs if d["kind"] == "ValidatingWebhookConfiguration"]
    rest = [d for d in docs if d not in hooks]
    try:
        kubectl("apply", "-f", "-", input=yaml.safe_dump_all(rest), namespace=namespace)
        kubectl("apply", "--dry-run=server", "-f", "-", input=yaml.safe_dump_all(hooks))
        yield release, namespace, rest
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


VERBS = ("get", "list", "watch", "create", "update", "patch", "delete")
PROBED = ("pods", "secrets", "configmaps", "customresourcedefinitions.apiextensions.k8s.io",
          "clusterkopfpeerings.kopf.dev", "leases.coordination.k8s.io")  # fmt: skip


def qualified(group: str, resource: str) -> tuple[str, str | None]:
    """``(resource.group, subresource)`` as ``kubectl auth can-i`` names them."""
    plural, _, sub = resource.partition("/")
    return (f"{plural}.{group}" if group else plural), (sub or None)


def expectations(release: str) -> tuple[list[tuple[str, ...]], list[tuple[str, ...]]]:
    """What the chart's ServiceAccount may and may not do, from adapters/calls.py alone:
    every declared call of the default chart (webhook on, own certificate) is allowed; every
    other verb on the same resources, and on a few sensitive others, is denied."""
    needs = calls.needs(webhook=True)
    allowed: list[tuple[str, ...]] = []
    denied: list[tuple[str, ...]] = []
    names = {"validatingwebhookconfigurations": f"{release}-kubatch",
             "secrets": f"{release}-kubatch-webhook-tls"}  # fmt: skip
    for scope in Scope:
        where = "namespace" if scope is Scope.NAMESPACE else "cluster"
        rules = calls.rbac_rules(needs, scope)
        for (group, resource, named), verbs in rules.items():
            res, sub = qualified(group, resource)
            target = f"{res}/{names[resource]}" if named else res
            anyone = rules.get((group, resource, False), set())  # covers named objects too
            for verb in VERBS:
                case = (where, verb, target, sub or "")
                (allowed if verb in verbs | anyone else denied).append(case)
                if named and verb in verbs - anyone:  # only that object, never another
                    denied.append((where, verb, f"{res}/someone-else", sub or ""))
    for res in PROBED:
        for verb in VERBS:
            case = ("cluster", verb, res, "")
            if case not in allowed:
                denied.append(case)
    denied = [d for d in denied if d not in allowed]
    return allowed, denied


def can_i(kubectl: Kubectl, sa: str, ns: str, where: str, verb: str, target: str, sub: str) -> bool:
    scope = ["-n", ns] if where == "namespace" else ["--all-namespaces"]
    args = ["auth", "can-i", verb, target, f"--as={sa}", *scope]
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
    allowed, denied = expectations(release)
    assert ("cluster", "create", "subjectaccessreviews.authorization.k8s.io", "") in allowed
    assert ("cluster", "delete", "pods", "") in denied
    assert ("cluster", "patch", "batchjobs.kubatch.io", "") in denied
    assert ("cluster", "update", "batchjobs.kubatch.io", "status") in denied
    assert ("cluster", "patch", "events", "") in denied
    wrong = [c for c in allowed if not can_i(kubectl, sa, ns, *c)]
    wrong += [c for c in denied if can_i(kubectl, sa, ns, *c)]
    assert not wrong, f"allowed (expected no) or denied (expected yes): {wrong}"
