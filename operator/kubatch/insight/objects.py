"""Reading the raw objects the API server returns, and kubectl-style text. Pure.

The insight modules work on plain dicts (what ``kubatch.adapters.kube`` returns), not on the
pydantic models: an object written by a newer or older operator, or half-written, must still
be shown rather than rejected.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from kubatch.core.lifecycle import Phase
from kubatch.timefmt import parse_time

Obj = dict[str, Any]


class InsightError(Exception):
    """A question insight cannot answer; the message says why (shown to the user as is)."""


def status_of(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    """Pure: the object's ``status`` (empty when it has none yet)."""
    status = obj.get("status")
    return status if isinstance(status, Mapping) else {}


def condition(obj: Mapping[str, Any], type_: str) -> Mapping[str, Any] | None:
    """Pure: the status condition of type ``type_``, if any."""
    for c in status_of(obj).get("conditions") or []:
        if isinstance(c, Mapping) and c.get("type") == type_:
            return c
    return None


def ready(obj: Mapping[str, Any]) -> str:
    """Pure: the ``Ready`` condition's status (``True``, ``False`` or ``Unknown``)."""
    c = condition(obj, "Ready")
    return str(c.get("status", "Unknown")) if c else "Unknown"


def phase_of(job: Mapping[str, Any]) -> Phase:
    """Pure: a BatchJob's phase (``Submitted`` until the operator wrote one)."""
    try:
        return Phase(status_of(job).get("phase") or Phase.SUBMITTED.value)
    except ValueError:
        return Phase.SUBMITTED


def name_of(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("name", ""))


def namespace_of(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("namespace") or "")


def labels_of(obj: Mapping[str, Any]) -> Mapping[str, str]:
    labels = (obj.get("metadata") or {}).get("labels")
    return labels if isinstance(labels, Mapping) else {}


def created_at(obj: Mapping[str, Any]) -> float | None:
    """Pure: ``metadata.creationTimestamp`` as epoch seconds."""
    return parse_time((obj.get("metadata") or {}).get("creationTimestamp"))


def num_text(value: object) -> str:
    """Pure: a number as kubectl prints it (``4`` for ``4.0``; ``-`` for none)."""
    if value is None:
        return "-"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def format_table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """Pure: a kubectl-style table: upper-case headers, columns padded, three spaces apart."""
    cells = [[str(h).upper() for h in headers]] + [
        ["<none>" if v is None or v == "" else str(v) for v in row] for row in rows
    ]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["   ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    return "\n".join(lines) + "\n"


def duration_text(seconds: float | None) -> str:
    """Pure: kubectl's human duration (``45s``, ``5m3s``, ``2h``, ``3d``); ``-`` for none."""
    if seconds is None:
        return "-"
    s = max(0, int(seconds))
    m, h, d = s // 60, s // 3600, s // 86400
    # (below this, show: big unit, its name, the remainder in the next unit (0: none), its name)
    for limit, big, unit, rest, rest_unit in (
        (s < 120, s, "s", 0, ""),
        (m < 10, m, "m", s % 60, "s"),
        (m < 180, m, "m", 0, ""),
        (h < 8, h, "h", m % 60, "m"),
        (h < 48, h, "h", 0, ""),
        (d < 8, d, "d", h % 24, "h"),
        (d < 730, d, "d", 0, ""),
    ):
        if limit:
            return f"{big}{unit}" + (f"{rest}{rest_unit}" if rest else "")
    return f"{d // 365}y"


def age(created: object, now: datetime) -> str:
    """Pure: kubectl's human duration of ``now - created`` (``<unknown>`` when unreadable)."""
    start = parse_time(created)
    if start is None:
        return "<unknown>"
    return duration_text(now.timestamp() - start)


def money(dollars: float | None) -> str:
    """Pure: ``$0.0123`` (four decimals below a dollar, two above); ``-`` for none."""
    if dollars is None:
        return "-"
    return f"${dollars:.4f}" if abs(dollars) < 1 else f"${dollars:,.2f}"
