"""``kubatch demo``: the whole of kubatch on this machine, in about a minute.

Starts (or reuses) a local control plane in its own state directory, installs the CRDs, runs
the simulated node pools and the operator as child processes, applies ``examples/`` in order,
shows live progress, triggers one spot reclaim, terminates the example that is meant to be
terminated, prints a summary and stops everything it started (by PID) unless ``--keep``.

The pure parts (expectations from the examples, job views, percentiles, the progress table,
metrics parsing and the summary) are plain functions at the top of this module; the effectful
runner (:class:`Demo`) is below them.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

import yaml

from kubatch.core.lifecycle import Phase, Reason

NAMESPACE = "kubatch-demo"
GROUP, VERSION = "kubatch.io", "v1alpha1"
#: a job whose simulated duration exceeds this is one the demo terminates (it would never end)
LONG_RUNNING_SECONDS = 600.0
#: terminate such a job once it has been Running this long (so its pods are really stopped)
TERMINATE_AFTER_RUNNING_SECONDS = 6.0
PHASES: tuple[Phase, ...] = tuple(Phase)
SHORT = {
    Phase.SUBMITTED: "SUBMIT",
    Phase.PENDING: "PEND",
    Phase.RUNNABLE: "RUNNABLE",
    Phase.STARTING: "START",
    Phase.RUNNING: "RUN",
    Phase.SUCCEEDED: "OK",
    Phase.FAILED: "FAIL",
}
JsonDict = dict[str, Any]


# --- expectations: what each example intends -----------------------------------------------


@dataclass(frozen=True)
class Expectation:
    """What an example BatchJob is meant to end as, and why (for the report)."""

    phase: Phase
    reasons: tuple[str, ...] = ()
    why: str = ""
    terminate_when_running: bool = False


def _annotation(definition: Mapping[str, Any] | None, key: str) -> str | None:
    if not definition:
        return None
    meta = ((definition.get("spec") or {}).get("template") or {}).get("metadata") or {}
    value = (meta.get("annotations") or {}).get(key)
    return None if value is None else str(value)


def expected_outcomes(docs: Sequence[Mapping[str, Any]]) -> dict[str, Expectation]:
    """Pure: the intended end of every BatchJob in ``docs`` (the parsed examples).

    - ``spec.terminate`` set at submission: Failed, reason Terminated.
    - a definition that runs "forever" (sim duration > 10 min): the demo terminates it once it
      runs (the terminate example): Failed, reason Terminated.
    - a definition that exits non-zero (sim exit code): Failed after its retries.
    - a dependency whose condition cannot hold (e.g. ``Succeeded`` on a job expected to fail,
      ``Failed`` on one expected to succeed): Failed, reason DependencyFailed.
    - everything else: Succeeded.
    """
    definitions = {str(d["metadata"]["name"]): d for d in docs if d.get("kind") == "JobDefinition"}
    jobs = [d for d in docs if d.get("kind") == "BatchJob"]
    out: dict[str, Expectation] = {}
    pending = {str(j["metadata"]["name"]): j for j in jobs}
    for _ in range(len(pending) + 1):  # resolve dependencies in as many passes as needed
        for name, job in list(pending.items()):
            spec = job.get("spec") or {}
            deps = [d for d in spec.get("dependsOn") or [] if d.get("jobName")]
            if any(str(d["jobName"]) not in out and str(d["jobName"]) in pending for d in deps):
                continue
            out[name] = _expect_one(spec, definitions.get(str(spec.get("jobDefinition"))), out)
            del pending[name]
    for name, job in pending.items():  # a cycle among the examples: the operator rejects it
        out[name] = Expectation(Phase.FAILED, (Reason.DEPENDENCY_CYCLE,), "dependency cycle")
        del job
    return out


def _expect_one(
    spec: Mapping[str, Any], definition: Mapping[str, Any] | None, known: Mapping[str, Expectation]
) -> Expectation:
    if spec.get("terminate"):
        return Expectation(Phase.FAILED, (Reason.TERMINATED,), "submitted with spec.terminate")
    for dep in spec.get("dependsOn") or []:
        other = known.get(str(dep.get("jobName")))
        if other is None:
            continue
        condition = str(dep.get("condition") or "Succeeded")
        holds = (
            condition == "Completed"
            or (condition == "Succeeded" and other.phase is Phase.SUCCEEDED)
            or (condition == "Failed" and other.phase is Phase.FAILED)
        )
        if not holds:
            return Expectation(
                Phase.FAILED,
                (Reason.DEPENDENCY_FAILED,),
                f"depends on {dep.get('jobName')} being {condition}",
            )
    duration = _float(_annotation(definition, "sim.kubatch.io/duration"), 1.0)
    if duration > LONG_RUNNING_SECONDS:
        return Expectation(
            Phase.FAILED,
            (Reason.TERMINATED,),
            "runs for an hour: the demo terminates it while it runs",
            terminate_when_running=True,
        )
    exit_code = _float(_annotation(definition, "sim.kubatch.io/exit-code"), 0.0)
    if exit_code != 0 or _annotation(definition, "sim.kubatch.io/oom") == "true":
        return Expectation(
            Phase.FAILED,
            (Reason.RETRIES_EXHAUSTED, Reason.ESSENTIAL_EXIT),
            f"exits {int(exit_code)} on every attempt",
        )
    if (_annotation(definition, "sim.kubatch.io/exit-code-by-index") or "").strip():
        return Expectation(
            Phase.FAILED, (Reason.ARRAY_CHILD_FAILED,), "some array children exit non-zero"
        )
    return Expectation(Phase.SUCCEEDED, (), "runs to completion")


def _float(text: str | None, default: float) -> float:
    try:
        return float(text) if text is not None else default
    except ValueError:
        return default


# --- views of BatchJobs ----------------------------------------------------------------------


def parse_time(value: Any) -> float | None:
    """Pure: an RFC 3339 timestamp (``...Z`` or with offset, optional fraction) → epoch seconds."""
    if not value:
        return None
    text = str(value).replace("Z", "+00:00")
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None


@dataclass(frozen=True)
class JobView:
    """The few facts of a BatchJob the demo shows."""

    name: str
    queue: str
    phase: Phase
    reason: str = ""
    message: str = ""
    created: float | None = None
    started: float | None = None
    stopped: float | None = None
    array_size: int = 0
    children_done: int = 0
    attempts: int = 0
    interrupted: int = 0
    capacity_type: str = ""

    @property
    def wait_seconds(self) -> float | None:
        if self.created is None or self.started is None:
            return None
        return max(0.0, self.started - self.created)

    @property
    def run_seconds(self) -> float | None:
        if self.started is None or self.stopped is None:
            return None
        return max(0.0, self.stopped - self.started)


def job_view(obj: Mapping[str, Any]) -> JobView:
    """Pure: a BatchJob as returned by the API → :class:`JobView` (no status: Submitted)."""
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    meta = obj.get("metadata") or {}
    try:
        phase = Phase(status.get("phase") or Phase.SUBMITTED)
    except ValueError:
        phase = Phase.SUBMITTED
    summary = status.get("arrayStatusSummary") or {}
    attempts = status.get("attempts") or []
    size = int((spec.get("arrayProperties") or {}).get("size") or 0)
    return JobView(
        name=str(meta.get("name", "")),
        queue=str(spec.get("jobQueue", "")),
        phase=phase,
        reason=str(status.get("reason") or ""),
        message=str(status.get("message") or ""),
        created=parse_time(status.get("createdAt")) or parse_time(meta.get("creationTimestamp")),
        started=parse_time(status.get("startedAt")),
        stopped=parse_time(status.get("stoppedAt")),
        array_size=size,
        children_done=int(summary.get("succeeded", 0) or 0) + int(summary.get("failed", 0) or 0),
        attempts=len(attempts),
        interrupted=sum(1 for a in attempts if a.get("interrupted")),
        capacity_type=str(status.get("capacityType") or ""),
    )


def percentile(values: Iterable[float], q: float) -> float | None:
    """Pure: the ``q``-th percentile (0-100) with linear interpolation; None when empty."""
    data = sorted(values)
    if not data:
        return None
    if len(data) == 1:
        return data[0]
    pos = (len(data) - 1) * min(max(q, 0.0), 100.0) / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)


def phase_counts(jobs: Iterable[JobView]) -> dict[str, dict[Phase, int]]:
    """Pure: queue → phase → number of BatchJobs (every phase present, queues sorted)."""
    out: dict[str, dict[Phase, int]] = {}
    for job in jobs:
        row = out.setdefault(job.queue, dict.fromkeys(PHASES, 0))
        row[job.phase] += 1
    return dict(sorted(out.items()))


# --- rendering --------------------------------------------------------------------------------

COLORS = {
    Phase.SUCCEEDED: "32",
    Phase.FAILED: "31",
    Phase.RUNNING: "36",
    Phase.STARTING: "36",
    Phase.RUNNABLE: "33",
}


def paint(text: str, code: str | None, color: bool) -> str:
    """Pure: ``text`` wrapped in an ANSI SGR code when ``color``."""
    return f"\x1b[{code}m{text}\x1b[0m" if color and code else text


def render_table(jobs: Sequence[JobView], elapsed: float, color: bool = False) -> list[str]:
    """Pure: the live progress table, one line per queue plus header and total."""
    counts = phase_counts(jobs)
    width = max([len("QUEUE"), len("total"), *(len(q) for q in counts)])
    header = f"{'QUEUE':<{width}}" + "".join(f"{SHORT[p]:>9}" for p in PHASES) + "   ARRAY TASKS"
    lines = [paint(header, "1", color)]
    totals = dict.fromkeys(PHASES, 0)
    for queue, row in counts.items():
        cells = []
        for p in PHASES:
            totals[p] += row[p]
            cell = f"{row[p]:>9}"
            cells.append(paint(cell, COLORS.get(p), color and row[p] > 0))
        arrays = [j for j in jobs if j.queue == queue and j.array_size]
        done = sum(j.children_done for j in arrays)
        size = sum(j.array_size for j in arrays)
        tail = f"   {done}/{size}" if size else "   -"
        lines.append(f"{queue:<{width}}" + "".join(cells) + tail)
    lines.append(f"{'total':<{width}}" + "".join(f"{totals[p]:>9}" for p in PHASES))
    finished = totals[Phase.SUCCEEDED] + totals[Phase.FAILED]
    lines.append(f"{finished}/{len(jobs)} jobs finished after {elapsed:.0f}s")
    return lines


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def screen_rows(line: str, columns: int) -> int:
    """Pure: how many terminal rows ``line`` takes (ANSI codes take none; long lines wrap)."""
    visible = len(_ANSI.sub("", line))
    return max(1, math.ceil(visible / max(columns, 1)))


def progress_line(jobs: Sequence[JobView], elapsed: float) -> str:
    """Pure: one plain line of progress (when the output is not a terminal)."""
    totals = dict.fromkeys(PHASES, 0)
    for j in jobs:
        totals[j.phase] += 1
    parts = " ".join(f"{p.value}={totals[p]}" for p in PHASES if totals[p])
    return f"[{elapsed:5.0f}s] {len(jobs)} jobs: {parts}"


# --- metrics and summary ------------------------------------------------------------------------


def parse_metrics(text: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """Pure: Prometheus text exposition → sample name → sorted label pairs → value."""
    from prometheus_client.parser import text_string_to_metric_families

    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            key = tuple(sorted(sample.labels.items()))
            out.setdefault(sample.name, {})[key] = float(sample.value)
    return out


def sum_by(samples: Mapping[tuple[tuple[str, str], ...], float], label: str) -> dict[str, float]:
    """Pure: the sum of samples grouped by one label's value."""
    out: dict[str, float] = {}
    for labels, value in samples.items():
        key = dict(labels).get(label, "")
        out[key] = out.get(key, 0.0) + value
    return dict(sorted(out.items()))


