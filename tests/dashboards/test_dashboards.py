"""dialback's Grafana dashboards: structure, layout, metric names, and every query run on Prometheus.

The query check backfills synthetic series for every catalogue metric into a throwaway
Prometheus (no scrape targets) and runs each panel expression, with Grafana's variables
substituted, through /api/v1/query: it must parse, evaluate, and return data, both with
"All" selected and with one tenant and one pod selected.
"""

from __future__ import annotations

import itertools
import math
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dialback.observability.catalogue import BY_NAME, MetricDef
from tests.dashboards import promql
from tests.dashboards.promql import (
    DASHBOARDS,
    PrometheusServer,
    dashboard_queries,
    grouping_labels,
    iter_panels,
    load,
    metric_names,
    selectors,
    substitute,
)

TITLES = {
    "dialback-business-logic": "dialback — Business Logic",
    "dialback-performance": "dialback — Performance",
}
CORE_TYPES = frozenset(
    ["timeseries", "stat", "gauge", "table", "state-timeline", "bargauge", "text", "row", "heatmap"]
)
HEALTH_GAUGES = (
    "GES_HEALTH",
    "REDIS_CONNECTION",
    "ORS_REDIS_STATUS",
    "POSTGRES_STATUS",
    "GWS_AUTH_STATUS",
    "GWS_ENV_STATUS",
    "GWS_CONFIG_STATUS",
    "ALL_URS_DOWN",
)
# Labels Prometheus adds from the scrape target (Kubernetes discovery, ServiceMonitor).
TARGET_LABELS = {"pod", "instance", "job", "namespace", "container", "endpoint"}
DS_UID = "${datasource}"


def _histogram_base(name: str) -> str | None:
    for suffix in ("_bucket", "_sum", "_count"):
        base = name.removesuffix(suffix)
        if base != name and base in BY_NAME and BY_NAME[base].kind == "histogram":
            return base
    return None


def _labels_of(name: str) -> set[str] | None:
    """Labels a stored series of `name` may carry; None when any label is fine (ALERTS)."""
    if name == "ALERTS":
        return None
    if name == "up":
        return set(TARGET_LABELS)
    if name in BY_NAME:
        return set(BY_NAME[name].labels) | TARGET_LABELS
    base = _histogram_base(name)
    if base is not None:
        extra = {"le"} if name.endswith("_bucket") else set()
        return set(BY_NAME[base].labels) | TARGET_LABELS | extra
    raise AssertionError(f"{name} is not in the metric catalogue")


def _all_panels() -> Iterator[tuple[str, dict[str, Any]]]:
    for name in DASHBOARDS:
        for panel in iter_panels(load(name)):
            yield name, panel


# --------------------------------------------------------------------------- structure
@pytest.mark.parametrize("name", DASHBOARDS)
def test_file_is_a_dashboard_with_title_uid_and_schema(name: str) -> None:
    path = promql.DASHBOARD_DIR / f"{name}.json"
    d = load(name)
    assert d["uid"] == name
    assert d["title"] == TITLES[name]
    assert d["schemaVersion"] >= 39
    assert d.get("id") is None, "an exported id would clash on import"
    assert "dialback" in d["tags"]
    assert path.read_text(encoding="utf-8").endswith("\n")


@pytest.mark.parametrize("name", DASHBOARDS)
def test_variables(name: str) -> None:
    variables = {v["name"]: v for v in load(name)["templating"]["list"]}
    assert set(variables) == {"datasource", "tenant", "pod"}
    ds = variables["datasource"]
    assert ds["type"] == "datasource" and ds["query"] == "prometheus"
    expected = {
        "tenant": "label_values(ges_callbacks_created, tenant)",
        "pod": "label_values(ges_process_start_time_seconds, pod)",
    }
    for var, query in expected.items():
        v = variables[var]
        assert v["type"] == "query"
        assert v["datasource"] == {"type": "prometheus", "uid": DS_UID}
        assert v["definition"] == query and v["query"]["query"] == query
        assert v["multi"] is True and v["includeAll"] is True
        # "All" must also match series outside the variable's list (tenant="undefined",
        # series of a pod that has not reported a start time yet).
        assert v["allValue"] == ".*"


