"""Simulator benchmark: ``kubatch bench sim [--nodes 1000] [--pods 10000] [--json PATH]``.

Runs ``kubatch sim run`` as a separate process (so its CPU and memory are its own) against a
local control plane (``--kubeconfig``/``$KUBATCH_BENCH_KUBECONFIG``, else one started here and
stopped at the end), and measures the simulator only:

1. ``nodes`` simulated nodes from a nodes file (half spot, half on-demand m5.xlarge), with their
   Leases; the time until all exist;
2. an idle phase (heartbeats only): CPU seconds per wall second at that node count;
3. ``pods`` pods, created by this process already bound to the nodes (``spec.nodeName``, so the
   kube-scheduler's throughput does not enter the figure), each declared to run
   ``--pod-duration`` seconds; the sim drives every one to Running then Succeeded/Failed
   (every tenth exits 1). Measured: wall time until all are terminal, the sim's CPU seconds,
   its API writes;
4. peak RSS (VmHWM) of the sim process over the whole run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import yaml

from kubatch.adapters.kube import NAMESPACES, NODES, PODS, ApiError, Kube
from kubatch.devkit.polling import eventually_async
from kubatch.devkit.process import Child
from kubatch.devkit.stack import kubatch_argv
from kubatch_bench.common import workdir_and_plane, write_json

NS = "kubatch-bench-sim"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="kubatch bench sim", description=__doc__.split("\n")[0])
    p.add_argument("--nodes", type=int, default=1000)
    p.add_argument("--pods", type=int, default=10000)
    p.add_argument("--pod-duration", type=float, default=5.0)
    p.add_argument("--idle-seconds", type=float, default=30.0)
    p.add_argument("--heartbeat-interval", type=float, default=20.0)
    p.add_argument("--workers", type=int, default=32)
    p.add_argument(
        "--kubeconfig", type=Path, default=os.environ.get("KUBATCH_BENCH_KUBECONFIG") or None
    )
    p.add_argument("--json", type=Path, default=None, help="write the results here")
    p.add_argument("--timeout", type=float, default=900.0)
    return p


def _peak_rss_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float(psutil.Process(pid).memory_info().rss) / 2**20


def _cpu(proc: psutil.Process) -> float:
    t = proc.cpu_times()
    return float(t.user + t.system)


def _read_stats(path: Path) -> dict[str, Any]:
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError):
        return {}


async def _wait_stats(
    path: Path, pred: Callable[[dict[str, Any]], bool], timeout: float, sim: Child, what: str
) -> dict[str, Any]:
    """The simulator's stats once ``pred`` holds for them (it dumps them every 2 s)."""

    async def probe() -> dict[str, Any]:
        s = _read_stats(path)
        return s if s and pred(s) else {}

    return await eventually_async(
        probe, what=what, timeout=timeout, check=sim.check, progress=lambda: str(_read_stats(path))
    )


def _pod(i: int, node: str, duration: float) -> dict[str, Any]:
    ann = {"sim.kubatch.io/duration": str(duration)}
    if i % 10 == 9:
        ann["sim.kubatch.io/exit-code"] = "1"
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"p{i}", "namespace": NS, "annotations": ann},
        "spec": {
            "nodeName": node,
            "restartPolicy": "Never",
            "tolerations": [{"operator": "Exists"}],
            "containers": [
                {
                    "name": "main",
                    "image": "busybox:1.36",
                    "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}},
                }
            ],
        },
    }


async def _create_pods(kube: Kube, nodes: list[str], n: int, duration: float) -> float:
    sem = asyncio.Semaphore(32)
    t0 = time.monotonic()

    async def one(i: int) -> None:
        async with sem:
            await kube.create(PODS, _pod(i, nodes[i % len(nodes)], duration), NS)

    await asyncio.gather(*(one(i) for i in range(n)))
    return time.monotonic() - t0


