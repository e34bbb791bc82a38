"""The insight verbs of ``kubectl batch``: ``plan``, ``logs``, ``timeline``, ``top``, and
``terminate`` of one job or many. Thin: the answers are :mod:`kubatch.insight`'s, gathered by
:mod:`kubatch.insight.sources` through the plugin's :class:`~kubatch.plugin.cli.Cluster`.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import yaml

from kubatch import GROUP
from kubatch.adapters.catalogue import load_catalogue
from kubatch.adapters.kube import BATCHJOBS, Kube
from kubatch.core.catalogue import CatalogueError
from kubatch.core.lifecycle import Phase
from kubatch.insight import draw, sources
from kubatch.insight.objects import Obj, phase_of
from kubatch.insight.plan import format_plan, parse_duration
from kubatch.insight.timeline import DEFAULT_CHILDREN, build_timeline, summary
from kubatch.insight.top import format_top
from kubatch.plugin import arrays, views
from kubatch.plugin.views import PluginError

if TYPE_CHECKING:
    from kubatch.plugin.cli import Cluster

Adder = Callable[[argparse.ArgumentParser], None]


def _now() -> float:
    return time.time()


# --------------------------------------------------------------------------- plan


def read_manifests(path: str, stdin: TextIO | None = None) -> list[Obj]:
    """The YAML/JSON documents of ``path`` (``-``: standard input)."""
    try:
        text = (stdin or sys.stdin).read() if path == "-" else Path(path).read_text()
        docs = [d for d in yaml.safe_load_all(text) if d]
    except (OSError, yaml.YAMLError) as err:
        raise PluginError(f"cannot read {path}: {err}") from None
    if not all(isinstance(d, dict) for d in docs):
        raise PluginError(f"{path}: every document must be a Kubernetes object")
    return docs


def split_plan_docs(docs: Sequence[Obj]) -> tuple[Obj, Obj | None]:
    """Pure: the one BatchJob of the file, and the JobDefinition it names if the file has it."""
    jobs = [d for d in docs if d.get("kind") == "BatchJob"]
    if len(jobs) != 1:
        raise PluginError(f"plan needs exactly one BatchJob in the file (found {len(jobs)})")
    wanted = (jobs[0].get("spec") or {}).get("jobDefinition")
    defn = next(
        (
            d
            for d in docs
            if d.get("kind") == "JobDefinition" and (d.get("metadata") or {}).get("name") == wanted
        ),
        None,
    )
    return jobs[0], defn


def cmd_plan(cluster: Cluster, args: argparse.Namespace, out: TextIO) -> int:
    job, defn = split_plan_docs(read_manifests(args.filename))
    try:
        catalogue = load_catalogue(args.catalogue)
    except CatalogueError as err:
        raise PluginError(str(err)) from None
    duration = parse_duration(args.duration) if args.duration else None
    now = _now()
    result = cluster.run(
        sources.plan_job(
            cluster.kube,
            job,
            args.namespace,
            now=now,
            definition_body=defn,
            duration=duration,
            window=args.window,
            catalogue=catalogue,
            server_dry_run=args.server_dry_run,
        )
    )
    if args.output:
        out.write(views.render_output(result.as_dict(), args.output))
    else:
        out.write(format_plan(result, now))
    return 0


# --------------------------------------------------------------------------- logs


def cmd_logs(cluster: Cluster, args: argparse.Namespace, out: TextIO) -> int:
    name, index = arrays.split_child(args.name)
    if index is not None and args.index is not None and index != args.index:
        raise PluginError(f"{args.name} and --index {args.index} name different children")
    index = index if index is not None else args.index
    target = cluster.run(
        sources.log_target(cluster.kube, args.namespace, name, attempt=args.attempt, index=index)
    )
    pod = cluster.run(sources.log_pod(cluster.kube, target))
    print(f"# {target.what}: pod {pod['metadata']['name']}", file=sys.stderr)

    async def stream(kube: Kube, pod: Obj) -> None:
        if args.follow:
            pod = await _wait_started(kube, pod, target.pod_selector)
        async for line in sources.log_lines(
            kube,
            pod,
            container=args.container,
            follow=args.follow,
            tail_lines=args.tail,
            timestamps=args.timestamps,
        ):
            out.write(line + "\n")
            out.flush()

    cluster.run(stream(cluster.kube, pod))
    return 0


async def _wait_started(kube: Kube, pod: Obj, selector: str, every: float = 1.0) -> Obj:
    """With ``-f``: until the pod's container has started (or ended), say once why not."""
    from kubatch.adapters.kube import PODS
    from kubatch.insight.logs import pod_waiting

    said = False
    while (why := pod_waiting(pod)) is not None:
        if not said:
            print(f"# waiting for the pod to start: {why}", file=sys.stderr)
            said = True
        await asyncio.sleep(every)
        meta = pod["metadata"]
        pod = await kube.get(PODS, str(meta["name"]), str(meta["namespace"]))
    return pod


