"""Container images for the real node, built without any registry and cached.

- ``pause``: the pod sandbox, from the pause program of the Kubernetes source
  (``build/pause/linux/pause.c``, compiled by ``build-kubernetes.sh``), packed with umoci;
- ``busybox``: Debian's ``busybox-static`` binary and its applet links, packed with umoci;
- the base ``kubatch.local/python:3.11-slim-bookworm``: a debootstrap of Debian bookworm
  (minbase + python3.11 + venv), the local stand-in for the public ``python:3.11-slim``;
- the operator: the project's own ``Dockerfile`` built by buildah on that base
  (``--build-arg BASE_IMAGE=…``), with buildah's layer cache.

Every image ends as an OCI archive under ``~/.cache/kubatch/images`` (``$KUBATCH_CACHE_DIR``)
that ``containerd.import_images`` loads into containerd's ``k8s.io`` namespace; an archive is
rebuilt only when its inputs change. Names live under ``kubatch.local/``, a registry that does
not exist: pods that use them must never pull (``imagePullPolicy: IfNotPresent`` or ``Never``).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from kubatch.local import packages
from kubatch.local.binaries import cache_root

REGISTRY = "kubatch.local"
PAUSE_NAME = f"{REGISTRY}/pause:3.4"
BUSYBOX_NAME = f"{REGISTRY}/busybox:static"
"""A stable name whatever Debian's busybox version (the image's version label has it)."""
BASE_NAME = f"{REGISTRY}/python:3.11-slim-bookworm"
OPERATOR_REPO = f"{REGISTRY}/kubatch"
BASE_SUITE = "bookworm"
BASE_PACKAGES = ("python3", "python3-venv", "python-is-python3", "ca-certificates")
BASE_RECIPE = "3"
"""Bump when the base's recipe changes (the cache key also covers suite, packages, host CAs)."""


class ImageError(RuntimeError):
    """An image could not be built; the message says what failed and where the log is."""


@dataclass(frozen=True)
class Image:
    name: str
    """Full reference, e.g. ``kubatch.local/busybox:static``."""
    archive: Path
    """OCI archive (tar of an OCI layout) holding exactly this image."""

    @property
    def repository(self) -> str:
        return self.name.rsplit(":", 1)[0]

    @property
    def tag(self) -> str:
        return self.name.rsplit(":", 1)[1]


def images_dir() -> Path:
    return cache_root() / "images"


