"""Simulated node pools on the real local control plane (real kube-scheduler, Job controller)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from tests.manifests.kube import batch_v1_job

from kubatch.adapters.kube import COMPUTEENVIRONMENTS
from kubatch.api import labels as L
from kubatch.devkit.polling import eventually_async
from kubatch.sim.cli import main as sim_main
from kubatch.sim.engine import SimConfig, Simulator
from kubatch.timefmt import parse_time

REPO = Path(__file__).resolve().parents[2]
CE_CRD = REPO / "crds" / "kubatch.io_computeenvironments.yaml"
MINIMAL_CE_CRD = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: computeenvironments.kubatch.io}
spec:
  group: kubatch.io
  scope: Cluster
  names: {plural: computeenvironments, singular: computeenvironment, kind: ComputeEnvironment,
          shortNames: [ce]}
  versions:
  - name: v1alpha1
    served: true
    storage: true
    subresources: {status: {}}
    schema:
      openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
"""

Kubectl = Callable[..., Any]


@pytest.fixture(scope="module")
def ce_crd(kubectl: Kubectl) -> None:
    if CE_CRD.exists():
        kubectl("apply", "-f", str(CE_CRD))
    else:
        kubectl("apply", "-f", "-", input=MINIMAL_CE_CRD)
    kubectl("wait", "--for=condition=Established", "crd/computeenvironments.kubatch.io")


async def k(kubectl: Kubectl, *args: str, **kw: Any) -> Any:
    """kubectl off the event loop (the simulator runs on it)."""
    return await asyncio.to_thread(kubectl, *args, **kw)


async def kjson(kubectl: Kubectl, *args: str, **kw: Any) -> Any:
    return json.loads((await k(kubectl, *args, "-o", "json", **kw)).stdout)


def make_ce(name: str, **cr: Any) -> dict[str, Any]:
    return {
        "apiVersion": "kubatch.io/v1alpha1",
        "kind": "ComputeEnvironment",
        "metadata": {"name": name},
        "spec": {"type": "Managed", "state": "Enabled", "computeResources": cr},
    }


SPOT_TOLERATION = {
    "key": L.CAPACITY_TYPE,
    "operator": "Equal",
    "value": L.SPOT,
    "effect": "NoSchedule",
}


def make_job(
    name: str,
    ce: str,
    *,
    cpu: str = "1",
    annotations: dict[str, str] | None = None,
    spot: bool = False,
) -> dict[str, Any]:
    return batch_v1_job(
        name,
        {L.COMPUTE_ENVIRONMENT: ce},
        cpu=cpu,
        memory="256Mi",
        annotations=annotations,
        tolerations=[SPOT_TOLERATION] if spot else [],
    )


async def apply(kubectl: Kubectl, *objs: dict[str, Any], namespace: str | None = None) -> None:
    doc = {"apiVersion": "v1", "kind": "List", "items": list(objs)}
    await k(kubectl, "apply", "-f", "-", input=json.dumps(doc), namespace=namespace)


class ReadyWatch:
    """Samples the sim's nodes every second: every one must be Ready and untainted by the node
    lifecycle controller for the whole test."""

    def __init__(self, kubectl: Kubectl, ces: list[str]) -> None:
        self.kubectl, self.ces = kubectl, ces
        self.bad: list[str] = []
        self.samples = 0
        self.max_vcpus: dict[str, int] = {}
        self.seen: dict[str, dict[str, Any]] = {}
        self._task: asyncio.Task[None] | None = None

    async def sample(self) -> dict[str, int]:
        nodes = (await kjson(self.kubectl, "get", "nodes", "-l", "type=kubatch-sim"))["items"]
        vcpus: dict[str, int] = {}
        for n in nodes:
            ce = n["metadata"]["labels"].get("kubatch.io/compute-environment", "")
            if ce not in self.ces:
                continue
            self.seen[n["metadata"]["name"]] = n
            vcpus[ce] = vcpus.get(ce, 0) + int(n["status"]["capacity"]["cpu"])
            ready = {c["type"]: c["status"] for c in n["status"].get("conditions", [])}
            if ready.get("Ready") != "True":
                self.bad.append(f"{n['metadata']['name']} Ready={ready.get('Ready')}")
            # the TaintNodesByCondition admission plugin puts not-ready on every new node until
            # the node lifecycle controller has seen it Ready: only a lasting taint is a failure
            age = time.time() - (parse_time(n["metadata"]["creationTimestamp"]) or 0.0)
            for t in n["spec"].get("taints") or [] if age > 10 else []:
                if t["key"] in ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"):
                    self.bad.append(f"{n['metadata']['name']} tainted {t['key']}")
        for ce in self.ces:
            self.max_vcpus[ce] = max(self.max_vcpus.get(ce, 0), vcpus.get(ce, 0))
        self.samples += 1
        return vcpus

    async def _loop(self) -> None:
        while True:
            await self.sample()
            await asyncio.sleep(1)

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._loop())

    async def stop(self) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


