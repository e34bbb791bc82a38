"""kubectl-batch against the real local control plane: every verb, with the real CRDs.

No operator runs here: statuses that the operator would write are patched in by the test
(through the status subresource) so that ``ls --phase`` and ``why`` have something to read.
"""

from __future__ import annotations

import io
import json
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubatch.plugin import main

ROOT = Path(__file__).resolve().parents[2]
Kubectl = Callable[..., "subprocess.CompletedProcess[str]"]


@pytest.fixture(scope="module")
def crds(kubectl: Kubectl) -> None:
    files = sorted((ROOT / "crds").glob("*.yaml"))
    assert files, "crds/ is empty: run make crds"
    for f in files:
        kubectl("apply", "-f", str(f))
    for f in files:
        name = yaml.safe_load(f.read_text())["metadata"]["name"]
        kubectl("wait", "--for=condition=Established", f"crd/{name}", "--timeout=60s")


@pytest.fixture
def world(kubectl: Kubectl, namespace: str, crds: None) -> Iterator[dict[str, str]]:
    suffix = uuid.uuid4().hex[:6]
    names = {"ce": f"spot-{suffix}", "ce2": f"od-{suffix}", "queue": f"high-{suffix}"}
    manifests = [
        {
            "apiVersion": "kubatch.io/v1alpha1",
            "kind": "ComputeEnvironment",
            "metadata": {"name": names["ce"]},
            "spec": {"computeResources": {"capacityType": "Spot", "maxvCpus": 2}},
        },
        {
            "apiVersion": "kubatch.io/v1alpha1",
            "kind": "ComputeEnvironment",
            "metadata": {"name": names["ce2"]},
            "spec": {"state": "Disabled", "computeResources": {"maxvCpus": 64}},
        },
        {
            "apiVersion": "kubatch.io/v1alpha1",
            "kind": "JobQueue",
            "metadata": {"name": names["queue"]},
            "spec": {
                "priority": 10,
                "computeEnvironmentOrder": [
                    {"order": 1, "computeEnvironment": names["ce"]},
                    {"order": 2, "computeEnvironment": names["ce2"]},
                ],
            },
        },
        {
            "apiVersion": "kubatch.io/v1alpha1",
            "kind": "JobDefinition",
            "metadata": {"name": "align", "namespace": namespace},
            "spec": {
                "parameters": {"input": "default.bam"},
                "template": {
                    "spec": {
                        "containers": [
                            {
                                "name": "main",
                                "image": "busybox",
                                "command": ["align", "Ref::input"],
                                "resources": {"requests": {"cpu": "4", "memory": "1Gi"}},
                            }
                        ],
                        "restartPolicy": "Never",
                    }
                },
            },
        },
    ]
    kubectl("apply", "-f", "-", input=yaml.safe_dump_all(manifests))
    try:
        yield {**names, "namespace": namespace}
    finally:
        kubectl("delete", "jobqueue", names["queue"], "--wait=false", check=False)
        kubectl("delete", "ce", names["ce"], names["ce2"], "--wait=false", check=False)


Run = Callable[..., tuple[int, str]]


@pytest.fixture
def run(local_plane: Any, world: dict[str, str]) -> Run:
    def go(*args: str, namespace: bool = True) -> tuple[int, str]:
        out = io.StringIO()
        argv = ["--kubeconfig", str(local_plane.kubeconfig)]
        if namespace:
            argv += ["-n", world["namespace"]]
        code = main([*argv, *args], out=out)
        return code, out.getvalue()

    return go


