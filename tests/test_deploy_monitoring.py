"""The shipped monitoring (docs/operations.md#monitoring): deploy/prometheus/alerts.yml has the
rule-file shape, every rule a `for`, a severity and a runbook that names a section of the
operations guide; deploy/grafana/hookyard.json imports through a `${DS_PROMETHEUS}` input; every
metric either names is on a real app's /metrics; every PromQL expression is balanced, and,
where `promtool` is installed (scripts/test installs Debian's `prometheus` for it), parsed
by Prometheus itself, and the rules' unit tests (alerts_test.yml) pass."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import SECRETS

ROOT = Path(__file__).resolve().parent.parent
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
ALERT_TESTS = ROOT / "deploy" / "prometheus" / "alerts_test.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "hookyard.json"
OPERATIONS = ROOT / "docs" / "operations.md"
PROMTOOL = shutil.which("promtool")
NO_PROMTOOL = "promtool is not installed (apt-get install prometheus; scripts/test does as root)"
# Series Prometheus makes itself: the scrape's health and the alerts' own state.
PROMETHEUS_SERIES = {"up", "ALERTS"}
SEVERITIES = {"critical", "warning", "info"}
# Sample names per family type (the text format's suffixes).
SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
}
KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring"}
KEYWORDS |= {"group_left", "group_right", "inf", "nan"}
OPENERS = {"(": ")", "[": "]", "{": "}"}


def rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def dashboard_exprs() -> list[str]:
    return [
        target["expr"] for panel in dashboard()["panels"] for target in panel.get("targets", [])
    ]


def all_exprs() -> list[str]:
    return [rule["expr"] for rule in rules()] + dashboard_exprs()


def as_promql(expr: str) -> str:
    """A dashboard query as Prometheus takes it: Grafana's variables filled in."""
    return expr.replace("$__rate_interval", "5m").replace("$source", ".*")


def _without_strings(expr: str) -> str:
    return re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', expr)


def balanced(expr: str) -> bool:
    """Brackets open and close in order, outside string literals; quotes are closed."""
    text = _without_strings(expr)
    if any(quote in text.replace('""', "") for quote in "\"'`"):
        return False
    stack: list[str] = []
    for char in text:
        if char in OPENERS:
            stack.append(OPENERS[char])
        elif char in OPENERS.values() and (not stack or stack.pop() != char):
            return False
    return not stack


def metric_names(expr: str) -> set[str]:
    """The series names a PromQL expression selects: what is left once strings, label
    matchers, ranges, grouping clauses, function calls and keywords are taken out."""
    text = _without_strings(as_promql(expr))
    text = re.sub(r"\{[^{}]*\}|\[[^\[\]]*\]", " ", text)
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)", " ", text)
    names = set()
    for match in re.finditer(r"(?<![\w.])[A-Za-z_:][\w:]*", text):
        rest = text[match.end() :].lstrip()
        if match.group() not in KEYWORDS and not rest.startswith("("):
            names.add(match.group())
    return names


def exposed(api: TestClient) -> dict[str, set[str]]:
    """Family name -> the sample names /metrics shows (or would, once a label is used)."""
    scraper = {"Authorization": f"Bearer {SECRETS['admin']}"}  # /metrics is not public
    answer = api.get("/metrics", headers=scraper)
    assert answer.status_code == 200, answer.text
    return {
        family.name: {family.name + suffix for suffix in SUFFIXES.get(family.type, ("",))}
        for family in text_string_to_metric_families(answer.text)
    }


def promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run(
        [PROMTOOL, *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )


# -- the small checker itself -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ('sum by (source) (rate(a_total{reason="x(", b=~"$source"}[5m])) > 0', {"a_total"}),
        ("histogram_quantile(0.99, sum(rate(h_bucket[$__rate_interval])) by (le))", {"h_bucket"}),
        ("max(g) - (max(g offset 15m) or max(g) * 0) > 0 and on () c == 0", {"g", "c"}),
        ("count(x > 0) or vector(0)", {"x"}),
    ],
)
def test_the_checker_finds_the_series_an_expression_selects(expr: str, names: set[str]) -> None:
    assert balanced(expr)
    assert metric_names(expr) == names


@pytest.mark.parametrize("expr", ["sum(rate(x[5m])", 'max(x{a="b})', "rate(x[5m)]", "x)"])
def test_the_checker_refuses_unbalanced_expressions(expr: str) -> None:
    assert not balanced(expr)


# -- the alerting rules -----------------------------------------------------------------------


def test_the_alerts_file_has_the_rule_file_shape() -> None:
    document = yaml.safe_load(ALERTS.read_text())
    assert set(document) == {"groups"}
    names = []
    for group in document["groups"]:
        assert set(group) == {"name", "rules"}, group.get("name")
        assert group["rules"], group["name"]
        for rule in group["rules"]:
            assert set(rule) == {"alert", "expr", "for", "labels", "annotations"}, rule
            assert re.fullmatch(r"Hookyard[A-Za-z]+", rule["alert"])
            assert re.fullmatch(r"\d+[smhd]", rule["for"]), rule["alert"]
            assert rule["labels"]["severity"] in SEVERITIES, rule["alert"]
            assert set(rule["annotations"]) == {"summary", "description", "runbook"}
            names.append(rule["alert"])
    assert len(names) == len(set(names)), "an alert name is used twice"
    assert len({group["name"] for group in document["groups"]}) == len(document["groups"])


