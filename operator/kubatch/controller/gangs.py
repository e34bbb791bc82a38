"""The nodes of multi-node parallel jobs: one Kubernetes Job per node and attempt.

The core admits a multi-node job as ONE attempt holding every node's capacity
(``kubatch.core.gang``). Here the attempt becomes Kubernetes objects and back, as AWS runs one:

- the main node's Job is created at admission (``Effects``); once its pod has an IP, the other
  nodes' Jobs are created with it in ``AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS`` (no
  cluster DNS is needed: on the local plane there is none — SEMANTICS §8);
- the attempt *starts* (Running, its timeout counting) when every node's pod has run;
- the main node's exit decides the attempt, and the other nodes are stopped then; another
  node's exit changes nothing (AWS); a node that is lost (its pod disrupted, deleted, its node
  reclaimed) interrupts the whole attempt — the interruption budget counts it and the next
  attempt restarts every node;
- ``status.nodes`` shows each node of the current attempt (its Job, pod, node, IP, phase,
  exit code).

Restart safety: node Jobs have deterministic names, so a restarted operator re-creates only
what is missing (``409 AlreadyExists`` is the same node) and reads each node's pod back.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from kubatch.adapters.kube import JOBS, ApiError
from kubatch.adapters.protocol import KubeApi
from kubatch.api.multinode import NodePropertiesRevision, NodeStatus
from kubatch.api.resolve import node_template
from kubatch.controller import convert
from kubatch.controller.effects import bounded
from kubatch.controller.records import JobBook, JobRecord
from kubatch.core.cache import Cache
from kubatch.core.gang import node_job_name
from kubatch.core.lifecycle import Phase
from kubatch.render.job import AttemptRef, Placement, build_job

if TYPE_CHECKING:
    from kubatch.controller.attempts import Attempts

log = logging.getLogger("kubatch.gangs")
JsonDict = dict[str, Any]
RAN = ("Running", "Succeeded", "Failed")


@dataclass(slots=True)
class NodeState:
    """What is known of one node's pod in the current attempt."""

    pod: str = ""
    node: str | None = None
    ip: str | None = None
    phase: str | None = None
    exit_code: int | None = None
    reason: str | None = None
    ran_at: float | None = None


@dataclass(slots=True)
class GangAttempt:
    """The current attempt of a multi-node job."""

    attempt: int
    ce: str
    num_nodes: int
    main: int
    created: set[int] = field(default_factory=set)
    main_ip: str | None = None
    nodes: dict[int, NodeState] = field(default_factory=dict)
    started: bool = False
    ended: bool = False


def nodes_of(rec: JobRecord) -> NodePropertiesRevision:
    """The record's resolved nodes (a multi-node job's)."""
    return NodePropertiesRevision.model_validate_json(rec.nodes_json)


