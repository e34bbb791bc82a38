"""``kubectl batch logs`` on the real plane: the pod of the right attempt (also after a retry)
and of the right array child, followed while it runs. The simulated nodes serve container
logs like a kubelet (``kubatch.sim.kubelet``), so these go through the API server's
``pods/log`` exactly as on a real cluster; ``kubectl logs`` reads the same."""

from __future__ import annotations

import contextlib
import io
import threading
import time

import pytest
from tests.e2e.conftest import Stack
from tests.e2e.factories import make_ce, make_definition, make_job, make_queue

from kubatch.plugin.cli import main as kubectl_batch

pytestmark = pytest.mark.timeout(240)


def logs(stack: Stack, ns: str, *argv: str, code: int = 0) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err):
        got = kubectl_batch(
            ["--kubeconfig", str(stack.plane.kubeconfig), "-n", ns, "logs", *argv], out=out
        )
    assert got == code, f"exit {got}: {out.getvalue()}{err.getvalue()}"
    return out.getvalue(), err.getvalue()


def test_logs_of_each_attempt_and_child_and_followed(stack: Stack, namespace: str) -> None:
    ns = namespace
    ce, q = f"{ns}-ce", f"{ns}-q"
    stack.apply([make_ce(ce, max_vcpus=8), make_queue(q, [ce])])
    stack.apply(
        [
            make_definition(
                "flaky",
                duration=1,
                cpu="250m",
                memory="256Mi",
                exit_code=1,
                retry={"attempts": 2},
                command=["sh", "-c", "echo Ref::word"],
                parameters={"word": "hello"},
            ),
            make_definition("ok", duration=1, cpu="250m", memory="256Mi"),
            make_definition("slow", duration=12, cpu="250m", memory="256Mi"),
            make_job("flaky", q, "flaky", parameters={"word": "kubatch"}),
            make_job("arr", q, "ok", arrayProperties={"size": 3}),
        ],
        ns,
    )
    stack.wait_phase(ns, "flaky", ("Failed",), timeout=90)
    stack.wait_phase(ns, "arr", ("Succeeded",), timeout=90)

    last, err = logs(stack, ns, "flaky")
    assert "flaky attempt 2 of 2" in err
    assert "AWS_BATCH_JOB_ATTEMPT=2" in last
    assert "sh -c echo kubatch" in last  # Ref::word, substituted with the job's parameter
    assert last.rstrip().endswith("exit 1 Error")
    first, err = logs(stack, ns, "flaky", "--attempt", "1")
    assert "attempt 1 of 2" in err
    assert "AWS_BATCH_JOB_ATTEMPT=1" in first
    _, err = logs(stack, ns, "flaky", "--attempt", "3", code=1)
    assert "no attempt 3" in err

    child, err = logs(stack, ns, "arr:2")
    assert "arr[2] attempt 1 of 1" in err
    assert "AWS_BATCH_JOB_ARRAY_INDEX=2" in child
    assert logs(stack, ns, "arr", "--index", "2")[0] == child
    _, err = logs(stack, ns, "arr", code=1)
    assert "--index" in err
    tail, _ = logs(stack, ns, "arr:0", "--tail", "1")
    assert tail.splitlines() == ["[kubatch-sim] exit 0 Completed"]

    # -f from before the container starts: waits for it, then streams until it ends.
    stack.apply([make_job("slow", q, "slow")], ns)
    stack.wait(
        "slow has an attempt",
        lambda: ((stack.get("batchjob", "slow", ns) or {}).get("status") or {}).get("attempts"),
        timeout=60,
        every=0.2,
    )
    result: dict[str, object] = {}

    def follow() -> None:
        t0 = time.monotonic()
        result["out"], result["err"] = logs(stack, ns, "slow", "-f")
        result["seconds"] = time.monotonic() - t0

    thread = threading.Thread(target=follow)
    thread.start()
    thread.join(timeout=90)
    assert not thread.is_alive(), "logs -f did not end with the container"
    out = str(result["out"])
    assert "working: 3s of 12s" in out
    assert out.rstrip().endswith("exit 0 Completed")
    assert float(result["seconds"]) >= 2  # type: ignore[arg-type]
    # kubectl itself reads the same log through the API server.
    bj = stack.get("batchjob", "slow", ns) or {}
    pod = bj["status"]["attempts"][-1]["podName"]
    assert stack.kubectl("logs", pod, namespace=ns).stdout == out
