"""The console's pages as HTML. Pure: data in, text out; ``now`` is passed in.

Everything that came from the cluster — names, messages, reasons, logs — is untrusted and
goes through :func:`e` (``html.escape``) on its way into the page; links are built with
:func:`url` (path segments and query values percent-encoded). The live part of a page is the
element ``#live``: the browser asks for it again (``X-Fragment: 1``) when a server-sent event
says something it shows has changed.
"""

from __future__ import annotations

import html
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import quote, urlencode

from kubatch.console.index import PHASES, Filters, Page
from kubatch.insight.draw import clock
from kubatch.insight.objects import duration_text, money, num_text
from kubatch.timefmt import parse_time

WAITING = ("Submitted", "Pending", "Runnable")


def e(value: object) -> str:
    """Pure: ``value`` as HTML text (``-`` for none)."""
    return html.escape("-" if value is None or value == "" else str(value), quote=True)


def a(value: object) -> str:
    """Pure: ``value`` as an attribute value (empty stays empty)."""
    return html.escape("" if value is None else str(value), quote=True)


def url(*segments: str, **query: object) -> str:
    """Pure: ``/seg/seg?k=v`` with every part percent-encoded (empty query values dropped)."""
    path = "/" + "/".join(quote(s, safe="") for s in segments)
    params = {k: str(v) for k, v in query.items() if v not in (None, "")}
    return path + (f"?{urlencode(params)}" if params else "")


def job_url(namespace: str, name: str, *rest: str, **query: object) -> str:
    return url("ns", namespace, "jobs", name, *rest, **query)


