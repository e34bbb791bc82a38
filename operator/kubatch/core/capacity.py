"""Per-compute-environment capacity: the ledger of admitted work and the room left.

Pure (in-memory state only). A ledger counts the resources of the Starting + Running attempts
admitted to a CE; admission requires ``used + size <= limit`` in every dimension, where the
limit is min(maxvCpus, node capacity) (see ``ComputeEnvironment.limit``). ``Room`` is the
scheduler's per-cycle copy of what is left.
"""

from __future__ import annotations

from kubatch.core.model import ComputeEnvironment
from kubatch.core.resources import Resources, implicit


class Room:
    """What is left on one CE during one scheduling cycle (a copy; the scheduler spends it).

    ``ext`` holds the extended resources the CE limits (``None``: it limits none of them).
    """

    __slots__ = ("ext", "gpu", "mcpu", "memory")

    def __init__(self, mcpu: int, memory: int, gpu: int, ext: dict[str, int] | None) -> None:
        self.mcpu = mcpu
        self.memory = memory
        self.gpu = gpu
        self.ext = ext

    def fits(self, size: Resources) -> bool:
        """Pure: ``size`` fits in what is left."""
        if size.mcpu > self.mcpu or size.memory > self.memory or size.gpu > self.gpu:
            return False
        ext = self.ext
        if not size.extended or ext is None:
            return True
        return all(v <= ext[k] if k in ext else (v <= 0 or implicit(k)) for k, v in size.extended)

    def take(self, size: Resources) -> None:
        """Spend ``size`` (after ``fits``)."""
        self.mcpu -= size.mcpu
        self.memory -= size.memory
        self.gpu -= size.gpu
        if size.extended and self.ext is not None:
            for k, v in size.extended:
                if k in self.ext:
                    self.ext[k] -= v


class Ledger:
    """Mutable usage of one CE. ``assume`` adds an admission, ``forget`` removes it."""

    __slots__ = ("ce", "ext", "gpu", "limit", "mcpu", "memory")

    def __init__(self, ce: ComputeEnvironment) -> None:
        self.ce = ce
        self.limit = ce.limit()
        self.mcpu = 0
        self.memory = 0
        self.gpu = 0
        self.ext: dict[str, int] = {}

    def update(self, ce: ComputeEnvironment) -> None:
        """A new spec or node capacity: usage stays, the limit changes."""
        self.ce = ce
        self.limit = ce.limit()

    def used(self) -> Resources:
        return Resources(
            self.mcpu,
            self.memory,
            self.gpu,
            tuple(sorted((k, v) for k, v in self.ext.items() if v)),
        )

    def room(self) -> Room:
        """A copy of the room left (may be negative when a limit shrank below usage)."""
        lim = self.limit
        ext = None
        if self.ce.node_capacity is not None:
            ext = {k: v - self.ext.get(k, 0) for k, v in lim.extended}
        return Room(lim.mcpu - self.mcpu, lim.memory - self.memory, lim.gpu - self.gpu, ext)

    def fits(self, size: Resources) -> bool:
        return self.room().fits(size)

    def assume(self, size: Resources) -> None:
        self.mcpu += size.mcpu
        self.memory += size.memory
        self.gpu += size.gpu
        for k, v in size.extended:
            self.ext[k] = self.ext.get(k, 0) + v

    def forget(self, size: Resources) -> None:
        self.mcpu -= size.mcpu
        self.memory -= size.memory
        self.gpu -= size.gpu
        for k, v in size.extended:
            self.ext[k] = self.ext.get(k, 0) - v
