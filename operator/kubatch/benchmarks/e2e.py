"""Whole-stack benchmark: ``kubatch bench e2e [--jobs 10000] [--rate 50] [--quick] [--json PATH]``.

One run, one local control plane (started here in a temporary directory, stopped at the end),
one simulated node pool (``kubatch sim run``, a Managed ComputeEnvironment whose
``minvCpus = maxvCpus``, so the pool is the same fixed set of nodes for every phase) and the
operator (``kubatch operator``), each in its own process:

1. **raw baseline**: ``jobs`` plain ``batch/v1`` Jobs (one pod each, the pod template kubatch
   would render: ``sim.kubatch.io/duration: "1"``, the pool's nodeSelector) created directly as
   fast as the client can; time until all exist and until all succeeded; then deleted;
2. **kubatch**: ``jobs`` single-pod BatchJobs created the same way; time until every BatchJob
   has its Kubernetes Job and until all are ``Succeeded``; the operator's API writes over the
   phase (``kubatch_api_writes_total`` deltas, Events reported separately) per BatchJob;
3. **latency**: BatchJobs submitted at ``--rate`` per second for ``--latency-seconds``; for
   each, submit (client clock, just before the POST) → its Kubernetes Job seen by a watch;
4. **fill** (unless ``--quick``): more BatchJobs until ``--rss-jobs`` exist, so that the
   operator's peak RSS (VmHWM, sampled with psutil too) is measured with that many present.

Writes JSON (figures, targets each ``met``/``missed``/``n/a``, machine) and prints a table.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import psutil

from kubatch.render import labels as L
from kubatch.sim.kube import Kube, KubeError, WatchExpired, load_kubeconfig

API = "kubatch.io/v1alpha1"
NS = "kubatch-bench"
NS_RAW = "kubatch-bench-raw"
CE = "bench"
QUEUE = "bench"
DEFINITION = "bench-1s"
INSTANCE_TYPE = "m5.4xlarge"  # 16 vCPUs
NODE_VCPUS = 16
JOB_CPU = "1"
JOB_MEMORY = "512Mi"
DURATION = "1"
BJ_PATH = f"/apis/kubatch.io/v1alpha1/namespaces/{NS}/batchjobs"

TARGETS = {
    "ratio": ("≥", 0.5),
    "seconds_to_all_jobs_created": ("≤", 100.0),
    "seconds_to_all_succeeded": ("≤", 250.0),
    "writes_per_batchjob": ("≤", 4.0),
    "submit_to_admitted_p99_s": ("≤", 1.0),
    "operator_peak_rss_mib": ("≤", 300.0),
}
TARGET_JOBS = 10000
TARGET_RSS_JOBS = 15000
TARGET_RATE = 50.0


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


# --------------------------------------------------------------------------- small helpers


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _log(msg: str) -> None:
    print(f"[bench e2e {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _ts(value: str | None) -> float | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def _quantile(values: list[float], q: float) -> float | None:
    """Pure: the nearest-rank ``q`` quantile (None for no values)."""
    if not values:
        return None
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1))
    return ordered[k]


_SAMPLE = re.compile(r"^(\w+)\{([^}]*)\}\s+([0-9.eE+-]+)$")


def parse_writes(text: str) -> dict[tuple[str, str], float]:
    """Pure: ``kubatch_api_writes_total`` samples by (verb, resource) from /metrics text."""
    out: dict[tuple[str, str], float] = {}
    for line in text.splitlines():
        m = _SAMPLE.match(line.strip())
        if not m or m.group(1) != "kubatch_api_writes_total":
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2)))
        out[(labels.get("verb", ""), labels.get("resource", ""))] = float(m.group(3))
    return out


def writes_delta(
    before: Mapping[tuple[str, str], float], after: Mapping[tuple[str, str], float]
) -> dict[str, int]:
    """Pure: per ``verb resource`` increase between two scrapes (zero rows dropped)."""
    out: dict[str, int] = {}
    for key, value in after.items():
        d = round(value - before.get(key, 0.0))
        if d:
            out[f"{key[0]} {key[1]}"] = d
    return dict(sorted(out.items()))


def judge(value: float | None, target: tuple[str, float]) -> str:
    """Pure: ``met``/``missed`` for a value against (``≥``|``≤``, bound); ``n/a`` for None."""
    if value is None:
        return "n/a"
    op, bound = target
    ok = value >= bound if op == "≥" else value <= bound
    return "met" if ok else "missed"


# --------------------------------------------------------------------------- processes


@dataclass
class Child:
    name: str
    argv: list[str]
    log: Path
    env: dict[str, str]
    popen: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        out = open(self.log, "ab")  # noqa: SIM115 - kept open for the child's lifetime
        self.popen = subprocess.Popen(
            self.argv, stdout=out, stderr=subprocess.STDOUT, env=self.env, start_new_session=True
        )
        _log(f"started {self.name} (pid {self.popen.pid})")

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def stop(self) -> None:
        p = self.popen
        if p is None or p.poll() is not None:
            return
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=10)
        _log(f"stopped {self.name} (pid {p.pid}, rc {p.returncode})")

    def tail(self, n: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-n:]
        except OSError:
            return ""


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


# --------------------------------------------------------------------------- watches


async def follow(
    kube: Kube, path: str, on_obj: Callable[[str, dict[str, Any]], None], params: Any = None
) -> None:
    """List then watch ``path`` forever, calling ``on_obj(type, obj)``; relists on 410."""
    rv = ""
    while True:
        try:
            if not rv:
                items, rv = await kube.list(path, params)
                for item in items:
                    on_obj("ADDED", item)
            async for etype, obj in kube.watch(path, rv, params):
                rv = (obj.get("metadata") or {}).get("resourceVersion") or rv
                if etype != "BOOKMARK":
                    on_obj(etype, obj)
        except WatchExpired:
            rv = ""
        except (TimeoutError, KubeError, OSError, aiohttp.ClientError) as e:  # transient: retry
            _log(f"watch {path}: {e}")
            await asyncio.sleep(1)


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
            ts = _ts(meta.get("creationTimestamp"))
            if ts is not None:
                self.job_created_ts[owner] = ts

    def on_batchjob(self, etype: str, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        name = meta["name"]
        if etype == "DELETED":
            return
        if name not in self.bj_created_ts:
            ts = _ts(meta.get("creationTimestamp"))
            if ts is not None:
                self.bj_created_ts[name] = ts
        phase = str((obj.get("status") or {}).get("phase") or "")
        self.bj_phase[name] = phase
        if phase in ("Succeeded", "Failed"):
            self.bj_terminal.setdefault(name, time.time())


# --------------------------------------------------------------------------- manifests


def pod_template() -> dict[str, Any]:
    """Pure: the pod template shared by the raw Jobs and the JobDefinition."""
    return {
        "metadata": {"annotations": {"sim.kubatch.io/duration": DURATION}},
        "spec": {
            "containers": [
                {
                    "name": "main",
                    "image": "busybox:1.36",
                    "resources": {"requests": {"cpu": JOB_CPU, "memory": JOB_MEMORY}},
                }
            ]
        },
    }


def raw_job(name: str) -> dict[str, Any]:
    """Pure: a plain batch/v1 Job equivalent to what kubatch renders for one attempt."""
    tpl = pod_template()
    tpl["spec"]["restartPolicy"] = "Never"
    tpl["spec"]["nodeSelector"] = {L.COMPUTE_ENVIRONMENT: CE}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": NS_RAW},
        "spec": {"backoffLimit": 0, "template": tpl},
    }


def setup_manifests(vcpus: int) -> list[dict[str, Any]]:
    """Pure: the CE (fixed pool of ``vcpus``), the queue and the definition."""
    return [
        {
            "apiVersion": API,
            "kind": "ComputeEnvironment",
            "metadata": {"name": CE},
            "spec": {
                "type": "Managed",
                "state": "Enabled",
                "computeResources": {
                    "capacityType": "OnDemand",
                    "minvCpus": vcpus,
                    "maxvCpus": vcpus,
                    "instanceTypes": [INSTANCE_TYPE],
                    "allocationStrategy": "BestFit",
                },
            },
        },
        {
            "apiVersion": API,
            "kind": "JobQueue",
            "metadata": {"name": QUEUE},
            "spec": {
                "priority": 1,
                "state": "Enabled",
                "computeEnvironmentOrder": [{"order": 1, "computeEnvironment": CE}],
            },
        },
        {
            "apiVersion": API,
            "kind": "JobDefinition",
            "metadata": {"name": DEFINITION, "namespace": NS},
            "spec": {"template": pod_template()},
        },
    ]


def batchjob(name: str) -> dict[str, Any]:
    """Pure: one single-pod BatchJob."""
    return {
        "apiVersion": API,
        "kind": "BatchJob",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"jobQueue": QUEUE, "jobDefinition": DEFINITION},
    }


# --------------------------------------------------------------------------- the run


@dataclass
class Run:
    args: argparse.Namespace
    kube: Kube
    operator: Child
    sim: Child
    metrics_port: int
    seen: Observed = field(default_factory=Observed)
    rss: RssSampler | None = None

    async def until(self, what: str, pred: Callable[[], bool], progress: Callable[[], str]) -> None:
        deadline = time.monotonic() + self.args.timeout
        last_log = 0.0
        while not pred():
            for child in (self.operator, self.sim):
                if not child.alive():
                    raise RuntimeError(f"{child.name} exited while waiting for {what}:\n"
                                       f"{child.tail()}")  # fmt: skip
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out waiting for {what}: {progress()}")
            if time.monotonic() - last_log > 10:
                _log(f"waiting for {what}: {progress()}")
                last_log = time.monotonic()
            await asyncio.sleep(0.1)

    def metrics(self) -> dict[tuple[str, str], float]:
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as resp:
            return parse_writes(resp.read().decode())

    async def create_all(self, path: str, bodies: list[dict[str, Any]]) -> float:
        sem = asyncio.Semaphore(self.args.concurrency)
        t0 = time.monotonic()

        async def one(body: dict[str, Any]) -> None:
            async with sem:
                for attempt in range(5):
                    try:
                        await self.kube.create(path, body)
                        return
                    except KubeError as e:
                        if e.status == 409:
                            return
                        if (e.status < 500 and e.status != 429) or attempt == 4:
                            raise
                    await asyncio.sleep(0.5 * (attempt + 1))

        await asyncio.gather(*(one(b) for b in bodies))
        return time.monotonic() - t0

    async def rss_loop(self) -> None:
        while True:
            if self.rss is not None:
                self.rss.sample(len(self.seen.bj_phase))
            await asyncio.sleep(0.5)


async def _wait_metrics(run: Run) -> None:
    for _ in range(200):
        with contextlib.suppress(OSError):
            run.metrics()
            return
        await asyncio.sleep(0.3)
    raise RuntimeError(f"the operator's /metrics never answered:\n{run.operator.tail()}")


async def _ensure_ns(kube: Kube, name: str) -> None:
    try:
        await kube.create("/api/v1/namespaces", {"metadata": {"name": name}})
    except KubeError as e:
        if e.status != 409:
            raise


async def _ready_nodes(kube: Kube) -> int:
    items, _ = await kube.list("/api/v1/nodes", {"labelSelector": f"{L.COMPUTE_ENVIRONMENT}={CE}"})
    n = 0
    for node in items:
        conds = (node.get("status") or {}).get("conditions") or []
        unsched = (node.get("spec") or {}).get("unschedulable")
        if not unsched and any(c["type"] == "Ready" and c["status"] == "True" for c in conds):
            n += 1
    return n


async def phase_raw(run: Run, n: int) -> dict[str, Any]:
    seen = run.seen
    watch = asyncio.create_task(
        follow(run.kube, f"/apis/batch/v1/namespaces/{NS_RAW}/jobs", seen.on_raw_job)
    )
    try:
        _log(f"raw: creating {n} batch/v1 Jobs")
        t0 = time.monotonic()
        t_req = await run.create_all(
            f"/apis/batch/v1/namespaces/{NS_RAW}/jobs", [raw_job(f"raw-{i:05d}") for i in range(n)]
        )
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
        "DELETE",
        f"/apis/batch/v1/namespaces/{NS_RAW}/jobs",
        body={"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"},
    )

    async def pods_left() -> int:
        items, _ = await run.kube.list(f"/api/v1/namespaces/{NS_RAW}/pods", page=5000)
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
    w0 = run.metrics()
    _log(f"kubatch: creating {n} BatchJobs")
    t0 = time.monotonic()
    t_req = await run.create_all(BJ_PATH, [batchjob(x) for x in names])
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
        lambda: _phase_counts(seen, names),
    )
    t_done = time.monotonic() - t0
    # trailing CE/queue status patches of the same work land within a couple of seconds
    await asyncio.sleep(3)
    delta = writes_delta(w0, run.metrics())
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


def _phase_counts(seen: Observed, names: list[str]) -> str:
    counts: dict[str, int] = {}
    for x in names:
        p = seen.bj_phase.get(x) or "(none)"
        counts[p] = counts.get(p, 0) + 1
    return ", ".join(f"{k or '(no status)'}={v}" for k, v in sorted(counts.items()))


async def phase_latency(run: Run, rate: float, seconds: float) -> dict[str, Any]:
    seen = run.seen
    count = max(1, int(rate * seconds))
    names = [f"lat-{i:05d}" for i in range(count)]
    submitted: dict[str, float] = {}
    errors: list[str] = []

    async def submit(name: str) -> None:
        submitted[name] = time.time()
        try:
            await run.kube.create(BJ_PATH, batchjob(name))
        except KubeError as e:
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
        lambda: _phase_counts(seen, names),
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
        "submit_to_admitted_p50_s": r(_quantile(lat, 0.5)),
        "submit_to_admitted_p99_s": r(_quantile(lat, 0.99)),
        "submit_to_admitted_max_s": r(max(lat)),
        "submit_to_admitted_p99_s_by_creation_timestamps": r(_quantile(by_ts, 0.99)),
    }


async def phase_fill(run: Run, target: int) -> dict[str, Any]:
    seen = run.seen
    present = len(seen.bj_phase)
    extra = max(0, target - present)
    if extra:
        names = [f"fill-{i:05d}" for i in range(extra)]
        _log(f"fill: {extra} more BatchJobs to have {target} present")
        await run.create_all(BJ_PATH, [batchjob(x) for x in names])
        await run.until(
            "fill BatchJobs terminal",
            lambda: all(x in seen.bj_terminal for x in names),
            lambda: _phase_counts(seen, names),
        )
        await asyncio.sleep(5)
    return {"batchjobs_present_at_end": len(seen.bj_phase)}


async def _bench(args: argparse.Namespace, kubeconfig: Path, work: Path) -> dict[str, Any]:
    from kubatch.api.crds import build_crds

    env = {**os.environ, "KUBECONFIG": str(kubeconfig), "PYTHONUNBUFFERED": "1"}
    kube = Kube(load_kubeconfig(kubeconfig), max_connections=args.concurrency + 8)
    port = _free_port()
    sim = Child(
        "sim",
        [sys.executable, "-m", "kubatch.cli", "sim", "run", "--provisioning-delay", "0.5",
         "--scale-down-delay", "30", "--heartbeat-interval", "10",
         "--stats-file", str(work / "sim-stats.json"), "--delete-nodes-on-exit"],
        work / "sim.log", env,
    )  # fmt: skip
    operator = Child(
        "operator",
        [sys.executable, "-m", "kubatch.cli", "operator", "--metrics-port", str(port)],
        work / "operator.log",
        env,
    )
    run = Run(args, kube, operator, sim, port)
    tasks: list[asyncio.Task[None]] = []
    try:
        for crd in build_crds():
            try:
                await kube.create("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd)
            except KubeError as e:
                if e.status != 409:
                    raise
        for ns in (NS, NS_RAW):
            await _ensure_ns(kube, ns)
        for _ in range(100):  # CRDs established
            try:
                await kube.list(BJ_PATH)
                break
            except KubeError:
                await asyncio.sleep(0.2)
        sim.start()
        operator.start()
        for doc in setup_manifests(args.vcpus):
            plural = doc["kind"].lower() + "s"
            ns = doc["metadata"].get("namespace")
            path = f"/apis/{API}/" + (f"namespaces/{ns}/" if ns else "") + plural
            await run.create_all(path, [doc])
        want_nodes = math.ceil(args.vcpus / NODE_VCPUS)
        ready = 0
        deadline = time.monotonic() + 180
        while (ready := await _ready_nodes(kube)) < want_nodes:
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {ready}/{want_nodes} nodes ready:\n{sim.tail()}")
            await asyncio.sleep(1)
        await _wait_metrics(run)
        assert operator.popen is not None
        run.rss = RssSampler(operator.popen.pid)
        _log(f"{ready} nodes of {INSTANCE_TYPE} ready; operator pid {operator.popen.pid}")
        result: dict[str, Any] = {"benchmark": "e2e", "jobs": args.jobs}
        result.update(await phase_raw(run, args.jobs))
        # the operator saw the raw phase's Jobs and pods too (kopf filters labels client-side):
        # report what that cost, then restart it so the kubatch figures are its own
        result["operator_rss_mib_after_raw_phase"] = round(
            psutil.Process(operator.popen.pid).memory_info().rss / 2**20, 1
        )
        result["operator_vm_hwm_mib_raw_phase"] = run.rss.vm_hwm_mib()
        operator.stop()
        operator.start()
        await _wait_metrics(run)
        assert operator.popen is not None
        run.rss = RssSampler(operator.popen.pid)

        tasks.append(asyncio.create_task(follow(kube, BJ_PATH, run.seen.on_batchjob)))
        tasks.append(
            asyncio.create_task(
                follow(kube, f"/apis/batch/v1/namespaces/{NS}/jobs", run.seen.on_job)
            )
        )
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
        op_ps = psutil.Process(operator.popen.pid)
        cpu = op_ps.cpu_times()
        result["operator_cpu_s_total"] = round(cpu.user + cpu.system, 1)
        result["sim_stats"] = _read_json(work / "sim-stats.json")
        result["operator_log_errors"] = _log_problems(operator.log)
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
        operator.stop()
        sim.stop()
        await kube.close()


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError):
        return {}


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


def add_targets(result: dict[str, Any]) -> None:
    """Mark each target met/missed (n/a where the run's size is not the target's)."""
    n = int(result["jobs"])
    out: dict[str, Any] = {}
    for key, target in TARGETS.items():
        value = result.get(key)
        status = judge(value, target)
        note = ""
        if key in ("seconds_to_all_jobs_created", "seconds_to_all_succeeded") and n != TARGET_JOBS:
            note = f"target is for {TARGET_JOBS} jobs; this run had {n}"
            status = f"n/a ({status} at N={n})"
        if key == "submit_to_admitted_p99_s" and result.get("latency_rate_per_s") != TARGET_RATE:
            note = f"target is at {TARGET_RATE}/s"
        if key == "operator_peak_rss_mib":
            present = int(result.get("batchjobs_present_at_end", 0))
            if present < TARGET_RSS_JOBS:
                note = (
                    f"measured with {present} BatchJobs present, target is with {TARGET_RSS_JOBS}"
                )
                status = f"n/a ({status} at {present})"
        out[key] = {"target": f"{target[0]} {target[1]:g}", "value": value, "status": status}
        if note:
            out[key]["note"] = note
    result["targets"] = out


def table(result: dict[str, Any]) -> str:
    rows = [("figure", "value", "target", "status")]
    for key, t in result["targets"].items():
        rows.append((key, str(t["value"]), t["target"], t["status"]))
    for key in (
        "raw_jobs_per_s",
        "batchjobs_per_s",
        "raw_seconds_to_all_succeeded",
        "operator_event_writes",
        "submit_to_admitted_p50_s",
        "batchjobs_present_at_end",
    ):
        rows.append((key, str(result.get(key)), "", ""))  # fmt: skip
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.quick:
        args.jobs = min(args.jobs, 500)
        args.latency_seconds = min(args.latency_seconds, 10.0)
        args.rss_jobs = 0
    work = Path(tempfile.mkdtemp(prefix="kubatch-bench-e2e-"))
    from kubatch.local.plane import LocalPlane

    plane = LocalPlane(work / "plane")
    started = time.time()
    try:
        state = plane.up(timeout=180)
        _log(f"plane up at {state.server}; work dir {work}")
        result = asyncio.run(_bench(args, state.kubeconfig, work))
    finally:
        plane.down()
        if args.keep_workdir:
            _log(f"logs kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
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
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
