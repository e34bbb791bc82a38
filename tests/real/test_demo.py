"""`make demo` on a machine that can run a real node: a few jobs run for real (a real command,
real exit codes, real logs) beside the simulated pools, and the output says which is which."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from kubatch.local import node

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(900)
def test_demo_runs_real_jobs_beside_the_simulated_pools() -> None:
    reason = node.unavailable_reason()
    if reason is not None:
        pytest.skip(f"no real node on this machine: {reason}")
    state_dir = Path(tempfile.mkdtemp(prefix="kubatch-demo-real-"))
    proc = subprocess.run(
        [sys.executable, "-m", "kubatch.cli", "demo", "--state-dir", str(state_dir / "demo"),
         "--real", "--no-aws-api", "--no-color"],
        capture_output=True, text=True, timeout=850, cwd=ROOT, check=False,
    )  # fmt: skip
    text = proc.stdout + proc.stderr
    assert proc.returncode == 0, text
    assert "What ran for real (containerd + runc, not simulated):" in text, text
    assert '[real] real-exit-3: Failed (exit 3 Error) — logs: "exiting with 3"' in text, text
    assert "[real] real-oom: Failed (exit 137 OOMKilled)" in text, text
    assert "[real] real-hello: Succeeded" in text, text
    assert "example jobs ended as intended" in text  # the simulated examples, as before
    assert not (state_dir / "demo").exists()  # everything stopped, its state removed
