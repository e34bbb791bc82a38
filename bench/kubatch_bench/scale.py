"""Scale benchmark: ``kubatch bench scale [--jobs 100000] [--restarts 10000,100000] ...``.

What the operator holds and how fast it comes back, with many jobs present and mostly
waiting. One local control plane, the simulator and the operator (``kubatch.devkit.stack``);
two small Managed pools of one 16-vCPU node each: ``hold`` (its definition's pods run for a
day, so 16 jobs run and every other job waits for room) and ``probe`` (1-s pods, room for the
restart probes).

1. **arrays** (unless ``--arrays 0``): ``--arrays`` array jobs of ``--array-size`` children
   each on ``hold``; once the operator shows every child (``arrayStatusSummary``), its RSS;
   then they are deleted and the operator restarted, so that what follows is measured alone;
2. **single jobs**: BatchJobs on ``hold`` up to each of ``--restarts`` (and 15,000, then
   ``--jobs``); at each step, once the operator has written every job's status: its RSS,
   etcd's database size, and (at ``--restarts``) an operator **restart** (stopped; one probe
   BatchJob submitted to ``probe``; started): seconds from its start to the probe's
   Kubernetes Job, and no BatchJob attempt with a second Job.

Writes JSON (figures; targets ``met``/``missed``/``n/a``) and prints a table.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from kubatch.adapters import kube as K
from kubatch.adapters.kube import Kube
from kubatch.api import labels as L
from kubatch.devkit.polling import eventually_async
from kubatch.devkit.stack import SIM_ARGS, Stack, apply_crds
from kubatch_bench import harness as H
from kubatch_bench.common import Site, workdir_and_plane, write_json
from kubatch_bench.e2e_spec import API, INSTANCE_TYPE, judge, pod_template

TAG = "scale"
NS = "kubatch-scale"
HOLD = "hold"
PROBE = "probe"
TARGETS = {
    "rss_mib_with_15000": ("≤", 300.0),
    "rss_mib_with_100000": ("≤", 1024.0),
    "restart_to_first_admission_s_with_10000": ("≤", 10.0),
    "restart_to_first_admission_s_with_100000": ("≤", 60.0),
}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="kubatch bench scale", description=__doc__.split("\n")[0])
    p.add_argument("--jobs", type=int, default=100_000, help="single BatchJobs at the end")
    p.add_argument("--restarts", default="10000,100000",
                   help="restart the operator when this many BatchJobs are present")  # fmt: skip
    p.add_argument("--arrays", type=int, default=10, help="array jobs (0: none)")
    p.add_argument("--array-size", type=int, default=10_000)
    p.add_argument("--concurrency", type=int, default=64, help="client requests in flight")
    p.add_argument("--timeout", type=float, default=1800.0, help="per phase")
    p.add_argument("--json", type=Path, default=None, help="write the results here")
    p.add_argument("--keep-workdir", action="store_true", help="keep logs (printed at the end)")
    return p


def _log(msg: str) -> None:
    H.log(TAG, msg)


def manifests() -> list[dict[str, Any]]:
    """Pure: the two one-node pools, their queues and definitions."""
    out: list[dict[str, Any]] = []
    for name, seconds in ((HOLD, 86400.0), (PROBE, 1.0)):
        out.append({"apiVersion": API, "kind": "ComputeEnvironment", "metadata": {"name": name},
                    "spec": {"type": "Managed", "state": "Enabled", "computeResources": {
                        "capacityType": "OnDemand", "minvCpus": 16, "maxvCpus": 16,
                        "instanceTypes": [INSTANCE_TYPE]}}})  # fmt: skip
        out.append({"apiVersion": API, "kind": "JobQueue", "metadata": {"name": name},
                    "spec": {"priority": 1, "computeEnvironmentOrder": [
                        {"order": 1, "computeEnvironment": name}]}})  # fmt: skip
        out.append({"apiVersion": API, "kind": "JobDefinition",
                    "metadata": {"name": name, "namespace": NS},
                    "spec": {"template": pod_template(seconds)}})  # fmt: skip
    return out


def job(name: str, queue: str = HOLD, size: int | None = None) -> dict[str, Any]:
    """Pure: a BatchJob on ``queue`` (an array of ``size`` when given)."""
    spec: dict[str, Any] = {"jobQueue": queue, "jobDefinition": queue}
    if size:
        spec["arrayProperties"] = {"size": size}
    return {"apiVersion": API, "kind": "BatchJob", "metadata": {"name": name, "namespace": NS},
            "spec": spec}  # fmt: skip


@dataclass
class Seen:
    """What the watches saw: each BatchJob's phase and summary total, Jobs by BatchJob."""

    phase: dict[str, str] = field(default_factory=dict)
    children_known: dict[str, int] = field(default_factory=dict)
    job_seen: dict[str, float] = field(default_factory=dict)

    def on_batchjob(self, etype: str, obj: dict[str, Any]) -> None:
        name = obj["metadata"]["name"]
        if etype == "DELETED":
            self.phase.pop(name, None)
            self.children_known.pop(name, None)
            return
        status = obj.get("status") or {}
        self.phase[name] = str(status.get("phase") or "")
        summary = status.get("arrayStatusSummary") or {}
        if summary:
            self.children_known[name] = sum(
                int(v) for k, v in summary.items() if k != "size" and str(v).isdigit()
            )  # children counted by phase ("size" is the array's size, not a phase)

    def on_job(self, etype: str, obj: dict[str, Any]) -> None:
        owner = (obj["metadata"].get("labels") or {}).get(L.BATCHJOB)
        if owner is not None and etype != "DELETED":
            self.job_seen.setdefault(owner, time.time())

    def with_status(self) -> int:
        return sum(1 for p in self.phase.values() if p)


