"""What the demo shows beside the simulated pools: a few jobs run for real (containerd + runc
on the local plane's real node, when the machine can run one) and one job submitted through
the AWS Batch API with boto3. Each says which it is in its output lines.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

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
