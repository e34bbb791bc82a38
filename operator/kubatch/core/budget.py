"""Spending limits per queue (kubatch: no anchor has them).

Pure, in-memory. A queue may set a limit per hour and/or per day on the estimated dollars its
attempts cost. The operator *charges* each queue as its attempts run (every cycle, each
running attempt's cost since its last charge: node price x elapsed time x the job's share of
the node, see ``kubatch.core.cost``). A window's spend is what was charged during the last
hour or day (sliding). When a window's spend has reached its limit, the queue admits nothing
new (its waiting jobs say ``BudgetExceeded`` and when the window frees); running attempts are
never stopped. Charges are kept in one-minute buckets, so memory is bounded (at most 1,440
buckets per queue).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kubatch.core.snapshot import QueueView

BUCKET = 60.0
HOUR = 3600.0
DAY = 86400.0


@dataclass(frozen=True, slots=True)
class Budget:
    """A queue's limits in dollars (``None``: no limit for that window)."""

    per_hour: float | None = None
    per_day: float | None = None

    def windows(self) -> list[tuple[float, float, str]]:
        """(window seconds, limit, name) of each limit set."""
        out = []
        if self.per_hour is not None:
            out.append((HOUR, self.per_hour, "hour"))
        if self.per_day is not None:
            out.append((DAY, self.per_day, "day"))
        return out


@dataclass(frozen=True, slots=True)
class BudgetState:
    """A queue's spend now: per window, and whether (until when) admissions wait."""

    spent_hour: float
    spent_day: float
    blocked_until: float | None
    window: str | None  # the window whose limit is reached
    limit: float | None


class Spend:
    """The charges of one queue, in one-minute buckets over the last day."""

    __slots__ = ("buckets",)

    def __init__(self) -> None:
        self.buckets: deque[list[float]] = deque()  # [bucket start, dollars]

    def charge(self, dollars: float, at: float) -> None:
        if dollars <= 0:
            return
        start = at - at % BUCKET
        if self.buckets and self.buckets[-1][0] == start:
            self.buckets[-1][1] += dollars
        else:
            self.buckets.append([start, dollars])
        while self.buckets and self.buckets[0][0] <= at - DAY - BUCKET:
            self.buckets.popleft()

    def spent(self, now: float, window: float) -> float:
        """Dollars charged in the ``window`` seconds before ``now``."""
        return sum(d for t, d in self.buckets if t > now - window - BUCKET and t <= now)

    def frees_at(self, now: float, window: float, limit: float) -> float:
        """When the window's spend falls below ``limit`` as charges age out (if nothing more
        is charged)."""
        total = self.spent(now, window)
        for t, d in self.buckets:
            if t <= now - window - BUCKET:
                continue
            if total < limit:
                break
            total -= d
            if total < limit:
                return t + BUCKET + window
        return now


def state(spend: Spend | None, budget: Budget, now: float) -> BudgetState:
    """Pure: the queue's spend per window and whether its admissions wait, until when."""
    hour = spend.spent(now, HOUR) if spend else 0.0
    day = spend.spent(now, DAY) if spend else 0.0
    blocked: float | None = None
    which: str | None = None
    limit: float | None = None
    for window, lim, name in budget.windows():
        spent = hour if name == "hour" else day
        if spent >= lim and spend is not None:
            until = spend.frees_at(now, window, lim)
            if blocked is None or until > blocked:
                blocked, which, limit = until, name, lim
    return BudgetState(hour, day, blocked, which, limit)


def blocked(
    queues: Iterable[QueueView], spend: Mapping[str, Spend], now: float
) -> dict[str, BudgetState]:
    """Pure: the queues whose spending limit is reached now."""
    out = {}
    for q in queues:
        if q.spec.budget is not None:
            st = state(spend.get(q.spec.name), q.spec.budget, now)
            if st.blocked_until is not None:
                out[q.spec.name] = st
    return out
