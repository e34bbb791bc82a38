"""The scheduler loop: one cycle decides, the effects write.

Each cycle: settle what attempts reported (timeouts, vanished pods, Job verdicts), take the
cache's snapshot, ``schedule`` it, ``assume`` every decision and create or delete the
Kubernetes Jobs decided. A second task writes what the cycles staged: the coalesced status
of each job, Events, retention, and every few seconds queue and CE status.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Callable

from kubatch.controller.attempts import Attempts
from kubatch.controller.effects import Effects
from kubatch.controller.settings import Timings
from kubatch.core.cache import Cache
from kubatch.core.scheduler import schedule
from kubatch.metrics import Metrics

log = logging.getLogger("kubatch.loop")


async def wait_event(event: asyncio.Event, timeout: float) -> None:
    """Wait until ``event`` is set or ``timeout`` seconds passed. Not ``asyncio.wait_for``:
    in Python 3.11 it swallows a cancellation that arrives as the event is set, and a loop
    cancelled at that moment (leadership lost) would run on and hold up the next takeover."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout):
            await event.wait()


class Loop:
    """Runs cycles when woken (``wake``) and at least every ``timings.idle`` seconds."""

    def __init__(
        self,
        cache: Cache,
        attempts: Attempts,
        effects: Effects,
        *,
        timings: Timings,
        metrics: Metrics | None,
        clock: Callable[[], float],
        wake: asyncio.Event,
        may_write: Callable[[], bool] = lambda: True,
    ) -> None:
        self.cache = cache
        self.attempts = attempts
        self.effects = effects
        self.timings = timings
        self.metrics = metrics
        self.clock = clock
        self.wake = wake
        self.may_write = may_write
        self._last_objects = -1e18
        self._staged = asyncio.Event()
        self.decided = asyncio.Event()
        """Set after each cycle's decisions were carried out (a replica's start waits for
        the first)."""

    async def run(self) -> None:
        """Cycle for ever; a failing cycle is logged and retried, never fatal. Status, Events
        and retention are written by a second task (:meth:`write_loop`), so a cycle never
        waits for them: a job admitted while thousands of statuses are being written gets
        its Kubernetes Job at once."""
        writer = asyncio.create_task(self.write_loop(), name="kubatch-status-writer")
        try:
            while True:
                await wait_event(self.wake, self.timings.idle)
                await asyncio.sleep(self.timings.debounce)
                self.wake.clear()
                if not self.may_write():
                    continue
                try:
                    await self.decide()
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("scheduler cycle failed; retrying")
                    if self.metrics is not None:
                        self.metrics.count_handler_error("cycle")
                    await asyncio.sleep(0.5)
                    self.wake.set()
                self.decided.set()
                self._staged.set()
        finally:
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer

    async def write_loop(self) -> None:
        """Write what the cycles staged: after each cycle (a short coalescing window later)
        and at least every ``timings.idle`` seconds (held statuses fall due). One writer, so
        a job's patches never overtake each other."""
        while True:
            await wait_event(self._staged, self.timings.idle)
            await asyncio.sleep(self.timings.coalesce)
            self._staged.clear()
            if not self.may_write():
                continue
            try:
                await self.write(self.clock())
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("status writes failed; retrying")
                if self.metrics is not None:
                    self.metrics.count_handler_error("writes")
                await asyncio.sleep(0.5)
                self._staged.set()

    async def cycle(self) -> None:
        """One scheduling cycle and then its writes (in-process tests step with this)."""
        await self.decide()
        await self.write(self.clock())

    async def decide(self) -> None:
        """Settle attempts, schedule, and create/delete the Kubernetes Jobs decided."""
        await self.attempts.settle()
        now = self.clock()
        self.attempts.charge_running(now)
        t0 = time.perf_counter()
        snap = self.cache.snapshot(now)
        decisions = schedule(snap, now)
        self.cache.assume_all(decisions, now)
        if self.metrics is not None:
            kinds = Counter(type(d).__name__ for d in decisions)
            self.metrics.observe_cycle(time.perf_counter() - t0, kinds)
        await self.effects.apply(decisions, now)

    async def write(self, now: float) -> None:
        """Status patches, array child records, Events, retention, queue and CE status."""
        await self.effects.flush()
        await self.effects.flush_children(now)
        await self.effects.post_events()
        await self.effects.retain(now)
        if now - self._last_objects >= self.timings.object_status:
            self._last_objects = now
            await self.effects.publish_objects(now)
