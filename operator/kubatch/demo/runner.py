"""The effectful half of ``kubatch demo``: plane, stack, examples, live progress, clean-up.

Starts (or reuses) a local control plane in its own state directory, installs the CRDs, runs
the simulated node pools and the operator as child processes (``kubatch.devkit.stack``),
applies ``examples/`` in order with kubectl, follows the BatchJobs with kubatch's one
list-then-watch, triggers one spot reclaim, terminates the example that is meant to be
terminated, prints a summary, writes the run's timeline (an SVG picture and an HTML page:
``kubatch.insight``) and stops everything it started (by PID) unless ``--keep``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

import yaml

from kubatch.adapters.kube import BATCHJOBS, PODS, ApiError, Kube
from kubatch.api import labels as L
from kubatch.core.lifecycle import Phase
from kubatch.demo.extras import (
    AWS_NAMESPACE,
    Boto3Submission,
    ConsoleProcess,
    RealJobs,
    ensure_namespace,
    wait_until,
)
from kubatch.demo.report import (
    TERMINATE_AFTER_RUNNING_SECONDS,
    Expectation,
    JobView,
    examples_ended,
    expected_outcomes,
    job_view,
    paint,
    progress_line,
    render_summary,
    render_table,
    screen_rows,
    summarize,
)
from kubatch.devkit.process import ChildExited, stop_pid
from kubatch.devkit.promtext import parse_metrics
from kubatch.devkit.stack import Stack

NAMESPACE = "kubatch-demo"
JsonDict = dict[str, Any]


def examples_dir() -> Path | None:
    """The repository's ``examples/`` (kubatch installed editable or run from a checkout)."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        candidate = parent / "examples"
        if (candidate / "30-batch-jobs.yaml").is_file():
            return candidate
    return None


def default_demo_dir() -> Path:
    """Next to (never inside) the default plane of ``kubatch local``, so the two never clash."""
    from kubatch.local.plane import default_state_dir

    return Path(os.environ.get("KUBATCH_DEMO_DIR") or default_state_dir().parent / "demo")


class DemoError(RuntimeError):
    """The demo cannot go on; the message says why."""


class _Interrupted(Exception):
    """SIGTERM while the demo runs (handled like Ctrl-C)."""


