"""Consumable resources on the cluster: their status, written ahead where a restart needs it.

``status.inUseQuantity`` and ``status.availableQuantity`` (AWS's names) and a ``Ready``
condition are published with the other objects' status (when they change). For a
NON_REPLENISHABLE resource the status is also the memory of what was used up: the cache counts
it again from there after a restart. So an admission that uses such units has the resource's
status written *before* its Kubernetes Job is created (one patch per resource per cycle, only
for cycles that use one); if that write fails the admission is rolled back. A restart can then
only over-count used-up units (an admission recorded but not carried out), never under-count
them: consumable resources are never over-allocated.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from kubatch.adapters.kube import CONSUMABLERESOURCES, ApiError
from kubatch.adapters.protocol import KubeApi
from kubatch.controller import convert
from kubatch.controller import status as st
from kubatch.controller.registry import Registry
from kubatch.core.cache import Cache
from kubatch.core.decisions import Admit
from kubatch.metrics import Metrics

log = logging.getLogger("kubatch.consumables")
JsonDict = dict[str, Any]


class Consumables:
    """Writes the status of ConsumableResources."""

    def __init__(
        self,
        cache: Cache,
        registry: Registry,
        *,
        kube: KubeApi,
        metrics: Metrics | None,
        clock: Callable[[], float],
    ) -> None:
        self.cache = cache
        self.registry = registry
        self.kube = kube
        self.metrics = metrics
        self.clock = clock
        self.written: dict[str, JsonDict] = {}

    def status(self, name: str, now_iso: str) -> JsonDict | None:
        """The resource's status now (``None``: not a resource the cache knows)."""
        res = self.registry.consumables.get(name)
        usage = self.cache.consumables.usage(name)
        if res is None or usage is None:
            return None
        in_use, available = usage
        gen = res.metadata.generation
        prev = (self.written.get(name) or {}).get("conditions") or []
        message = f"{in_use} of {res.spec.total_quantity} in use"
        return {
            "inUseQuantity": in_use,
            "availableQuantity": available,
            "observedGeneration": gen,
            "conditions": st.ready_conditions(True, "Valid", message, gen, now_iso, prev),
        }

    async def write_ahead(self, admits: list[Admit]) -> list[Admit]:
        """Record the used-up units of this cycle's admissions before their Jobs exist;
        returns the admissions that may go on (the others are rolled back)."""
        names: set[str] = set()
        for d in admits:
            job = self.cache.job(d.job_key)
            for name, _ in job.spec.consumables if job is not None else ():
                pool = self.cache.consumables.pools.get(name)
                if pool is not None and not pool.replenishable:
                    names.add(name)
        if not names:
            return admits
        failed = {n for n in sorted(names) if not await self._write(n, force=True)}
        if not failed:
            return admits
        keep = []
        for d in admits:
            job = self.cache.job(d.job_key)
            if job is not None and any(n in failed for n, _ in job.spec.consumables):
                self.cache.forget(d, self.clock())
            else:
                keep.append(d)
        return keep

    async def publish(self) -> None:
        """Every resource's status (written when it changed) and gauges."""
        for name in [n for n in self.written if n not in self.registry.consumables]:
            self.forget(name)  # deleted
        for name, res in list(self.registry.consumables.items()):
            await self._write(name)
            usage = self.cache.consumables.usage(name)
            if self.metrics is not None and usage is not None:
                self.metrics.set_consumable(name, res.spec.total_quantity, *usage)

    async def _write(self, name: str, *, force: bool = False) -> bool:
        status = self.status(name, convert.rfc3339(self.clock()))
        if status is None:
            return True
        prev = self.written.get(name)
        if prev is not None and st.same_object_status(status, prev) and not force:
            return True
        try:
            await self.kube.patch(CONSUMABLERESOURCES, name, {"status": status}, status=True)
        except (ApiError, OSError, TimeoutError) as exc:
            log.warning("status of consumable resource %s not written: %s", name, exc)
            return False
        self.written[name] = status
        return True

    def forget(self, name: str) -> None:
        self.written.pop(name, None)
        if self.metrics is not None:
            self.metrics.remove_consumable(name)
