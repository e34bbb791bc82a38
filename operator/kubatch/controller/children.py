"""Array children you can see: a compact record per array, outside the parent's status.

The parent's status stays bounded (SEMANTICS §4: counts per phase only), so what each child
did — its phase, attempts, last exit code and reason, node, compute environment — is kept in
ConfigMaps owned by the BatchJob, 1,000 children each (``<name>-children-<k>``, one text row
per child). They survive the retention of Kubernetes Jobs and pods and an operator restart
(the rebuild restores finished children from them, so none runs twice), are deleted with the
BatchJob, and are what ``kubectl batch ls --array`` and ``why JOB:7`` read.

Writes are coalesced: a chunk is written at most every ``interval`` seconds while its
children change, and at once when the parent finishes.

Memory per child: phase and attempt live in the core (about 12 bytes); here a 4-byte exit
code, 3 bytes of counters and two pointers to interned strings (node, CE) — ~30 bytes — plus
a message only for children that failed or were interrupted.
"""

from __future__ import annotations

import sys
from array import array

from kubatch.api.records import CHUNK, HEADER, NO_EXIT, PHASES, ChildRow, clean
from kubatch.core.snapshot import JobView


class ArrayLog:
    """What the controller keeps per child of one array, beyond the core's phase/attempt."""

    __slots__ = (
        "ces", "dirty", "exit", "hashes", "messages", "nodes", "reasons", "size", "written",
    )  # fmt: skip

    def __init__(self, size: int) -> None:
        self.size = size
        self.exit = array("i", [NO_EXIT]) * size
        self.reasons: list[str | None] = [None] * size
        self.nodes: list[str | None] = [None] * size
        self.ces: list[str | None] = [None] * size
        self.messages: dict[int, str] = {}
        self.dirty: set[int] = set()  # chunks changed since written
        self.written: set[int] = set()  # chunks that exist (create once, then patch)
        self.hashes: dict[int, int] = {}  # chunk -> hash of the text last written

    def touch(self, index: int) -> None:
        self.dirty.add(index // CHUNK)


class Children:
    """The child records of every array the operator knows."""

    def __init__(self, interval: float = 10.0) -> None:
        self.interval = interval
        self.logs: dict[str, ArrayLog] = {}
        self.flushed_at: dict[str, float] = {}

    def log(self, key: str, size: int) -> ArrayLog:
        entry = self.logs.get(key)
        if entry is None or entry.size != size:
            entry = self.logs[key] = ArrayLog(size)
        return entry

    def forget(self, key: str) -> None:
        self.logs.pop(key, None)
        self.flushed_at.pop(key, None)

    def started(self, key: str, size: int, index: int, node: str | None, ce: str) -> None:
        entry = self.log(key, size)
        entry.nodes[index] = sys.intern(node) if node else None
        entry.ces[index] = sys.intern(ce) if ce else None
        entry.touch(index)

    def ended(
        self,
        key: str,
        size: int,
        index: int,
        *,
        exit_code: int | None,
        reason: str | None,
        message: str | None,
        node: str | None,
        ce: str,
        failed: bool,
    ) -> None:
        entry = self.log(key, size)
        entry.exit[index] = NO_EXIT if exit_code is None else exit_code
        entry.reasons[index] = sys.intern(reason) if reason else None
        if node:
            entry.nodes[index] = sys.intern(node)
        if ce:
            entry.ces[index] = sys.intern(ce)
        if failed and message:
            entry.messages[index] = clean(message)
        else:
            entry.messages.pop(index, None)
        entry.touch(index)

    def changed(self, key: str, size: int) -> None:
        """The core changed children of ``key`` (admitted, retried, settled): every chunk may
        need a write (cheap to compare: unchanged text is not written)."""
        entry = self.log(key, size)
        entry.dirty.update(range((size + CHUNK - 1) // CHUNK))

    def due(self, now: float, final: set[str]) -> list[str]:
        """Arrays whose dirty chunks should be written now (``final``: parents that
        finished, written at once)."""
        out = []
        for key, entry in self.logs.items():
            if not entry.dirty:
                continue
            if key in final or now - self.flushed_at.get(key, -1e18) >= self.interval:
                out.append(key)
        return out

    def render(self, key: str, job: JobView, chunk: int) -> str:
        """The text of one chunk from the core's view of the array and the log."""
        entry = self.logs[key]
        arr = job.array
        assert arr is not None
        lines = [HEADER]
        for i in range(chunk * CHUNK, min(entry.size, (chunk + 1) * CHUNK)):
            code = entry.exit[i]
            lines.append(
                "\t".join(
                    (
                        str(i),
                        str(PHASES[arr.child_phase[i]]),
                        str(arr.child_attempt[i]),
                        str(arr.child_failures[i]),
                        str(arr.child_interruptions[i]),
                        "" if code == NO_EXIT else str(code),
                        entry.reasons[i] or "",
                        entry.nodes[i] or "",
                        entry.ces[i] or "",
                        entry.messages.get(i, ""),
                    )
                )
            )
        return "\n".join(lines) + "\n"

    def restore(self, key: str, size: int, rows: list[ChildRow]) -> None:
        """After a restart: fill the log from a chunk read back."""
        entry = self.log(key, size)
        for row in rows:
            if not 0 <= row.index < size:
                continue
            i = row.index
            entry.exit[i] = NO_EXIT if row.exit_code is None else row.exit_code
            entry.reasons[i] = sys.intern(row.reason) if row.reason else None
            entry.nodes[i] = sys.intern(row.node) if row.node else None
            entry.ces[i] = sys.intern(row.compute_environment) if row.compute_environment else None
            if row.message:
                entry.messages[i] = row.message
            entry.written.add(i // CHUNK)
