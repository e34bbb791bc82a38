"""``kubatch operator``: run the operator against the current KUBECONFIG (or in-cluster)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import socket
import sys
from pathlib import Path
from typing import Any

from kubatch.adapters.catalogue import load_catalogue
from kubatch.controller.settings import Election, LeaseTimings, Settings, Timings, WebhookSettings


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="kubatch operator", description=__doc__)
    p.add_argument("--kubeconfig", help="kubeconfig file (default: in-cluster, else $KUBECONFIG)")
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
    p.add_argument(
        "--catalogue",
        type=Path,
        default=None,
        help="YAML instance catalogue extending the built-in one (sizes, GPUs, prices)",
    )
    p.add_argument(
        "--identity",
        default=None,
        help="this replica's name (Events, the leader Lease): unique per replica (the chart "
        "passes the pod's name); default: the host name",
    )
    p.add_argument(
        "--pull-timeout",
        type=float,
        default=600.0,
        help="seconds an attempt whose image cannot be pulled (or container created) waits "
        "before it ends with CannotPullContainerError (the retry strategy decides)",
    )
    p.add_argument(
        "--starting-hold",
        type=float,
        default=5.0,
        help="seconds an admitted job's Starting status waits for its pod to run, so that a "
        "prompt start is one write (Running); a pod that cannot run shows why at once (0: off)",
    )
    p.add_argument(
        "--job-retention",
        type=float,
        default=7200.0,
        help="seconds the Kubernetes Job and pod (and so the logs) of an ended attempt are "
        "kept; its record stays in the BatchJob's status (0: keep for ever)",
    )
    w = p.add_argument_group("validating admission webhook (docs/api.md#admission)")
    w.add_argument("--webhook-port", type=int, default=0, help="HTTPS port of the webhook (0: off)")
    w.add_argument("--webhook-addr", default="0.0.0.0", help="webhook bind address")
    w.add_argument(
        "--webhook-configuration",
        default="kubatch",
        help="the ValidatingWebhookConfiguration whose caBundle the operator keeps",
    )
    w.add_argument(
        "--webhook-secret",
        default="kubatch-webhook-tls",
        help="Secret holding the webhook's CA and certificate, shared by every replica",
    )
    w.add_argument(
        "--webhook-namespace",
        default=None,
        help="namespace of that Secret (default: the operator's own)",
    )
    w.add_argument(
        "--webhook-service",
        default=None,
        help="the Service the API server calls the webhook through (named in the certificate)",
    )
    w.add_argument(
        "--webhook-url",
        default=None,
        help="the URL the API server calls the webhook at instead (local planes: loopback)",
    )
    w.add_argument(
        "--webhook-cert-dir",
        type=Path,
        default=None,
        help="tls.crt and tls.key from cert-manager here: no Secret, no caBundle management",
    )
    w.add_argument(
        "--webhook-register",
        action="store_true",
        help="write the whole ValidatingWebhookConfiguration at start, reached by --webhook-url "
        "(default https://127.0.0.1:PORT): local use, the chart installs its own",
    )
    w.add_argument(
        "--webhook-access-cache",
        type=float,
        default=WebhookSettings().access_cache_seconds,
        metavar="SECONDS",
        help="remember a SubjectAccessReview's 'yes' this long per user and namespace, so a "
        "bulk submission asks once (0: ask for every BatchJob; a 'no' is never remembered)",
    )
    p.add_argument(
        "--strict-calls",
        action="store_true",
        help="fail any Kubernetes API call missing from the declared table (tests, dev)",
    )
    e = p.add_argument_group("leader election (docs/reliability.md#failover)")
    e.add_argument(
        "--leader-elect",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="elect one leader among the replicas through a Lease; the others wait warm "
        "(default: on; --no-leader-elect runs exactly one operator, leading at once)",
    )
    e.add_argument(
        "--leader-election-namespace",
        default=None,
        help="namespace of the Lease (default: $KUBATCH_NAMESPACE, else the service account's "
        "or the kubeconfig context's namespace)",
    )
    e.add_argument("--leader-election-id", default="kubatch-leader", help="the Lease's name")
    defaults = LeaseTimings()
    for flag, value, text in (
        ("--lease-duration", defaults.duration, "a standby waits for a silent leader"),
        ("--renew-deadline", defaults.renew_deadline, "a leader that cannot renew still writes"),
        ("--retry-period", defaults.retry_period, "between two tries to take or renew the Lease"),
    ):
        e.add_argument(flag, type=float, default=value, help=f"seconds {text} ({value:g})")
    p.add_argument("--verbose", "-v", action="store_true")
    return p


def webhook_settings(args: argparse.Namespace) -> WebhookSettings:
    """The webhook's part of the command line."""
    if args.webhook_register and args.webhook_cert_dir is not None:
        raise SystemExit("kubatch operator: --webhook-register needs the operator's own "
                         "certificate, not --webhook-cert-dir")  # fmt: skip
    return WebhookSettings(
        port=args.webhook_port,
        addr=args.webhook_addr,
        configuration=args.webhook_configuration,
        secret=args.webhook_secret,
        namespace=args.webhook_namespace,
        service=args.webhook_service,
        url=args.webhook_url,
        cert_dir=args.webhook_cert_dir,
        register=args.webhook_register,
        access_cache_seconds=max(0.0, args.webhook_access_cache),
    )