async def _bench(args: argparse.Namespace, kubeconfig: Path, work: Path) -> dict[str, Any]:
    half = args.nodes // 2
    nodes_file = work / "nodes.yaml"
    nodes_file.write_text(
        yaml.safe_dump(
            {
                "nodes": [
                    {
                        "computeEnvironment": "bench-spot",
                        "instanceType": "m5.xlarge",
                        "capacityType": "spot",
                        "count": half,
                    },
                    {
                        "computeEnvironment": "bench-od",
                        "instanceType": "m5.xlarge",
                        "capacityType": "on-demand",
                        "count": args.nodes - half,
                    },
                ]
            }
        )
    )
    stats_file = work / "stats.json"
    kube = await Kube.from_environment(kubeconfig)
    try:
        try:
            await kube.create(NAMESPACES, {"metadata": {"name": NS}})
        except ApiError as e:
            if not e.conflict:
                raise
        sim = Child(
            "simulator",
            kubatch_argv(
                "sim", "--kubeconfig", str(kubeconfig), "run", "--no-scaling",
                "--nodes-file", str(nodes_file), "--stats-file", str(stats_file),
                "--heartbeat-interval", str(args.heartbeat_interval),
                "--workers", str(args.workers), "--delete-nodes-on-exit",
            ),
            work / "sim.log",
        )  # fmt: skip
        t0 = time.monotonic()
        ps = psutil.Process(sim.start())
        try:
            await _wait_stats(
                stats_file,
                lambda s: s.get("nodes", 0) >= args.nodes,
                args.timeout,
                sim,
                f"{args.nodes} nodes",
            )
            t_nodes = time.monotonic() - t0
            cpu_nodes = _cpu(ps)

            cpu0, w0 = _cpu(ps), time.monotonic()
            await asyncio.sleep(args.idle_seconds)
            idle_cpu_per_s = (_cpu(ps) - cpu0) / (time.monotonic() - w0)
            s_idle = _read_stats(stats_file)

            names = sorted(
                i["metadata"]["name"]
                for i in await kube.list(NODES, labels="type=kubatch-sim")
                if i["metadata"]["labels"]
                .get("kubatch.io/compute-environment", "")
                .startswith("bench-")
            )
            writes0 = int(s_idle.get("api_writes", 0))
            cpu1, w1 = _cpu(ps), time.monotonic()
            t_create = await _create_pods(kube, names, args.pods, args.pod_duration)
            s_done = await _wait_stats(
                stats_file,
                lambda s: s.get("pods_succeeded", 0) + s.get("pods_failed", 0) >= args.pods,
                args.timeout,
                sim,
                f"{args.pods} pods to finish",
            )
            wall_pods = time.monotonic() - w1
            cpu_pods = _cpu(ps) - cpu1
            peak = _peak_rss_mib(ps.pid)
            rss_now = ps.memory_info().rss / 2**20
            total_cpu = _cpu(ps)
        finally:
            sim.stop(timeout=300)  # it deletes its nodes on the way out
        return {
            "benchmark": "sim",
            "nodes": args.nodes,
            "pods": args.pods,
            "pod_duration_s": args.pod_duration,
            "heartbeat_interval_s": args.heartbeat_interval,
            "node_setup_wall_s": round(t_nodes, 2),
            "node_setup_cpu_s": round(cpu_nodes, 2),
            "idle_cpu_s_per_s": round(idle_cpu_per_s, 4),
            "pod_create_wall_s": round(t_create, 2),
            "pods_wall_s": round(wall_pods, 2),
            "pods_cpu_s": round(cpu_pods, 2),
            "cpu_ms_per_pod": round(1000 * cpu_pods / max(args.pods, 1), 3),
            "pods_succeeded": s_done.get("pods_succeeded"),
            "pods_failed": s_done.get("pods_failed"),
            "sim_api_writes_during_pods_phase": int(s_done.get("api_writes", 0)) - writes0,
            "sim_cpu_s_total": round(total_cpu, 2),
            "sim_peak_rss_mib": round(peak, 1),
            "sim_rss_mib_at_end": round(rss_now, 1),
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        }
    finally:
        await kube.delete(NAMESPACES, NS)
        await kube.close()


def _summary(r: dict[str, Any]) -> str:
    return (
        f"kubatch sim @ {r['nodes']} nodes / {r['pods']} pods: "
        f"peak RSS {r['sim_peak_rss_mib']} MiB; idle {r['idle_cpu_s_per_s'] * 100:.1f}% of a core "
        f"(heartbeats every {r['heartbeat_interval_s']} s); pods: {r['pods_cpu_s']} CPU s "
        f"({r['cpu_ms_per_pod']} ms/pod) over {r['pods_wall_s']} s wall; "
        f"node set-up {r['node_setup_wall_s']} s wall, {r['node_setup_cpu_s']} CPU s"
    )


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    kubeconfig = Path(args.kubeconfig) if args.kubeconfig else None
    with workdir_and_plane("kubatch-bench-sim-", kubeconfig) as site:
        work, config = site.work, site.kubeconfig
        result = asyncio.run(_bench(args, config, work))
    print(_summary(result))
    write_json(result, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
