"""``kubectl batch``: the kubectl plugin of kubatch (the ``kubectl-batch`` executable).

Verbs: ``submit``, ``ls``, ``why``, ``terminate``, ``queues``, ``ces``. Tables look like kubectl's;
``-o json|yaml`` prints the objects (or, for ``why``, the explanation) instead. Honours
``KUBECONFIG``, ``--kubeconfig``, ``--context`` and ``-n/--namespace`` like kubectl.

The module has two halves: pure functions (``build_*``, ``*_rows``, ``format_table``,
``explain``, ``ce_verdict``, ``parse_*``) that turn objects into manifests and text, and a thin
``Cluster`` adapter over the synchronous ``kubernetes`` client that the verbs call.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TextIO

import yaml

from kubatch.api.models import API_VERSION, GROUP, VERSION, DependencyCondition, DependencyType
from kubatch.core.lifecycle import Phase
from kubatch.core.resources import QuantityError, Resources, parse_cpu, sum_requests

PLURALS = {
    "BatchJob": "batchjobs",
    "JobQueue": "jobqueues",
    "ComputeEnvironment": "computeenvironments",
    "JobDefinition": "jobdefinitions",
}
NAMESPACED = {"BatchJob", "JobDefinition"}
OUTPUTS = ("json", "yaml")

Obj = dict[str, Any]


class PluginError(Exception):
    """A user-facing error: printed as ``error: ...`` with exit code 1."""


# --------------------------------------------------------------------------- pure: parsing


def parse_parameter(text: str) -> tuple[str, str]:
    """Pure: ``key=value`` -> (key, value); the value may contain ``=``."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise PluginError(f"parameter {text!r}: expected key=value")
    return key.strip(), value


def parse_depends_on(text: str) -> Obj:
    """Pure: ``NAME[:TYPE][:CONDITION]`` -> a ``spec.dependsOn`` entry.

    TYPE is ``N_TO_N`` or ``SEQUENTIAL`` (``SEQUENTIAL`` alone: no name), CONDITION is
    ``Succeeded`` (default), ``Completed`` or ``Failed``; both are case-insensitive and may be
    given in either order after the name.
    """
    parts = text.split(":")
    types = {t.value.upper(): t.value for t in DependencyType}
    conditions = {c.value.upper(): c.value for c in DependencyCondition}
    entry: Obj = {}
    name = parts[0].strip()
    if name.upper() in types and len(parts) == 1:
        name = ""
        parts = ["", *parts]
    if name:
        entry["jobName"] = name
    for part in parts[1:]:
        word = part.strip().upper()
        if word in types and "type" not in entry:
            entry["type"] = types[word]
        elif word in conditions and "condition" not in entry:
            entry["condition"] = conditions[word]
        else:
            raise PluginError(
                f"--depends-on {text!r}: {part!r} is neither a type "
                f"({', '.join(types.values())}) nor a condition ({', '.join(conditions.values())})"
            )
    if entry.get("type") == DependencyType.SEQUENTIAL.value and name:
        raise PluginError(f"--depends-on {text!r}: a SEQUENTIAL dependency names no job")
    if not name and entry.get("type") != DependencyType.SEQUENTIAL.value:
        raise PluginError(f"--depends-on {text!r}: a job name is required")
    return entry


def build_batch_job(
    job_definition: str,
    queue: str,
    *,
    namespace: str,
    name: str | None = None,
    parameters: Mapping[str, str] | None = None,
    array_size: int | None = None,
    parallelism: int | None = None,
    depends_on: Sequence[Obj] = (),
    share_identifier: str | None = None,
) -> Obj:
    """Pure: the BatchJob manifest ``submit`` creates (``generateName`` when no name)."""
    metadata: Obj = {"namespace": namespace}
    if name:
        metadata["name"] = name
    else:
        metadata["generateName"] = f"{job_definition[:50]}-"
    spec: Obj = {"jobQueue": queue, "jobDefinition": job_definition}
    if parameters:
        spec["parameters"] = dict(parameters)
    if array_size is not None:
        spec["arrayProperties"] = {"size": array_size}
        if parallelism is not None:
            spec["arrayProperties"]["parallelism"] = parallelism
    elif parallelism is not None:
        raise PluginError("--parallelism needs --array-size")
    if depends_on:
        spec["dependsOn"] = list(depends_on)
    if share_identifier:
        spec["shareIdentifier"] = share_identifier
    return {"apiVersion": API_VERSION, "kind": "BatchJob", "metadata": metadata, "spec": spec}


