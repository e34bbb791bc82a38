"""Consumable resources (AWS Batch, 2024): licences, connection slots — counted, not placed.

Pure, in-memory. A ``ConsumableResource`` has ``total`` units. A job asks for quantities of
some of them (``JobSpec.consumables``) and takes all of them at once when an attempt is
admitted, or waits (``Runnable``, reason ``ConsumableResourceUnavailable``, the message
naming the resource). REPLENISHABLE units come back when the attempt ends (or is rolled
back); NON_REPLENISHABLE units are used up — they come back only when the admission itself
is rolled back (its Kubernetes Job could not be created).

Restart safety: held REPLENISHABLE units are counted again from the Starting/Running attempts
the cache restores; the used-up NON_REPLENISHABLE count is read back from the resource's
status (the operator writes it *before* creating the Jobs that use it, so it never
under-counts). A change of ``total`` applies at the next cycle; lowering it below what is in
use takes nothing back, new jobs just wait. A deleted resource keeps counting the units its
running attempts hold (a re-created one starts from them) and its jobs wait until it is back.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping

from kubatch.core.model import ConsumableResource, ResourceType

Needs = tuple[tuple[str, int], ...]
"""(resource name, quantity) pairs a job asks for."""


class Pool:
    """One resource: its spec and what is held (replenishable) or used up (not)."""

    __slots__ = ("consumed", "deleted", "in_use", "spec")

    def __init__(self, spec: ConsumableResource) -> None:
        self.spec = spec
        self.in_use = 0  # REPLENISHABLE units held by Starting/Running attempts
        self.consumed = spec.consumed  # NON_REPLENISHABLE units used up
        self.deleted = False

    @property
    def replenishable(self) -> bool:
        return self.spec.type is ResourceType.REPLENISHABLE

    def used(self) -> int:
        """In use (replenishable) or used up (non-replenishable): AWS ``inUseQuantity``."""
        return self.in_use + self.consumed

    def available(self) -> int:
        """AWS ``availableQuantity`` (0 while more than ``total`` is in use)."""
        return max(0, self.spec.total - self.used())


class ConsumableBook:
    """Every consumable resource the cache knows, by name."""

    __slots__ = ("pools",)

    def __init__(self) -> None:
        self.pools: dict[str, Pool] = {}

    def __bool__(self) -> bool:
        return bool(self.pools)

    def upsert(self, spec: ConsumableResource) -> None:
        """A resource was created or changed (``total`` applies at once)."""
        pool = self.pools.get(spec.name)
        if pool is None:
            self.pools[spec.name] = Pool(spec)
            return
        pool.spec = spec
        pool.deleted = False
        pool.consumed = max(pool.consumed, spec.consumed)

    def remove(self, name: str) -> None:
        """A resource was deleted: jobs needing it wait; units held stay counted."""
        pool = self.pools.get(name)
        if pool is None:
            return
        pool.deleted = True
        pool.consumed = 0
        if not pool.in_use:
            del self.pools[name]

    def take(self, needs: Needs) -> None:
        """An attempt needing ``needs`` was admitted."""
        for name, qty in needs:
            pool = self.pools.get(name)
            if pool is None:  # admitted without it (it vanished meanwhile): count it anyway
                pool = self.pools[name] = Pool(ConsumableResource(name, 0))
                pool.deleted = True
            if pool.replenishable:
                pool.in_use += qty
            else:
                pool.consumed += qty

    def hold(self, needs: Needs) -> None:
        """After a restart: a restored Starting/Running attempt holds its replenishable units
        again (used-up units are already in the count read from the resource's status)."""
        for name, qty in needs:
            pool = self.pools.get(name)
            if pool is None:
                pool = self.pools[name] = Pool(ConsumableResource(name, 0))
                pool.deleted = True
            if pool.replenishable:
                pool.in_use += qty

    def release(self, needs: Needs, *, rolled_back: bool = False) -> None:
        """An attempt ended: its replenishable units come back (every unit when its admission
        was rolled back)."""
        for name, qty in needs:
            pool = self.pools.get(name)
            if pool is None:
                continue
            if pool.replenishable:
                pool.in_use = max(0, pool.in_use - qty)
            elif rolled_back:
                pool.consumed = max(0, pool.consumed - qty)
            if pool.deleted and not pool.in_use:
                del self.pools[name]

    def room(self) -> dict[str, int]:
        """A per-cycle copy of what each existing resource has available."""
        return {n: p.available() for n, p in self.pools.items() if not p.deleted}

    def usage(self, name: str) -> tuple[int, int] | None:
        """``(inUseQuantity, availableQuantity)`` of a resource (``None``: unknown)."""
        pool = self.pools.get(name)
        if pool is None or pool.deleted:
            return None
        return pool.used(), pool.available()

    def total_needed(self, name: str) -> int:
        pool = self.pools.get(name)
        return 0 if pool is None else pool.spec.total


def shortfall(needs: Needs, room: Mapping[str, int]) -> tuple[str, int, int | None] | None:
    """Pure: the first resource of ``needs`` that ``room`` cannot give now, as ``(name, needed,
    available or None when the resource does not exist)``; ``None`` when all can be taken."""
    for name, qty in needs:
        have = room.get(name)
        if have is None or have < qty:
            return name, qty, have
    return None


def spend(needs: Needs, room: MutableMapping[str, int]) -> None:
    """Take ``needs`` from a per-cycle ``room`` (after ``shortfall`` said it fits)."""
    for name, qty in needs:
        room[name] -= qty


def wait_message(short: tuple[str, int, int | None], total: int) -> str:
    """Pure: why a job waits for a consumable resource, naming it."""
    name, qty, have = short
    if have is None:
        return f"waiting for consumable resource {name}: it does not exist (yet)"
    return f"waiting for consumable resource {name}: needs {qty}, {have} of {total} available"
