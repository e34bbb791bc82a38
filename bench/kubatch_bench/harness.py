"""What the whole-stack benchmarks (``e2e``, ``scale``) share: creating and deleting many
objects against a loaded API server (bounded, retried, paced), waiting with progress lines,
the operator's memory and CPU, and etcd's database size.

The client is kubatch's own (``kubatch.adapters.kube``), its watches kubatch's one
list-then-watch; processes are the devkit's :class:`~kubatch.devkit.stack.Stack`.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import ssl
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from kubatch.adapters import kube as K
from kubatch.adapters.kube import ApiError, Kube, Resource
from kubatch.api import labels as L
from kubatch.devkit.polling import eventually_async
from kubatch.devkit.promtext import Samples, parse_metrics
from kubatch.devkit.stack import Stack

RETRIES = 8


def log(tag: str, msg: str) -> None:
    print(f"[bench {tag} {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def retriable(exc: BaseException) -> bool:
    """A call worth repeating: throttled (429), a server-side timeout or error (5xx), a
    connection that dropped or timed out."""
    if isinstance(exc, ApiError):
        return exc.status == 429 or exc.status >= 500
    return isinstance(exc, OSError | TimeoutError)


async def with_retries(call: Callable[[], Awaitable[Any]], what: str) -> Any:
    """``call()`` until it succeeds, backing off on :func:`retriable` failures."""
    for attempt in range(RETRIES):
        try:
            return await call()
        except Exception as exc:
            if not retriable(exc) or attempt == RETRIES - 1:
                raise
            await asyncio.sleep(min(8.0, 0.5 * 2**attempt))
    raise AssertionError(what)  # pragma: no cover


async def create_all(
    kube: Kube,
    res: Resource,
    bodies: Iterable[dict[str, Any]],
    namespace: str | None = None,
    *,
    concurrency: int = 64,
) -> float:
    """Create every object, ``concurrency`` in flight, retrying 429/5xx (an object that
    already exists counts as created); seconds taken."""
    sem = asyncio.Semaphore(concurrency)
    t0 = time.monotonic()

    async def one(body: dict[str, Any]) -> None:
        async with sem:
            try:
                await with_retries(lambda: kube.create(res, body, namespace), "create")
            except ApiError as exc:
                if not exc.conflict:
                    raise

    await asyncio.gather(*(one(b) for b in bodies))
    return time.monotonic() - t0


async def count(
    kube: Kube, res: Resource, namespace: str | None = None, labels: str | None = None
) -> int:
    """How many objects match, from one page of one (``remainingItemCount``), not a list."""
    params = {"limit": "1"}
    if labels:
        params["labelSelector"] = labels
    doc = await with_retries(
        lambda: kube.request("GET", res.path(namespace), params=params), "count"
    )
    meta = doc.get("metadata") or {}
    return len(doc.get("items") or []) + int(meta.get("remainingItemCount") or 0)


async def names(
    kube: Kube, res: Resource, namespace: str | None = None, labels: str | None = None
) -> list[str]:
    items = await with_retries(lambda: kube.list(res, namespace=namespace, labels=labels), "list")
    return [str(i["metadata"]["name"]) for i in items]


SETUP_KINDS = {
    "ComputeEnvironment": K.COMPUTEENVIRONMENTS,
    "JobQueue": K.JOBQUEUES,
    "JobDefinition": K.JOBDEFINITIONS,
}


async def create_setup(kube: Kube, docs: Iterable[dict[str, Any]]) -> None:
    """Create a benchmark's compute environments, queues and definitions, in order."""
    for doc in docs:
        await create_all(kube, SETUP_KINDS[doc["kind"]], [doc], doc["metadata"].get("namespace"))


async def paced_delete(
    kube: Kube,
    res: Resource,
    namespace: str,
    *,
    labels: str | None = None,
    concurrency: int = 16,
    tag: str = "cleanup",
) -> int:
    """Delete every matching object one by one (background propagation: the garbage
    collector removes what they own), ``concurrency`` in flight, each retried on 429/5xx.

    A ``deletecollection`` of 10,000 Jobs answers HTTP 500 "context deadline exceeded" on
    this machine and stops half-way; single deletes at a bounded pace always finish."""
    todo = await names(kube, res, namespace, labels)
    log(tag, f"deleting {len(todo)} {res.plural} in {namespace}")
    sem = asyncio.Semaphore(concurrency)

    async def one(name: str) -> None:
        async with sem:
            await with_retries(lambda: kube.delete(res, name, namespace), "delete")

    await asyncio.gather(*(one(n) for n in todo))
    return len(todo)


