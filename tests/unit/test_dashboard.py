"""dashboards/kubatch.json: every PromQL expression parses and uses only metrics kubatch exports.

A small recursive-descent PromQL parser (the subset Grafana dashboards use: selectors, range
vectors, aggregations with by/without, functions, binary operators with on/ignoring and
group_left/group_right) extracts each metric selector; the names are checked against the
families of ``kubatch.metrics.Metrics().registry``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from kubatch.metrics import Metrics

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "dashboards" / "kubatch.json"

AGGREGATIONS = {
    "sum", "min", "max", "avg", "count", "stddev", "stdvar", "topk", "bottomk", "quantile",
    "count_values", "group",
}  # fmt: skip
FUNCTIONS = {
    "abs", "absent", "ceil", "changes", "clamp", "clamp_max", "clamp_min", "delta", "deriv",
    "exp", "floor", "histogram_quantile", "idelta", "increase", "irate", "label_replace",
    "label_join", "ln", "log2", "log10", "rate", "resets", "round", "scalar", "sort",
    "sort_desc", "sqrt", "time", "timestamp", "vector", "avg_over_time", "min_over_time",
    "max_over_time", "sum_over_time", "count_over_time", "last_over_time", "predict_linear",
}  # fmt: skip
RANGE_FUNCTIONS = {"rate", "irate", "increase", "resets", "changes"}
"""Functions that only make sense on counters (or histogram series)."""
BINOPS = {"+", "-", "*", "/", "%", "^", "==", "!=", ">", "<", ">=", "<=", "and", "or", "unless"}
GRAFANA_VARS = {
    "$__rate_interval": "5m",
    "$__interval": "1m",
    "$__range": "6h",
    "$queue": ".*",
    "$compute_environment": ".*",
}

TOKEN_RE = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<duration>\[\s*\d+(?:ms|[smhdwy])(?:\d+(?:ms|[smhdwy]))*\s*(?::\s*(?:\d+[smhdwy])?\s*)?\])
  | (?P<number>\d+(?:\.\d+)?(?:e[+-]?\d+)?)
  | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
  | (?P<ident>[a-zA-Z_:][a-zA-Z0-9_:]*)
  | (?P<op>==|!=|>=|<=|=~|!~|[-+*/%^<>=(){},])
    """,
    re.VERBOSE,
)


@dataclass
class Selector:
    metric: str
    in_function: str | None


@dataclass
class Parser:
    text: str
    tokens: list[tuple[str, str]] = field(default_factory=list)
    pos: int = 0
    selectors: list[Selector] = field(default_factory=list)

    def __post_init__(self) -> None:
        i = 0
        while i < len(self.text):
            m = TOKEN_RE.match(self.text, i)
            if not m:
                raise SyntaxError(f"cannot lex at {self.text[i:]!r}")
            kind = m.lastgroup or ""
            if kind != "ws":
                self.tokens.append((kind, m.group()))
            i = m.end()

    def peek(self) -> tuple[str, str]:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else ("eof", "")

    def take(self, value: str | None = None, kind: str | None = None) -> str:
        k, v = self.peek()
        if (value is not None and v != value) or (kind is not None and k != kind):
            raise SyntaxError(f"expected {value or kind}, got {v!r} in {self.text!r}")
        self.pos += 1
        return v

    def parse(self) -> list[Selector]:
        self.expr(None)
        if self.peek()[0] != "eof":
            raise SyntaxError(f"trailing {self.peek()[1]!r} in {self.text!r}")
        return self.selectors

    def expr(self, fn: str | None) -> None:
        self.unary(fn)
        while self.peek()[1] in BINOPS:
            self.take()
            if self.peek()[1] == "bool":
                self.take()
            if self.peek()[1] in ("on", "ignoring"):
                self.take()
                self.labels()
            if self.peek()[1] in ("group_left", "group_right"):
                self.take()
                if self.peek()[1] == "(":
                    self.labels()
            self.unary(fn)

    def unary(self, fn: str | None) -> None:
        if self.peek()[1] in ("-", "+"):
            self.take()
        self.primary(fn)
        if self.peek()[0] == "duration":
            self.take()

    def labels(self) -> None:
        self.take("(")
        while self.peek()[1] != ")":
            self.take(kind="ident")
            if self.peek()[1] == ",":
                self.take()
        self.take(")")

    def matchers(self) -> None:
        self.take("{")
        while self.peek()[1] != "}":
            self.take(kind="ident")
            if self.peek()[1] not in ("=", "!=", "=~", "!~"):
                raise SyntaxError(f"bad matcher operator {self.peek()[1]!r} in {self.text!r}")
            self.take()
            self.take(kind="string")
            if self.peek()[1] == ",":
                self.take()
        self.take("}")

    def args(self, fn: str) -> None:
        self.take("(")
        while self.peek()[1] != ")":
            self.expr(fn)
            if self.peek()[1] == ",":
                self.take()
        self.take(")")

    def primary(self, fn: str | None) -> None:
        kind, value = self.peek()
        if kind in ("number", "string"):
            self.take()
        elif value == "(":
            self.take()
            self.expr(fn)
            self.take(")")
        elif value == "{":
            raise SyntaxError(f"selector without a metric name in {self.text!r}")
        elif kind == "ident" and value in AGGREGATIONS:
            self.take()
            if self.peek()[1] in ("by", "without"):
                self.take()
                self.labels()
            self.args(value)
            if self.peek()[1] in ("by", "without"):
                self.take()
                self.labels()
        elif kind == "ident" and self.tokens[self.pos + 1 : self.pos + 2] == [("op", "(")]:
            if value not in FUNCTIONS:
                raise SyntaxError(f"unknown function {value!r} in {self.text!r}")
            self.take()
            self.args(value)
        elif kind == "ident":
            self.take()
            if self.peek()[1] == "{":
                self.matchers()
            self.selectors.append(Selector(value, fn))
        else:
            raise SyntaxError(f"unexpected {value!r} in {self.text!r}")


