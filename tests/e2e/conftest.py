"""The whole stack for end-to-end tests: the local control plane, kubatch's CRDs, the
simulated node pools (``kubatch sim run``) and the operator (``kubatch operator``), each in
its own process so that a test can kill the operator with SIGKILL and start it again. The
start-up is the demo's and the benchmark's: ``kubatch.devkit.stack``.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.conftest import Kubectl, PlaneHandle, plane_fixtures

from kubatch.devkit.polling import eventually
from kubatch.devkit.stack import Stack as Processes

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Stack:
    """The plane, a kubectl for it, and kubatch's processes on it (``kubatch.devkit.stack``)."""

    plane: PlaneHandle
    kubectl: Kubectl
    processes: Processes

    @property
    def workdir(self) -> Path:
        return self.processes.workdir

    @property
    def env(self) -> dict[str, str]:
        return self.processes.env

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
        """``probe()`` until truthy (devkit's ``eventually``); fails at once if the operator
        died."""
        return eventually(probe, what=what, timeout=timeout, every=every, check=self._alive)

    def _alive(self) -> None:
        if not self.processes.operator.alive():
            raise AssertionError(f"the operator died; log:\n{self.operator_log()}")

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
        return self.processes.operator.tail(80)

    # -- processes -------------------------------------------------------------------------
    def kill_operator(self) -> None:
        self.processes.operator.kill()

    def start_operator(self) -> None:
        self.processes.start_operator(wait=False)

    @contextlib.contextmanager
    def webhook_off(self) -> Iterator[None]:
        """Without kubatch's admission webhook for a while (as on a cluster without it, or for
        objects that predate it): only the operator's own validation stands."""
        self.processes.webhook_off()
        try:
            yield
        finally:
            self.processes.webhook_on()

    def reclaim(self, ce: str, fraction: float = 1.0) -> str:
        return self.processes.reclaim(ce, fraction)

    def metrics(self) -> str:
        return self.processes.metrics_text()


# The e2e tier runs its own operator and simulator, which act on every object of their plane:
# it gets a plane of its own, so that integration tests never see them.
local_plane, kubectl, namespace = plane_fixtures("kubatch-e2e-plane-")


@pytest.fixture(scope="session")
def stack(local_plane: PlaneHandle, kubectl: Kubectl) -> Iterator[Stack]:
    workdir = Path(tempfile.mkdtemp(prefix="kubatch-e2e-"))
    processes = Processes.prepare(local_plane.kubeconfig, workdir, cwd=ROOT)
    processes.install_crds()
    try:
        processes.start()
        yield Stack(local_plane, kubectl, processes)
    finally:
        processes.stop()
