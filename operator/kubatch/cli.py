"""The ``kubatch`` command: operator, sim, local, demo, bench, crds, batch-api.

Each subcommand imports its implementation lazily so that ``kubatch local up`` does not pay
for kopf, and a missing optional piece fails with a clear message.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def _local(args: argparse.Namespace) -> int:
    from kubatch.local import binaries
    from kubatch.local.plane import LocalPlane, PlaneError

    plane = LocalPlane(Path(args.state_dir) if args.state_dir else None)
    try:
        if args.action == "binaries":
            found = binaries.ensure(allow_build=True)
            for name, path in vars(found).items():
                print(f"{name:24} {path}")
            return 0
        if args.action == "up":
            t0 = time.monotonic()
            state = plane.up(timeout=args.timeout)
            print(f"kubatch local: up in {time.monotonic() - t0:.1f}s", file=sys.stderr)
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
            print(f"{'COMPONENT':26}{'PID':>8}{'PORT':>8}  STATE")
            for name, pid, port, alive in plane.status():
                print(f"{name:26}{pid:>8}{port:>8}  {'running' if alive else 'stopped'}")
            return 0 if plane.healthy(current) else 1
    except (PlaneError, binaries.BinariesError) as exc:
        print(f"kubatch local: error: {exc}", file=sys.stderr)
        return 2
    return 2


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
    local.add_argument("action", choices=["up", "down", "status", "binaries"])
    local.add_argument("--state-dir", help="where the plane keeps its state (default ~/.local/…)")
    local.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for ready")
    local.set_defaults(func=_local)

    for name, module, help_ in (
        ("operator", "kubatch.controller.main", "run the operator against the current KUBECONFIG"),
        ("sim", "kubatch.sim.cli", "simulated node pools (kwok-style) for local runs"),
        ("demo", "kubatch.demo", "the embedded demo"),
        ("crds", "kubatch.api.crds", "generate the CRDs from the pydantic models"),
        ("batch-api", "kubatch.batchapi.server", "serve the AWS Batch API (boto3, aws CLI)"),
    ):
        p = sub.add_parser(name, help=help_, add_help=False)
        p.set_defaults(module=module)

    bench = sub.add_parser("bench", help="benchmarks (write JSON, print a summary)", add_help=False)
    bench.set_defaults(module="bench")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if argv and argv[0] in ("operator", "sim", "demo", "crds", "bench", "batch-api"):
        command, rest = argv[0], argv[1:]
        if command == "bench":
            if not rest or rest[0] not in ("core", "e2e", "sim"):
                print("usage: kubatch bench {core,e2e,sim} [options]", file=sys.stderr)
                return 2
            return _delegate(f"kubatch_bench.{rest[0]}", rest[1:])
        module = {
            "operator": "kubatch.controller.main",
            "sim": "kubatch.sim.cli",
            "demo": "kubatch.demo",
            "crds": "kubatch.api.crds",
            "batch-api": "kubatch.batchapi.server",
        }[command]
        return _delegate(module, rest)
    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