def promql_selectors(expr: str) -> list[Selector]:
    """Every metric selector of a PromQL expression (Grafana variables substituted)."""
    for var, sub in sorted(GRAFANA_VARS.items(), key=lambda kv: -len(kv[0])):
        expr = expr.replace(var, sub)
    if "$" in expr:
        raise SyntaxError(f"unknown Grafana variable in {expr!r}")
    return Parser(expr).parse()


def exported_series() -> dict[str, str]:
    """Series names a scrape of kubatch can contain -> the family type."""
    out: dict[str, str] = {}
    for family in Metrics().registry.collect():
        if family.type == "counter":
            out[f"{family.name}_total"] = "counter"
        elif family.type == "histogram":
            for suffix in ("_bucket", "_sum", "_count"):
                out[family.name + suffix] = "histogram"
        else:
            out[family.name] = family.type
    return out


def dashboard() -> Any:
    data = json.loads(DASHBOARD.read_text())
    assert isinstance(data, dict)
    return data


def all_exprs() -> list[tuple[str, str]]:
    out = []
    for panel in dashboard()["panels"]:
        for target in panel.get("targets", []):
            out.append((f"{panel['title']}/{target['refId']}", target["expr"]))
    return out


EXPRS = all_exprs()


@pytest.mark.parametrize(("where", "expr"), EXPRS, ids=[w for w, _ in EXPRS])
def test_every_expr_parses_and_names_exported_metrics(where: str, expr: str) -> None:
    exported = exported_series()
    selectors = promql_selectors(expr)
    assert selectors, f"{where}: no metric in {expr!r}"
    for sel in selectors:
        assert sel.metric in exported, f"{where}: {sel.metric} is not exported by kubatch.metrics"
        if sel.in_function in RANGE_FUNCTIONS:
            assert exported[sel.metric] in ("counter", "histogram"), (
                f"{where}: {sel.in_function}() over the gauge {sel.metric}"
            )
        if sel.in_function is None or sel.in_function not in RANGE_FUNCTIONS:
            assert exported[sel.metric] != "counter", f"{where}: raw counter {sel.metric}"


def test_parser_rejects_what_it_should() -> None:
    for bad in (
        "sum(kubatch_jobs",
        "histogram_quantil(0.5, kubatch_jobs)",
        'kubatch_jobs{queue~"x"}',
        "kubatch_jobs kubatch_jobs",
        '{queue="x"}',
    ):
        with pytest.raises(SyntaxError):
            promql_selectors(bad)
    sels = promql_selectors(
        "sum by (capacity_type) (a * on (ce) group_left (capacity_type) b) / rate(c_total[5m])"
    )
    assert [(s.metric, s.in_function) for s in sels] == [
        ("a", "sum"),
        ("b", "sum"),
        ("c_total", "rate"),
    ]


def test_dashboard_covers_every_exported_family_and_the_required_views() -> None:
    used = {s.metric for _, e in EXPRS for s in promql_selectors(e)}
    families = {f.name for f in Metrics().registry.collect()}
    unused = {f for f in families if not any(u.startswith(f) for u in used)}
    assert not unused, f"exported but never charted: {unused}"
    titles = " ".join(p["title"].lower() for p in dashboard()["panels"])
    for view in ("backlog", "phase", "wait", "run time", "capacity", "spot", "spend", "interrupt"):
        assert view in titles, view
    assert "scheduler" in titles
    exprs = " ".join(e for _, e in EXPRS)
    assert "histogram_quantile(0.99" in exprs


def test_template_variables_query_exported_metrics() -> None:
    exported = exported_series()
    variables = dashboard()["templating"]["list"]
    names = {v["name"] for v in variables}
    assert {"datasource", "queue", "compute_environment"} <= names
    for v in variables:
        if v["type"] == "query":
            m = re.fullmatch(r"label_values\((\w+), (\w+)\)", v["query"]["query"])
            assert m, v["query"]
            assert m.group(1) in exported


def test_panels_are_well_formed() -> None:
    panels = dashboard()["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    for p in panels:
        pos = p["gridPos"]
        assert pos["x"] >= 0, p["title"]
        assert pos["x"] + pos["w"] <= 24, p["title"]
        if p["type"] != "row":
            assert p["datasource"]["uid"] == "${datasource}", p["title"]
            assert p["targets"], p["title"]
            assert p.get("description"), p["title"]