@dataclass
class Scale:
    args: argparse.Namespace
    kube: Kube
    stack: Stack
    site: Site
    seen: Seen = field(default_factory=Seen)

    def pid(self) -> int:
        pid = self.stack.operator.pid
        assert pid is not None
        return pid

    async def until(self, what: str, done: Any, progress: Any) -> None:
        await H.until(self.stack, what, done, progress, timeout=self.args.timeout, tag=TAG)

    async def settle_rss(self, seconds: float = 10.0) -> float:
        """The operator's RSS, highest of samples over ``seconds`` (after a burst settles)."""
        sampler = H.RssSampler(self.pid())
        for _ in range(int(seconds * 2)):
            sampler.sample(0)
            await asyncio.sleep(0.5)
        return sampler.peak()


async def phase_arrays(s: Scale) -> dict[str, Any]:
    n, size = s.args.arrays, s.args.array_size
    names = [f"array-{i:02d}" for i in range(n)]
    _log(f"arrays: {n} arrays of {size} children")
    t0 = time.monotonic()
    await H.create_all(s.kube, K.BATCHJOBS, [job(x, size=size) for x in names], NS)
    known = s.seen.children_known
    await s.until(
        "every child known",
        lambda: all(known.get(x) == size for x in names),
        lambda: f"{sum(known.get(x, 0) for x in names)} children",
    )
    settled = time.monotonic() - t0
    rss = await s.settle_rss()
    hwm = H.RssSampler(s.pid()).vm_hwm_mib()
    _log(f"arrays: {n * size} children held, RSS {rss} MiB (peak {hwm})")
    out = {
        "arrays": n,
        "array_size": size,
        "arrays_seconds_to_every_child_shown": round(settled, 1),
        "arrays_rss_mib": rss,
        "arrays_vm_hwm_mib": round(hwm or 0.0, 1),
        "arrays_etcd": H.etcd_sizes(s.site.etcd_metrics),
    }
    await H.paced_delete(s.kube, K.BATCHJOBS, NS, tag=TAG)
    await H.until_gone(s.kube, K.BATCHJOBS, NS, timeout=s.args.timeout, tag=TAG)
    await H.until_gone(s.kube, K.JOBS, NS, timeout=s.args.timeout, tag=TAG)
    s.stack.operator.stop()
    s.stack.start_operator(wait=False)
    await s.stack.wait_operator_async()
    return out


async def phase_singles(s: Scale, steps: list[int]) -> dict[str, Any]:
    out: dict[str, Any] = {"steps": []}
    made = 0
    for target in steps:
        names = [f"job-{i:06d}" for i in range(made, target)]
        _log(f"singles: {len(names)} more BatchJobs ({target} present)")
        t0 = time.monotonic()
        await H.create_all(s.kube, K.BATCHJOBS, [job(x) for x in names], NS,
                           concurrency=s.args.concurrency)  # fmt: skip
        made = target
        t_create = time.monotonic() - t0
        await s.until(f"a status on all {target}", lambda t=target: s.seen.with_status() >= t,
                      lambda: f"{s.seen.with_status()} with a status")  # fmt: skip
        t_status = time.monotonic() - t0
        rss = await s.settle_rss()
        hwm = H.RssSampler(s.pid()).vm_hwm_mib()
        step: dict[str, Any] = {
            "batchjobs": target,
            "seconds_client_create": round(t_create, 1),
            "seconds_to_every_status": round(t_status, 1),
            "rss_mib": rss,
            "vm_hwm_mib": round(hwm or 0.0, 1),
            "etcd": H.etcd_sizes(s.site.etcd_metrics),
        }
        _log(f"singles: {target} present, RSS {rss} MiB (peak {hwm})")
        if target in s.args.restart_at:
            probe = job(f"probe-{target}", PROBE)
            step.update(await H.restart_with_probe(s.kube, s.stack, probe, s.seen.job_seen,
                                                   timeout=s.args.timeout, tag=TAG))  # fmt: skip
            step["rss_mib_after_restart"] = await s.settle_rss()
            step["vm_hwm_mib_after_restart"] = round(H.RssSampler(s.pid()).vm_hwm_mib() or 0, 1)
        out["steps"].append(step)
    return out


