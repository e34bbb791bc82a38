"""#17 in the controller, on the FakeKube: multi-node jobs (main node first, the others with
its IP, the main node decides, a lost node interrupts, the start timer releases, restarts),
preemption (victims keep their capacity until their pods are gone, run again uncounted) and
consumable resources (status, waiting, the used-up units written ahead)."""

from __future__ import annotations

import copy
from typing import Any

from kubatch.adapters.kube import CONSUMABLERESOURCES, JOBS, PODS
from kubatch.core.gang import node_job_name
from tests.component.conftest import (
    API,
    NS,
    Harness,
    make_ce,
    make_definition,
    make_job,
    make_queue,
)

JsonDict = dict[str, Any]


def env(job: JsonDict) -> dict[str, str]:
    c = job["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e["value"] for e in c.get("env") or []}


def mnp_definition(nodes: int = 3, main: int = 0, timeout: int = 60) -> JsonDict:
    tmpl = {
        "spec": {
            "containers": [
                {
                    "name": "main",
                    "image": "busybox",
                    "resources": {"requests": {"cpu": "1", "memory": "1Gi"}},
                }
            ]
        }
    }
    worker = copy.deepcopy(tmpl)
    worker["spec"]["containers"][0]["command"] = ["worker"]
    spec = {"type": "multinode", "nodeProperties": {
        "numNodes": nodes, "mainNode": main, "startTimeoutSeconds": timeout,
        "nodeRangeProperties": [{"targetNodes": ":", "template": worker},
                                {"targetNodes": str(main), "template": tmpl}]}}  # fmt: skip
    return {"apiVersion": API, "kind": "JobDefinition",
            "metadata": {"name": "mnp", "namespace": NS}, "spec": spec}  # fmt: skip


def job_names(h: Harness) -> list[str]:
    return sorted(j["metadata"]["name"] for j in h.k8s_jobs())


def node_name(h: Harness, node: int, attempt: int = 1, job: str = "mnp-job") -> str:
    from kubatch.adapters.kube import BATCHJOBS

    uid = (h.kube.get_object(BATCHJOBS, job, NS) or {})["metadata"]["uid"]
    return node_job_name(job, uid, node, attempt)


def give_ip(h: Harness, job_name: str, ip: str = "10.1.2.3") -> None:
    pod = h.pod_of(job_name)
    pod["status"]["podIP"] = ip
    h.kube.put(PODS, pod)


def disrupt(h: Harness, job_name: str) -> None:
    pod = h.pod_of(job_name)
    pod["status"] = {
        "phase": "Failed", "reason": "Terminated", "message": "node reclaimed",
        "conditions": [{"type": "DisruptionTarget", "status": "True"}],
        "containerStatuses": [{"name": "main", "state": {"terminated": {"exitCode": 143}}}],
    }  # fmt: skip
    h.kube.put(PODS, pod)


async def start_gang(h: Harness, nodes: int = 3) -> None:
    h.apply(make_ce(vcpus=8), make_queue(), mnp_definition(nodes), make_job("mnp-job",
            definition="mnp"))  # fmt: skip
    await h.cycle()
    assert job_names(h) == [node_name(h, 0)]  # the main node first, alone
    h.start_pods()
    give_ip(h, node_name(h, 0))
    await h.cycle()


async def test_main_node_first_then_the_others_with_its_address(h: Harness) -> None:
    await start_gang(h)
    assert job_names(h) == sorted(node_name(h, i) for i in range(3))
    main = env(h.kube.get_object(JOBS, node_name(h, 0), NS) or {})
    worker = env(h.kube.get_object(JOBS, node_name(h, 2), NS) or {})
    assert (main["AWS_BATCH_JOB_NODE_INDEX"], main["AWS_BATCH_JOB_NUM_NODES"],
            main["AWS_BATCH_JOB_MAIN_NODE_INDEX"]) == ("0", "3", "0")  # fmt: skip
    assert "AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS" not in main  # as AWS
    assert worker["AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS"] == "10.1.2.3"
    assert worker["AWS_BATCH_JOB_NODE_INDEX"] == "2"
    tmpl = (h.kube.get_object(JOBS, node_name(h, 2), NS) or {})["spec"]["template"]
    assert tmpl["spec"]["containers"][0]["command"] == ["worker"]  # its range's template
    assert tmpl["metadata"]["labels"]["kubatch.io/node-index"] == "2"
    assert h.status("mnp-job")["phase"] == "Starting"  # not every node runs yet
    h.start_pods()
    await h.cycle()
    st = h.status("mnp-job")
    assert st["phase"] == "Running"
    assert [(n["index"], n["main"], n["phase"]) for n in st["nodes"]] == [
        (0, True, "Running"), (1, False, "Running"), (2, False, "Running")]  # fmt: skip
    assert st["nodes"][0]["podIP"] == "10.1.2.3"


async def test_the_main_node_decides_and_the_others_are_stopped(h: Harness) -> None:
    await start_gang(h)
    h.start_pods()
    await h.cycle()
    h.finish_pod(node_name(h, 1), exit_code=1)  # another node's exit changes nothing (AWS)
    await h.cycle()
    assert h.status("mnp-job")["phase"] == "Running"
    h.finish_pod(node_name(h, 0), exit_code=0)
    await h.cycle(2)
    st = h.status("mnp-job")
    assert (st["phase"], st["attempts"][0]["exitCode"]) == ("Succeeded", 0)
    assert node_name(h, 2) not in job_names(h)  # still running: stopped with the attempt
    assert node_name(h, 1) in job_names(h)  # ended: kept for the retention


async def test_the_main_nodes_failure_fails_the_attempt(h: Harness) -> None:
    await start_gang(h)
    h.start_pods()
    await h.cycle()
    h.finish_pod(node_name(h, 0), exit_code=3)
    await h.cycle(2)
    st = h.status("mnp-job")
    assert (st["phase"], st["reason"], st["attempts"][0]["exitCode"]) == (
        "Failed", "RetriesExhausted", 3)  # fmt: skip


async def test_a_lost_node_interrupts_the_attempt_and_every_node_restarts(h: Harness) -> None:
    await start_gang(h)
    h.start_pods()
    await h.cycle()
    disrupt(h, node_name(h, 2))
    await h.cycle(2)
    st = h.status("mnp-job")
    first = st["attempts"][0]
    assert first["interrupted"] is True
    assert "node 2 lost" in first["statusReason"]
    assert st["phase"] == "Starting"
    assert len(st["attempts"]) == 2
    # attempt 1's running nodes are stopped; the lost node's ended Job stays for the retention
    assert job_names(h) == sorted([node_name(h, 0, 2), node_name(h, 2, 1)])


async def test_not_every_node_in_time_releases_the_gang_uncounted(h: Harness) -> None:
    h.apply(make_ce(vcpus=8), make_queue(), mnp_definition(3, timeout=30),
            make_job("mnp-job", definition="mnp", retryStrategy={"attempts": 1}))  # fmt: skip
    await h.cycle()
    h.start_pods()
    give_ip(h, node_name(h, 0))
    await h.cycle()  # the others' Jobs exist, their pods never run (no room on a node)
    await h.cycle(advance=31)
    await h.cycle(2)
    st = h.status("mnp-job")
    first = st["attempts"][0]
    assert (first["reason"], first["interrupted"]) == ("GangStartTimeout", True)
    assert st["phase"] in ("Runnable", "Starting")  # runs again: not a failure
    assert len(st["attempts"]) == 2
    assert h.events("GangStartTimeout")
    samples = {s.name: s.value for f in h.metrics.registry.collect() for s in f.samples}
    assert samples["kubatch_gang_releases_total"] == 1


async def test_restart_recreates_only_the_missing_nodes(h: Harness) -> None:
    h.apply(make_ce(vcpus=8), make_queue(), mnp_definition(3),
            make_job("mnp-job", definition="mnp"))  # fmt: skip
    await h.cycle()
    h.start_pods()
    give_ip(h, node_name(h, 0))
    h.kube.fail("create", "jobs", name=node_name(h, 2))  # node 2's Job fails once
    await h.cycle()
    assert node_name(h, 2) not in job_names(h)
    await h.restart()
    await h.cycle()
    assert job_names(h) == sorted(node_name(h, i) for i in range(3))
    creates = [w for w in h.kube.writes if w.resource == "jobs" and w.verb == "create"]
    assert sum(w.name == node_name(h, 0) for w in creates) == 1  # never a second main node
    h.start_pods()
    await h.cycle()
    assert h.status("mnp-job")["phase"] == "Running"


# --------------------------------------------------------------------------- preemption


def preempting_queues(h: Harness, vcpus: int = 2) -> None:
    h.apply(
        make_ce(vcpus=vcpus),
        make_queue("hi", priority=100, preemption={"reclaimFromQueues": "LowerPriority"}),
        make_queue("lo", priority=1),
        make_definition(),
    )


async def test_preemption_victim_keeps_its_capacity_until_its_pod_is_gone(h: Harness) -> None:
    preempting_queues(h, vcpus=1)
    h.apply(make_job("victim", queue="lo"))
    await h.cycle()
    h.start_pods()
    await h.cycle()
    h.apply(make_job("urgent", queue="hi"))
    h.kube.hold()  # the deletions of the victim's Job and pod are not seen yet
    await h.cycle()
    st = h.status("urgent")
    assert (st["phase"], st["reason"]) == ("Runnable", "Preempting")
    assert [e["reason"] for e in h.events("Preempted")] == ["Preempted"]
    await h.cycle()
    assert [j["metadata"]["labels"]["kubatch.io/batchjob"] for j in h.k8s_jobs()] == []
    assert h.status("urgent")["phase"] == "Runnable"  # the victim still holds its capacity
    h.kube.deliver()
    await h.cycle(2)
    assert h.status("urgent")["phase"] == "Starting"
    victim = h.status("victim")
    first = victim["attempts"][0]
    assert (first["reason"], first["interrupted"]) == ("Preempted", True)
    assert victim["phase"] == "Runnable"
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for f in h.metrics.registry.collect() for s in f.samples}  # fmt: skip
    key = ("kubatch_job_preemptions_total", (("preemptor_queue", "hi"), ("queue", "lo")))
    assert samples[key] == 1


