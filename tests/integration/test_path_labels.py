"""The `path`/`route` label of every route of both apps is its full template as served, also
when the middleware answers before the router runs (413, bad corrId, bad Content-Length)."""

from __future__ import annotations

import re

import httpx
from testbed.metrics_parse import parse

from dialback.web.fastpath import served_routes
from tests.support.stack import Stack


# Served but not in the OpenAPI schema (FastAPI's documentation routes); /metrics is not
# observed at all.
def served(client: httpx.AsyncClient) -> list[tuple[str, str]]:
    """(method, template) of every route the client's app serves: its OpenAPI schema, and
    the routes kept out of it (/openapi.json, the /docs page and its assets)."""
    app = client._transport.app  # type: ignore[attr-defined]
    schema = app.openapi()
    routes = {(m.upper(), p) for p, ops in schema["paths"].items() for m in ops}
    hidden = {
        (method, path)
        for _route, path, methods in served_routes(app)
        for method in methods - {"HEAD"}
    }
    assert ("GET", "/openapi.json") in hidden and ("GET", "/docs") in hidden
    # Scrapes of /metrics are not observed (the middleware's ``unobserved``).
    return sorted((routes | hidden) - {("GET", "/metrics")})


def concrete(template: str) -> str:
    # A parameter with a converter ({id:uuid}) takes a value the converter accepts.
    template = re.sub(r"\{[^}:]+:uuid\}", "0b8e5b34-1f4e-4c51-9d1f-6b3c1a2d7e90", template)
    return re.sub(r"\{[^}]+\}", "x1", template)


async def test_every_route_is_labelled_with_its_full_template_however_it_was_answered(
    stack: Stack,
) -> None:
    key = await stack.tenant()
    apps = {"public": stack.public, "internal": stack.internal}
    expected: dict[str, set[tuple[str, str]]] = {}
    for name, client in apps.items():
        routes = served(client)
        assert len(routes) > 5, name
        expected[name] = set(routes)
        for method, template in routes:
            url = concrete(template)
            h = {"x-api-key": key}
            # Routed: whatever the route answers.
            await client.request(method, url, headers=h)
            # Refused by the middleware before routing: 413, a bad corrId, a bad length.
            r = await client.request(
                method, url, content=b"{}", headers={**h, "content-length": "99999999"}
            )
            assert r.status_code == 413, (method, url, r.status_code)
            r = await client.request(method, url, headers={**h, "x-correlation-id": "bad id!"})
            assert r.status_code == 400, (method, url, r.status_code)
            r = await client.request(
                method, url, content=b"{}", headers={**h, "content-length": "2, 2"}
            )
            assert r.status_code == 400, (method, url, r.status_code)
        await client.get("/no/such/route/12345", headers={"content-length": "99999999"})

    samples = parse((await stack.internal.get("/metrics")).text)
    durations = {
        (lbls["method"], lbls["route"], lbls["code"])
        for lbls, _ in samples["ges_http_request_duration_seconds_count"]
    }
    templates = {t for routes in expected.values() for _, t in routes}
    for routes in expected.values():
        for method, template in routes:
            for code in ("413", "400"):
                assert (method, template, code) in durations, (method, template, code)
    labelled = {lbls["path"] for lbls, _ in samples["ges_http_requests_total"]}
    # Nothing but the served templates and "unmatched" (the unknown path's 413).
    assert labelled == templates | {"unmatched"}, labelled ^ (templates | {"unmatched"})
    failed = {
        (lbls["httpCode"], lbls["path"]) for lbls, _ in samples["ges_http_failed_requests_total"]
    }
    assert ("413", "unmatched") in failed
    assert ("413", "/admin/v1/tenants") in failed
    assert ("413", "/engagement/v3/callbacks/create") in failed
    # Every label is a served prefix (the historical /interactions/v3 aliases included): no
    # admin route lost its /admin/v1.
    prefixes = (
        "/admin/v1/",
        "/engagement/v3/",
        "/interactions/v3/",
        "/health/",
        "/docs",
        "/openapi",
        "/ui",  # the Callback UI (HTML pages)
    )
    assert [t for t in labelled - {"unmatched"} if not t.startswith(prefixes)] == []