def test_every_runbook_is_a_section_of_the_operations_guide() -> None:
    anchors = {
        re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        for heading in re.findall(r"^#+ (.+)$", OPERATIONS.read_text(), flags=re.MULTILINE)
    }
    for rule in rules():
        page, _, anchor = rule["annotations"]["runbook"].partition("#")
        assert page == "docs/operations.md", rule["alert"]
        assert anchor in anchors, f"{rule['alert']}: no section #{anchor} in {page}"
    # Each alert is described in the Monitoring section, under its own name or its runbook's.
    monitoring = OPERATIONS.read_text().partition("## Monitoring")[2]
    for rule in rules():
        assert rule["alert"] in monitoring, rule["alert"]


@pytest.mark.skipif(PROMTOOL is None, reason=NO_PROMTOOL)
def test_promtool_accepts_the_rules() -> None:
    checked = promtool("check", "rules", str(ALERTS))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(rules())} rules found" in checked.stdout


@pytest.mark.skipif(PROMTOOL is None, reason=NO_PROMTOOL)
def test_the_rules_fire_as_their_unit_tests_expect(tmp_path: Path) -> None:
    # promtool compares annotations word for word; the cases are about what fires, when.
    document = yaml.safe_load(ALERTS.read_text())
    for group in document["groups"]:
        for rule in group["rules"]:
            del rule["annotations"]
    (tmp_path / ALERTS.name).write_text(yaml.safe_dump(document))
    shutil.copy(ALERT_TESTS, tmp_path / ALERT_TESTS.name)
    tested = promtool("test", "rules", ALERT_TESTS.name, cwd=tmp_path)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout


# -- the dashboard ----------------------------------------------------------------------------


def test_the_dashboard_imports_through_a_prometheus_datasource_input() -> None:
    board = dashboard()
    assert board["__inputs"] == [
        {
            "name": "DS_PROMETHEUS",
            "label": "Prometheus",
            "description": "",
            "type": "datasource",
            "pluginId": "prometheus",
            "pluginName": "Prometheus",
        }
    ]
    source = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
    panels = board["panels"]
    assert len({panel["id"] for panel in panels}) == len(panels)
    titles = [panel["title"] for panel in panels if panel["type"] != "row"]
    assert len(titles) == len(set(titles))
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24 and grid["h"] > 0, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == source, panel["title"]
        assert panel["targets"], panel["title"]
        assert len({t["refId"] for t in panel["targets"]}) == len(panel["targets"])
        for target in panel["targets"]:
            assert target["datasource"] == source, panel["title"]
    for variable in board["templating"]["list"]:
        assert variable["datasource"] == source, variable["name"]
    # Nothing of an exporting Grafana's own: no datasource named other than by the input.
    assert "${DS_" in DASHBOARD.read_text()
    assert not re.search(r'"uid": "(?!\$\{DS_PROMETHEUS\}|hookyard")', DASHBOARD.read_text())


def test_the_dashboard_covers_ingest_queue_processing_mail_sync_and_alerts() -> None:
    exprs = " ".join(dashboard_exprs())
    for needed in (
        "hookyard_webhooks_received_total",
        "hookyard_webhooks_rejected_total",
        "histogram_quantile(0.5, sum by (le) (rate(hookyard_ack_latency_seconds_bucket",
        "histogram_quantile(0.99, sum by (le) (rate(hookyard_ack_latency_seconds_bucket",
        "hookyard_queue_depth",
        "hookyard_events_processed_total",
        "hookyard_alert_dead_events",
        "hookyard_notifications_sent_total",
        "hookyard_reconcile_runs_total",
        "hookyard_alerts_open",
        "ALERTS{",
    ):
        assert needed in exprs, needed


@pytest.mark.skipif(PROMTOOL is None, reason=NO_PROMTOOL)
def test_promtool_parses_every_dashboard_query(tmp_path: Path) -> None:
    # Each query as a recording rule: `check rules` parses it with Prometheus's own parser.
    recorded = [
        {"record": f"hookyard:dashboard_query_{n}", "expr": as_promql(expr)}
        for n, expr in enumerate(dashboard_exprs())
    ]
    path = tmp_path / "dashboard_queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": recorded}]}))
    checked = promtool("check", "rules", str(path))
    assert checked.returncode == 0, checked.stdout + checked.stderr


# -- both against the app ---------------------------------------------------------------------


def test_every_expression_is_balanced() -> None:
    for expr in all_exprs():
        assert balanced(expr), expr


def test_every_metric_named_is_on_the_apps_metrics(api: TestClient) -> None:
    families = exposed(api)
    samples = set().union(*families.values()) | PROMETHEUS_SERIES
    used: set[str] = set()
    for expr in all_exprs():
        names = metric_names(expr)
        assert names, f"no series in {expr!r}"
        assert names <= samples, f"not on /metrics: {sorted(names - samples)} in {expr!r}"
        used |= names
    for variable in dashboard()["templating"]["list"]:
        match = re.fullmatch(r"label_values\((\w+), *(\w+)\)", variable["query"]["query"])
        assert match, variable["query"]
        assert match.group(1) in samples, match.group(1)
    # And the other way round: each of hookyard's metrics is on the dashboard or in a rule.
    ours = {
        name: names
        for name, names in families.items()
        if name.startswith("hookyard_") and not name.endswith("_created")
    }
    assert len(ours) >= 20, sorted(ours)
    unused = sorted(name for name, names in ours.items() if not names & used)
    assert not unused, f"on /metrics but neither charted nor alerted on: {unused}"
