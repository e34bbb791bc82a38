"""RFC 3339 timestamps as Kubernetes writes them, and epoch seconds: the one parser and formatter.

Pure: no clock (callers pass ``now`` in), no I/O. Kubernetes writes ``metav1.Time`` at second
precision (``2026-01-02T03:04:05Z``) and ``metav1.MicroTime`` (Lease ``renewTime``, Event
``eventTime``) with six fraction digits; other writers add offsets or nanoseconds. Everything
in kubatch that reads or writes such a timestamp (controller, simulator, demo, plugin,
benchmarks, tests) goes through this module.
"""

from __future__ import annotations

import functools
import math
from datetime import UTC, datetime

__all__ = ["parse_time", "rfc3339", "rfc3339_micro"]


def rfc3339(epoch: float) -> str:
    """Pure: epoch seconds -> ``2026-01-02T03:04:05Z`` (``metav1.Time``: whole seconds, the
    fraction is dropped). Equal seconds give one shared string (jobs keep many)."""
    return _rfc3339_seconds(math.floor(epoch))


@functools.lru_cache(maxsize=4096)
def _rfc3339_seconds(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def rfc3339_micro(epoch: float) -> str:
    """Pure: epoch seconds -> ``2026-01-02T03:04:05.123456Z`` (``metav1.MicroTime``)."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(value: object) -> float | None:
    """Pure: an RFC 3339 timestamp -> epoch seconds; ``None`` when missing or unreadable.

    Accepts ``Z`` or a numeric offset, any number of fraction digits (beyond microseconds they
    are dropped), lower-case ``t``/``z``; a timestamp without an offset is taken as UTC. Not a
    string (``None``, a number), empty, or not a timestamp at all: ``None`` — callers decide
    what a missing time means (kubectl shows ``<unknown>``).
    """
    if not isinstance(value, str):
        return None
    text = value.strip().upper()
    if len(text) < 19 or text[10] not in "T ":  # a date and a time, at least to the second
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()
