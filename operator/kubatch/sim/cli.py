"""``kubatch sim``: run simulated node pools against the current KUBECONFIG, or reclaim spot nodes.

kubatch sim run [--provisioning-delay S] [--scale-down-delay S] [--reclaim-rate-per-hour R]
                [--catalogue FILE] [--nodes-file FILE] [--heartbeat-interval S] [--seed N]
kubatch sim reclaim --compute-environment NAME --fraction F
kubatch sim catalogue            # print the instance catalogue in use
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import random
import signal
import sys
import time
from dataclasses import asdict
from pathlib import Path

from kubatch.adapters.catalogue import load_catalogue
from kubatch.adapters.kube import Kube
from kubatch.sim.engine import SimConfig, Simulator
from kubatch.sim.reclaim import reclaim_from_cluster


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="kubatch sim", description=__doc__.split("\n")[0])
    p.add_argument("--kubeconfig", type=Path, default=None, help="default: $KUBECONFIG")
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="serve ComputeEnvironments until SIGINT/SIGTERM")
    run.add_argument("--provisioning-delay", type=float, default=1.0, metavar="SECONDS")
    run.add_argument("--scale-down-delay", type=float, default=30.0, metavar="SECONDS")
    run.add_argument("--reclaim-rate-per-hour", type=float, default=0.0, metavar="RATE",
                     help="spot reclaims per spot node per hour (Poisson)")  # fmt: skip
    run.add_argument("--heartbeat-interval", type=float, default=20.0, metavar="SECONDS")
    run.add_argument("--start-delay", type=float, default=0.0, metavar="SECONDS",
                     help="time from binding to Running")  # fmt: skip
    run.add_argument("--catalogue", type=Path, default=None, help="YAML instance catalogue")
    run.add_argument("--nodes-file", type=Path, default=None, help="YAML nodes to pre-create")
    run.add_argument(
        "--no-scaling",
        action="store_true",
        help="do not watch ComputeEnvironments (only nodes from --nodes-file)",
    )
    run.add_argument("--workers", type=int, default=16)
    run.add_argument("--seed", type=int, default=None)
    run.add_argument(
        "--stats-file",
        type=Path,
        default=None,
        help="write stats as JSON here every few seconds and at exit",
    )
    run.add_argument("--delete-nodes-on-exit", action="store_true")
    run.add_argument(
        "--no-logs",
        action="store_true",
        help="do not serve simulated container logs (kubectl logs) on loopback",
    )

    rec = sub.add_parser("reclaim", help="reclaim a fraction of a CE's spot nodes now")
    rec.add_argument("--compute-environment", required=True)
    rec.add_argument("--fraction", type=float, required=True)
    rec.add_argument("--seed", type=int, default=None)

    cat = sub.add_parser("catalogue", help="print the instance catalogue")
    cat.add_argument("--catalogue", type=Path, default=None)
    return p


async def _run(args: argparse.Namespace) -> int:
    config = SimConfig(
        provisioning_delay=args.provisioning_delay,
        scale_down_delay=args.scale_down_delay,
        reclaim_rate_per_hour=args.reclaim_rate_per_hour,
        heartbeat_interval=args.heartbeat_interval,
        start_delay=args.start_delay,
        catalogue=load_catalogue(args.catalogue),
        nodes_file=args.nodes_file,
        manage_compute_environments=not args.no_scaling,
        seed=args.seed,
        workers=args.workers,
        serve_logs=not args.no_logs,
    )
    sim = Simulator(args.kubeconfig, config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await sim.start()
    logging.getLogger("kubatch.sim").info("simulator running; %d nodes", sim.stats().nodes)

    def dump() -> None:
        if args.stats_file:
            tmp = args.stats_file.with_suffix(".tmp")
            tmp.write_text(json.dumps(asdict(sim.stats()), indent=2))
            tmp.replace(args.stats_file)

    try:
        while not stop.is_set():
            dump()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=2.0)
    finally:
        dump()
        await sim.stop(delete_nodes=args.delete_nodes_on_exit)
    print(json.dumps(asdict(sim.stats()), indent=2))
    return 0


async def _reclaim(args: argparse.Namespace) -> int:
    kube = await Kube.from_environment(args.kubeconfig)
    try:
        names = await reclaim_from_cluster(
            kube, args.compute_environment, args.fraction, random.Random(args.seed), time.time()
        )
    finally:
        await kube.close()
    for n in names:
        print(f"reclaimed node/{n}")
    if not names:
        print(f"no spot nodes to reclaim in compute environment {args.compute_environment}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if args.command == "catalogue":
        for t in load_catalogue(args.catalogue):
            print(
                f"{t.name:12} vcpus={t.vcpus:<3} memory={t.memory_mib // 1024}Gi gpus={t.gpus} "
                f"on-demand=${t.on_demand_price:.3f}/h spot=${t.spot_price:.3f}/h"
            )
        return 0
    if not 0 <= getattr(args, "fraction", 0) <= 1:
        print("--fraction must be between 0 and 1", file=sys.stderr)
        return 2
    runner = _run if args.command == "run" else _reclaim
    return asyncio.run(runner(args))


if __name__ == "__main__":
    raise SystemExit(main())