def test_health_and_liveliness_is_the_top_panel() -> None:
    panels = load("dialback-performance")["panels"]
    health = panels[0]
    assert health["title"] == "Health and Liveliness"
    assert health["type"] == "state-timeline"
    assert health["gridPos"]["y"] == 0 and health["gridPos"]["x"] == 0
    assert health["gridPos"]["w"] == 24
    assert all(p["gridPos"]["y"] >= health["gridPos"]["h"] for p in panels[1:])

    defaults = health["fieldConfig"]["defaults"]
    mapped = {}
    for mapping in defaults["mappings"]:
        if mapping["type"] == "value":
            mapped.update(mapping["options"])
    assert mapped["0"]["text"] == "Up" and mapped["0"]["color"] == "green"
    assert mapped["1"]["text"] == "Down" and mapped["1"]["color"] == "red"
    steps = defaults["thresholds"]["steps"]
    assert steps[0]["color"] == "green" and steps[-1] == {"color": "red", "value": 1}

    exprs = [t["expr"] for t in health["targets"]]
    assert [next(iter(metric_names(e))) for e in exprs] == list(HEALTH_GAUGES)
    for target in health["targets"]:
        assert grouping_labels(target["expr"]) == {"pod"}, "one row per pod and dependency"
        assert "{{pod}}" in target["legendFormat"]
    assert len({t["legendFormat"] for t in health["targets"]}) == len(HEALTH_GAUGES)


def test_only_core_panel_types() -> None:
    for name, panel in _all_panels():
        assert panel["type"] in CORE_TYPES, f"{name}: {panel['title']} is {panel['type']}"


def test_every_panel_and_target_uses_the_datasource_variable() -> None:
    for name, panel in _all_panels():
        if panel["type"] == "row":
            assert not panel.get("targets"), f"{name}: row {panel['title']} has targets"
            continue
        where = f"{name}: {panel['title']}"
        assert panel["datasource"] == {"type": "prometheus", "uid": DS_UID}, where
        assert panel["targets"], f"{where} has no query"
        for target in panel["targets"]:
            assert target["datasource"] == {"type": "prometheus", "uid": DS_UID}, where


@pytest.mark.parametrize("name", DASHBOARDS)
def test_panels_have_descriptions_unique_ids_and_titles(name: str) -> None:
    panels = list(iter_panels(load(name)))
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    titles = [p["title"] for p in panels]
    assert len(titles) == len(set(titles)), "duplicate panel titles"
    for p in panels:
        if p["type"] != "row":
            assert len(p.get("description", "")) > 30, f"{p['title']}: no real description"
        refs = [t["refId"] for t in p.get("targets", [])]
        assert len(refs) == len(set(refs)), f"{p['title']}: duplicate refIds"


@pytest.mark.parametrize("name", DASHBOARDS)
def test_grid_is_24_columns_without_overlaps(name: str) -> None:
    taken: dict[tuple[int, int], str] = {}
    for p in iter_panels(load(name)):
        g = p["gridPos"]
        assert g["w"] > 0 and g["h"] > 0 and g["x"] >= 0 and g["y"] >= 0, p["title"]
        assert g["x"] + g["w"] <= 24, f"{p['title']} is wider than the grid"
        if p["type"] == "row":
            assert (g["x"], g["w"], g["h"]) == (0, 24, 1), p["title"]
        for cell in itertools.product(
            range(g["x"], g["x"] + g["w"]), range(g["y"], g["y"] + g["h"])
        ):
            assert cell not in taken, f"{p['title']} overlaps {taken[cell]} at {cell}"
            taken[cell] = p["title"]