class Gangs:
    """Runs the nodes of multi-node jobs (one instance per operator)."""

    def __init__(
        self,
        cache: Cache,
        jobs: JobBook,
        attempts: Attempts,
        *,
        kube: KubeApi,
        placement: Callable[[str], Placement],
        deadline_grace: int,
        clock: Callable[[], float],
        poke: Callable[[], None],
    ) -> None:
        self.cache = cache
        self.jobs = jobs
        self.attempts = attempts
        self.kube = kube
        self.placement = placement
        self.deadline_grace = deadline_grace
        self.clock = clock
        self.poke = poke
        self.live: dict[str, GangAttempt] = {}  # BatchJob key -> its current attempt

    # ------------------------------------------------------------------ manifests

    def manifest(
        self, rec: JobRecord, attempt: int, ce: str, node: int, main_ip: str | None
    ) -> JsonDict:
        """The Kubernetes Job of node ``node`` of an attempt (pure but for the record)."""
        nodes = nodes_of(rec)
        ref = AttemptRef(
            rec.namespace, rec.name, rec.uid, rec.queue, attempt,
            node=node, num_nodes=nodes.num_nodes, main_node=nodes.main_node, main_ip=main_ip,
        )  # fmt: skip
        return build_job(
            name=node_job_name(rec.name, rec.uid, node, attempt),
            ref=ref,
            placement=self.placement(ce),
            pod_template=node_template(nodes, node),
            timeout_seconds=rec.timeout_seconds,
            deadline_grace=self.deadline_grace,
        )

    def main_manifest(self, rec: JobRecord, attempt: int, ce: str) -> JsonDict:
        """The main node's Job: created at admission (the others once it has an IP)."""
        return self.manifest(rec, attempt, ce, nodes_of(rec).main_node, None)

    def admitted(self, rec: JobRecord, attempt: int, ce: str) -> None:
        """The main node's Job of a new attempt exists: follow the attempt."""
        nodes = nodes_of(rec)
        ga = GangAttempt(attempt, ce, nodes.num_nodes, nodes.main_node, {nodes.main_node})
        self.live[rec.key] = ga
        self._stage(rec, ga)

    # ------------------------------------------------------------------ watch events

    def _current(self, rec: JobRecord, lab: convert.AttemptLabels) -> GangAttempt | None:
        if not self.cache.is_active(rec.key, None, lab.attempt) or not rec.nodes_json:
            return None
        ga = self.live.get(rec.key)
        if ga is None or ga.attempt != lab.attempt:  # first seen after a restart
            nodes = nodes_of(rec)
            view = self.cache.job(rec.key)
            ga = GangAttempt(lab.attempt, lab.compute_environment, nodes.num_nodes,
                             nodes.main_node)  # fmt: skip
            ga.started = view is not None and view.phase is Phase.RUNNING
            self.live[rec.key] = ga
        return ga

    def on_job(self, rec: JobRecord, lab: convert.AttemptLabels, deleted: bool) -> bool:
        """A node's Job: remember it exists. Returns whether it is another node than the main
        one (whose Job's verdict never decides the attempt)."""
        if lab.node is None:
            return False
        ga = self._current(rec, lab)
        if ga is None:
            return True
        if deleted:
            ga.created.discard(lab.node)
        else:
            ga.created.add(lab.node)
        return lab.node != ga.main

    def on_pod(
        self, rec: JobRecord, lab: convert.AttemptLabels, body: Mapping[str, Any], deleted: bool
    ) -> None:
        """A node's pod changed: node status, the main node's IP, the gang's start, the
        attempt's end (main node exited, or a node lost)."""
        ga = self._current(rec, lab)
        if ga is None or ga.ended or lab.node is None:
            return
        i = lab.node
        st = ga.nodes.setdefault(i, NodeState())
        status = body.get("status") or {}
        st.pod = str((body.get("metadata") or {}).get("name", "")) or st.pod
        st.node = (body.get("spec") or {}).get("nodeName") or st.node
        st.ip = status.get("podIP") or st.ip
        phase = status.get("phase") or "Pending"
        st.phase = phase
        now = self.clock()
        if i == ga.main and st.ip and ga.main_ip is None:
            ga.main_ip = st.ip
            self.poke()  # the other nodes' Jobs can be created
        if phase in RAN and st.ran_at is None:
            st.ran_at = convert.pod_started_at(body) or now
        if (
            not ga.started
            and len(ga.nodes) == ga.num_nodes
            and all(n.ran_at is not None for n in ga.nodes.values())
        ):
            ga.started = True
            main = ga.nodes[ga.main]
            at = max(n.ran_at or now for n in ga.nodes.values())
            self.attempts.started(rec, replace(lab, node=ga.main), at, main.pod, main.node)
        if phase in ("Succeeded", "Failed"):
            out = convert.pod_outcome(body)
            st.exit_code, st.reason = out.exit_code, out.reason
            if out.interrupted or i == ga.main:
                if i != ga.main:
                    why = out.status_reason or "its pod was disrupted"
                    out = replace(out, status_reason=f"node {i} lost: {why}")
                self._stage(rec, ga)
                self.attempts.finish(rec, lab, out, st.pod, st.node,
                                     timed_out=out.reason == "DeadlineExceeded")  # fmt: skip
                self.end(rec, ga)
                return
        elif deleted:
            st.phase = "Deleted"
            # A node's pod vanished: the node is lost (``Attempts`` asks its Job why).
            self.attempts.vanished.append((rec.key, lab, st.pod, st.node))
            self.poke()
        self._stage(rec, ga)

    def end(self, rec: JobRecord, ga: GangAttempt) -> None:
        """The attempt ended: its other nodes are stopped (``settle``)."""
        ga.ended = True
        self.poke()

    # ------------------------------------------------------------------ the loop's writes

    async def settle(self) -> None:
        """Each cycle: create the other nodes' Jobs once the main node has an IP; stop the
        nodes of ended attempts."""
        work = []
        for key, ga in list(self.live.items()):
            rec = self.jobs.get(key)
            if rec is None:
                del self.live[key]
                continue
            if ga.ended or not self.cache.is_active(key, None, ga.attempt):
                del self.live[key]
                work.append(self._stop_rest(rec, ga))
            elif ga.main_ip is not None and len(ga.created) < ga.num_nodes:
                for i in range(ga.num_nodes):
                    if i not in ga.created:
                        work.append(self._create(rec, ga, i))
        if work:
            await bounded(work, 16)

    async def _create(self, rec: JobRecord, ga: GangAttempt, node: int) -> None:
        body = self.manifest(rec, ga.attempt, ga.ce, node, ga.main_ip)
        try:
            await self.kube.create(JOBS, body, namespace=rec.namespace)
        except ApiError as exc:
            if not exc.conflict:
                log.warning("node %s of %s: Job not created: %s", node, rec.key, exc)
                return  # tried again next cycle; the gang's start timer bounds it
        except (OSError, TimeoutError) as exc:
            log.warning("node %s of %s: Job not created: %s", node, rec.key, exc)
            return
        ga.created.add(node)
        self._stage(rec, ga)

    async def _stop_rest(self, rec: JobRecord, ga: GangAttempt) -> None:
        """The attempt ended: delete the Jobs of nodes still running (those that ended stay
        for the retention, like any ended attempt's Job)."""
        ended = self.attempts.ended.setdefault(rec.key, {})
        now = self.clock()
        for i in sorted(ga.created | set(ga.nodes)):
            name = node_job_name(rec.name, rec.uid, i, ga.attempt)
            st = ga.nodes.get(i)
            if st is not None and st.phase in ("Succeeded", "Failed"):
                ended.setdefault(name, now)
                continue
            with contextlib.suppress(ApiError, OSError, TimeoutError):
                await self.kube.delete(JOBS, name, namespace=rec.namespace)

    async def delete_all(self, rec: JobRecord, attempt: int, *, foreground: bool = False) -> None:
        """Stop every node of an attempt (terminate, timeout, preemption, release);
        ``foreground``: each Job goes only once its pod has ended."""
        ga = self.live.get(rec.key)
        if ga is not None and ga.attempt == attempt:
            indices = sorted(ga.created | {ga.main})
        else:
            indices = list(range(nodes_of(rec).num_nodes))
        work = [self._delete(rec, node_job_name(rec.name, rec.uid, i, attempt), foreground)
                for i in indices]  # fmt: skip
        await bounded(work, 16)

    async def _delete(self, rec: JobRecord, name: str, foreground: bool) -> None:
        with contextlib.suppress(ApiError, OSError, TimeoutError):
            await self.kube.delete(JOBS, name, namespace=rec.namespace, background=not foreground)

    # ------------------------------------------------------------------ status

    def _stage(self, rec: JobRecord, ga: GangAttempt) -> None:
        """``status.nodes``: every node of the current attempt with a Job (coalesced)."""
        out = []
        for i in sorted(ga.created | set(ga.nodes)):
            st = ga.nodes.get(i) or NodeState()
            node = NodeStatus(
                index=i, main=i == ga.main,
                job_name=node_job_name(rec.name, rec.uid, i, ga.attempt),
                pod_name=st.pod or None, node_name=st.node, pod_ip=st.ip,
                phase=st.phase or "Pending", exit_code=st.exit_code, reason=st.reason,
            )  # fmt: skip
            out.append(node.model_dump(mode="json", by_alias=True, exclude_none=True))
        self.jobs.stage(rec, {"nodes": out})
