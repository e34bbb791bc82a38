"""Leader election on a ``coordination.k8s.io/v1`` Lease, and the fence around every write.

Two replicas of the operator run at once; one leads and writes, the other waits warm (its
watches and its mirror of the cluster filled, :mod:`kubatch.controller.replica`). The protocol
is client-go's ``leaderelection`` (what controller-runtime and Kueue use):

- every ``retry_period`` a replica reads the Lease; if it holds the Lease, or the Lease names
  no holder, or the record has not changed for ``leaseDurationSeconds`` *as measured by this
  replica's own clock since it last saw the record change* (no trust in another machine's
  clock), it writes itself in as the holder — an update with the ``resourceVersion`` it read
  as a precondition, so of two replicas racing only one wins (the other gets ``409``);
- the leader renews every ``retry_period``; when it has not renewed for ``renew_deadline``
  (less than the lease duration) it stops leading at once — before anyone else may take the
  Lease (``duration - renew_deadline`` is the margin);
- a leader that stops cleanly releases the Lease (holder emptied) so the standby takes over at
  its next try instead of waiting for the lease to expire.

:class:`FencedKube` wraps the client the operator writes through: a write is refused
(:class:`NotLeading`) unless this replica leads *at that moment* (the renew deadline is
checked on each call, not only by the election loop), and :meth:`FencedKube.revoke` cancels
the writes still in flight when leadership is lost — Job creates, status patches and Events
alike. Reads and watches pass through: a standby reads as much as a leader.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from kubatch.adapters.kube import LEASES, ApiError, Resource
from kubatch.adapters.protocol import KubeApi, Listed, OnEvent, OnSync, Trim
from kubatch.controller.settings import JITTER, LeaseTimings
from kubatch.metrics import Metrics
from kubatch.timefmt import rfc3339_micro

log = logging.getLogger("kubatch.leader")
JsonDict = dict[str, Any]
T = TypeVar("T")


class NotLeading(ConnectionError):
    """A write refused because this replica does not lead (an ``OSError``: every writer
    already treats it as "not written, try again later")."""


@dataclass(frozen=True, slots=True)
class LeaseRecord:
    """The election record a Lease's spec holds."""

    holder: str = ""
    duration: int = 15
    acquired: str | None = None
    renewed: str | None = None
    transitions: int = 0


def read_record(lease: Mapping[str, Any]) -> LeaseRecord:
    """Pure: the record of a Lease object (missing fields as an empty record has them)."""
    spec = lease.get("spec") or {}
    return LeaseRecord(
        holder=str(spec.get("holderIdentity") or ""),
        duration=int(spec.get("leaseDurationSeconds") or 0),
        acquired=spec.get("acquireTime"),
        renewed=spec.get("renewTime"),
        transitions=int(spec.get("leaseTransitions") or 0),
    )


def record_spec(rec: LeaseRecord) -> JsonDict:
    """Pure: a Lease spec from a record."""
    return {
        "holderIdentity": rec.holder or None,
        "leaseDurationSeconds": rec.duration,
        "acquireTime": rec.acquired,
        "renewTime": rec.renewed,
        "leaseTransitions": rec.transitions,
    }


def claim(current: LeaseRecord | None, identity: str, duration: float, now: float) -> LeaseRecord:
    """Pure: the record ``identity`` writes to take or renew the Lease at wall time ``now``
    (a renewal keeps the acquisition time and the transition count)."""
    stamp = rfc3339_micro(now)
    seconds = max(1, round(duration))
    if current is not None and current.holder == identity:
        return LeaseRecord(identity, seconds, current.acquired or stamp, stamp, current.transitions)
    transitions = current.transitions + 1 if current is not None else 0
    return LeaseRecord(identity, seconds, stamp, stamp, transitions)


def may_take(
    current: LeaseRecord, identity: str, observed_at: float, now: float, default: float
) -> bool:
    """Pure: may ``identity`` write itself into a Lease whose record it has seen unchanged
    since ``observed_at`` (its own monotonic clock)? Yes when it is the holder, when there is
    none (released), or when the record is older than its lease duration."""
    if not current.holder or current.holder == identity:
        return True
    return now >= observed_at + (current.duration or default)


