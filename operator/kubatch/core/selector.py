"""A Kubernetes label selector as a pure predicate (queue ``namespaceSelector``).

Pure. ``matchLabels`` plus ``matchExpressions`` with ``In``/``NotIn``/``Exists``/``DoesNotExist``.
An empty selector matches every namespace (Kubernetes convention).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


class SelectorError(ValueError):
    """An invalid selector (unknown operator, values where none are allowed ...)."""


@dataclass(frozen=True, slots=True)
class Requirement:
    key: str
    operator: str
    values: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if self.operator in ("In", "NotIn"):
            if not self.values:
                raise SelectorError(f"{self.operator} needs values")
        elif self.operator in ("Exists", "DoesNotExist"):
            if self.values:
                raise SelectorError(f"{self.operator} takes no values")
        else:
            raise SelectorError(f"unknown operator {self.operator!r}")

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Pure."""
        op = self.operator
        if op == "In":
            return self.key in labels and labels[self.key] in self.values
        if op == "NotIn":
            return self.key not in labels or labels[self.key] not in self.values
        if op == "Exists":
            return self.key in labels
        return self.key not in labels


@dataclass(frozen=True, slots=True)
class LabelSelector:
    match_labels: tuple[tuple[str, str], ...] = ()
    match_expressions: tuple[Requirement, ...] = field(default_factory=tuple)

    @staticmethod
    def parse(obj: Mapping[str, object] | None) -> LabelSelector:
        """Pure: from the Kubernetes dict form (``None`` -> match everything)."""
        if not obj:
            return LabelSelector()
        ml = obj.get("matchLabels") or {}
        me = obj.get("matchExpressions") or []
        if not isinstance(ml, Mapping) or not isinstance(me, list):
            raise SelectorError("matchLabels must be a map and matchExpressions a list")
        reqs = []
        for e in me:
            if not isinstance(e, Mapping):
                raise SelectorError("matchExpressions entries must be maps")
            vals = e.get("values") or []
            if not isinstance(vals, list):
                raise SelectorError("values must be a list")
            reqs.append(Requirement(str(e["key"]), str(e["operator"]), frozenset(map(str, vals))))
        return LabelSelector(tuple(sorted((str(k), str(v)) for k, v in ml.items())), tuple(reqs))

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Pure: whether a namespace with ``labels`` is selected."""
        for k, v in self.match_labels:
            if labels.get(k) != v:
                return False
        return all(r.matches(labels) for r in self.match_expressions)