# --------------------------------------------------------------------------- expressions
def test_every_query_uses_only_known_variables() -> None:
    for uid, title, expr in dashboard_queries():
        assert promql.variables_in(expr) <= set(promql.DEFAULTS), f"{uid}: {title}: {expr}"
        assert "$" not in substitute(expr), f"{uid}: {title}: {expr}"


def test_range_windows_use_grafana_intervals() -> None:
    """Short windows follow the scrape interval; "in the range" stats use the range."""
    allowed = {"$__rate_interval", "$__range", "15m"}  # 15m: GES's moving-average panels
    for uid, title, expr in dashboard_queries():
        for window in re.findall(r"\[([^\]]+)\]", expr):
            assert window in allowed, f"{uid}: {title}: window [{window}] in {expr}"


def test_range_stats_are_instant_queries() -> None:
    for name, panel in _all_panels():
        for target in panel.get("targets", []):
            if "[$__range]" in target["expr"]:
                assert target["instant"] is True and target["range"] is False, (
                    f"{name}: {panel['title']}: a whole-range figure must be an instant query"
                )


def test_metric_names_exist_in_the_catalogue() -> None:
    seen = set()
    for uid, title, expr in dashboard_queries():
        names = metric_names(expr)
        assert names, f"{uid}: {title}: no metric found in {expr}"
        for n in names:
            assert _labels_of(n) is not None or n == "ALERTS", f"{uid}: {title}: {n}"
        seen |= names
    # The dashboards show every health gauge and the new dispatch and monitor metrics.
    for required in (
        *HEALTH_GAUGES,
        "ges_dispatch_lateness_seconds_bucket",
        "ges_dispatch_lateness_seconds_count",
        "ges_due_backlog",
        "ges_due_oldest_age_seconds",
        "ges_dispatch_outcomes_total",
        "ges_monitor_size",
        "ges_monitor_cycle_duration_seconds_bucket",
        "ges_monitor_last_run_timestamp_seconds",
        "ges_dependency_last_check_timestamp_seconds",
        "ges_eventloop_lag_seconds_bucket",
        "ges_http_request_duration_seconds_bucket",
        "ges_http_request_duration_seconds_sum",
        "ges_http_request_duration_seconds_count",
        "CB_TTL_LIMIT_REACHED",
        "CB_ENQUEUE_LIMIT_REACHED",
        "ALERTS",
    ):
        assert required in seen, f"no panel shows {required}"


def test_label_matchers_and_groupings_name_labels_the_metrics_carry() -> None:
    for uid, title, expr in dashboard_queries():
        where = f"{uid}: {title}: {expr}"
        available: set[str] = set()
        any_label = False
        for n in metric_names(expr):
            labels = _labels_of(n)
            if labels is None:
                any_label = True
            else:
                available |= labels
        for metric, matched in selectors(expr):
            labels = _labels_of(metric)
            if labels is not None:
                assert matched <= labels, f"{where}: {metric} has no {matched - labels}"
        if not any_label:
            assert grouping_labels(expr) <= available, where


def test_tenant_and_pod_variables_apply_where_the_label_exists() -> None:
    """$pod filters every selector; $tenant every tenant-labelled one on Business Logic."""
    for uid, title, expr in dashboard_queries():
        for metric, matched in selectors(expr):
            if metric == "ALERTS":
                continue
            assert "pod" in matched, f"{uid}: {title}: {metric} without pod=~$pod"
            has_tenant = "tenant" in (_labels_of(metric) or set())
            if uid == "dialback-business-logic" and has_tenant:
                assert "tenant" in matched, f"{uid}: {title}: {metric} without $tenant"
        assert 'pod=~"$pod"' in expr or "ALERTS" in expr, f"{uid}: {title}"