class LeaderElector:
    """Takes and keeps the Lease ``namespace/name`` for ``identity``.

    ``leading()`` is the truth at the moment it is asked (renew deadline included);
    ``on_change(leading)`` is awaited on each change. ``run()`` loops until cancelled.
    """

    def __init__(
        self,
        kube: KubeApi,
        *,
        namespace: str,
        name: str,
        identity: str,
        timings: LeaseTimings | None = None,
        on_change: Callable[[bool], Awaitable[None]] | None = None,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        if not identity:
            raise ValueError("leader election needs a non-empty identity")
        self.kube = kube
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.timings = timings or LeaseTimings()
        self.on_change = on_change
        self.metrics = metrics
        self.clock = clock
        self.wall = wall
        self.holder = ""
        """The holder as last seen (this replica when it leads)."""
        self.transitions = 0
        self._leading = False
        self._renewed_at = -1e18
        self._observed: LeaseRecord | None = None
        self._observed_at = 0.0
        self._version = ""
        self.failed_at = -1e18
        """When a try last failed (monotonic clock): the API server was not reachable."""
        if metrics is not None:
            metrics.set_leader(identity, False)

    # ------------------------------------------------------------------ the truth

    def leading(self) -> bool:
        """Whether this replica leads now: it took or renewed the Lease less than the renew
        deadline ago. Writes ask this on every call."""
        return (
            self._leading
            and self.holder == self.identity
            and self.clock() < self._renewed_at + self.timings.renew_deadline
        )

    @property
    def deadline(self) -> float:
        """When leadership ends unless renewed (monotonic clock)."""
        return self._renewed_at + self.timings.renew_deadline

    # ------------------------------------------------------------------ one try

    async def try_acquire_or_renew(self) -> bool:
        """One try: read the Lease (or create it), then take or renew it if allowed.
        True when this replica holds it afterwards."""
        now = self.clock()
        if self._leading and self._observed is not None and self._version:
            # The leader renews on the version it wrote last: one request per renewal. A
            # conflict means someone else wrote the Lease: read it and judge again.
            rec = claim(self._observed, self.identity, self.timings.duration, self.wall())
            try:
                await self._update(rec, self._version, now)
                return True
            except ApiError as exc:
                if not exc.conflict:
                    raise
        try:
            lease = await self.kube.get(LEASES, self.name, self.namespace)
        except ApiError as exc:
            if not exc.not_found:
                raise
            return await self._create(now)
        current = read_record(lease)
        version = str((lease.get("metadata") or {}).get("resourceVersion") or "")
        if current != self._observed:
            self._observed, self._observed_at = current, now
        self.holder = current.holder
        self.transitions = current.transitions
        if not may_take(current, self.identity, self._observed_at, now, self.timings.duration):
            return False
        rec = claim(current, self.identity, self.timings.duration, self.wall())
        try:
            await self._update(rec, version, now)
        except ApiError as exc:
            if exc.conflict:  # another replica won the race
                return False
            raise
        return True

    async def _create(self, now: float) -> bool:
        rec = claim(None, self.identity, self.timings.duration, self.wall())
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": record_spec(rec),
        }
        try:
            made = await self.kube.create(LEASES, body, namespace=self.namespace)
        except ApiError as exc:
            if exc.conflict:
                return False
            raise
        self._took(rec, str((made.get("metadata") or {}).get("resourceVersion") or ""), now)
        return True

    async def _update(self, rec: LeaseRecord, version: str, now: float) -> None:
        patch = {"metadata": {"resourceVersion": version}, "spec": record_spec(rec)}
        made = await self.kube.patch(LEASES, self.name, patch, namespace=self.namespace)
        self._took(rec, str((made.get("metadata") or {}).get("resourceVersion") or ""), now)

    def _took(self, rec: LeaseRecord, version: str, now: float) -> None:
        self._observed, self._observed_at, self._version = rec, now, version
        self._renewed_at = now
        self.holder = rec.holder
        self.transitions = rec.transitions

    # ------------------------------------------------------------------ the loop

    async def step(self) -> None:
        """One try, and the change it makes (reported through ``on_change``). A try that
        outlives the renew deadline is abandoned at the deadline: leadership never outlasts
        it."""
        limit = self.timings.renew_deadline
        if self._leading:
            limit = max(0.05, self.deadline - self.clock())
        try:
            async with asyncio.timeout(limit):  # not wait_for: it can swallow a cancellation
                held = await self.try_acquire_or_renew()
        except asyncio.CancelledError:
            raise
        except (ApiError, OSError, TimeoutError) as exc:
            held = False
            self.failed_at = self.clock()
            why = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
            log.warning("lease %s/%s: %s", self.namespace, self.name, why)
        except Exception:
            held = False
            self.failed_at = self.clock()
            log.exception("lease %s/%s: unexpected error", self.namespace, self.name)
        if held and not self._leading:
            await self._set(True)
        elif self._leading and not self.leading():
            await self._set(False)  # past the deadline, or another holder seen

    def pause(self) -> float:
        """Until the next try: the retry period (a standby's with jitter), never past a
        leader's deadline."""
        t = self.timings
        if not self._leading:
            return t.retry_period * random.uniform(1.0, JITTER)
        return min(t.retry_period, max(0.0, self.deadline - self.clock()))

    async def run(self, *, tried: bool = False) -> None:
        """Try, renew and report changes until cancelled (``tried``: the first try was made
        already; pause first)."""
        try:
            while True:
                if not tried:
                    await self.step()
                tried = False
                await asyncio.sleep(self.pause())
        finally:
            if self._leading:
                self._leading = False
                if self.metrics is not None:
                    self.metrics.set_leader(self.identity, False)

    async def _set(self, leading: bool) -> None:
        self._leading = leading
        if leading:
            log.info("%s leads (lease %s/%s, transitions %d)", self.identity, self.namespace,
                     self.name, self.transitions)  # fmt: skip
        elif self.holder not in ("", self.identity):
            log.warning("%s stopped leading: %s holds the lease", self.identity, self.holder)
        else:
            log.warning("%s stopped leading: the lease was not renewed within %.0fs",
                        self.identity, self.timings.renew_deadline)  # fmt: skip
        if self.metrics is not None:
            self.metrics.set_leader(self.identity, leading)
        if self.on_change is not None:
            await self.on_change(leading)

    async def release(self) -> bool:
        """Give the Lease up (a clean stop): the holder is emptied so that a standby takes
        over at its next try. True when released."""
        if not self.leading() or self._observed is None:
            return False
        self._leading = False
        rec = LeaseRecord("", 1, self._observed.acquired, rfc3339_micro(self.wall()),
                          self._observed.transitions)  # fmt: skip
        try:
            async with asyncio.timeout(5):
                await self._update(rec, self._version, self.clock())
        except (ApiError, OSError, TimeoutError) as exc:
            log.warning("lease %s/%s not released: %s", self.namespace, self.name, exc)
            return False
        if self.metrics is not None:
            self.metrics.set_leader(self.identity, False)
        log.info("%s released the lease %s/%s", self.identity, self.namespace, self.name)
        return True