# --------------------------------------------------------------------------- timeline


def cmd_timeline(cluster: Cluster, args: argparse.Namespace, out: TextIO) -> int:
    namespace = None if args.all_namespaces else args.namespace
    src = cluster.run(
        sources.timeline_sources(
            cluster.kube, namespace, names=args.names, queue=args.queue, labels=args.selector
        )
    )
    if not src.jobs:
        print(
            f"No BatchJobs found{'' if namespace is None else f' in {namespace} namespace'}.",
            file=sys.stderr,
        )
        return 0
    title = args.title or (f"kubatch timeline of {namespace}" if namespace else "kubatch timeline")
    tl = build_timeline(src, _now(), children_limit=args.children, title=title)
    for path, render in ((args.svg, draw.timeline_svg), (args.html, draw.timeline_html)):
        if path:
            Path(path).write_text(render(tl, args.image_width))
            print(f"wrote {path}", file=sys.stderr)
    if args.output:
        out.write(views.render_output(summary(tl), args.output))
    elif not (args.svg or args.html) or args.text:
        out.write(draw.timeline_text(tl, args.width))
    return 0


# --------------------------------------------------------------------------- top


def cmd_top(cluster: Cluster, args: argparse.Namespace, out: TextIO) -> int:
    rounds = 0
    while True:
        view = cluster.run(
            sources.top_view(cluster.kube, args.namespace, now=_now(), window=args.window)
        )
        if args.output:
            out.write(views.render_output(view, args.output))
        else:
            if args.watch and out.isatty():
                out.write("\x1b[H\x1b[J")
            out.write(format_top(view))
            for note in view.get("notes") or []:
                out.write(f"note: {note}\n")
        out.flush()
        rounds += 1
        if not args.watch or (args.rounds and rounds >= args.rounds):
            return 0
        time.sleep(args.interval)


# --------------------------------------------------------------------------- terminate


def select_jobs(
    jobs: Sequence[Mapping[str, Any]],
    *,
    names: Sequence[str] = (),
    queue: str | None = None,
    phases: Sequence[str] = (),
) -> tuple[list[Mapping[str, Any]], list[str]]:
    """Pure: the jobs to terminate (named ones, and/or of ``queue``, and/or in ``phases``),
    and the names asked for that do not exist."""
    by_name = {str(j["metadata"]["name"]): j for j in jobs}
    missing = [n for n in names if n not in by_name]
    chosen = [by_name[n] for n in names if n in by_name] if names else list(jobs)
    if queue:
        chosen = [j for j in chosen if (j.get("spec") or {}).get("jobQueue") == queue]
    if phases:
        wanted = {p.lower() for p in phases}
        chosen = [j for j in chosen if phase_of(j).value.lower() in wanted]
    return chosen, missing


