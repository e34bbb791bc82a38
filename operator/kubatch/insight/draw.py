"""A :class:`~kubatch.insight.timeline.Timeline` drawn: terminal text, SVG, or an HTML page.

Pure: each renderer returns a string. The same picture in all three: one row per job (array
children indented under their parent, whose row shows how many children ran at once), time
left to right; grey while waiting, amber while starting, blue while running on on-demand
capacity, purple on spot; an attempt that was interrupted ends with an orange lightning mark,
one that failed (and was retried, or was the last) with a red cross. The SVG needs no fonts
for its marks (paths, not glyphs) and no script; the HTML page embeds it with a table.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from datetime import UTC, datetime

from kubatch.insight.objects import duration_text, money
from kubatch.insight.timeline import Lane, Outcome, Segment, Span, Timeline

NICE_STEPS = (
    1,
    2,
    5,
    10,
    15,
    30,
    60,
    120,
    300,
    600,
    900,
    1800,
    3600,
    7200,
    14400,
    21600,
    43200,
    86400,
)

COLORS = {
    "Waiting": "#d0d7de",
    "Starting": "#e3b341",
    "OnDemand": "#2f81f7",
    "Spot": "#8250df",
    "Running": "#57606a",  # capacity type unknown
    "cross": "#cf222e",
    "bolt": "#fb8500",
    "tick": "#1a7f37",
    "grid": "#eaeef2",
    "group": "#f6f8fa",
    "text": "#1f2328",
    "muted": "#656d76",
}
CROSS_OUTCOMES = (Outcome.RETRIED, Outcome.FAILED, Outcome.ENDED)


def tick_step(seconds: float, ticks: int = 8) -> int:
    """Pure: a round step (1 s, 2 s, 5 s, … 1 day) giving at most about ``ticks`` ticks."""
    for step in NICE_STEPS:
        if seconds / step <= ticks:
            return step
    return NICE_STEPS[-1] * max(1, math.ceil(seconds / NICE_STEPS[-1] / ticks))


def offset_text(seconds: float) -> str:
    """Pure: ``+0s``, ``+30s``, ``+2m``, ``+1h30m`` (an axis label)."""
    return "+" + duration_text(seconds)


def clock(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def run_color(capacity_type: str) -> str:
    return COLORS.get(capacity_type or "Running", COLORS["Running"])


def lane_note(lane: Lane) -> str:
    """Pure: the words after a lane: phase, attempts, interruptions, where it ran."""
    shown = lane.reason and lane.reason not in (lane.phase.value, "Completed")
    parts = [lane.phase.value + (f" ({lane.reason})" if shown else "")]
    if lane.array_size is not None:
        parts.append(f"{lane.array_size} children")
    if lane.attempts:
        parts.append(f"{lane.attempts} attempt{'s' if lane.attempts != 1 else ''}")
    if lane.retries:
        parts.append(f"{lane.retries} retried")
    if lane.interruptions:
        parts.append(f"{lane.interruptions} interrupted")
    where = [f"{ce} ({ct or '?'})" for ce, ct in lane.compute_environments]
    if where:
        parts.append("on " + " → ".join(where[:3]) + (" …" if len(where) > 3 else ""))
    return ", ".join(parts)


# --------------------------------------------------------------------------- terminal text

TEXT_CHARS = {"Waiting": "·", "Starting": "░", "OnDemand": "█", "Spot": "▓", "Running": "█"}
DENSITY = " ▁▂▃▄▅▆▇█"


def _cells(segments: Sequence[Segment], t0: float, dt: float, width: int) -> list[str]:
    cells = [" "] * width
    rank = {" ": 0, TEXT_CHARS["Waiting"]: 1, TEXT_CHARS["Starting"]: 2}
    for s in segments:
        ch = (
            TEXT_CHARS["Waiting"]
            if s.span is Span.WAITING
            else TEXT_CHARS["Starting"]
            if s.span is Span.STARTING
            else TEXT_CHARS.get(s.capacity_type or "Running", "█")
        )
        a = max(0, min(width - 1, int((s.start - t0) / dt)))
        b = max(a, min(width - 1, math.ceil((s.end - t0) / dt) - 1))
        for c in range(a, b + 1):
            if rank.get(ch, 3) >= rank.get(cells[c], 3):
                cells[c] = ch
    for s in segments:
        mark = (
            "↯" if s.outcome is Outcome.INTERRUPTED else "✗" if s.outcome in CROSS_OUTCOMES else ""
        )
        if (mark and s.span is not Span.WAITING) or (mark and s.attempt is None):
            cells[max(0, min(width - 1, math.ceil((s.end - t0) / dt) - 1))] = mark
    return cells


def _density(lane: Lane, t0: float, dt: float, width: int) -> list[str]:
    cells = _cells([s for s in lane.segments if s.span is Span.WAITING], t0, dt, width)
    peak = max((n for _, n in lane.running), default=0)
    if peak <= 0:
        return cells
    for c in range(width):
        lo, hi = t0 + c * dt, t0 + (c + 1) * dt
        level = 0
        for i, (t, n) in enumerate(lane.running):
            nxt = lane.running[i + 1][0] if i + 1 < len(lane.running) else math.inf
            if t < hi and nxt > lo:
                level = max(level, n)
        if level:
            cells[c] = DENSITY[max(1, round(level / peak * (len(DENSITY) - 1)))]
    return cells


def timeline_text(timeline: Timeline, width: int = 120) -> str:
    """Pure: the timeline for a terminal ``width`` columns wide."""
    lanes = timeline.all_lanes()
    label_w = min(32, max([len(_text_label(x)) for x in lanes] + [8]))
    bar_w = max(20, width - label_w - 3)
    span = max(1.0, timeline.end - timeline.start)
    dt = span / bar_w
    t0 = timeline.start
    head = f"{timeline.title or 'kubatch timeline'}: {clock(t0)}, {duration_text(span)}"
    lines = [head]
    step = tick_step(span, max(2, bar_w // 12))
    axis = [" "] * bar_w
    labels = [" "] * (bar_w + 12)
    for k in range(0, int(span // step) + 1):
        col = int(k * step / dt)
        if col < bar_w:
            axis[col] = "┬"
            text = offset_text(k * step)
            if all(ch == " " for ch in labels[col : col + len(text) + 1]):
                labels[col : col + len(text)] = list(text)
    lines.append(" " * (label_w + 2) + "".join(labels).rstrip())
    lines.append(" " * (label_w + 2) + "".join(axis).rstrip())
    for lane in timeline.lanes:
        for x in (lane, *lane.children):
            cells = (
                _density(x, t0, dt, bar_w)
                if x.array_size is not None
                else _cells(x.segments, t0, dt, bar_w)
            )
            label = _text_label(x)[:label_w].ljust(label_w)
            lines.append(f"{label} │{''.join(cells)}│ {lane_note(x)}")
        if lane.hidden_children:
            lines.append(
                f"{'':{label_w}}  … {lane.hidden_children} more children "
                "(--children N to draw more)"
            )
    lines.append("")
    lines.append(
        "· waiting  ░ starting  █ running on-demand  ▓ running spot  ↯ interrupted  "
        "✗ failed (retried or final)  ▁▄█ array: children running at once"
    )
    return "\n".join(lines) + "\n"


def _text_label(lane: Lane) -> str:
    return ("  " + lane.label) if ":" in lane.key else lane.label


# --------------------------------------------------------------------------- SVG

ROW = 20
LABEL_W = 250
NOTE_W = 330
HEAD = 64
FOOT = 56


def _esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def _seg_title(lane: Lane, s: Segment) -> str:
    parts = [f"{lane.label}: {s.span.value} {duration_text(s.seconds)}"]
    if s.attempt is not None:
        parts.append(f"attempt {s.attempt}")
    if s.compute_environment:
        parts.append(f"{s.compute_environment} ({s.capacity_type or '?'})")
    if s.outcome is not None and s.outcome is not Outcome.ONGOING:
        parts.append(s.outcome.value.lower())
    if s.detail:
        parts.append(s.detail)
    return ", ".join(parts)


def _marks(s: Segment, x: float, y: float) -> list[str]:
    """Paths, not glyphs: the picture needs no font for its marks."""
    h = ROW - 6
    if s.outcome is Outcome.INTERRUPTED:
        pts = f"{x - 1},{y} {x - 6},{y + h / 2 + 1} {x - 2},{y + h / 2} {x - 5},{y + h}"
        return [
            f'<polyline class="bolt" points="{pts}" fill="none" stroke="{COLORS["bolt"]}" '
            'stroke-width="2.5" stroke-linejoin="round"/>'
        ]
    if s.outcome in CROSS_OUTCOMES:
        c = COLORS["cross"]
        return [
            f'<path class="cross" d="M{x - 8},{y + 1} l7,{h - 2} M{x - 1},{y + 1} l-7,{h - 2}" '
            f'stroke="{c}" stroke-width="2.5"/>'
        ]
    if s.outcome is Outcome.SUCCEEDED and s.span is Span.RUNNING:
        return [
            f'<path class="tick" d="M{x - 8},{y + h / 2} l3,4 l5,-8" fill="none" '
            f'stroke="{COLORS["tick"]}" stroke-width="2"/>'
        ]
    return []


def timeline_svg(timeline: Timeline, width: int = 1200) -> str:
    """Pure: the timeline as a standalone SVG document."""
    lanes = timeline.all_lanes()
    rows = len(lanes) + sum(1 for x in timeline.lanes if x.hidden_children)
    bar_w = max(200, width - LABEL_W - NOTE_W - 20)
    height = HEAD + rows * ROW + FOOT
    span = max(1.0, timeline.end - timeline.start)
    t0 = timeline.start

    def X(t: float) -> float:
        return LABEL_W + (t - t0) / span * bar_w

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="DejaVu Sans, Verdana, Arial, sans-serif" '
        'font-size="12">',
        f'<rect width="{width}" height="{height}" fill="#ffffff"/>',
        f'<text x="10" y="20" font-size="15" font-weight="bold" fill="{COLORS["text"]}">'
        f"{_esc(timeline.title or 'kubatch timeline')}</text>",
        f'<text x="10" y="38" fill="{COLORS["muted"]}">{_esc(clock(t0))} · '
        f"{_esc(duration_text(span))} · {len(timeline.lanes)} jobs</text>",
    ]
    step = tick_step(span, max(2, bar_w // 90))
    for k in range(0, int(span // step) + 1):
        x = X(t0 + k * step)
        out.append(
            f'<line x1="{x:.1f}" y1="{HEAD - 8}" x2="{x:.1f}" y2="{HEAD + rows * ROW}" '
            f'stroke="{COLORS["grid"]}"/>'
        )
        out.append(
            f'<text x="{x:.1f}" y="{HEAD - 12}" text-anchor="middle" '
            f'fill="{COLORS["muted"]}">{_esc(offset_text(k * step))}</text>'
        )
    y = HEAD
    for lane in timeline.lanes:
        group_rows = 1 + len(lane.children) + (1 if lane.hidden_children else 0)
        if lane.array_size is not None:
            out.append(
                f'<rect x="0" y="{y}" width="{width}" height="{group_rows * ROW}" '
                f'fill="{COLORS["group"]}"/>'
            )
        for x_lane in (lane, *lane.children):
            out.extend(_svg_lane(x_lane, y, X, bar_w, width))
            y += ROW
        if lane.hidden_children:
            out.append(
                f'<text x="{LABEL_W}" y="{y + 14}" fill="{COLORS["muted"]}">… '
                f"{lane.hidden_children} more children of {_esc(lane.label)}</text>"
            )
            y += ROW
    if timeline.start <= timeline.now <= timeline.end:
        x = X(timeline.now)
        out.append(
            f'<line x1="{x:.1f}" y1="{HEAD - 8}" x2="{x:.1f}" y2="{y}" '
            'stroke="#cf222e" stroke-dasharray="3,3"/>'
        )
    out.extend(_legend(y + 14, width))
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _svg_lane(lane: Lane, y: float, X: object, bar_w: int, width: int) -> list[str]:
    assert callable(X)
    child = ":" in lane.key
    out = [
        f'<g class="lane" data-key="{_esc(lane.key)}">',
        f'<text x="{22 if child else 10}" y="{y + 14}" fill="{COLORS["text"]}"'
        + ("" if child else ' font-weight="bold"')
        + f">{_esc(_clip(lane.label, 30 if child else 32))}</text>",
    ]
    if lane.array_size is not None:
        out.extend(_svg_parent(lane, y, X))
    else:
        for s in lane.segments:
            x0, x1 = X(s.start), X(s.end)
            fill = (
                COLORS["Waiting"]
                if s.span is Span.WAITING
                else COLORS["Starting"]
                if s.span is Span.STARTING
                else run_color(s.capacity_type)
            )
            hgt = ROW - 10 if s.span is Span.WAITING else ROW - 6
            top = y + (5 if s.span is Span.WAITING else 3)
            out.append(
                f'<rect class="{s.span.value.lower()}" x="{x0:.1f}" y="{top}" '
                f'width="{max(1.5, x1 - x0):.1f}" height="{hgt}" fill="{fill}" rx="2">'
                f"<title>{_esc(_seg_title(lane, s))}</title></rect>"
            )
        for s in lane.segments:
            if s.outcome is not None and (s.span is not Span.WAITING or s.attempt is None):
                out.extend(_marks(s, X(s.end) + (0 if s.span is not Span.WAITING else 9), y + 3))
    out.append(
        f'<text x="{width - NOTE_W + 4}" y="{y + 14}" fill="{COLORS["muted"]}">'
        f"{_esc(_clip(lane_note(lane), 46))}</text>"
    )
    out.append("</g>")
    return out


def _svg_parent(lane: Lane, y: float, X: object) -> list[str]:
    assert callable(X)
    out = []
    for s in lane.segments:
        if s.span is Span.WAITING:
            out.append(
                f'<rect class="waiting" x="{X(s.start):.1f}" y="{y + 5}" '
                f'width="{max(1.5, X(s.end) - X(s.start)):.1f}" height="{ROW - 10}" '
                f'fill="{COLORS["Waiting"]}" rx="2"><title>{_esc(_seg_title(lane, s))}'
                "</title></rect>"
            )
    peak = max((n for _, n in lane.running), default=0)
    if peak > 0:
        base = y + ROW - 2
        pts = [f"{X(lane.running[0][0]):.1f},{base}"]
        for i, (t, n) in enumerate(lane.running):
            h = n / peak * (ROW - 4)
            nxt = lane.running[i + 1][0] if i + 1 < len(lane.running) else t
            pts.append(f"{X(t):.1f},{base - h:.1f}")
            pts.append(f"{X(nxt):.1f},{base - h:.1f}")
        pts.append(f"{X(lane.running[-1][0]):.1f},{base}")
        out.append(
            f'<polygon class="running-children" points="{" ".join(pts)}" '
            f'fill="{COLORS["OnDemand"]}" fill-opacity="0.55">'
            f"<title>{_esc(lane.label)}: up to {peak} children running at once</title>"
            "</polygon>"
        )
    last = lane.segments[-1] if lane.segments else None
    if last is not None and last.outcome in (Outcome.FAILED, Outcome.SUCCEEDED):
        out.extend(
            _marks(
                Segment(Span.RUNNING, last.start, last.end, outcome=last.outcome),
                X(last.end) + 9,
                y + 3,
            )
        )
    return out


def _legend(y: float, width: int) -> list[str]:
    items = [
        ("rect", COLORS["Waiting"], "waiting"),
        ("rect", COLORS["Starting"], "starting"),
        ("rect", COLORS["OnDemand"], "running, on-demand"),
        ("rect", COLORS["Spot"], "running, spot"),
        ("bolt", COLORS["bolt"], "interrupted"),
        ("cross", COLORS["cross"], "failed (retried or final)"),
        ("tick", COLORS["tick"], "succeeded"),
    ]
    out, x = [], 10.0
    for kind, color, text in items:
        if kind == "rect":
            out.append(f'<rect x="{x}" y="{y}" width="18" height="12" fill="{color}" rx="2"/>')
        else:
            outcome = {
                "bolt": Outcome.INTERRUPTED,
                "cross": Outcome.FAILED,
                "tick": Outcome.SUCCEEDED,
            }[kind]
            out.extend(_marks(Segment(Span.RUNNING, 0, 0, outcome=outcome), x + 14, y - 1))
        out.append(f'<text x="{x + 24}" y="{y + 11}" fill="{COLORS["text"]}">{_esc(text)}</text>')
        x += 24 + 7.2 * len(text) + 18
    return out


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


# --------------------------------------------------------------------------- HTML


def timeline_html(timeline: Timeline, width: int = 1200) -> str:
    """Pure: a standalone HTML page: the SVG and a table of the jobs (no script)."""
    rows = []
    for lane in timeline.lanes:
        for x in (lane, *lane.children):
            ces = ", ".join(f"{ce} ({ct or '?'})" for ce, ct in x.compute_environments)
            rows.append(
                "<tr>"
                + "".join(
                    f"<td>{_esc(v)}</td>"
                    for v in (
                        ("\u2003" if ":" in x.key else "") + x.label,
                        x.queue,
                        x.phase.value,
                        x.reason,
                        x.attempts,
                        x.retries,
                        x.interruptions,
                        duration_text(x.seconds(Span.WAITING)),
                        duration_text(x.seconds(Span.RUNNING)),
                        ces or "-",
                        money(x.cost),
                    )
                )
                + "</tr>"
            )
    head = "".join(
        f"<th>{h}</th>"
        for h in (
            "Job",
            "Queue",
            "Phase",
            "Reason",
            "Attempts",
            "Retried",
            "Interrupted",
            "Waited",
            "Ran",
            "Compute environments",
            "Cost",
        )
    )
    title = _esc(timeline.title or "kubatch timeline")
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{title}</title><style>"
        "body{font-family:DejaVu Sans,Verdana,Arial,sans-serif;margin:24px;color:#1f2328}"
        "table{border-collapse:collapse;margin-top:16px;font-size:13px}"
        "td,th{border:1px solid #d0d7de;padding:3px 8px;text-align:left}"
        "th{background:#f6f8fa}</style></head><body>\n"
        f"<h1>{title}</h1>\n<p>{_esc(clock(timeline.start))} · "
        f"{_esc(duration_text(timeline.end - timeline.start))} · {len(timeline.lanes)} jobs</p>\n"
        + timeline_svg(timeline, width)
        + f"<table><thead><tr>{head}</tr></thead><tbody>\n"
        + "\n".join(rows)
        + "\n</tbody></table>\n</body></html>\n"
    )
