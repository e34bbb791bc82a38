"""containerd for the real node: its configuration, ``ctr`` calls, and what it leaves behind.

containerd runs as root with its own root, state, socket, runc root and CNI directories under
the plane's state dir, so several planes (and a system containerd) never share anything. Pod
network namespaces are mounted under its state dir. Images are imported into the ``k8s.io``
namespace, where the CRI plugin (and so the kubelet) sees them.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from kubatch.local import packages
from kubatch.local.images import Image

NAMESPACE = "k8s.io"
POD_SUBNET = "10.88.0.0/16"
"""The pods' addresses, on a bridge without an address on the host: pods reach each other and
nothing else (no gateway, no route, no masquerading), and two planes never collide."""


class ContainerdError(RuntimeError):
    """containerd or ctr failed; the message says what and where its log is."""


def render_config(node_dir: Path, *, sandbox_image: str, cni_bin_dir: Path) -> str:
    """Pure: containerd's config.toml for a node rooted at ``node_dir``."""
    d = node_dir / "containerd"
    cri = 'plugins."io.containerd.grpc.v1.cri"'
    return f"""version = 2
root = "{d / "root"}"
state = "{d / "state"}"
oom_score = 0

[grpc]
  address = "{d / "containerd.sock"}"

[ttrpc]
  address = ""

[debug]
  address = ""

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "{d / "opt"}"

[{cri}]
  sandbox_image = "{sandbox_image}"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  disable_apparmor = true
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  max_container_log_line_size = 16384
  [{cri}.cni]
    bin_dir = "{cni_bin_dir}"
    conf_dir = "{node_dir / "cni" / "net.d"}"
    max_conf_num = 1
  [{cri}.containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [{cri}.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [{cri}.containerd.runtimes.runc.options]
        Root = "{d / "runc"}"
        SystemdCgroup = false
  [{cri}.registry]
    config_path = ""
"""


def render_cni(node_dir: Path, bridge: str) -> str:
    """Pure: the CNI network: a bridge with no host address, host-local IPAM under the node."""
    conf = {
        "cniVersion": "0.4.0",
        "name": "kubatch-local",
        "plugins": [
            {
                "type": "bridge",
                "bridge": bridge,
                "isGateway": False,
                "isDefaultGateway": False,
                "ipMasq": False,
                "hairpinMode": False,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": POD_SUBNET}]],
                    "dataDir": str(node_dir / "cni" / "ipam"),
                },
            }
        ],
    }
    return json.dumps(conf, indent=2)


def socket_path(node_dir: Path) -> Path:
    return node_dir / "containerd" / "containerd.sock"


def ctr(socket: Path, *args: str, timeout: float = 120) -> str:
    proc = subprocess.run(
        [packages.tool("ctr"), "--address", str(socket), "--namespace", NAMESPACE, *args],
        capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        raise ContainerdError(f"ctr {' '.join(args[:2])} failed: {proc.stderr.strip()[-1000:]}")
    return proc.stdout


def wait_ready(socket: Path, deadline: float, alive: Callable[[], bool] | None = None) -> None:
    last = ""
    while time.monotonic() < deadline:
        if socket.exists():
            try:
                ctr(socket, "version", timeout=5)
                return
            except (ContainerdError, subprocess.TimeoutExpired) as exc:
                last = str(exc)
        if alive is not None and not alive():
            raise ContainerdError("containerd exited during start-up (see logs/containerd.log)")
        time.sleep(0.1)
    raise ContainerdError(f"containerd did not answer on {socket}: {last}")


def images(socket: Path) -> set[str]:
    return set(ctr(socket, "images", "ls", "-q").split())


def import_images(socket: Path, wanted: list[Image]) -> None:
    """Load each OCI archive into the ``k8s.io`` namespace under its name (skip present ones)."""
    present = images(socket)
    for image in wanted:
        if image.name in present:
            continue
        ctr(socket, "images", "import", "--base-name", image.repository, str(image.archive))
        if image.name not in images(socket):
            raise ContainerdError(f"{image.archive} imported, but {image.name} is not listed")


def shim_pids(socket: Path) -> list[int]:
    """The runc shims this containerd started (their command line names its socket)."""
    needle = str(socket).encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if b"containerd-shim" in cmdline.split(b"\0", 1)[0] and needle in cmdline:
            found.append(int(entry.name))
    return found


def kill_shims(socket: Path) -> int:
    pids = shim_pids(socket)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return len(pids)
