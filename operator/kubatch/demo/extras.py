"""What the demo shows beside the simulated pools: a few jobs run for real (containerd + runc
on the local plane's real node, when the machine can run one) and one job submitted through
the AWS Batch API with boto3. Each says which it is in its output lines. And the web console
(``kubatch console``), whose address the demo prints.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from kubatch.devkit.process import Child, ChildExited, free_port
from kubatch.devkit.stack import kubatch_argv
from kubatch.local.plane import PlaneState

REAL_NAMESPACE = "kubatch-demo-real"
AWS_NAMESPACE = "kubatch-demo-aws"
Kubectl = Callable[..., subprocess.CompletedProcess[str]]


def ensure_namespace(kubectl: Kubectl, name: str) -> None:
    if kubectl("get", "namespace", name, check=False).returncode != 0:
        kubectl("create", "namespace", name)


@dataclass
class RealJobs:
    """The real-node example, applied in its own namespace (its jobs are not in the summary
    of the simulated examples)."""

    state: PlaneState
    namespace: str = REAL_NAMESPACE

    def start(self, kubectl: Kubectl) -> None:
        from kubatch.local import realjobs

        ensure_namespace(kubectl, self.namespace)
        realjobs.apply_example(self.state, self.namespace)

    def finished(self, kubectl: Kubectl) -> bool:
        from kubatch.local.realjobs import LABEL

        out = kubectl("-n", self.namespace, "get", "bj", "-l", LABEL, "-o", "json", check=False)
        if out.returncode != 0:
            return False
        items = json.loads(out.stdout)["items"]
        return bool(items) and all(
            (i.get("status") or {}).get("phase") in ("Succeeded", "Failed") for i in items
        )

    def report(self) -> list[str]:
        from kubatch.local import realjobs

        return realjobs.report(self.state, self.namespace)


@dataclass
class Boto3Submission:
    """One job submitted with boto3 through ``kubatch batch-api``, in a thread."""

    kubeconfig: str
    namespace: str
    queue: str
    lines: list[str] = field(default_factory=list)
    thread: threading.Thread | None = None

    def start(self) -> None:
        self.thread = threading.Thread(target=self._run, name="demo-boto3", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            from kubatch.batchapi.showcase import boto3_submission

            result = boto3_submission(self.kubeconfig, self.namespace, self.queue)
            self.lines = [f"[aws api] {line}" for line in result.lines]
        except Exception as exc:  # the demo goes on without it; say why
            self.lines = [f"[aws api] the boto3 submission did not complete: {exc}"]

    def join(self, timeout: float) -> list[str]:
        if self.thread is not None:
            self.thread.join(timeout)
            if self.thread.is_alive():
                return ["[aws api] the boto3 submission is still running"]
        return self.lines


def wait_until(done: Callable[[], bool], timeout: float, every: float = 2.0) -> bool:
    """``done()`` until true or ``timeout`` seconds passed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if done():
            return True
        time.sleep(every)
    return done()


@dataclass
class ConsoleProcess:
    """``kubatch console`` on 127.0.0.1 for the demo's cluster (read-only, the demo's own
    login): started with the stack, stopped with it, left running with ``--keep``."""

    kubeconfig: str
    log: Path
    child: Child | None = None
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def start(self, timeout: float = 30.0) -> str:
        """Start it and wait until it has listed the cluster's objects; its address."""
        self.port = free_port()
        self.child = Child(
            "console",
            kubatch_argv("console", "--kubeconfig", self.kubeconfig, "--port", str(self.port)),
            self.log,
        )
        self.child.start()
        child = self.child

        def serving() -> bool:
            child.check()
            try:
                with urllib.request.urlopen(self.url + "healthz", timeout=2) as resp:
                    return "jobs" in json.loads(resp.read())["synced"]
            except OSError:
                return False

        if not wait_until(serving, timeout, every=0.3):
            raise ChildExited(f"the console did not answer within {timeout:.0f} s ({self.log})")
        return self.url

    def stop(self) -> None:
        if self.child is not None:
            self.child.stop()