def layout(
    title: str,
    body: str,
    *,
    viewer: str,
    live: str = "",
    nav: str = "",
    top: str = "",
    version: int = 0,
) -> str:
    """Pure: the whole page around ``body`` (the ``#live`` element's content); ``top`` stays
    put above it (the job list's filter form, which live updates must not reset)."""
    links = "".join(
        f'<a href="{href}"{" class=on" if nav == key else ""}>{label}</a>'
        for key, href, label in (("overview", "/", "Overview"), ("jobs", "/jobs", "Jobs"))
    )
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{e(title)} · kubatch</title>"
        '<link rel="stylesheet" href="/static/console.css">'
        '<script src="/static/console.js" defer></script></head>\n'
        f'<body><header><b>kubatch</b> {links}<span class="who">viewing as {e(viewer)}'
        '</span><span id="conn" class="conn">live</span></header>\n'
        f'<main>{top}<div id="live" data-live="{a(live)}" data-version="{version}">'
        f"{body}</div></main>\n</body></html>\n"
    )


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]], cls: str = "") -> str:
    head = "".join(f"<th>{h}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _phase(phase: str) -> str:
    return f'<span class="ph ph-{e(phase).lower()}">{e(phase)}</span>'


# --------------------------------------------------------------------------- overview


def overview(
    queues: Mapping[str, Mapping[str, Any]],
    ces: Mapping[str, Mapping[str, Any]],
    counts: Mapping[str, Counter[str]],
    *,
    loading: bool = False,
) -> str:
    """Pure: each queue's jobs by phase and spend; each CE's vCPUs and capacity type."""
    if loading:
        return '<p class="note">Loading the cluster\'s objects…</p>'
    qrows = []
    spend_hour = 0.0
    for name in sorted(queues, key=lambda n: (-_priority(queues[n]), n)):
        q = queues[name]
        spec, st = q.get("spec") or {}, q.get("status") or {}
        c = counts.get(name, Counter())
        spend = st.get("spend") or {}
        spend_hour += float(spend.get("lastHour") or 0)
        qrows.append(
            [
                f'<a href="{url("jobs", queue=name)}">{e(name)}</a>',
                e(spec.get("priority")),
                e(spec.get("state") or "Enabled"),
            ]
            + [_count_link(name, p, c) for p in PHASES]
            + [
                e(num_text(st.get("admissionsPerMinute"))),
                e(money(_num(spend.get("lastHour")))),
                e(money(_num(spend.get("lastDay")))),
                e(spend.get("blockedUntil")),
            ]
        )
    orphan = sorted(set(counts) - set(queues))
    for name in orphan:
        c = counts[name]
        qrows.append(
            [f"{e(name)} <i>(no such queue)</i>", "-", "-"]
            + [_count_link(name, p, c) for p in PHASES]
            + ["-", "-", "-", "-"]
        )
    crows = []
    for name in sorted(ces):
        ce = ces[name]
        spec, st = ce.get("spec") or {}, ce.get("status") or {}
        cr = spec.get("computeResources") or {}
        crows.append(
            [
                e(name),
                e(spec.get("type") or "Managed"),
                e(spec.get("state") or "Enabled"),
                e(cr.get("capacityType") or "OnDemand"),
                e(num_text(cr.get("minvCpus"))),
                e(num_text(st.get("desiredvCpus"))),
                e(num_text(st.get("allocatedvCpus"))),
                e(num_text(st.get("capacityvCpus"))),
                e(num_text(cr.get("maxvCpus"))),
                e(num_text(st.get("nodes"))),
                e(st.get("status") or _ready(ce)),
            ]
        )
    return (
        "<h1>Overview</h1>"
        f'<p class="spend">Spend rate: <b id="spend">{e(money(spend_hour))}</b> over the last '
        "hour, all queues</p>"
        "<h2>Job queues</h2>"
        + _table(
            [
                "Queue",
                "Priority",
                "State",
                *PHASES,
                "Admitted/min",
                "Spend 1h",
                "Spend 1d",
                "Blocked until",
            ],
            qrows,
            "queues",
        )
        + "<h2>Compute environments</h2>"
        + _table(
            [
                "Name",
                "Type",
                "State",
                "Capacity type",
                "Min vCPUs",
                "Desired",
                "Allocated",
                "Capacity",
                "Max vCPUs",
                "Nodes",
                "Status",
            ],
            crows,
            "ces",
        )
    )


def _priority(queue: Mapping[str, Any]) -> int:
    try:
        return int((queue.get("spec") or {}).get("priority") or 0)
    except (TypeError, ValueError):
        return 0


def _count_link(queue: str, phase: str, counts: Counter[str]) -> str:
    href = url("jobs", queue=queue, phase=phase)
    n = counts.get(phase, 0)
    return f'<a class="n" data-q="{e(queue)}" data-ph="{phase}" href="{href}">{n}</a>'


def _num(value: object) -> float | None:
    try:
        return float(value) if value is not None else None  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def _ready(obj: Mapping[str, Any]) -> str:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if isinstance(c, Mapping) and c.get("type") == "Ready":
            return "Ready" if c.get("status") == "True" else str(c.get("reason") or "NotReady")
    return ""


# --------------------------------------------------------------------------- job list


def _select(name: str, value: str, options: Iterable[str], label: str) -> str:
    opts = [f'<option value="">{label}: any</option>'] + [
        f'<option value="{e(o)}"{" selected" if o == value else ""}>{e(o)}</option>'
        for o in options
    ]
    return f'<select name="{name}" id="f-{name}">{"".join(opts)}</select>'


def filter_form(
    filters: Filters, *, namespaces: Iterable[str], queues: Iterable[str], reasons: Iterable[str]
) -> str:
    """Pure: the job list's filters (a plain GET form)."""
    return (
        '<h1>Jobs</h1><form class="filters" method="get" action="/jobs">'
        + _select("namespace", filters.namespace, sorted(namespaces), "namespace")
        + _select("queue", filters.queue, sorted(queues), "queue")
        + _select("phase", filters.phase, PHASES, "phase")
        + _select("reason", filters.reason, reasons, "reason")
        + f'<input name="name" id="f-name" placeholder="name contains" value="{a(filters.name)}"'
        ' autocomplete="off">'
        '<button type="submit" id="f-go">Filter</button></form>'
    )


def job_list(page: Page, filters: Filters, *, now: float, loading: bool = False) -> str:
    """Pure: one page of jobs, and the links to the other pages."""
    if loading:
        return '<p class="note">Loading the cluster\'s objects…</p>'
    rows = [
        [
            e(r.namespace),
            f'<a class="job" href="{job_url(r.namespace, r.name)}">{e(r.name)}</a>',
            e(r.queue),
            _phase(r.phase),
            e(r.reason),
            e(r.array_size),
            e(r.attempts),
            e(r.compute_environment),
            e(r.capacity_type),
            e(money(r.cost)),
            e(duration_text(now - r.created) if r.created else None),
        ]
        for r in page.rows
    ]
    query = {k: v for k, v in vars(filters).items() if v}

    def link(p: int, text: str) -> str:
        return f'<a class="pg" href="{url("jobs", **query, page=p)}">{text}</a>'

    nav = [f'<span id="total">{page.total}</span> jobs · page {page.page} of {page.pages}']
    if filters.namespace:
        href = url("ns", filters.namespace, "timeline")
        nav.append(f'· <a id="ns-timeline" href="{href}">timeline of {e(filters.namespace)}</a>')
    if page.page > 1:
        nav.insert(0, link(page.page - 1, "&lt; newer"))
    if page.page < page.pages:
        nav.append(link(page.page + 1, "older &gt;"))
    return f'<p class="pager">{" ".join(nav)}</p>' + _table(
        [
            "Namespace",
            "Name",
            "Queue",
            "Phase",
            "Reason",
            "Array",
            "Attempts",
            "CE",
            "Capacity",
            "Cost",
            "Age",
        ],
        rows,
        "jobs",
    )


# --------------------------------------------------------------------------- job page


def _when(value: object) -> str:
    t = parse_time(value)
    return clock(t) if t is not None else "-"


def _dep_links(namespace: str, names: Iterable[str]) -> str:
    links = [f'<a class="dep" href="{job_url(namespace, n)}">{e(n)}</a>' for n in names]
    return ", ".join(links) or "none"


def job_page(
    job: Mapping[str, Any],
    why: Mapping[str, Any],
    *,
    dependents: Sequence[str],
    children: Sequence[Mapping[str, Any]] | None,
    children_chunk: int,
    children_chunks: int,
    now: float,
    terminate_token: str | None = None,
    notice: str = "",
) -> str:
    """Pure: a job's page: state, why, dependencies both ways, attempts, array children."""
    meta, spec, st = job.get("metadata") or {}, job.get("spec") or {}, job.get("status") or {}
    ns, name = str(meta.get("namespace") or ""), str(meta.get("name") or "")
    phase = str(st.get("phase") or "Submitted")
    facts = [
        ("Phase", _phase(phase)),
        ("Reason", f'<span id="reason">{e(st.get("reason"))}</span>'),
        ("Message", f'<span id="message">{e(st.get("message"))}</span>'),
        (
            "Queue",
            f'<a href="{url("jobs", queue=str(spec.get("jobQueue") or ""))}">'
            f"{e(spec.get('jobQueue'))}</a>",
        ),
        ("Job definition", e(spec.get("jobDefinition"))),
    ]
    if phase in WAITING:
        facts.append(("Queue position", f'<span id="position">{e(st.get("queuePosition"))}</span>'))
        eta = parse_time(st.get("estimatedStartTime"))
        facts.append(
            ("Estimated start", e(f"{clock(eta)} (in {duration_text(eta - now)})") if eta else "-")
        )
    facts += [
        ("Compute environment", e(st.get("computeEnvironment"))),
        ("Capacity type", e(st.get("capacityType"))),
        ("Created", e(_when(meta.get("creationTimestamp")))),
        ("Started", e(_when(st.get("startedAt")))),
        ("Stopped", e(_when(st.get("stoppedAt")))),
        ("Cost", f'<span id="cost">{e(money(_num(st.get("cost"))))}</span>'),
        ("Depends on", _dep_links(ns, _deps(spec))),
        ("Needed by", _dep_links(ns, dependents)),
    ]
    dl = "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in facts)
    links = (
        f'<p class="links"><a id="timeline" href="{job_url(ns, name, "timeline")}">Timeline</a>'
        f' · <a id="logs" href="{job_url(ns, name, "logs")}">Log of the last attempt</a></p>'
    )
    out = [
        f'<h1 id="phase" data-phase="{e(phase)}">{e(name)} <small>in {e(ns)}</small></h1>',
        f'<p class="notice">{e(notice)}</p>' if notice else "",
        links,
        f"<dl>{dl}</dl>",
        _why_section(why),
        _attempts_section(ns, name, st.get("attempts") or []),
        _nodes_section(st.get("nodes")),
        _array_section(
            ns, name, st.get("arrayStatusSummary"), children, children_chunk, children_chunks
        ),
    ]
    if terminate_token and phase not in ("Succeeded", "Failed"):
        out.append(
            f'<form method="post" action="{job_url(ns, name, "terminate")}" class="terminate">'
            f'<input type="hidden" name="token" value="{a(terminate_token)}">'
            '<input name="reason" value="Terminated from the kubatch console" size="40">'
            '<button type="submit" id="terminate">Terminate</button></form>'
        )
    return "".join(out)


def _deps(spec: Mapping[str, Any]) -> list[str]:
    return [
        str(d.get("jobName") or d.get("jobId"))
        for d in spec.get("dependsOn") or []
        if isinstance(d, Mapping) and (d.get("jobName") or d.get("jobId"))
    ]


def _why_section(why: Mapping[str, Any]) -> str:
    rows = [
        [
            e(c.get("order")),
            e(c.get("name")),
            e(c.get("state")),
            e(c.get("capacityType")),
            e(num_text(c.get("maxvCpus"))),
            e(num_text(c.get("allocatedvCpus"))),
            "yes" if c.get("hasRoomNow") else ("later" if c.get("canRun") else "no"),
            e(c.get("why")),
        ]
        for c in why.get("computeEnvironments") or []
    ]
    queue = e(why.get("queue"))
    if not why.get("queueFound"):
        queue += " (not found)"
    return (
        '<h2>Why (where it stands)</h2><p class="why">'
        f"Queue {queue}, size {e(why.get('size') or 'unknown')}.</p>"
        + _table(
            [
                "Order",
                "Compute environment",
                "State",
                "Capacity type",
                "Max vCPUs",
                "Allocated",
                "Fits",
                "Why",
            ],
            rows,
            "why",
        )
    )


def _attempts_section(ns: str, name: str, attempts: Sequence[Mapping[str, Any]]) -> str:
    rows = [
        [
            e(a.get("number")),
            e(a.get("nodeName")),
            e(a.get("computeEnvironment")),
            e(a.get("capacityType")),
            e(_when(a.get("startedAt"))),
            e(_when(a.get("stoppedAt"))),
            f'<span class="exit">{e(a.get("exitCode"))}</span>',
            e(
                (a.get("reason") or "")
                + (" (interrupted)" if a.get("interrupted") else "")
                + (f": {a['statusReason']}" if a.get("statusReason") else "")
            ),
            e(money(_num(a.get("cost")))),
            f'<a href="{job_url(ns, name, "logs", attempt=a.get("number"))}">log</a>',
        ]
        for a in attempts
        if isinstance(a, Mapping)
    ]
    return "<h2>Attempts</h2>" + _table(
        [
            "#",
            "Node",
            "CE",
            "Capacity type",
            "Started",
            "Stopped",
            "Exit code",
            "Reason",
            "Cost",
            "Log",
        ],
        rows,
        "attempts",
    )


def _nodes_section(nodes: object) -> str:
    """A multi-node job's nodes in its current attempt (``status.nodes``)."""
    if not isinstance(nodes, list) or not nodes:
        return ""
    rows = [
        [
            e(n.get("index")),
            "main" if n.get("main") else "",
            e(n.get("nodeName")),
            e(n.get("podIP")),
            _phase(str(n.get("phase") or "")),
            e(n.get("exitCode")),
            e(n.get("reason")),
        ]
        for n in nodes
        if isinstance(n, Mapping)
    ]
    return "<h2>Nodes of the current attempt</h2>" + _table(
        ["Index", "", "Node", "Pod IP", "Phase", "Exit code", "Reason"], rows, "nodes"
    )


def _array_section(
    ns: str,
    name: str,
    summary: object,
    children: Sequence[Mapping[str, Any]] | None,
    chunk: int,
    chunks: int,
) -> str:
    if not isinstance(summary, Mapping) and children is None:
        return ""
    counts = summary if isinstance(summary, Mapping) else {}
    parts = [f"{e(k)} {e(v)}" for k, v in counts.items() if v]
    rows = [
        [
            e(c.get("index")),
            _phase(str(c.get("phase") or "")),
            e(c.get("attempts")),
            e(c.get("exitCode")),
            e(c.get("reason")),
            e(c.get("node")),
            e(c.get("computeEnvironment")),
            e(c.get("message")),
            f'<a href="{job_url(ns, name, "logs", index=c.get("index"))}">log</a>',
        ]
        for c in children or []
    ]
    pager = ""
    if chunks > 1:
        pager = (
            "<p>"
            + " ".join(
                f'<a href="{job_url(ns, name, children=k)}">{"<b>" if k == chunk else ""}'
                f"{k * 1000}-{k * 1000 + 999}{'</b>' if k == chunk else ''}</a>"
                for k in range(chunks)
            )
            + "</p>"
        )
    return (
        f'<h2>Array</h2><p id="array-summary">{", ".join(parts) or "-"}</p>'
        + pager
        + _table(
            ["Index", "Phase", "Attempts", "Exit code", "Reason", "Node", "CE", "Message", "Log"],
            rows,
            "children",
        )
    )


# --------------------------------------------------------------------------- timeline, logs


def timeline_page(title: str, svg: str, lanes: int, back: str) -> str:
    """Pure: insight's timeline picture (already escaped by :mod:`kubatch.insight.draw`)."""
    return (
        f'<h1>{e(title)}</h1><p><a href="{e(back)}">back</a> · {lanes} job(s)</p>'
        f'<div class="timeline">{svg}</div>'
    )


def logs_page(
    ns: str, name: str, label: str, stream: str, lines: Sequence[str] | None, error: str = ""
) -> str:
    """Pure: the log of one attempt. ``lines``: its text now (``None``: the page streams it
    from ``stream``, following while the container runs)."""
    text = "\n".join(lines or ())
    attrs = f' data-stream="{a(stream)}"' if lines is None else ""
    return (
        f"<h1>Log of {e(label)}</h1>"
        f'<p><a href="{job_url(ns, name)}">back to {e(name)}</a>'
        f' · <span id="log-state">{"following" if lines is None else "complete"}</span></p>'
        + (f'<p class="error">{e(error)}</p>' if error else "")
        + f'<pre id="log"{attrs}>{e(text) if text else ""}</pre>'
    )


def error_page(message: str) -> str:
    return f'<h1>Not shown</h1><p class="error" id="error">{e(message)}</p>'
