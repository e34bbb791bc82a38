"""The local Kubernetes control plane: etcd, kube-apiserver, kube-controller-manager and
kube-scheduler on 127.0.0.1, started and stopped by PID; optionally a real node (containerd and
the kubelet, ``kubatch.local.node``).

State lives in one directory (``state.json`` with ports and PIDs, certificates, logs, the
kubeconfig); ``up`` is idempotent: a plane whose processes still run and answer is reused.

A plane with a real node differs in what real pods need: the ServiceAccount admission plugin
is on (tokens are mounted; a pod in a brand-new namespace waits a moment for its token), the
API server reaches the kubelet (on the node's loopback address) with a client certificate, and
the controller-manager also runs the Deployment and ReplicaSet controllers (the Helm chart).
Planes without one keep ServiceAccount admission off, so simulated pods are admitted at once.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from kubatch.local import binaries as bins
from kubatch.local import images as imgs
from kubatch.local import node as node_mod
from kubatch.local import packages
from kubatch.local.node import NodeState

HOST = "127.0.0.1"
CONTROLLERS = (
    "job",
    "garbagecollector",
    "namespace",
    "serviceaccount",
    "serviceaccount-token",
    "nodelifecycle",
    "podgc",
)
REAL_NODE_CONTROLLERS = ("deployment", "replicaset")
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")


class PlaneError(RuntimeError):
    """The plane could not start; the message says what to do."""


def default_state_dir() -> Path:
    root = os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state")
    return Path(os.environ.get("KUBATCH_LOCAL_DIR") or os.path.join(root, "kubatch", "local"))


@dataclass
class Process:
    name: str
    pid: int
    port: int
    cmdline0: str
    argv: list[str] = field(default_factory=list)
    """How it was started: a restart (``LocalPlane.restart``) runs the same command."""


@dataclass
class PlaneState:
    state_dir: str
    token: str
    apiserver_port: int
    kubectl: str
    processes: list[Process] = field(default_factory=list)
    started_at: float = 0.0
    node: NodeState | None = None

    @property
    def kubeconfig(self) -> Path:
        return Path(self.state_dir) / "kubeconfig"

    @property
    def server(self) -> str:
        return f"https://{HOST}:{self.apiserver_port}"

    def save(self) -> None:
        path = Path(self.state_dir) / "state.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2))
        tmp.replace(path)

    @classmethod
    def load(cls, state_dir: Path) -> PlaneState | None:
        path = state_dir / "state.json"
        if not path.is_file():
            return None
        raw = json.loads(path.read_text())
        raw["processes"] = [Process(**p) for p in raw.get("processes", [])]
        raw["node"] = NodeState(**raw["node"]) if raw.get("node") else None
        return cls(**raw)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _port_busy(port: int, *, reuse: bool = False) -> bool:
    """Something holds ``port``; with ``reuse``: something *listens* on it (connections of a
    killed process lingering in TIME_WAIT do not count: the servers bind with SO_REUSEADDR)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        if reuse:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((HOST, port))
        except OSError:
            return True
    return False