def summarise(result: dict[str, Any]) -> None:
    """Pure: the headline figures and the targets, from the steps."""
    steps = {st["batchjobs"]: st for st in result.get("steps", [])}
    for n in (10_000, 15_000, 100_000):
        st = steps.get(n)
        if st is None:
            continue
        if "restart_to_first_admission_s" in st and n != 15_000:
            result[f"restart_to_first_admission_s_with_{n}"] = st["restart_to_first_admission_s"]
        if n != 10_000:  # the peak, a restart at that size included
            result[f"rss_mib_with_{n}"] = max(
                st.get("vm_hwm_mib", 0.0), st.get("vm_hwm_mib_after_restart", 0.0)
            )
    result["targets"] = {
        key: {"target": f"{op} {bound:g}", "value": result.get(key),
              "status": judge(result.get(key), (op, bound))}
        for key, (op, bound) in TARGETS.items()
    }  # fmt: skip


def table(result: dict[str, Any]) -> str:
    rows = [("figure", "value", "target", "status")]
    rows += [(k, str(t["value"]), t["target"], t["status"]) for k, t in result["targets"].items()]
    for key in ("arrays_rss_mib", "arrays_seconds_to_every_child_shown"):
        rows.append((key, str(result.get(key)), "", ""))
    for st in result.get("steps", []):
        rows.append((f"step {st['batchjobs']}: rss / etcd MiB / restart s",
                     f"{st['rss_mib']} / {st['etcd'].get('etcd_db_mib')} / "
                     f"{st.get('restart_to_first_admission_s')}", "", ""))  # fmt: skip
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows)


async def _bench(args: argparse.Namespace, site: Site) -> dict[str, Any]:
    kube = await Kube.from_environment(site.kubeconfig, limit=args.concurrency + 8)
    stack = Stack.prepare(
        site.kubeconfig, site.work, sim_args=(*SIM_ARGS, "--delete-nodes-on-exit")
    )
    s = Scale(args, kube, stack, site)
    watches: list[asyncio.Task[None]] = []
    try:
        await apply_crds(kube)
        await H.ensure_namespace(kube, NS)
        stack.start(wait=False)
        await H.create_setup(kube, manifests())

        async def ready() -> bool:
            return all([await H.ready_nodes(kube, ce) >= 1 for ce in (HOLD, PROBE)])

        await eventually_async(ready, what="one node per pool", timeout=180, every=1,
                               check=stack.check)  # fmt: skip
        await stack.wait_operator_async()
        watches.append(
            asyncio.create_task(kube.watch(K.BATCHJOBS, s.seen.on_batchjob, namespace=NS))
        )
        watches.append(asyncio.create_task(kube.watch(K.JOBS, s.seen.on_job, namespace=NS)))
        result: dict[str, Any] = {"benchmark": "scale", "jobs": args.jobs}
        if args.arrays:
            result.update(await phase_arrays(s))
        # a step at 15,000 too: its RSS has a target of its own
        steps = sorted({*args.restart_at, args.jobs, *([15_000] if args.jobs > 15_000 else [])})
        result.update(await phase_singles(s, [x for x in steps if x <= args.jobs]))
        result["operator_log_errors"] = H.log_problems(stack.operator.log)
        return result
    finally:
        for w in watches:
            w.cancel()
        await asyncio.gather(*watches, return_exceptions=True)
        stack.stop()
        await kube.close()


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    args.restart_at = {int(x) for x in args.restarts.split(",") if x.strip()}
    started = time.time()
    with workdir_and_plane("kubatch-bench-scale-", keep=args.keep_workdir) as site:
        result = asyncio.run(_bench(args, site))
    result["command"] = "kubatch bench scale " + " ".join(
        argv if argv is not None else sys.argv[1:]
    )
    result["wall_seconds_total"] = round(time.time() - started, 1)
    result["machine"] = {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
    }
    summarise(result)
    print(table(result))
    write_json(result, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
