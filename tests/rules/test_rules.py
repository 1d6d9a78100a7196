"""dialback's alert rules: promtool checks and unit tests, and the rules' contract.

The rules file is the one the chart ships; docs/alerts.md holds a runbook per alert.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml

from dialback.observability.catalogue import CATALOGUE
from tests.rules.overlay import RULES_FILE, shortened_rules, write_shortened_rules

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
ALERTS_DOC = ROOT / "docs/alerts.md"
TEST_FILES = sorted(HERE.glob("*.test.yaml"))
RUNBOOK_BASE = "https://github.com/dialback/dialback/blob/main/docs/alerts.md#"
INSTALL_HINT = "promtool is missing: install it with `apt-get install -y prometheus`"

# GES's PrometheusRule, alert by alert and group by group (reference §2).
GES_ALERTS: dict[str, tuple[str, ...]] = {
    "ges-performance": (
        "GES_UP",
        "GES_CPU_USAGE",
        "GES_MEMORY_USAGE",
        "GES-NODE-JS-DELAY-WARNING",
        "GES_NOT_READY_CRITICAL",
        "GES_NOT_READY_WARNING",
        "GES_PODS_RESTART",
    ),
    "ges-health": (
        "GES_HEALTH",
        "GES_ALL_URS_DOWN",
        "GES_REDIS_DOWN",
        "GES_ORS_REDIS_DOWN",
        "GES_GWS_AUTH_DOWN",
        "GES_GWS_ENVIRONMENT_DOWN",
        "GES_GWS_CONFIG_DOWN",
        "GES_GWS_SERVER_ERROR",
    ),
    "ges-networking": (
        "GES_HTTP_400_POD",
        "GES_HTTP_404_POD",
        "GES_HTTP_500",
        "GES_HTTP_401_POD",
        "GES_HTTP_400_TENANT",
        "GES_HTTP_404_TENANT",
        "GES_HTTP_500_TENANT",
        "GES_HTTP_401_TENANT",
        "GES_SLOW_HTTP_RESPONSE_TIME",
    ),
    "ges-business-logic": (
        "GES_RBAC_CREATE_VQ_PROXY_ERROR",
        "GES_LOGGING_FAILURE",
        "GES_UNCAUGHT_EXCEPTION",
        "GES_INVALID_CONTENT_LENGTH",
        "GES_DNS_FAILURE",
        "GES_MONITOR_LAGGING_BEHIND",
        "GES_CB_TTL_LIMIT_REACHED",
        "GES_CB_ENQUEUE_LIMIT_REACHED",
        "GES_CB_SUBMIT_FAILED",
        "GES_GWS_INCORRECT_CLIENT_CREDENTIALS",
        "GES_NEXUS_ACCESS_FAILURE",
    ),
}
BEYOND_GES = (
    "DIALBACK_POSTGRES_DOWN",
    "DIALBACK_HEALTH_CHECK_STALE",
    "DIALBACK_MONITOR_STUCK",
    "DIALBACK_METRICS_ABSENT",
    "DIALBACK_TARGET_DOWN",
    "DIALBACK_API_ERROR_BUDGET_BURN_FAST",
    "DIALBACK_API_ERROR_BUDGET_BURN_SLOW",
    "DIALBACK_DISPATCH_LATENESS_BUDGET_BURN_FAST",
    "DIALBACK_DISPATCH_LATENESS_BUDGET_BURN_SLOW",
    "DIALBACK_ROUTING_STREAM_LOST",
    "DIALBACK_CALLBACKS_TIMED_OUT",
    "DIALBACK_CALLBACK_PARKED",
    "DIALBACK_DISPATCH_STALLED",
    "DIALBACK_DISPATCH_NO_PROGRESS",
    "DIALBACK_AUTH_BRUTE_FORCE",
    "DIALBACK_AUDIT_WRITE_FAILED",
)
SEED_EXPRESSIONS = ("increase(RBAC_CREATE_VQ_PROXY_ERROR[10m]) > 5", "ORS_REDIS_STATUS > 0")

# Metrics other exporters provide: Prometheus itself, kube-state-metrics, cAdvisor.
EXTERNAL_METRICS = re.compile(r"up|ALERTS|ALERTS_FOR_STATE|kube_\w+|container_\w+")
PROMQL_KEYWORDS = frozenset(
    {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring"}
    | {"group_left", "group_right", "inf", "nan", "Inf", "NaN"}
)


def load(path: Path) -> Any:
    """A YAML file, parsed."""
    return yaml.safe_load(path.read_text())


RULES = load(RULES_FILE)
GROUPS: dict[str, list[dict[str, Any]]] = {g["name"]: g["rules"] for g in RULES["groups"]}
ALERTS: dict[str, dict[str, Any]] = {
    r["alert"]: r for rules in GROUPS.values() for r in rules if "alert" in r
}
RECORDED = {r["record"] for rules in GROUPS.values() for r in rules if "record" in r}


def promtool() -> str:
    """The promtool binary, or a failure that says how to install it."""
    path = shutil.which("promtool")
    if path is None:
        pytest.fail(INSTALL_HINT)
    return path


@pytest.fixture(scope="module")
def promtool_runs() -> dict[str, subprocess.CompletedProcess[str]]:
    """`promtool check rules` and every `promtool test rules` file, run concurrently."""
    binary = promtool()
    commands = {"check": [binary, "check", "rules", str(RULES_FILE)]} | {
        f.name: [binary, "test", "rules", f.name] for f in TEST_FILES
    }

    def run(cmd: list[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(cmd, cwd=HERE, capture_output=True, text=True, timeout=120)

    with ThreadPoolExecutor(max_workers=len(commands)) as pool:
        futures = {name: pool.submit(run, cmd) for name, cmd in commands.items()}
        return {name: f.result() for name, f in futures.items()}


def test_promtool_check_rules(promtool_runs: dict[str, subprocess.CompletedProcess[str]]) -> None:
    done = promtool_runs["check"]
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {sum(len(r) for r in GROUPS.values())} rules found" in done.stdout


@pytest.mark.parametrize("test_file", [f.name for f in TEST_FILES])
def test_promtool_unit_tests(
    test_file: str, promtool_runs: dict[str, subprocess.CompletedProcess[str]]
) -> None:
    done = promtool_runs[test_file]
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_unit_tests_cover_every_alert_firing_and_quiet() -> None:
    fires: set[str] = set()
    quiet: set[str] = set()
    for path in TEST_FILES:
        doc = load(path)
        assert doc["rule_files"] == ["../../charts/dialback/rules/dialback-rules.yaml"]
        for group in doc["tests"]:
            for case in group.get("alert_rule_test", []):
                assert case["alertname"] in ALERTS, f"{path.name}: unknown {case['alertname']}"
                expected = case.get("exp_alerts") or []
                (fires if expected else quiet).add(case["alertname"])
                for alert in expected:
                    assert alert["exp_labels"]["severity"], path.name
                    assert alert["exp_annotations"]["summary"], path.name
    assert set(ALERTS) - fires == set(), "alerts without a firing case"
    assert set(ALERTS) - quiet == set(), "alerts without a not-firing case"


def test_every_ges_alert_is_present_in_its_ges_group() -> None:
    for group, names in GES_ALERTS.items():
        assert group in GROUPS, f"group {group} missing"
        in_group = {r.get("alert") for r in GROUPS[group]}
        assert set(names) <= in_group, f"{group} lacks {set(names) - in_group}"
    assert sum(len(n) for n in GES_ALERTS.values()) == 35
    assert set(BEYOND_GES) <= set(ALERTS)
    assert set(ALERTS) == {n for names in GES_ALERTS.values() for n in names} | set(BEYOND_GES)


def test_alert_names_are_unique() -> None:
    names = [r["alert"] for rules in GROUPS.values() for r in rules if "alert" in r]
    assert len(names) == len(set(names))


@pytest.mark.parametrize("name", sorted(ALERTS))
def test_alert_labels_and_annotations(name: str) -> None:
    rule = ALERTS[name]
    labels, annotations = rule["labels"], rule["annotations"]
    assert labels["severity"] in {"critical", "warning", "info"}
    assert labels["action"] in {"page", "email"}
    # Only critical alerts page; warnings and info go by email.
    assert (labels["action"] == "page") == (labels["severity"] == "critical")
    assert labels["service"] == "GES"  # GES's Alarms panel and routes key on it
    for key in ("summary", "description", "dashboard", "runbook_url"):
        assert annotations.get(key, "").strip(), f"{name}: no {key}"
    assert annotations["dashboard"].startswith("dialback — ")
    assert annotations["runbook_url"] == RUNBOOK_BASE + github_anchor(name)


def test_dashboard_pointers_name_real_panels() -> None:
    titles: dict[str, set[str]] = {}
    for path in sorted((ROOT / "charts/dialback/dashboards").glob("*.json")):
        board = json.loads(path.read_text())
        panels = board.get("panels", [])
        nested = [q for p in panels for q in p.get("panels", [])]  # inside collapsed rows
        titles[board["title"]] = {p.get("title", "") for p in panels + nested}
    for name, rule in ALERTS.items():
        board, *parts = rule["annotations"]["dashboard"].split(" > ")
        assert board in titles, f"{name}: no dashboard {board!r}"
        assert parts, f"{name}: no row or panel named"
        for part in parts:
            assert part in titles[board], f"{name}: {board!r} has no row or panel {part!r}"


def github_anchor(heading: str) -> str:
    """The anchor GitHub generates for a Markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def doc_anchors() -> set[str]:
    """Every heading anchor in docs/alerts.md."""
    headings = re.findall(r"^#{1,6} +(.+?) *$", ALERTS_DOC.read_text(), re.MULTILINE)
    return {github_anchor(h) for h in headings}