def pid_alive(pid: int, cmdline0: str | None = None) -> bool:
    """True when ``pid`` runs and (if given) its executable name is ``cmdline0``."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    if cmdline0 is None:
        return True
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    if stat.split(")")[-1].split()[0] == "Z":
        return False
    if not raw:  # a process between fork and exec (or a kernel thread): trust kill(0)
        return True
    exe = raw.split(b"\0", 1)[0].decode(errors="replace")
    return os.path.basename(exe) == os.path.basename(cmdline0)


def _log(msg: str) -> None:
    print(f"kubatch local: {msg}", file=sys.stderr, flush=True)


def _openssl(*args: str, cwd: Path) -> None:
    if shutil.which("openssl") is None:
        raise PlaneError(
            "openssl is required to make the plane's certificates: apt-get install openssl"
        )
    proc = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise PlaneError(f"openssl {' '.join(args[:2])} failed: {proc.stderr.strip()}")


def make_pki(pki: Path) -> None:
    """A CA, a serving certificate for 127.0.0.1/localhost, and the service-account key pair."""
    pki.mkdir(parents=True, exist_ok=True)
    if (pki / "apiserver.crt").is_file():
        return
    _openssl("genrsa", "-out", "ca.key", "2048", cwd=pki)
    _openssl(
        "req", "-x509", "-new", "-nodes", "-key", "ca.key", "-subj", "/CN=kubatch-local-ca",
        "-days", "3650", "-out", "ca.crt", cwd=pki,
    )  # fmt: skip
    _openssl("genrsa", "-out", "apiserver.key", "2048", cwd=pki)
    (pki / "san.cnf").write_text(
        "[req]\ndistinguished_name=dn\n[dn]\n[ext]\n"
        "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default\n"
        "keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n"
    )
    _openssl(
        "req", "-new", "-key", "apiserver.key", "-subj", "/CN=kube-apiserver",
        "-out", "apiserver.csr", cwd=pki,
    )  # fmt: skip
    _openssl(
        "x509", "-req", "-in", "apiserver.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "3650", "-extfile", "san.cnf", "-extensions", "ext",
        "-out", "apiserver.crt", cwd=pki,
    )  # fmt: skip
    _openssl("genrsa", "-out", "sa.key", "2048", cwd=pki)
    _openssl("rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=pki)


def make_kubelet_client_cert(pki: Path) -> None:
    """The API server's client certificate towards kubelets (``kubectl logs``/``exec``)."""
    if (pki / "kubelet-client.crt").is_file():
        return
    (pki / "client.cnf").write_text(
        "[req]\ndistinguished_name=dn\n[dn]\n[ext]\n"
        "keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n"
    )
    _openssl("genrsa", "-out", "kubelet-client.key", "2048", cwd=pki)
    _openssl(
        "req", "-new", "-key", "kubelet-client.key",
        "-subj", "/O=system:masters/CN=kube-apiserver-kubelet-client",
        "-out", "kubelet-client.csr", cwd=pki,
    )  # fmt: skip
    _openssl(
        "x509", "-req", "-in", "kubelet-client.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "3650", "-extfile", "client.cnf", "-extensions", "ext",
        "-out", "kubelet-client.crt", cwd=pki,
    )  # fmt: skip


def write_kubeconfig(path: Path, server: str, ca: Path, token: str) -> None:
    path.write_text(
        f"""apiVersion: v1
kind: Config
clusters:
- name: kubatch-local
  cluster:
    server: {server}
    certificate-authority: {ca}
users:
- name: admin
  user:
    token: {token}
contexts:
- name: kubatch-local
  context:
    cluster: kubatch-local
    user: admin
    namespace: default
current-context: kubatch-local
"""
    )
    path.chmod(0o600)


def _get(url: str, token: str | None, ca: Path | None, timeout: float = 2.0) -> tuple[int, str]:
    ctx = ssl.create_default_context(cafile=str(ca)) if ca else ssl._create_unverified_context()
    req = urllib.request.Request(url)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=ctx) as resp:
            return int(resp.status), resp.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read().decode(errors="replace")
    except (OSError, ssl.SSLError) as exc:
        return 0, str(exc)


