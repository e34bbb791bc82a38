"""Where the operator's CPU goes: py-spy records it (collapsed stacks), this summarises them.

``start`` runs ``py-spy record --format raw`` against a PID in the background; ``finish``
waits for it and returns :func:`summarise` of what it wrote. The summary is pure: total
samples, the share of samples whose stack passes through each of a few named areas (kopf's
event processing, JSON decoding, status patching, the scheduling core, …) and the functions
with the most samples of their own.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

AREAS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("kopf (event processing, all)", ("kopf/",)),
    ("kopf diff-base / deepcopy", ("diffbase", "deepcopy (copy.py")),
    ("JSON decoding", ("json/decoder.py", "json/__init__.py:3")),
    ("JSON encoding", ("json/encoder.py",)),
    ("HTTP client (aiohttp)", ("aiohttp/",)),
    ("status patching (effects)", ("_patch_job", "flush (kubatch/controller/effects.py")),
    ("Job creation (render + create)", ("_admit (", "build_job")),
    ("intake (events into the cache)", ("kubatch/controller/intake.py",)),
    ("attempts (Job/pod events)", ("kubatch/controller/attempts.py",)),
    ("scheduling core (schedule)", ("kubatch/core/scheduler.py",)),
    ("cache snapshot / assume", ("kubatch/core/cache.py",)),
    ("metrics (prometheus_client)", ("prometheus_client/",)),
    ("TLS (ssl)", ("(ssl.py:",)),
)
IDLE = ("select (selectors.py:",)
"""Leaves where the event loop waits for I/O: samples, but not busy ones."""


@dataclass
class Spy:
    proc: subprocess.Popen[bytes] | None
    output: Path
    error: str = ""


def start(pid: int, seconds: float, output: Path) -> Spy:
    """py-spy on ``pid`` for ``seconds`` (100 samples/s, the process is not paused)."""
    exe = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(exe).exists():
        return Spy(None, output, "py-spy is not installed (pip install -e '.[dev]')")
    argv = [exe, "record", "--pid", str(pid), "--duration", str(int(seconds)), "--rate", "100",
            "--format", "raw", "--nonblocking", "--output", str(output)]  # fmt: skip
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return Spy(proc, output)


def finish(spy: Spy, timeout: float = 600.0) -> dict[str, Any]:
    if spy.proc is None:
        return {"error": spy.error}
    _, err = spy.proc.communicate(timeout=timeout)
    if not spy.output.exists():
        return {"error": err.decode(errors="replace")[-500:]}
    return summarise(spy.output.read_text())


def summarise(collapsed: str, top: int = 15) -> dict[str, Any]:
    """Pure: areas and top self-time functions from py-spy's raw (collapsed) output, lines of
    ``frame;frame;…;leaf count`` (paths as py-spy shortens them: ``json/decoder.py``). Shares
    are of the busy samples: those whose leaf is not the event loop waiting for I/O."""
    total = idle = 0
    areas: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    for line in collapsed.splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack or not n.isdigit():
            continue
        count = int(n)
        frames = stack.split(";")
        if any(needle in frames[-1] for needle in IDLE):
            idle += count
            continue
        total += count
        leaves[frames[-1]] += count
        for name, needles in AREAS:
            if any(needle in stack for needle in needles):
                areas[name] += count
    if total == 0:
        return {"samples": 0, "idle_samples": idle}

    def share(n: int) -> float:
        return round(100.0 * n / total, 1)

    return {
        "samples": total,
        "idle_samples": idle,
        "areas_percent_of_busy_samples": {name: share(areas[name]) for name, _ in AREAS},
        "top_self_percent": {leaf: share(n) for leaf, n in leaves.most_common(top)},
    }