async def test_a_preempted_job_completes_later_with_its_retries_intact(h: Harness) -> None:
    preempting_queues(h, vcpus=1)
    h.apply(make_job("victim", queue="lo", retryStrategy={"attempts": 1}))
    await h.cycle()
    h.start_pods()
    await h.cycle()
    h.apply(make_job("urgent", queue="hi"))
    await h.cycle(3)
    h.start_pods()
    await h.cycle()
    h.finish_pod(h.job_name("urgent"))
    await h.cycle(2)
    assert h.status("urgent")["phase"] == "Succeeded"
    h.start_pods()
    await h.cycle()
    h.finish_pod(h.job_name("victim", attempt=2))
    await h.cycle(2)
    st = h.status("victim")
    assert (st["phase"], len(st["attempts"])) == ("Succeeded", 2)  # 1 attempt allowed: uncounted


# --------------------------------------------------------------------------- consumables


def consumable(name: str, total: int, kind: str = "REPLENISHABLE") -> JsonDict:
    return {"apiVersion": API, "kind": "ConsumableResource", "metadata": {"name": name},
            "spec": {"totalQuantity": total, "resourceType": kind}}  # fmt: skip


def needing(name: str, resource: str = "licence", qty: int = 1) -> JsonDict:
    return make_job(
        name,
        consumableResourcePropertiesOverride={
            "consumableResourceList": [{"consumableResource": resource, "quantity": qty}]
        },
    )


