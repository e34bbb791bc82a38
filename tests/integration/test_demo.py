"""``kubatch demo`` end to end, as a user runs it: its own plane (own state dir and free ports,
never the session's ``local_plane``), the sim, the operator and the examples; exit 0 when every
example ended as intended; the run's timeline written (every example job in it, drawn as a
PNG); nothing left running afterwards."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from kubatch.devkit.process import pid_alive

ROOT = Path(__file__).resolve().parents[2]
QUEUES = ("high-priority", "low-priority", "shared")

pytestmark = pytest.mark.timeout(420)


def test_demo_runs_the_examples_and_cleans_up() -> None:
    from kubatch.local import binaries

    binaries.ensure(allow_build=False)  # a clear failure if the binaries are missing
    state_dir = Path(tempfile.mkdtemp(prefix="kubatch-demo-test-")) / "plane"
    env = {**os.environ, "NO_COLOR": "1"}
    env.pop("KUBECONFIG", None)
    proc = subprocess.run(
        [sys.executable, "-m", "kubatch.cli", "demo", "--state-dir", str(state_dir),
         "--timeout", "240", "--no-real"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=400, check=False,
    )  # fmt: skip
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    summary = proc.stdout.split("kubatch demo: summary", 1)
    assert len(summary) == 2, out[-6000:]
    text = summary[1]
    for queue in QUEUES:
        assert queue in text, f"{queue} missing from the summary:\n{text}"
    assert re.search(r"Makespan\s+\d+(\.\d+)?s", text), text
    assert re.search(r"Wait time\s+p50 \d", text), text
    n = _example_jobs()
    assert f"{n}/{n} example jobs ended as intended" in text, text
    assert re.search(r"Spot reclaims\s+[1-9]", text), text  # --reclaim is on by default
    # one job through the AWS Batch API with boto3 (the real jobs: tests/real/test_demo.py)
    assert "[aws api] boto3: describe_jobs -> SUCCEEDED" in text, text
    assert re.search(r"web console: http://127\.0\.0\.1:\d+/ \(pid \d+\)", out), out[:3000]
    # Everything it started is gone: plane processes, sim, operator, console, the state dir.
    pids = [int(p) for p in re.findall(r"pid (\d+)", out)]
    assert len(pids) >= 6, out[:3000]  # etcd, apiserver, controller-manager, scheduler, sim, op
    assert [p for p in pids if pid_alive(p)] == []
    assert not state_dir.exists()
    # The run's timeline was written next to the state dir, and shows every example job.
    svg = state_dir.parent / "plane-timeline.svg"
    assert f"timeline of this run: {svg}" in proc.stdout, out[-3000:]
    check_timeline_picture(svg, _example_job_names())


def check_timeline_picture(svg: Path, names: list[str]) -> None:
    """The SVG names every job in a lane of its own, and drawn as a PNG (cairosvg, which a
    person's viewer would do too) it is a real picture: as many rows as lanes, with colour."""
    import xml.etree.ElementTree as ET

    import cairosvg
    from PIL import Image

    root = ET.fromstring(svg.read_text())
    lanes = {
        g.get("data-key", "").split("/", 1)[1] for g in root.iter() if g.get("class") == "lane"
    }
    missing = [n for n in names if n not in lanes]
    assert not missing, f"jobs missing from the timeline: {missing}"
    png = svg.with_suffix(".png")
    cairosvg.svg2png(url=str(svg), write_to=str(png))
    image = Image.open(png).convert("RGB")
    width, height = image.size
    assert width == int(root.get("width", "0"))
    assert height >= 20 * len(names)
    colours = image.getcolors(maxcolors=width * height) or []
    running = {(0x2F, 0x81, 0xF7), (0x82, 0x50, 0xDF)}  # on-demand and spot bars
    assert running & {c for _, c in colours}, "no running bar drawn"
    assert svg.with_suffix(".html").read_text().count("<tr>") > len(names)


def _example_job_names() -> list[str]:
    import yaml

    root = Path(__file__).resolve().parents[2] / "examples"
    docs = [d for f in sorted(root.glob("*.yaml")) for d in yaml.safe_load_all(f.read_text())]
    return [d["metadata"]["name"] for d in docs if d and d.get("kind") == "BatchJob"]


def _example_jobs() -> int:
    """How many example BatchJobs the demo runs (every one must end as intended)."""
    import yaml

    root = Path(__file__).resolve().parents[2] / "examples"
    docs = [d for f in sorted(root.glob("*.yaml")) for d in yaml.safe_load_all(f.read_text())]
    return sum(1 for d in docs if d and d.get("kind") == "BatchJob")