def _log(msg: str) -> None:
    print(f"kubatch images: {msg}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def _locked() -> Iterator[Path]:
    """One builder at a time per cache (two test runs may start together)."""
    d = images_dir()
    d.mkdir(parents=True, exist_ok=True)
    with open(d / ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield d
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _run(
    argv: Sequence[str], what: str, *, log: Path | None = None, cwd: Path | None = None
) -> str:
    if log is not None:
        with open(log, "ab") as out:
            proc = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, cwd=cwd, check=False)
        if proc.returncode != 0:
            tail = log.read_text(errors="replace").splitlines()[-25:]
            raise ImageError(
                f"{what} failed (exit {proc.returncode}); log {log}:\n" + "\n".join(tail)
            )
        return ""
    res = subprocess.run(argv, capture_output=True, text=True, cwd=cwd, check=False)
    if res.returncode != 0:
        raise ImageError(f"{what} failed: {(res.stderr or res.stdout).strip()[-1500:]}")
    return res.stdout


def _digest(*parts: bytes) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(hashlib.sha256(p).digest())
    return h.hexdigest()[:16]


def _tar_dir(src: Path, out: Path) -> None:
    tmp = out.with_suffix(".partial")
    with tarfile.open(tmp, "w") as tar:
        for path in sorted(src.rglob("*")):
            tar.add(path, arcname=str(path.relative_to(src)), recursive=False)
    tmp.replace(out)


def _prune(d: Path, prefix: str, keep: int) -> None:
    """Drop all but the ``keep`` newest archives named ``<prefix>-*.tar``."""
    found = sorted(d.glob(f"{prefix}-*.tar"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in found[keep:]:
        old.unlink(missing_ok=True)


def _umoci_image(
    name: str,
    archive: Path,
    files: dict[str, Path],
    links: dict[str, str],
    *,
    entrypoint: Sequence[str] = (),
    cmd: Sequence[str] = (),
    env: Sequence[str] = ("PATH=/bin:/usr/bin",),
    labels: dict[str, str] | None = None,
) -> None:
    """An OCI archive of one layer holding ``files`` (dest -> source) and symlinks."""
    packages.ensure({"umoci": "umoci"}, log=_log)
    umoci = packages.tool("umoci")
    tag = name.rsplit(":", 1)[1]
    with tempfile.TemporaryDirectory(dir=images_dir(), prefix="umoci-") as tmp:
        layout, bundle = Path(tmp) / "layout", Path(tmp) / "bundle"
        image = f"{layout}:{tag}"
        _run([umoci, "init", "--layout", str(layout)], "umoci init")
        _run([umoci, "new", "--image", image], "umoci new")
        _run([umoci, "unpack", "--image", image, str(bundle)], "umoci unpack")
        rootfs = bundle / "rootfs"
        for dest, src in files.items():
            target = rootfs / dest.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, target)
        for dest, to in links.items():
            target = rootfs / dest.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(to)
        _run([umoci, "repack", "--image", image, str(bundle)], "umoci repack")
        config = [umoci, "config", "--image", image, "--no-history"]
        for e in env:
            config += ["--config.env", e]
        for e in entrypoint:
            config += ["--config.entrypoint", e]
        for c in cmd:
            config += ["--config.cmd", c]
        for key, value in (labels or {}).items():
            config += ["--config.label", f"{key}={value}"]
        _run(config, "umoci config")
        _run([umoci, "gc", "--layout", str(layout)], "umoci gc")
        _tar_dir(layout, archive)
    _prune(archive.parent, archive.name.split("-", 1)[0], keep=1)


def busybox_image() -> Image:
    """Debian's static busybox with a link per applet under /bin (name contains ``busybox``)."""
    packages.ensure({"busybox-static": "file:/bin/busybox"}, log=_log)
    binary = Path("/bin/busybox")
    data = binary.read_bytes()
    if re.search(rb"/ld-linux|/ld-musl", data[:16384]):
        raise ImageError(
            f"{binary} is dynamically linked (Debian's busybox): apt-get install busybox-static"
        )
    found = re.search(rb"BusyBox v(\d+\.\d+\.\d+)", data)
    version = found.group(1).decode() if found else "unknown"
    name = BUSYBOX_NAME
    with _locked() as d:
        archive = d / f"busybox-{_digest(data, name.encode())}.tar"
        if not archive.is_file():
            _log(f"building {name} from {binary}")
            applets = _run([str(binary), "--list"], "busybox --list").split()
            links = {f"/bin/{a}": "busybox" for a in applets if a != "busybox"}
            _umoci_image(
                name, archive, {"/bin/busybox": binary}, links, cmd=["sh"],
                labels={"org.opencontainers.image.version": version},
            )  # fmt: skip
    return Image(name, archive)


def pause_image(pause_binary: Path) -> Image:
    """The pod sandbox image: the static pause program as ``/pause``."""
    data = pause_binary.read_bytes()
    with _locked() as d:
        archive = d / f"pause-{_digest(data, PAUSE_NAME.encode())}.tar"
        if not archive.is_file():
            _log(f"building {PAUSE_NAME} from {pause_binary}")
            _umoci_image(PAUSE_NAME, archive, {"/pause": pause_binary}, {}, entrypoint=["/pause"])
    return Image(PAUSE_NAME, archive)


# -- buildah: the base and the operator --------------------------------------------------------


def _buildah_dirs() -> tuple[Path, Path]:
    root = images_dir() / "buildah"
    return root / "storage", root / "run"


def _policy() -> Path:
    path = images_dir() / "policy.json"
    if not path.is_file():
        # Only local transports (containers-storage, oci-archive) are ever used.
        path.write_text(json.dumps({"default": [{"type": "insecureAcceptAnything"}]}))
    return path


def buildah(*args: str, what: str, log: Path | None = None, cwd: Path | None = None) -> str:
    storage, run = _buildah_dirs()
    argv = [
        packages.tool("buildah"), "--root", str(storage), "--runroot", str(run),
        "--storage-driver", "overlay", *args,
    ]  # fmt: skip
    return _run(argv, what, log=log, cwd=cwd)


def _image_id(name: str) -> str | None:
    try:
        out = buildah("inspect", "--type", "image", "--format", "{{.FromImageID}}", name,
                      what=f"buildah inspect {name}")  # fmt: skip
    except ImageError:
        return None
    return out.strip() or None


def _label(name: str, key: str) -> str | None:
    try:
        out = buildah("inspect", "--type", "image", name, what=f"buildah inspect {name}")
    except ImageError:
        return None
    labels = (json.loads(out).get("OCIv1") or {}).get("config", {}).get("Labels") or {}
    value = labels.get(key)
    return str(value) if value is not None else None


def _host_cas() -> list[Path]:
    """CAs this machine trusts beyond Debian's (e.g. a TLS-intercepting egress proxy)."""
    return sorted(Path("/usr/local/share/ca-certificates").glob("**/*.crt"))


def _base_key() -> str:
    cas = b"".join(p.read_bytes() for p in _host_cas())
    return _digest(BASE_RECIPE.encode(), BASE_SUITE.encode(), " ".join(BASE_PACKAGES).encode(), cas)


def base_image() -> str:
    """``kubatch.local/python:3.11-slim-bookworm`` in buildah's storage (debootstrap, once)."""
    packages.ensure(packages.IMAGE_PACKAGES, log=_log)
    key = _base_key()
    with _locked() as d:
        if _label(BASE_NAME, "io.kubatch.recipe") == key:
            return BASE_NAME
        log = d / "base.log"
        log.write_text("")
        mirror = packages.debian_mirror(BASE_SUITE)
        t0 = time.monotonic()
        _log(f"making {BASE_NAME}: debootstrap {BASE_SUITE} from {mirror} (once; ~2 min)")
        with tempfile.TemporaryDirectory(dir=d, prefix="base-") as tmp:
            rootfs = Path(tmp) / "rootfs"
            _run(
                [packages.tool("debootstrap"), "--variant=minbase",
                 f"--include={','.join(BASE_PACKAGES)}", BASE_SUITE, str(rootfs), mirror],
                "debootstrap", log=log,
            )  # fmt: skip
            _customize_base(rootfs, log)
            tar = Path(tmp) / "rootfs.tar"
            _run(
                ["tar", "-C", str(rootfs), "--numeric-owner", "--xattrs",
                 "--exclude=./dev/*", "--exclude=./proc/*", "--exclude=./sys/*",
                 "-cf", str(tar), "."],
                "tar of the base rootfs", log=log,
            )  # fmt: skip
            ctr = buildah("from", "--signature-policy", str(_policy()), "scratch",
                          what="buildah from scratch").strip()  # fmt: skip
            try:
                buildah("add", ctr, str(tar), "/", what="buildah add", log=log)
                buildah(
                    "config", "--os", "linux", "--arch", "amd64",
                    "--env", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                    "--env", "LANG=C.UTF-8", "--cmd", "python3",
                    "--label", f"io.kubatch.recipe={key}", ctr,
                    what="buildah config", log=log,
                )  # fmt: skip
                buildah("commit", "--rm", ctr, BASE_NAME, what="buildah commit", log=log)
            except BaseException:
                with contextlib.suppress(ImageError):
                    buildah("rm", ctr, what="buildah rm")
                raise
        _log(f"{BASE_NAME} made in {time.monotonic() - t0:.0f}s")
    return BASE_NAME


def _customize_base(rootfs: Path, log: Path) -> None:
    """Slim the debootstrap like python:3.11-slim, and trust what the host trusts."""
    chroot = packages.tool("chroot")
    version = _run([chroot, str(rootfs), "python3", "--version"], "python3 --version")
    if not version.startswith("Python 3.11"):
        raise ImageError(f"the bookworm base has {version.strip()}, expected Python 3.11")
    cas = _host_cas()
    if cas:
        dest = rootfs / "usr/local/share/ca-certificates"
        dest.mkdir(parents=True, exist_ok=True)
        for ca in cas:
            shutil.copy2(ca, dest / ca.name)
        _run([chroot, str(rootfs), "update-ca-certificates"], "update-ca-certificates", log=log)
    # pip's own CA bundle (certifi) does not know the host's CAs: use the system store.
    (rootfs / "etc/pip.conf").write_text("[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n")
    for junk in ("var/lib/apt/lists", "var/cache/apt", "usr/share/doc", "usr/share/man",
                 "usr/share/info", "usr/share/locale", "var/log"):  # fmt: skip
        path = rootfs / junk
        if path.is_dir():
            for child in path.iterdir():
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child, ignore_errors=True)
                else:
                    child.unlink(missing_ok=True)
    (rootfs / "etc/resolv.conf").unlink(missing_ok=True)


def operator_image(context: Path, *, version: str = "0.1.0") -> Image:
    """The operator image built from ``context/Dockerfile`` on the local base (layer cache).

    The tag carries the image ID (``0.1.0-<id>``): a changed Dockerfile or source gives a new
    tag, so a Deployment that names it rolls, and an unchanged one is reused as it is.
    """
    base = base_image()
    dockerfile = context / "Dockerfile"
    if not dockerfile.is_file():
        raise ImageError(f"no Dockerfile in {context}")
    with _locked() as d:
        log = d / "operator.log"
        log.write_text("")
        iid = d / "operator.iid"
        t0 = time.monotonic()
        buildah(
            "bud", "--layers", "--pull=never", "--isolation", "chroot", "--network", "host",
            "--signature-policy", str(_policy()),
            "--build-arg", f"BASE_IMAGE={base}", "--iidfile", str(iid),
            "-f", str(dockerfile), "-t", f"{OPERATOR_REPO}:build", str(context),
            what="buildah bud of the Dockerfile", log=log,
        )  # fmt: skip
        image_id = iid.read_text().strip().removeprefix("sha256:")
        name = f"{OPERATOR_REPO}:{version}-{image_id[:12]}"
        archive = d / f"operator-{image_id[:12]}.tar"
        if not archive.is_file():
            buildah("tag", image_id, name, what="buildah tag")
            partial = archive.with_suffix(".partial")
            partial.unlink(missing_ok=True)
            buildah(
                "push", "--signature-policy", str(_policy()), image_id,
                f"oci-archive:{partial}:{name}", what="buildah push", log=log,
            )  # fmt: skip
            partial.replace(archive)
            _prune(d, "operator", keep=3)
        _log(f"{name} ready ({time.monotonic() - t0:.0f}s)")
    return Image(name, archive)
