"""The shared development helpers: percentile, eventually, child processes, Prometheus text."""

from __future__ import annotations

import asyncio
import signal
import socket
import sys
import time
from pathlib import Path

import pytest

from kubatch.devkit.polling import NotYet, eventually, eventually_async
from kubatch.devkit.process import Child, ChildExited, free_port, pid_alive, stop_pid
from kubatch.devkit.promtext import parse_metrics, sample, sum_by
from kubatch.devkit.stack import Stack, kubatch_argv, run_sync
from kubatch.devkit.stats import percentile


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [
        ([], 50, None),
        ([7.0], 99, 7.0),
        ([1.0, 2.0], 50, 1.0),
        ([3.0, 1.0, 2.0, 4.0], 50, 2.0),
        ([3.0, 1.0, 2.0, 4.0], 75, 3.0),
        ([3.0, 1.0, 2.0, 4.0], 76, 4.0),
        ([float(i) for i in range(1, 101)], 99, 99.0),
        ([float(i) for i in range(1, 101)], 99.5, 100.0),
        ([float(i) for i in range(1, 11)], 99, 10.0),
        ([5.0, 1.0], 0, 1.0),
        ([5.0, 1.0], 100, 5.0),
    ],
    ids=[
        "empty",
        "one",
        "two-median-is-lower",
        "median",
        "p75-exact-rank",
        "p76-next-rank",
        "p99-of-100",
        "p99.5-of-100",
        "p99-of-10-is-max",
        "p0-min",
        "p100-max",
    ],
)
def test_percentile_is_nearest_rank(values: list[float], q: float, expected: float | None) -> None:
    assert percentile(values, q) == expected


def test_percentile_is_always_a_measured_value() -> None:
    values = [0.1, 0.25, 0.3, 9.0]
    assert all(percentile(values, q) in values for q in range(0, 101))


@pytest.mark.parametrize("q", [-1, 100.5])
def test_percentile_rejects_q_out_of_range(q: float) -> None:
    with pytest.raises(ValueError, match=r"0\.\.100"):
        percentile([1.0], q)


def test_eventually_returns_the_first_truthy_answer() -> None:
    answers = iter([None, 0, [], {"ok": 1}])
    assert eventually(lambda: next(answers), what="x", timeout=5, every=0.001) == {"ok": 1}


def test_eventually_says_what_never_happened() -> None:
    with pytest.raises(NotYet, match=r"waiting for the pods; last: \[\]") as info:
        eventually(list, what="the pods", timeout=0.05, every=0.01)
    assert isinstance(info.value, AssertionError)  # a failed expectation for pytest
    with pytest.raises(NotYet, match="3 of 5 done"):
        eventually(
            lambda: False, what="x", timeout=0.02, every=0.01, progress=lambda: "3 of 5 done"
        )


def test_eventually_checks_and_reports() -> None:
    def dead() -> None:
        raise ChildExited("the operator exited")

    with pytest.raises(ChildExited):
        eventually(lambda: False, what="x", timeout=5, check=dead)
    reports: list[str] = []
    with pytest.raises(NotYet):
        eventually(
            lambda: False,
            what="x",
            timeout=0.1,
            every=0.01,
            report=reports.append,
            report_every=0.02,
            progress=lambda: "slow",
        )
    assert reports
    assert reports[0] == "waiting for x: slow"


async def test_eventually_async() -> None:
    state = {"n": 0}

    async def probe() -> int:
        state["n"] += 1
        return state["n"] if state["n"] >= 3 else 0

    assert await eventually_async(probe, what="three", timeout=5, every=0.001) == 3

    async def never() -> bool:
        return False

    with pytest.raises(NotYet, match="never"):
        await eventually_async(never, what="never", timeout=0.03, every=0.01)


def test_free_port_is_bindable() -> None:
    port = free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))


def py(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_child_start_tail_stop(tmp_path: Path) -> None:
    child = Child(
        "echo",
        py("import time; print('hello', flush=True); time.sleep(60)"),
        tmp_path / "logs" / "echo.log",
    )
    pid = child.start()
    try:
        assert child.alive()
        assert pid_alive(pid)
        eventually(lambda: "hello" in child.tail(), what="the greeting", timeout=10, every=0.05)
        with pytest.raises(RuntimeError, match="already running"):
            child.start()
    finally:
        code = child.stop()
    assert code == -signal.SIGTERM
    assert not child.alive()
    assert not pid_alive(pid)
    with pytest.raises(ChildExited, match="hello"):
        child.check()


def test_child_that_ignores_sigterm_is_killed(tmp_path: Path) -> None:
    code = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('up', flush=True); time.sleep(60)"
    )
    child = Child("stubborn", py(code), tmp_path / "s.log")
    child.start()
    eventually(lambda: "up" in child.tail(), what="the child", timeout=10, every=0.05)
    t0 = time.monotonic()
    assert child.stop(timeout=0.3) == -signal.SIGKILL
    assert time.monotonic() - t0 < 5