def cmd_terminate(cluster: Cluster, args: argparse.Namespace, out: TextIO) -> int:
    if not (args.names or args.selector or args.queue or args.phase or args.all):
        raise PluginError(
            "say which jobs to terminate: names, -l SELECTOR, -q QUEUE, --phase "
            "PHASE, or --all (every job of the namespace)"
        )
    namespace = None if args.all_namespaces else args.namespace
    jobs = cluster.run(cluster.kube.list(BATCHJOBS, namespace=namespace, labels=args.selector))
    chosen, missing = select_jobs(jobs, names=args.names, queue=args.queue, phases=args.phase or ())
    if missing:
        raise PluginError(
            f'batchjob(s) not found in namespace "{args.namespace}": {", ".join(missing)}'
        )
    live = [j for j in chosen if not phase_of(j).terminal]
    done = [j for j in chosen if phase_of(j).terminal]
    for j in done if args.names else []:
        out.write(
            f"batchjob.{GROUP}/{j['metadata']['name']} terminated (already "
            f"{phase_of(j).value}: nothing to stop)\n"
        )
    if args.dry_run:
        for j in live:
            out.write(
                f"batchjob.{GROUP}/{j['metadata']['name']} terminated ({phase_of(j).value}) "
                "(dry run)\n"
            )
        return 0
    patch = {"spec": {"terminate": {"reason": args.reason}}}

    async def all_of(kube: Kube) -> list[str | None]:
        gate = asyncio.Semaphore(16)

        async def one(j: Mapping[str, Any]) -> str | None:
            meta = j["metadata"]
            async with gate:
                try:
                    await kube.patch(BATCHJOBS, meta["name"], patch, meta["namespace"])
                except Exception as err:  # reported per job; the others go on
                    return f"{meta['name']}: {err}"
            return None

        return list(await asyncio.gather(*(one(j) for j in live)))

    errors = [e for e in cluster.run(all_of(cluster.kube)) if e]
    failed = {e.split(":", 1)[0] for e in errors}
    for j in live:
        name = j["metadata"]["name"]
        if name not in failed:
            shown = f"{j['metadata']['namespace']}/{name}" if namespace is None else name
            out.write(f"batchjob.{GROUP}/{shown} terminated\n")
    if not chosen:
        print("No matching BatchJobs.", file=sys.stderr)
    elif not args.names and len(live) != 1:
        print(
            f"{len(live) - len(failed)} terminated, {len(done)} already finished", file=sys.stderr
        )
    for e in errors:
        print(f"error: {e}", file=sys.stderr)
    return 1 if errors else 0


# --------------------------------------------------------------------------- parsers

EXAMPLES = {
    "plan": "kubectl batch plan -f job.yaml --duration 20m",
    "logs": "kubectl batch logs align-cohort:7 --attempt 2 -f",
    "timeline": "kubectl batch timeline --svg run.svg",
    "top": "kubectl batch top --watch",
    "terminate": "kubectl batch terminate -q low-priority --phase Runnable --reason 'freeze'",
}


