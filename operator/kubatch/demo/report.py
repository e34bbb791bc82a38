"""The pure half of ``kubatch demo``: what each example intends, views of BatchJobs, the
live progress table and the final summary. No I/O, no clock: times are passed in.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kubatch.core.lifecycle import Phase, Reason
from kubatch.devkit.promtext import Samples, sum_by
from kubatch.devkit.stats import percentile
from kubatch.timefmt import parse_time

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


def examples_ended(
    items: Mapping[str, dict[str, Any]], expected: Mapping[str, Expectation]
) -> bool:
    """Every example job is known and ended. Judged from the live map of BatchJobs, never from
    a list taken before an await: the watch may fill the map meanwhile, and an empty list would
    count as "all ended"."""
    return all(n in items for n in expected) and all(
        job_view(i).phase.terminal for i in items.values()
    )


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
    metrics: Samples,
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
