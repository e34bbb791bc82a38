"""``kubatch operator``: run the operator against the current KUBECONFIG."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from typing import Any


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="kubatch operator", description=__doc__)
    p.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, in-cluster)")
    p.add_argument(
        "-n",
        "--namespace",
        action="append",
        dest="namespaces",
        help="watch BatchJobs/JobDefinitions in this namespace (repeatable; default: all)",
    )
    p.add_argument("--metrics-port", type=int, default=8080, help="/metrics port (0: off)")
    p.add_argument("--metrics-addr", default="127.0.0.1", help="/metrics bind address")
    p.add_argument(
        "--health-port",
        type=int,
        default=0,
        help="/healthz port for probes (0: off); answers once the state is rebuilt",
    )
    p.add_argument("--health-addr", default="127.0.0.1", help="/healthz bind address")
    p.add_argument("--verbose", "-v", action="store_true")
    return p


async def run(args: argparse.Namespace, stop: asyncio.Event | None = None) -> None:
    import kopf

    from kubatch.controller import handlers  # noqa: F401  (registers the handlers)

    memo: Any = kopf.Memo()
    memo.namespaces = args.namespaces or None
    health = getattr(args, "health_port", 0)
    liveness = f"http://{args.health_addr}:{health}/healthz" if health else None
    await kopf.operator(
        liveness_endpoint=liveness,
        standalone=True,
        clusterwide=not args.namespaces,
        namespaces=args.namespaces or [],
        memo=memo,
        stop_flag=stop,
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if args.health_port:  # probes call /healthz every few seconds: no access log line each
        logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    if args.kubeconfig:
        os.environ["KUBECONFIG"] = args.kubeconfig
    os.environ.setdefault("KUBATCH_METRICS_PORT", str(args.metrics_port))
    os.environ.setdefault("KUBATCH_METRICS_ADDR", args.metrics_addr)
    try:
        asyncio.run(run(args))
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
