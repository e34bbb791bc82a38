"""What the benchmarks share: a work directory with a control plane, and writing results."""

from __future__ import annotations

import contextlib
import json
import shutil
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Site:
    """Where a benchmark runs: its work directory, the cluster's kubeconfig and, for a local
    plane, etcd's metrics URL (its database size)."""

    work: Path
    kubeconfig: Path
    etcd_metrics: str | None = None
    kcm_metrics: str | None = None
    """kube-controller-manager's /metrics (the Job controller's workqueue), read with
    ``token``."""
    token: str | None = None


@contextlib.contextmanager
def workdir_and_plane(
    prefix: str, kubeconfig: Path | None = None, *, keep: bool = False
) -> Iterator[Site]:
    """A temporary work directory and a kubeconfig: ``kubeconfig`` when given, else a local
    control plane started in the work directory and stopped (by PID) at the end, also on
    error or Ctrl-C. With ``keep`` the work directory (logs) is left and its path printed."""
    from kubatch.local.plane import HOST, LocalPlane

    work = Path(tempfile.mkdtemp(prefix=prefix))
    plane = None
    etcd = kcm = token = None
    try:
        if kubeconfig is None:
            plane = LocalPlane(work / "plane")
            state = plane.up(timeout=180)
            print(f"plane up at {state.server}; work dir {work}", file=sys.stderr, flush=True)
            kubeconfig = state.kubeconfig
            etcd = next(
                (f"http://{HOST}:{p.port}/metrics" for p in state.processes if p.name == "etcd"),
                None,
            )
            kcm = next((f"https://{HOST}:{p.port}/metrics" for p in state.processes
                        if p.name == "kube-controller-manager"), None)  # fmt: skip
            token = state.token
        yield Site(work, kubeconfig, etcd, kcm, token)
    finally:
        if plane is not None:
            plane.down()
        if keep:
            print(f"logs kept in {work}", file=sys.stderr, flush=True)
        else:
            shutil.rmtree(work, ignore_errors=True)


def write_json(result: dict[str, Any], path: Path | None) -> None:
    """The results as indented JSON at ``path`` (directories made); nothing when None."""
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=2) + "\n")