@dataclass(frozen=True)
class Outcome:
    """Expected vs actual end of one example job."""

    name: str
    expected: Expectation
    phase: Phase | None
    reason: str

    @property
    def ok(self) -> bool:
        return self.phase is self.expected.phase

    @property
    def reason_ok(self) -> bool:
        return not self.expected.reasons or self.reason in self.expected.reasons


def outcomes(jobs: Sequence[JobView], expected: Mapping[str, Expectation]) -> list[Outcome]:
    """Pure: one :class:`Outcome` per expected job (phase None when the job is missing)."""
    by_name = {j.name: j for j in jobs}
    result = []
    for name, exp in expected.items():
        job = by_name.get(name)
        phase = job.phase if job and job.phase.terminal else (job.phase if job else None)
        result.append(Outcome(name, exp, phase, job.reason if job else ""))
    return result


@dataclass
class Summary:
    """Everything the final summary prints (built by :func:`summarize`, pure)."""

    counts: dict[str, dict[Phase, int]]
    makespan: float | None
    wait_p50: float | None
    wait_max: float | None
    run_p50: float | None
    run_max: float | None
    cost_by_queue: dict[str, float]
    cost_by_ce: dict[str, float]
    reclaims: int
    reclaims_by_ce: dict[str, int]
    pods_disrupted: int
    retries: float
    interruptions: float
    interrupted_jobs: list[str]
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.outcomes) and all(o.ok for o in self.outcomes)


