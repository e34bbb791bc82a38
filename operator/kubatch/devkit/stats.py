"""The one percentile definition of kubatch's tools (demo summary, benchmarks).

**Nearest rank**: the ``q``-th percentile of ``n`` values is the smallest value such that at
least ``q`` % of the values are less than or equal to it — the value of rank
``ceil(q/100 * n)`` in ascending order. It is always one of the measured values (a latency
p99 is a latency some job really had; interpolation would invent one between two samples),
and it never reports a tail better than what was observed. With few values it is coarse:
the p50 of ``[1, 2]`` is ``1``, the p99 of 10 values is the largest.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

__all__ = ["percentile"]


def percentile(values: Iterable[float], q: float) -> float | None:
    """Pure: the nearest-rank ``q``-th percentile (``0 <= q <= 100``); None for no values.
    ``q = 0`` is the smallest value, ``q = 100`` the largest."""
    if not 0 <= q <= 100:
        raise ValueError(f"percentile: q must be within 0..100, not {q}")
    data = sorted(values)
    if not data:
        return None
    rank = math.ceil(q * len(data) / 100 - 1e-9)  # 1e-9: 99 * 100 / 100 must stay 99
    return data[min(len(data), max(1, rank)) - 1]
