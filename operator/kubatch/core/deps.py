"""Dependencies between BatchJobs: what the cache does when a job it names becomes known or
finishes, and cycles.

Pure, in-memory; the dependency half of ``kubatch.core.cache`` (these functions take the
cache whose records they change; the graph itself is ``kubatch.core.graph``). A dependency
that can no longer be satisfied fails the dependent (``DependencyFailed``), transitively; a
cycle fails every member (``DependencyCycle``); N_TO_N edges are settled per child
(``kubatch.core.arrays``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kubatch.core import arrays
from kubatch.core.graph import satisfies
from kubatch.core.lifecycle import Phase, Reason
from kubatch.core.model import Dependency, DependencyType, JobSpec
from kubatch.core.state import JobState

if TYPE_CHECKING:
    from kubatch.core.cache import Cache


def propagate(cache: Cache, job: JobState, now: float) -> None:
    """``job`` became terminal: settle the edges of its dependents (reverse index)."""
    for dependent_key, dep in cache.graph.dependents(job.key):
        d = cache.jobs.get(dependent_key)
        if d is None or d.phase.terminal or dep.type is DependencyType.N_TO_N:
            continue  # N_TO_N edges are settled per child
        if satisfies(dep.condition, job.phase):
            edge_satisfied(cache, d, now)
        else:
            msg = f"dependency {job.spec.name} is {job.phase} (needs {dep.condition})"
            cache.fail(d, Reason.DEPENDENCY_FAILED, msg, now)


def in_cycle(cache: Cache, job: JobState) -> bool:
    """Fail every job on a dependency cycle through the new ``job``."""

    def lookup(key: str) -> JobSpec | None:
        j = cache.jobs.get(key)
        # finished jobs cannot be on a new cycle, except those a cycle already failed
        if j is None or (j.phase.terminal and j.reason is not Reason.DEPENDENCY_CYCLE):
            return None
        return j.spec

    members = cache.graph.cycle_through(job.spec, lookup)
    if members is None:
        return False
    names = ", ".join(sorted(k.split("/", 1)[1] for k in members))
    failing = [cache.jobs[k] for k in sorted(members) if not cache.jobs[k].phase.terminal]
    for member in failing:
        msg = f"dependency cycle between: {names}"
        cache.fail(member, Reason.DEPENDENCY_CYCLE, msg, member.state_since, propagate=False)
    for member in failing:
        propagate(cache, member, member.state_since)
    return True


def dependency_known(
    cache: Cache, job: JobState, dep: Dependency, parent: JobState, now: float
) -> None:
    """``parent`` (named by ``dep``) is known: count its edge per child for N_TO_N, and
    settle it at once if ``parent`` already finished."""
    if dep.type is DependencyType.N_TO_N:
        problem = arrays.link_n_to_n(job, dep, parent)
        if problem is not None:
            cache.fail(job, *problem, now)
            return
        edge_satisfied(cache, job, now)
        return
    if parent.phase.terminal:
        if satisfies(dep.condition, parent.phase):
            edge_satisfied(cache, job, now)
        else:
            msg = f"dependency {parent.spec.name} is {parent.phase} (needs {dep.condition})"
            cache.fail(job, Reason.DEPENDENCY_FAILED, msg, now)


def edge_satisfied(cache: Cache, job: JobState, now: float) -> None:
    job.unsatisfied -= 1
    if job.unsatisfied == 0 and job.phase in (Phase.SUBMITTED, Phase.PENDING):
        cache.make_runnable(job, now)