class FencedKube:
    """A ``KubeApi`` whose writes happen only while ``may_write()`` holds (see module doc).

    A refused write raises :class:`NotLeading`; :meth:`revoke` cancels every write in flight
    (its caller gets :class:`NotLeading` too). Reads and watches are passed through.
    """

    def __init__(self, kube: KubeApi, may_write: Callable[[], bool]) -> None:
        self.kube = kube
        self.may_write = may_write
        self._inflight: set[asyncio.Task[Any]] = set()
        self._revoked: set[asyncio.Task[Any]] = set()
        self.refused = 0
        """Writes refused or cancelled because this replica did not lead."""

    async def _write(self, call: Callable[[], Awaitable[T]]) -> T:
        if not self.may_write():
            self.refused += 1
            raise NotLeading("this replica does not lead: write refused")
        task: asyncio.Task[T] = asyncio.ensure_future(call())
        self._inflight.add(task)
        try:
            return await task
        except asyncio.CancelledError:
            me = asyncio.current_task()
            if task in self._revoked and not (me is not None and me.cancelling()):
                # revoked, and only that: a caller that is being cancelled itself (the
                # scheduling loop stopped as leadership goes) must see its cancellation
                self.refused += 1
                raise NotLeading("leadership lost: write cancelled in flight") from None
            raise
        finally:
            self._inflight.discard(task)
            self._revoked.discard(task)

    def revoke(self) -> int:
        """Cancel the writes in flight (leadership is lost); returns how many."""
        n = 0
        for task in list(self._inflight):
            if not task.done():
                self._revoked.add(task)
                task.cancel()
                n += 1
        return n

    # -- KubeApi ---------------------------------------------------------------------------

    async def list(
        self,
        res: Resource,
        *,
        namespace: str | None = None,
        labels: str | None = None,
        cached: bool = False,
    ) -> list[JsonDict]:
        return await self.kube.list(res, namespace=namespace, labels=labels, cached=cached)

    async def list_with_version(
        self,
        res: Resource,
        *,
        namespace: str | None = None,
        labels: str | None = None,
        cached: bool = False,
        trim: Callable[[JsonDict], JsonDict] | None = None,
    ) -> Listed:
        return await self.kube.list_with_version(res, namespace=namespace, labels=labels,
                                                 cached=cached, trim=trim)  # fmt: skip

    async def catch_up(
        self,
        res: Resource,
        resource_version: str,
        on_event: OnEvent,
        *,
        namespace: str | None = None,
        seconds: int = 1,
    ) -> None:
        await self.kube.catch_up(res, resource_version, on_event, namespace=namespace,
                                 seconds=seconds)  # fmt: skip

    async def get(self, res: Resource, name: str, namespace: str | None = None) -> JsonDict:
        return await self.kube.get(res, name, namespace)

    async def create(self, res: Resource, body: JsonDict, namespace: str | None = None) -> JsonDict:
        return await self._write(lambda: self.kube.create(res, body, namespace))

    async def patch(
        self,
        res: Resource,
        name: str,
        patch: JsonDict,
        namespace: str | None = None,
        *,
        status: bool = False,
    ) -> JsonDict:
        return await self._write(lambda: self.kube.patch(res, name, patch, namespace,
                                                         status=status))  # fmt: skip

    async def delete(
        self, res: Resource, name: str, namespace: str | None = None, *, background: bool = True
    ) -> None:
        await self._write(lambda: self.kube.delete(res, name, namespace, background=background))

    async def watch(
        self,
        res: Resource,
        on_event: OnEvent,
        *,
        namespace: str | None = None,
        labels: str | None = None,
        timeout_seconds: int = 300,
        on_sync: OnSync | None = None,
        trim: Trim | None = None,
    ) -> None:
        await self.kube.watch(res, on_event, namespace=namespace, labels=labels,
                              timeout_seconds=timeout_seconds, on_sync=on_sync,
                              trim=trim)  # fmt: skip

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            self.revoke()