def summarize(
    jobs: Sequence[JobView],
    metrics: Mapping[str, Mapping[tuple[tuple[str, str], ...], float]],
    sim_stats: Mapping[str, Any],
    expected: Mapping[str, Expectation],
) -> Summary:
    """Pure: the final summary from the jobs, the operator's metrics and the sim's stats."""
    created = [j.created for j in jobs if j.created is not None]
    stopped = [j.stopped for j in jobs if j.stopped is not None]
    makespan = (max(stopped) - min(created)) if created and stopped else None
    waits = [w for j in jobs if (w := j.wait_seconds) is not None]
    runs = [r for j in jobs if (r := j.run_seconds) is not None]
    cost = sum_by(metrics.get("kubatch_estimated_cost_dollars_total", {}), "queue")
    retries = sum(metrics.get("kubatch_job_retries_total", {}).values())
    interruptions = sum(metrics.get("kubatch_job_interruptions_total", {}).values())
    return Summary(
        counts=phase_counts(jobs),
        makespan=makespan,
        wait_p50=percentile(waits, 50),
        wait_max=max(waits) if waits else None,
        run_p50=percentile(runs, 50),
        run_max=max(runs) if runs else None,
        cost_by_queue=cost,
        cost_by_ce={
            str(k): float(v)
            for k, v in sorted((sim_stats.get("cost_by_compute_environment") or {}).items())
        },
        reclaims=int(sim_stats.get("reclaims") or 0),
        reclaims_by_ce={
            str(k): int(v)
            for k, v in sorted((sim_stats.get("reclaims_by_compute_environment") or {}).items())
        },
        pods_disrupted=int(sim_stats.get("pods_disrupted") or 0),
        retries=retries,
        interruptions=interruptions,
        interrupted_jobs=sorted(j.name for j in jobs if j.interrupted),
        outcomes=outcomes(jobs, expected),
    )


