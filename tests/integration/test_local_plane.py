"""The local control plane is real Kubernetes: CRDs, the Job controller, the scheduler, the GC."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from tests.conftest import Kubectl
from tests.manifests.kube import batch_v1_job

from kubatch.devkit.polling import eventually
from kubatch.timefmt import rfc3339


def get_json(kubectl: Kubectl, *args: str, namespace: str | None = None) -> Any:
    proc = kubectl("get", *args, "-o", "json", namespace=namespace, check=False)
    return json.loads(proc.stdout) if proc.returncode == 0 else None


CRD = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.foundation.kubatch.io}
spec:
  group: foundation.kubatch.io
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [size]
            properties:
              size: {type: integer, minimum: 1}
"""


def node_manifest(name: str, pool: str) -> str:
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": name, "labels": {"pool": pool, "type": "kubatch-test"}},
            "status": {
                "capacity": {"cpu": "4", "memory": "8Gi", "pods": "20"},
                "allocatable": {"cpu": "4", "memory": "8Gi", "pods": "20"},
                "conditions": [
                    {
                        "type": "Ready",
                        "status": "True",
                        "reason": "KubeletReady",
                        "message": "test node",
                        "lastHeartbeatTime": rfc3339(time.time()),
                        "lastTransitionTime": rfc3339(time.time()),
                    }
                ],
            },
        }
    )


def job_manifest(name: str, pool: str) -> str:
    return json.dumps(batch_v1_job(name, {"pool": pool}))


def test_crd_is_established_and_validates(kubectl: Kubectl, namespace: str) -> None:
    kubectl("apply", "-f", "-", input=CRD)
    try:
        kubectl(
            "wait",
            "--for=condition=Established",
            "crd/widgets.foundation.kubatch.io",
            "--timeout=60s",
        )
        ok = (
            '{"apiVersion":"foundation.kubatch.io/v1","kind":"Widget",'
            '"metadata":{"name":"a"},"spec":{"size":2}}'
        )
        kubectl("apply", "-f", "-", input=ok, namespace=namespace)
        bad = ok.replace('"size":2', '"size":0')
        proc = kubectl(
            "apply", "-f", "-", input=bad.replace('"a"', '"b"'), namespace=namespace, check=False
        )
        assert proc.returncode != 0
        assert "spec.size" in proc.stderr
    finally:
        kubectl("delete", "crd", "widgets.foundation.kubatch.io", "--wait=false", check=False)


def test_job_controller_scheduler_and_gc(kubectl: Kubectl, namespace: str) -> None:
    pool = f"pool-{namespace}"
    node = f"node-{namespace}"
    kubectl("apply", "-f", "-", input=node_manifest(node, pool))
    try:
        # The real Job controller makes a Pod; the real kube-scheduler binds it to our Node.
        kubectl("apply", "-f", "-", input=job_manifest("fits", pool), namespace=namespace)
        pods = eventually(
            lambda: [
                p
                for p in (
                    get_json(kubectl, "pods", "-l", "job-name=fits", namespace=namespace)
                    or {"items": []}
                )["items"]
                if p["spec"].get("nodeName")
            ],
            what="a bound pod of job 'fits'",
        )
        assert pods[0]["spec"]["nodeName"] == node
        assert pods[0]["metadata"]["ownerReferences"][0]["kind"] == "Job"

        # A pod whose nodeSelector matches no node stays Pending, unscheduled, with a reason.
        kubectl(
            "apply", "-f", "-", input=job_manifest("nowhere", "no-such-pool"), namespace=namespace
        )

        def unschedulable() -> Any:
            items = (
                get_json(kubectl, "pods", "-l", "job-name=nowhere", namespace=namespace)
                or {"items": []}
            )["items"]
            for p in items:
                for c in p.get("status", {}).get("conditions", []):
                    if c["type"] == "PodScheduled" and c.get("reason") == "Unschedulable":
                        return p
            return None

        stuck = eventually(unschedulable, what="the unschedulable pod")
        assert not stuck["spec"].get("nodeName")
        assert stuck["status"]["phase"] == "Pending"

        # Deleting the Job makes the garbage collector delete its Pod.
        pod_name = pods[0]["metadata"]["name"]
        kubectl(
            "delete", "job", "fits", "--cascade=background", "--wait=false", namespace=namespace
        )

        def collected() -> Any:
            p = get_json(kubectl, "pod", pod_name, namespace=namespace)
            if p is None:
                return "gone"
            return "terminating" if p["metadata"].get("deletionTimestamp") else None

        assert eventually(collected, what="the GC to delete the pod") in ("gone", "terminating")
        # No kubelet runs here: finish the deletion as a kubelet would.
        kubectl(
            "delete",
            "pod",
            pod_name,
            "--grace-period=0",
            "--force",
            namespace=namespace,
            check=False,
        )
        eventually(
            lambda: get_json(kubectl, "pod", pod_name, namespace=namespace) is None,
            what="the pod to be gone",
        )
    finally:
        kubectl("delete", "node", node, "--wait=false", check=False)


@pytest.mark.timeout(300)
def test_cli_up_status_down(tmp_path: Any) -> None:
    import subprocess
    import sys

    from kubatch.local.plane import LocalPlane, pid_alive

    def run(argv: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)

    state_dir = tmp_path / "plane"
    kubatch = [sys.executable, "-m", "kubatch.cli", "local"]
    up = run([*kubatch, "up", "--state-dir", str(state_dir)], 240)
    try:
        assert up.returncode == 0, up.stderr
        kubeconfig = up.stdout.strip().splitlines()[-1]
        plane = LocalPlane(state_dir)
        state = plane.state()
        assert state is not None
        version = run([state.kubectl, "--kubeconfig", kubeconfig, "get", "--raw", "/version"], 30)
        assert version.returncode == 0, version.stderr
        assert json.loads(version.stdout)["gitVersion"].startswith("v1.")
        # A second `up` reuses the running plane: same PIDs, same kubeconfig.
        again = run([*kubatch, "up", "--state-dir", str(state_dir)], 60)
        assert again.returncode == 0
        assert again.stdout.strip().splitlines()[-1] == kubeconfig
        state2 = plane.state()
        assert state2 is not None
        assert [p.pid for p in state2.processes] == [p.pid for p in state.processes]
        status = run([*kubatch, "status", "--state-dir", str(state_dir)], 30)
        assert status.returncode == 0
        for name in ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"):
            assert name in status.stdout
    finally:
        down = run([*kubatch, "down", "--state-dir", str(state_dir)], 60)
    assert down.returncode == 0
    assert not any(pid_alive(p.pid, p.cmdline0) for p in state.processes)
    assert not state_dir.exists()
