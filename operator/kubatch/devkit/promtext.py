"""Prometheus text exposition -> samples, for the demo, the benchmarks and the tests.

Parsing is ``prometheus_client.parser`` (the client library's own); this module only shapes
the result: ``{sample name: {sorted label pairs: value}}``, and sums over a label.
"""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client.parser import text_string_to_metric_families

__all__ = ["Labels", "Samples", "parse_metrics", "sample", "sum_by"]

Labels = tuple[tuple[str, str], ...]
Samples = dict[str, dict[Labels, float]]


def parse_metrics(text: str) -> Samples:
    """Pure: exposition text -> sample name (``_total``, ``_bucket``, ... included) -> sorted
    label pairs -> value."""
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = float(s.value)
    return out


def sum_by(samples: Mapping[Labels, float], label: str) -> dict[str, float]:
    """Pure: the samples summed by one label's value ('' when a sample lacks the label)."""
    out: dict[str, float] = {}
    for labels, value in samples.items():
        key = dict(labels).get(label, "")
        out[key] = out.get(key, 0.0) + value
    return dict(sorted(out.items()))


def sample(metrics: Samples, name: str, **labels: str) -> float:
    """Pure: the sum of ``name``'s samples whose labels include ``labels`` (0 when none)."""
    want = set(labels.items())
    return sum(v for key, v in (metrics.get(name) or {}).items() if want <= set(key))
