"""Whole-stack benchmark: ``kubatch bench e2e [--jobs 10000 | --sizes 1000,5000,10000] ...``.

One run, one local control plane (started here in a temporary directory, stopped at the end),
the simulated node pools (``kubatch sim run``) and the operator (``kubatch operator``), each in
its own process (``kubatch.devkit.stack``). Two Managed ComputeEnvironments with
``minvCpus = maxvCpus`` (fixed sets of nodes): the measured pool (``--vcpus``, default 256) and
a free pool (``--free-vcpus``, default 512) that the latency and dependency phases use so that
they never wait for room.

For each size N (``--jobs`` or each of ``--sizes``):

1. **raw baseline** (unless ``--no-raw``): N plain ``batch/v1`` Jobs (one pod each, the pod
   template kubatch renders) created as fast as the client can; time until all exist and all
   succeeded; then deleted one by one at a bounded pace (a ``deletecollection`` of 10,000 Jobs
   times out on this machine) and their pods garbage-collected;
2. **kubatch**: N single-pod BatchJobs created the same way; time until every BatchJob has its
   Kubernetes Job and until all are ``Succeeded``; the operator's API writes over the phase per
   BatchJob (Events apart) and its CPU seconds per 1,000 BatchJobs; where an attempt's seconds
   go (``kubatch_bench.trace``). Between sizes the BatchJobs are deleted (paced) too.

Then, once, with the largest size's BatchJobs present:

3. **restart**: the operator is stopped, one probe BatchJob is submitted to the free pool, the
   operator starts again: seconds from its start to the probe's Kubernetes Job; every
   BatchJob still has exactly one Job per attempt (no duplicate after the restart);
4. **latency**: BatchJobs at ``--rate``/s for ``--latency-seconds`` to the measured pool
   (``submit_to_job_*``: may queue behind its capacity) and to the free pool
   (``free_submit_to_job_*``); submit (client clock, just before the POST) → its Kubernetes
   Job seen by a watch;
5. **dependencies** (on the free pool): a 1→100 fan-out and five 100→1 fan-ins; from the last
   parent's pod seen ``Succeeded`` to the dependent's Kubernetes Job seen;
6. **fill** (unless ``--rss-jobs 0``): more BatchJobs until ``--rss-jobs`` exist, for the
   operator's peak RSS (VmHWM and psutil samples) with that many present.

``--profile S`` records the operator with py-spy for S seconds of the largest kubatch phase
and summarises where its time goes (``kubatch_bench.profile``). Percentiles are nearest-rank
(``kubatch.devkit.stats``). Writes JSON (figures, targets each ``met``/``missed``/``n/a``,
machine) and prints a table.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from kubatch.adapters import kube as K
from kubatch.adapters.kube import ApiError, Kube, Resource
from kubatch.adapters.watch import WatchStats
from kubatch.api import labels as L
from kubatch.devkit.polling import NotYet, eventually_async
from kubatch.devkit.stack import SIM_ARGS, Stack, apply_crds
from kubatch.devkit.stats import percentile
from kubatch.timefmt import parse_time
from kubatch_bench import harness as H
from kubatch_bench import profile
from kubatch_bench.common import Site, workdir_and_plane, write_json
from kubatch_bench.e2e_spec import (
    CE,
    CE_FREE,
    DEFINITION,
    DEFINITION_FREE,
    INSTANCE_TYPE,
    JOB_CPU,
    JOB_MEMORY,
    NODE_VCPUS,
    NS,
    NS_RAW,
    QUEUE,
    QUEUE_FREE,
    TARGET_JOBS,
    TARGET_RATE,
    TARGET_RSS_JOBS,
    add_targets,
    batchjob,
    fan_in,
    fan_out,
    phase_counts,
    raw_job,
    setup_manifests,
    table,
    writes_by_verb_resource,
    writes_delta,
)
from kubatch_bench.trace import Trace, stage_table

TAG = "e2e"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="kubatch bench e2e", description=__doc__.split("\n")[0])
    p.add_argument("--jobs", type=int, default=TARGET_JOBS, help="jobs per phase (raw, kubatch)")
    p.add_argument("--sizes", default="", help="comma-separated N to run in turn (e.g. "
                   "1000,5000,10000); the largest is the run's figure")  # fmt: skip
    p.add_argument("--pod-seconds", type=float, default=1.0, help="how long each pod runs")
    p.add_argument("--no-raw", action="store_true", help="skip the raw-Jobs baseline")
    p.add_argument("--rate", type=float, default=TARGET_RATE, help="latency phase submissions/s")
    p.add_argument("--latency-seconds", type=float, default=20.0)
    p.add_argument(
        "--rss-jobs",
        type=int,
        default=TARGET_RSS_JOBS,
        help="top up to this many BatchJobs present for the RSS figure (0: no top-up)",
    )
    p.add_argument("--vcpus", type=int, default=256, help="the measured pool (min = max vCPUs)")
    p.add_argument("--free-vcpus", type=int, default=512, help="the free pool's vCPUs")
    p.add_argument("--concurrency", type=int, default=64, help="client requests in flight")
    p.add_argument(
        "--no-extras",
        action="store_true",
        help="only the sized phases (no restart, latency, dependencies, fill)",
    )
    p.add_argument(
        "--profile",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="py-spy the operator this long during the largest kubatch phase",
    )
    p.add_argument("--quick", action="store_true", help="500 jobs, 10 s latency, no top-up")
    p.add_argument("--json", type=Path, default=None, help="write the results here")
    p.add_argument("--timeout", type=float, default=1200.0, help="per phase")
    p.add_argument("--keep-workdir", action="store_true", help="keep logs (printed at the end)")
    return p


def _log(msg: str) -> None:
    H.log(TAG, msg)


@dataclass
class Observed:
    """What the watches saw, by object name, on the client's wall clock."""

    raw_created: dict[str, float] = field(default_factory=dict)
    raw_done: dict[str, float] = field(default_factory=dict)
    raw_failed: set[str] = field(default_factory=set)
    job_seen: dict[str, float] = field(default_factory=dict)  # BatchJob name -> first Job seen
    job_created_ts: dict[str, float] = field(default_factory=dict)  # -> its creationTimestamp
    bj_phase: dict[str, str] = field(default_factory=dict)
    bj_created_ts: dict[str, float] = field(default_factory=dict)
    bj_terminal: dict[str, float] = field(default_factory=dict)
    trace: Trace = field(default_factory=Trace)
    raw_trace: Trace = field(default_factory=Trace)

    def on_raw_job(self, etype: str, obj: dict[str, Any]) -> None:
        name = obj["metadata"]["name"]
        now = time.time()
        self.raw_created.setdefault(name, now)
        self.raw_trace.stamp(name, "job", now)
        st = obj.get("status") or {}
        if st.get("succeeded") or st.get("failed"):
            self.raw_done.setdefault(name, now)
            self.raw_trace.stamp(name, "done", now)
            if st.get("failed"):
                self.raw_failed.add(name)

    def on_raw_pod(self, etype: str, obj: dict[str, Any]) -> None:
        owner = (obj["metadata"].get("labels") or {}).get("job-name")
        if owner is not None and etype != "DELETED":
            self.raw_trace.on_pod(owner, obj, time.time())

    def on_job(self, etype: str, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        owner = (meta.get("labels") or {}).get(L.BATCHJOB)
        if owner is None or etype == "DELETED":
            return
        if owner not in self.job_seen:
            self.job_seen[owner] = time.time()
            self.trace.stamp(owner, "job", self.job_seen[owner])
            ts = parse_time(meta.get("creationTimestamp"))
            if ts is not None:
                self.job_created_ts[owner] = ts

    def on_pod(self, etype: str, obj: dict[str, Any]) -> None:
        owner = (obj["metadata"].get("labels") or {}).get(L.BATCHJOB)
        if owner is not None and etype != "DELETED":
            self.trace.on_pod(owner, obj, time.time())

    def on_batchjob(self, etype: str, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        name = meta["name"]
        if etype == "DELETED":
            self.bj_phase.pop(name, None)
            return
        self.trace.stamp(name, "created", time.time())
        if name not in self.bj_created_ts:
            ts = parse_time(meta.get("creationTimestamp"))
            if ts is not None:
                self.bj_created_ts[name] = ts
        phase = str((obj.get("status") or {}).get("phase") or "")
        self.bj_phase[name] = phase
        if phase in ("Succeeded", "Failed"):
            self.bj_terminal.setdefault(name, time.time())
            self.trace.stamp(name, "done", self.bj_terminal[name])

    def pod_done(self, name: str) -> float | None:
        return self.trace.marks.get(name, {}).get("pod_done")


@dataclass
class Run:
    args: argparse.Namespace
    kube: Kube
    stack: Stack
    site: Site
    seen: Observed = field(default_factory=Observed)
    rss: H.RssSampler | None = None
    pod_seconds: float = 1.0
    watch_stats: dict[str, WatchStats] = field(default_factory=dict)

    async def until(self, what: str, done: Any, progress: Any) -> None:
        await H.until(self.stack, what, done, progress, timeout=self.args.timeout, tag=TAG)

    def writes(self) -> dict[tuple[str, str], float]:
        return writes_by_verb_resource(self.stack.metrics())

    async def create_all(
        self, res: Resource, bodies: list[dict[str, Any]], namespace: str | None = None
    ) -> float:
        return await H.create_all(self.kube, res, bodies, namespace,
                                  concurrency=self.args.concurrency)  # fmt: skip

    def follow(self, res: Resource, namespace: str, on_event: Any) -> asyncio.Task[None]:
        """kubatch's list-then-watch of ``res`` in ``namespace``, as a task (its lists and
        410s counted in ``watch_stats``: a client that relists loads the API server too)."""
        stats = self.watch_stats.setdefault(f"{res.plural} in {namespace}", WatchStats())
        return asyncio.create_task(self.kube.watch(res, on_event, namespace=namespace, stats=stats))

    def client_relists(self) -> dict[str, int]:
        """The benchmark's own watches: lists beyond the first, by watch."""
        return {k: s.lists - 1 for k, s in self.watch_stats.items() if s.lists > 1}

    def operator_pid(self) -> int:
        pid = self.stack.operator.pid
        assert pid is not None
        return pid

    async def rss_loop(self) -> None:
        while True:
            if self.rss is not None:
                self.rss.sample(len(self.seen.bj_phase))
            await asyncio.sleep(0.5)

    async def all_terminal(self, what: str, names: list[str]) -> None:
        seen = self.seen
        await self.until(what, lambda: all(x in seen.bj_terminal for x in names),
                         lambda: phase_counts(seen.bj_phase, names))  # fmt: skip


async def _stop_watches(*tasks: asyncio.Task[None]) -> None:
    for t in tasks:
        t.cancel()
    for t in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await t


# ---------------------------------------------------------------------------- sized phases


async def phase_raw(run: Run, n: int) -> dict[str, Any]:
    seen, ns = run.seen, f"{NS_RAW}-{n}"
    await H.ensure_namespace(run.kube, ns)
    watches = (run.follow(K.JOBS, ns, seen.on_raw_job), run.follow(K.PODS, ns, seen.on_raw_pod))
    names = [f"raw-{n}-{i:05d}" for i in range(n)]
    try:
        _log(f"raw: creating {n} batch/v1 Jobs")
        kcm0 = H.kcm_sample(run.site.kcm_metrics, run.site.token)
        t0 = time.monotonic()
        bodies = [raw_job(x, ns, run.pod_seconds) for x in names]
        t_req = await run.create_all(K.JOBS, bodies, ns)
        await run.until("raw Jobs seen", lambda: all(x in seen.raw_created for x in names),
                        lambda: f"{sum(1 for x in names if x in seen.raw_created)}")  # fmt: skip
        t_created = time.monotonic() - t0
        await run.until(
            f"{n} raw Jobs done",
            lambda: all(x in seen.raw_done for x in names),
            lambda: f"{sum(1 for x in names if x in seen.raw_done)}/{n} done",
        )
        t_done = time.monotonic() - t0
    finally:
        await _stop_watches(*watches)
    jc = H.job_controller(kcm0, H.kcm_sample(run.site.kcm_metrics, run.site.token), t_done, n)
    stages = seen.raw_trace.stages(names)
    _log(f"raw: {n} Jobs done in {t_done:.1f} s; where a Job's seconds go\n" + stage_table(stages)
         + f"\nthe Job controller: {jc}")  # fmt: skip
    t_clean = time.monotonic()
    await H.paced_delete(run.kube, K.JOBS, ns, tag=TAG)
    await H.until_gone(run.kube, K.PODS, ns, timeout=run.args.timeout, tag=TAG)
    return {
        "raw_seconds_to_all_created_client": round(t_req, 2),
        "raw_seconds_to_all_created": round(t_created, 2),
        "raw_seconds_to_all_succeeded": round(t_done, 2),
        "raw_failed": sum(1 for x in names if x in seen.raw_failed),
        "raw_jobs_per_s": round(n / t_done, 2),
        "raw_stages_seconds": stages,
        "raw_job_controller": jc,
        "raw_cleanup_seconds": round(time.monotonic() - t_clean, 1),
    }


async def phase_kubatch(run: Run, n: int, profile_seconds: float) -> dict[str, Any]:
    seen = run.seen
    names = [f"bj-{n}-{i:05d}" for i in range(n)]
    w0 = run.writes()
    cpu0 = H.cpu_seconds(run.operator_pid())
    spy = None
    if profile_seconds > 0:
        spy = profile.start(run.operator_pid(), profile_seconds, run.site.work / "py-spy.txt")
    _log(f"kubatch: creating {n} BatchJobs")
    kcm0 = H.kcm_sample(run.site.kcm_metrics, run.site.token)
    t0, wall0 = time.monotonic(), time.time()
    t_req = await run.create_all(K.BATCHJOBS, [batchjob(x) for x in names], NS)
    _log(f"kubatch: {n} BatchJobs created by the client in {t_req:.1f} s")
    timed_out: list[str] = []
    try:
        await run.until(
            "every BatchJob's Kubernetes Job",
            lambda: all(x in seen.job_seen for x in names),
            lambda: f"{sum(1 for x in names if x in seen.job_seen)}/{n} Jobs",
        )
        _log(f"kubatch: every BatchJob has its Job after {time.monotonic() - t0:.1f} s")
        await run.all_terminal(f"{n} BatchJobs terminal", names)
    except NotYet as exc:
        # a run that does not finish still reports what it reached: the figures below are
        # then lower bounds (the elapsed time when the phase gave up), marked timed out
        timed_out.append(str(exc)[:300])
        _log(f"kubatch: {exc}"[:300])
    t_done = time.monotonic() - t0
    if all(x in seen.job_seen for x in names):
        t_jobs = max(seen.job_seen[x] for x in names) - wall0
    else:
        t_jobs = t_done  # timed out before every Job existed: a lower bound
    cpu = H.cpu_seconds(run.operator_pid()) - cpu0
    jc = H.job_controller(kcm0, H.kcm_sample(run.site.kcm_metrics, run.site.token), t_done, n)
    stages = seen.trace.stages(names)
    _log(f"kubatch: {n} done in {t_done:.1f} s; where an attempt's seconds go\n"
         + stage_table(stages) + f"\nthe Job controller: {jc}")  # fmt: skip
    # trailing CE/queue status patches of the same work land within a couple of seconds
    await asyncio.sleep(3)
    delta = writes_delta(w0, run.writes())
    events = sum(v for k, v in delta.items() if k.split(" ")[1] == "events")
    non_events = sum(v for k, v in delta.items() if k.split(" ")[1] != "events")
    out: dict[str, Any] = {
        "seconds_client_create": round(t_req, 2),
        "seconds_to_all_jobs_created": round(t_jobs, 2),
        "seconds_to_all_succeeded": round(t_done, 2),
        "batchjobs_per_s": round(sum(1 for x in names if x in seen.bj_terminal) / t_done, 2),
        "batchjobs_with_a_job": sum(1 for x in names if x in seen.job_seen),
        "batchjobs_terminal": sum(1 for x in names if x in seen.bj_terminal),
        "timed_out": timed_out,
        "batchjobs_not_succeeded": sum(1 for x in names if seen.bj_phase.get(x) != "Succeeded"),
        "operator_writes": non_events,
        "operator_event_writes": events,
        "writes_per_batchjob": round(non_events / n, 3),
        "event_writes_per_batchjob": round(events / n, 3),
        "operator_writes_by_verb_resource": delta,
        "operator_cpu_s_per_1000_batchjobs": round(cpu / n * 1000, 2),
        "stages_seconds": stages,
        "job_controller": jc,
        "bench_client_relists": run.client_relists(),
    }
    if spy is not None:
        out["profile"] = await asyncio.to_thread(profile.finish, spy)
    return out


async def delete_batchjobs(run: Run) -> None:
    """Delete every BatchJob of the namespace and their Jobs (paced; the garbage collector
    alone removes Jobs whose BatchJob is gone at only ~10/s here); the pods go with them."""
    await H.paced_delete(run.kube, K.BATCHJOBS, NS, tag=TAG)
    await H.paced_delete(run.kube, K.JOBS, NS, tag=TAG)
    for res in (K.BATCHJOBS, K.JOBS, K.PODS):
        await H.until_gone(run.kube, res, NS, timeout=run.args.timeout, tag=TAG)


# ---------------------------------------------------------------------------- once


async def phase_restart(run: Run) -> dict[str, Any]:
    """Restart the operator with every BatchJob present; a probe on the free pool."""
    probe = batchjob("restart-probe", QUEUE_FREE, DEFINITION_FREE)
    before = run.rss.peak() if run.rss is not None else None
    out = await H.restart_with_probe(run.kube, run.stack, probe, run.seen.job_seen,
                                     timeout=run.args.timeout, tag=TAG)  # fmt: skip
    run.rss = H.RssSampler(run.operator_pid())
    await run.all_terminal("the probe", ["restart-probe"])
    out["operator_peak_rss_mib_before_restart"] = before
    return out


async def phase_latency(run: Run, prefix: str, queue: str, definition: str) -> dict[str, Any]:
    rate, seconds, seen = run.args.rate, run.args.latency_seconds, run.seen
    count = max(1, int(rate * seconds))
    names = [f"{prefix}-{i:05d}" for i in range(count)]
    submitted: dict[str, float] = {}
    errors: list[str] = []

    async def submit(name: str) -> None:
        submitted[name] = time.time()
        try:
            await run.kube.create(K.BATCHJOBS, batchjob(name, queue, definition), NS)
        except ApiError as e:
            errors.append(str(e))

    _log(f"latency: {count} BatchJobs at {rate}/s to queue {queue}")
    tasks: list[asyncio.Task[None]] = []
    t0 = time.monotonic()
    for i, name in enumerate(names):
        delay = t0 + i / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(submit(name)))
    await asyncio.gather(*tasks)
    t_submit = time.monotonic() - t0
    await run.until(f"{prefix} Jobs", lambda: all(x in seen.job_seen for x in names),
                    lambda: f"{sum(1 for x in names if x in seen.job_seen)}/{count}")  # fmt: skip
    await run.all_terminal(f"{prefix} BatchJobs terminal", names)
    lat = [seen.job_seen[x] - submitted[x] for x in names]
    by_ts = [seen.job_created_ts[x] - seen.bj_created_ts[x] for x in names
             if x in seen.job_created_ts and x in seen.bj_created_ts]  # fmt: skip
    return {
        f"{prefix}_jobs": count,
        f"{prefix}_achieved_rate_per_s": round(count / t_submit, 2),
        f"{prefix}_submit_errors": len(errors),
        f"{prefix}_submit_to_job_p50_s": _r(percentile(lat, 50)),
        f"{prefix}_submit_to_job_p99_s": _r(percentile(lat, 99)),
        f"{prefix}_submit_to_job_max_s": _r(max(lat)),
        f"{prefix}_submit_to_job_p99_s_by_creation_timestamps": _r(percentile(by_ts, 99)),
    }


def _r(v: float | None) -> float | None:
    return None if v is None else round(v, 3)


async def phase_dependencies(run: Run, width: int = 100, fan_ins: int = 5) -> dict[str, Any]:
    """Dependency release on the free pool: last parent's pod Succeeded → dependent's Job."""
    seen = run.seen
    parent, kids = fan_out("fanout", width)
    _log(f"dependencies: a 1→{width} fan-out")
    await run.create_all(K.BATCHJOBS, [parent, *kids], NS)
    kid_names = [k["metadata"]["name"] for k in kids]
    await run.all_terminal("fan-out", [parent["metadata"]["name"], *kid_names])
    done = seen.pod_done(parent["metadata"]["name"])
    assert done is not None, "the parent's pod was never seen Succeeded"
    out_lat = [seen.job_seen[k] - done for k in kid_names]
    in_lat: list[float] = []
    for g in range(fan_ins):
        parents, child = fan_in(f"fanin{g}", width)
        _log(f"dependencies: {width}→1 fan-in {g + 1}/{fan_ins}")
        await run.create_all(K.BATCHJOBS, [*parents, child], NS)
        pnames = [p["metadata"]["name"] for p in parents]
        cname = child["metadata"]["name"]
        await run.all_terminal("fan-in", [*pnames, cname])
        last = max(t for p in pnames if (t := seen.pod_done(p)) is not None)
        in_lat.append(seen.job_seen[cname] - last)
    return {
        "fan_out_width": width,
        "fan_out_release_p50_s": _r(percentile(out_lat, 50)),
        "fan_out_release_p99_s": _r(percentile(out_lat, 99)),
        "fan_out_release_max_s": _r(max(out_lat)),
        "fan_in_width": width,
        "fan_in_samples": len(in_lat),
        "fan_in_release_p99_s": _r(percentile(in_lat, 99)),
        "fan_in_release_all_s": [round(x, 3) for x in in_lat],
    }


async def phase_fill(run: Run, target: int) -> dict[str, Any]:
    present = await H.count(run.kube, K.BATCHJOBS, NS)
    extra = max(0, target - present)
    out: dict[str, Any] = {}
    if extra:
        names = [f"fill-{i:05d}" for i in range(extra)]
        _log(f"fill: {extra} more BatchJobs to have {target} present")
        await run.create_all(K.BATCHJOBS, [batchjob(x) for x in names], NS)
        try:  # the RSS figure is about what is present; ending them all is not required
            await run.all_terminal("fill BatchJobs terminal", names)
        except NotYet as exc:
            _log(f"fill: {exc}"[:300])
            out["fill_timed_out"] = str(exc)[:300]
        await asyncio.sleep(5)
    out["batchjobs_present_at_end"] = await H.count(run.kube, K.BATCHJOBS, NS)
    return out


# ---------------------------------------------------------------------------- the run


async def _setup(run: Run) -> int:
    """CRDs, namespaces, the simulator and the operator, the pools; returns their ready nodes."""
    kube, stack, args = run.kube, run.stack, run.args
    await apply_crds(kube)
    await H.ensure_namespace(kube, NS)
    stack.start(wait=False)
    for name, pid in stack.pids().items():
        _log(f"started the {name} (pid {pid})")
    await H.create_setup(kube, setup_manifests(args.vcpus, args.free_vcpus, run.pod_seconds))
    want = {
        CE: math.ceil(args.vcpus / NODE_VCPUS),
        CE_FREE: math.ceil(args.free_vcpus / NODE_VCPUS),
    }

    async def enough() -> int:
        ready = {ce: await H.ready_nodes(kube, ce) for ce in want}
        return sum(ready.values()) if all(ready[c] >= want[c] for c in want) else 0

    ready = await eventually_async(enough, what=f"{want} ready nodes", timeout=300, every=1,
                                   check=stack.check)  # fmt: skip
    await stack.wait_operator_async()
    return ready


def _sizes(args: argparse.Namespace) -> list[int]:
    if args.sizes:
        return sorted(int(x) for x in args.sizes.split(",") if x.strip())
    return [args.jobs]


async def _bench(args: argparse.Namespace, site: Site, result: dict[str, Any]) -> None:
    """The run; fills ``result`` as it goes, so that a run that fails still reports what
    it measured before."""
    kube = await Kube.from_environment(site.kubeconfig, limit=args.concurrency + 8)
    stack = Stack.prepare(
        site.kubeconfig, site.work, sim_args=(*SIM_ARGS, "--delete-nodes-on-exit")
    )
    run = Run(args, kube, stack, site, pod_seconds=args.pod_seconds)
    tasks: list[asyncio.Task[None]] = []
    sizes = _sizes(args)
    try:
        ready = await _setup(run)
        run.rss = H.RssSampler(run.operator_pid())
        _log(f"{ready} nodes of {INSTANCE_TYPE} ready; operator pid {run.operator_pid()}")
        result.update({"benchmark": "e2e", "jobs": sizes[-1], "sizes": []})
        tasks.append(run.follow(K.BATCHJOBS, NS, run.seen.on_batchjob))
        tasks.append(run.follow(K.JOBS, NS, run.seen.on_job))
        tasks.append(run.follow(K.PODS, NS, run.seen.on_pod))
        tasks.append(asyncio.create_task(run.rss_loop()))
        for n in sizes:
            row: dict[str, Any] = {"jobs": n}
            if not args.no_raw:
                row.update(await phase_raw(run, n))
                row["operator_rss_mib_after_raw_phase"] = run.rss.sample(0)
            last = n == sizes[-1]
            row.update(await phase_kubatch(run, n, args.profile if last else 0.0))
            if "raw_jobs_per_s" in row:
                row["ratio"] = round(row["batchjobs_per_s"] / row["raw_jobs_per_s"], 3)
            result["sizes"].append(row)
            if row["timed_out"]:
                break  # the cluster is still busy: larger sizes and extras would only wait too
            if not last:
                await delete_batchjobs(run)
        result.update({k: v for k, v in result["sizes"][-1].items() if k != "jobs"})
        result["etcd_after_sized_phases"] = H.etcd_sizes(site.etcd_metrics)
        if result["timed_out"]:
            result["extras_skipped"] = "the sized phase timed out"
        elif not args.no_extras:
            result.update(await phase_restart(run))
            result.update(await phase_latency(run, "capped", QUEUE, DEFINITION))
            result.update(await phase_latency(run, "free", QUEUE_FREE, DEFINITION_FREE))
            result["submit_to_job_p99_s"] = result["capped_submit_to_job_p99_s"]
            result["latency_rate_per_s"] = args.rate
            result.update(await phase_dependencies(run))
            if args.rss_jobs:
                result.update(await phase_fill(run, args.rss_jobs))
        result.setdefault("batchjobs_present_at_end", await H.count(kube, K.BATCHJOBS, NS))
        assert run.rss is not None
        run.rss.sample(result["batchjobs_present_at_end"])
        result["operator_peak_rss_mib"] = run.rss.peak()
        result["operator_rss_mib_at_end"] = round(run.rss.samples[-1][1], 1)
        result["operator_cpu_s_total"] = round(H.cpu_seconds(run.operator_pid()), 1)
        result["etcd_at_end"] = H.etcd_sizes(site.etcd_metrics)
        result["sim_stats"] = stack.sim_stats()
        result["operator_log_errors"] = H.log_problems(stack.operator.log)
        result["pool"] = {
            "instance_type": INSTANCE_TYPE,
            "vcpus": args.vcpus,
            "free_pool_vcpus": args.free_vcpus,
            "nodes_ready": ready,
            "job_requests": {"cpu": JOB_CPU, "memory": JOB_MEMORY},
            "pod_duration_s": args.pod_seconds,
        }
    finally:
        await _stop_watches(*tasks)
        stack.stop()
        await kube.close()


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.quick:
        args.jobs = min(args.jobs, 500)
        args.sizes = ""
        args.latency_seconds = min(args.latency_seconds, 10.0)
        args.rss_jobs = 0
    started = time.time()
    command = "kubatch bench e2e " + " ".join(argv if argv is not None else sys.argv[1:])
    result: dict[str, Any] = {"jobs": args.jobs}
    failure: BaseException | None = None
    with workdir_and_plane("kubatch-bench-e2e-", keep=args.keep_workdir) as site:
        try:
            asyncio.run(_bench(args, site, result))
        except Exception as exc:  # write what was measured, then fail the run
            failure = exc
            result["error"] = f"{type(exc).__name__}: {exc}"[:1000]
    result["command"] = command.strip()
    result["wall_seconds_total"] = round(time.time() - started, 1)
    result["machine"] = {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        "kubernetes": "1.20.2 (local plane: etcd, kube-apiserver, controller-manager, scheduler)",
    }
    add_targets(result)
    print(table(result))
    write_json(result, args.json)
    if failure is not None:
        raise failure
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
