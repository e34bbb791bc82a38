"""Shared fixtures: one real local control plane per test run, a fresh namespace per test.

The plane is started on first use by an integration or e2e test and stopped at the end of
the session, even when tests fail. Set ``KUBATCH_TEST_KUBECONFIG`` to use a plane that is
already running (e.g. from ``kubatch local up``) instead; it is then left running.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

Kubectl = Callable[..., "subprocess.CompletedProcess[str]"]


@dataclass(frozen=True)
class PlaneHandle:
    kubeconfig: Path
    kubectl: Path
    server: str
    token: str


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        path = str(item.fspath)
        if f"{os.sep}integration{os.sep}" in path:
            item.add_marker(pytest.mark.integration)
        elif f"{os.sep}e2e{os.sep}" in path:
            item.add_marker(pytest.mark.e2e)


def plane_handle(prefix: str) -> Iterator[PlaneHandle]:
    """Start a local plane in a fresh state dir (or use ``KUBATCH_TEST_KUBECONFIG``) and stop
    it when the generator is closed, even after failures."""
    from kubatch.local import binaries
    from kubatch.local.plane import LocalPlane

    external = os.environ.get("KUBATCH_TEST_KUBECONFIG")
    if external:
        import yaml

        cfg = yaml.safe_load(Path(external).read_text())
        yield PlaneHandle(
            kubeconfig=Path(external),
            kubectl=binaries.ensure(allow_build=False).kubectl,
            server=cfg["clusters"][0]["cluster"]["server"],
            token=cfg["users"][0]["user"]["token"],
        )
        return
    state_dir = Path(tempfile.mkdtemp(prefix=prefix))
    plane = LocalPlane(state_dir)
    try:
        state = plane.up(timeout=180, allow_build=False)
        yield PlaneHandle(
            kubeconfig=state.kubeconfig,
            kubectl=Path(state.kubectl),
            server=state.server,
            token=state.token,
        )
    finally:
        plane.down()


def kubectl_for(plane: PlaneHandle) -> Kubectl:
    """A ``kubectl(*args, input=, check=, namespace=, timeout=)`` bound to ``plane``."""

    def run(
        *args: str,
        input: str | None = None,
        check: bool = True,
        namespace: str | None = None,
        timeout: float = 120,
    ) -> subprocess.CompletedProcess[str]:
        cmd = [str(plane.kubectl), "--kubeconfig", str(plane.kubeconfig)]
        if namespace:
            cmd += ["-n", namespace]
        cmd += list(args)
        proc = subprocess.run(
            cmd, input=input, capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"kubectl {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}{proc.stdout}"
            )
        return proc

    return run


def fresh_namespace(kubectl: Kubectl) -> Iterator[str]:
    name = f"t-{uuid.uuid4().hex[:10]}"
    kubectl("create", "namespace", name)
    try:
        yield name
    finally:
        kubectl("delete", "namespace", name, "--wait=false", check=False)


def plane_fixtures(prefix: str) -> tuple[Any, Any, Any]:
    """The ``local_plane`` and ``kubectl`` (session) and ``namespace`` (per test) fixtures of a
    tier with a plane of its own, whose state dir is named ``prefix...``."""

    @pytest.fixture(scope="session", name="local_plane")
    def local_plane() -> Iterator[PlaneHandle]:
        yield from plane_handle(prefix)

    @pytest.fixture(scope="session", name="kubectl")
    def kubectl(local_plane: PlaneHandle) -> Kubectl:
        return kubectl_for(local_plane)

    @pytest.fixture(name="namespace")
    def namespace(kubectl: Kubectl) -> Iterator[str]:
        yield from fresh_namespace(kubectl)

    return local_plane, kubectl, namespace


local_plane, kubectl, namespace = plane_fixtures("kubatch-test-plane-")


@pytest.fixture(scope="session")
def k8s_api(local_plane: PlaneHandle) -> Iterator[object]:
    from kubernetes import client, config

    cfg = client.Configuration()
    config.load_kube_config(config_file=str(local_plane.kubeconfig), client_configuration=cfg)
    api = client.ApiClient(cfg)
    try:
        yield api
    finally:
        api.close()