async def until_gone(
    kube: Kube,
    res: Resource,
    namespace: str,
    *,
    labels: str | None = None,
    timeout: float = 1200.0,
    tag: str = "cleanup",
) -> float:
    """Until no matching object is left (the garbage collector at work); seconds taken."""
    t0 = time.monotonic()
    last = -1
    while (left := await count(kube, res, namespace, labels)) > 0:
        if time.monotonic() - t0 > timeout:
            raise TimeoutError(f"{left} {res.plural} still in {namespace} after {timeout:.0f} s")
        if left != last:
            log(tag, f"{left} {res.plural} left in {namespace}")
            last = left
        await asyncio.sleep(3)
    return time.monotonic() - t0


async def ensure_namespace(kube: Kube, name: str) -> None:
    try:
        await kube.create(K.NAMESPACES, {"metadata": {"name": name}})
    except ApiError as e:
        if not e.conflict:
            raise


async def ready_nodes(kube: Kube, compute_environment: str) -> int:
    n = 0
    for node in await kube.list(K.NODES, labels=f"{L.COMPUTE_ENVIRONMENT}={compute_environment}"):
        conds = (node.get("status") or {}).get("conditions") or []
        unsched = (node.get("spec") or {}).get("unschedulable")
        if not unsched and any(c["type"] == "Ready" and c["status"] == "True" for c in conds):
            n += 1
    return n


@dataclass
class RssSampler:
    """The operator's resident memory, sampled (psutil) and from the kernel's high-water mark."""

    pid: int
    peak_mib: float = 0.0
    samples: list[tuple[float, float, int]] = field(default_factory=list)  # (t, MiB, present)

    def sample(self, present: int) -> float:
        with contextlib.suppress(psutil.Error):
            mib = float(psutil.Process(self.pid).memory_info().rss) / 2**20
            self.peak_mib = max(self.peak_mib, mib)
            self.samples.append((time.monotonic(), mib, present))
            return mib
        return 0.0

    def vm_hwm_mib(self) -> float | None:
        try:
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            return None
        return None

    def peak(self) -> float:
        return round(max(self.peak_mib, self.vm_hwm_mib() or 0.0), 1)


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU seconds of a process so far (0 when it is gone)."""
    if pid is None:
        return 0.0
    try:
        t = psutil.Process(pid).cpu_times()
    except psutil.Error:
        return 0.0
    return float(t.user + t.system)


def etcd_sizes(metrics_url: str | None) -> dict[str, float]:
    """etcd's database size and the part of it in use (MiB), from its /metrics."""
    if not metrics_url:
        return {}
    try:
        with urllib.request.urlopen(metrics_url, timeout=10) as resp:
            samples = parse_metrics(resp.read().decode())
    except OSError:
        return {}
    out = {}
    for metric, key in (
        ("etcd_mvcc_db_total_size_in_bytes", "etcd_db_mib"),
        ("etcd_mvcc_db_total_size_in_use_in_bytes", "etcd_db_in_use_mib"),
    ):
        values = list((samples.get(metric) or {}).values())
        if values:
            out[key] = round(values[0] / 2**20, 1)
    return out


JOB_CALLS = ("/pods", "/jobs/")
"""The Job controller's own API calls (kube-controller-manager's client, by URL): pod
creations and the Job status updates (a GET, then a PUT of the status)."""


