"""Multi-node parallel jobs (gangs): all-or-nothing admission within one CE.

Pure. A gang (``JobSpec.gang``) is admitted as ONE attempt on ONE compute environment: a single
``Admit`` whose resources are every node's requests together (``JobSpec.size``), taken from
that CE's room at once or not at all — so a gang is never partially admitted and no partial
start holds capacity. Each node must fit one node shape of the CE (nodes of one range ask for
the same), and the whole gang must stay within ``maxvCpus``.

Kubernetes 1.20 cannot place pods as a gang, so the attempt *starts* (``attempt_started``)
only when the operator has seen every node's pod run; an attempt still Starting
``start_timeout_seconds`` after its admission is released whole (``Terminate`` with reason
``GangStartTimeout``) and runs again later, counted neither as a failure nor as an
interruption (``kubatch.core.preemption.released_end``). The timer is a state time limit of
the core (``StateTimeLimit.release``) and is armed again after a restart.

Node ``i``'s Kubernetes Job is named like array child ``i`` (a multi-node job cannot be an
array, as on AWS): :func:`node_job_name`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from kubatch.core.fit import CeFit, Fit, QueueFit, ce_fit, no_fit_message
from kubatch.core.lifecycle import Phase
from kubatch.core.model import ComputeEnvironment, Gang, StateTimeLimit, TimeLimitAction
from kubatch.core.naming import job_name_for_attempt


def node_job_name(batchjob_name: str, token: str, node: int, attempt: int) -> str:
    """Pure: the Kubernetes Job name of node ``node`` of an attempt."""
    return job_name_for_attempt(batchjob_name, token, node, attempt)


def start_limit(gang: Gang) -> StateTimeLimit:
    """Pure: the gang's start timer as a state time limit on Starting."""
    return StateTimeLimit(
        Phase.STARTING, gang.start_timeout_seconds, TimeLimitAction.CANCEL, release=True
    )


def gang_ce_fit(gang: Gang, ce: ComputeEnvironment | None, name: str = "") -> CeFit:
    """Pure: can the gang ever run on ``ce``: every node on one of its shapes, all nodes
    within ``maxvCpus``?"""
    if ce is None:
        return CeFit(name, Fit.UNKNOWN, "the compute environment does not exist (yet)")
    total = gang.total()
    if total.mcpu > ce.max_vcpus * 1000:
        return CeFit(
            ce.name,
            Fit.NO,
            f"its {gang.num_nodes} nodes need {total.mcpu / 1000:g} vCPU > maxvCpus {ce.max_vcpus}",
        )
    unknown: CeFit | None = None
    for r in gang.ranges:
        v = ce_fit(r.size, ce, name)
        if v.fit is Fit.NO:
            nodes = f"node {r.first}" if r.count == 1 else f"nodes {r.first}:{r.last}"
            return CeFit(ce.name, Fit.NO, f"{nodes}: {v.why}", v.shape)
        if v.fit is Fit.UNKNOWN:
            unknown = v
    return unknown or CeFit(ce.name, Fit.YES, "")


def gang_queue_fit(gang: Gang, ces: Sequence[tuple[str, ComputeEnvironment | None]]) -> QueueFit:
    """Pure: whether any CE of a queue can ever hold the whole gang (fail fast otherwise)."""
    verdicts = tuple(gang_ce_fit(gang, ce, name) for name, ce in ces)
    if any(v.fit is Fit.YES for v in verdicts):
        return QueueFit(Fit.YES, "", verdicts)
    if not verdicts or any(v.fit is Fit.UNKNOWN for v in verdicts):
        return QueueFit(Fit.UNKNOWN, "", verdicts)
    return QueueFit(Fit.NO, no_fit_message(gang.total(), verdicts), verdicts)


def never_fits(
    gang: Gang, order: Sequence[str], ces: Mapping[str, ComputeEnvironment]
) -> str | None:
    """Pure: why no CE of a queue's ``order`` can ever hold the gang (``None``: some can, or
    cannot tell yet)."""
    verdict = gang_queue_fit(gang, [(n, ces.get(n)) for n in order])
    return verdict.message if verdict.fit is Fit.NO else None


def can_run(gang: Gang, ce: ComputeEnvironment | None) -> bool:
    """Pure: the gang could ever run on ``ce`` (not a NO)."""
    return gang_ce_fit(gang, ce).fit is not Fit.NO
