"""The job book's shared conditions: equal conditions are one object, others stay apart."""

from __future__ import annotations

from typing import Any

from kubatch.controller import records
from kubatch.controller.records import JobBook


def cond(ctype: str, status: str = "False", at: str = "2026-01-01T00:00:00Z") -> dict[str, Any]:
    return {"type": ctype, "status": status, "reason": "R", "message": "m",
            "lastTransitionTime": at, "observedGeneration": 1}  # fmt: skip


def test_equal_conditions_are_shared_and_different_ones_are_not() -> None:
    book = JobBook()
    a = book.shared_conditions([cond("Ready"), cond("Reconciling", "True")])
    b = book.shared_conditions([cond("Ready"), cond("Reconciling", "True")])
    c = book.shared_conditions([cond("Ready", at="2026-01-01T00:00:01Z")])
    assert a == b
    assert all(x is y for x, y in zip(a, b, strict=True))
    assert a is not b  # each record has its own list
    assert c[0] == cond("Ready", at="2026-01-01T00:00:01Z")
    assert c[0] is not a[0]


def test_unhashable_values_are_kept_as_they_are() -> None:
    book = JobBook()
    odd = {**cond("Ready"), "extra": ["x"]}
    assert book.shared_conditions([odd])[0] is odd


def test_the_table_starts_afresh_when_full(monkeypatch: Any) -> None:
    monkeypatch.setattr(records, "SHARED_CONDITIONS_MAX", 2)
    book = JobBook()
    first = book.shared_conditions([cond("A"), cond("B"), cond("C")])
    again = book.shared_conditions([cond("A")])  # the table was cleared: a new instance
    assert again == [first[0]]
    assert again[0] is not first[0]
    assert book.shared_conditions([cond("A")])[0] is again[0]
