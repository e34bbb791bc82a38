"""The chart's alerting rules (helm/kubatch/templates/prometheusrule.yaml): rendered by Helm,
checked by Debian's ``promtool`` (``check rules``), each one unit-tested with synthetic series
(``promtool test rules`` on tests/unit/alerts/kubatch-alerts.test.yaml), naming only metrics
kubatch exports, with ``for:`` windows and thresholds taken from the chart's values."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.unit.test_dashboard import RANGE_FUNCTIONS, exported_series, promql_selectors

from kubatch.devkit.prometheus import Tools, ensure, promtool
from kubatch.local.helm import ensure_helm

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "kubatch"
UNIT_TESTS = ROOT / "tests" / "unit" / "alerts" / "kubatch-alerts.test.yaml"


def render_rules(helm: Path, *sets: str) -> dict[str, Any] | None:
    """The rule groups of the chart's PrometheusRule (``None``: the chart renders none)."""
    cmd = [str(helm), "template", "rel", str(CHART), "--namespace", "kubatch-system"]
    for s in sets:
        cmd += ["--set", s]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=120)
    assert proc.returncode == 0, proc.stderr
    rules = [d for d in yaml.safe_load_all(proc.stdout) if d and d["kind"] == "PrometheusRule"]
    assert len(rules) <= 1
    return {"groups": rules[0]["spec"]["groups"]} if rules else None


def all_rules(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for g in doc["groups"] for r in g["rules"]]


@pytest.fixture(scope="module")
def helm() -> Path:
    return ensure_helm()


@pytest.fixture(scope="module")
def tools() -> Tools:
    return ensure()


@pytest.fixture(scope="module")
def rules(helm: Path) -> dict[str, Any]:
    doc = render_rules(helm, "alerts.enabled=true")
    assert doc is not None
    return doc


def test_no_rule_unless_enabled(helm: Path) -> None:
    assert render_rules(helm) is None


def test_rules_pass_promtool_check(rules: dict[str, Any], tools: Tools, tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(rules))
    proc = promtool(tools, "check", "rules", str(path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"SUCCESS: {len(all_rules(rules))} rules found" in proc.stdout


def test_every_rule_has_a_passing_promtool_unit_test(
    rules: dict[str, Any], tools: Tools, tmp_path: Path
) -> None:
    tests = yaml.safe_load(UNIT_TESTS.read_text())
    tested = {
        t["alertname"]
        for case in tests["tests"]
        for t in case["alert_rule_test"]
        if t.get("exp_alerts")
    }
    names = {r["alert"] for r in all_rules(rules)}
    assert names <= tested, f"rules without a firing unit test: {sorted(names - tested)}"
    bare = {
        "groups": [
            {**g, "rules": [{k: v for k, v in r.items() if k != "annotations"} for r in g["rules"]]}
            for g in rules["groups"]
        ]
    }
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(bare))
    tests["rule_files"] = [str(tmp_path / "rules.yaml")]
    (tmp_path / "test.yaml").write_text(yaml.safe_dump(tests))
    proc = promtool(tools, "test", "rules", str(tmp_path / "test.yaml"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


def test_promtool_unit_tests_can_fail(rules: dict[str, Any], tools: Tools, tmp_path: Path) -> None:
    """The harness is not vacuous: a wrong expectation fails."""
    tests = yaml.safe_load(UNIT_TESTS.read_text())
    first = next(t for case in tests["tests"] for t in case["alert_rule_test"] if t["exp_alerts"])
    first["exp_alerts"][0]["exp_labels"]["severity"] = "none-such"
    bare = {
        "groups": [
            {**g, "rules": [{k: v for k, v in r.items() if k != "annotations"} for r in g["rules"]]}
            for g in rules["groups"]
        ]
    }
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(bare))
    tests["rule_files"] = [str(tmp_path / "rules.yaml")]
    (tmp_path / "test.yaml").write_text(yaml.safe_dump(tests))
    proc = promtool(tools, "test", "rules", str(tmp_path / "test.yaml"))
    assert proc.returncode != 0
    assert "FAILED" in proc.stdout + proc.stderr


def test_every_rule_says_what_and_how_bad(rules: dict[str, Any]) -> None:
    for rule in all_rules(rules):
        name = rule["alert"]
        assert name.startswith("Kubatch"), name
        assert rule["labels"]["severity"] in ("info", "warning", "critical"), name
        assert rule["annotations"]["summary"].strip(), name
        assert len(rule["annotations"]["description"]) > 60, name
        assert rule.get("for"), f"{name} has no for: window"


def test_rules_name_only_exported_metrics(rules: dict[str, Any]) -> None:
    exported = exported_series()
    for rule in all_rules(rules):
        for sel in promql_selectors(rule["expr"]):
            assert sel.metric in exported, f"{rule['alert']}: {sel.metric} is not exported"
            if sel.in_function in RANGE_FUNCTIONS:
                assert exported[sel.metric] in ("counter", "histogram"), rule["alert"]


def test_windows_and_thresholds_come_from_values(helm: Path) -> None:
    doc = render_rules(
        helm,
        "alerts.enabled=true",
        "alerts.window=20s",
        "alerts.for.queueStuck=3s",
        "alerts.for.computeEnvironmentAtMax=4s",
        "alerts.thresholds.minFailures=7",
        "alerts.ruleLabels.team=batch",
        "alerts.labels.release=kps",
        "alerts.disabled={KubatchSchedulerSlow,KubatchHandlerErrors}",
    )
    assert doc is not None
    by_name = {r["alert"]: r for r in all_rules(doc)}
    assert "KubatchSchedulerSlow" not in by_name
    assert "KubatchHandlerErrors" not in by_name
    assert by_name["KubatchQueueStuck"]["for"] == "3s"
    assert by_name["KubatchComputeEnvironmentAtMax"]["for"] == "4s"
    assert "[20s]" in by_name["KubatchQueueStuck"]["expr"]
    assert ">= 7" in by_name["KubatchJobFailuresHigh"]["expr"]
    assert all(r["labels"]["team"] == "batch" for r in by_name.values())