@pytest.fixture
async def sim(local_plane: Any, ce_crd: None) -> AsyncIterator[Simulator]:
    config = SimConfig(
        provisioning_delay=0.5,
        scale_down_delay=3.0,
        heartbeat_interval=10.0,
        scaling_interval=0.5,
        seed=1,
    )
    s = Simulator(local_plane.kubeconfig, config)
    await s.start()
    try:
        yield s
    finally:
        await s.stop(delete_nodes=True)


def uniq(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


async def pods_of(kubectl: Kubectl, namespace: str) -> list[dict[str, Any]]:
    return (await kjson(kubectl, "get", "pods", namespace=namespace))["items"]


async def delete_ces(kubectl: Kubectl, *names: str) -> None:
    await k(kubectl, "delete", "computeenvironment", *names, "--wait=false", check=False)


async def test_pods_run_on_their_pool_with_declared_exit(
    sim: Simulator, kubectl: Kubectl, namespace: str
) -> None:
    spot, od = uniq("spot"), uniq("od")
    ready = ReadyWatch(kubectl, [spot, od])
    ready.start()
    try:
        await apply(
            kubectl,
            make_ce(spot, capacityType="Spot", maxvCpus=16, instanceTypes=["m5"]),
            make_ce(od, capacityType="OnDemand", maxvCpus=16, instanceTypes=["c5"]),
        )
        await apply(
            kubectl,
            make_job("ok", spot, spot=True),
            make_job("exit3", spot, spot=True, annotations={"sim.kubatch.io/exit-code": "3"}),
            make_job(
                "oom",
                od,
                annotations={"sim.kubatch.io/oom": "true", "sim.kubatch.io/duration": "0.5"},
            ),
            make_job("od-ok", od, cpu="2"),
            namespace=namespace,
        )

        async def finished() -> dict[str, Any] | None:
            jobs = (await kjson(kubectl, "get", "jobs", namespace=namespace))["items"]
            done = {
                j["metadata"]["name"]: j
                for j in jobs
                if any(
                    c["type"] in ("Complete", "Failed") and c["status"] == "True"
                    for c in j.get("status", {}).get("conditions") or []
                )
            }
            return done if len(done) == 4 else None

        jobs = await eventually_async(finished, what="all four Jobs to finish", timeout=90)
        pods = {p["metadata"]["labels"]["job-name"]: p for p in await pods_of(kubectl, namespace)}
        nodes = ready.seen
    finally:
        await ready.stop()
        await delete_ces(kubectl, spot, od)

    # placement: the real kube-scheduler put every pod on a node of its own CE
    for job, ce, cap in [
        ("ok", spot, "spot"),
        ("exit3", spot, "spot"),
        ("oom", od, "on-demand"),
        ("od-ok", od, "on-demand"),
    ]:
        node = nodes[pods[job]["spec"]["nodeName"]]
        labels = node["metadata"]["labels"]
        assert labels["kubatch.io/compute-environment"] == ce
        assert labels["kubatch.io/capacity-type"] == cap
        assert float(node["metadata"]["annotations"]["kubatch.io/price-per-hour"]) > 0
        if cap == "spot":
            assert {
                "key": "kubatch.io/capacity-type",
                "value": "spot",
                "effect": "NoSchedule",
            } in node["spec"]["taints"]
        assert labels["node.kubernetes.io/instance-type"].split(".")[0] == (
            "m5" if ce == spot else "c5"
        )

    def term(job: str) -> dict[str, Any]:
        return pods[job]["status"]["containerStatuses"][0]["state"]["terminated"]

    assert pods["ok"]["status"]["phase"] == "Succeeded"
    assert (term("ok")["exitCode"], term("ok")["reason"]) == (0, "Completed")
    assert pods["exit3"]["status"]["phase"] == "Failed"
    assert (term("exit3")["exitCode"], term("exit3")["reason"]) == (3, "Error")
    assert pods["oom"]["status"]["phase"] == "Failed"
    assert (term("oom")["exitCode"], term("oom")["reason"]) == (137, "OOMKilled")
    for job in pods:
        assert term(job)["startedAt"] <= term(job)["finishedAt"]
        assert pods[job]["status"]["containerStatuses"][0]["containerID"].startswith("containerd")

    def cond(job: str, t: str) -> bool:
        return any(
            c["type"] == t and c["status"] == "True" for c in jobs[job]["status"]["conditions"]
        )

    assert cond("ok", "Complete")
    assert cond("od-ok", "Complete")
    assert cond("exit3", "Failed")  # the Job controller saw a failed pod (backoffLimit 0)
    assert cond("oom", "Failed")
    assert ready.samples >= 2
    assert ready.bad == []
    stats = sim.stats()
    assert stats.pods_succeeded >= 2
    assert stats.pods_failed >= 2


async def test_reclaim_disrupts_exactly_the_pods_on_reclaimed_nodes(
    sim: Simulator, kubectl: Kubectl, namespace: str, local_plane: Any
) -> None:
    spot = uniq("reclaim")
    ready = ReadyWatch(kubectl, [spot])
    await apply(
        kubectl, make_ce(spot, capacityType="Spot", maxvCpus=16, instanceTypes=["m5.large"])
    )
    try:
        # 1.5 vCPU each on 2-vCPU nodes: one pod per node, 6 nodes
        await apply(
            kubectl,
            *[
                make_job(
                    f"long-{i}",
                    spot,
                    cpu="1500m",
                    spot=True,
                    annotations={"sim.kubatch.io/duration": "120"},
                )
                for i in range(6)
            ],
            namespace=namespace,
        )

        async def all_running() -> list[dict[str, Any]] | None:
            pods = await pods_of(kubectl, namespace)
            running = [p for p in pods if p["status"].get("phase") == "Running"]
            return pods if len(running) == 6 else None

        await eventually_async(all_running, what="six running pods", timeout=60)
        await ready.sample()
        chosen = await sim.reclaim(spot, 0.34)
        assert len(chosen) == 3

        async def settled() -> list[dict[str, Any]] | None:
            pods = await pods_of(kubectl, namespace)
            failed = [p for p in pods if p["status"].get("phase") == "Failed"]
            return pods if len(failed) >= 3 else None

        pods = await eventually_async(settled, what="three disrupted pods", timeout=30)
        await asyncio.sleep(1)
        pods = await pods_of(kubectl, namespace)
        on_reclaimed = [p for p in pods if p["spec"]["nodeName"] in chosen]
        others = [p for p in pods if p["spec"]["nodeName"] not in chosen]
        assert len(on_reclaimed) == 3
        for p in on_reclaimed:
            st = p["status"]
            assert st["phase"] == "Failed"
            assert st["reason"] == "Terminated"
            assert p["spec"]["nodeName"] in st["message"]
            dt = next(c for c in st["conditions"] if c["type"] == "DisruptionTarget")
            assert dt["status"] == "True"
            assert st["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 143
        assert all(p["status"]["phase"] == "Running" for p in others)
        live = {
            n["metadata"]["name"]
            for n in (
                await kjson(kubectl, "get", "nodes", "-l", f"kubatch.io/compute-environment={spot}")
            )["items"]
        }
        assert not live & set(chosen)
        assert sim.stats().reclaims_by_compute_environment[spot] == 3

        # the command-line reclaim works against the same cluster while the sim runs
        rc = await asyncio.to_thread(
            sim_main,
            [
                "--kubeconfig",
                str(local_plane.kubeconfig),
                "reclaim",
                "--compute-environment",
                spot,
                "--fraction",
                "1",
            ],
        )
        assert rc == 0

        async def all_failed() -> bool:
            pods = await pods_of(kubectl, namespace)
            return all(p["status"].get("phase") == "Failed" for p in pods)

        await eventually_async(all_failed, what="every pod disrupted", timeout=30)

        async def counted() -> bool:
            return sim.stats().reclaims_by_compute_environment[spot] == 6

        await eventually_async(counted, what="the sim to count the CLI reclaims", timeout=10)
    finally:
        await delete_ces(kubectl, spot)


async def test_scaling_respects_min_max_and_bid(
    sim: Simulator, kubectl: Kubectl, namespace: str
) -> None:
    bounded, nobid = uniq("bounded"), uniq("nobid")
    ready = ReadyWatch(kubectl, [bounded, nobid])
    # r5.large spot is 32% of on-demand, m5.large 36%: a 33% bid allows only r5.large
    await apply(
        kubectl,
        make_ce(
            bounded,
            capacityType="Spot",
            minvCpus=4,
            maxvCpus=8,
            bidPercentage=33,
            instanceTypes=["m5.large", "r5.large"],
        ),
        make_ce(
            nobid,
            capacityType="Spot",
            maxvCpus=8,
            bidPercentage=20,
            instanceTypes=["m5.large", "r5.large"],
        ),
    )
    ready.start()
    try:

        async def at_min() -> bool:
            return (await ready.sample()).get(bounded, 0) == 4

        await eventually_async(at_min, what="the pool to reach minvCpus", timeout=30)
        await apply(
            kubectl,
            *[
                make_job(
                    f"j{i}",
                    bounded,
                    cpu="1500m",
                    spot=True,
                    annotations={"sim.kubatch.io/duration": "3"},
                )
                for i in range(8)
            ],
            make_job("never", nobid, spot=True),
            namespace=namespace,
        )

        async def grown() -> bool:
            return (await ready.sample()).get(bounded, 0) == 8

        await eventually_async(grown, what="the pool to grow to maxvCpus", timeout=30)

        async def jobs_done() -> bool:
            pods = await pods_of(kubectl, namespace)
            done = [p for p in pods if p["status"].get("phase") == "Succeeded"]
            return len(done) == 8

        await eventually_async(jobs_done, what="eight jobs to succeed on four nodes", timeout=90)

        async def shrunk() -> bool:
            return (await ready.sample()).get(bounded, 0) == 4

        await eventually_async(shrunk, what="scale-down to minvCpus", timeout=30)
        # the operator publishes a desired size below min: the pool stays at min
        assert sim.kube is not None
        await sim.kube.patch(
            COMPUTEENVIRONMENTS, bounded, {"status": {"desiredvCpus": 2}}, status=True
        )
        await asyncio.sleep(4)
        final = await ready.sample()
        nodes = (
            await kjson(kubectl, "get", "nodes", "-l", f"kubatch.io/compute-environment={bounded}")
        )["items"]
    finally:
        await ready.stop()
        await delete_ces(kubectl, bounded, nobid)

    assert final.get(bounded) == 4
    assert ready.max_vcpus[bounded] == 8  # never above maxvCpus
    assert ready.max_vcpus[nobid] == 0  # nothing within a 20% bid
    assert {n["metadata"]["labels"]["node.kubernetes.io/instance-type"] for n in nodes} == {
        "r5.large"
    }
    assert ready.bad == []
