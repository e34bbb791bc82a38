"""The invalid-manifest corpus, without a cluster.

``validation`` cases: kubatch.api.validation reports the expected field and message.
``apiserver`` cases: the pydantic models reject them on the same field the CRD schema names,
so the operator and the API server agree.
"""

from __future__ import annotations

import pytest
from tests.manifests.corpus import Case, example_lookups, load_cases

from kubatch.api.models import parse
from kubatch.api.problems import InvalidResource
from kubatch.api.validation import check_manifest

CASES = load_cases()


def test_corpus_is_large_and_mixed() -> None:
    assert len(CASES) >= 40
    kinds = {c.kind for c in CASES}
    assert kinds == {
        "BatchJob",
        "JobQueue",
        "JobDefinition",
        "ComputeEnvironment",
        "ConsumableResource",
    }
    assert sum(c.level == "apiserver" for c in CASES) >= 15
    assert sum(c.level == "validation" for c in CASES) >= 15


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_corpus_case(case: Case) -> None:
    _, queues, defs = example_lookups()
    if case.level == "validation":
        problems = check_manifest(case.body, queues=queues, definitions=defs)
        matching = [p for p in problems if p.field == case.field]
        assert matching, f"expected a problem on {case.field}, got {problems}"
        assert any(case.fragment in p.message for p in matching), matching
    else:
        with pytest.raises(InvalidResource) as info:
            parse(case.body)
        fields = [p.field for p in info.value.problems]
        assert case.field in fields, fields


@pytest.mark.parametrize(
    "doc_kind", ["ComputeEnvironment", "JobQueue", "JobDefinition", "BatchJob"]
)
def test_examples_are_valid(doc_kind: str) -> None:
    from tests.manifests.corpus import example_documents

    _, queues, defs = example_lookups()
    docs = [d for d in example_documents() if d["kind"] == doc_kind]
    assert docs
    for doc in docs:
        problems = check_manifest(doc, queues=queues, definitions=defs)
        assert problems == [], (doc["metadata"]["name"], problems)