def get_job(kubectl: Kubectl, ns: str, name: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(
        kubectl("get", "batchjob", name, "-n", ns, "-o", "json").stdout
    )
    return result


def patch_status(k8s_api: Any, ns: str, name: str, status: dict[str, Any]) -> None:
    from kubernetes import client

    client.CustomObjectsApi(k8s_api).patch_namespaced_custom_object_status(
        "kubatch.io", "v1alpha1", ns, "batchjobs", name, {"status": status}
    )


def test_submit_creates_batch_jobs(run: Run, world: dict[str, str], kubectl: Kubectl) -> None:
    ns, queue = world["namespace"], world["queue"]
    code, out = run("submit", "align", "-q", queue, "--name", "j1", "-p", "input=s3://b/x=1")
    assert code == 0
    assert out == "batchjob.kubatch.io/j1 submitted\n"
    j1 = get_job(kubectl, ns, "j1")
    assert j1["spec"]["jobQueue"] == queue
    assert j1["spec"]["jobDefinition"] == "align"
    assert j1["spec"]["parameters"] == {"input": "s3://b/x=1"}

    code, out = run(
        "submit", "align", "-q", queue, "--array-size", "3", "--parallelism", "2",
        "--depends-on", "j1:Completed", "-o", "json",
    )  # fmt: skip
    assert code == 0
    created = json.loads(out)
    name = created["metadata"]["name"]
    assert name.startswith("align-")
    stored = get_job(kubectl, ns, name)
    assert stored["spec"]["arrayProperties"] == {"size": 3, "parallelism": 2}
    assert stored["spec"]["dependsOn"] == [{"jobName": "j1", "condition": "Completed"}]

    code, out = run("submit", "align", "-q", queue, "--name", "dry", "--dry-run", "-o", "yaml")
    assert code == 0
    assert yaml.safe_load(out)["metadata"]["name"] == "dry"
    assert kubectl("get", "batchjob", "dry", "-n", ns, check=False).returncode != 0


def test_submit_errors_are_clear(
    run: Run, world: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert run("submit", "nope", "-q", world["queue"])[0] == 1
    assert 'jobdefinition "nope" not found' in capsys.readouterr().err
    assert run("submit", "align", "-q", "no-such-queue")[0] == 1
    assert 'jobqueue "no-such-queue" not found' in capsys.readouterr().err


def test_ls_filters_and_outputs(
    run: Run,
    world: dict[str, str],
    k8s_api: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ns, queue = world["namespace"], world["queue"]
    for name in ("a", "b"):
        assert run("submit", "align", "-q", queue, "--name", name)[0] == 0
    patch_status(
        k8s_api,
        ns,
        "a",
        {"phase": "Runnable", "reason": "InsufficientCapacity", "queuePosition": 1},
    )
    code, out = run("ls")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == [
        "NAME", "QUEUE", "PHASE", "REASON", "POSITION", "CE", "ARRAY", "ATTEMPTS", "AGE",
    ]  # fmt: skip
    assert [line.split()[0] for line in lines[1:]] == ["a", "b"]
    assert lines[1].split()[:5] == ["a", queue, "Runnable", "InsufficientCapacity", "1"]

    code, out = run("ls", "--phase", "runnable", "-o", "json")
    assert code == 0
    doc = json.loads(out)
    assert doc["kind"] == "List"
    assert [i["metadata"]["name"] for i in doc["items"]] == ["a"]

    capsys.readouterr()
    code, out = run("ls", "--queue", "other-queue")
    assert (code, out) == (0, "")
    assert f"No resources found in {ns} namespace." in capsys.readouterr().err

    code, out = run("ls", "-A", "--queue", queue)
    assert code == 0
    assert out.splitlines()[0].split()[0] == "NAMESPACE"
    assert {line.split()[1] for line in out.splitlines()[1:]} == {"a", "b"}


def test_kubeconfig_comes_from_the_environment(
    local_plane: Any, world: dict[str, str], monkeypatch: pytest.MonkeyPatch, crds: None
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(local_plane.kubeconfig))
    out = io.StringIO()
    assert main(["ces"], out=out) == 0
    assert world["ce"] in out.getvalue()


def test_why_explains_position_ces_and_attempts(
    run: Run, world: dict[str, str], k8s_api: Any
) -> None:
    ns, queue = world["namespace"], world["queue"]
    assert run("submit", "align", "-q", queue, "--name", "big")[0] == 0
    patch_status(
        k8s_api,
        ns,
        "big",
        {
            "phase": "Runnable",
            "reason": "InsufficientCapacity",
            "message": "no compute environment has room",
            "queuePosition": 2,
            "attempts": [
                {
                    "number": 1,
                    "jobName": "big-1",
                    "nodeName": "spot-node-3",
                    "computeEnvironment": world["ce"],
                    "capacityType": "Spot",
                    "reason": "Interrupted",
                    "statusReason": "node spot-node-3 reclaimed",
                    "interrupted": True,
                }
            ],
        },
    )
    code, out = run("why", "big")
    assert code == 0
    assert "Phase:         Runnable" in out
    assert "Reason:        InsufficientCapacity" in out
    assert f"Position:      2 in queue {queue}" in out
    assert "Size:          4 vCPU, 1Gi memory, 0 GPU" in out
    assert "can never fit: needs 4 vCPU > maxvCpus 2" in out
    assert "Disabled: admits nothing new" in out
    assert "node spot-node-3 reclaimed" in out
    code, out = run("why", "big", "-o", "json")
    info = json.loads(out)
    assert [(c["name"], c["canRun"]) for c in info["computeEnvironments"]] == [
        (world["ce"], False),
        (world["ce2"], False),
    ]
    assert run("why", "missing")[0] == 1


def test_terminate_sets_spec_terminate(run: Run, world: dict[str, str], kubectl: Kubectl) -> None:
    ns = world["namespace"]
    assert run("submit", "align", "-q", world["queue"], "--name", "t1")[0] == 0
    code, out = run("terminate", "t1", "--reason", "wrong input")
    assert (code, out) == (0, "batchjob.kubatch.io/t1 terminated\n")
    assert get_job(kubectl, ns, "t1")["spec"]["terminate"] == {"reason": "wrong input"}
    assert run("terminate", "nope", "--reason", "x")[0] == 1


def test_queues_and_ces(run: Run, world: dict[str, str]) -> None:
    code, out = run("queues")
    assert code == 0
    header, *rows = out.splitlines()
    assert header.split()[:5] == ["NAME", "PRIORITY", "STATE", "READY", "COMPUTE-ENVIRONMENTS"]
    row = next(r.split() for r in rows if r.split()[0] == world["queue"])
    assert row[1:5] == ["10", "Enabled", "Unknown", f"{world['ce']},{world['ce2']}"]

    code, out = run("ces", "-o", "yaml")
    assert code == 0
    names = {i["metadata"]["name"] for i in yaml.safe_load(out)["items"]}
    assert {world["ce"], world["ce2"]} <= names
    code, out = run("ces")
    row = next(r.split() for r in out.splitlines() if r.split()[0] == world["ce2"])
    assert row[1:6] == ["Managed", "Disabled", "OnDemand", "0", "64"]
