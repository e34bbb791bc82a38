"""The whole stack for end-to-end tests: the local control plane, kubatch's CRDs, the
simulated node pools (``kubatch sim run``) and the operator (``kubatch operator``), each in
its own process so that a test can kill the operator with SIGKILL and start it again.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.conftest import Kubectl, PlaneHandle, fresh_namespace, kubectl_for, plane_handle

ROOT = Path(__file__).resolve().parents[2]
PY = sys.executable


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Proc:
    argv: list[str]
    log: Path
    env: dict[str, str]
    popen: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        out = open(self.log, "ab")  # noqa: SIM115 - kept open for the child's lifetime
        self.popen = subprocess.Popen(
            self.argv, stdout=out, stderr=subprocess.STDOUT, env=self.env, cwd=ROOT,
            start_new_session=True,
        )  # fmt: skip

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> None:
        p = self.popen
        if p is None or p.poll() is not None:
            return
        p.send_signal(sig)
        try:
            p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=5)

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None


@dataclass
class Stack:
    plane: PlaneHandle
    kubectl: Kubectl
    workdir: Path
    operator: Proc
    sim: Proc
    metrics_port: int
    env: dict[str, str] = field(default_factory=dict)

    # -- objects ---------------------------------------------------------------------------
    def apply(self, docs: list[dict[str, Any]] | str, namespace: str | None = None) -> None:
        text = docs if isinstance(docs, str) else yaml.safe_dump_all(docs)
        self.kubectl("apply", "-f", "-", input=text, namespace=namespace)

    def get(self, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        proc = self.kubectl("get", kind, name, "-o", "json", namespace=namespace, check=False)
        if proc.returncode != 0:
            return None
        obj: dict[str, Any] = json.loads(proc.stdout)
        return obj

    def list(self, kind: str, namespace: str | None = None, *sel: str) -> list[dict[str, Any]]:
        proc = self.kubectl("get", kind, *sel, "-o", "json", namespace=namespace)
        items: list[dict[str, Any]] = json.loads(proc.stdout)["items"]
        return items

    def wait(
        self,
        what: str,
        probe: Callable[[], Any],
        timeout: float = 90,
        every: float = 0.5,
    ) -> Any:
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            last = probe()
            if last:
                return last
            if not self.operator.alive():
                raise AssertionError(f"the operator died; log:\n{self.operator_log()}")
            time.sleep(every)
        raise AssertionError(f"timed out waiting for {what}; last: {last!r}")

    def wait_phase(
        self, namespace: str, name: str, phases: tuple[str, ...] = ("Succeeded", "Failed"),
        timeout: float = 120,
    ) -> dict[str, Any]:  # fmt: skip
        def probe() -> dict[str, Any] | None:
            bj = self.get("batchjob", name, namespace)
            if bj and (bj.get("status") or {}).get("phase") in phases:
                return bj
            return None

        try:
            result: dict[str, Any] = self.wait(f"{namespace}/{name} in {phases}", probe, timeout)
        except AssertionError:
            bj = self.get("batchjob", name, namespace)
            raise AssertionError(
                f"{namespace}/{name} never reached {phases}: status="
                f"{json.dumps((bj or {}).get('status'), indent=1)[:3000]}"
            ) from None
        return result

    def operator_log(self) -> str:
        return self.operator.log.read_text(errors="replace")[-6000:]

    # -- processes -------------------------------------------------------------------------
    def kill_operator(self) -> None:
        self.operator.stop(signal.SIGKILL)

    def start_operator(self) -> None:
        self.operator.start()

    def reclaim(self, ce: str, fraction: float = 1.0) -> str:
        proc = subprocess.run(
            [PY, "-m", "kubatch.cli", "sim", "reclaim", "--compute-environment", ce,
             "--fraction", str(fraction)],
            env=self.env, capture_output=True, text=True, timeout=60, check=True, cwd=ROOT,
        )  # fmt: skip
        return proc.stdout

    def metrics(self) -> str:
        import urllib.request

        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as resp:
            return str(resp.read().decode())


# The e2e tier runs its own operator and simulator, which act on every object of their plane:
# it gets a plane of its own, so that integration tests never see them.
@pytest.fixture(scope="session")
def local_plane() -> Iterator[PlaneHandle]:
    yield from plane_handle("kubatch-e2e-plane-")


@pytest.fixture(scope="session")
def kubectl(local_plane: PlaneHandle) -> Kubectl:
    return kubectl_for(local_plane)


@pytest.fixture
def namespace(kubectl: Kubectl) -> Iterator[str]:
    yield from fresh_namespace(kubectl)


@pytest.fixture(scope="session")
def stack(local_plane: PlaneHandle, kubectl: Kubectl) -> Iterator[Stack]:
    kubectl("apply", "-f", str(ROOT / "crds"))
    kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
    workdir = Path(tempfile.mkdtemp(prefix="kubatch-e2e-"))
    env = {**os.environ, "KUBECONFIG": str(local_plane.kubeconfig), "PYTHONUNBUFFERED": "1"}
    port = free_port()
    sim = Proc(
        [PY, "-m", "kubatch.cli", "sim", "run", "--provisioning-delay", "0.5",
         "--scale-down-delay", "30", "--heartbeat-interval", "10",
         "--stats-file", str(workdir / "sim-stats.json")],
        workdir / "sim.log", env,
    )  # fmt: skip
    op = Proc(
        [PY, "-m", "kubatch.cli", "operator", "--metrics-port", str(port)],
        workdir / "operator.log", env,
    )  # fmt: skip
    sim.start()
    op.start()
    s = Stack(local_plane, kubectl, workdir, op, sim, port, env)
    try:
        yield s
    finally:
        op.stop()
        sim.stop()