class LocalPlane:
    """Start, reuse, inspect and stop one local control plane rooted at ``state_dir``."""

    def __init__(self, state_dir: Path | None = None) -> None:
        self.state_dir = (state_dir or default_state_dir()).resolve()
        self._children: dict[int, subprocess.Popen[bytes]] = {}
        self._extra: dict[str, list[str]] = {}

    # -- inspection -------------------------------------------------------------------------

    def state(self) -> PlaneState | None:
        return PlaneState.load(self.state_dir)

    def healthy(self, state: PlaneState | None = None) -> bool:
        state = state or self.state()
        if state is None:
            return False
        if not all(pid_alive(p.pid, p.cmdline0) for p in state.processes):
            return False
        code, _ = _get(
            f"{state.server}/readyz", state.token, self.state_dir / "pki" / "ca.crt", timeout=3
        )
        return code == 200

    def status(self) -> list[tuple[str, int, int, bool]]:
        state = self.state()
        if state is None:
            return []
        return [(p.name, p.pid, p.port, pid_alive(p.pid, p.cmdline0)) for p in state.processes]

    # -- up -----------------------------------------------------------------------------------

    def up(
        self,
        *,
        timeout: float = 120.0,
        allow_build: bool = True,
        real_node: bool = False,
        apiserver_args: Sequence[str] = (),
        controller_manager_args: Sequence[str] = (),
    ) -> PlaneState:
        """Start the plane (or reuse a healthy one); with ``real_node`` also a real node.

        A real node needs root, Linux and cgroup v1 (``node.unavailable_reason``); its Debian
        packages are installed and its binaries and images built when missing.
        ``apiserver_args``/``controller_manager_args`` are appended to the components'
        command lines (a later flag wins): e.g. the chaos tier's shorter toleration of
        unreachable nodes (SEMANTICS §8).
        """
        existing = self.state()
        if existing is not None:
            if self.healthy(existing):
                if real_node and existing.node is None:
                    raise PlaneError(
                        f"the plane at {existing.server} runs without a real node: stop it "
                        "(kubatch local down) and start it again with --real-node"
                    )
                _log(f"reusing the running plane at {existing.server}")
                return existing
            _log("a previous plane is not healthy: stopping what is left of it")
            self.down()
        binaries = bins.ensure(allow_build=allow_build)
        node_parts: tuple[bins.NodeBinaries, imgs.Image, list[imgs.Image]] | None = None
        if real_node:
            reason = node_mod.unavailable_reason()
            if reason:
                raise PlaneError(f"no real node on this machine: {reason}")
            packages.ensure(packages.NODE_PACKAGES, log=_log)
            node_bins = bins.ensure_node(allow_build=allow_build)
            node_parts = (node_bins, imgs.pause_image(node_bins.pause), [imgs.busybox_image()])
        self.state_dir.mkdir(parents=True, exist_ok=True)
        pki = self.state_dir / "pki"
        make_pki(pki)
        token = secrets.token_hex(16)
        tokens = f'{token},admin,admin,"system:masters"\n'
        state = PlaneState(
            state_dir=str(self.state_dir),
            token=token,
            apiserver_port=free_port(),
            kubectl=str(binaries.kubectl),
            started_at=time.time(),
        )
        if node_parts is not None:
            make_kubelet_client_cert(pki)
            state.node = node_mod.new_state(self.state_dir, free_port(), free_port())
            node_token = secrets.token_hex(16)
            user = f"system:node:{state.node.name}"
            tokens += f'{node_token},{user},{user},"system:nodes,system:masters"\n'
            write_kubeconfig(self.state_dir / "kubelet.kubeconfig", state.server, pki / "ca.crt",
                             node_token)  # fmt: skip
        (self.state_dir / "tokens.csv").write_text(tokens)
        write_kubeconfig(state.kubeconfig, state.server, pki / "ca.crt", token)
        self._extra = {"kube-apiserver": list(apiserver_args),
                       "kube-controller-manager": list(controller_manager_args)}  # fmt: skip
        try:
            self._start_all(state, binaries, timeout)
            if node_parts is not None:
                self._start_node(state, *node_parts, time.monotonic() + timeout)
        except BaseException:
            self._stop(state)
            raise
        return state

    def _start_node(
        self,
        state: PlaneState,
        node_bins: bins.NodeBinaries,
        pause: imgs.Image,
        images: list[imgs.Image],
        deadline: float,
    ) -> None:
        node = state.node
        assert node is not None
        ca = self.state_dir / "pki" / "ca.crt"

        def spawn(name: str, port: int, argv: list[str]) -> int:
            cmdline0 = {"containerd": "containerd", "kubelet": str(node_bins.kubelet)}[name]
            return self._spawn(state, name, port, argv, cmdline0=cmdline0).pid

        def alive(pid: int) -> bool:
            child = self._children.get(pid)
            return child is not None and child.poll() is None

        def ready() -> bool:
            code, body = _get(f"{state.server}/api/v1/nodes/{node.name}", state.token, ca)
            if code != 200:
                return False
            conditions = json.loads(body).get("status", {}).get("conditions") or []
            return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

        node_mod.start(
            node,
            spawn=spawn,
            kubelet=node_bins.kubelet,
            kubeconfig=self.state_dir / "kubelet.kubeconfig",
            ca=ca,
            pause=pause,
            images=images,
            node_ready=ready,
            alive=alive,
            deadline=deadline,
            log=_log,
        )
        state.save()

    def _spawn(
        self,
        state: PlaneState,
        name: str,
        port: int,
        argv: list[str],
        *,
        cmdline0: str | None = None,
        restart: bool = False,
    ) -> Process:
        if _port_busy(port, reuse=restart):
            raise PlaneError(f"port {port} for {name} is busy: stop what uses it and retry")
        argv = [*argv, *self._extra.get(name, ())]
        logs = self.state_dir / "logs"
        logs.mkdir(exist_ok=True)
        with open(logs / f"{name}.log", "ab") as out:
            proc = subprocess.Popen(
                argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                cwd=self.state_dir,
            )
        self._children[proc.pid] = proc
        p = Process(name=name, pid=proc.pid, port=port, cmdline0=cmdline0 or argv[0], argv=argv)
        state.processes.append(p)
        state.save()
        return p

    def _wait(
        self, state: PlaneState, p: Process, url: str, token: str | None, deadline: float
    ) -> None:
        ca = self.state_dir / "pki" / "ca.crt" if p.name == "kube-apiserver" else None
        last = ""
        while time.monotonic() < deadline:
            child = self._children.get(p.pid)
            if child is not None and child.poll() is not None:
                tail = (self.state_dir / "logs" / f"{p.name}.log").read_text(errors="replace")
                raise PlaneError(
                    f"{p.name} exited during start-up; last log lines:\n"
                    + "\n".join(tail.splitlines()[-15:])
                )
            code, body = _get(url, token, ca)
            if code == 200:
                return
            last = f"{code} {body[:200]}"
            time.sleep(0.2)
        raise PlaneError(f"{p.name} not ready after the timeout ({url}: {last})")

    def _admission_and_kubelet_flags(self, state: PlaneState) -> list[str]:
        if state.node is None:
            # No kubelet mounts tokens: skip ServiceAccount admission, pods are admitted at once.
            return ["--disable-admission-plugins=ServiceAccount"]
        pki = self.state_dir / "pki"
        return [
            f"--kubelet-client-certificate={pki / 'kubelet-client.crt'}",
            f"--kubelet-client-key={pki / 'kubelet-client.key'}",
            "--kubelet-preferred-address-types=InternalIP",
        ]

    @staticmethod
    def _controllers(state: PlaneState) -> tuple[str, ...]:
        return CONTROLLERS + (REAL_NODE_CONTROLLERS if state.node is not None else ())

    def _start_all(self, state: PlaneState, b: bins.Binaries, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        d = self.state_dir
        pki = d / "pki"
        etcd_port, etcd_peer = free_port(), free_port()
        t0 = time.monotonic()
        etcd = self._spawn(
            state,
            "etcd",
            etcd_port,
            [
                str(b.etcd),
                "--data-dir", str(d / "etcd"),
                "--listen-client-urls", f"http://{HOST}:{etcd_port}",
                "--advertise-client-urls", f"http://{HOST}:{etcd_port}",
                "--listen-peer-urls", f"http://{HOST}:{etcd_peer}",
                "--initial-advertise-peer-urls", f"http://{HOST}:{etcd_peer}",
                "--initial-cluster", f"default=http://{HOST}:{etcd_peer}",
                "--quota-backend-bytes", str(4 * 1024**3),
                "--unsafe-no-fsync",
                "--log-level", "warn",
            ],
        )  # fmt: skip
        self._wait(state, etcd, f"http://{HOST}:{etcd_port}/health", None, deadline)
        _log(f"etcd ready on {HOST}:{etcd_port} ({time.monotonic() - t0:.1f}s)")
        api = self._spawn(
            state,
            "kube-apiserver",
            state.apiserver_port,
            [
                str(b.kube_apiserver),
                f"--etcd-servers=http://{HOST}:{etcd_port}",
                f"--bind-address={HOST}",
                f"--advertise-address={HOST}",
                f"--secure-port={state.apiserver_port}",
                "--insecure-port=0",
                f"--cert-dir={pki}",
                f"--tls-cert-file={pki / 'apiserver.crt'}",
                f"--tls-private-key-file={pki / 'apiserver.key'}",
                f"--client-ca-file={pki / 'ca.crt'}",
                f"--token-auth-file={d / 'tokens.csv'}",
                "--authorization-mode=RBAC",
                f"--service-account-key-file={pki / 'sa.pub'}",
                f"--service-account-signing-key-file={pki / 'sa.key'}",
                "--service-account-issuer=https://kubernetes.default.svc",
                "--service-cluster-ip-range=10.96.0.0/16",
                *self._admission_and_kubelet_flags(state),
                "--max-requests-inflight=1000",
                "--max-mutating-requests-inflight=500",
                "--watch-cache=true",
                "--event-ttl=30m",
                "--v=0",
            ],
        )
        self._wait(state, api, f"{state.server}/readyz", state.token, deadline)
        _log(f"kube-apiserver ready at {state.server} ({time.monotonic() - t0:.1f}s)")
        kcm_port, sched_port = free_port(), free_port()
        kcm = self._spawn(
            state,
            "kube-controller-manager",
            kcm_port,
            [
                str(b.kube_controller_manager),
                f"--kubeconfig={state.kubeconfig}",
                # its /metrics (the Job controller's workqueue) readable with the plane's token
                f"--authentication-kubeconfig={state.kubeconfig}",
                f"--authorization-kubeconfig={state.kubeconfig}",
                f"--bind-address={HOST}",
                f"--secure-port={kcm_port}",
                "--port=0",
                f"--controllers={','.join(self._controllers(state))}",
                f"--service-account-private-key-file={pki / 'sa.key'}",
                f"--root-ca-file={pki / 'ca.crt'}",
                "--use-service-account-credentials=false",
                "--leader-elect=false",
                "--kube-api-qps=300",
                "--kube-api-burst=600",
                "--concurrent-gc-syncs=20",
                "--node-monitor-grace-period=40s",
                "--pod-eviction-timeout=60s",
                "--terminated-pod-gc-threshold=50000",
                "--v=0",
            ],
        )
        sched = self._spawn(
            state,
            "kube-scheduler",
            sched_port,
            [
                str(b.kube_scheduler),
                f"--kubeconfig={state.kubeconfig}",
                f"--authentication-kubeconfig={state.kubeconfig}",
                f"--authorization-kubeconfig={state.kubeconfig}",
                f"--bind-address={HOST}",
                f"--secure-port={sched_port}",
                "--port=0",
                "--leader-elect=false",
                "--kube-api-qps=300",
                "--kube-api-burst=600",
                "--v=0",
            ],
        )
        self._wait(state, kcm, f"https://{HOST}:{kcm_port}/healthz", None, deadline)
        self._wait(state, sched, f"https://{HOST}:{sched_port}/healthz", None, deadline)
        _log(f"controller-manager and scheduler ready ({time.monotonic() - t0:.1f}s)")

    # -- faults -------------------------------------------------------------------------------

    def restart(self, name: str, *, down_for: float = 0.0, timeout: float = 120.0) -> Process:
        """Kill one component with SIGKILL (a crash: etcd keeps its data directory), wait
        ``down_for`` seconds, start it again with the same command line and port, and wait
        until it is ready. For the chaos tier (``kubatch.devkit.chaos``)."""
        state = self.state()
        if state is None:
            raise PlaneError("no plane to restart a component of")
        old = next((p for p in state.processes if p.name == name), None)
        if old is None or not old.argv:
            raise PlaneError(f"no restartable {name!r} in this plane (started before restarts "
                             "were recorded?)")  # fmt: skip
        self.kill(name)
        time.sleep(down_for)
        state = self.state()
        assert state is not None
        state.processes = [p for p in state.processes if p.name != name]
        extra, self._extra = self._extra, {}
        try:
            new = self._spawn(state, name, old.port, old.argv, cmdline0=old.cmdline0,
                              restart=True)  # fmt: skip
        finally:
            self._extra = extra
        self.wait_ready(new, timeout)
        return new

    def kill(self, name: str) -> None:
        """SIGKILL one component now and reap it (it stays in the state until restarted)."""
        state = self.state()
        for p in state.processes if state is not None else []:
            if p.name == name and self._alive(p):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p.pid, signal.SIGKILL)
                deadline = time.monotonic() + 10
                while self._alive(p) and time.monotonic() < deadline:
                    _reap(p.pid)
                    time.sleep(0.02)

    def wait_ready(self, p: Process, timeout: float = 120.0) -> None:
        """Until the component answers its health endpoint."""
        state = self.state()
        assert state is not None
        urls = {
            "etcd": (f"http://{HOST}:{p.port}/health", None),
            "kube-apiserver": (f"{state.server}/readyz", state.token),
            "kube-controller-manager": (f"https://{HOST}:{p.port}/healthz", None),
            "kube-scheduler": (f"https://{HOST}:{p.port}/healthz", None),
        }
        url, token = urls[p.name]
        self._wait(state, p, url, token, time.monotonic() + timeout)

    # -- down ---------------------------------------------------------------------------------

    def _alive(self, p: Process) -> bool:
        child = self._children.get(p.pid)
        if child is not None:  # started by this object: exact, even before its final exec
            return child.poll() is None
        return pid_alive(p.pid, p.cmdline0)

    def _terminate(self, procs: list[Process], grace: float) -> None:
        for p in procs:
            if self._alive(p):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for p in procs:
            while self._alive(p) and time.monotonic() < deadline:
                _reap(p.pid)
                time.sleep(0.05)
            if self._alive(p):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p.pid, signal.SIGKILL)
                _reap(p.pid)

    def _stop(self, state: PlaneState, grace: float = 10.0) -> None:
        node = state.node
        if node is not None:
            # kubelet first (it would restart containers), then the containers themselves,
            # then containerd, then what it leaves: shims, cgroups, the bridge.
            by_name = {p.name: p for p in state.processes}
            self._terminate([by_name[n] for n in ("kubelet",) if n in by_name], grace)
            node_mod.stop_workloads(node)
            self._terminate([by_name[n] for n in ("containerd",) if n in by_name], grace)
            left = node_mod.cleanup(node)
            if left:
                _log(f"could not remove the cgroups {', '.join(left[:5])}")
        self._terminate(list(reversed(state.processes)), grace)

    def down(self) -> int:
        """Stop every process this plane started (by PID) and remove its state; return count."""
        state = self.state()
        if state is None:
            return 0
        n = sum(1 for p in state.processes if pid_alive(p.pid, p.cmdline0))
        self._stop(state)
        shutil.rmtree(self.state_dir, ignore_errors=True)
        return n


def _reap(pid: int) -> None:
    """Collect a child's exit status when we are its parent (tests start the plane in-process)."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


@contextlib.contextmanager
def running(state_dir: Path, *, timeout: float = 120.0) -> Iterator[PlaneState]:
    """A plane for the duration of a ``with`` block, stopped at the end even on failure."""
    plane = LocalPlane(state_dir)
    try:
        yield plane.up(timeout=timeout)
    finally:
        plane.down()
