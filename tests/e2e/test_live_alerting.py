"""Live, end to end: dialback under traffic, scraped by a real Prometheus that loads the shipped
rules (only `for:` shortened), alerting through a real Alertmanager to a webhook receiver.

(a) every dashboard query runs without error and the business panels return data;
(b) Redis killed -> REDIS_CONNECTION 1 -> GES_REDIS_DOWN delivered; restarted -> resolved;
(c) the same for the routing Redis (GES_ORS_REDIS_DOWN), with GES_HEALTH raised;
(d) VQ-proxy provisioning errors above the tolerance -> GES_RBAC_CREATE_VQ_PROXY_ERROR;
(e) the seed's two example rules, verbatim but for `for:`, fire in the same run.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis
from testbed.servers import PostgresServer, RedisServer

from tests.dashboards.promql import dashboard_queries, substitute
from tests.rules.overlay import write_shortened_rules
from tests.support.observability_stack import Alertmanager, Prometheus, WebhookReceiver
from tests.support.process import DialbackProcess

ROOT = Path(__file__).resolve().parents[2]
SEED_RULES = ROOT / "tests" / "data" / "seed-rules.yaml"
ADMIN = "live-admin-token"
POD = "dialback-live-0"


@dataclass
class Live:
    """Everything the live tests share."""

    dialback: DialbackProcess
    redis: RedisServer
    routing: RedisServer
    prometheus: Prometheus
    webhook: WebhookReceiver
    api_key: str

    def admin(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.dialback.internal_url, headers={"authorization": f"Bearer {ADMIN}"}
        )

    def public(self) -> httpx.Client:
        return httpx.Client(base_url=self.dialback.public_url, headers={"x-api-key": self.api_key})


def wait_until(predicate, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@pytest.fixture(scope="module")
def live(pg_server: PostgresServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    tmp = tmp_path_factory.mktemp("live")
    pg_server.psql("CREATE DATABASE live_alerting")
    own_redis = RedisServer().start()
    routing = RedisServer().start()
    hook = WebhookReceiver().start()
    am = Alertmanager(tmp, hook.url).start()
    proc = DialbackProcess(
        {
            "DIALBACK_DATABASE_URL": pg_server.url("live_alerting"),
            "DIALBACK_REDIS_URL": own_redis.url,
            "DIALBACK_ROUTING_REDIS_URL": routing.url,
            "DIALBACK_SIMULATOR": "on",
            "DIALBACK_SIM_HANDLE_SECONDS": "0.1",
            "DIALBACK_SIM_RING_SECONDS": "0.05",
            "DIALBACK_ADMIN_TOKENS": ADMIN,
            "DIALBACK_HEALTH_CHECK_MIN_SECONDS": "0.5",
            "DIALBACK_HEALTH_CHECK_MAX_SECONDS": "0.8",
            "DIALBACK_HEALTH_CHECK_TIMEOUT_SECONDS": "1",
            "DIALBACK_MONITOR_STATS_SECONDS": "1",
            "DIALBACK_LOG_LEVEL": "warn",
        },
        tmp / "dialback.log",
    ).start()
    overlay = write_shortened_rules(tmp / "rules-overlay.yaml", "1s")
    prom = Prometheus(
        tmp,
        targets=[f"127.0.0.1:{proc.internal_port}"],
        rule_files=[overlay, SEED_RULES],
        alertmanager_url=am.url,
        target_labels={"pod": POD, "namespace": "live", "container": "dialback"},
    ).start()
    try:
        with httpx.Client(
            base_url=proc.internal_url, headers={"authorization": f"Bearer {ADMIN}"}
        ) as c:
            assert c.post("/admin/v1/tenants", json={"name": "acme"}).status_code == 201
            r = c.put(
                "/admin/v1/tenants/acme/services/sales",
                json={"businessHours": {"alwaysOpen": True}},
            )
            assert r.status_code == 201, r.text
            key = c.post("/admin/v1/tenants/acme/api-keys", json={"name": "live"}).json()["data"][
                "key"
            ]
            group = {"numbers": ["+14155550100", "+14155550101"]}
            assert c.put("/admin/v1/tenants/acme/callin-groups/help", json=group).status_code == 201
        yield Live(proc, own_redis, routing, prom, hook, key)
    finally:
        prom.stop()
        proc.stop()
        am.stop()
        hook.stop()
        own_redis.stop()
        routing.stop()
        pg_server.psql("DROP DATABASE IF EXISTS live_alerting WITH (FORCE)")


@pytest.mark.slow
def test_a_dashboard_queries_run_and_business_panels_have_data(live: Live) -> None:
    # Counters must be scraped at 0 before the traffic, or rate() sees one flat value.
    live.prometheus.wait_for_samples(
        'ges_callbacks_created{tenant="acme",service="sales"} == 0', timeout=20
    )
    live.prometheus.wait_for_samples('ges_callin_created{tenant="acme"} == 0', timeout=20)
    prom = live.prometheus

    def traffic(batch: int) -> None:
        with live.public() as c:
            for i in range(10):
                body = {"serviceName": "sales", "phoneNumber": f"+1415555{1000 + batch * 10 + i}"}
                r = c.post("/engagement/v3/callbacks/create", json=body)
                assert r.status_code == 200, r.text
            c.post("/engagement/v3/callbacks/create", json={"serviceName": "sales"})  # a 400
            c.get("/engagement/v3/callbacks/availability/nope")  # a 404
            r = c.post("/engagement/v3/call-in/requests/create", json={"groupName": "help"})
            assert r.status_code == 200, r.text
        httpx.post(
            f"{live.dialback.public_url}/engagement/v3/callbacks/retrieve", json={"id": "x"}
        )  # 401

    # Request counters appear with their first request; a second batch after a scrape gives
    # every series two points, as steady traffic would.
    traffic(0)
    prom.wait_for_samples('ges_http_failed_requests_total{httpCode="401"}', timeout=20)
    traffic(1)
    prom.wait_for_samples("sum(increase(ges_http_requests_total[1h])) > 0", timeout=20)
    prom.wait_for_samples("sum(increase(ges_http_failed_requests_total[1h])) > 0", timeout=20)
    prom.wait_for_samples('sum(ges_dispatch_outcomes_total{reason="answered"}) > 0', timeout=40)
    prom.wait_for_samples("sum(rate(ges_callbacks_created[1m])) > 0", timeout=20)
    queries = dashboard_queries()
    assert len(queries) > 40
    empty = []
    for uid, title, expr in queries:
        answer = prom.query(substitute(expr))
        assert answer.get("status") == "success", f"{uid} / {title}: {answer}"
        if not answer["data"]["result"]:
            empty.append((uid, title, expr))
    business = [
        (uid, title)
        for uid, title, expr in empty
        if uid == "dialback-business-logic"
        and any(
            m in expr
            for m in (
                "ges_callbacks_created",
                "ges_http_requests_total",
                "ges_monitor_size",
                "ges_callin_created",
                "ges_dispatch_outcomes_total",
            )
        )
    ]
    assert business == [], f"business panels without data: {business}"


def _fired(live: Live, alert: str, **labels: str) -> bool:
    return bool(live.webhook.alerts(alert, "firing", **labels))


def _resolved(live: Live, alert: str, **labels: str) -> bool:
    return bool(live.webhook.alerts(alert, "resolved", **labels))


def _rule_firing(live: Live, group: str, alert: str) -> bool:
    """Whether the rule ``alert`` of rule group ``group`` is firing in Prometheus. dialback's
    rule and the seed's share GES's name and labels (service: GES), so Alertmanager sees one
    alert; Prometheus tells the two rules apart."""
    r = httpx.get(f"{live.prometheus.url}/api/v1/rules", params={"type": "alert"}, timeout=10)
    for g in r.json()["data"]["groups"]:
        if g["name"] == group:
            return any(rule["name"] == alert and rule["state"] == "firing" for rule in g["rules"])
    return False


def test_b_redis_down_alert_is_delivered_and_resolved(live: Live) -> None:
    live.redis.stop()
    try:
        wait_until(
            lambda: _fired(live, "GES_REDIS_DOWN", service="GES", pod=POD),
            40,
            "GES_REDIS_DOWN firing",
        )
        [alert] = live.webhook.alerts("GES_REDIS_DOWN", "firing", service="GES")[:1]
        assert alert["labels"]["severity"] == "critical" and alert["labels"]["action"] == "page"
        assert alert["annotations"]["runbook_url"].endswith("#ges_redis_down")
    finally:
        live.redis.start()
    wait_until(
        lambda: _resolved(live, "GES_REDIS_DOWN", service="GES"), 40, "GES_REDIS_DOWN resolved"
    )


def test_c_routing_redis_down_alert_and_the_seed_rule(live: Live) -> None:
    live.routing.stop()
    try:
        wait_until(
            lambda: _fired(live, "GES_ORS_REDIS_DOWN", service="GES"), 40, "GES_ORS_REDIS_DOWN"
        )
        wait_until(lambda: _fired(live, "GES_HEALTH", service="GES"), 20, "GES_HEALTH")
        # (e) the seed's own example rule, verbatim but for `for:`.
        wait_until(
            lambda: _fired(live, "GES_ORIS_REDIS_DOWN", service="GES"),
            20,
            "seed GES_ORIS_REDIS_DOWN",
        )
    finally:
        live.routing.start()
    wait_until(
        lambda: _resolved(live, "GES_ORS_REDIS_DOWN", service="GES"),
        40,
        "GES_ORS_REDIS_DOWN resolved",
    )
    wait_until(
        lambda: _resolved(live, "GES_ORIS_REDIS_DOWN", service="GES"), 20, "seed rule resolved"
    )


def test_d_provisioning_errors_over_tolerance_fire_rbac_alert_and_the_seed_rule(live: Live) -> None:
    r = redis.Redis.from_url(live.routing.url, decode_responses=True)
    try:
        r.delete("NewCallbackStream")
        r.set("NewCallbackStream", "not a stream")  # XGROUP CREATE now fails: WRONGTYPE
        with live.admin() as c:
            for i in range(7):
                resp = c.put(
                    f"/admin/v1/tenants/acme/services/vq{i}",
                    json={"businessHours": {"alwaysOpen": True}},
                )
                assert (
                    resp.status_code == 201 and resp.json()["data"]["routingProvisioned"] is False
                )
        wait_until(
            lambda: _fired(live, "GES_RBAC_CREATE_VQ_PROXY_ERROR", service="GES"),
            40,
            "RBAC alert delivered",
        )
        wait_until(
            lambda: _rule_firing(live, "ges-business-logic", "GES_RBAC_CREATE_VQ_PROXY_ERROR"),
            20,
            "RBAC alert (dialback's rule)",
        )
        # (e) the seed's first example: increase(RBAC_CREATE_VQ_PROXY_ERROR[10m]) > 5, verbatim.
        wait_until(
            lambda: _rule_firing(live, "seed-examples", "GES_RBAC_CREATE_VQ_PROXY_ERROR"),
            20,
            "seed RBAC rule",
        )
    finally:
        r.delete("NewCallbackStream")
        r.close()
    with live.admin() as c:
        resp = c.put(
            "/admin/v1/tenants/acme/services/vq0", json={"businessHours": {"alwaysOpen": True}}
        )
        assert resp.json()["data"]["routingProvisioned"] is True