def kcm_sample(metrics_url: str | None, token: str | None) -> Samples:
    """kube-controller-manager's metrics now (empty when it cannot be read)."""
    if not metrics_url:
        return {}
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # its self-signed serving certificate, on loopback
    req = urllib.request.Request(metrics_url, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(req, timeout=10, context=ctx) as resp:
            return parse_metrics(resp.read().decode())
    except OSError:
        return {}


def job_controller(before: Samples, after: Samples, seconds: float, jobs: int) -> dict[str, Any]:
    """Pure: what the 1.20 Job controller did between two samples — syncs, the mean time a
    sync took and a Job waited in its queue, how many of its workers (5, not settable in
    1.20) were busy on average, and its API calls per Job with their mean latency as its
    client saw it."""
    if not before or not after or seconds <= 0 or jobs <= 0:
        return {}

    def d(metric: str) -> float:  # ``sample`` cannot filter on a label called "name"
        def one(m: Samples) -> float:
            return sum(v for k, v in (m.get(metric) or {}).items() if ("name", "job") in k)

        return one(after) - one(before)

    syncs = d("workqueue_work_duration_seconds_count")
    busy = d("workqueue_work_duration_seconds_sum")
    waits = d("workqueue_queue_duration_seconds_count")
    waited = d("workqueue_queue_duration_seconds_sum")
    calls = total = 0.0
    for name, agg in (("rest_client_request_duration_seconds_count", "n"),
                      ("rest_client_request_duration_seconds_sum", "s")):  # fmt: skip
        for labels, value in (after.get(name) or {}).items():
            url = dict(labels).get("url", "")
            if not any(part in url for part in JOB_CALLS) or "/events" in url:
                continue
            delta = value - (before.get(name) or {}).get(labels, 0.0)
            if agg == "n":
                calls += delta
            else:
                total += delta
    return {
        "syncs_per_job": round(syncs / jobs, 2),
        "mean_sync_ms": round(1000 * busy / syncs, 1) if syncs else None,
        "mean_queue_wait_s": round(waited / waits, 2) if waits else None,
        "busy_workers": round(busy / seconds, 2),
        "api_calls_per_job": round(calls / jobs, 2),
        "mean_api_call_ms": round(1000 * total / calls, 1) if calls else None,
    }


async def until(
    stack: Stack,
    what: str,
    done: Callable[[], bool],
    progress: Callable[[], str],
    *,
    timeout: float,
    tag: str,
) -> None:
    """Until ``done()``; fails if the operator or the simulator exits meanwhile."""

    async def probe() -> bool:
        return done()

    await eventually_async(
        probe, what=what, timeout=timeout, every=0.1, check=stack.check, progress=progress,
        report=lambda m: log(tag, m),
    )  # fmt: skip


async def duplicate_jobs(kube: Kube, namespace: str) -> tuple[int, int]:
    """(Kubernetes Jobs in the namespace, how many of them are a second Job for the same
    BatchJob attempt)."""
    jobs = await with_retries(lambda: kube.list(K.JOBS, namespace=namespace), "list Jobs")
    labels = [j["metadata"].get("labels") or {} for j in jobs]
    per_attempt = Counter((x.get(L.BATCHJOB), x.get(L.ATTEMPT)) for x in labels)
    return len(jobs), sum(c - 1 for c in per_attempt.values() if c > 1)


async def restart_with_probe(
    kube: Kube,
    stack: Stack,
    probe: dict[str, Any],
    job_seen: Mapping[str, float],
    *,
    timeout: float,
    tag: str,
) -> dict[str, Any]:
    """Stop the operator, start it again and submit ``probe`` (a BatchJob whose queue has
    room) as soon as the API server takes it: seconds from the start to the probe's Kubernetes
    Job (seen by the caller's watch, ``job_seen``), and whether any BatchJob attempt got a
    second Job. The probe cannot be submitted while the operator is down: BatchJobs pass
    kubatch's admission webhook, which the operator serves (the chart runs two replicas so
    that one always answers)."""
    ns, name = probe["metadata"]["namespace"], probe["metadata"]["name"]
    present = await count(kube, K.BATCHJOBS, ns)
    jobs_before = await count(kube, K.JOBS, ns)
    log(tag, f"restart: stopping the operator with {present} BatchJobs present")
    stack.operator.stop()
    t0 = time.monotonic()
    stack.start_operator(wait=False)
    while True:  # the webhook answers once the new operator serves it
        try:
            await kube.create(K.BATCHJOBS, probe, ns)
            break
        except (ApiError, OSError) as exc:
            if not retriable(exc) or time.monotonic() - t0 > timeout:
                raise
            await asyncio.sleep(0.2)
    submitted = time.monotonic() - t0
    await until(stack, "the probe's Job after the restart", lambda: name in job_seen,
                lambda: "waiting", timeout=timeout, tag=tag)  # fmt: skip
    first = time.monotonic() - t0
    await stack.wait_operator_async()
    jobs_after, duplicates = await duplicate_jobs(kube, ns)
    log(tag, f"restart: first admission {first:.2f} s after the start; {duplicates} duplicates")
    return {
        "restart_batchjobs_present": present,
        "restart_to_first_admission_s": round(first, 2),
        "restart_to_probe_accepted_s": round(submitted, 2),
        "restart_duplicate_jobs": duplicates,
        "restart_jobs_before": jobs_before,
        "restart_jobs_after": jobs_after,
    }


def log_problems(path: Path, limit: int = 20) -> list[str]:
    """Lines of a log that look like errors or tracebacks (first ``limit``)."""
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
