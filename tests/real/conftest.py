"""The real tier: real containers on a real kubelet node, the operator in-cluster from the chart.

One local plane with a real node (``LocalPlane.up(real_node=True)``: containerd + runc + CNI
bridge + the kubelet) for the session; the operator image is built from the repository's
Dockerfile with buildah (layer cache: seconds when nothing changed) and imported into the
node's containerd; the chart is installed with helm (``kubatch.local.chart``) with
``hostNetwork`` and the API server's loopback address. Nothing here is simulated: there is no
``kubatch sim`` and no ``sim.kubatch.io`` annotation.

On a machine that cannot run a real node (not root, not Linux, no cgroup v1) every test skips
with the reason. Where it can (Debian with apt, root, cgroup v1), a missing prerequisite is
installed or built, and any failure to do so fails the tier.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.conftest import Kubectl, PlaneHandle, kubectl_for

from kubatch.devkit.polling import NotYet, eventually
from kubatch.local import chart, containerd, node
from kubatch.local.images import Image
from kubatch.local.plane import LocalPlane, PlaneState

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "kubatch"
API = "kubatch.io/v1alpha1"
BUSYBOX = "kubatch.local/busybox:static"
CE = "real-node"
QUEUE = "real"


NOTES: list[str] = []
"""Timings of the session (printed in pytest's summary, so CI logs keep them)."""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if f"{os.sep}real{os.sep}" in str(item.fspath):
            item.add_marker(pytest.mark.real)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    for note in NOTES:
        terminalreporter.write_line(f"real tier: {note}")


def http_get(url: str, timeout: float = 5) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return int(resp.status), resp.read().decode()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read().decode(errors="replace")
    except OSError as exc:
        return 0, str(exc)


@dataclass
class Real:
    """The plane with its real node, the operator image, and the chart's release."""

    state: PlaneState
    kubectl: Kubectl
    image: Image
    workdir: Path
    installed: chart.Installed | None = None
    chart_version: str = ""

    # -- the release -------------------------------------------------------------------------
    def install(self, chart_dir: Path, *, take_ownership: bool = False) -> chart.Installed:
        t0 = time.monotonic()
        self.installed = chart.install(
            self.state, chart_dir, self.image, take_ownership=take_ownership, timeout=240
        )
        NOTES.append(f"helm install/upgrade of {chart_dir.name}: {time.monotonic() - t0:.1f}s")
        self.chart_version = yaml.safe_load((chart_dir / "Chart.yaml").read_text())["version"]
        return self.installed

    def uninstall_everything(self) -> None:
        """No release and no kubatch CRDs (and so no kubatch object) left."""
        if self.installed is not None:
            chart.uninstall(self.state, self.installed.release, self.installed.namespace)
            self.installed = None
            self.chart_version = ""
        self.kubectl("delete", "crd", "-l", "app.kubernetes.io/part-of=kubatch", "--wait=true")

    def current(self) -> chart.Installed:
        """The repository's chart, installed (kept when it already is)."""
        version = yaml.safe_load((CHART / "Chart.yaml").read_text())["version"]
        if self.installed is None or self.chart_version != version:
            self.install(CHART, take_ownership=self.installed is not None)
        assert self.installed is not None
        return self.installed

    def operator_pod(self) -> dict[str, Any]:
        assert self.installed is not None
        pods = [
            p
            for p in chart.operator_pods(
                self.state, self.installed.release, self.installed.namespace
            )
            if not p["metadata"].get("deletionTimestamp")
        ]
        assert len(pods) == 1, [p["metadata"]["name"] for p in pods]
        return pods[0]

    def operator_log(self) -> str:
        if self.installed is None:
            return "(no release)"
        proc = self.kubectl(
            "logs", f"deploy/{self.installed.fullname}", "--tail=80",
            namespace=self.installed.namespace, check=False,
        )  # fmt: skip
        return proc.stdout + proc.stderr

    # -- objects ---------------------------------------------------------------------------
    def apply(self, docs: list[dict[str, Any]], namespace: str | None = None) -> None:
        self.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(docs), namespace=namespace)

    def get(self, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        proc = self.kubectl("get", kind, name, "-o", "json", namespace=namespace, check=False)
        return json.loads(proc.stdout) if proc.returncode == 0 else None

    def list(self, kind: str, namespace: str | None, *args: str) -> list[dict[str, Any]]:
        proc = self.kubectl("get", kind, *args, "-o", "json", namespace=namespace)
        items: list[dict[str, Any]] = json.loads(proc.stdout)["items"]
        return items

    def pods_of(self, namespace: str, job: str, *extra: str) -> list[dict[str, Any]]:
        sel = ",".join([f"kubatch.io/batchjob={job}", *extra])
        return self.list("pods", namespace, "-l", sel)

    def logs(self, namespace: str, pod: str) -> str:
        return str(self.kubectl("logs", pod, namespace=namespace).stdout)

    def wait(self, what: str, probe: Callable[[], Any], timeout: float = 120) -> Any:
        """``probe()`` until truthy; on timeout the failure shows the operator's log."""
        try:
            return eventually(probe, what=what, timeout=timeout)
        except NotYet as exc:
            raise NotYet(f"{exc}\noperator log:\n{self.operator_log()}") from None

    def wait_phase(
        self, namespace: str, name: str, phases: tuple[str, ...] = ("Succeeded", "Failed"),
        timeout: float = 180,
    ) -> dict[str, Any]:  # fmt: skip
        def probe() -> dict[str, Any] | None:
            bj = self.get("batchjob", name, namespace)
            return bj if ((bj or {}).get("status") or {}).get("phase") in phases else None

        found: dict[str, Any] = self.wait(f"{namespace}/{name} in {phases}", probe, timeout)
        return found

    def running_tasks(self) -> set[str]:
        """Container IDs containerd runs right now (its ``k8s.io`` namespace)."""
        assert self.state.node is not None
        out = containerd.ctr(self.state.node.socket, "tasks", "ls")
        return {
            line.split()[0] for line in out.splitlines()[1:] if line.split()[-1:] == ["RUNNING"]
        }


@pytest.fixture(scope="session")
def real() -> Iterator[Real]:
    reason = node.unavailable_reason()
    if reason:
        pytest.skip(f"the real tier needs a real node: {reason}")
    state_dir = Path(tempfile.mkdtemp(prefix="kubatch-real-plane-"))
    workdir = Path(tempfile.mkdtemp(prefix="kubatch-real-"))
    plane = LocalPlane(state_dir)
    try:
        t0 = time.monotonic()
        state = plane.up(timeout=300, real_node=True)
        up = time.monotonic() - t0
        t0 = time.monotonic()
        image = chart.build_and_import(state, ROOT)
        NOTES.append(f"operator image from the Dockerfile, imported: {time.monotonic() - t0:.1f}s")
        handle = PlaneHandle(state.kubeconfig, Path(state.kubectl), state.server, state.token)
        r = Real(state, kubectl_for(handle), image, workdir)
        NOTES.append(f"plane with a real node up in {up:.1f}s; operator image {image.name}")
        yield r
    finally:
        plane.down()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def operator(real: Real) -> chart.Installed:
    """The operator in-cluster from the repository's chart, with the compute environment and
    queue of the real node."""
    installed = real.current()
    apply_pool(real)
    return installed


def apply_pool(real: Real) -> None:
    docs = [d for d in yaml.safe_load_all(example_text()) if d]
    real.apply([d for d in docs if d["kind"] in ("ComputeEnvironment", "JobQueue")])


def example_text() -> str:
    return (ROOT / "examples" / "real-node" / "jobs.yaml").read_text()


def wait_for_token(real: Real, namespace: str) -> None:
    """ServiceAccount admission is on: a pod is admitted once its namespace's token exists."""

    def token() -> bool:
        sa = real.get("serviceaccount", "default", namespace) or {}
        return bool(sa.get("secrets"))

    real.wait(f"the default ServiceAccount token of {namespace}", token, 60)


@pytest.fixture
def namespace(real: Real) -> Iterator[str]:
    name = f"r-{uuid.uuid4().hex[:10]}"
    real.kubectl("create", "namespace", name)
    wait_for_token(real, name)
    try:
        yield name
    finally:
        real.kubectl("delete", "namespace", name, "--wait=false", check=False)


def definition(
    name: str,
    command: str,
    *,
    retry: dict[str, Any] | None = None,
    timeout: int | None = None,
    parameters: dict[str, str] | None = None,
    memory_limit: str | None = None,
) -> dict[str, Any]:
    resources: dict[str, Any] = {"requests": {"cpu": "50m", "memory": "16Mi"}}
    if memory_limit:
        resources["limits"] = {"memory": memory_limit}
    spec: dict[str, Any] = {
        "template": {
            "spec": {
                "containers": [
                    {
                        "name": "main",
                        "image": BUSYBOX,
                        "imagePullPolicy": "IfNotPresent",
                        "command": ["sh", "-c", command],
                        "resources": resources,
                    }
                ]
            }
        }
    }
    if retry:
        spec["retryStrategy"] = retry
    if timeout:
        spec["timeout"] = {"attemptDurationSeconds": timeout}
    if parameters:
        spec["parameters"] = parameters
    return {"apiVersion": API, "kind": "JobDefinition", "metadata": {"name": name}, "spec": spec}


def batch_job(name: str, jd: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "BatchJob",
        "metadata": {"name": name},
        "spec": {"jobQueue": QUEUE, "jobDefinition": jd, **spec},
    }


def decode_token(secret: dict[str, Any]) -> str:
    return base64.b64decode(secret["data"]["token"]).decode()


def previous_chart(dest: Path) -> Path:
    """The chart as the previous release (0.1.x) shipped it, runnable on this plane.

    0.1.x kept its CRDs in ``crds/``, which Helm installs once and never upgrades. This copy
    has that layout, chart version 0.1.0 and an older BatchJob CRD (no ``Message`` printer
    column) so that the upgrade visibly updates it; its templates are today's (0.1.x could
    not run on a plane without kube-proxy: it had no ``hostNetwork``).
    """
    shutil.copytree(CHART, dest)
    crds = dest / "crds"
    crds.mkdir()
    for path in sorted((dest / "files" / "crds").glob("*.yaml")):
        doc = yaml.safe_load(path.read_text())
        if doc["metadata"]["name"] == "batchjobs.kubatch.io":
            for version in doc["spec"]["versions"]:
                version["additionalPrinterColumns"] = [
                    c for c in version["additionalPrinterColumns"] if c["name"] != "Message"
                ]
        (crds / path.name).write_text(yaml.safe_dump(doc))
    shutil.rmtree(dest / "files" / "crds")
    (dest / "templates" / "crds.yaml").unlink()
    meta = yaml.safe_load((dest / "Chart.yaml").read_text())
    meta["version"] = "0.1.0"
    (dest / "Chart.yaml").write_text(yaml.safe_dump(meta))
    return dest
