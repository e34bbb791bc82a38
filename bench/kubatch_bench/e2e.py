"""Whole-stack benchmark: ``kubatch bench e2e [--jobs 10000] [--rate 50] [--quick] [--json PATH]``.

One run, one local control plane (started here in a temporary directory, stopped at the end),
one simulated node pool (``kubatch sim run``, a Managed ComputeEnvironment whose
``minvCpus = maxvCpus``, so the pool is the same fixed set of nodes for every phase) and the
operator (``kubatch operator``), each in its own process (``kubatch.devkit.stack``):

1. **raw baseline**: ``jobs`` plain ``batch/v1`` Jobs (one pod each, the pod template kubatch
   would render: ``sim.kubatch.io/duration: "1"``, the pool's nodeSelector) created directly as
   fast as the client can; time until all exist and until all succeeded; then deleted;
2. **kubatch**: ``jobs`` single-pod BatchJobs created the same way; time until every BatchJob
   has its Kubernetes Job and until all are ``Succeeded``; the operator's API writes over the
   phase (``kubatch_api_writes_total`` deltas, Events reported separately) per BatchJob;
3. **latency**: BatchJobs submitted at ``--rate`` per second for ``--latency-seconds``; for
   each, submit (client clock, just before the POST) → its Kubernetes Job seen by a watch;
   percentiles are nearest-rank (``kubatch.devkit.stats``);
4. **fill** (unless ``--quick``): more BatchJobs until ``--rss-jobs`` exist, so that the
   operator's peak RSS (VmHWM, sampled with psutil too) is measured with that many present.

The client is kubatch's own (``kubatch.adapters.kube``), its watches kubatch's one
list-then-watch. Writes JSON (figures, targets each ``met``/``missed``/``n/a``, machine) and
prints a table.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import platform
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from kubatch.adapters import kube as K
from kubatch.adapters.kube import ApiError, Kube, Resource
from kubatch.api import labels as L
from kubatch.devkit.polling import eventually_async
from kubatch.devkit.stack import SIM_ARGS, Stack, apply_crds
from kubatch.devkit.stats import percentile
from kubatch.timefmt import parse_time
from kubatch_bench.common import workdir_and_plane, write_json
from kubatch_bench.e2e_spec import (
    CE,
    DURATION,
    INSTANCE_TYPE,
    JOB_CPU,
    JOB_MEMORY,
    NODE_VCPUS,
    NS,
    NS_RAW,
    TARGET_JOBS,
    TARGET_RATE,
    TARGET_RSS_JOBS,
    add_targets,
    batchjob,
    phase_counts,
    raw_job,
    setup_manifests,
    table,
    writes_by_verb_resource,
    writes_delta,
)

RESOURCES = {
    "ComputeEnvironment": K.COMPUTEENVIRONMENTS,
    "JobQueue": K.JOBQUEUES,
    "JobDefinition": K.JOBDEFINITIONS,
}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="kubatch bench e2e", description=__doc__.split("\n")[0])
    p.add_argument("--jobs", type=int, default=TARGET_JOBS, help="jobs per phase (raw, kubatch)")
    p.add_argument("--rate", type=float, default=TARGET_RATE, help="latency phase submissions/s")
    p.add_argument("--latency-seconds", type=float, default=20.0)
    p.add_argument(
        "--rss-jobs",
        type=int,
        default=TARGET_RSS_JOBS,
        help="top up to this many BatchJobs present for the RSS figure (0: no top-up)",
    )
    p.add_argument("--vcpus", type=int, default=256, help="the pool's size (min = max vCPUs)")
    p.add_argument("--concurrency", type=int, default=64, help="client requests in flight")
    p.add_argument("--quick", action="store_true", help="500 jobs, 10 s latency, no top-up")
    p.add_argument("--json", type=Path, default=None, help="write the results here")
    p.add_argument("--timeout", type=float, default=1200.0, help="per phase")
    p.add_argument("--keep-workdir", action="store_true", help="keep logs (printed at the end)")
    return p


def _log(msg: str) -> None:
    print(f"[bench e2e {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


@dataclass
class RssSampler:
    pid: int
    peak_mib: float = 0.0
    samples: list[tuple[float, float, int]] = field(default_factory=list)  # (t, MiB, present)

    def sample(self, present: int) -> None:
        with contextlib.suppress(psutil.Error):
            mib = psutil.Process(self.pid).memory_info().rss / 2**20
            self.peak_mib = max(self.peak_mib, mib)
            self.samples.append((time.monotonic(), mib, present))

    def vm_hwm_mib(self) -> float | None:
        try:
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            return None
        return None


@dataclass
class Observed:
    """What the watches saw, by object name, on the client's wall clock."""

    raw_created: dict[str, float] = field(default_factory=dict)
    raw_done: dict[str, float] = field(default_factory=dict)
    raw_failed: set[str] = field(default_factory=set)
    job_seen: dict[str, float] = field(default_factory=dict)  # BatchJob name -> first Job seen
    job_created_ts: dict[str, float] = field(default_factory=dict)  # -> its creationTimestamp
    job_count: int = 0
    bj_phase: dict[str, str] = field(default_factory=dict)
    bj_created_ts: dict[str, float] = field(default_factory=dict)
    bj_terminal: dict[str, float] = field(default_factory=dict)

    def on_raw_job(self, etype: str, obj: dict[str, Any]) -> None:
        name = obj["metadata"]["name"]
        now = time.time()
        self.raw_created.setdefault(name, now)
        st = obj.get("status") or {}
        if st.get("succeeded") or st.get("failed"):
            self.raw_done.setdefault(name, now)
            if st.get("failed"):
                self.raw_failed.add(name)

    def on_job(self, etype: str, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        owner = (meta.get("labels") or {}).get(L.BATCHJOB)
        if owner is None or etype == "DELETED":
            return
        if owner not in self.job_seen:
            self.job_seen[owner] = time.time()
            self.job_count += 1
            ts = parse_time(meta.get("creationTimestamp"))
            if ts is not None:
                self.job_created_ts[owner] = ts

    def on_batchjob(self, etype: str, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        name = meta["name"]
        if etype == "DELETED":
            return
        if name not in self.bj_created_ts:
            ts = parse_time(meta.get("creationTimestamp"))
            if ts is not None:
                self.bj_created_ts[name] = ts
        phase = str((obj.get("status") or {}).get("phase") or "")
        self.bj_phase[name] = phase
        if phase in ("Succeeded", "Failed"):
            self.bj_terminal.setdefault(name, time.time())


@dataclass
class Run:
    args: argparse.Namespace
    kube: Kube
    stack: Stack
    seen: Observed = field(default_factory=Observed)
    rss: RssSampler | None = None

    async def until(self, what: str, done: Callable[[], bool], progress: Callable[[], str]) -> None:
        """Until ``done()``; fails if the operator or the simulator exits meanwhile."""

        async def probe() -> bool:
            return done()

        await eventually_async(
            probe, what=what, timeout=self.args.timeout, every=0.1, check=self.stack.check,
            progress=progress, report=_log,
        )  # fmt: skip

    def writes(self) -> dict[tuple[str, str], float]:
        return writes_by_verb_resource(self.stack.metrics())

    async def create_all(
        self, res: Resource, bodies: list[dict[str, Any]], namespace: str | None = None
    ) -> float:
        """Create every object, ``--concurrency`` in flight, retrying 429/5xx; seconds taken."""
        sem = asyncio.Semaphore(self.args.concurrency)
        t0 = time.monotonic()

        async def one(body: dict[str, Any]) -> None:
            async with sem:
                for attempt in range(5):
                    try:
                        await self.kube.create(res, body, namespace)
                        return
                    except ApiError as e:
                        if e.conflict:
                            return
                        if (e.status < 500 and e.status != 429) or attempt == 4:
                            raise
                    await asyncio.sleep(0.5 * (attempt + 1))

        await asyncio.gather(*(one(b) for b in bodies))
        return time.monotonic() - t0

    def follow(self, res: Resource, namespace: str, on_event: Any) -> asyncio.Task[None]:
        """kubatch's list-then-watch of ``res`` in ``namespace``, as a task."""
        return asyncio.create_task(self.kube.watch(res, on_event, namespace=namespace))

    async def rss_loop(self) -> None:
        while True:
            if self.rss is not None:
                self.rss.sample(len(self.seen.bj_phase))
            await asyncio.sleep(0.5)


async def _ensure_ns(kube: Kube, name: str) -> None:
    try:
        await kube.create(K.NAMESPACES, {"metadata": {"name": name}})
    except ApiError as e:
        if not e.conflict:
            raise


async def _ready_nodes(kube: Kube) -> int:
    n = 0
    for node in await kube.list(K.NODES, labels=f"{L.COMPUTE_ENVIRONMENT}={CE}"):
        conds = (node.get("status") or {}).get("conditions") or []
        unsched = (node.get("spec") or {}).get("unschedulable")
        if not unsched and any(c["type"] == "Ready" and c["status"] == "True" for c in conds):
            n += 1
    return n


async def phase_raw(run: Run, n: int) -> dict[str, Any]:
    seen = run.seen
    watch = run.follow(K.JOBS, NS_RAW, seen.on_raw_job)
    try:
        _log(f"raw: creating {n} batch/v1 Jobs")
        t0 = time.monotonic()
        t_req = await run.create_all(K.JOBS, [raw_job(f"raw-{i:05d}") for i in range(n)], NS_RAW)
        await run.until(
            "raw Jobs seen", lambda: len(seen.raw_created) >= n, lambda: f"{len(seen.raw_created)}"
        )
        t_created = time.monotonic() - t0
        await run.until(
            f"{n} raw Jobs done",
            lambda: len(seen.raw_done) >= n,
            lambda: f"{len(seen.raw_done)}/{n} done",
        )
        t_done = time.monotonic() - t0
    finally:
        watch.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watch
    _log(f"raw: {n} Jobs done in {t_done:.1f} s; cleaning up")
    await run.kube.request(
        "DELETE", K.JOBS.path(NS_RAW), body={"propagationPolicy": "Background"}, resource="jobs"
    )

    async def pods_left() -> int:
        items, _ = await run.kube.list_with_version(K.PODS, namespace=NS_RAW, page=5000)
        return len(items)

    deadline = time.monotonic() + run.args.timeout
    while (left := await pods_left()) > 0 and time.monotonic() < deadline:
        _log(f"raw: {left} pods left to garbage-collect")
        await asyncio.sleep(5)
    return {
        "raw_seconds_to_all_created_client": round(t_req, 2),
        "raw_seconds_to_all_created": round(t_created, 2),
        "raw_seconds_to_all_succeeded": round(t_done, 2),
        "raw_failed": len(seen.raw_failed),
        "raw_jobs_per_s": round(n / t_done, 2),
    }


async def phase_kubatch(run: Run, n: int) -> dict[str, Any]:
    seen = run.seen
    names = [f"bj-{i:05d}" for i in range(n)]
    w0 = run.writes()
    _log(f"kubatch: creating {n} BatchJobs")
    t0 = time.monotonic()
    t_req = await run.create_all(K.BATCHJOBS, [batchjob(x) for x in names], NS)
    _log(f"kubatch: {n} BatchJobs created by the client in {t_req:.1f} s")
    await run.until(
        "every BatchJob's Kubernetes Job",
        lambda: all(x in seen.job_seen for x in names),
        lambda: f"{sum(1 for x in names if x in seen.job_seen)}/{n} Jobs",
    )
    t_jobs = time.monotonic() - t0
    _log(f"kubatch: every BatchJob has its Job after {t_jobs:.1f} s")
    await run.until(
        f"{n} BatchJobs terminal",
        lambda: all(x in seen.bj_terminal for x in names),
        lambda: phase_counts(seen.bj_phase, names),
    )
    t_done = time.monotonic() - t0
    # trailing CE/queue status patches of the same work land within a couple of seconds
    await asyncio.sleep(3)
    delta = writes_delta(w0, run.writes())
    events = sum(v for k, v in delta.items() if k.split(" ")[1] == "events")
    non_events = sum(v for k, v in delta.items() if k.split(" ")[1] != "events")
    failed = [x for x in names if seen.bj_phase.get(x) != "Succeeded"]
    return {
        "seconds_client_create": round(t_req, 2),
        "seconds_to_all_jobs_created": round(t_jobs, 2),
        "seconds_to_all_succeeded": round(t_done, 2),
        "batchjobs_per_s": round(n / t_done, 2),
        "batchjobs_not_succeeded": len(failed),
        "kubernetes_jobs_in_namespace": seen.job_count,
        "operator_writes": non_events,
        "operator_event_writes": events,
        "writes_per_batchjob": round(non_events / n, 3),
        "event_writes_per_batchjob": round(events / n, 3),
        "operator_writes_by_verb_resource": delta,
    }


async def phase_latency(run: Run, rate: float, seconds: float) -> dict[str, Any]:
    seen = run.seen
    count = max(1, int(rate * seconds))
    names = [f"lat-{i:05d}" for i in range(count)]
    submitted: dict[str, float] = {}
    errors: list[str] = []

    async def submit(name: str) -> None:
        submitted[name] = time.time()
        try:
            await run.kube.create(K.BATCHJOBS, batchjob(name), NS)
        except ApiError as e:
            errors.append(str(e))

    _log(f"latency: {count} BatchJobs at {rate}/s")
    tasks: list[asyncio.Task[None]] = []
    t0 = time.monotonic()
    for i, name in enumerate(names):
        delay = t0 + i / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(submit(name)))
    await asyncio.gather(*tasks)
    t_submit = time.monotonic() - t0
    await run.until(
        "latency-phase Jobs",
        lambda: all(x in seen.job_seen for x in names),
        lambda: f"{sum(1 for x in names if x in seen.job_seen)}/{count}",
    )
    await run.until(
        "latency-phase BatchJobs terminal",
        lambda: all(x in seen.bj_terminal for x in names),
        lambda: phase_counts(seen.bj_phase, names),
    )
    lat = [seen.job_seen[x] - submitted[x] for x in names]
    by_ts = [
        seen.job_created_ts[x] - seen.bj_created_ts[x]
        for x in names
        if x in seen.job_created_ts and x in seen.bj_created_ts
    ]

    def r(v: float | None) -> float | None:
        return None if v is None else round(v, 3)

    return {
        "latency_jobs": count,
        "latency_rate_per_s": rate,
        "latency_achieved_rate_per_s": round(count / t_submit, 2),
        "latency_submit_errors": len(errors),
        "submit_to_admitted_p50_s": r(percentile(lat, 50)),
        "submit_to_admitted_p99_s": r(percentile(lat, 99)),
        "submit_to_admitted_max_s": r(max(lat)),
        "submit_to_admitted_p99_s_by_creation_timestamps": r(percentile(by_ts, 99)),
    }


async def phase_fill(run: Run, target: int) -> dict[str, Any]:
    seen = run.seen
    present = len(seen.bj_phase)
    extra = max(0, target - present)
    if extra:
        names = [f"fill-{i:05d}" for i in range(extra)]
        _log(f"fill: {extra} more BatchJobs to have {target} present")
        await run.create_all(K.BATCHJOBS, [batchjob(x) for x in names], NS)
        await run.until(
            "fill BatchJobs terminal",
            lambda: all(x in seen.bj_terminal for x in names),
            lambda: phase_counts(seen.bj_phase, names),
        )
        await asyncio.sleep(5)
    return {"batchjobs_present_at_end": len(seen.bj_phase)}


async def _setup(run: Run) -> int:
    """CRDs, namespaces, the simulator and the operator, the pool; returns its ready nodes."""
    kube, stack = run.kube, run.stack
    await apply_crds(kube)
    for ns in (NS, NS_RAW):
        await _ensure_ns(kube, ns)
    stack.start(wait=False)
    for name, pid in stack.pids().items():
        _log(f"started the {name} (pid {pid})")
    for doc in setup_manifests(run.args.vcpus):
        await run.create_all(RESOURCES[doc["kind"]], [doc], doc["metadata"].get("namespace"))
    want = math.ceil(run.args.vcpus / NODE_VCPUS)

    async def enough() -> int:
        ready = await _ready_nodes(kube)
        return ready if ready >= want else 0

    ready = await eventually_async(enough, what=f"{want} ready nodes", timeout=180, every=1,
                                   check=stack.check)  # fmt: skip
    await stack.wait_operator_async()
    return ready


async def _bench(args: argparse.Namespace, kubeconfig: Path, work: Path) -> dict[str, Any]:
    kube = await Kube.from_environment(kubeconfig, limit=args.concurrency + 8)
    stack = Stack.prepare(kubeconfig, work, sim_args=(*SIM_ARGS, "--delete-nodes-on-exit"))
    run = Run(args, kube, stack)
    tasks: list[asyncio.Task[None]] = []
    try:
        ready = await _setup(run)
        operator_pid = stack.operator.pid
        assert operator_pid is not None
        run.rss = RssSampler(operator_pid)
        _log(f"{ready} nodes of {INSTANCE_TYPE} ready; operator pid {operator_pid}")
        result: dict[str, Any] = {"benchmark": "e2e", "jobs": args.jobs}
        result.update(await phase_raw(run, args.jobs))
        # the operator saw the raw phase's Jobs and pods too (kopf filters labels client-side):
        # report what that cost, then restart it so the kubatch figures are its own
        result["operator_rss_mib_after_raw_phase"] = round(
            psutil.Process(operator_pid).memory_info().rss / 2**20, 1
        )
        result["operator_vm_hwm_mib_raw_phase"] = run.rss.vm_hwm_mib()
        stack.operator.stop()
        stack.start_operator(wait=False)
        await stack.wait_operator_async()
        operator_pid = stack.operator.pid
        assert operator_pid is not None
        run.rss = RssSampler(operator_pid)

        tasks.append(run.follow(K.BATCHJOBS, NS, run.seen.on_batchjob))
        tasks.append(run.follow(K.JOBS, NS, run.seen.on_job))
        tasks.append(asyncio.create_task(run.rss_loop()))
        result.update(await phase_kubatch(run, args.jobs))
        result["ratio"] = round(result["batchjobs_per_s"] / result["raw_jobs_per_s"], 3)
        result.update(await phase_latency(run, args.rate, args.latency_seconds))
        if args.rss_jobs:
            result.update(await phase_fill(run, args.rss_jobs))
        else:
            result["batchjobs_present_at_end"] = len(run.seen.bj_phase)
        run.rss.sample(len(run.seen.bj_phase))
        hwm = run.rss.vm_hwm_mib()
        result["operator_peak_rss_mib"] = round(max(run.rss.peak_mib, hwm or 0.0), 1)
        result["operator_rss_mib_at_end"] = round(run.rss.samples[-1][1], 1)
        cpu = psutil.Process(operator_pid).cpu_times()
        result["operator_cpu_s_total"] = round(cpu.user + cpu.system, 1)
        result["sim_stats"] = stack.sim_stats()
        result["operator_log_errors"] = _log_problems(stack.operator.log)
        result["pool"] = {
            "instance_type": INSTANCE_TYPE,
            "nodes": ready,
            "vcpus": args.vcpus,
            "job_requests": {"cpu": JOB_CPU, "memory": JOB_MEMORY},
            "pod_duration_s": float(DURATION),
        }
        return result
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        stack.stop()
        await kube.close()


def _log_problems(path: Path, limit: int = 20) -> list[str]:
    """Lines of the operator's log that look like errors or tracebacks (first ``limit``)."""
    out: list[str] = []
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return out
    for line in text.splitlines():
        if re.search(r"\b(ERROR|Traceback|Exception|CRITICAL)\b", line):
            out.append(line[:300])
            if len(out) >= limit:
                break
    return out


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.quick:
        args.jobs = min(args.jobs, 500)
        args.latency_seconds = min(args.latency_seconds, 10.0)
        args.rss_jobs = 0
    started = time.time()
    with workdir_and_plane("kubatch-bench-e2e-", keep=args.keep_workdir) as (work, kubeconfig):
        result = asyncio.run(_bench(args, kubeconfig, work))
    result["wall_seconds_total"] = round(time.time() - started, 1)
    result["machine"] = {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "kubernetes": "1.20.2 (local plane: etcd, kube-apiserver, controller-manager, scheduler)",
        "note": "2 cores shared with other work; figures vary with load",
    }
    add_targets(result)
    print(table(result))
    write_json(result, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
