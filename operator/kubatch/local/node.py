"""A real node on the local plane: the kubelet, talking CRI to containerd, running runc.

What keeps it to itself on a machine that others share (and where several planes may run):

- containerd and the kubelet share one private **mount namespace** (``unshare``, then
  ``nsenter``): ``/var/lib/kubelet`` and ``/var/log/pods`` — paths the 1.20 kubelet hard-codes
  — are bind mounts of directories under the plane's state dir, and every mount they make
  (volumes, rootfs, network namespaces) lives and dies with that namespace;
- the kernel settings the kubelet would change host-wide (``kernel.panic_on_oops=1``,
  ``kernel.panic=10``, ``vm.overcommit_memory=1``) are shadowed in that namespace by files that
  already hold the wanted values, so the host's stay as they are; the kubelet's iptables
  chains are off;
- the pods' cgroups live under ``/kubatch-<id>`` (cgroupfs driver, cgroup v1);
- the pods' network is a bridge ``kb<id>`` with no address on the host: no route in or out;
- the node's address is a /32 of 198.18.0.0/15 (reserved for benchmarks, never routed) on the
  loopback interface: the 1.20 kubelet refuses 127.0.0.1 as a node IP, and this one is just
  as local. The kubelet serves on it (the API server's ``kubectl logs``/``exec`` go there,
  with a client certificate); ``hostNetwork`` pods have it as their pod IP.

The node registers as ``kubatch-real-node`` with the labels of ``NODE_LABELS``; containerd
clamps containers' ``oom_score_adj`` to its own (the machine's root may lack
CAP_SYS_RESOURCE, which lowering it needs).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from kubatch.local import containerd, packages
from kubatch.local.images import Image

NODE_NAME = "kubatch-real-node"
REAL_NODE_LABEL = "kubatch.io/real-node"
NODE_LABELS = {
    "kubatch.io/compute-environment": "real-node",
    "kubatch.io/capacity-type": "on-demand",
    REAL_NODE_LABEL: "true",
}
CGROUP_FS = Path("/sys/fs/cgroup")
KERNEL_TUNABLES = {
    "vm/overcommit_memory": 1,
    "vm/panic_on_oom": 0,
    "kernel/panic": 10,
    "kernel/panic_on_oops": 1,
    "kernel/keys/root_maxkeys": 1000000,
    "kernel/keys/root_maxbytes": 25000000,
}
"""What the 1.20 kubelet sets (pkg/kubelet/cm setupKernelTunables) unless they already hold."""


class NodeError(RuntimeError):
    """The real node could not start; the message says what to do."""


@dataclass
class NodeState:
    name: str
    node_id: str
    ip: str
    dir: str
    cgroup_root: str
    bridge: str
    kubelet_port: int
    healthz_port: int
    images: list[str]

    @property
    def socket(self) -> Path:
        return containerd.socket_path(Path(self.dir))


def unavailable_reason() -> str | None:
    """Why this machine cannot run a real node (the caller skips), or None when it can.

    Packages that apt can install are not a reason: they are installed, and a failure then is
    an error.
    """
    if sys.platform != "linux":
        return f"a real node needs Linux (this is {sys.platform})"
    if os.geteuid() != 0:
        return "a real node needs root (containerd, runc and the kubelet run as root)"
    if (CGROUP_FS / "cgroup.controllers").is_file():
        return "a real node needs cgroup v1 (this machine has the unified cgroup v2 hierarchy)"
    if not (CGROUP_FS / "memory" / "memory.limit_in_bytes").is_file():
        return "a real node needs the cgroup v1 memory controller mounted at /sys/fs/cgroup/memory"
    if packages.missing(packages.NODE_PACKAGES) and not packages.apt_available():
        need = ", ".join(packages.missing(packages.NODE_PACKAGES))
        return f"{need} missing and no apt-get to install them"
    return None


def node_ip(node_id: str, taken: set[str]) -> str:
    """Pure: the node's /32 in 198.18.0.0/15 from its id, avoiding addresses in use."""
    n = int(node_id[:4], 16) % (2 * 256 * 254)
    for step in range(2 * 256 * 254):
        k = (n + step) % (2 * 256 * 254)
        second, rest = divmod(k, 256 * 254)
        third, fourth = divmod(rest, 254)
        ip = f"198.{18 + second}.{third}.{fourth + 1}"
        if ip not in taken:
            return ip
    raise NodeError("no free address in 198.18.0.0/15")