def add_verbs(sub: Any, common: Adder, output: Adder) -> None:
    """Register the insight verbs on the plugin's sub-parsers."""
    fmt = argparse.RawDescriptionHelpFormatter

    def parser(verb: str, helptext: str, description: str) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = sub.add_parser(
            verb,
            help=helptext,
            description=description,
            formatter_class=fmt,
            epilog=f"example:\n  {EXAMPLES[verb]}",
        )
        common(p)
        return p

    p = parser(
        "plan",
        "dry run: where a job would run, what it would cost, when it would start",
        "For each compute environment of the job's queue: can it ever fit and why not, "
        "the instance type it would most likely land on, its price per hour and the "
        "cost of one attempt; and the estimated start. Nothing is created (the API "
        "server checks the job with dryRun=All).",
    )
    p.add_argument(
        "-f",
        "--filename",
        required=True,
        help="the BatchJob manifest ('-': stdin); a JobDefinition in the same file "
        "is used instead of the cluster's",
    )
    p.add_argument(
        "--duration",
        help="how long one attempt runs (90s, 15m, 1h30m; default: the definition's timeout)",
    )
    p.add_argument(
        "--window",
        type=float,
        default=300.0,
        help="seconds of recent admissions the start estimate uses (default 300)",
    )
    p.add_argument("--catalogue", help="instance catalogue YAML (default: the built-in one)")
    p.add_argument(
        "--no-server-dry-run",
        dest="server_dry_run",
        action="store_false",
        help="do not ask the API server to check the job (dryRun=All)",
    )
    output(p)
    p.set_defaults(func=cmd_plan)

    p = parser(
        "logs",
        "the log of a job's attempt, or of an array child's",
        "The pod of the job's last attempt (or --attempt N, also after retries; for "
        "an array child JOB:I or --index I).",
    )
    p.add_argument("name", metavar="JOB[:INDEX]")
    p.add_argument("--attempt", type=int, help="attempt number (default: the last)")
    p.add_argument("--index", type=int, help="array child index")
    p.add_argument("-f", "--follow", action="store_true", help="follow the log as it grows")
    p.add_argument("-c", "--container", help="container (default: the first)")
    p.add_argument("--tail", type=int, help="only the last N lines")
    p.add_argument("--timestamps", action="store_true", help="prefix each line with its time")
    p.set_defaults(func=cmd_logs)

    p = parser(
        "timeline",
        "when each job waited and ran, where, with retries and interruptions",
        "One row per job (array children grouped under their parent): waiting, "
        "starting, running on on-demand or spot capacity, interruptions and retries "
        "marked. In the terminal, and as an SVG picture or an HTML page.",
    )
    p.add_argument("names", nargs="*", metavar="JOB", help="only these jobs (default: all)")
    p.add_argument("-q", "--queue", help="only jobs of this queue")
    p.add_argument("-l", "--selector", help="only jobs with these labels")
    p.add_argument("-A", "--all-namespaces", action="store_true", help="jobs of every namespace")
    p.add_argument("--svg", metavar="FILE", help="write the timeline as an SVG picture")
    p.add_argument("--html", metavar="FILE", help="write the timeline as an HTML page")
    p.add_argument("--text", action="store_true", help="print it too when writing a file")
    p.add_argument("--width", type=int, default=120, help="terminal columns (default 120)")
    p.add_argument("--image-width", type=int, default=1200, help="SVG width in pixels")
    p.add_argument(
        "--children",
        type=int,
        default=DEFAULT_CHILDREN,
        help=f"array children drawn per array (default {DEFAULT_CHILDREN})",
    )
    p.add_argument("--title", help="the picture's title")
    output(p)
    p.set_defaults(func=cmd_timeline)

    p = parser(
        "top",
        "queues and compute environments now",
        "Per queue: jobs per phase, admissions per minute, the longest wait. Per "
        "compute environment: vCPUs allocated against maxvCpus, capacity, nodes, $/h.",
    )
    p.add_argument(
        "--window",
        type=float,
        default=300.0,
        help="seconds over which admissions are counted (default 300)",
    )
    p.add_argument("-w", "--watch", action="store_true", help="refresh until interrupted")
    p.add_argument("--interval", type=float, default=2.0, help="seconds between refreshes")
    p.add_argument("--rounds", type=int, default=0, help=argparse.SUPPRESS)
    output(p)
    p.set_defaults(func=cmd_top)

    p = parser(
        "terminate",
        "cancel or terminate jobs (spec.terminate): by name, label, queue or phase",
        "Sets spec.terminate on each chosen job that has not finished: "
        "waiting jobs fail at once, running ones are stopped. Choose jobs by name, "
        "and/or -l, -q, --phase (all given must match), or --all.",
    )
    p.add_argument("names", nargs="*", metavar="NAME", help="jobs by name")
    p.add_argument("-l", "--selector", help="jobs with these labels")
    p.add_argument("-q", "--queue", help="jobs of this queue")
    p.add_argument("--phase", action="append", help="jobs in this phase (repeatable)")
    p.add_argument("--all", action="store_true", help="every unfinished job of the namespace")
    p.add_argument("-A", "--all-namespaces", action="store_true", help="in every namespace")
    p.add_argument("--reason", required=True, help="recorded in each job's message")
    p.add_argument("--dry-run", action="store_true", help="list what would be terminated")
    p.set_defaults(func=cmd_terminate)


PHASES = tuple(p.value for p in Phase)
