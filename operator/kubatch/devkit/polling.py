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
from typing import TypedDict, TypeVar, Unpack

T = TypeVar("T")

__all__ = ["NotYet", "Options", "eventually", "eventually_async"]


class NotYet(AssertionError):
    """``eventually`` timed out."""


class Options(TypedDict, total=False):
    """How ``eventually`` waits: ``timeout`` (60 s) and ``every`` (0.5 s) in seconds;
    ``check()`` runs every round and may raise; ``progress()`` describes the state for the
    timeout message and for ``report`` (called every ``report_every`` seconds, default 10)."""

    timeout: float
    every: float
    check: Callable[[], None] | None
    progress: Callable[[], str] | None
    report: Callable[[str], None] | None
    report_every: float


class _Rounds:
    """The bookkeeping both loops share: deadline, checks, reports, the timeout message."""

    def __init__(
        self,
        what: str,
        timeout: float = 60.0,
        every: float = 0.5,
        check: Callable[[], None] | None = None,
        progress: Callable[[], str] | None = None,
        report: Callable[[str], None] | None = None,
        report_every: float = 10.0,
    ) -> None:
        self.what, self.every, self.check, self.progress = what, every, check, progress
        self.report, self.report_every = report, report_every
        self.deadline = time.monotonic() + timeout
        self.next_report = time.monotonic() + report_every

    def before(self) -> None:
        if self.check is not None:
            self.check()

    def state(self, last: object) -> str:
        return self.progress() if self.progress is not None else repr(last)

    def pause(self, last: object) -> float:
        """After a falsy answer: how long to sleep, or :class:`NotYet` when time is up."""
        now = time.monotonic()
        if now >= self.deadline:
            raise NotYet(f"timed out waiting for {self.what}; last: {self.state(last)[:3000]}")
        if self.report is not None and now >= self.next_report:
            self.report(f"waiting for {self.what}: {self.state(last)}")
            self.next_report = now + self.report_every
        return min(self.every, max(0.0, self.deadline - now))


def eventually(probe: Callable[[], T], *, what: str, **options: Unpack[Options]) -> T:
    """``probe()`` until truthy; returns that value (see :class:`Options`)."""
    rounds = _Rounds(what, **options)
    while True:
        rounds.before()
        last = probe()
        if last:
            return last
        time.sleep(rounds.pause(last))


async def eventually_async(
    probe: Callable[[], Awaitable[T]], *, what: str, **options: Unpack[Options]
) -> T:
    """The same inside an event loop, for a coroutine function ``probe``."""
    rounds = _Rounds(what, **options)
    while True:
        rounds.before()
        last = await probe()
        if last:
            return last
        await asyncio.sleep(rounds.pause(last))