def _host_ipv4() -> set[str]:
    out = subprocess.run(
        [packages.tool("ip"), "-o", "-4", "addr", "show"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    return {line.split()[3].split("/")[0] for line in out.splitlines() if len(line.split()) > 3}


def add_node_address(ip: str) -> None:
    proc = subprocess.run(
        [packages.tool("ip"), "addr", "add", f"{ip}/32", "dev", "lo", "scope", "host"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if proc.returncode != 0 and "File exists" not in proc.stderr:
        raise NodeError(f"cannot add the node address {ip} to lo: {proc.stderr.strip()}")


def remove_node_address(ip: str) -> None:
    subprocess.run(
        [packages.tool("ip"), "addr", "del", f"{ip}/32", "dev", "lo"],
        capture_output=True,
        check=False,
    )


def new_state(plane_dir: Path, kubelet_port: int, healthz_port: int) -> NodeState:
    node_id = hashlib.sha256(str(plane_dir).encode()).hexdigest()[:8]
    return NodeState(
        name=NODE_NAME,
        node_id=node_id,
        ip=node_ip(node_id, _host_ipv4()),
        dir=str(plane_dir / "node"),
        cgroup_root=f"/kubatch-{node_id}",
        bridge=f"kb{node_id}",
        kubelet_port=kubelet_port,
        healthz_port=healthz_port,
        images=[],
    )


# -- configuration (pure) ----------------------------------------------------------------------


def render_kubelet_config(node: NodeState, ca: Path) -> str:
    """Pure: the KubeletConfiguration of the node."""
    cfg = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": node.ip,
        "port": node.kubelet_port,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": node.healthz_port,
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True, "cacheTTL": "30s"},
            "x509": {"clientCAFile": str(ca)},
        },
        "authorization": {"mode": "Webhook"},
        "cgroupDriver": "cgroupfs",
        "cgroupRoot": node.cgroup_root,
        "cgroupsPerQOS": True,
        "enforceNodeAllocatable": ["pods"],
        "failSwapOn": False,
        "makeIPTablesUtilChains": False,
        "protectKernelDefaults": False,
        "evictionHard": {
            "memory.available": "100Mi",
            "nodefs.available": "1%",
            "imagefs.available": "1%",
            "nodefs.inodesFree": "1%",
        },
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "serializeImagePulls": False,
        "syncFrequency": "10s",
        "nodeStatusUpdateFrequency": "2s",
        "kubeAPIQPS": 50,
        "kubeAPIBurst": 100,
        "maxPods": 110,
        "podPidsLimit": 4096,
        "containerLogMaxSize": "10Mi",
        "runtimeRequestTimeout": "2m",
        "volumeStatsAggPeriod": "1m",
    }
    return json.dumps(cfg, indent=2)


def kubelet_argv(
    kubelet: Path, node: NodeState, config: Path, kubeconfig: Path, pause: str
) -> list[str]:
    labels = ",".join(f"{k}={v}" for k, v in NODE_LABELS.items())
    return [
        str(kubelet),
        f"--config={config}",
        f"--kubeconfig={kubeconfig}",
        "--container-runtime=remote",
        f"--container-runtime-endpoint=unix://{node.socket}",
        f"--image-service-endpoint=unix://{node.socket}",
        f"--node-ip={node.ip}",
        f"--hostname-override={node.name}",
        f"--node-labels={labels}",
        f"--pod-infra-container-image={pause}",
        "--root-dir=/var/lib/kubelet",
        "--v=1",
    ]


_NAMESPACE_SCRIPT = r"""set -e
node=$1; shift
mkdir -p /var/lib/kubelet /var/log/pods
mount --bind "$node/kubelet" /var/lib/kubelet
mount --bind "$node/pod-logs" /var/log/pods
for f in "$node"/sysctl/*; do
  [ -f "$f" ] || continue
  mount --bind "$f" "/proc/sys/$(basename "$f" | tr . /)"
done
exec "$@"
"""


def containerd_argv(node: NodeState, config: Path) -> list[str]:
    """containerd as the first process of the node's private mount namespace."""
    return [
        packages.tool("unshare"), "--mount", "--propagation", "private", "--",
        "sh", "-c", _NAMESPACE_SCRIPT, "kubatch-node", node.dir,
        packages.tool("containerd"), "--config", str(config),
    ]  # fmt: skip


# -- cgroups and network -----------------------------------------------------------------------


def _hierarchies() -> list[Path]:
    """Mount points of the cgroup v1 hierarchies."""
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        pre, _, post = line.partition(" - ")
        if post.split()[:1] == ["cgroup"]:
            found.append(Path(pre.split()[4]))
    return found


def make_cgroup_root(root: str) -> None:
    for h in _hierarchies():
        d = h / root.lstrip("/")
        d.mkdir(exist_ok=True)
        for name in ("cpuset.cpus", "cpuset.mems"):  # a new cpuset starts empty
            parent, mine = h / name, d / name
            if parent.is_file() and not mine.read_text().strip():
                mine.write_text(parent.read_text())


def _cgroup_dirs(root: str) -> Iterator[Path]:
    """Every cgroup under ``root`` in every hierarchy, deepest first."""
    for h in _hierarchies():
        top = h / root.lstrip("/")
        if top.is_dir():
            yield from sorted(
                (p for p in top.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)
            )
            yield top


def kill_cgroup_processes(root: str) -> int:
    """SIGKILL every process in the node's cgroups (containers and pause processes)."""
    pids: set[int] = set()
    for d in _cgroup_dirs(root):
        with contextlib.suppress(OSError):
            pids.update(int(p) for p in (d / "cgroup.procs").read_text().split())
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return len(pids)


def remove_cgroup_root(root: str, timeout: float = 10.0) -> list[str]:
    """rmdir the node's cgroups (retrying while killed processes exit); return what is left."""
    deadline = time.monotonic() + timeout
    left: list[str] = []
    while True:
        left = []
        for d in _cgroup_dirs(root):
            try:
                d.rmdir()
            except FileNotFoundError:
                pass
            except OSError:
                left.append(str(d))
        if not left or time.monotonic() > deadline:
            return left
        kill_cgroup_processes(root)
        time.sleep(0.2)


def make_bridge(bridge: str) -> None:
    """The pods' bridge, made before the CNI plugin would: without IPv6, so that it has no
    link-local address either (the host stays unreachable from the pods)."""
    proc = subprocess.run(
        [packages.tool("ip"), "link", "add", "name", bridge, "type", "bridge"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if proc.returncode != 0 and "File exists" not in proc.stderr:
        raise NodeError(f"cannot create the bridge {bridge}: {proc.stderr.strip()}")
    ipv6 = Path(f"/proc/sys/net/ipv6/conf/{bridge}/disable_ipv6")
    if ipv6.exists():
        ipv6.write_text("1\n")
    subprocess.run(
        [packages.tool("ip"), "link", "set", bridge, "up"], capture_output=True, check=False
    )


def remove_bridge(bridge: str) -> None:
    """Delete the node's bridge and any veth still attached to it."""
    proc = subprocess.run(
        [packages.tool("ip"), "-o", "link", "show", "master", bridge],
        capture_output=True,
        text=True,
        check=False,
    )
    for line in proc.stdout.splitlines():
        name = line.split(":")[1].strip().split("@")[0]
        subprocess.run([packages.tool("ip"), "link", "del", name], capture_output=True, check=False)
    subprocess.run([packages.tool("ip"), "link", "del", bridge], capture_output=True, check=False)


# -- start and stop ------------------------------------------------------------------------------


Spawn = Callable[[str, int, list[str]], int]
"""(name, port, argv) -> pid: the plane's way to start and record a process."""


def write_files(node: NodeState, *, ca: Path, sandbox_image: str) -> tuple[Path, Path]:
    """Directories and configuration of the node; returns (containerd config, kubelet config)."""
    d = Path(node.dir)
    for sub in ("kubelet", "pod-logs", "sysctl", "cni/net.d", "cni/ipam", "containerd"):
        (d / sub).mkdir(parents=True, exist_ok=True)
    for name, wanted in KERNEL_TUNABLES.items():
        current = Path("/proc/sys", name).read_text().strip()
        if current != str(wanted):
            (d / "sysctl" / name.replace("/", ".")).write_text(f"{wanted}\n")
    cni_bin = packages.cni_bin_dir()
    if cni_bin is None:
        raise NodeError("the CNI plugins are missing: apt-get install containernetworking-plugins")
    ctd_config = d / "containerd" / "config.toml"
    ctd_config.write_text(
        containerd.render_config(d, sandbox_image=sandbox_image, cni_bin_dir=cni_bin)
    )
    (d / "cni" / "net.d" / "10-kubatch.conflist").write_text(containerd.render_cni(d, node.bridge))
    kubelet_config = d / "kubelet.json"
    kubelet_config.write_text(render_kubelet_config(node, ca))
    return ctd_config, kubelet_config


def start(
    node: NodeState,
    *,
    spawn: Spawn,
    kubelet: Path,
    kubeconfig: Path,
    ca: Path,
    pause: Image,
    images: list[Image],
    node_ready: Callable[[], bool],
    alive: Callable[[int], bool],
    deadline: float,
    log: Callable[[str], None],
) -> None:
    """containerd, the images, then the kubelet; returns once the Node is Ready."""
    t0 = time.monotonic()
    ctd_config, kubelet_config = write_files(node, ca=ca, sandbox_image=pause.name)
    make_cgroup_root(node.cgroup_root)
    add_node_address(node.ip)
    make_bridge(node.bridge)
    ctd_pid = spawn("containerd", 0, containerd_argv(node, ctd_config))
    containerd.wait_ready(node.socket, deadline, lambda: alive(ctd_pid))
    containerd.import_images(node.socket, [pause, *images])
    node.images = [pause.name, *(i.name for i in images)]
    log(f"containerd ready, images imported ({time.monotonic() - t0:.1f}s)")
    argv = kubelet_argv(kubelet, node, kubelet_config, kubeconfig, pause.name)
    ns = f"/proc/{ctd_pid}/ns/mnt"
    kubelet_pid = spawn(
        "kubelet", node.kubelet_port, [packages.tool("nsenter"), f"--mount={ns}", "--", *argv]
    )
    while time.monotonic() < deadline:
        if not alive(kubelet_pid):
            raise NodeError("the kubelet exited during start-up (see logs/kubelet.log)")
        if node_ready():
            log(f"node {node.name} Ready ({time.monotonic() - t0:.1f}s)")
            return
        time.sleep(0.25)
    raise NodeError(f"node {node.name} not Ready in time (see logs/kubelet.log)")


def stop_workloads(node: NodeState) -> None:
    """After the kubelet stopped: kill every container, then what containerd left behind."""
    kill_cgroup_processes(node.cgroup_root)


def cleanup(node: NodeState) -> list[str]:
    """After containerd stopped: shims, cgroups, the bridge. Returns what could not be removed."""
    containerd.kill_shims(node.socket)
    left = remove_cgroup_root(node.cgroup_root)
    remove_bridge(node.bridge)
    remove_node_address(node.ip)
    return left
