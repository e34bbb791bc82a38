"""``eventually()``: call a probe until it answers, or fail saying what never happened.

The one poll loop of the tests, the demo and the benchmarks. The probe returns something
truthy when the wait is over (that value is returned) and anything falsy otherwise; ``check``
runs every round and may raise (e.g. "the operator died", with its log). On timeout,
:class:`NotYet` (an ``AssertionError``: pytest shows it as a failed expectation) names what
was awaited and the probe's last answer.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")

__all__ = ["NotYet", "eventually", "eventually_async"]


class NotYet(AssertionError):
    """``eventually`` timed out."""


def _describe(what: str, last: object, progress: Callable[[], str] | None) -> str:
    state = progress() if progress is not None else repr(last)
    return f"timed out waiting for {what}; last: {state[:3000]}"


def eventually(
    probe: Callable[[], T],
    *,
    what: str,
    timeout: float = 60.0,
    every: float = 0.5,
    check: Callable[[], None] | None = None,
    progress: Callable[[], str] | None = None,
    report: Callable[[str], None] | None = None,
    report_every: float = 10.0,
) -> T:
    """``probe()`` until truthy; returns that value. ``progress()`` describes the state for
    the timeout message and for ``report`` (called every ``report_every`` seconds)."""
    deadline = time.monotonic() + timeout
    next_report = time.monotonic() + report_every
    last: T | None = None
    while True:
        if check is not None:
            check()
        last = probe()
        if last:
            return last
        now = time.monotonic()
        if now >= deadline:
            raise NotYet(_describe(what, last, progress))
        if report is not None and now >= next_report:
            report(f"waiting for {what}: {progress() if progress else repr(last)}")
            next_report = now + report_every
        time.sleep(min(every, max(0.0, deadline - now)))


async def eventually_async(
    probe: Callable[[], Awaitable[T]],
    *,
    what: str,
    timeout: float = 60.0,
    every: float = 0.5,
    check: Callable[[], None] | None = None,
    progress: Callable[[], str] | None = None,
    report: Callable[[str], None] | None = None,
    report_every: float = 10.0,
) -> T:
    """The same inside an event loop, for a coroutine function ``probe``."""
    deadline = time.monotonic() + timeout
    next_report = time.monotonic() + report_every
    while True:
        if check is not None:
            check()
        last = await probe()
        if last:
            return last
        now = time.monotonic()
        if now >= deadline:
            raise NotYet(_describe(what, last, progress))
        if report is not None and now >= next_report:
            report(f"waiting for {what}: {progress() if progress else repr(last)}")
            next_report = now + report_every
        await asyncio.sleep(min(every, max(0.0, deadline - now)))