def test_every_runbook_url_points_to_a_heading_of_alerts_md() -> None:
    anchors = doc_anchors()
    for name, rule in ALERTS.items():
        anchor = rule["annotations"]["runbook_url"].removeprefix(RUNBOOK_BASE)
        assert anchor in anchors, f"{name}: no heading for #{anchor} in docs/alerts.md"


def test_alerts_md_has_a_runbook_heading_and_table_row_per_alert() -> None:
    text = ALERTS_DOC.read_text()
    for name in ALERTS:
        assert re.search(rf"^### {re.escape(name)}$", text, re.MULTILINE), name
        assert f"[{name}](#{github_anchor(name)})" in text, f"{name} missing from the table"


def test_no_grafana_variable_in_any_rule() -> None:
    grafana = re.compile(r"\$(?:__\w+|[A-Z]\w*|\{)")
    for rules in GROUPS.values():
        for rule in rules:
            assert "$" not in rule["expr"], rule
            texts = [
                *(rule.get("labels") or {}).values(),
                *(rule.get("annotations") or {}).values(),
            ]
            for text in texts:
                assert not grafana.search(str(text)), (rule.get("alert"), text)
    assert "$Pod" not in RULES_FILE.read_text()


def metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression selects (strings, matchers and clauses removed)."""
    text = re.sub(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`', '""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for m in re.finditer(r"(?<![\w.:])([A-Za-z_:][\w:]*)(?![\w:])(?!\s*\()", text):
        if m.group(1) not in PROMQL_KEYWORDS:
            names.add(m.group(1))
    return names


def known_metric(name: str) -> bool:
    """Whether dialback's catalogue, this file's recording rules or a known exporter has it."""
    catalogued = {m.name for m in CATALOGUE} | {
        f"{m.name}{suffix}"
        for m in CATALOGUE
        if m.kind == "histogram"
        for suffix in ("_bucket", "_sum", "_count")
    }
    return name in catalogued or name in RECORDED or bool(EXTERNAL_METRICS.fullmatch(name))


def test_metric_name_extraction() -> None:
    expr = (
        'sum by (pod) (increase(ges_http_failed_requests_total{httpCode="400"}[2m]))'
        " > on (pod) group_left max by (pod) (http_400_tolerance) and up == 0"
    )
    assert metric_names(expr) == {"ges_http_failed_requests_total", "http_400_tolerance", "up"}


def test_every_queried_metric_exists() -> None:
    for rules in GROUPS.values():
        for rule in rules:
            names = metric_names(rule["expr"])
            assert names, rule
            unknown = {n for n in names if not known_metric(n)}
            assert not unknown, f"{rule.get('alert') or rule.get('record')}: unknown {unknown}"
    # The metrics GES_HEALTH's description lists through a query template.
    template = ALERTS["GES_HEALTH"]["annotations"]["description"]
    listed = re.search(r'__name__=~\\"([^\\]+)\\"', template)
    assert listed is not None
    assert all(known_metric(n) for n in listed.group(1).split("|"))
    # GES's event-loop alias is catalogued, but the rule uses the name dialback really exposes.
    assert metric_names(ALERTS["GES-NODE-JS-DELAY-WARNING"]["expr"]) == {
        "ges_nodejs_eventloop_lag_seconds"
    }
    assert metric_names(ALERTS["GES_DNS_FAILURE"]["expr"]) == {"DNS_FAILURE"}


def test_the_seeds_rules_work_verbatim() -> None:
    assert ALERTS["GES_ORS_REDIS_DOWN"]["expr"].strip() == "ORS_REDIS_STATUS > 0"
    promql_tests = [
        t["expr"]
        for path in TEST_FILES
        for group in load(path)["tests"]
        for t in group.get("promql_expr_test", [])
    ]
    for expr in SEED_EXPRESSIONS:
        assert all(known_metric(n) for n in metric_names(expr))
        assert expr in promql_tests, f"no promtool test evaluates {expr!r}"


def test_overlay_changes_only_for(tmp_path: Path) -> None:
    original_text = RULES_FILE.read_text()
    text = shortened_rules("3s")
    before, after = RULES, yaml.safe_load(text)
    assert [g["name"] for g in after["groups"]] == [g["name"] for g in before["groups"]]
    with_for = 0
    for g_before, g_after in zip(before["groups"], after["groups"], strict=True):
        assert {k: v for k, v in g_after.items() if k != "rules"} == {
            k: v for k, v in g_before.items() if k != "rules"
        }
        for r_before, r_after in zip(g_before["rules"], g_after["rules"], strict=True):
            assert {k: v for k, v in r_after.items() if k != "for"} == {
                k: v for k, v in r_before.items() if k != "for"
            }
            assert ("for" in r_after) == ("for" in r_before)
            if "for" in r_before:
                with_for += 1
                assert r_after["for"] == "3s"
    assert with_for >= 20
    changed = [
        (a, b) for a, b in zip(original_text.splitlines(), text.splitlines(), strict=True) if a != b
    ]
    assert len(changed) == with_for - sum(1 for r in ALERTS.values() if str(r.get("for")) == "3s")
    assert all(b.strip() == "for: 3s" and a.strip().startswith("for: ") for a, b in changed)
    dest = write_shortened_rules(tmp_path / "rules.yaml", "1s")
    done = subprocess.run(
        [promtool(), "check", "rules", str(dest)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    with pytest.raises(ValueError):
        shortened_rules("soon")
