"""The controller in-process on a FakeKube: no control plane, no kopf, a fake clock.

``Harness`` wires an ``Operator`` to a ``FakeKube`` the way the kopf layer does (the four
kinds, nodes and namespaces feed ``intake``; kubatch's own Jobs and pods feed ``attempts``
through the operator's label-selected watches) and plays the parts of the Job controller and
the kubelet on request (``start_pods``, ``finish_pod``).
"""

from __future__ import annotations

import asyncio
import copy
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from kubatch.adapters.fake import FakeKube
from kubatch.adapters.kube import (
    BATCHJOBS,
    COMPUTEENVIRONMENTS,
    CONSUMABLERESOURCES,
    EVENTS,
    JOBDEFINITIONS,
    JOBQUEUES,
    JOBS,
    NAMESPACES,
    NODES,
    PODS,
    Resource,
)
from kubatch.controller.convert import rfc3339
from kubatch.controller.operator import Operator
from kubatch.controller.settings import Settings, Timings
from kubatch.metrics import Metrics

JsonDict = dict[str, Any]
NS = "ns"
KINDS: dict[str, Resource] = {
    "ComputeEnvironment": COMPUTEENVIRONMENTS,
    "JobQueue": JOBQUEUES,
    "JobDefinition": JOBDEFINITIONS,
    "BatchJob": BATCHJOBS,
    "Node": NODES,
    "Namespace": NAMESPACES,
    "ConsumableResource": CONSUMABLERESOURCES,
}
API = "kubatch.io/v1alpha1"


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def make_ce(name: str = "ce", vcpus: int = 8, **spec: Any) -> JsonDict:
    body = {"type": "Managed", "computeResources": {"maxvCpus": vcpus}}
    body.update(spec)
    return {"apiVersion": API, "kind": "ComputeEnvironment", "metadata": {"name": name},
            "spec": body}  # fmt: skip


def make_queue(name: str = "q", ces: tuple[str, ...] = ("ce",), **spec: Any) -> JsonDict:
    order = [{"order": i, "computeEnvironment": c} for i, c in enumerate(ces)]
    body = {"priority": 1, "computeEnvironmentOrder": order, **spec}
    return {"apiVersion": API, "kind": "JobQueue", "metadata": {"name": name}, "spec": body}


def make_definition(name: str = "d", cpu: str | None = "1", mem: str | None = "1Gi",
                    **spec: Any) -> JsonDict:  # fmt: skip
    requests = {k: v for k, v in (("cpu", cpu), ("memory", mem)) if v is not None}
    container: JsonDict = {"name": "main", "image": "busybox", "command": ["true"]}
    if requests:
        container["resources"] = {"requests": requests}
    body = {"template": {"spec": {"containers": [container]}}, **spec}
    return {"apiVersion": API, "kind": "JobDefinition",
            "metadata": {"name": name, "namespace": NS}, "spec": body}  # fmt: skip


def make_job(name: str, queue: str = "q", definition: str = "d", **spec: Any) -> JsonDict:
    body = {"jobQueue": queue, "jobDefinition": definition, **spec}
    return {"apiVersion": API, "kind": "BatchJob", "metadata": {"name": name, "namespace": NS},
            "spec": body}  # fmt: skip


