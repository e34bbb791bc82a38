"""The ``kubatch`` command: operator, sim, local, demo, bench, crds, batch-api, console.

Each subcommand imports its implementation lazily so that ``kubatch local up`` does not pay
for kopf, and a missing optional piece fails with a clear message.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path


def _local_images(args: argparse.Namespace) -> int:
    """``kubatch local images``: build (or find in the cache) every image of the real node."""
    from kubatch.local import binaries, images, node

    reason = node.unavailable_reason()
    if reason:
        print(f"kubatch local: no real node here ({reason}); no images to build")
        return 0 if args.if_supported else 2
    built = [images.pause_image(binaries.ensure_node(allow_build=True).pause)]
    built.append(images.busybox_image())
    if not args.no_operator:
        built.append(images.operator_image(Path(args.context).resolve()))
    for image in built:
        print(f"{image.name:48} {image.archive}")
    return 0


def _local_install(args: argparse.Namespace, plane: object) -> int:
    """``kubatch local install``: the chart in-cluster on the real node, with the local image."""
    from kubatch.local import chart
    from kubatch.local.plane import LocalPlane

    assert isinstance(plane, LocalPlane)
    state = plane.state()
    if state is None or not plane.healthy(state):
        print("kubatch local: no running plane: kubatch local up --real-node", file=sys.stderr)
        return 2
    image = chart.build_and_import(state, Path(args.context).resolve())
    done = chart.install(
        state, Path(args.chart).resolve(), image, release=args.release, namespace=args.namespace,
        take_ownership=args.take_ownership,
    )  # fmt: skip
    print(f"kubatch local: the operator runs in-cluster ({done.namespace}/{done.release})")
    print(f"  kubectl --kubeconfig {state.kubeconfig} -n {done.namespace} get pods")
    print(f"  curl -s {done.metrics_url} | grep ^kubatch_")
    return 0


def _local(args: argparse.Namespace) -> int:
    from kubatch.local import binaries, chart, containerd, images, node, packages
    from kubatch.local.plane import LocalPlane, PlaneError

    plane = LocalPlane(Path(args.state_dir) if args.state_dir else None)
    try:
        if args.action == "binaries":
            found = binaries.ensure(allow_build=True)
            for name, path in vars(found).items():
                print(f"{name:24} {path}")
            if args.real_node:
                reason = node.unavailable_reason()
                if reason:
                    print(f"kubatch local: no kubelet needed here ({reason})")
                    return 0
                for name, path in vars(binaries.ensure_node(allow_build=True)).items():
                    print(f"{name:24} {path}")
            return 0
        if args.action == "images":
            return _local_images(args)
        if args.action == "install":
            return _local_install(args, plane)
        if args.action == "up":
            t0 = time.monotonic()
            state = plane.up(timeout=args.timeout, real_node=args.real_node)
            print(f"kubatch local: up in {time.monotonic() - t0:.1f}s", file=sys.stderr)
            if state.node is not None:
                print(
                    f"kubatch local: real node {state.node.name} with images "
                    f"{', '.join(state.node.images)}",
                    file=sys.stderr,
                )
            print(
                f"kubatch local: try  kubectl --kubeconfig {state.kubeconfig} get --raw /version",
                file=sys.stderr,
            )
            print(state.kubeconfig)
            return 0
        if args.action == "down":
            n = plane.down()
            print(f"kubatch local: stopped {n} process(es); state removed from {plane.state_dir}")
            return 0
        if args.action == "status":
            current = plane.state()
            if current is None:
                print(f"no local plane at {plane.state_dir}")
                return 1
            print(f"state dir   {plane.state_dir}")
            print(f"kubeconfig  {current.kubeconfig}")
            print(f"server      {current.server}")
            if current.node is not None:
                print(f"real node   {current.node.name} at {current.node.ip} ({current.node.dir})")
            print(f"{'COMPONENT':26}{'PID':>8}{'PORT':>8}  STATE")
            for name, pid, port, alive in plane.status():
                print(f"{name:26}{pid:>8}{port:>8}  {'running' if alive else 'stopped'}")
            return 0 if plane.healthy(current) else 1
    except (
        PlaneError,
        binaries.BinariesError,
        images.ImageError,
        packages.PackagesError,
        node.NodeError,
        containerd.ContainerdError,
        chart.ChartError,
    ) as exc:
        print(f"kubatch local: error: {exc}", file=sys.stderr)
        return 2
    return 2


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _delegate(module: str, argv: list[str]) -> int:
    import importlib

    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        print(f"kubatch: this command is not available ({exc})", file=sys.stderr)
        return 2
    result: int = mod.main(argv)
    return result


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kubatch", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    local = sub.add_parser("local", help="the local Kubernetes control plane")
    local.add_argument(
        "action",
        choices=["up", "down", "status", "binaries", "images", "install"],
        help="up/down/status: the plane; binaries: obtain the Kubernetes binaries; images: build "
        "the real node's images (pause, busybox, the operator's Dockerfile); install: the Helm "
        "chart in-cluster on the real node",
    )
    local.add_argument("--state-dir", help="where the plane keeps its state (default ~/.local/…)")
    local.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for ready")
    local.add_argument(
        "--real-node",
        action="store_true",
        help="up: also a real node (containerd + kubelet, needs root and cgroup v1); "
        "binaries: also the kubelet and pause",
    )
    local.add_argument("--context", default=".", help="images/install: the Dockerfile's directory")
    local.add_argument("--no-operator", action="store_true", help="images: not the operator's")
    local.add_argument(
        "--if-supported", action="store_true", help="images: exit 0 where no real node can run"
    )
    local.add_argument("--chart", default="helm/kubatch", help="install: the chart's directory")
    local.add_argument("--release", default="kubatch", help="install: the Helm release")
    local.add_argument("--namespace", default="kubatch-system", help="install: its namespace")
    local.add_argument(
        "--take-ownership",
        action="store_true",
        help="install: adopt CRDs installed by a 0.1.x chart (crds/ folder), once",
    )
    local.set_defaults(func=_local)

    for name, module, help_ in (
        ("operator", "kubatch.controller.main", "run the operator against the current KUBECONFIG"),
        ("sim", "kubatch.sim.cli", "simulated node pools (kwok-style) for local runs"),
        ("demo", "kubatch.demo", "the embedded demo"),
        ("crds", "kubatch.api.crds", "generate the CRDs from the pydantic models"),
        ("batch-api", "kubatch.batchapi.server", "serve the AWS Batch API (boto3, aws CLI)"),
        ("console", "kubatch.console.server", "the web console (queues, jobs, why, logs)"),
    ):
        p = sub.add_parser(name, help=help_, add_help=False)
        p.set_defaults(module=module)

    bench = sub.add_parser("bench", help="benchmarks (write JSON, print a summary)", add_help=False)
    bench.set_defaults(module="bench")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if argv and argv[0] in ("operator", "sim", "demo", "crds", "bench", "batch-api", "console"):
        command, rest = argv[0], argv[1:]
        if command == "bench":
            if not rest or rest[0] not in ("core", "e2e", "scale", "sim", "chaos"):
                print("usage: kubatch bench {core,e2e,scale,sim,chaos} [options]", file=sys.stderr)
                return 2
            # SIGTERM (timeout, CI) unwinds like Ctrl-C: the benchmark stops what it started
            signal.signal(signal.SIGTERM, _interrupt)
            return _delegate(f"kubatch_bench.{rest[0]}", rest[1:])
        module = {
            "operator": "kubatch.controller.main",
            "sim": "kubatch.sim.cli",
            "demo": "kubatch.demo",
            "crds": "kubatch.api.crds",
            "batch-api": "kubatch.batchapi.server",
            "console": "kubatch.console.server",
        }[command]
        return _delegate(module, rest)
    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