def test_alarm_table_push_split_and_probe_exclusion() -> None:
    exprs: dict[str, list[str]] = {}
    for _uid, title, expr in dashboard_queries():
        exprs.setdefault(title, []).append(expr)
    assert exprs["Alarms (firing and pending)"] == [
        'ALERTS{alertname=~"GES_.+|GES-.+|DIALBACK_.+", alertstate=~"firing|pending"}'
    ]
    split = exprs["Push notifications: success vs failure (range)"]
    assert any('result="success"' in e for e in split)
    assert any('result="failure"' in e for e in split)
    for title in (
        "Response time by pod",
        "Response time by route p99",
        "Response time by route p50",
    ):
        assert all('route!~"/health/.*"' in e for e in exprs[title]), title


def test_reader_finds_metrics_labels_and_groupings() -> None:
    expr = (
        'histogram_quantile(0.99, sum by (pod, le) (rate(x_bucket{pod=~"$pod", a="b}"}'
        "[$__rate_interval]))) / on (pod) group_left max(y offset 5m) * 1e3 + time() "
        '- sum without (q) (z{tenant=~"$tenant"}) > bool 0'
    )
    assert metric_names(expr) == {"x_bucket", "y", "z"}
    assert selectors(expr) == [("x_bucket", {"pod", "a"}), ("z", {"tenant"})]
    assert grouping_labels(expr) == {"pod", "le", "q"}
    assert substitute(expr).count(".*") == 2 and "[1m]" in substitute(expr)
    assert substitute("x[$__range] ${pod} [[tenant]]", pod="p1") == "x[1h] p1 .*"


# --------------------------------------------------------------------------- real Prometheus
PODS = ("dialback-0", "dialback-1")
VALUES = {
    "tenant": ("acme", "undefined"),
    "service": ("sales",),
    "result": ("success", "failure"),
    "type": ("scheduled", "due", "queued", "routing", "processing"),
    "path": ("/engagement/v3/callbacks/create", "/admin/v1/tenants", "/health/ready"),
    "route": ("/engagement/v3/callbacks/create", "/health/live"),
    "httpCode": ("400", "401", "404", "429", "500"),
    "method": ("POST", "GET"),
    "code": ("200", "400"),
    "space": ("process",),
    "dependency": ("redis", "postgres"),
    "reason": ("answered", "busy"),
    "version": ("0.1.0",),
    "python": ("3.11.2",),
    "state": ("queued", "routing"),
    "action": ("republished", "completed"),
    "listener": ("public", "internal"),
    "kind": ("callbacks", "callback"),
    "outcome": ("ok", "denied"),
}
STEP = 15
POINTS = 300  # 75 minutes: more than the 1h $__range and the 15m windows


def _fmt_labels(labels: dict[str, str]) -> str:
    return "{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}"


def _le(b: float) -> str:
    return str(int(b)) if float(b).is_integer() else repr(b)


def synthetic_openmetrics(end: int) -> str:
    """Series for every catalogue metric on two pods, plus one firing ALERTS series."""
    start = end - (POINTS - 1) * STEP
    lines: list[str] = []
    for k, m in enumerate(BY_NAME.values()):
        for pod in PODS:
            combos = itertools.product(*(VALUES[label] for label in m.labels))
            for combo in combos:
                labels = {**dict(zip(m.labels, combo, strict=True)), "pod": pod}
                for i in range(POINTS):
                    t = start + i * STEP
                    lines.extend(_samples(m, labels, i, t, k, start))
    alert = {
        "alertname": "GES_REDIS_DOWN",
        "alertstate": "firing",
        "service": "GES",
        "severity": "critical",
        "pod": PODS[0],
    }
    for i in range(POINTS):
        lines.append(f"ALERTS{_fmt_labels(alert)} 1 {start + i * STEP}")
    lines.append("# EOF")
    return "\n".join(lines) + "\n"


