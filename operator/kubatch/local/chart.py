"""The Helm chart installed in-cluster on the local plane, with the locally built image.

The plane has no kube-proxy and no cluster DNS, so the operator runs with ``hostNetwork`` on
the real node and reaches the API server on 127.0.0.1 (``apiServer.host/port``); its metrics
and health endpoints bind the node's address (the pod IP of a ``hostNetwork`` pod, a /32 on
the loopback interface: where the kubelet probes) on ports chosen free at install time. The image is
``kubatch.local/kubatch:<version>-<id>``, imported into the node's containerd, with
``imagePullPolicy: Never``: nothing is ever pulled.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from kubatch.local import containerd, images
from kubatch.local.helm import ensure_helm
from kubatch.local.node import REAL_NODE_LABEL
from kubatch.local.plane import PlaneState, free_port

RELEASE = "kubatch"
NAMESPACE = "kubatch-system"


class ChartError(RuntimeError):
    """helm or the rollout failed; the message carries helm's output or the pod's state."""


@dataclass(frozen=True)
class Installed:
    release: str
    namespace: str
    image: str
    pod_ip: str
    metrics_port: int
    health_port: int

    @property
    def fullname(self) -> str:
        """The chart's ``kubatch.fullname``: the Deployment, ServiceAccount and ClusterRole."""
        return self.release if "kubatch" in self.release else f"{self.release}-kubatch"

    @property
    def metrics_url(self) -> str:
        return f"http://{self.pod_ip}:{self.metrics_port}/metrics"

    @property
    def health_url(self) -> str:
        return f"http://{self.pod_ip}:{self.health_port}/healthz"


def local_values(
    state: PlaneState,
    image: images.Image,
    *,
    metrics_port: int,
    health_port: int,
    webhook_port: int | None = None,
) -> dict[str, Any]:
    """Pure: the chart values that make the operator run on the local plane's real node.

    The API server reaches the admission webhook by URL at the node's address (no Service
    network here); the operator's own certificate names that address."""
    assert state.node is not None
    ip = state.node.ip
    hook = webhook_port if webhook_port is not None else health_port + 1
    return {
        "image": {"repository": image.repository, "tag": image.tag, "pullPolicy": "Never"},
        "hostNetwork": True,
        "replicaCount": 1,  # one node, and with hostNetwork at most one replica per node
        "apiServer": {"host": "127.0.0.1", "port": str(state.apiserver_port)},
        "metrics": {"port": metrics_port, "bindAddress": ip},
        "health": {"port": health_port, "bindAddress": ip},
        "webhook": {"port": hook, "bindAddress": ip, "url": f"https://{ip}:{hook}"},
        "nodeSelector": {REAL_NODE_LABEL: "true"},
    }


def helm(state: PlaneState, *args: str, timeout: float = 600) -> str:
    argv = [str(ensure_helm()), "--kubeconfig", str(state.kubeconfig), *args]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        raise ChartError(f"helm {' '.join(args[:2])} failed:\n{proc.stderr.strip()[-3000:]}")
    return proc.stdout


def kubectl(state: PlaneState, *args: str, timeout: float = 120) -> str:
    argv = [state.kubectl, "--kubeconfig", str(state.kubeconfig), *args]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        raise ChartError(f"kubectl {' '.join(args[:2])} failed: {proc.stderr.strip()[-2000:]}")
    return proc.stdout


def build_and_import(state: PlaneState, context: Path) -> images.Image:
    """The operator image from ``context/Dockerfile``, loaded into the real node's containerd."""
    if state.node is None:
        raise ChartError("the plane has no real node: start it with `kubatch local up --real-node`")
    image = images.operator_image(context)
    containerd.import_images(state.node.socket, [image])
    return image


def install(
    state: PlaneState,
    chart: Path,
    image: images.Image,
    *,
    release: str = RELEASE,
    namespace: str = NAMESPACE,
    extra_values: dict[str, Any] | None = None,
    take_ownership: bool = False,
    timeout: float = 300,
) -> Installed:
    """``helm upgrade --install`` of ``chart`` with the local values; waits for the rollout.

    ``take_ownership`` is the one-time step from a chart that shipped its CRDs in ``crds/``
    (0.1.x): Helm then adopts the CRDs it did not create, and upgrades them from then on.
    """
    if not (chart / "Chart.yaml").is_file():
        raise ChartError(f"no Helm chart at {chart}")
    metrics_port, health_port, webhook_port = free_port(), free_port(), free_port()
    values = local_values(state, image, metrics_port=metrics_port, health_port=health_port,
                          webhook_port=webhook_port)  # fmt: skip
    for key, value in (extra_values or {}).items():
        values[key] = value
    values_file = Path(state.state_dir) / f"helm-values-{release}.yaml"
    values_file.write_text(yaml.safe_dump(values))
    args = [
        "upgrade", "--install", release, str(chart), "--namespace", namespace,
        "--create-namespace", "--values", str(values_file),
        "--wait=watcher", f"--timeout={int(timeout)}s",
    ]  # fmt: skip
    if take_ownership:
        args.append("--take-ownership")
    t0 = time.monotonic()
    try:
        helm(state, *args, timeout=timeout + 60)
    except ChartError as exc:
        raise ChartError(f"{exc}\n{pod_report(state, release, namespace)}") from None
    print(
        f"kubatch local: chart {chart.name} installed as {namespace}/{release} with {image.name} "
        f"({time.monotonic() - t0:.0f}s)",
        file=sys.stderr,
    )
    assert state.node is not None
    return Installed(release, namespace, image.name, state.node.ip, metrics_port, health_port)


def operator_pods(state: PlaneState, release: str, namespace: str) -> list[dict[str, Any]]:
    out = kubectl(
        state, "get", "pods", "-n", namespace, "-l", f"app.kubernetes.io/instance={release}",
        "-o", "json",
    )  # fmt: skip
    items: list[dict[str, Any]] = json.loads(out)["items"]
    return items


def pod_report(state: PlaneState, release: str, namespace: str) -> str:
    """Why the operator pod is not ready: its status and the last lines of its log."""
    lines = []
    try:
        for pod in operator_pods(state, release, namespace):
            name = pod["metadata"]["name"]
            lines.append(f"pod {name}: {json.dumps(pod.get('status', {}))[:2000]}")
            proc = subprocess.run(
                [state.kubectl, "--kubeconfig", str(state.kubeconfig), "logs", "-n", namespace,
                 name, "--tail=30"],
                capture_output=True, text=True, timeout=30, check=False,
            )  # fmt: skip
            lines.append(proc.stdout + proc.stderr)
    except (ChartError, subprocess.TimeoutExpired) as exc:
        lines.append(f"(no pod report: {exc})")
    return "\n".join(lines)


def uninstall(state: PlaneState, release: str = RELEASE, namespace: str = NAMESPACE) -> None:
    helm(state, "uninstall", release, "--namespace", namespace, "--wait", "--timeout=120s")
