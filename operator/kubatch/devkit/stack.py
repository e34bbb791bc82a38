"""The whole of kubatch on a control plane, for the demo, the e2e benchmark and the e2e tests.

:class:`Stack` installs kubatch's CRDs (server-side apply of the CRDs generated from the API
models, then waits for ``Established``) and runs the simulated node pools (``kubatch sim
run``) and the operator (``kubatch operator --metrics-port``) as child processes with their
own logs, so that a caller can kill the operator with SIGKILL and start it again. The plane
itself is the caller's (``kubatch.local.plane.LocalPlane`` or any kubeconfig).

The operator runs as it does in a cluster, with its validating admission webhook, and checks
every API call it makes against the declared table (``--strict-calls``). The local plane has
no Service network, so the webhook listens on loopback and the operator registers its own
configuration reached by URL (``--webhook-register``, SEMANTICS §8); :meth:`Stack.stop`
removes that configuration (``failurePolicy: Fail`` would otherwise refuse every kubatch
object once no operator answers), and :meth:`Stack.webhook_off` removes it for a while (what
a cluster without the webhook, or with objects that predate it, looks like).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from kubatch.adapters.kube import BATCHJOBS, CRDS, VALIDATINGWEBHOOKCONFIGURATIONS, ApiError, Kube
from kubatch.devkit.polling import eventually, eventually_async
from kubatch.devkit.process import Child, free_port
from kubatch.devkit.promtext import Samples, parse_metrics

T = TypeVar("T")

WEBHOOK_CONFIGURATION = "kubatch-devkit"
"""The name of the ValidatingWebhookConfiguration a devkit operator registers."""
PROBE = {
    "apiVersion": "kubatch.io/v1alpha1",
    "kind": "BatchJob",
    "metadata": {"name": "kubatch-webhook-probe"},
    "spec": {"jobQueue": "probe", "jobDefinition": "probe",
             "retryStrategy": {"evaluateOnExit": [{"onReason": "a*b", "action": "Exit"}]}},
}  # fmt: skip
"""A BatchJob only the webhook rejects (a glob in the middle), created on a dry run: the
webhook answers once the API server reports its denial."""

SIM_ARGS: tuple[str, ...] = (
    "--provisioning-delay", "0.5", "--scale-down-delay", "30", "--heartbeat-interval", "10",
)  # fmt: skip
"""The simulator's settings for interactive runs: nodes in half a second, idle ones kept 30 s."""


def kubatch_argv(*args: str) -> list[str]:
    """``kubatch <args>`` with this interpreter (no reliance on ``PATH``)."""
    return [sys.executable, "-m", "kubatch.cli", *args]


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to the end from synchronous code, even when the calling thread
    already runs an event loop (it then runs in a thread of its own)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


async def apply_crds(kube: Kube, timeout: float = 60.0) -> list[str]:
    """Server-side apply kubatch's CRDs (generated from the API models) and wait until each
    is ``Established``; returns their names. Re-applying is harmless."""
    from kubatch.api.crds import build_crds

    names = []
    for crd in build_crds():
        await kube.apply(CRDS, crd, field_manager="kubatch-devkit")
        names.append(str(crd["metadata"]["name"]))

    async def established() -> bool:
        for name in names:
            conds = ((await kube.get(CRDS, name)).get("status") or {}).get("conditions") or []
            if not any(c.get("type") == "Established" and c.get("status") == "True"
                       for c in conds):  # fmt: skip
                return False
        return True

    await eventually_async(established, what="kubatch's CRDs to be Established",
                           timeout=timeout, every=0.2)  # fmt: skip
    return names


def install_crds(kubeconfig: Path, timeout: float = 60.0) -> list[str]:
    """:func:`apply_crds` from synchronous code, with a login of its own."""

    async def go() -> list[str]:
        async with await Kube.from_environment(kubeconfig) as kube:
            return await apply_crds(kube, timeout)

    return run_sync(go())