async def test_jobs_wait_for_a_licence_and_its_status_shows_the_use(h: Harness) -> None:
    h.apply(make_ce(), make_queue(), make_definition(), consumable("licence", 1))
    h.apply(needing("a"), needing("b"))
    await h.cycle()
    assert [j["metadata"]["labels"]["kubatch.io/batchjob"] for j in h.k8s_jobs()] == ["a"]
    st = h.status("b")
    assert (st["phase"], st["reason"]) == ("Runnable", "ConsumableResourceUnavailable")
    assert "licence" in st["message"]
    await h.cycle(advance=3)  # object status is published every 2 s
    cr = h.obj_status("ConsumableResource", "licence")
    assert (cr["inUseQuantity"], cr["availableQuantity"]) == (1, 0)
    h.start_pods()
    await h.cycle()
    h.finish_pod(h.job_name("a"))
    await h.cycle(2)
    assert h.status("b")["phase"] == "Starting"
    h.apply(consumable("licence", 3))  # a change of the total applies at once
    h.apply(needing("c"), needing("d"))
    await h.cycle()
    assert h.status("c")["phase"] == "Starting"
    assert h.status("d")["phase"] == "Starting"


async def test_used_up_units_are_written_before_the_job_is_created(h: Harness) -> None:
    h.apply(
        make_ce(), make_queue(), make_definition(), consumable("tokens", 2, "NON_REPLENISHABLE")
    )
    h.apply(needing("a", "tokens"))
    await h.cycle()
    kinds = [(w.verb, w.resource) for w in h.kube.writes
             if w.resource in ("consumableresources/status", "jobs")]  # fmt: skip
    assert kinds[:2] == [("patch", "consumableresources/status"), ("create", "jobs")]
    assert h.obj_status("ConsumableResource", "tokens")["inUseQuantity"] == 1
    h.kube.fail("patch", "consumableresources/status")
    h.apply(needing("b", "tokens"))
    await h.cycle()
    assert [j["metadata"]["labels"]["kubatch.io/batchjob"] for j in h.k8s_jobs()] == ["a"]
    await h.cycle()  # rolled back, admitted again once the write goes through
    assert sorted(j["metadata"]["labels"]["kubatch.io/batchjob"] for j in h.k8s_jobs()) == [
        "a", "b"]  # fmt: skip
    # after a restart the used-up units come back from the status: none is left
    await h.restart()
    h.apply(needing("c", "tokens"))
    await h.cycle(2)
    assert h.status("c")["reason"] == "ConsumableResourceUnavailable"
    assert h.kube.get_object(CONSUMABLERESOURCES, "tokens") is not None