def election_from(args: argparse.Namespace) -> Election:
    """The leader election's part of the command line (a clear error for bad timings)."""
    try:
        timings = LeaseTimings(args.lease_duration, args.renew_deadline, args.retry_period)
    except ValueError as exc:
        raise SystemExit(f"kubatch operator: {exc}") from None
    namespace = args.leader_election_namespace or os.environ.get("KUBATCH_NAMESPACE") or None
    return Election(args.leader_elect, namespace, args.leader_election_id, timings)


def settings_from(args: argparse.Namespace) -> Settings:
    """The operator's settings from its command line (reads the catalogue file)."""
    return Settings(
        timings=Timings(pull_timeout=args.pull_timeout, starting_hold=args.starting_hold),
        job_retention=args.job_retention,
        namespaces=tuple(args.namespaces or ()),
        catalogue=load_catalogue(args.catalogue),
        identity=args.identity or socket.gethostname(),
        webhook=webhook_settings(args),
        strict_calls=args.strict_calls,
        election=election_from(args),
    )


async def run(args: argparse.Namespace, stop: asyncio.Event | None = None) -> None:
    if args.kubeconfig:
        # kopf logs in on its own through the client library, which reads $KUBECONFIG when
        # it is imported (by kopf, below): the same file as ours
        os.environ["KUBECONFIG"] = str(args.kubeconfig)
    import kopf

    from kubatch.controller import handlers  # noqa: F401  (registers the handlers)
    from kubatch.metrics import Metrics

    settings = settings_from(args)
    metrics = Metrics()
    if args.metrics_port:
        metrics.start_http_server(args.metrics_port, args.metrics_addr)
    memo: Any = kopf.Memo()
    memo.settings = settings
    memo.metrics = metrics
    memo.kubeconfig = args.kubeconfig
    health = getattr(args, "health_port", 0)
    delay = 1.0
    while True:
        try:
            await kopf.operator(
                liveness_endpoint=f"http://{args.health_addr}:{health}/healthz" if health else None,
                standalone=True,
                clusterwide=not settings.namespaces,
                namespaces=list(settings.namespaces),
                memo=memo,
                stop_flag=stop,
            )
            return  # stopped (a signal or the stop flag)
        except Exception:
            # kopf gives up on some answers of an API server that is restarting (404 for the
            # CRDs until it serves them again): start over, as a restarted container would
            # (its cleanup stood the replica down; its startup builds a new one)
            if stop is not None and stop.is_set():
                raise
            logging.getLogger("kubatch.operator").exception(
                "kopf stopped on an error; starting again in %gs", delay
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if args.health_port:  # probes call /healthz every few seconds: no access log line each
        logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    try:
        asyncio.run(run(args))
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
