"""The dependency graph between BatchJobs: edges by name, a reverse index, cycles.

Pure, in-memory. ``dependsOn`` names BatchJobs of the same namespace, possibly not applied yet
(GitOps order): edges are kept by *name* in a reverse index (parent key -> dependents), so a
parent that appears later finds the jobs waiting for it, and releasing dependents costs the
edges touched, not a walk over every job. SEQUENTIAL dependencies are within one array and
have no edge here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

from kubatch.core.lifecycle import Phase
from kubatch.core.model import Condition, Dependency, DependencyType, JobSpec

Edge = tuple[str, Dependency]
"""(dependent key, the dependency as the dependent wrote it)."""


def satisfies(condition: Condition, phase: Phase) -> bool:
    """Pure: whether a finished dependency in ``phase`` satisfies ``condition``."""
    if condition is Condition.COMPLETED:
        return phase.terminal
    if condition is Condition.FAILED:
        return phase is Phase.FAILED
    return phase is Phase.SUCCEEDED


def parents(spec: JobSpec) -> Iterator[tuple[str, Dependency]]:
    """Pure: ``(parent key, dependency)`` of each named dependency of ``spec``."""
    for dep in spec.depends_on:
        if dep.type is not DependencyType.SEQUENTIAL:
            yield f"{spec.namespace}/{dep.job_name}", dep


def is_sequential(spec: JobSpec) -> bool:
    """Pure: an array whose children run one after another."""
    return any(d.type is DependencyType.SEQUENTIAL for d in spec.depends_on)


class DependencyGraph:
    """Reverse index of dependency edges: parent key -> the jobs that wait for it."""

    __slots__ = ("_rdeps",)

    def __init__(self) -> None:
        self._rdeps: dict[str, list[Edge]] = {}

    def link(self, spec: JobSpec) -> int:
        """Record the edges of a new job; returns how many it waits for."""
        n = 0
        for key, dep in parents(spec):
            self._rdeps.setdefault(key, []).append((spec.key, dep))
            n += 1
        return n

    def unlink(self, spec: JobSpec) -> None:
        """Forget the edges of a deleted job (its own dependents keep waiting by name)."""
        for key, _dep in parents(spec):
            lst = self._rdeps.get(key)
            if lst:
                lst[:] = [e for e in lst if e[0] != spec.key]
                if not lst:
                    del self._rdeps[key]

    def dependents(self, key: str) -> Sequence[Edge]:
        """The jobs that name ``key`` (applied or not)."""
        return self._rdeps.get(key, ())

    def has_dependents(self, key: str) -> bool:
        return bool(self._rdeps.get(key))

    def cycle_through(
        self, spec: JobSpec, lookup: Callable[[str], JobSpec | None]
    ) -> set[str] | None:
        """The jobs on a dependency cycle through the new job ``spec``, or ``None``.

        ``lookup`` returns the spec of a job that can still be on a cycle (unfinished, or one
        a cycle already failed), else ``None``. Members are reachable from ``spec`` along
        dependencies *and* reach it back (its dependents, via the reverse index). Cost: the
        ancestors and descendants of ``spec``, not all jobs.
        """
        ancestors: set[str] = set()
        stack = [spec]
        while stack:
            for key, _dep in parents(stack.pop()):
                if key not in ancestors and (parent := lookup(key)) is not None:
                    ancestors.add(key)
                    stack.append(parent)
        if spec.key not in ancestors:
            return None
        members = {spec.key}
        seen = {spec.key}
        keys = [spec.key]
        while keys:
            for dependent_key, _dep in self.dependents(keys.pop()):
                if dependent_key in seen or lookup(dependent_key) is None:
                    continue
                seen.add(dependent_key)
                keys.append(dependent_key)
                if dependent_key in ancestors:
                    members.add(dependent_key)
        return members