def test_child_runs_with_its_env_and_cwd(tmp_path: Path) -> None:
    child = Child(
        "env",
        py("import os; print(os.environ['X'], os.getcwd())"),
        tmp_path / "e.log",
        env={"X": "forty-two"},
        cwd=tmp_path,
    )
    child.start()
    eventually(lambda: not child.alive(), what="the child to exit", timeout=10, every=0.05)
    assert child.tail() == f"forty-two {tmp_path}"
    assert child.returncode == 0


def test_stop_pid_checks_the_executable(tmp_path: Path) -> None:
    child = Child("sleeper", py("import time; time.sleep(60)"), tmp_path / "p.log")
    pid = child.start()
    try:  # once exec'd (between fork and exec a process has no command line to check)
        eventually(Path(f"/proc/{pid}/cmdline").read_bytes, what="exec", timeout=10, every=0.01)
        assert not stop_pid(pid, "not-python")  # a reused PID of another program is spared
        assert child.alive()
        assert stop_pid(pid, sys.executable, timeout=5)
        assert not pid_alive(pid, sys.executable)
        assert not stop_pid(pid, sys.executable)
    finally:
        child.stop()


METRICS = """# HELP kubatch_api_writes_total API writes
# TYPE kubatch_api_writes_total counter
kubatch_api_writes_total{verb="create",resource="jobs"} 3.0
kubatch_api_writes_total{verb="patch",resource="batchjobs/status"} 5.0
kubatch_api_writes_total{verb="create",resource="events"} 2.0
"""


def test_prometheus_text() -> None:
    m = parse_metrics(METRICS)
    writes = m["kubatch_api_writes_total"]
    assert writes[(("resource", "jobs"), ("verb", "create"))] == 3.0
    assert sum_by(writes, "verb") == {"create": 5.0, "patch": 5.0}
    assert sample(m, "kubatch_api_writes_total", verb="create") == 5.0
    assert sample(m, "kubatch_api_writes_total", resource="events") == 2.0
    assert sample(m, "missing_total") == 0.0


async def test_run_sync_inside_a_running_loop() -> None:
    async def answer() -> int:
        await asyncio.sleep(0)
        return 42

    assert run_sync(answer()) == 42


def test_run_sync_without_a_loop() -> None:
    async def answer() -> str:
        return "ok"

    assert run_sync(answer()) == "ok"


def test_stack_prepares_its_children(tmp_path: Path) -> None:
    stack = Stack.prepare(
        tmp_path / "kubeconfig",
        tmp_path / "work",
        sim_args=("--seed", "1"),
        metrics_port=12345,
        env={"PATH": "/bin"},
    )
    assert stack.sim.argv == kubatch_argv(
        "sim", "run", "--seed", "1", "--stats-file", str(tmp_path / "work" / "sim-stats.json")
    )
    hook = str(stack.webhook_port)
    assert stack.webhook_port > 0
    assert stack.operator.argv == kubatch_argv(
        "operator", "--metrics-port", "12345", "--strict-calls", "--webhook-port", hook,
        "--webhook-addr", "127.0.0.1", "--webhook-register", "--webhook-configuration",
        "kubatch-devkit",
    )  # fmt: skip
    bare = Stack.prepare(tmp_path / "kubeconfig", tmp_path / "w2", metrics_port=1, webhook=False)
    assert bare.operator.argv == kubatch_argv("operator", "--metrics-port", "1", "--strict-calls")
    assert bare.webhook_port == 0
    assert stack.env == {
        "PATH": "/bin",
        "KUBECONFIG": str(tmp_path / "kubeconfig"),
        "PYTHONUNBUFFERED": "1",
    }
    assert stack.sim.log == tmp_path / "work" / "sim.log"
    assert stack.sim_stats() == {}
    (tmp_path / "work" / "sim-stats.json").write_text('{"nodes": 3}')
    assert stack.sim_stats() == {"nodes": 3}
    assert stack.pids() == {}
    with pytest.raises(ChildExited, match="simulator"):
        stack.check()


def test_a_zombie_is_not_alive(tmp_path: Path) -> None:
    child = Child("quick", py("pass"), tmp_path / "q.log")
    pid = child.start()
    eventually(
        lambda: Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0] == "Z",
        what="the child to exit (unreaped)",
        timeout=10,
        every=0.01,
    )
    assert not pid_alive(pid)
    child.stop()  # reaps it
