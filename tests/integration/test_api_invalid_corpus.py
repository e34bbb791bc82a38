"""The invalid-manifest corpus against the real API server (1.20).

Each manifest is either rejected by the API server with a message naming the field, or accepted
and then reported by kubatch.api.validation (run on the object as the server stored it, after
pruning and defaulting) with the specific message.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from tests.manifests.corpus import EXAMPLES, Case, load_cases

from kubatch.api.crds import KIND_INFOS
from kubatch.api.models import parse_job_definition, parse_job_queue
from kubatch.api.validation import check_manifest

ROOT = Path(__file__).resolve().parents[2]
Kubectl = Callable[..., Any]
CASES = load_cases()


@pytest.fixture(scope="module")
def corpus_namespace(kubectl: Kubectl) -> Any:
    """A namespace holding the examples' definitions; the CRDs and cluster-scoped examples."""
    kubectl("apply", "-f", str(ROOT / "crds"))
    names = [f"crd/{info.crd_name}" for info in KIND_INFOS]
    kubectl("wait", "--for", "condition=established", "--timeout=60s", *names)
    ns = f"corpus-{uuid.uuid4().hex[:8]}"
    kubectl("create", "namespace", ns)
    for name in ("00-compute-environments.yaml", "10-job-queues.yaml", "20-job-definitions.yaml"):
        kubectl("apply", "-f", str(EXAMPLES / name), namespace=ns)
    yield ns
    kubectl("delete", "namespace", ns, "--wait=false", check=False)


def _items(kubectl: Kubectl, resource: str, namespace: str | None = None) -> list[Any]:
    out = kubectl("get", resource, "-o", "json", namespace=namespace).stdout
    return list(json.loads(out)["items"])


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_invalid_manifest(kubectl: Kubectl, corpus_namespace: str, case: Case) -> None:
    ns = corpus_namespace
    namespaced = case.kind in ("BatchJob", "JobDefinition")
    # --validate=false: the API server itself must reject it, not kubectl's OpenAPI check
    applied = kubectl("apply", "--validate=false", "-f", str(case.path), namespace=ns, check=False)
    try:
        if case.level == "apiserver":
            assert applied.returncode != 0, f"the API server accepted {case.id}: {applied.stdout}"
            # a 1.20 server names list items without their index (spec.dependsOn.type)
            fields = (case.field, re.sub(r"\[\d+\]", "", case.field))
            assert any(f"{f}:" in applied.stderr for f in fields), applied.stderr
            assert case.fragment in applied.stderr, applied.stderr
            return
        assert applied.returncode == 0, applied.stderr
        stored = json.loads(
            kubectl(
                "get",
                case.kind.lower() + ".kubatch.io",
                case.name,
                "-o",
                "json",
                namespace=ns if namespaced else None,
            ).stdout
        )
        queues = {
            i["metadata"]["name"]: parse_job_queue(i)
            for i in _items(kubectl, "jobqueues.kubatch.io")
            if not i["metadata"]["name"].startswith("invalid-")
        }
        definitions = {
            i["metadata"]["name"]: parse_job_definition(i)
            for i in _items(kubectl, "jobdefinitions.kubatch.io", ns)
            if not i["metadata"]["name"].startswith("invalid-")
        }
        problems = check_manifest(stored, queues=queues, definitions=definitions)
        matching = [p for p in problems if p.field == case.field]
        assert matching, f"expected a problem on {case.field}, got {problems}"
        assert any(case.fragment in p.message for p in matching), matching
    finally:
        if applied.returncode == 0:
            kubectl("delete", "-f", str(case.path), "--wait=false", namespace=ns, check=False)
