"""``kubectl batch``: the kubectl plugin of kubatch (the ``kubectl-batch`` executable).

Verbs: ``submit``, ``ls``, ``rerun``, ``why``, ``queues``, ``ces`` here; ``plan``, ``logs``,
``timeline``, ``top`` and ``terminate`` in :mod:`kubatch.plugin.verbs`. Tables look like
kubectl's; ``-o json|yaml`` prints the objects (or the answer) instead. Honours
``KUBECONFIG``, ``--kubeconfig``, ``--context``, ``-n/--namespace`` and ``--as``/``--as-group``
(impersonation) like kubectl. The pure halves are :mod:`kubatch.plugin.views` and
:mod:`kubatch.insight`; this module is the thin I/O around them.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable, Coroutine, Sequence
from datetime import UTC, datetime
from typing import Any, TextIO, TypeVar

import aiohttp

from kubatch import GROUP
from kubatch.adapters.kube import (
    BATCHJOBS,
    COMPUTEENVIRONMENTS,
    CONFIGMAPS,
    JOBDEFINITIONS,
    JOBQUEUES,
    NODES,
    ApiError,
    Kube,
    Resource,
)
from kubatch.core.lifecycle import Phase
from kubatch.insight.objects import InsightError
from kubatch.insight.why import explain, format_explanation
from kubatch.plugin import arrays, verbs, views
from kubatch.plugin.views import Obj, PluginError

T = TypeVar("T")
KINDS: dict[str, Resource] = {
    "BatchJob": BATCHJOBS,
    "JobQueue": JOBQUEUES,
    "ComputeEnvironment": COMPUTEENVIRONMENTS,
    "JobDefinition": JOBDEFINITIONS,
    "Node": NODES,
    "ConfigMap": CONFIGMAPS,
}


# --------------------------------------------------------------------------- I/O: the cluster


class Cluster:
    """The four kinds through kubatch's one Kubernetes client (``kubatch.adapters.kube``),
    driven from this synchronous command by an event loop of its own."""

    def __init__(
        self,
        kubeconfig: str | None,
        context: str | None,
        *,
        as_user: str | None = None,
        as_groups: Sequence[str] = (),
    ) -> None:
        path = kubeconfig or os.environ.get("KUBECONFIG") or os.path.expanduser("~/.kube/config")
        self._runner = asyncio.Runner()
        try:
            self._login = self._runner.run(Kube.from_environment(kubeconfig, context=context))
        except Exception as err:  # the loader raises ConfigException, OSError, KeyError, ...
            self._runner.close()
            raise PluginError(f"cannot load kubeconfig {path}: {err}") from err
        self.kube = self._login
        if as_user:
            try:
                self.kube = self._login.impersonating(as_user, groups=as_groups)
            except ValueError as err:
                self.close()
                raise PluginError(str(err)) from err
        elif as_groups:
            self.close()
            raise PluginError("--as-group needs --as (the user to act as)")
        self.default_namespace = self._login.namespace

    def close(self) -> None:
        self._runner.run(self._login.close())
        self._runner.close()

    def run(self, call: Coroutine[Any, Any, T]) -> T:
        """Run one coroutine of kubatch's client (or of ``kubatch.insight.sources``) to its
        end; API and connection errors become :class:`PluginError`."""
        return self._call(call)

    def _call(self, call: Coroutine[Any, Any, T]) -> T:
        try:
            return self._runner.run(call)
        except ApiError as err:
            if err.not_found:
                raise LookupError(err.message) from err
            raise PluginError(f"{err.status} {err.reason}: {err.message}") from err
        except (aiohttp.ClientError, OSError) as err:
            raise PluginError(f"cannot reach the API server at {self.kube.host}: {err}") from err

    def get(self, kind: str, name: str, namespace: str | None = None) -> Obj | None:
        try:
            return self._call(self.kube.get(KINDS[kind], name, namespace))
        except LookupError:
            return None

    def list(self, kind: str, namespace: str | None = None, labels: str | None = None) -> list[Obj]:
        items = self._call(self.kube.list(KINDS[kind], namespace=namespace, labels=labels))
        return sorted(
            items, key=lambda o: (o["metadata"].get("namespace") or "", o["metadata"]["name"])
        )

    def create_batch_job(self, namespace: str, body: Obj) -> Obj:
        return self._call(self.kube.create(BATCHJOBS, body, namespace))

    def patch_batch_job(self, namespace: str, name: str, patch: Obj) -> Obj:
        return self._call(self.kube.patch(BATCHJOBS, name, patch, namespace))


# --------------------------------------------------------------------------- verbs


def _now() -> datetime:
    return datetime.now(UTC)


def _print_items(
    items: list[Obj],
    args: argparse.Namespace,
    out: TextIO,
    table: Callable[[], str],
    what: str,
) -> None:
    if args.output:
        out.write(views.render_output(views.as_list(items), args.output))
    elif not items:
        where = (
            ""
            if getattr(args, "all_namespaces", False) or what != "batchjobs"
            else f" in {args.namespace} namespace"
        )
        print(f"No resources found{where}.", file=sys.stderr)
    else:
        out.write(table())


def cmd_submit(cluster: Cluster, args: argparse.Namespace, out: TextIO) -> int:
    definition = cluster.get("JobDefinition", args.job_definition, args.namespace)
    if definition is None:
        raise PluginError(
            f'jobdefinition "{args.job_definition}" not found in namespace "{args.namespace}"'
        )
    if cluster.get("JobQueue", args.queue) is None:
        raise PluginError(f'jobqueue "{args.queue}" not found')
    params = dict(views.parse_parameter(p) for p in args.parameter or [])
    body = views.build_batch_job(
        args.job_definition,
        args.queue,
        namespace=args.namespace,
        name=args.name,
        parameters=params,
        array_size=args.array_size,
        parallelism=args.parallelism,
        depends_on=[views.parse_depends_on(d) for d in args.depends_on or []],
        share_identifier=args.share_identifier,
    )
    created = body if args.dry_run else cluster.create_batch_job(args.namespace, body)
    if args.output:
        out.write(views.render_output(created, args.output))
    else:
        name = (
            created["metadata"].get("name")
            or created["metadata"].get("generateName", "") + "<generated>"
        )
        suffix = " (dry run)" if args.dry_run else ""
        out.write(f"batchjob.{GROUP}/{name} submitted{suffix}\n")
    return 0


def cmd_ls_array(cluster: Cluster, args: argparse.Namespace, out: TextIO) -> int:
    job = cluster.get("BatchJob", args.array, args.namespace)
    if job is None:
        raise PluginError(f'batchjob "{args.array}" not found in namespace "{args.namespace}"')
    if not job.get("spec", {}).get("arrayProperties"):
        raise PluginError(f'batchjob "{args.array}" is not an array')
    page, matched = arrays.filter_rows(_array_rows(cluster, job), args.phase, args.offset,
                                       args.limit)  # fmt: skip
    if args.output:
        out.write(views.render_output(views.as_list(page), args.output))
        return 0
    if not page:
        print("No children found.", file=sys.stderr)
        return 0
    out.write(arrays.children_table(page))
    if matched > args.offset + len(page):
        nxt = args.offset + len(page)
        out.write(f"... {matched - nxt} more (--offset {nxt})\n")
    return 0


def cmd_rerun(cluster: Cluster, args: argparse.Namespace, out: TextIO) -> int:
    job = cluster.get("BatchJob", args.name, args.namespace)
    if job is None:
        raise PluginError(f'batchjob "{args.name}" not found in namespace "{args.namespace}"')
    if not job.get("spec", {}).get("arrayProperties"):
        raise PluginError(f'batchjob "{args.name}" is not an array')
    if not args.failed:
        raise PluginError("say what to re-run: --failed")
    failed = [int(r["index"]) for r in _array_rows(cluster, job) if r["phase"] == "Failed"]
    existing = [j["metadata"]["name"] for j in cluster.list("BatchJob", args.namespace)]
    name = args.new_name or arrays.rerun_name(args.name, existing)
    body = arrays.rerun_body(job, failed, name)
    created = body if args.dry_run else cluster.create_batch_job(args.namespace, body)
    if args.output:
        out.write(views.render_output(created, args.output))
    else:
        what = f"{len(failed)} failed child(ren)" if len(failed) != 1 else "1 failed child"
        suffix = " (dry run)" if args.dry_run else ""
        out.write(f"batchjob.{GROUP}/{name} re-runs {what} of {args.name}{suffix}\n")
    return 0


def cmd_ls(cluster: Cluster, args: argparse.Namespace, out: TextIO) -> int:
    if args.array:
        return cmd_ls_array(cluster, args, out)
    items = cluster.list("BatchJob", None if args.all_namespaces else args.namespace)
    if args.queue:
        items = [j for j in items if j.get("spec", {}).get("jobQueue") == args.queue]
    if args.phase:
        wanted = {p.lower() for p in args.phase}
        items = [
            j
            for j in items
            if (views.status_of(j).get("phase") or Phase.SUBMITTED.value).lower() in wanted
        ]
    now = _now()
    headers = (["NAMESPACE"] if args.all_namespaces else []) + views.JOB_HEADERS
    _print_items(
        items,
        args,
        out,
        lambda: views.format_table(
            headers, views.job_rows(items, now, all_namespaces=args.all_namespaces)
        ),
        "batchjobs",
    )
    return 0


def _array_rows(cluster: Cluster, job: Obj) -> list[Obj]:
    meta = job["metadata"]
    cms = cluster.list("ConfigMap", meta.get("namespace"), arrays.record_selector(meta["name"]))
    return arrays.child_rows(cms)


def cmd_why(cluster: Cluster, args: argparse.Namespace, out: TextIO) -> int:
    name, index = arrays.split_child(args.name)
    if index is not None:
        parent = cluster.get("BatchJob", name, args.namespace)
        if parent is None:
            raise PluginError(f'batchjob "{name}" not found in namespace "{args.namespace}"')
        if not parent.get("spec", {}).get("arrayProperties"):
            raise PluginError(f'batchjob "{name}" is not an array')
        rows = {int(r["index"]): r for r in _array_rows(cluster, parent)}
        row = rows.get(index)
        if args.output:
            out.write(views.render_output(row or {"index": index}, args.output))
        else:
            out.write(arrays.explain_child(parent, row, index))
        return 0
    job = cluster.get("BatchJob", args.name, args.namespace)
    if job is None:
        raise PluginError(f'batchjob "{args.name}" not found in namespace "{args.namespace}"')
    spec = job.get("spec", {})
    queue = cluster.get("JobQueue", str(spec.get("jobQueue", "")))
    ces: dict[str, Obj] = {}
    for o in (queue or {}).get("spec", {}).get("computeEnvironmentOrder") or []:
        name = str(o.get("computeEnvironment"))
        ce = cluster.get("ComputeEnvironment", name)
        if ce is not None:
            ces[name] = ce
    definition = None
    if not views.status_of(job).get("jobDefinition"):
        definition = cluster.get(
            "JobDefinition", str(spec.get("jobDefinition", "")), args.namespace
        )
    unmanaged = any(c.get("spec", {}).get("type") == "Unmanaged" for c in ces.values())
    nodes = cluster.list("Node") if unmanaged else []
    info = explain(job, queue, ces, definition, nodes)
    out.write(views.render_output(info, args.output) if args.output else format_explanation(info))
    return 0


def cmd_queues(cluster: Cluster, args: argparse.Namespace, out: TextIO) -> int:
    items = cluster.list("JobQueue")
    items.sort(key=lambda q: (-int(q.get("spec", {}).get("priority", 0)), q["metadata"]["name"]))
    return _table_of(items, args, out, views.QUEUE_HEADERS, views.queue_rows, "jobqueues")


def cmd_ces(cluster: Cluster, args: argparse.Namespace, out: TextIO) -> int:
    items = cluster.list("ComputeEnvironment")
    return _table_of(items, args, out, views.CE_HEADERS, views.ce_rows, "ces")


def _table_of(
    items: list[Obj],
    args: argparse.Namespace,
    out: TextIO,
    headers: Sequence[str],
    rows: Callable[[list[Obj], datetime], list[list[object]]],
    what: str,
) -> int:
    now = _now()
    _print_items(items, args, out, lambda: views.format_table(headers, rows(items, now)), what)
    return 0


# --------------------------------------------------------------------------- entry point

EXAMPLES = {
    "submit": "kubectl batch submit align -q high-priority -p sample=HG002 --array-size 500",
    "ls": "kubectl batch ls -q high-priority --phase Runnable",
    "rerun": "kubectl batch rerun align-cohort --failed",
    "why": "kubectl batch why align-cohort:7",
    "queues": "kubectl batch queues",
    "ces": "kubectl batch ces -o yaml",
}


def _common(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    d = argparse.SUPPRESS if suppress else None
    parser.add_argument("--kubeconfig", default=d, help="path to the kubeconfig file")
    parser.add_argument("--context", default=d, help="kubeconfig context to use")
    parser.add_argument("-n", "--namespace", default=d, help="namespace (default: the context's)")
    parser.add_argument(
        "--as", dest="as_user", default=d, metavar="USER", help="act as this user (impersonation)"
    )
    parser.add_argument(
        "--as-group", dest="as_groups", action="append", default=d, metavar="GROUP",
        help="and as a member of this group (repeatable)",
    )  # fmt: skip


def _output(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--output", choices=views.OUTPUTS, help="print json or yaml")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kubectl batch",
        description="kubatch: AWS Batch on Kubernetes, from kubectl.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n"
        + "".join(f"  {e}\n" for e in {**EXAMPLES, **verbs.EXAMPLES}.values())
        + "\n`kubectl batch VERB --help` says more about each verb.",
    )
    _common(parser, suppress=False)
    sub = parser.add_subparsers(dest="verb", required=True, metavar="VERB")

    p = sub.add_parser("submit", help="submit a BatchJob from a JobDefinition")
    _common(p, suppress=True)
    p.add_argument("job_definition", metavar="JOBDEFINITION")
    p.add_argument("-q", "--queue", required=True, help="JobQueue to submit to")
    p.add_argument("--name", help="name of the BatchJob (default: generated)")
    p.add_argument(
        "-p", "--parameter", action="append", metavar="KEY=VALUE", help="Ref:: parameter"
    )
    p.add_argument("--array-size", type=int, help="make an array job of this many children")
    p.add_argument("--parallelism", type=int, help="most array children running at once")
    p.add_argument(
        "--depends-on",
        action="append",
        metavar="NAME[:TYPE][:CONDITION]",
        help="dependency (TYPE N_TO_N|SEQUENTIAL, CONDITION Succeeded|Completed|Failed)",
    )
    p.add_argument("--share-identifier", help="fair-share identifier")
    p.add_argument("--dry-run", action="store_true", help="print, do not create")
    _output(p)
    p.set_defaults(func=cmd_submit)

    p = sub.add_parser("ls", help="list BatchJobs")
    _common(p, suppress=True)
    p.add_argument("-q", "--queue", help="only jobs of this queue")
    p.add_argument("--phase", action="append", help="only jobs in this phase (repeatable)")
    p.add_argument("-A", "--all-namespaces", action="store_true", help="jobs of every namespace")
    p.add_argument("--array", metavar="JOB", help="list the children of this array job instead")
    p.add_argument("--limit", type=int, default=500, help="children per page (with --array)")
    p.add_argument("--offset", type=int, default=0, help="first child of the page (--array)")
    _output(p)
    p.set_defaults(func=cmd_ls)

    p = sub.add_parser("rerun", help="re-run chosen children of an array as a new BatchJob")
    _common(p, suppress=True)
    p.add_argument("name", metavar="JOB")
    p.add_argument("--failed", action="store_true", help="the children that finally failed")
    p.add_argument("--name", dest="new_name", help="the new job's name (default JOB-rerun-N)")
    p.add_argument("--dry-run", action="store_true", help="print, do not create")
    _output(p)
    p.set_defaults(func=cmd_rerun)

    p = sub.add_parser("why", help="why a job is where it is: reason, position, CEs, attempts")
    _common(p, suppress=True)
    p.add_argument("name", metavar="NAME[:INDEX]", help="a job, or one child of an array")
    _output(p)
    p.set_defaults(func=cmd_why)

    p = sub.add_parser("queues", help="list JobQueues with their job counts")
    _common(p, suppress=True)
    _output(p)
    p.set_defaults(func=cmd_queues)

    p = sub.add_parser("ces", help="list ComputeEnvironments with their vCPUs")
    _common(p, suppress=True)
    _output(p)
    p.set_defaults(func=cmd_ces)

    verbs.add_verbs(sub, lambda p: _common(p, suppress=True), _output)
    for name, example in EXAMPLES.items():
        sub.choices[name].epilog = f"example:\n  {example}"
        sub.choices[name].formatter_class = argparse.RawDescriptionHelpFormatter
    return parser


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Run ``kubectl batch``; returns the exit code (0 ok, 1 error, 2 usage)."""
    parser = build_parser()
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    stream = out if out is not None else sys.stdout
    phases = {p.value.lower(): p.value for p in Phase}
    if getattr(args, "phase", None):
        bad = [p for p in args.phase if p.lower() not in phases]
        if bad:
            parser.error(f"unknown phase {bad[0]!r}; one of {', '.join(phases.values())}")
    try:
        cluster = Cluster(
            args.kubeconfig, args.context, as_user=args.as_user, as_groups=args.as_groups or ()
        )
    except PluginError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    try:
        if not args.namespace:
            args.namespace = cluster.default_namespace
        result: int = args.func(cluster, args, stream)
        return result
    except InsightError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    finally:
        cluster.close()


if __name__ == "__main__":
    sys.exit(main())
