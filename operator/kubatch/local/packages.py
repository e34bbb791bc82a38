"""Debian packages the real node and the local images need, installed with apt when missing.

Every package is checked by a file it installs (not by dpkg's database: a user may have the
tool from elsewhere), and the missing ones are installed in one ``apt-get install``. apt waits
for another apt's lock instead of failing, so two test runs may start at the same time.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

CNI_DIRS = (Path("/usr/lib/cni"), Path("/opt/cni/bin"))
"""Where Debian (first) and upstream tarballs put the CNI plugins."""

NODE_PACKAGES: Mapping[str, str] = {
    "containerd": "containerd",
    "runc": "runc",
    "containernetworking-plugins": "cni:bridge",
    "util-linux": "unshare",
    "iproute2": "ip",
}
"""The real node: package -> the command (or ``cni:<plugin>``) that shows it is there."""

IMAGE_PACKAGES: Mapping[str, str] = {
    "umoci": "umoci",
    "busybox-static": "file:/bin/busybox",
    "buildah": "buildah",
    "debootstrap": "debootstrap",
}
"""The local images: umoci packs busybox and pause; buildah builds the Dockerfile on a
debootstrapped base."""


class PackagesError(RuntimeError):
    """A package could not be installed; the message says what to do."""


def cni_bin_dir() -> Path | None:
    for d in CNI_DIRS:
        if (d / "bridge").is_file():
            return d
    return None


def _present(check: str) -> bool:
    if check.startswith("cni:"):
        d = cni_bin_dir()
        return d is not None and (d / check[4:]).is_file()
    if check.startswith("file:"):
        return Path(check[5:]).is_file()
    return shutil.which(check) is not None or any(
        (Path(d) / check).is_file() for d in ("/usr/sbin", "/sbin")
    )


def tool(name: str) -> str:
    """The path of a command, also where root's PATH lacks the sbin directories."""
    found = shutil.which(name)
    if found:
        return found
    for d in ("/usr/sbin", "/sbin", "/usr/bin", "/bin"):
        if (Path(d) / name).is_file():
            return str(Path(d) / name)
    return name


def missing(packages: Mapping[str, str]) -> list[str]:
    """The packages whose tell-tale file is absent."""
    return [name for name, check in packages.items() if not _present(check)]


def apt_available() -> bool:
    return shutil.which("apt-get") is not None and Path("/etc/debian_version").is_file()


def ensure(packages: Mapping[str, str], *, log: Callable[[str], None] | None = None) -> list[str]:
    """Install what is missing with apt-get (root); return what was installed."""
    todo = missing(packages)
    if not todo:
        return []
    if not apt_available():
        raise PackagesError(
            f"missing {', '.join(todo)} and this is not a Debian/Ubuntu system with apt-get: "
            "install them with your package manager"
        )
    if os.geteuid() != 0:
        raise PackagesError(f"need root to apt-get install {' '.join(todo)}")
    if log is not None:
        log(f"installing Debian packages: {' '.join(todo)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    lock = ["-o", "DPkg::Lock::Timeout=600"]
    install = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *lock, *todo]
    proc = subprocess.run(install, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:  # stale package lists: update once and retry
        subprocess.run(
            ["apt-get", "update", "-qq", *lock], env=env, capture_output=True, check=False
        )
        proc = subprocess.run(install, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise PackagesError(
            f"apt-get install {' '.join(todo)} failed: {(proc.stderr or proc.stdout)[-1500:]}"
        )
    still = missing({name: packages[name] for name in todo})
    if still:
        raise PackagesError(f"apt-get installed {' '.join(todo)} but {still} are still missing")
    return todo


_DEB822_URI = re.compile(r"^URIs:\s*(\S+)", re.MULTILINE)
_DEB822_SUITES = re.compile(r"^Suites:\s*(.+)$", re.MULTILINE)


def debian_mirror(suite: str = "bookworm", sources: Iterable[Path] | None = None) -> str:
    """The Debian mirror this machine's apt uses for ``suite`` (never a hard-coded host).

    Reads the deb822 ``*.sources`` files and the one-line ``sources.list`` format.
    """
    if sources is None:
        d = Path("/etc/apt/sources.list.d")
        sources = [*sorted(d.glob("*.sources")), *sorted(d.glob("*.list"))]
        sources = [*sources, Path("/etc/apt/sources.list")]
    for path in sources:
        try:
            text = path.read_text()
        except OSError:
            continue
        if path.suffix == ".sources":
            for stanza in text.split("\n\n"):
                uri = _DEB822_URI.search(stanza)
                suites = _DEB822_SUITES.search(stanza)
                if uri and suites and suite in suites.group(1).split():
                    return uri.group(1)
            continue
        for line in text.splitlines():
            words = re.sub(r"\[[^]]*\]", " ", line).split()
            if len(words) >= 3 and words[0] == "deb" and words[2] == suite:
                return words[1]
    raise PackagesError(
        f"no apt source for Debian {suite} found in /etc/apt: add one (deb <mirror> {suite} main)"
    )
