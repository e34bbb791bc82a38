"""Per-compute-environment capacity ledger with assume/forget.

Pure (in-memory state only). The ledger counts the resources of Starting + Running attempts
admitted to a CE; admission requires ``used + size <= limit`` in every dimension, where the
limit is min(maxvCpus, node capacity) (see ``ComputeEnvironment.limit``).
"""

from __future__ import annotations

from kubatch.core.model import ComputeEnvironment
from kubatch.core.resources import Resources


class Ledger:
    """Mutable usage of one CE. ``assume`` adds an admission, ``forget`` removes it."""

    __slots__ = ("ce", "gpu", "limit", "mcpu", "memory")

    def __init__(self, ce: ComputeEnvironment) -> None:
        self.ce = ce
        self.limit = ce.limit()
        self.mcpu = 0
        self.memory = 0
        self.gpu = 0

    def update(self, ce: ComputeEnvironment) -> None:
        """A new spec or node capacity: usage stays, the limit changes."""
        self.ce = ce
        self.limit = ce.limit()

    def used(self) -> Resources:
        return Resources(self.mcpu, self.memory, self.gpu)

    def free(self) -> list[int]:
        """A mutable copy ``[mcpu, memory, gpu]`` of the free room (may be negative when a
        limit shrank below usage)."""
        lim = self.limit
        return [lim.mcpu - self.mcpu, lim.memory - self.memory, lim.gpu - self.gpu]

    def fits(self, size: Resources) -> bool:
        lim = self.limit
        return (
            self.mcpu + size.mcpu <= lim.mcpu
            and self.memory + size.memory <= lim.memory
            and self.gpu + size.gpu <= lim.gpu
        )

    def assume(self, size: Resources) -> None:
        self.mcpu += size.mcpu
        self.memory += size.memory
        self.gpu += size.gpu

    def forget(self, size: Resources) -> None:
        self.mcpu -= size.mcpu
        self.memory -= size.memory
        self.gpu -= size.gpu


def fits_free(free: list[int], size: Resources) -> bool:
    """Pure: ``size`` fits in a ``[mcpu, memory, gpu]`` free vector."""
    return size.mcpu <= free[0] and size.memory <= free[1] and size.gpu <= free[2]