class Demo:
    """One run of the demo: owns the plane, the simulator and the operator it starts."""

    def __init__(self, args: argparse.Namespace, out: TextIO = sys.stdout) -> None:
        self.args = args
        self.out = out
        self.color = (not args.no_color) and out.isatty() and not os.environ.get("NO_COLOR")
        self.tty = out.isatty()
        self.state_dir = Path(args.state_dir or default_demo_dir()).resolve()
        self.examples = Path(args.examples) if args.examples else examples_dir()
        self.stack: Stack | None = None
        self.plane: Any = None
        self.kubectl_path = ""
        self.kubeconfig = Path()
        self.t0 = time.monotonic()
        self.reclaimer: subprocess.Popen[str] | None = None
        self.terminated: set[str] = set()
        self.running_since: dict[str, float] = {}
        self.events: list[str] = []
        self.reclaim_reported = False
        self.real: RealJobs | None = None
        self.boto3: Boto3Submission | None = None
        self.console: ConsoleProcess | None = None

    # -- output --------------------------------------------------------------------------------
    def say(self, msg: str) -> None:
        stamp = f"[{time.monotonic() - self.t0:5.1f}s]"
        print(f"{paint(stamp, '2', self.color)} {msg}", file=self.out, flush=True)

    def event(self, msg: str) -> None:
        self.events.append(f"[{time.monotonic() - self.t0:5.1f}s] {msg}")
        if not self.tty:
            self.say(msg)

    # -- steps -----------------------------------------------------------------------------------
    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        cmd = [self.kubectl_path, "--kubeconfig", str(self.kubeconfig), *args]
        proc = subprocess.run(
            cmd, check=False, input=input, capture_output=True, text=True, timeout=120
        )
        if check and proc.returncode != 0:
            raise DemoError(f"kubectl {' '.join(args)} failed: {proc.stderr.strip()}")
        return proc

    def plane_up(self) -> None:
        from kubatch.local import binaries
        from kubatch.local.plane import LocalPlane

        self.say("checking the Kubernetes binaries (cached after the first run)")
        binaries.ensure(allow_build=True)
        self.say(f"starting the local control plane in {self.state_dir}")
        self.plane = LocalPlane(self.state_dir)
        self._stop_leftovers()
        real_node = False
        if self.args.real is not False:
            from kubatch.local import node

            reason = node.unavailable_reason()
            if reason is not None and self.args.real:
                raise DemoError(f"--real: this machine cannot run a real node: {reason}")
            if reason is not None:
                self.say(f"no real node here ({reason}): the simulated pools only")
            real_node = reason is None
        if real_node:
            self.say("a real node too: containerd + runc + kubelet (first time: builds and images)")
        state = self.plane.up(timeout=self.args.plane_timeout, real_node=real_node)
        if state.node is not None:
            self.real = RealJobs(state)
        self.kubeconfig = state.kubeconfig
        self.kubectl_path = state.kubectl
        pids = ", ".join(f"{p.name} pid {p.pid}" for p in state.processes)
        self.say(f"control plane ready at {state.server} ({pids})")

    def _stop_leftovers(self) -> None:
        """Stop what an earlier ``--keep`` run left in this state dir (by PID): the demo always
        starts from a clean cluster (nodes of a stopped sim would hold pods that never run)."""
        if self.plane.state() is None and not (self.state_dir / "demo.json").is_file():
            return
        self.say("stopping the demo kept by an earlier run (--keep) to start clean")
        stop_recorded_children(self.state_dir)
        self.plane.down()

    def start_stack(self) -> None:
        stack = Stack.prepare(self.kubeconfig, self.state_dir / "logs")
        self.stack = stack
        names = stack.install_crds()
        self.say(f"CRDs applied and Established: {', '.join(names)}")
        stack.sim.start()
        stack.operator.start()
        for child in (stack.sim, stack.operator):
            self.say(f"started the {child.name} (pid {child.pid}), log: {child.log}")
        record = {name: {"pid": pid, "exe": sys.executable} for name, pid in stack.pids().items()}
        (self.state_dir / "demo.json").write_text(json.dumps(record))
        try:
            stack.wait_operator(timeout=60)
        except ChildExited as exc:
            raise DemoError(str(exc)) from None
        except AssertionError as exc:
            raise DemoError(f"the operator did not serve its metrics within 60 s ({exc})") from None
        self.say(f"operator ready; metrics at http://127.0.0.1:{stack.metrics_port}/metrics")
        self.console = ConsoleProcess(str(self.kubeconfig), self.state_dir / "logs" / "console.log")
        try:
            url = self.console.start()
        except ChildExited as exc:
            raise DemoError(str(exc)) from None
        if self.console.child is not None and self.console.child.pid is not None:
            record["console"] = {"pid": self.console.child.pid, "exe": sys.executable}
        (self.state_dir / "demo.json").write_text(json.dumps(record))
        self.say(f"web console: {url} (pid {self.console.child and self.console.child.pid})")

    def check_children(self) -> None:
        if self.stack is not None:
            try:
                self.stack.check()
            except ChildExited as exc:
                raise DemoError(str(exc)) from None

    def fresh_namespace(self) -> None:
        ns = NAMESPACE
        if self.kubectl("get", "namespace", ns, check=False).returncode == 0:
            self.say(f"removing the namespace {ns} of an earlier run")
            self.kubectl("delete", "namespace", ns, "--wait=true", "--timeout=90s")
        self.kubectl("create", "namespace", ns)

    def load_examples(self) -> tuple[list[Path], list[JsonDict]]:
        if self.examples is None or not self.examples.is_dir():
            raise DemoError(
                "examples/ not found: run from a kubatch checkout or pass --examples DIR"
            )
        files = sorted(self.examples.glob("*.yaml"))
        docs: list[JsonDict] = []
        for f in files:
            docs += [d for d in yaml.safe_load_all(f.read_text()) if d]
        return files, docs

    def apply_examples(self, files: Sequence[Path]) -> None:
        for f in files:
            out = self.kubectl("apply", "-n", NAMESPACE, "-f", str(f)).stdout.strip()
            self.say(f"applied {f.name}: {len(out.splitlines())} object(s)")

    # -- while the jobs run ----------------------------------------------------------------------
    async def maybe_reclaim(self, kube: Kube, spot_ces: set[str]) -> None:
        if not self.args.reclaim or self.reclaimer is not None or not spot_ces:
            return
        running = await kube.list(PODS, namespace=NAMESPACE, fields="status.phase=Running")
        on_spot = [
            p for p in running
            if ((p.get("spec") or {}).get("nodeSelector") or {}).get(L.COMPUTE_ENVIRONMENT)
            in spot_ces
        ]  # fmt: skip
        if len(on_spot) < 3:
            return
        ce = sorted(spot_ces)[0]
        assert self.stack is not None
        self.reclaimer = subprocess.Popen(  # noqa: ASYNC220 - a child that runs on its own
            self.stack.reclaim_argv(ce, 0.5), env=self.stack.env, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, start_new_session=True,
        )  # fmt: skip
        self.event(f"spot reclaim: half of {ce}'s nodes are being taken back")

    async def maybe_terminate(
        self, kube: Kube, jobs: Sequence[JobView], expected: Mapping[str, Expectation]
    ) -> None:
        now = time.monotonic()
        others_done = all(
            j.phase.terminal for j in jobs if not expected.get(j.name, Expectation(Phase.FAILED))
            .terminate_when_running
        )  # fmt: skip
        for job in jobs:
            exp = expected.get(job.name)
            if exp is None or not exp.terminate_when_running or job.name in self.terminated:
                continue
            if job.phase is Phase.RUNNING:
                self.running_since.setdefault(job.name, now)
            ran = now - self.running_since.get(job.name, now)
            if job.phase.terminal:
                continue
            if ran >= TERMINATE_AFTER_RUNNING_SECONDS or others_done:
                patch = {"spec": {"terminate": {"reason": "kubatch demo: terminate example"}}}
                await kube.patch(BATCHJOBS, job.name, patch, NAMESPACE)
                self.terminated.add(job.name)
                self.event(f"terminating {job.name} (was {job.phase.value} for {ran:.0f}s)")

    def draw(self, jobs: Sequence[JobView], elapsed: float, drawn: int, last: list[Any]) -> int:
        """Redraw the live table (a terminal) or print a progress line when it changed (or
        every 10 s); returns how many terminal rows are on screen now."""
        if self.tty:
            cols = shutil.get_terminal_size().columns
            events = [e[: cols - 1] for e in self.events[-4:]]
            lines = render_table(jobs, elapsed, self.color) + events
            if drawn:
                self.out.write(f"\x1b[{drawn}F\x1b[J")
            self.out.write("\n".join(lines) + "\n")
            self.out.flush()
            return sum(screen_rows(line, cols) for line in lines)
        line = progress_line(jobs, elapsed)
        if line != last[0] or time.monotonic() - last[1] >= 10:
            self.say(line)
            last[:] = [line, time.monotonic()]
        return 0

    async def follow(
        self, expected: Mapping[str, Expectation], spot_ces: set[str]
    ) -> list[JsonDict]:
        """Follow the BatchJobs (one list-then-watch) until every example ended or the timeout;
        returns the last state of each."""
        items: dict[str, JsonDict] = {}

        def on_event(kind: str, obj: JsonDict) -> None:
            name = str(obj["metadata"]["name"])
            if kind == "DELETED":
                items.pop(name, None)
            else:
                items[name] = obj

        start = time.monotonic()
        deadline = start + self.args.timeout
        drawn, last = 0, ["", 0.0]
        async with await Kube.from_environment(self.kubeconfig) as kube:
            watch = asyncio.create_task(kube.watch(BATCHJOBS, on_event, namespace=NAMESPACE))
            try:
                while True:
                    self.check_children()
                    jobs = [job_view(i) for i in items.values()]
                    await self.maybe_terminate(kube, jobs, expected)
                    await self.maybe_reclaim(kube, spot_ces)
                    if self.reclaimer is not None and self.reclaimer.poll() is not None:
                        self.finish_reclaim()
                    drawn = self.draw(jobs, time.monotonic() - start, drawn, last)
                    if examples_ended(items, expected):
                        return list(items.values())
                    if time.monotonic() >= deadline:
                        self.say(f"timed out after {self.args.timeout:.0f}s; jobs still running")
                        return list(items.values())
                    await asyncio.sleep(1.0)
            finally:
                watch.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watch

    def finish_reclaim(self) -> None:
        if self.reclaimer is None or self.reclaim_reported:
            return
        self.reclaim_reported = True
        try:
            out, _ = self.reclaimer.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            self.reclaimer.kill()
            out, _ = self.reclaimer.communicate()
        if self.reclaimer.returncode != 0:
            self.event(f"the reclaim command failed: {out.strip()[-500:]}")
            return
        nodes = [line.split("/", 1)[1] for line in out.splitlines() if line.startswith("reclaimed")]
        self.event(f"spot reclaim took back {len(nodes)} node(s): {', '.join(nodes) or 'none'}")

    # -- the run -----------------------------------------------------------------------------
    def run(self) -> int:
        files, docs = self.load_examples()
        expected = expected_outcomes(docs)
        spot_ces = {
            str(d["metadata"]["name"])
            for d in docs
            if d.get("kind") == "ComputeEnvironment"
            and ((d.get("spec") or {}).get("computeResources") or {}).get("capacityType") == "Spot"
        }
        self.plane_up()
        self.start_stack()
        self.fresh_namespace()
        self.apply_examples(files)
        self.start_extras()
        self.say(f"watching {len(expected)} example jobs (timeout {self.args.timeout:.0f}s)")
        items = asyncio.run(self.follow(expected, spot_ces))
        self.finish_reclaim()
        if self.reclaimer is None and self.args.reclaim and spot_ces:
            self.say("note: no spot reclaim happened (too few jobs ran on spot at once)")
        time.sleep(2.2)  # one more sim stats dump, and the last metrics
        assert self.stack is not None
        try:
            metrics = parse_metrics(self.stack.metrics_text())
        except OSError as exc:
            self.say(f"could not read the operator's metrics: {exc}")
            metrics = {}
        jobs = [job_view(i) for i in items]
        summary = summarize(jobs, metrics, self.stack.sim_stats(), expected)
        print("", file=self.out)
        for line in render_summary(summary, self.color):
            print(line, file=self.out)
        print("", file=self.out, flush=True)
        self.finish_extras()
        self.write_timeline()
        return 0 if summary.ok else 1

    def start_extras(self) -> None:
        """Jobs for real on the real node, and one submission through the AWS Batch API."""
        if self.real is not None:
            self.real.start(self.kubectl)
            self.say(f"[real] 3 jobs run for real on node kubatch-real-node (containerd + runc) "
                     f"in namespace {self.real.namespace}")  # fmt: skip
        if self.args.aws_api:
            ensure_namespace(self.kubectl, AWS_NAMESPACE)
            self.boto3 = Boto3Submission(str(self.kubeconfig), AWS_NAMESPACE, "high-priority")
            self.boto3.start()
            self.say(f"[aws api] one job submitted with boto3 via kubatch batch-api "
                     f"(namespace {AWS_NAMESPACE})")  # fmt: skip

    def finish_extras(self) -> None:
        if self.real is not None:
            real = self.real
            wait_until(lambda: real.finished(self.kubectl), timeout=120)
            print("What ran for real (containerd + runc, not simulated):", file=self.out)
            for line in real.report():
                print(f"  {line}", file=self.out)
        if self.boto3 is not None:
            print("Through the AWS Batch API (boto3, unchanged client code):", file=self.out)
            for line in self.boto3.join(timeout=120):
                print(f"  {line}", file=self.out)
        print("", file=self.out, flush=True)

    def timeline_path(self) -> Path:
        """``--timeline``, else next to the state dir (which clean-up removes)."""
        if self.args.timeline:
            return Path(self.args.timeline).resolve()
        return self.state_dir.parent / f"{self.state_dir.name}-timeline.svg"

    def write_timeline(self) -> None:
        """The timeline of this run (``kubectl batch timeline``'s picture): an SVG file and
        an HTML page beside it; their paths are printed."""
        from kubatch.insight import draw, sources
        from kubatch.insight.timeline import build_timeline

        async def gather() -> Any:
            async with await Kube.from_environment(self.kubeconfig) as kube:
                return await sources.timeline_sources(kube, NAMESPACE)

        svg = self.timeline_path()
        page = svg.with_suffix(".html")
        try:
            title = f"kubatch demo: the examples in {NAMESPACE}"
            timeline = build_timeline(asyncio.run(gather()), time.time(), title=title)
            svg.parent.mkdir(parents=True, exist_ok=True)
            svg.write_text(draw.timeline_svg(timeline))
            page.write_text(draw.timeline_html(timeline))
        except (OSError, ApiError) as exc:
            self.say(f"could not write the timeline: {exc}")
            return
        self.say(f"timeline of this run: {svg} (a picture) and {page}")

    def print_keep(self) -> None:
        k = f"{self.kubectl_path} --kubeconfig {self.kubeconfig}"
        port = self.stack.metrics_port if self.stack else 0
        lines = [
            "Everything keeps running (--keep). Try:",
            f"  export KUBECONFIG={self.kubeconfig}",
            f"  {k} get batch -n {NAMESPACE}",
            f"  {k} get bj -n {NAMESPACE} -o wide",
            f"  {k} get nodes -L kubatch.io/compute-environment,node.kubernetes.io/instance-type",
            f"  curl -s http://127.0.0.1:{port}/metrics | grep ^kubatch_",
            f"Web console: {self.console.url if self.console else '(not started)'}",
            f"Logs: {self.state_dir / 'logs'}",
            "Stop it all:",
            f"  kubatch demo --down --state-dir {self.state_dir}",
        ]
        print("\n".join(lines), file=self.out, flush=True)

    def cleanup(self, failed: bool) -> None:
        if self.reclaimer is not None and self.reclaimer.poll() is None:
            self.reclaimer.kill()
            self.reclaimer.wait()
        if self.console is not None:
            self.console.stop()
        if self.stack is not None:
            self.stack.stop()
            self.say("stopped the console, the operator and the simulator")
        if self.plane is not None:
            if failed and (self.state_dir / "logs").is_dir():
                keep = Path(tempfile.mkdtemp(prefix="kubatch-demo-logs-"))
                shutil.copytree(self.state_dir / "logs", keep / "logs")
                self.say(f"logs kept in {keep / 'logs'}")
            n = self.plane.down()
            self.say(f"stopped the control plane ({n} process(es)); removed {self.state_dir}")