def _samples(m: MetricDef, labels: dict[str, str], i: int, t: int, k: int, start: int) -> list[str]:
    """Point i (at time t) of one series of metric m, the k-th in the catalogue."""
    name, kind, buckets = m.name, m.kind, m.buckets
    if kind == "histogram":
        count = 10 * i
        out = []
        for j, b in enumerate(buckets):
            lb = _fmt_labels({**labels, "le": _le(b)})
            out.append(f"{name}_bucket{lb} {count * (j + 1) // (len(buckets) + 1)} {t}")
        out.append(f"{name}_bucket{_fmt_labels({**labels, 'le': '+Inf'})} {count} {t}")
        out.append(f"{name}_sum{_fmt_labels(labels)} {count * 0.2:.3f} {t}")
        out.append(f"{name}_count{_fmt_labels(labels)} {count} {t}")
        return out
    if kind == "counter":
        # Requests outnumber failures, so ratios come out between 0 and 1.
        value: float = {"ges_http_requests_total": 20}.get(name, 1 + k % 3) * i
    elif name.endswith("_timestamp_seconds"):
        value = t - 3
    elif name == "ges_process_start_time_seconds":
        value = start - 600
    elif name in HEALTH_GAUGES:
        value = 2 if name == "GES_HEALTH" else (i // 40) % 2
    else:
        value = 1 + k % 7
    return [f"{name}{_fmt_labels(labels)} {value} {t}"]


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[PrometheusServer, int]]:
    promql.require_binaries()
    workdir: Path = tmp_path_factory.mktemp("prometheus")
    end = int(time.time()) // STEP * STEP
    promql.backfill(synthetic_openmetrics(end), workdir / "data")
    server = PrometheusServer(workdir).start()
    try:
        yield server, end
    finally:
        server.stop()


def _units() -> dict[tuple[str, str], str]:
    return {
        (name, p["title"]): p.get("fieldConfig", {}).get("defaults", {}).get("unit", "")
        for name, p in _all_panels()
    }


def _check(server: PrometheusServer, at: int, expr: str, unit: str = "") -> str | None:
    """None when the query runs and returns plausible data, else what is wrong."""
    answer = server.query(expr, at=at)
    if answer.get("status") != "success":
        return f"{answer.get('errorType')}: {answer.get('error')}"
    data = answer["data"]
    if data["resultType"] == "scalar":
        values = [data["result"][1]]
    else:
        values = [s["value"][1] for s in data["result"]]
    if not values:
        return "no data"
    numbers = [float(v) for v in values]
    if not all(math.isfinite(v) for v in numbers):
        return f"non-finite values {values}"
    # The synthetic series are consistent: nothing is negative, shares stay within 0..1.
    if min(numbers) < 0 or (unit == "percentunit" and max(numbers) > 1):
        return f"implausible values {values} for unit {unit!r}"
    return None


@pytest.mark.parametrize(
    "selection",
    [{}, {"tenant": "acme", "pod": "dialback-0"}],
    ids=["all", "one-tenant-one-pod"],
)
def test_every_query_parses_and_returns_data_on_prometheus(
    prometheus: tuple[PrometheusServer, int], selection: dict[str, str]
) -> None:
    server, end = prometheus
    failures = []
    queries = dashboard_queries()
    units = _units()
    assert len(queries) > 60
    for uid, title, expr in queries:
        problem = _check(server, end, substitute(expr, **selection), units[uid, title])
        if problem:
            failures.append(f"{uid}: {title}: {substitute(expr, **selection)}\n    {problem}")
    assert not failures, "\n".join(failures)


def test_the_check_fails_on_a_broken_query(prometheus: tuple[PrometheusServer, int]) -> None:
    server, end = prometheus
    assert "parse error" in (_check(server, end, "sum(rate(ges_callbacks_created[1m])") or "")
    assert _check(server, end, "sum(rate(no_such_metric[1m]))") == "no data"
    assert _check(server, end, substitute("sum(increase(ges_callbacks_created[$__range]))")) is None