@dataclass
class Stack:
    """The simulator and the operator as children of this process, against ``kubeconfig``."""

    kubeconfig: Path
    workdir: Path
    sim: Child
    operator: Child
    metrics_port: int
    env: dict[str, str] = field(default_factory=dict)
    webhook_port: int = 0
    """The operator's webhook port (0: no webhook)."""
    _saved_configuration: dict[str, Any] | None = None

    @classmethod
    def prepare(
        cls,
        kubeconfig: Path,
        workdir: Path,
        *,
        sim_args: Sequence[str] = SIM_ARGS,
        operator_args: Sequence[str] = (),
        metrics_port: int | None = None,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        webhook: bool = True,
    ) -> Stack:
        """Everything but the start: children defined, logs under ``workdir``, free ports for
        the operator's metrics and webhook, the simulator's stats in ``workdir/sim-stats.json``.
        ``webhook=False`` runs the operator without its admission webhook."""
        workdir.mkdir(parents=True, exist_ok=True)
        port = metrics_port or free_port()
        hook_port = free_port() if webhook else 0
        hook_args: tuple[str, ...] = ()
        if webhook:
            hook_args = ("--webhook-port", str(hook_port), "--webhook-addr", "127.0.0.1",
                         "--webhook-register",
                         "--webhook-configuration", WEBHOOK_CONFIGURATION)  # fmt: skip
        full_env = {**(env if env is not None else os.environ),
                    "KUBECONFIG": str(kubeconfig), "PYTHONUNBUFFERED": "1"}  # fmt: skip
        stats = workdir / "sim-stats.json"
        sim = Child(
            "simulator",
            kubatch_argv("sim", "run", *sim_args, "--stats-file", str(stats)),
            workdir / "sim.log",
            full_env,
            cwd,
        )
        operator = Child(
            "operator",
            kubatch_argv("operator", "--metrics-port", str(port), "--strict-calls", *hook_args,
                         *operator_args),
            workdir / "operator.log",
            full_env,
            cwd,
        )  # fmt: skip
        return cls(kubeconfig, workdir, sim, operator, port, full_env, hook_port)

    # -- processes -------------------------------------------------------------------------

    def install_crds(self, timeout: float = 60.0) -> list[str]:
        return install_crds(self.kubeconfig, timeout)

    def start(self, *, wait: bool = True, timeout: float = 60.0) -> None:
        """Start the simulator, then the operator; with ``wait``, until /metrics answers."""
        if not self.sim.alive():
            self.sim.start()
        self.start_operator(wait=wait, timeout=timeout)

    def start_operator(self, *, wait: bool = True, timeout: float = 60.0) -> None:
        """Start the operator (again); while the webhook is off it does not register it."""
        argv = [a for a in self.operator.argv if a != "--webhook-register"]
        if self.webhook_port and self._saved_configuration is None:
            argv.append("--webhook-register")
        self.operator.argv = argv
        self.operator.start()
        if wait:
            self.wait_operator(timeout)

    def wait_operator(self, timeout: float = 60.0) -> None:
        """Until the operator serves its metrics (it does once its cache is rebuilt) and the
        API server calls its webhook."""

        def served() -> bool:
            try:
                self.metrics_text(timeout=2)
            except OSError:
                return False
            return True

        eventually(served, what="the operator's /metrics", timeout=timeout, every=0.3,
                   check=self.check)  # fmt: skip
        if self.webhook_port and self._saved_configuration is None:  # not turned off
            run_sync(self._wait_webhook(timeout))

    async def _wait_webhook(self, timeout: float) -> None:
        async with await Kube.from_environment(self.kubeconfig) as kube:

            async def rejects() -> bool:
                try:
                    await kube.request("POST", BATCHJOBS.path("default"), body=PROBE,
                                       params={"dryRun": "All"})  # fmt: skip
                except ApiError as exc:
                    return "validate.kubatch.io" in exc.body and "onReason" in exc.body
                return False  # created on the dry run: the webhook is not called yet

            await eventually_async(rejects, what="the API server to call the webhook",
                                   timeout=timeout, every=0.3, check=self.check)  # fmt: skip

    def webhook_off(self) -> None:
        """Remove the webhook's configuration (the operator keeps serving; nothing calls it):
        a cluster without the webhook. :meth:`webhook_on` puts it back as it was."""
        saved = run_sync(self._configuration(delete=True))
        if saved is not None:
            self._saved_configuration = saved

    def webhook_on(self) -> None:
        saved = self._saved_configuration
        if saved is None:
            return
        self._saved_configuration = None
        run_sync(self._restore(saved))
        self.wait_operator()

    async def _configuration(self, *, delete: bool) -> dict[str, Any] | None:
        async with await Kube.from_environment(self.kubeconfig) as kube:
            try:
                current = await kube.get(VALIDATINGWEBHOOKCONFIGURATIONS, WEBHOOK_CONFIGURATION)
            except ApiError as exc:
                if exc.not_found:
                    return None
                raise
            if delete:
                await kube.delete(VALIDATINGWEBHOOKCONFIGURATIONS, WEBHOOK_CONFIGURATION)
            return current

    async def _restore(self, saved: dict[str, Any]) -> None:
        meta = {k: v for k, v in saved["metadata"].items() if k in ("name", "labels")}
        async with await Kube.from_environment(self.kubeconfig) as kube:
            try:
                await kube.create(VALIDATINGWEBHOOKCONFIGURATIONS, {**saved, "metadata": meta})
            except ApiError as exc:
                if not exc.conflict:  # 409: a restarted operator registered it already
                    raise

    async def wait_operator_async(self, timeout: float = 60.0) -> None:
        async def served() -> bool:
            try:
                await asyncio.to_thread(self.metrics_text, 2)
            except OSError:
                return False
            return True

        await eventually_async(served, what="the operator's /metrics", timeout=timeout,
                               every=0.3, check=self.check)  # fmt: skip
        if self.webhook_port and self._saved_configuration is None:
            await self._wait_webhook(timeout)

    def check(self) -> None:
        """Raise (with the log's tail) if the simulator or the operator has exited."""
        self.sim.check()
        self.operator.check()

    def stop(self) -> None:
        """Stop the operator, then the simulator (SIGTERM, then SIGKILL), by PID; remove the
        webhook's configuration (nothing answers it any more)."""
        self.operator.stop()
        self.sim.stop()
        if self.webhook_port:
            try:
                run_sync(self._configuration(delete=True))
            except (ApiError, OSError) as exc:
                print(f"kubatch: could not remove ValidatingWebhookConfiguration "
                      f"{WEBHOOK_CONFIGURATION}: {exc}", file=sys.stderr)  # fmt: skip

    def pids(self) -> dict[str, int]:
        return {c.name: c.pid for c in (self.sim, self.operator) if c.pid is not None}

    # -- what they tell ----------------------------------------------------------------------

    def metrics_text(self, timeout: float = 5.0) -> str:
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return str(resp.read().decode())

    def metrics(self) -> Samples:
        return parse_metrics(self.metrics_text())

    @property
    def sim_stats_file(self) -> Path:
        return self.workdir / "sim-stats.json"

    def sim_stats(self) -> dict[str, Any]:
        """The simulator's last stats dump (every two seconds and at exit); {} before."""
        try:
            stats: dict[str, Any] = json.loads(self.sim_stats_file.read_text())
        except (OSError, ValueError):
            return {}
        return stats

    def reclaim_argv(self, compute_environment: str, fraction: float) -> list[str]:
        return kubatch_argv("sim", "reclaim", "--compute-environment", compute_environment,
                            "--fraction", str(fraction))  # fmt: skip

    def reclaim(self, compute_environment: str, fraction: float = 1.0) -> str:
        """Reclaim spot nodes of a CE now (``kubatch sim reclaim``); its output."""
        proc = subprocess.run(
            self.reclaim_argv(compute_environment, fraction), env=self.env, cwd=self.sim.cwd,
            capture_output=True, text=True, timeout=60, check=True,
        )  # fmt: skip
        return proc.stdout