def _secs(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}s"


def _expected_text(e: Expectation) -> str:
    return e.phase.value + (f" ({'/'.join(e.reasons)})" if e.reasons else "")


def render_summary(s: Summary, color: bool = False) -> list[str]:
    """Pure: the final summary as lines of text."""
    lines = [paint("kubatch demo: summary", "1", color), "", "Jobs by phase (BatchJobs):"]
    for queue, row in s.counts.items():
        parts = ", ".join(f"{row[p]} {p.value}" for p in PHASES if row[p])
        lines.append(f"  {queue:<16} {parts}")
    lines += [
        "",
        f"Makespan          {_secs(s.makespan)}  (first submission → last job stopped)",
        f"Wait time         p50 {_secs(s.wait_p50)}   max {_secs(s.wait_max)}  (created → started)",
        f"Run time          p50 {_secs(s.run_p50)}   max {_secs(s.run_max)}  (started → stopped)",
        "",
        "Estimated cost by queue (operator metrics):",
    ]
    if s.cost_by_queue:
        lines += [f"  {q:<16} ${v:.4f}" for q, v in s.cost_by_queue.items()]
    else:
        lines.append("  (no cost recorded)")
    lines.append("Node cost by compute environment (simulated pools, node lifetime x price):")
    if s.cost_by_ce:
        lines += [f"  {ce:<16} ${v:.4f}" for ce, v in s.cost_by_ce.items()]
    else:
        lines.append("  (no nodes)")
    by_ce = ", ".join(f"{ce}: {n}" for ce, n in s.reclaims_by_ce.items()) or "none"
    disrupted = f", {s.pods_disrupted} pod(s) disrupted by the sim" if s.pods_disrupted else ""
    lines += [
        "",
        f"Spot reclaims     {s.reclaims} node(s) ({by_ce}){disrupted}",
        f"Interruptions     {s.interruptions:.0f} attempt(s) lost their node (operator metric);"
        " they do not use up retry attempts",
    ]
    if s.interrupted_jobs:
        lines.append(f"                  interrupted and rerun: {', '.join(s.interrupted_jobs)}")
    lines += [
        f"Retries           {s.retries:.0f} failed attempt(s) retried by a retry strategy",
        "",
        "Example jobs, expected vs actual:",
    ]
    width = max([4, *(len(o.name) for o in s.outcomes)])
    exp_width = max([8, *(len(_expected_text(o.expected)) for o in s.outcomes)])
    for o in s.outcomes:
        exp = _expected_text(o.expected)
        actual = o.phase.value if o.phase else "missing"
        if o.reason and o.reason != actual:
            actual += f" ({o.reason})"
        mark = paint("ok      ", "32", color) if o.ok else paint("MISMATCH", "31", color)
        note = "" if o.reason_ok or not o.ok else "  [reason differs]"
        lines.append(
            f"  {mark:<8} {o.name:<{width}}  expected {exp:<{exp_width}}  got {actual}{note}"
        )
    good = sum(1 for o in s.outcomes if o.ok)
    verdict = f"{good}/{len(s.outcomes)} example jobs ended as intended"
    lines += ["", paint(verdict, "32" if s.ok else "31", color)]
    return lines


