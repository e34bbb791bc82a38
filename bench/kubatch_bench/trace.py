"""Where an attempt's seconds go, from submission to the BatchJob's terminal phase.

The benchmark's watches (BatchJobs, Jobs and pods of the benchmark namespace) stamp each
transition with the client's wall clock when the event arrives; every stage is the difference
of two such stamps, so the watch delivery delay that all of them share cancels out. Pure: no
I/O, no clock (the caller stamps).

Stages, in order (each the median/p90/p99 over the attempts that passed both stamps):

- ``queued``: BatchJob created → its Kubernetes Job seen (waiting for a slot + the
  operator's admission and create);
- ``job_controller``: Job seen → its pod seen (the Job controller's sync and pod create);
- ``scheduler``: pod seen → pod bound to a node (kube-scheduler);
- ``node_start``: bound → pod ``Running`` (the simulated kubelet);
- ``run``: ``Running`` → pod ``Succeeded`` (the workload itself);
- ``operator_end``: pod ``Succeeded`` → BatchJob ``Succeeded`` seen (the operator's watch,
  decision and status patch).

``slot`` is Job seen → BatchJob terminal: how long an admitted job holds its capacity in the
operator's books (the operator frees it when it has seen the pod end, just before its patch),
and ``starting`` is Job seen → pod ``Running``, the part of the slot in which no work runs.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from kubatch.devkit.stats import percentile

STAGES: tuple[tuple[str, str, str], ...] = (
    ("queued", "created", "job"),
    ("job_controller", "job", "pod"),
    ("scheduler", "pod", "bound"),
    ("node_start", "bound", "running"),
    ("run", "running", "pod_done"),
    ("operator_end", "pod_done", "done"),
    ("starting", "job", "running"),
    ("slot", "job", "done"),
)
MARKS = ("created", "job", "pod", "bound", "running", "pod_done", "done")


@dataclass
class Trace:
    """Stamps per BatchJob name (first stamp of each mark wins)."""

    marks: dict[str, dict[str, float]] = field(default_factory=dict)

    def stamp(self, name: str, mark: str, t: float) -> None:
        self.marks.setdefault(name, {}).setdefault(mark, t)

    def on_pod(self, name: str, pod: dict[str, Any], t: float) -> None:
        """A pod event of the BatchJob ``name`` (first attempt's pod only matters here)."""
        self.stamp(name, "pod", t)
        if (pod.get("spec") or {}).get("nodeName"):
            self.stamp(name, "bound", t)
        phase = (pod.get("status") or {}).get("phase")
        if phase in ("Running", "Succeeded", "Failed"):
            self.stamp(name, "running", t)
        if phase in ("Succeeded", "Failed"):
            self.stamp(name, "pod_done", t)

    def stages(self, names: Iterable[str] | None = None) -> dict[str, dict[str, float | int]]:
        """Per stage: count, p50, p90, p99 and max seconds (nearest-rank), over ``names``."""
        keys = list(self.marks) if names is None else list(names)
        out: dict[str, dict[str, float | int]] = {}
        for stage, start, end in STAGES:
            values = [
                m[end] - m[start]
                for m in (self.marks.get(k) for k in keys)
                if m is not None and start in m and end in m
            ]
            if not values:
                continue
            row: dict[str, float | int] = {"count": len(values)}
            for p in (50, 90, 99):
                row[f"p{p}"] = round(percentile(values, p) or 0.0, 3)
            row["max"] = round(max(values), 3)
            out[stage] = row
        return out


def stage_table(stages: dict[str, dict[str, float | int]]) -> str:
    """Pure: the stages as an aligned text table."""
    rows = [("stage", "n", "p50 s", "p90 s", "p99 s", "max s")]
    for name, s in stages.items():
        rows.append((name, str(s["count"]), str(s["p50"]), str(s["p90"]), str(s["p99"]),
                     str(s["max"])))  # fmt: skip
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows)