def stop_recorded_children(state_dir: Path) -> int:
    """Stop the simulator/operator recorded in ``state_dir/demo.json`` (by PID, checked)."""
    path = state_dir / "demo.json"
    if not path.is_file():
        return 0
    try:
        record = json.loads(path.read_text())
    except ValueError:
        record = {}
    stopped = sum(stop_pid(int(i["pid"]), str(i["exe"])) for i in record.values())
    path.unlink(missing_ok=True)
    return stopped


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="kubatch demo", description="the whole of kubatch on this "
                                "machine, in about a minute")  # fmt: skip
    p.add_argument("--keep", action="store_true", help="leave plane, sim and operator running")
    p.add_argument("--down", action="store_true", help="stop a demo kept with --keep, and exit")
    p.add_argument("--state-dir", help="where the demo's plane lives (default: next to "
                   "`kubatch local`'s, or $KUBATCH_DEMO_DIR)")  # fmt: skip
    p.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for the jobs")
    p.add_argument("--plane-timeout", type=float, default=180.0, help=argparse.SUPPRESS)
    p.add_argument("--reclaim", action=argparse.BooleanOptionalAction, default=True,
                   help="reclaim half of the spot pool's nodes mid-run (default: on)")  # fmt: skip
    p.add_argument("--real", action=argparse.BooleanOptionalAction, default=None,
                   help="run a few jobs for real on a real node (default: where the machine "
                   "can run one)")  # fmt: skip
    p.add_argument("--aws-api", action=argparse.BooleanOptionalAction, default=True,
                   help="submit one job with boto3 through kubatch batch-api")  # fmt: skip
    p.add_argument("--no-color", action="store_true", help="plain output")
    p.add_argument("--examples", help="directory of example manifests (default: the repo's)")
    p.add_argument("--timeline", metavar="FILE", help="where to write the run's timeline (SVG; "
                   "an HTML page beside it; default: next to the state dir)")  # fmt: skip
    return p


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    def handler(signum: int, frame: Any) -> None:
        raise _Interrupted()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    if args.down:
        from kubatch.local.plane import LocalPlane

        state_dir = Path(args.state_dir or default_demo_dir()).resolve()
        n = stop_recorded_children(state_dir)
        m = LocalPlane(state_dir).down()
        print(f"kubatch demo: stopped {n} demo process(es) and {m} plane process(es)")
        return 0
    demo = Demo(args)
    code = 1
    failed = True
    with _sigterm_as_interrupt():
        try:
            code = demo.run()
            failed = code != 0
        except (KeyboardInterrupt, _Interrupted):
            demo.say("interrupted")
            code = 130
        except DemoError as exc:
            demo.say(f"error: {exc}")
            code = 2
        except Exception as exc:
            from kubatch.local.binaries import BinariesError
            from kubatch.local.plane import PlaneError

            if not isinstance(exc, PlaneError | BinariesError):
                raise
            demo.say(f"error: {exc}")
            code = 2
        finally:
            if args.keep and demo.plane is not None and code in (0, 1):
                demo.print_keep()
            else:
                previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
                try:
                    demo.cleanup(failed)
                finally:
                    signal.signal(signal.SIGINT, previous)
    return code
