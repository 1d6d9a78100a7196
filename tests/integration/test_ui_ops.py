"""The Health and Developer pages over HTTP (no browser): health.json's shape, its values equal
to /metrics and its permission; the log level changed through the page as through the admin
API, refused to Supervisors and Monitors (forged POST with a valid token) and without the CSRF
token; the corrId lookup finding a request's warning and audit entry; bad input as 400 pages."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from testbed.metrics_parse import parse, value

from dialback.container import Container
from dialback.identity.roles import Role
from dialback.kit.context import bound, corr_id_var
from dialback.observability.logging import current_level, set_level
from tests.support.stack import ADMIN_TOKEN, make_settings
from tests.support.ui_client import PASSWORD, Ui

ADMIN = {"authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture
async def rt(tmp_path: Path, redis_url: str) -> AsyncIterator[Container]:
    level = current_level()
    runtime = Container(
        make_settings(
            database_url=f"sqlite+aiosqlite:///{tmp_path}/ops.db",
            data_dir=str(tmp_path),
            redis_url=redis_url,
            simulator="off",
            health_check_min_seconds=3600,
            health_check_max_seconds=3600,
        )
    )
    await runtime.start()
    try:
        yield runtime
    finally:
        await runtime.stop()
        set_level(level)


ROLES = {
    "mona": Role.MONITOR,
    "sam": Role.SUPERVISOR,
    "dev": Role.DEVELOPER,
    "ada": Role.ADMINISTRATOR,
}


async def signed_in(rt: Container, user: str) -> Ui:
    """A client signed in as ``user`` (created on first use: each password hash costs)."""
    if await rt.users.current_principal(user) is None:
        await rt.users.add(user, frozenset({ROLES[user]}), password=PASSWORD)
    ui = Ui(rt)
    r = await ui.sign_in(user)
    assert r.status_code == 303, r.text
    return ui


async def test_health_json_has_the_values_of_metrics_for_every_role(rt: Container) -> None:
    for user in ("mona", "ada"):
        async with await signed_in(rt, user) as ui:
            r = await ui.client.get("/ui/health.json")
            assert r.status_code == 200, r.text
            assert r.headers["content-type"].startswith("application/json")
            body = r.json()
            page = await ui.client.get("/ui/health")
            assert page.status_code == 200
            assert 'data-cell="dep-redis-status"' in page.text
            assert "/static/health.js" in page.text and "<noscript>" in page.text
    assert set(body) == {
        "at",
        "ready",
        "gesHealth",
        "dependencies",
        "backlog",
        "routingEngine",
        "cells",
    }
    deps = {d["name"]: d for d in body["dependencies"]}
    assert set(deps) == {"database", "redis"}
    assert deps["database"]["status"] == "up" and deps["database"]["gauge"] is None
    assert deps["redis"] == {
        "name": "redis",
        "gauge": "REDIS_CONNECTION",
        "gaugeValue": 0,
        "status": "up",
        "required": False,
        "inGesHealth": False,
        "lastCheck": deps["redis"]["lastCheck"],
        "checkSeconds": deps["redis"]["checkSeconds"],
        "error": "",
    }
    samples = parse((await Ui(rt).client.get("/metrics")).text)
    assert body["gesHealth"] == value(samples, "GES_HEALTH") == 0
    for name in ("database", "redis"):
        exported = value(samples, "ges_dependency_last_check_timestamp_seconds", dependency=name)
        assert deps[name]["lastCheck"] == exported and exported > 0
    assert set(body["backlog"]) == {
        "due",
        "oldestDueAgeSeconds",
        "parked",
        "monitorSize",
        "monitorLastRun",
    }
    assert body["backlog"]["monitorSize"]["scheduled"] == value(
        samples, "ges_monitor_size", type="scheduled"
    )
    assert body["routingEngine"]["watched"] is False
    cells = body["cells"]
    assert cells["dep-redis-status"] == {"text": "up", "state": "up"}
    assert cells["ges-health"]["state"] == "up"
    assert cells["dep-redis-checked"]["utc"].endswith("Z")
    # Not signed in: the sign-in page, never the values.
    anonymous = await Ui(rt).client.get("/ui/health.json")
    assert anonymous.status_code == 303 and "/ui/login" in anonymous.headers["location"]


async def test_a_dependency_down_shows_down_with_its_error(rt: Container) -> None:
    redis = next(d for d in rt.health.dependencies if d.name == "redis")

    async def refused() -> None:
        raise ConnectionError("Connection refused by 127.0.0.1:1")

    redis.check = refused
    await rt.health.check_all()
    async with await signed_in(rt, "mona") as ui:
        body = (await ui.client.get("/ui/health.json")).json()
        samples = parse((await ui.client.get("/metrics")).text)
        page = (await ui.client.get("/ui/health")).text
    deps = {d["name"]: d for d in body["dependencies"]}
    assert deps["redis"]["status"] == "down" and deps["redis"]["gaugeValue"] == 1
    assert value(samples, "REDIS_CONNECTION") == 1
    assert "Connection refused" in deps["redis"]["error"]
    assert body["cells"]["dep-redis-status"] == {"text": "down", "state": "down"}
    assert 'class="badge h-down" data-cell="dep-redis-status">down<' in page
    assert "Connection refused by 127.0.0.1:1" in page
    # dialback's own Redis does not raise GES_HEALTH (GES semantics), on the page too.
    assert body["gesHealth"] == 0 and body["ready"] is True


async def test_developer_changes_the_level_as_the_admin_api_does(rt: Container) -> None:
    set_level("info")
    async with await signed_in(rt, "dev") as ui:
        page = await ui.client.get("/ui/developer")
        assert page.status_code == 200
        assert 'href="/ui/developer"' in page.text  # in the navigation
        token = await ui.csrf()
        r = await ui.client.post(
            "/ui/developer/log-level",
            data={"csrf_token": token, "level": "debug"},
            headers={"x-correlation-id": "ui-ops-level-1"},
        )
        assert r.status_code == 303 and r.headers["location"] == "/ui/developer?previous=info"
        api = await ui.client.get("/admin/v1/logging", headers=ADMIN)
        assert api.json()["data"] == {"level": "debug"}
        shown = await ui.client.get(r.headers["location"])
        assert "Log level changed from info to debug on this replica." in shown.text
        assert "<strong data-level>debug</strong>" in shown.text
        # The request is found by its corrId: the warning it logged and its audit entry.
        found = await ui.client.get("/ui/developer", params={"corrId": "ui-ops-level-1"})
        assert found.status_code == 200
        assert "log level changed from info to debug" in found.text
        assert "ui.set_log_level" in found.text
        assert "Audit entries (1)" in found.text
        # Bad input: a 400 page naming it.
        bad = await ui.client.post(
            "/ui/developer/log-level", data={"csrf_token": token, "level": "loud"}
        )
        assert bad.status_code == 400 and "level: &#39;loud&#39;" in bad.text
        bad = await ui.client.get("/ui/developer", params={"corrId": "no spaces <here>"})
        assert bad.status_code == 400
        assert "corrId: &#39;no spaces &lt;here&gt;&#39; is not a corrId" in bad.text
    assert current_level() == "debug"


async def test_supervisor_and_monitor_have_no_developer_page(rt: Container) -> None:
    set_level("info")
    for user in ("sam", "mona"):
        async with await signed_in(rt, user) as ui:
            home = await ui.client.get("/ui/")
            assert 'href="/ui/developer"' not in home.text and 'href="/ui/health"' in home.text
            token = await ui.csrf()
            forged = await ui.client.post(
                "/ui/developer/log-level", data={"csrf_token": token, "level": "trace"}
            )
            assert forged.status_code == 403 and "needs logging.write" in forged.text
            for params in ({}, {"corrId": "abc"}):
                page = await ui.client.get("/ui/developer", params=params)
                assert page.status_code == 403 and "needs logging.write" in page.text
    assert current_level() == "info"


async def test_a_post_without_the_csrf_token_is_refused(rt: Container) -> None:
    set_level("info")
    async with await signed_in(rt, "dev") as ui:
        r = await ui.client.post("/ui/developer/log-level", data={"level": "trace"})
        assert r.status_code == 403 and "CSRF" in r.text
    assert current_level() == "info"


async def test_the_lookup_shows_scrubbed_lines_of_this_replica(rt: Container) -> None:
    log = logging.getLogger("dialback.test.ops")
    token = corr_id_var.set("ops-lookup-7")
    try:
        with bound(tenant="acme", callbackId="7f0c5e2a-1111-2222-3333-444455556666"):
            log.error(
                "could not reach +1 415 555 0199", extra={"userData": {"secret": "do-not-show"}}
            )
        log.info("an info line is not kept")
    finally:
        corr_id_var.reset(token)
    async with await signed_in(rt, "ada") as ui:
        page = await ui.client.get("/ui/developer", params={"corrId": "ops-lookup-7"})
        recent = await ui.client.get("/ui/developer")
    assert page.status_code == 200
    text = page.text
    assert "could not reach +1 *" in text
    assert "555 0199" not in text and "do-not-show" not in text
    assert "an info line" not in text
    assert "7f0c5e2a-1111-2222-3333-444455556666" in text and ">acme<" in text
    assert "This replica's warnings and errors (1)" in text
    assert "No audit entry has this corrId." in text
    assert f"this replica's last {rt.recent_log.capacity} warnings and errors" in text
    # Without a corrId: the newest lines, each a link to its lookup.
    assert 'href="/ui/developer?corrId=ops-lookup-7"' in recent.text


async def test_a_request_that_failed_is_found_by_its_corr_id(rt: Container) -> None:
    async with await signed_in(rt, "mona") as ui:

        def broken() -> object:
            raise RuntimeError("health view broke while serving +1 415 555 0199")

        rt.health_view.snapshot = broken  # type: ignore[method-assign]
        failed = await ui.client.get("/ui/health.json", headers={"x-correlation-id": "ops-500-1"})
        assert failed.status_code == 500
        del rt.health_view.snapshot
    async with await signed_in(rt, "dev") as ui:
        page = await ui.client.get("/ui/developer", params={"corrId": "ops-500-1"})
    assert page.status_code == 200
    rows = re.findall(r"<tr>(.*?)</tr>", page.text, re.S)
    text = " ".join(rows)
    # The error with its traceback, ending in the exception (long tracebacks keep their tail).
    assert "RuntimeError: health view broke while serving +1 *" in text
    assert "GET /ui/health.json 500" in text  # and the request's own line
    assert "555 0199" not in page.text


async def test_a_scoped_developer_sees_its_tenants_and_cannot_set_the_level(
    rt: Container,
) -> None:
    set_level("info")
    await rt.users.add("tess", frozenset({Role.DEVELOPER}), frozenset({"acme"}), password=PASSWORD)
    log = logging.getLogger("dialback.test.ops")
    token = corr_id_var.set("ops-scope-1")
    try:
        with bound(tenant="acme"):
            log.warning("acme's trouble")
        with bound(tenant="globex"):
            log.warning("globex's trouble")
        log.warning("nobody's trouble")
    finally:
        corr_id_var.reset(token)
    async with Ui(rt) as ui:
        assert (await ui.sign_in("tess")).status_code == 303
        page = await ui.client.get("/ui/developer", params={"corrId": "ops-scope-1"})
        assert page.status_code == 200
        assert "acme&#39;s trouble" in page.text
        assert "globex" not in page.text and "nobody&#39;s" not in page.text
        assert "Set level" not in page.text  # no button ...
        forged = await ui.client.post(
            "/ui/developer/log-level", data={"csrf_token": await ui.csrf(), "level": "trace"}
        )
        assert forged.status_code == 403 and "is scoped" in forged.text  # ... and no way round
    assert current_level() == "info"
