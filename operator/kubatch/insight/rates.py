"""How fast a queue admits, how much waits ahead, and when a job would start. Pure.

The admission rate is counted from the Kubernetes Jobs kubatch created for the queue's
attempts (label ``kubatch.io/queue``; a Job's creation is its attempt's admission) over a
recent window — array children included, since every child attempt is a Job. What waits
ahead is the queue's waiting work in admissions: a waiting job counts once, a waiting array
child once. A start estimate is then "room now" or ``now + (ahead + 1/2) / rate``; when the
operator has already estimated the start of the queue's last waiting job
(``status.estimatedStartTime``), that is the floor.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kubatch.api import labels as L
from kubatch.core.lifecycle import Phase
from kubatch.insight.objects import created_at, labels_of, phase_of, status_of
from kubatch.timefmt import parse_time

DEFAULT_WINDOW = 300.0
"""Seconds of admissions the rate is counted over (or since the first one, if later)."""
MIN_SPAN = 10.0
"""A rate needs at least this many seconds of history to mean anything."""


@dataclass(frozen=True, slots=True)
class Rate:
    """Admissions of a queue per second over ``window`` seconds (``None``: nothing to go by)."""

    admissions: int
    window: float
    per_second: float | None

    @property
    def per_minute(self) -> float | None:
        return None if self.per_second is None else self.per_second * 60

    def text(self) -> str:
        if self.per_second is None:
            return "no recent admissions"
        return f"{self.per_second * 60:.1f}/min ({self.admissions} in the last {self.window:.0f}s)"


def admission_times(k8s_jobs: Iterable[Mapping[str, Any]], queue: str) -> list[float]:
    """Pure: when each attempt of ``queue`` was admitted (its Kubernetes Job's creation)."""
    out = []
    for job in k8s_jobs:
        if labels_of(job).get(L.QUEUE) != queue:
            continue
        t = created_at(job)
        if t is not None:
            out.append(t)
    return sorted(out)


def admission_rate(times: Sequence[float], now: float, window: float = DEFAULT_WINDOW) -> Rate:
    """Pure: admissions per second over the last ``window`` seconds.

    The span counted is the window, or — when the queue's first admission in it came later
    (a queue that just started admitting) — from that admission to ``now``, but never less
    than :data:`MIN_SPAN` seconds. No admission in the window: no rate.
    """
    recent = [t for t in times if now - window <= t <= now]
    if not recent:
        return Rate(0, window, None)
    first_ever = times[0] if times else recent[0]
    span = max(MIN_SPAN, min(window, now - first_ever))
    return Rate(len(recent), span, len(recent) / span)


def running_uids(k8s_jobs: Iterable[Mapping[str, Any]]) -> set[str]:
    """Pure: the BatchJobs (by uid) with an attempt admitted and not ended: a Kubernetes Job
    of theirs exists and has not finished. Fresher than their status, which the operator
    writes in coalesced patches."""
    out = set()
    for job in k8s_jobs:
        st = status_of(job)
        done = st.get("completionTime") or any(
            c.get("status") == "True" and c.get("type") in ("Complete", "Failed")
            for c in st.get("conditions") or []
        )
        if not done and labels_of(job).get(L.ARRAY_INDEX) is None:
            out.add(str(labels_of(job).get(L.BATCHJOB_UID, "")))
    return out


def published_rate(queue: Mapping[str, Any] | None, measured: Rate) -> Rate:
    """Pure: the measured rate, or — when it has nothing to go by (no Jobs to count, e.g. no
    right to list them) — the one the operator publishes (``status.admissionsPerMinute``,
    over its last 10 minutes)."""
    if measured.per_second is not None:
        return measured
    per_minute = status_of(queue or {}).get("admissionsPerMinute")
    if isinstance(per_minute, int | float) and per_minute > 0:
        return Rate(round(per_minute * 10), 600.0, per_minute / 60)
    return measured


def waiting_ahead(
    jobs: Iterable[Mapping[str, Any]], queue: str, admitted: set[str] | None = None
) -> int:
    """Pure: admissions waiting in ``queue`` now: each Runnable job once, each Runnable child
    of an array once (array parents count their waiting children, not themselves). A job
    whose status still says Runnable but that has an unfinished Kubernetes Job (``admitted``,
    from :func:`running_uids`) was admitted already and is not counted."""
    n = 0
    for job in jobs:
        if (job.get("spec") or {}).get("jobQueue") != queue:
            continue
        summary = status_of(job).get("arrayStatusSummary")
        if (job.get("spec") or {}).get("arrayProperties"):
            if isinstance(summary, Mapping):
                n += int(summary.get("runnable") or 0)
        elif phase_of(job) in (Phase.SUBMITTED, Phase.RUNNABLE):
            uid = str((job.get("metadata") or {}).get("uid") or "")
            if admitted is None or uid not in admitted:
                n += 1
    return n


def queue_waiting(queue: Mapping[str, Any] | None) -> int:
    """Pure: the Runnable jobs the queue's status counts (every namespace; arrays once)."""
    counts = status_of(queue or {}).get("jobCounts") or {}
    return int(counts.get("runnable") or 0) if isinstance(counts, Mapping) else 0


def last_estimate(jobs: Iterable[Mapping[str, Any]], queue: str) -> float | None:
    """Pure: the latest ``status.estimatedStartTime`` the operator gave a waiting job of the
    queue (``None`` when it gives none)."""
    best: float | None = None
    for job in jobs:
        if (job.get("spec") or {}).get("jobQueue") != queue or phase_of(job).terminal:
            continue
        t = parse_time(status_of(job).get("estimatedStartTime"))
        if t is not None and (best is None or t > best):
            best = t
    return best


@dataclass(frozen=True, slots=True)
class StartEstimate:
    """When a job would start, and on what the estimate rests."""

    at: float | None  # epoch seconds; None: cannot tell
    position: int  # its would-be queue position (1 = next)
    basis: str


def estimate_start(
    now: float,
    ahead: int,
    rate: Rate,
    *,
    room_now: bool,
    strict_fifo: bool = False,
    floor: float | None = None,
    can_run: bool = True,
    enabled: bool = True,
) -> StartEstimate:
    """Pure: the start of a job submitted ``now`` behind ``ahead`` waiting admissions.

    - it can never run, or the queue is disabled: no estimate;
    - a compute environment has room for it now and nothing waits ahead (or the queue does
      not block on its head: a job that fits is admitted past bigger ones): now;
    - else ``now + (ahead + 1/2) / rate`` (the next admission is half an interval away on
      average), no earlier than ``floor`` (the operator's estimate
      for the queue's last waiting job) plus one admission;
    - no admissions to go by: cannot tell.
    """
    position = ahead + 1
    if not can_run:
        return StartEstimate(None, position, "no compute environment of the queue can run it")
    if not enabled:
        return StartEstimate(None, position, "the queue is disabled: it admits nothing")
    if room_now and (ahead == 0 or not strict_fifo):
        why = "a compute environment has room for it now"
        if ahead:
            why += f" ({ahead} waiting ahead do not fit now; the queue is not StrictFIFO)"
        return StartEstimate(now, position, why)
    if rate.per_second is None or rate.per_second <= 0:
        return StartEstimate(
            None, position, f"{ahead} waiting ahead and no recent admissions to estimate from"
        )
    # The next admission comes, on average, half an interval from now (the queue is mid-way
    # between two); ours is the (ahead + 1)-th.
    at = now + (ahead + 0.5) / rate.per_second
    basis = f"{ahead} waiting ahead at {rate.text()}"
    if floor is not None and floor + 1 / rate.per_second > at:
        at = floor + 1 / rate.per_second
        basis += "; after the operator's estimate for the last waiting job"
    return StartEstimate(at, position, basis)
