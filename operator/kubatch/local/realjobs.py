"""Real jobs beside the simulated pools: what the demo (or a user) calls to run a few jobs on
the real node and say what really happened.

With a plane started by ``LocalPlane.up(real_node=True)`` and any kubatch operator running
(the demo's own process, or the chart in-cluster), ``apply_example`` applies
``examples/real-node/jobs.yaml`` (an Unmanaged compute environment on the real node, a queue,
definitions and three jobs) and ``report`` returns one line per job: its phase, the real exit
code and reason of each attempt, and the first line its container wrote (``kubectl logs``).
Where no real node can run, ``node.unavailable_reason()`` says why; the demo then runs the
simulated pools alone.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from kubatch.local.plane import PlaneState

LABEL = "example=real-node"
"""Every object of the real-node example carries it."""


def example_file(start: Path | None = None) -> Path | None:
    """``examples/real-node/jobs.yaml`` of the repository (a checkout or editable install)."""
    here = (start or Path(__file__)).resolve()
    for parent in here.parents:
        candidate = parent / "examples" / "real-node" / "jobs.yaml"
        if candidate.is_file():
            return candidate
    return None


def _kubectl(state: PlaneState, *args: str, namespace: str | None = None) -> str:
    argv = [state.kubectl, "--kubeconfig", str(state.kubeconfig)]
    if namespace:
        argv += ["-n", namespace]
    proc = subprocess.run([*argv, *args], capture_output=True, text=True, timeout=60, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args[:2])} failed: {proc.stderr.strip()}")
    return proc.stdout


def apply_example(state: PlaneState, namespace: str = "default", path: Path | None = None) -> None:
    """Apply the real-node example (its queue and compute environment are cluster-scoped)."""
    if state.node is None:
        raise RuntimeError("the plane has no real node: LocalPlane.up(real_node=True)")
    path = path or example_file()
    if path is None:
        raise RuntimeError("examples/real-node/jobs.yaml not found (run from a checkout)")
    _kubectl(state, "apply", "-f", str(path), namespace=namespace)


def describe(job: dict[str, Any], first_line: str | None) -> str:
    """Pure: one line about a finished (or running) real job."""
    st = job.get("status") or {}
    tries = [
        f"exit {a.get('exitCode', '?')}" + (f" {a['reason']}" if a.get("reason") else "")
        for a in st.get("attempts") or []
    ]
    line = f"[real] {job['metadata']['name']}: {st.get('phase', 'Submitted')}"
    if tries:
        line += f" ({', '.join(tries)})"
    summary = st.get("arrayStatusSummary")
    if summary:
        line += f" array {json.dumps(summary, separators=(',', ':'))}"
    if first_line:
        line += f' — logs: "{first_line}"'
    return line


def report(state: PlaneState, namespace: str = "default") -> list[str]:
    """One line per BatchJob of the example, with what its containers wrote."""
    jobs = json.loads(_kubectl(state, "get", "bj", "-l", LABEL, "-o", "json", namespace=namespace))
    lines = []
    for job in jobs["items"]:
        name = job["metadata"]["name"]
        selector = f"kubatch.io/batchjob={name}"
        out = _kubectl(state, "get", "pods", "-l", selector, "-o", "json", namespace=namespace)
        pods = json.loads(out)["items"]
        first = None
        for pod in pods:
            try:
                out = _kubectl(state, "logs", pod["metadata"]["name"], namespace=namespace)
            except RuntimeError:
                continue
            if out.strip():
                first = out.strip().splitlines()[0]
                break
        lines.append(describe(job, first))
    return lines