# --------------------------------------------------------------------------- pure: tables


def format_table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """Pure: a kubectl-style table: upper-case headers, columns padded, three spaces apart."""
    cells = [[str(h).upper() for h in headers]] + [
        ["<none>" if v is None or v == "" else str(v) for v in row] for row in rows
    ]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["   ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    return "\n".join(lines) + "\n"


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def age(created: object, now: datetime) -> str:
    """Pure: kubectl's human duration of ``now - created`` (``45s``, ``5m3s``, ``2h``, ``3d``)."""
    start = _parse_time(created)
    if start is None:
        return "<unknown>"
    s = max(0, int((now - start).total_seconds()))
    m, h, d = s // 60, s // 3600, s // 86400
    if s < 120:
        return f"{s}s"
    if m < 10:
        return f"{m}m{s % 60}s" if s % 60 else f"{m}m"
    if m < 180:
        return f"{m}m"
    if h < 8:
        return f"{h}h{m % 60}m" if m % 60 else f"{h}h"
    if h < 48:
        return f"{h}h"
    if d < 8:
        return f"{d}d{h % 24}h" if h % 24 else f"{d}d"
    if d < 730:
        return f"{d}d"
    return f"{d // 365}y"


def _status(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    status = obj.get("status")
    return status if isinstance(status, Mapping) else {}


def _condition(obj: Mapping[str, Any], type_: str) -> Mapping[str, Any] | None:
    for c in _status(obj).get("conditions") or []:
        if isinstance(c, Mapping) and c.get("type") == type_:
            return c
    return None


def _ready(obj: Mapping[str, Any]) -> str:
    c = _condition(obj, "Ready")
    return str(c.get("status", "Unknown")) if c else "Unknown"


def _num(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def job_rows(
    jobs: Iterable[Mapping[str, Any]], now: datetime, *, all_namespaces: bool = False
) -> list[list[object]]:
    """Pure: rows for ``ls``; see ``JOB_HEADERS``."""
    rows: list[list[object]] = []
    for job in jobs:
        meta, spec, st = job.get("metadata", {}), job.get("spec", {}), _status(job)
        attempts = st.get("attempts") or []
        array = spec.get("arrayProperties") or {}
        summary = st.get("arrayStatusSummary") or {}
        done = summary.get("succeeded", 0) + summary.get("failed", 0)
        row = [
            meta.get("name"),
            spec.get("jobQueue"),
            st.get("phase") or Phase.SUBMITTED.value,
            st.get("reason"),
            st.get("queuePosition") if st.get("queuePosition") is not None else "-",
            st.get("computeEnvironment") or "-",
            f"{done}/{array['size']}" if array.get("size") else "-",
            st.get("attemptCount") or len(attempts),
            age(meta.get("creationTimestamp"), now),
        ]
        rows.append(([meta.get("namespace")] if all_namespaces else []) + row)
    return rows


JOB_HEADERS = ["NAME", "QUEUE", "PHASE", "REASON", "POSITION", "CE", "ARRAY", "ATTEMPTS", "AGE"]


def queue_rows(queues: Iterable[Mapping[str, Any]], now: datetime) -> list[list[object]]:
    """Pure: rows for ``queues``; see ``QUEUE_HEADERS``."""
    rows: list[list[object]] = []
    for q in queues:
        meta, spec, st = q.get("metadata", {}), q.get("spec", {}), _status(q)
        order = sorted(spec.get("computeEnvironmentOrder") or [], key=lambda o: o.get("order", 0))
        counts = st.get("jobCounts") or {}
        rows.append(
            [
                meta.get("name"),
                spec.get("priority", 0),
                spec.get("state", "Enabled"),
                _ready(q),
                ",".join(str(o.get("computeEnvironment")) for o in order) or "-",
                *(counts.get(p.value.lower(), 0) for p in Phase),
                age(meta.get("creationTimestamp"), now),
            ]
        )
    return rows


QUEUE_HEADERS = [
    "NAME",
    "PRIORITY",
    "STATE",
    "READY",
    "COMPUTE-ENVIRONMENTS",
    *(p.value.upper() for p in Phase),
    "AGE",
]


def ce_rows(ces: Iterable[Mapping[str, Any]], now: datetime) -> list[list[object]]:
    """Pure: rows for ``ces``; see ``CE_HEADERS``."""
    rows: list[list[object]] = []
    for ce in ces:
        meta, spec, st = ce.get("metadata", {}), ce.get("spec", {}), _status(ce)
        cr = spec.get("computeResources") or {}
        rows.append(
            [
                meta.get("name"),
                spec.get("type", "Managed"),
                spec.get("state", "Enabled"),
                cr.get("capacityType", "OnDemand"),
                _num(cr.get("minvCpus", 0)),
                _num(cr.get("maxvCpus")),
                _num(st.get("desiredvCpus")),
                _num(st.get("allocatedvCpus")),
                _num(st.get("capacityvCpus")),
                _num(st.get("nodes")),
                _ready(ce),
                age(meta.get("creationTimestamp"), now),
            ]
        )
    return rows


CE_HEADERS = [
    "NAME",
    "TYPE",
    "STATE",
    "CAPACITY-TYPE",
    "MIN-VCPUS",
    "MAX-VCPUS",
    "DESIRED",
    "ALLOCATED",
    "CAPACITY",
    "NODES",
    "READY",
    "AGE",
]


# --------------------------------------------------------------------------- pure: why


def job_size(job: Mapping[str, Any], definition: Mapping[str, Any] | None) -> Resources | None:
    """Pure: the resources one attempt (one array child) requests, or None if unknown.

    Uses the definition revision recorded in the job's status when there is one (what the
    operator admits), else the JobDefinition's template with ``spec.overrides.resources``.
    """
    revision = _status(job).get("jobDefinition") or {}
    template = revision.get("template") if isinstance(revision, Mapping) else None
    overrides: Mapping[str, Any] = {}
    if not isinstance(template, Mapping):
        template = (definition or {}).get("spec", {}).get("template")
        overrides = (job.get("spec", {}).get("overrides") or {}).get("resources") or {}
    if not isinstance(template, Mapping):
        return None
    containers = [dict(c) for c in (template.get("spec") or {}).get("containers") or []]
    if not containers:
        return None
    if overrides:
        first = dict(containers[0])
        res = {k: dict(v) for k, v in (first.get("resources") or {}).items()}
        for key in ("requests", "limits"):
            res.setdefault(key, {}).update(overrides.get(key) or {})
        first["resources"] = res
        containers[0] = first
    try:
        return sum_requests(containers)
    except QuantityError:
        return None


@dataclass(frozen=True)
class Verdict:
    """Whether a compute environment could take the job, and why (not)."""

    order: int
    name: str
    can_run: bool
    now: bool
    why: str
    state: str = "-"
    capacity_type: str = "-"
    max_vcpus: str = "-"
    allocated_vcpus: str = "-"


def ce_verdict(
    order: int, name: str, ce: Mapping[str, Any] | None, size: Resources | None
) -> Verdict:
    """Pure: could ``ce`` ever take a job of ``size`` (``can_run``), and now (``now``)?"""
    if ce is None:
        return Verdict(order, name, False, False, "compute environment does not exist")
    spec, st = ce.get("spec", {}), _status(ce)
    cr = spec.get("computeResources") or {}
    state = str(spec.get("state", "Enabled"))
    base = {
        "state": state,
        "capacity_type": str(cr.get("capacityType", "OnDemand")),
        "max_vcpus": _num(cr.get("maxvCpus")),
        "allocated_vcpus": _num(st.get("allocatedvCpus")),
    }
    if state == "Disabled":
        return Verdict(order, name, False, False, "Disabled: admits nothing new", **base)
    ready = _condition(ce, "Ready")
    if ready is not None and ready.get("status") == "False":
        why = f"not Ready ({ready.get('reason') or 'no reason'})"
        if ready.get("message"):
            why += f": {ready['message']}"
        return Verdict(order, name, False, False, why, **base)
    if size is None:
        return Verdict(order, name, True, False, "job size unknown", **base)
    max_vcpus = cr.get("maxvCpus")
    if max_vcpus is not None:
        max_m = parse_cpu(max_vcpus)
        if size.mcpu > max_m:
            return Verdict(
                order,
                name,
                False,
                False,
                f"job needs {size.vcpus:g} vCPU > maxvCpus {_num(max_vcpus)}: can never fit",
                **base,
            )
        allocated = st.get("allocatedvCpus")
        if allocated is not None:
            free_m = max_m - parse_cpu(allocated)
            if size.mcpu > free_m:
                return Verdict(
                    order,
                    name,
                    True,
                    False,
                    f"full now: {_num(allocated)} of {_num(max_vcpus)} vCPUs allocated, "
                    f"job needs {size.vcpus:g}",
                    **base,
                )
    return Verdict(order, name, True, True, f"has room for {size.vcpus:g} vCPU", **base)


def explain(
    job: Mapping[str, Any],
    queue: Mapping[str, Any] | None,
    ces: Mapping[str, Mapping[str, Any]],
    definition: Mapping[str, Any] | None,
) -> Obj:
    """Pure: everything ``why`` says about a job, as a JSON-ready dict."""
    meta, spec, st = job.get("metadata", {}), job.get("spec", {}), _status(job)
    size = job_size(job, definition)
    verdicts: list[Verdict] = []
    if queue is not None:
        order = sorted(
            queue.get("spec", {}).get("computeEnvironmentOrder") or [],
            key=lambda o: o.get("order", 0),
        )
        for o in order:
            ce_name = str(o.get("computeEnvironment"))
            verdicts.append(ce_verdict(int(o.get("order", 0)), ce_name, ces.get(ce_name), size))
    return {
        "name": meta.get("name"),
        "namespace": meta.get("namespace"),
        "queue": spec.get("jobQueue"),
        "queueFound": queue is not None,
        "queueState": (queue or {}).get("spec", {}).get("state", "Enabled") if queue else None,
        "queuePriority": (queue or {}).get("spec", {}).get("priority") if queue else None,
        "jobDefinition": spec.get("jobDefinition"),
        "phase": st.get("phase") or Phase.SUBMITTED.value,
        "reason": st.get("reason"),
        "message": st.get("message"),
        "queuePosition": st.get("queuePosition"),
        "computeEnvironment": st.get("computeEnvironment"),
        "size": size.human() if size else None,
        "vcpus": size.vcpus if size else None,
        "computeEnvironments": [
            {
                "order": v.order,
                "name": v.name,
                "state": v.state,
                "capacityType": v.capacity_type,
                "maxvCpus": v.max_vcpus,
                "allocatedvCpus": v.allocated_vcpus,
                "canRun": v.can_run,
                "hasRoomNow": v.now,
                "why": v.why,
            }
            for v in verdicts
        ],
        "attempts": list(st.get("attempts") or []),
        "arrayStatusSummary": st.get("arrayStatusSummary"),
    }


def format_explanation(info: Mapping[str, Any]) -> str:
    """Pure: the text ``why`` prints (kubectl describe style)."""
    lines = [
        f"Name:          {info['name']}",
        f"Namespace:     {info['namespace']}",
        f"Definition:    {info['jobDefinition']}",
    ]
    queue = f"{info['queue']}"
    if not info["queueFound"]:
        queue += " (not found)"
    else:
        queue += f" (priority {info['queuePriority']}, {info['queueState']})"
    lines.append(f"Queue:         {queue}")
    lines.append(f"Phase:         {info['phase']}")
    lines.append(f"Reason:        {info['reason'] or '<none>'}")
    lines.append(f"Message:       {info['message'] or '<none>'}")
    if info["queuePosition"] is not None:
        lines.append(f"Position:      {info['queuePosition']} in queue {info['queue']}")
    if info["computeEnvironment"]:
        lines.append(f"Placed on:     {info['computeEnvironment']}")
    lines.append(f"Size:          {info['size'] or 'unknown'}")
    summary = info.get("arrayStatusSummary")
    if summary:
        parts = [f"{k} {v}" for k, v in summary.items() if v]
        lines.append(f"Array:         {', '.join(parts)}")
    out = "\n".join(lines) + "\n"
    out += "Compute environments (queue order):\n"
    if info["computeEnvironments"]:
        table = format_table(
            ["ORDER", "NAME", "STATE", "CAPACITY-TYPE", "MAX-VCPUS", "ALLOCATED", "FITS", "WHY"],
            [
                [
                    c["order"],
                    c["name"],
                    c["state"],
                    c["capacityType"],
                    c["maxvCpus"],
                    c["allocatedvCpus"],
                    "yes" if c["hasRoomNow"] else ("later" if c["canRun"] else "no"),
                    c["why"],
                ]
                for c in info["computeEnvironments"]
            ],
        )
        out += "".join(f"  {line}\n" for line in table.splitlines())
    else:
        out += "  <none>\n"
    out += "Attempts:\n"
    if info["attempts"]:
        table = format_table(
            ["#", "JOB", "NODE", "CE", "CAPACITY-TYPE", "STARTED", "STOPPED", "EXIT", "REASON"],
            [
                [
                    a.get("number"),
                    a.get("jobName"),
                    a.get("nodeName"),
                    a.get("computeEnvironment"),
                    a.get("capacityType"),
                    a.get("startedAt"),
                    a.get("stoppedAt"),
                    a.get("exitCode"),
                    (a.get("reason") or "")
                    + (" (interrupted)" if a.get("interrupted") else "")
                    + (f": {a['statusReason']}" if a.get("statusReason") else ""),
                ]
                for a in info["attempts"]
            ],
        )
        out += "".join(f"  {line}\n" for line in table.splitlines())
    else:
        out += "  <none>\n"
    return out


def render_output(data: object, fmt: str) -> str:
    """Pure: ``-o json`` / ``-o yaml`` rendering."""
    if fmt == "json":
        return json.dumps(data, indent=4, sort_keys=False, default=str) + "\n"
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False)


def as_list(items: Sequence[Obj]) -> Obj:
    """Pure: kubectl's ``List`` wrapper for several objects."""
    return {"apiVersion": "v1", "kind": "List", "items": list(items), "metadata": {}}


# --------------------------------------------------------------------------- I/O: the cluster


class Cluster:
    """The four kinds through the synchronous ``kubernetes`` client."""

    def __init__(self, kubeconfig: str | None, context: str | None) -> None:
        from kubernetes import client as k8s_client
        from kubernetes import config as k8s_config

        client: Any = k8s_client  # the client's functions are untyped
        config: Any = k8s_config
        cfg = client.Configuration()
        path = kubeconfig or os.environ.get("KUBECONFIG") or os.path.expanduser("~/.kube/config")
        try:
            config.load_kube_config(config_file=path, context=context, client_configuration=cfg)
            _, active = config.list_kube_config_contexts(config_file=path)
        except Exception as err:  # the client raises ConfigException, OSError, ...
            raise PluginError(f"cannot load kubeconfig {path}: {err}") from err
        if context:
            contexts, _ = config.list_kube_config_contexts(config_file=path)
            active = next((c for c in contexts if c["name"] == context), active)
        self.default_namespace = str(
            (active or {}).get("context", {}).get("namespace") or "default"
        )
        self.api_client: Any = client.ApiClient(cfg)
        self.custom = client.CustomObjectsApi(self.api_client)
        self._exc = client.exceptions.ApiException

    def close(self) -> None:
        self.api_client.close()

    def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except self._exc as err:
            if err.status == 404:
                raise LookupError(str(err.reason)) from err
            body: Any = err.body
            with contextlib.suppress(TypeError, ValueError, AttributeError):
                body = json.loads(body).get("message", body)
            raise PluginError(f"{err.status} {err.reason}: {body}") from err

    def get(self, kind: str, name: str, namespace: str | None = None) -> Obj | None:
        plural = PLURALS[kind]
        try:
            if kind in NAMESPACED:
                result = self._call(
                    self.custom.get_namespaced_custom_object,
                    GROUP,
                    VERSION,
                    namespace,
                    plural,
                    name,
                )
            else:
                result = self._call(
                    self.custom.get_cluster_custom_object, GROUP, VERSION, plural, name
                )
        except LookupError:
            return None
        return dict(result)

    def list(self, kind: str, namespace: str | None = None) -> list[Obj]:
        plural = PLURALS[kind]
        if kind in NAMESPACED and namespace is not None:
            result = self._call(
                self.custom.list_namespaced_custom_object, GROUP, VERSION, namespace, plural
            )
        else:
            result = self._call(self.custom.list_cluster_custom_object, GROUP, VERSION, plural)
        items = [dict(i) for i in result.get("items", [])]
        return sorted(
            items, key=lambda o: (o["metadata"].get("namespace") or "", o["metadata"]["name"])
        )

    def create_batch_job(self, namespace: str, body: Obj) -> Obj:
        return dict(
            self._call(
                self.custom.create_namespaced_custom_object,
                GROUP,
                VERSION,
                namespace,
                "batchjobs",
                body,
            )
        )

    def patch_batch_job(self, namespace: str, name: str, patch: Obj) -> Obj:
        return dict(
            self._call(
                self.custom.patch_namespaced_custom_object,
                GROUP,
                VERSION,
                namespace,
                "batchjobs",
                name,
                patch,
            )
        )


# --------------------------------------------------------------------------- verbs


def _now() -> datetime:
    return datetime.now(UTC)


def _print_items(
    items: list[Obj], args: argparse.Namespace, out: TextIO, table: Callable[[], str], what: str
) -> None:
    if args.output:
        out.write(render_output(as_list(items), args.output))
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
    params = dict(parse_parameter(p) for p in args.parameter or [])
    body = build_batch_job(
        args.job_definition,
        args.queue,
        namespace=args.namespace,
        name=args.name,
        parameters=params,
        array_size=args.array_size,
        parallelism=args.parallelism,
        depends_on=[parse_depends_on(d) for d in args.depends_on or []],
        share_identifier=args.share_identifier,
    )
    created = body if args.dry_run else cluster.create_batch_job(args.namespace, body)
    if args.output:
        out.write(render_output(created, args.output))
    else:
        name = (
            created["metadata"].get("name")
            or created["metadata"].get("generateName", "") + "<generated>"
        )
        suffix = " (dry run)" if args.dry_run else ""
        out.write(f"batchjob.{GROUP}/{name} submitted{suffix}\n")
    return 0


def cmd_ls(cluster: Cluster, args: argparse.Namespace, out: TextIO) -> int:
    items = cluster.list("BatchJob", None if args.all_namespaces else args.namespace)
    if args.queue:
        items = [j for j in items if j.get("spec", {}).get("jobQueue") == args.queue]
    if args.phase:
        wanted = {p.lower() for p in args.phase}
        items = [
            j for j in items if (_status(j).get("phase") or Phase.SUBMITTED.value).lower() in wanted
        ]
    now = _now()
    headers = (["NAMESPACE"] if args.all_namespaces else []) + JOB_HEADERS
    _print_items(
        items,
        args,
        out,
        lambda: format_table(headers, job_rows(items, now, all_namespaces=args.all_namespaces)),
        "batchjobs",
    )
    return 0


def cmd_why(cluster: Cluster, args: argparse.Namespace, out: TextIO) -> int:
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
    if not _status(job).get("jobDefinition"):
        definition = cluster.get(
            "JobDefinition", str(spec.get("jobDefinition", "")), args.namespace
        )
    info = explain(job, queue, ces, definition)
    out.write(render_output(info, args.output) if args.output else format_explanation(info))
    return 0


def cmd_terminate(cluster: Cluster, args: argparse.Namespace, out: TextIO) -> int:
    job = cluster.get("BatchJob", args.name, args.namespace)
    if job is None:
        raise PluginError(f'batchjob "{args.name}" not found in namespace "{args.namespace}"')
    phase = _status(job).get("phase")
    cluster.patch_batch_job(
        args.namespace, args.name, {"spec": {"terminate": {"reason": args.reason}}}
    )
    note = (
        f" (already {phase}: nothing to stop)" if phase in (Phase.SUCCEEDED, Phase.FAILED) else ""
    )
    out.write(f"batchjob.{GROUP}/{args.name} terminated{note}\n")
    return 0


def cmd_queues(cluster: Cluster, args: argparse.Namespace, out: TextIO) -> int:
    items = cluster.list("JobQueue")
    items.sort(key=lambda q: (-int(q.get("spec", {}).get("priority", 0)), q["metadata"]["name"]))
    now = _now()
    _print_items(
        items, args, out, lambda: format_table(QUEUE_HEADERS, queue_rows(items, now)), "jobqueues"
    )
    return 0


def cmd_ces(cluster: Cluster, args: argparse.Namespace, out: TextIO) -> int:
    items = cluster.list("ComputeEnvironment")
    now = _now()
    _print_items(items, args, out, lambda: format_table(CE_HEADERS, ce_rows(items, now)), "ces")
    return 0


# --------------------------------------------------------------------------- entry point


def _common(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    d = argparse.SUPPRESS if suppress else None
    parser.add_argument("--kubeconfig", default=d, help="path to the kubeconfig file")
    parser.add_argument("--context", default=d, help="kubeconfig context to use")
    parser.add_argument("-n", "--namespace", default=d, help="namespace (default: the context's)")


def _output(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--output", choices=OUTPUTS, help="print json or yaml")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kubectl batch", description="kubatch: AWS Batch on Kubernetes, from kubectl."
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
    _output(p)
    p.set_defaults(func=cmd_ls)

    p = sub.add_parser("why", help="why a job is where it is: reason, position, CEs, attempts")
    _common(p, suppress=True)
    p.add_argument("name", metavar="NAME")
    _output(p)
    p.set_defaults(func=cmd_why)

    p = sub.add_parser("terminate", help="cancel or terminate a job (spec.terminate)")
    _common(p, suppress=True)
    p.add_argument("name", metavar="NAME")
    p.add_argument("--reason", required=True, help="recorded in the job's message")
    p.set_defaults(func=cmd_terminate)

    p = sub.add_parser("queues", help="list JobQueues with their job counts")
    _common(p, suppress=True)
    _output(p)
    p.set_defaults(func=cmd_queues)

    p = sub.add_parser("ces", help="list ComputeEnvironments with their vCPUs")
    _common(p, suppress=True)
    _output(p)
    p.set_defaults(func=cmd_ces)
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
        cluster = Cluster(args.kubeconfig, args.context)
    except PluginError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    try:
        if not args.namespace:
            args.namespace = cluster.default_namespace
        result: int = args.func(cluster, args, stream)
        return result
    except PluginError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    finally:
        cluster.close()


if __name__ == "__main__":
    sys.exit(main())