def make_node(name: str, cpu: str = "8", mem: str = "32Gi", ce: str | None = None,
              instance_type: str | None = None, spot: bool = False) -> JsonDict:  # fmt: skip
    labels = {}
    if ce:
        labels["kubatch.io/compute-environment"] = ce
    if instance_type:
        labels["node.kubernetes.io/instance-type"] = instance_type
    labels["kubatch.io/capacity-type"] = "spot" if spot else "on-demand"
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": labels},
        "spec": {},
        "status": {
            "allocatable": {"cpu": cpu, "memory": mem, "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }


class Harness:
    def __init__(self, settings: Settings | None = None, **kube: Any) -> None:
        self.clock = Clock()
        self.kube = FakeKube(clock=lambda: rfc3339(self.clock.now), **kube)
        self.metrics = Metrics()
        # Phase by phase: a Starting status is written at once (the hold that saves a write
        # when the pod runs promptly has its own tests, test_writes.py).
        self.settings = settings or Settings(timings=Timings(starting_hold=0.0))
        self.op = self._operator()
        self.tasks: list[asyncio.Task[None]] = []
        self._pod_seq = 0

    def _operator(self) -> Operator:
        return Operator(self.kube, self.settings, self.metrics, clock=self.clock)

    async def start(self) -> None:
        """Rebuild from the fake cluster, then follow it (as after a real start)."""
        await self.op.rebuild()
        intake = self.op.intake
        handlers: list[tuple[Resource, Callable[..., None]]] = [
            (COMPUTEENVIRONMENTS, intake.on_compute_environment),
            (JOBQUEUES, intake.on_job_queue),
            (JOBDEFINITIONS, intake.on_job_definition),
            (BATCHJOBS, intake.on_batch_job),
            (NODES, intake.on_node),
            (NAMESPACES, intake.on_namespace),
            (CONSUMABLERESOURCES, intake.on_consumable_resource),
        ]
        for res, handler in handlers:
            self.kube.subscribe(res, lambda kind, obj, h=handler: h(obj, deleted=kind == "DELETED"))
        self.tasks = self.op.owned_watches()
        await asyncio.sleep(0)

    async def stop(self) -> None:
        for t in self.tasks:
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self.kube._watchers.clear()

    async def restart(self) -> None:
        """SIGKILL and start again: a new operator rebuilds from the cluster alone."""
        await self.stop()
        self.metrics = Metrics()
        self.op = self._operator()
        await self.start()

    def apply(self, *objs: JsonDict) -> None:
        for o in objs:
            self.kube.put(KINDS[o["kind"]], copy.deepcopy(o))

    def delete(self, kind: str, name: str, namespace: str | None = NS) -> None:
        res = KINDS[kind]
        self.kube.remove(res, name, namespace if res.namespaced else None)

    async def cycle(self, n: int = 1, advance: float = 1.0) -> None:
        for _ in range(n):
            self.clock.now += advance
            await self.op.loop.cycle()

    def status(self, name: str) -> JsonDict:
        obj = self.kube.get_object(BATCHJOBS, name, NS)
        assert obj is not None, name
        st: JsonDict = obj.get("status") or {}
        return st

    def obj_status(self, kind: str, name: str, ns: str | None = None) -> JsonDict:
        obj = self.kube.get_object(KINDS[kind], name, ns)
        assert obj is not None, name
        st: JsonDict = obj.get("status") or {}
        return st

    def k8s_jobs(self) -> list[JsonDict]:
        return self.kube.all(JOBS, NS)

    def pods(self) -> list[JsonDict]:
        return self.kube.all(PODS, NS)

    def start_pods(self, node: str = "node-1", phase: str = "Running") -> list[str]:
        """The Job controller and the kubelet: a running pod for each Job without one."""
        have = {p["metadata"]["labels"].get("job-name") for p in self.pods()}
        started = []
        for job in self.k8s_jobs():
            name = job["metadata"]["name"]
            if name in have:
                continue
            tmpl = job["spec"]["template"]
            self._pod_seq += 1
            labels = {**tmpl["metadata"]["labels"], "job-name": name}
            now = rfc3339(self.clock.now)
            pod = {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": f"{name}-p{self._pod_seq}", "namespace": NS,
                             "labels": labels,
                             "ownerReferences": [{"uid": job["metadata"]["uid"]}]},
                "spec": {**copy.deepcopy(tmpl["spec"]), "nodeName": node},
                "status": {"phase": phase, "startTime": now, "containerStatuses": [
                    {"name": "main", "state": {"running": {"startedAt": now}}}]},
            }  # fmt: skip
            self.kube.put(PODS, pod)
            started.append(name)
        return started

    def pod_of(self, job_name: str) -> JsonDict:
        for p in self.pods():
            if p["metadata"]["labels"].get("job-name") == job_name:
                return p
        raise AssertionError(f"no pod for Job {job_name}")

    def finish_pod(self, job_name: str, exit_code: int = 0, reason: str | None = None,
                   run_seconds: float = 10.0) -> None:  # fmt: skip
        pod = self.pod_of(job_name)
        started = rfc3339(self.clock.now - run_seconds)
        term = {"exitCode": exit_code, "startedAt": started, "finishedAt": rfc3339(self.clock.now),
                "reason": reason or ("Completed" if exit_code == 0 else "Error")}  # fmt: skip
        pod["status"] = {
            "phase": "Succeeded" if exit_code == 0 else "Failed",
            "startTime": started,
            "containerStatuses": [{"name": "main", "state": {"terminated": term}}],
        }
        self.kube.put(PODS, pod)

    def job_name(self, name: str, attempt: int = 1, index: int | None = None) -> str:
        for j in self.k8s_jobs():
            labels = j["metadata"]["labels"]
            if (
                labels.get("kubatch.io/batchjob") == name
                and labels.get("kubatch.io/attempt") == str(attempt)
                and labels.get("kubatch.io/array-index") == (None if index is None else str(index))
            ):
                return str(j["metadata"]["name"])
        raise AssertionError(f"no Kubernetes Job for {name} attempt {attempt}")

    def writes(self, name: str) -> Counter[str]:
        """Writes the operator made that concern BatchJob ``name``: its status patches and
        the creates of its Kubernetes Jobs (Events counted apart)."""
        out: Counter[str] = Counter()
        for w in self.kube.writes:
            if w.resource == "batchjobs/status" and w.name == name:
                out["status"] += 1
            elif (
                w.resource == "jobs"
                and w.verb == "create"
                and (w.body or {}).get("metadata", {}).get("labels", {}).get("kubatch.io/batchjob")
                == name
            ):
                out["create"] += 1
            elif (
                w.resource == "events"
                and (w.body or {}).get("involvedObject", {}).get("name") == name
            ):
                out["event"] += 1
        return out

    def events(self, reason: str | None = None) -> list[JsonDict]:
        return [e for e in self.kube.all(EVENTS) if reason in (None, e.get("reason"))]

    def handler_errors(self) -> float:
        total = 0.0
        for family in self.metrics.registry.collect():
            if family.name == "kubatch_handler_errors":
                total += sum(s.value for s in family.samples if s.name.endswith("_total"))
        return total


@pytest.fixture
async def h() -> AsyncIterator[Harness]:
    harness = Harness()
    await harness.start()
    try:
        yield harness
    finally:
        await harness.stop()


def basic(h: Harness, vcpus: int = 8) -> None:
    """A CE, a queue and a definition ``d`` (1 vCPU, 1Gi)."""
    h.apply(make_ce(vcpus=vcpus), make_queue(), make_definition())