# --- the effectful part -------------------------------------------------------------------------


def examples_dir() -> Path | None:
    """The repository's ``examples/`` (kubatch installed editable or run from a checkout)."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        candidate = parent / "examples"
        if (candidate / "30-batch-jobs.yaml").is_file():
            return candidate
    return None


def default_demo_dir() -> Path:
    """Next to (never inside) the default plane of ``kubatch local``, so the two never clash."""
    from kubatch.local.plane import default_state_dir

    return Path(os.environ.get("KUBATCH_DEMO_DIR") or default_state_dir().parent / "demo")


class DemoError(RuntimeError):
    """The demo cannot go on; the message says why."""


class _Interrupted(Exception):
    """SIGTERM while the demo runs (handled like Ctrl-C)."""


@dataclass
class Child:
    name: str
    argv: list[str]
    log: Path
    env: dict[str, str]
    popen: subprocess.Popen[bytes] | None = None

    def start(self) -> int:
        with open(self.log, "ab") as out:
            self.popen = subprocess.Popen(
                self.argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
                start_new_session=True,
            )
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def stop(self, timeout: float = 15.0) -> None:
        p = self.popen
        if p is None or p.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=5)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Demo:
    """One run of the demo: owns the plane, the sim and the operator it starts."""

    def __init__(self, args: argparse.Namespace, out: TextIO = sys.stdout) -> None:
        self.args = args
        self.out = out
        self.color = (not args.no_color) and out.isatty() and not os.environ.get("NO_COLOR")
        self.tty = out.isatty()
        self.state_dir = Path(args.state_dir or default_demo_dir()).resolve()
        self.examples = Path(args.examples) if args.examples else examples_dir()
        self.children: list[Child] = []
        self.plane: Any = None
        self.kubectl_path = ""
        self.kubeconfig = Path()
        self.env: dict[str, str] = {}
        self.metrics_port = 0
        self.t0 = time.monotonic()
        self.reclaimer: subprocess.Popen[str] | None = None
        self.terminated: set[str] = set()
        self.running_since: dict[str, float] = {}
        self.api: Any = None
        self.events: list[str] = []
        self.reclaim_reported = False

    # -- output --------------------------------------------------------------------------------
    def say(self, msg: str) -> None:
        stamp = f"[{time.monotonic() - self.t0:5.1f}s]"
        print(f"{paint(stamp, '2', self.color)} {msg}", file=self.out, flush=True)

    # -- steps -----------------------------------------------------------------------------------
    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        cmd = [self.kubectl_path, "--kubeconfig", str(self.kubeconfig), *args]
        proc = subprocess.run(
            cmd, check=False, input=input, capture_output=True, text=True, timeout=120
        )
        if check and proc.returncode != 0:
            raise DemoError(f"kubectl {' '.join(args)} failed: {proc.stderr.strip()}")
        return proc

    def plane_up(self) -> None:
        from kubatch.local import binaries
        from kubatch.local.plane import LocalPlane

        self.say("checking the Kubernetes binaries (cached after the first run)")
        binaries.ensure(allow_build=True)
        self.say(f"starting the local control plane in {self.state_dir}")
        self.plane = LocalPlane(self.state_dir)
        self._stop_leftovers()
        state = self.plane.up(timeout=self.args.plane_timeout)
        self.kubeconfig = state.kubeconfig
        self.kubectl_path = state.kubectl
        self.env = {**os.environ, "KUBECONFIG": str(self.kubeconfig), "PYTHONUNBUFFERED": "1"}
        pids = ", ".join(f"{p.name} pid {p.pid}" for p in state.processes)
        self.say(f"control plane ready at {state.server} ({pids})")

    def _stop_leftovers(self) -> None:
        """Stop what an earlier ``--keep`` run left in this state dir (by PID): the demo always
        starts from a clean cluster (nodes of a stopped sim would hold pods that never run)."""
        if self.plane.state() is None and not (self.state_dir / "demo.json").is_file():
            return
        self.say("stopping the demo kept by an earlier run (--keep) to start clean")
        stop_recorded_children(self.state_dir)
        self.plane.down()

    def install_crds(self) -> None:
        from kubatch.api.crds import build_crds

        crds = build_crds()
        self.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(crds))
        names = [f"crd/{c['metadata']['name']}" for c in crds]
        self.kubectl("wait", "--for=condition=Established", "--timeout=60s", *names)
        self.say(f"CRDs applied and Established: {', '.join(n[4:] for n in names)}")

    def start_children(self) -> None:
        logs = self.state_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        self.metrics_port = _free_port()
        py = sys.executable
        sim_argv = [
            py, "-m", "kubatch.cli", "sim", "run",
            "--provisioning-delay", "0.5", "--scale-down-delay", "30",
            "--heartbeat-interval", "10",
            "--stats-file", str(self.state_dir / "sim-stats.json"),
        ]  # fmt: skip
        op_argv = [py, "-m", "kubatch.cli", "operator", "--metrics-port", str(self.metrics_port)]
        for name, argv in (("sim", sim_argv), ("operator", op_argv)):
            child = Child(name, argv, logs / f"demo-{name}.log", self.env)
            pid = child.start()
            self.children.append(child)
            self.say(f"started the {name} (pid {pid}), log: {child.log}")
        record = {c.name: {"pid": c.popen.pid, "exe": py} for c in self.children if c.popen}
        (self.state_dir / "demo.json").write_text(json.dumps(record))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            self.check_children()
            try:
                self.metrics_text()
                self.say(f"operator ready; metrics at http://127.0.0.1:{self.metrics_port}/metrics")
                return
            except OSError:
                time.sleep(0.3)
        raise DemoError("the operator did not serve its metrics within 60 s")

    def check_children(self) -> None:
        for c in self.children:
            if not c.alive():
                tail = c.log.read_text(errors="replace").splitlines()[-15:]
                raise DemoError(f"the {c.name} exited; last log lines:\n" + "\n".join(tail))

    def metrics_text(self) -> str:
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=3) as resp:
            return str(resp.read().decode())

    def client(self) -> Any:
        if self.api is None:
            from kubernetes import client, config

            api_client = config.new_client_from_config(config_file=str(self.kubeconfig))  # type: ignore[no-untyped-call]
            self.api = (client.CustomObjectsApi(api_client), client.CoreV1Api(api_client))
        return self.api

    def fresh_namespace(self) -> None:
        ns = NAMESPACE
        if self.kubectl("get", "namespace", ns, check=False).returncode == 0:
            self.say(f"removing the namespace {ns} of an earlier run")
            self.kubectl("delete", "namespace", ns, "--wait=true", "--timeout=90s")
        self.kubectl("create", "namespace", ns)

    def load_examples(self) -> tuple[list[Path], list[JsonDict]]:
        if self.examples is None or not self.examples.is_dir():
            raise DemoError(
                "examples/ not found: run from a kubatch checkout or pass --examples DIR"
            )
        files = sorted(self.examples.glob("*.yaml"))
        docs: list[JsonDict] = []
        for f in files:
            docs += [d for d in yaml.safe_load_all(f.read_text()) if d]
        return files, docs

    def apply_examples(self, files: Sequence[Path]) -> None:
        for f in files:
            out = self.kubectl("apply", "-n", NAMESPACE, "-f", str(f)).stdout.strip()
            self.say(f"applied {f.name}: {len(out.splitlines())} object(s)")

    def list_jobs(self) -> list[JsonDict]:
        custom, _ = self.client()
        res = custom.list_namespaced_custom_object(GROUP, VERSION, NAMESPACE, "batchjobs")
        items: list[JsonDict] = res.get("items", [])
        return items

    def running_spot_pods(self, spot_ces: set[str]) -> int:
        _, core = self.client()
        pods = core.list_namespaced_pod(NAMESPACE, field_selector="status.phase=Running").items
        n = 0
        for pod in pods:
            selector = pod.spec.node_selector or {}
            if selector.get("kubatch.io/compute-environment") in spot_ces:
                n += 1
        return n

    def maybe_reclaim(self, spot_ces: set[str]) -> None:
        if not self.args.reclaim or self.reclaimer is not None or not spot_ces:
            return
        if self.running_spot_pods(spot_ces) < 3:
            return
        ce = sorted(spot_ces)[0]
        self.reclaimer = subprocess.Popen(
            [sys.executable, "-m", "kubatch.cli", "sim", "reclaim",
             "--compute-environment", ce, "--fraction", "0.5"],
            env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            start_new_session=True,
        )  # fmt: skip
        self.event(f"spot reclaim: half of {ce}'s nodes are being taken back")

    def maybe_terminate(self, jobs: Sequence[JobView], expected: Mapping[str, Expectation]) -> None:
        now = time.monotonic()
        others_done = all(
            j.phase.terminal for j in jobs if not expected.get(j.name, Expectation(Phase.FAILED))
            .terminate_when_running
        )  # fmt: skip
        for job in jobs:
            exp = expected.get(job.name)
            if exp is None or not exp.terminate_when_running or job.name in self.terminated:
                continue
            if job.phase is Phase.RUNNING:
                self.running_since.setdefault(job.name, now)
            ran = now - self.running_since.get(job.name, now)
            if job.phase.terminal:
                continue
            if ran >= TERMINATE_AFTER_RUNNING_SECONDS or others_done:
                patch = {"spec": {"terminate": {"reason": "kubatch demo: terminate example"}}}
                custom, _ = self.client()
                custom.patch_namespaced_custom_object(
                    GROUP, VERSION, NAMESPACE, "batchjobs", job.name, patch
                )
                self.terminated.add(job.name)
                self.event(f"terminating {job.name} (was {job.phase.value} for {ran:.0f}s)")

    def event(self, msg: str) -> None:
        self.events.append(f"[{time.monotonic() - self.t0:5.1f}s] {msg}")
        if not self.tty:
            self.say(msg)

    def watch(self, expected: Mapping[str, Expectation], spot_ces: set[str]) -> list[JsonDict]:
        start = time.monotonic()
        deadline = start + self.args.timeout
        drawn = 0
        last_line = ""
        last_print = 0.0
        items: list[JsonDict] = []
        while True:
            self.check_children()
            items = self.list_jobs()
            jobs = [job_view(i) for i in items]
            elapsed = time.monotonic() - start
            self.maybe_terminate(jobs, expected)
            self.maybe_reclaim(spot_ces)
            if self.reclaimer is not None and self.reclaimer.poll() is not None:
                self.finish_reclaim()
            names = {j.name for j in jobs}
            done = all(n in names for n in expected) and all(j.phase.terminal for j in jobs)
            if self.tty:
                cols = shutil.get_terminal_size().columns
                events = [e[: cols - 1] for e in self.events[-4:]]
                lines = render_table(jobs, elapsed, self.color) + events
                if drawn:
                    self.out.write(f"\x1b[{drawn}F\x1b[J")
                self.out.write("\n".join(lines) + "\n")
                self.out.flush()
                drawn = sum(screen_rows(line, cols) for line in lines)
            else:
                line = progress_line(jobs, elapsed)
                if line != last_line or time.monotonic() - last_print >= 10:
                    self.say(line)
                    last_line, last_print = line, time.monotonic()
            if done:
                return items
            if time.monotonic() >= deadline:
                self.say(f"timed out after {self.args.timeout:.0f}s; jobs still running")
                return items
            time.sleep(1.0)

    def sim_stats(self) -> JsonDict:
        path = self.state_dir / "sim-stats.json"
        with contextlib.suppress(OSError, ValueError):
            stats: JsonDict = json.loads(path.read_text())
            return stats
        return {}

    def finish_reclaim(self) -> None:
        if self.reclaimer is None or self.reclaim_reported:
            return
        self.reclaim_reported = True
        try:
            out, _ = self.reclaimer.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            self.reclaimer.kill()
            out, _ = self.reclaimer.communicate()
        if self.reclaimer.returncode != 0:
            self.event(f"the reclaim command failed: {out.strip()[-500:]}")
            return
        nodes = [line.split("/", 1)[1] for line in out.splitlines() if line.startswith("reclaimed")]
        self.event(f"spot reclaim took back {len(nodes)} node(s): {', '.join(nodes) or 'none'}")

    # -- the run -----------------------------------------------------------------------------
    def run(self) -> int:
        files, docs = self.load_examples()
        expected = expected_outcomes(docs)
        spot_ces = {
            str(d["metadata"]["name"])
            for d in docs
            if d.get("kind") == "ComputeEnvironment"
            and ((d.get("spec") or {}).get("computeResources") or {}).get("capacityType") == "Spot"
        }
        self.plane_up()
        self.install_crds()
        self.start_children()
        self.fresh_namespace()
        self.apply_examples(files)
        self.say(f"watching {len(expected)} example jobs (timeout {self.args.timeout:.0f}s)")
        items = self.watch(expected, spot_ces)
        self.finish_reclaim()
        if self.reclaimer is None and self.args.reclaim and spot_ces:
            self.say("note: no spot reclaim happened (too few jobs ran on spot at once)")
        time.sleep(2.2)  # one more sim stats dump, and the last metrics
        try:
            metrics = parse_metrics(self.metrics_text())
        except OSError as exc:
            self.say(f"could not read the operator's metrics: {exc}")
            metrics = {}
        summary = summarize([job_view(i) for i in items], metrics, self.sim_stats(), expected)
        print("", file=self.out)
        for line in render_summary(summary, self.color):
            print(line, file=self.out)
        print("", file=self.out, flush=True)
        return 0 if summary.ok else 1

    def print_keep(self) -> None:
        k = f"{self.kubectl_path} --kubeconfig {self.kubeconfig}"
        lines = [
            "Everything keeps running (--keep). Try:",
            f"  export KUBECONFIG={self.kubeconfig}",
            f"  {k} get batch -n {NAMESPACE}",
            f"  {k} get bj -n {NAMESPACE} -o wide",
            f"  {k} get nodes -L kubatch.io/compute-environment,node.kubernetes.io/instance-type",
            f"  curl -s http://127.0.0.1:{self.metrics_port}/metrics | grep ^kubatch_",
            f"Logs: {self.state_dir / 'logs'}",
            "Stop it all:",
            f"  kubatch demo --down --state-dir {self.state_dir}",
        ]
        print("\n".join(lines), file=self.out, flush=True)

    def cleanup(self, failed: bool) -> None:
        if self.reclaimer is not None and self.reclaimer.poll() is None:
            self.reclaimer.kill()
            self.reclaimer.wait()
        for c in reversed(self.children):
            c.stop()
        if self.children:
            self.say("stopped the operator and the sim")
        if self.plane is not None:
            if failed and (self.state_dir / "logs").is_dir():
                keep = Path(tempfile.mkdtemp(prefix="kubatch-demo-logs-"))
                shutil.copytree(self.state_dir / "logs", keep / "logs")
                self.say(f"logs kept in {keep / 'logs'}")
            n = self.plane.down()
            self.say(f"stopped the control plane ({n} process(es)); removed {self.state_dir}")


def stop_recorded_children(state_dir: Path) -> int:
    """Stop the sim/operator recorded in ``state_dir/demo.json`` (by PID, checked); count."""
    from kubatch.local.plane import pid_alive

    path = state_dir / "demo.json"
    if not path.is_file():
        return 0
    try:
        record = json.loads(path.read_text())
    except ValueError:
        record = {}
    stopped = 0
    for info in record.values():
        pid, exe = int(info["pid"]), str(info["exe"])
        if pid_alive(pid, exe):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 15
            while pid_alive(pid, exe) and time.monotonic() < deadline:
                time.sleep(0.1)
            if pid_alive(pid, exe):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            stopped += 1
    path.unlink(missing_ok=True)
    return stopped


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="kubatch demo", description=__doc__.split("\n")[0])
    p.add_argument("--keep", action="store_true", help="leave plane, sim and operator running")
    p.add_argument("--down", action="store_true", help="stop a demo kept with --keep, and exit")
    p.add_argument("--state-dir", help="where the demo's plane lives (default: next to "
                   "`kubatch local`'s, or $KUBATCH_DEMO_DIR)")  # fmt: skip
    p.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for the jobs")
    p.add_argument("--plane-timeout", type=float, default=180.0, help=argparse.SUPPRESS)
    p.add_argument("--reclaim", action=argparse.BooleanOptionalAction, default=True,
                   help="reclaim half of the spot pool's nodes mid-run (default: on)")  # fmt: skip
    p.add_argument("--no-color", action="store_true", help="plain output")
    p.add_argument("--examples", help="directory of example manifests (default: the repo's)")
    return p


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    def handler(signum: int, frame: Any) -> None:
        raise _Interrupted()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    if args.down:
        from kubatch.local.plane import LocalPlane

        state_dir = Path(args.state_dir or default_demo_dir()).resolve()
        n = stop_recorded_children(state_dir)
        m = LocalPlane(state_dir).down()
        print(f"kubatch demo: stopped {n} demo process(es) and {m} plane process(es)")
        return 0
    demo = Demo(args)
    code = 1
    failed = True
    with _sigterm_as_interrupt():
        try:
            code = demo.run()
            failed = code != 0
        except (KeyboardInterrupt, _Interrupted):
            demo.say("interrupted")
            code = 130
        except DemoError as exc:
            demo.say(f"error: {exc}")
            code = 2
        except Exception as exc:
            from kubatch.local.binaries import BinariesError
            from kubatch.local.plane import PlaneError

            if not isinstance(exc, PlaneError | BinariesError):
                raise
            demo.say(f"error: {exc}")
            code = 2
        finally:
            if args.keep and demo.plane is not None and code in (0, 1):
                demo.print_keep()
            else:
                previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
                try:
                    demo.cleanup(failed)
                finally:
                    signal.signal(signal.SIGINT, previous)
    return code
