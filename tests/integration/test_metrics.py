"""/metrics: the GES catalogue, exposition validity, labels, and docs that match the code."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from pathlib import Path

from testbed.metrics_parse import parse, value

from dialback.observability import docs
from dialback.observability.catalogue import CATALOGUE
from dialback.observability.metrics import GWS_ALARMS
from tests.support.stack import Stack

ROOT = Path(__file__).resolve().parents[2]
PROMTOOL_HINT = "apt-get install -y --no-install-recommends prometheus"
# GES's label name `httpCode` is part of the contract; promtool's style lint names it. Nothing
# else may be reported.
KNOWN_PROMTOOL_REMARKS = {
    "ges_http_failed_requests_total label names should be written in 'snake_case' not 'camelCase'"
}


def promtool() -> str:
    exe = shutil.which("promtool")
    assert exe, f"promtool is missing; install it with: {PROMTOOL_HINT}"
    return exe


async def traffic(stack: Stack) -> str:
    key = await stack.tenant()
    h = {"x-api-key": key}
    await stack.public.post(
        "/engagement/v3/callbacks/create",
        json={"serviceName": "sales", "phoneNumber": "+14155550123"},
        headers=h,
    )
    await stack.public.post(
        "/engagement/v3/callbacks/create", json={"serviceName": "sales"}, headers=h
    )
    await stack.public.get("/engagement/v3/callbacks/availability/sales", headers=h)
    await stack.public.get("/engagement/v3/callbacks/availability/nope", headers=h)
    await stack.public.post(
        "/engagement/v3/callbacks/retrieve", json={"id": "x"}, headers={"x-api-key": "wrong"}
    )
    await stack.public.get("/no/such/path/12345")
    return key


async def test_scrape_passes_promtool_and_has_every_ges_metric_with_ges_labels(
    stack: Stack,
) -> None:
    await traffic(stack)
    r = await stack.internal.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    check = await asyncio.to_thread(
        subprocess.run,
        [promtool(), "check", "metrics"],
        input=r.text,
        capture_output=True,
        text=True,
    )
    remarks = {line.strip() for line in (check.stdout + check.stderr).splitlines() if line.strip()}
    assert remarks == KNOWN_PROMTOOL_REMARKS, remarks

    samples = parse(r.text)
    wanted = [
        line.split()
        for line in (ROOT / "tests/data/ges_queried_metrics.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for name, *labels in wanted:
        assert name in samples, f"{name} missing from /metrics"
        for lbls, _v in samples[name]:
            assert set(labels) <= set(lbls), (
                f"{name} lacks labels {set(labels) - set(lbls)}: {lbls}"
            )

    # Route templates, never raw paths; an unknown path is "unmatched"; no tenant is "undefined".
    paths = {lbls["path"] for lbls, _ in samples["ges_http_requests_total"]}
    assert "/engagement/v3/callbacks/availability/{service_name}" in paths
    assert "/engagement/v3/callbacks/availability/nope" not in paths
    assert "unmatched" in paths
    assert value(samples, "ges_http_failed_requests_total", httpCode="401", tenant="undefined") == 1
    assert value(samples, "ges_http_failed_requests_total", httpCode="404", path="unmatched") == 1
    assert value(samples, "ges_http_failed_requests_total", httpCode="400", tenant="acme") == 1
    assert value(samples, "ges_callbacks_created", tenant="acme", service="sales") == 1
    for lbls, _ in samples["ges_http_requests_total"]:
        assert "+1415" not in str(lbls)


async def test_every_catalogue_metric_is_exposed_and_alarms_start_at_zero(stack: Stack) -> None:
    key = await stack.tenant()
    # A tenant's and a service's labelled series exist from their first use, at 0.
    r = await stack.public.get(
        "/engagement/v3/callbacks/open-for/sales", headers={"x-api-key": key}
    )
    assert r.status_code == 200
    await stack.public.get("/engagement/v3/callbacks/open-for/nope", headers={"x-api-key": key})
    samples = parse((await stack.internal.get("/metrics")).text)
    exposed = {
        n.removesuffix("_bucket").removesuffix("_sum").removesuffix("_count") for n in samples
    }
    # Not configured here: no GWS-style dependency, so neither its gauges nor its alarms.
    optional = {"GWS_AUTH_STATUS", "GWS_ENV_STATUS", "GWS_CONFIG_STATUS"} | GWS_ALARMS
    for m in CATALOGUE:
        if m.name not in optional:
            assert m.name in exposed, f"{m.name} not exposed"
    for m in CATALOGUE:
        if m.category == "alarm" and not m.labels and m.name not in GWS_ALARMS:
            assert value(samples, m.name) == 0, m.name
    assert value(samples, "CB_TTL_LIMIT_REACHED", tenant="acme") == 0
    assert value(samples, "ges_callbacks_created", tenant="acme", service="sales") == 0
    assert value(samples, "rbac_create_vq_proxy_error_tolerance") == 5
    assert value(samples, "REDIS_CONNECTION") == 0
    assert value(samples, "ORS_REDIS_STATUS") == 0
    assert value(samples, "POSTGRES_STATUS") == 0
    assert value(samples, "GES_HEALTH") == 0
    assert "GWS_AUTH_STATUS" not in samples
    assert not GWS_ALARMS & set(samples)


def test_docs_metrics_md_is_generated_from_the_catalogue() -> None:
    assert (ROOT / "docs/metrics.md").read_text() == docs.render(), "run `make docs`"
    text = docs.render()
    for m in CATALOGUE:
        assert f"| `{m.name}` |" in text
    assert 'sum(increase(ges_callbacks_created{tenant=~"$Tenant"}[$__range]))' in text
