"""The chaos tier's cluster: its own local plane, the simulator and two operators, each
operator reaching the API server through a TCP proxy of its own; everything started here and
stopped here by PID.

The plane runs with the flags the faults need: the API server without its watch cache (a
watch resumes from etcd, so a compaction makes it ``410 Gone``; SEMANTICS §8) and with a
10 s toleration of not-ready/unreachable nodes instead of 1.20's 300 s; the controller-manager
declares a node unreachable after 20 s without heartbeats (the simulator beats every 5 s).

Metrics are scraped per operator *process*: counters start again with a killed process, so
the driver keeps the last scrape of each lifetime (it scrapes right before it kills) and sums
them (:meth:`Cluster.counter`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from kubatch.adapters.kube import JOBS, LEASES, Kube
from kubatch.api import labels as L
from kubatch.devkit.chaos.workload import NAMESPACE
from kubatch.devkit.polling import eventually_async
from kubatch.devkit.process import Child, free_port
from kubatch.devkit.promtext import Samples, parse_metrics, sample
from kubatch.devkit.stack import apply_crds, kubatch_argv
from kubatch.local.faults import Proxy
from kubatch.local.plane import LocalPlane, PlaneState

log = logging.getLogger("kubatch.chaos")
JsonDict = dict[str, Any]

APISERVER_ARGS = (
    "--watch-cache=false",
    "--default-not-ready-toleration-seconds=10",
    "--default-unreachable-toleration-seconds=10",
)
CONTROLLER_MANAGER_ARGS = ("--node-monitor-grace-period=20s", "--node-monitor-period=2s")
SIM_ARGS = ("--provisioning-delay", "0.5", "--scale-down-delay", "60", "--heartbeat-interval", "5")
LEASE = ("default", "kubatch-leader")
IDENTITIES = ("op-a", "op-b")


@dataclass
class Replica:
    """One operator process and its proxy."""

    identity: str
    child: Child
    proxy: Proxy
    metrics_port: int
    lifetimes: dict[int, Samples] = field(default_factory=dict)
    """The last scrape of each process (by PID)."""
    starts: int = 0

    def metrics_text(self, timeout: float = 3.0) -> str:
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return str(resp.read().decode())

    def scrape(self, tries: int = 1) -> Samples | None:
        """This process's metrics, remembered as its lifetime's last (``None`` when it is
        not running or did not answer ``tries`` times, a second apart)."""
        for attempt in range(tries):
            pid = self.child.pid
            if pid is None or not self.child.alive():
                return None
            try:
                samples = parse_metrics(self.metrics_text())
            except (OSError, ValueError) as exc:
                if attempt + 1 < tries:
                    time.sleep(1.0)
                else:
                    log.warning("%s: metrics not scraped: %s", self.identity, exc)
                continue
            self.lifetimes[pid] = samples
            return samples
        return None


class Cluster:
    """Plane, simulator, proxies and the two operators (see the module doc)."""

    def __init__(self, workdir: Path, *, operator_args: tuple[str, ...] = ()) -> None:
        self.workdir = workdir
        self.plane = LocalPlane(workdir / "plane")
        self.state: PlaneState | None = None
        self.operator_args = operator_args
        self.sim: Child | None = None
        self.replicas: dict[str, Replica] = {}
        self.kube: Kube | None = None
        self.seen: dict[str, float] = {}
        """Kubernetes Job name -> when the driver's watch first saw it (monotonic)."""
        self.owner_of: dict[str, str] = {}
        self._tasks: list[asyncio.Task[Any]] = []
        self.env: dict[str, str] = {}

    # ------------------------------------------------------------------ start and stop

    def up_plane(self) -> PlaneState:
        self.state = self.plane.up(
            timeout=180,
            allow_build=False,
            apiserver_args=APISERVER_ARGS,
            controller_manager_args=CONTROLLER_MANAGER_ARGS,
        )
        return self.state

    @property
    def kubeconfig(self) -> Path:
        assert self.state is not None
        return self.state.kubeconfig

    def _proxied_kubeconfig(self, identity: str, port: int) -> Path:
        assert self.state is not None
        cfg = yaml.safe_load(self.kubeconfig.read_text())
        cfg["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{port}"
        path = self.workdir / f"kubeconfig-{identity}"
        path.write_text(yaml.safe_dump(cfg))
        path.chmod(0o600)
        return path

    async def start(self, cwd: Path | None = None) -> None:
        """Plane (in a thread: it blocks), CRDs, the simulator, proxies and both operators;
        returns once a leader leads and both serve their metrics."""
        state = await asyncio.to_thread(self.up_plane)
        import os

        self.env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.kube = await Kube.from_environment(state.kubeconfig)
        await apply_crds(self.kube)
        self.sim = Child(
            "simulator",
            kubatch_argv("sim", "--kubeconfig", str(state.kubeconfig), "run", *SIM_ARGS),
            self.workdir / "sim.log",
            self.env,
            cwd,
        )
        self.sim.start()
        for identity in IDENTITIES:
            proxy = Proxy("127.0.0.1", state.apiserver_port).start()
            port = free_port()
            argv = kubatch_argv(
                "operator", "--kubeconfig", str(self._proxied_kubeconfig(identity, proxy.port)),
                "--identity", identity, "--metrics-port", str(port), *self.operator_args,
            )  # fmt: skip
            child = Child(f"operator {identity}", argv, self.workdir / f"{identity}.log",
                          self.env, cwd)  # fmt: skip
            self.replicas[identity] = Replica(identity, child, proxy, port)
        for replica in self.replicas.values():
            self.start_operator(replica.identity)
        await self.wait_serving(*IDENTITIES)
        await self.wait_leader()
        self._tasks.append(asyncio.create_task(self._scrape_loop(), name="chaos-scrape"))
        self._tasks.append(asyncio.create_task(self._watch_jobs(), name="chaos-jobs"))

    async def stop(self) -> None:
        """Everything, by PID: operators, simulator, proxies, then the plane."""
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for replica in self.replicas.values():
            await asyncio.to_thread(replica.child.stop)
        if self.sim is not None:
            await asyncio.to_thread(self.sim.stop)
        for replica in self.replicas.values():
            replica.proxy.stop()
        if self.kube is not None:
            await self.kube.close()
        await asyncio.to_thread(self.plane.down)

    # ------------------------------------------------------------------ operators

    def start_operator(self, identity: str) -> None:
        replica = self.replicas[identity]
        replica.child.start()
        replica.starts += 1

    def kill_operator(self, identity: str) -> None:
        """Scrape its metrics (the end of this lifetime), then SIGKILL."""
        replica = self.replicas[identity]
        replica.scrape()
        replica.child.kill()

    async def wait_serving(self, *identities: str, timeout: float = 120) -> None:
        async def serving() -> bool:
            for i in identities:
                if await asyncio.to_thread(self.replicas[i].scrape) is None:
                    return False
            return True

        await eventually_async(serving, what=f"{', '.join(identities)} to serve metrics",
                               timeout=timeout, every=0.5, check=self.check)  # fmt: skip

    def check(self) -> None:
        """Raise if a process that should run has exited (with its log's tail)."""
        if self.sim is not None and self.sim.pid is not None:
            self.sim.check()

    async def holder(self) -> str:
        """Who the Lease names (the leader, or the last one)."""
        assert self.kube is not None
        try:
            lease = await self.kube.get(LEASES, LEASE[1], LEASE[0])
        except Exception:
            return ""
        return str((lease.get("spec") or {}).get("holderIdentity") or "")

    async def leading(self) -> str:
        """The replica that leads: named by the Lease *and* saying so in its metrics."""
        holder = await self.holder()
        replica = self.replicas.get(holder)
        if replica is None:
            return ""
        samples = await asyncio.to_thread(replica.scrape)
        if samples is None or sample(samples, "kubatch_leader", identity=holder) != 1:
            return ""
        return holder

    async def wait_leader(self, other_than: str = "", timeout: float = 120) -> str:
        async def probe() -> str:
            who = await self.leading()
            return who if who and who != other_than else ""

        return await eventually_async(probe, what="a leader", timeout=timeout, every=0.25)

    async def _scrape_loop(self) -> None:
        while True:
            for replica in self.replicas.values():
                await asyncio.to_thread(replica.scrape)
            await asyncio.sleep(1.0)

    def counter(self, name: str, **labels: str) -> float:
        """A counter summed over every lifetime of both operators."""
        return sum(sample(s, name, **labels) for r in self.replicas.values()
                   for s in r.lifetimes.values())  # fmt: skip

    def scrape_all(self, strict: bool = False) -> None:
        """Scrape every running operator (``strict``: one that does not answer is asked
        again, up to five times, so a verdict is never taken from a stale scrape)."""
        for replica in self.replicas.values():
            replica.scrape(tries=5 if strict else 1)

    # ------------------------------------------------------------------ what happens

    async def _watch_jobs(self) -> None:
        assert self.kube is not None

        def on_event(kind: str, obj: JsonDict) -> None:
            meta = obj.get("metadata") or {}
            name = str(meta.get("name"))
            if kind != "DELETED" and name not in self.seen:
                self.seen[name] = time.monotonic()
                self.owner_of[name] = str((meta.get("labels") or {}).get(L.BATCHJOB, ""))

        def on_sync(items: list[JsonDict]) -> None:
            for item in items:
                on_event("ADDED", item)

        await self.kube.watch(JOBS, on_event, namespace=NAMESPACE,
                              labels=f"{L.MANAGED_BY}={L.MANAGER}", on_sync=on_sync)  # fmt: skip

    def admitted_at(self, batchjob: str) -> float | None:
        """When the first Kubernetes Job of ``batchjob`` was seen (monotonic)."""
        times = [t for n, t in self.seen.items() if self.owner_of.get(n) == batchjob]
        return min(times) if times else None

    async def reclaim(self, compute_environment: str, fraction: float) -> str:
        """``kubatch sim reclaim`` (the simulator's own command)."""
        assert self.state is not None
        argv = kubatch_argv("sim", "--kubeconfig", str(self.state.kubeconfig), "reclaim",
                            "--compute-environment", compute_environment, "--fraction",
                            str(fraction))  # fmt: skip
        proc = await asyncio.create_subprocess_exec(
            *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env=self.env
        )
        out, _ = await proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"sim reclaim failed: {out.decode(errors='replace')[-2000:]}")
        return out.decode(errors="replace")

    def logs(self, lines: int = 30) -> str:
        parts = []
        for replica in self.replicas.values():
            parts.append(f"--- {replica.identity} ---\n{replica.child.tail(lines)}")
        if self.sim is not None:
            parts.append(f"--- simulator ---\n{self.sim.tail(lines)}")
        return "\n".join(parts)


@contextlib.asynccontextmanager
async def running(workdir: Path, **kw: Any) -> Any:
    cluster = Cluster(workdir, **kw)
    try:
        await cluster.start()
        yield cluster
    finally:
        await cluster.stop()
