"""RequestObservability counts in batches, and every scrape counts what is pending first."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from testbed.metrics_parse import parse, value

from dialback.observability.http_metrics import RequestObservability
from dialback.observability.metrics import Metrics

CREATE = SimpleNamespace(path="/engagement/v3/callbacks/create")


def _scope(status_tenant: str | None = "acme") -> dict:
    tenant = SimpleNamespace(name=status_tenant) if status_tenant else None
    return {"route": CREATE, "state": {"tenant": tenant}, "method": "POST"}


async def test_requests_are_counted_in_a_batch_and_before_every_scrape() -> None:
    metrics = Metrics()
    observe = RequestObservability(metrics)
    for _ in range(3):
        observe(_scope(), 200, 0.003)
    observe(_scope(None), 401, 0.001)
    assert metrics.ges_http_requests_total.value(("acme", CREATE.path)) == 0  # pending
    samples = parse(metrics.registry.render())  # a scrape counts them first
    assert value(samples, "ges_http_requests_total", tenant="acme") == 3
    assert value(samples, "ges_http_failed_requests_total", httpCode="401", tenant="undefined") == 1
    observe(_scope(), 500, 0.002)
    await asyncio.sleep(RequestObservability.DELAY * 3)  # ... or the batch's timer does
    assert metrics.ges_http_failed_requests_total.value(("500", CREATE.path, "acme")) == 1


def test_outside_an_event_loop_a_request_is_counted_at_once() -> None:
    metrics = Metrics()
    RequestObservability(metrics)(_scope(), 200, 0.003)
    assert metrics.ges_http_requests_total.value(("acme", CREATE.path)) == 1


async def test_a_full_batch_is_counted_without_waiting() -> None:
    metrics = Metrics()
    observe = RequestObservability(metrics)
    for _ in range(RequestObservability.MAX_PENDING):
        observe(_scope(), 200, 0.003)
    assert (
        metrics.ges_http_requests_total.value(("acme", CREATE.path))
        == RequestObservability.MAX_PENDING
    )
