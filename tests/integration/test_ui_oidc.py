"""Signing in to the Callback UI through a real OIDC provider (oidc-provider-mock in its own
process): the browser's redirects followed for real, roles and scope from the claims, the
session that results, and the provider stopped mid-flow or before it (a clear page, not a 500)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from dialback.app import create_internal_app
from dialback.container import Container
from dialback.db.schema import audit_log
from tests.support.oidc_provider import OidcProvider, oidc_settings, sign_in
from tests.support.stack import make_settings

ROLE_MAP = "cc-supervisors=supervisor,cc-admins=administrator"


async def _runtime(tmp_path: Path, provider: OidcProvider) -> Container:
    settings = make_settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path}/ui.db",
        data_dir=str(tmp_path),
        simulator="off",
        health_check_min_seconds=3600,
        health_check_max_seconds=3600,
        **oidc_settings(provider, oidc_role_map=ROLE_MAP, oidc_tenant_claim="tenants"),
    )
    rt = Container(settings)
    await rt.start()
    return rt


@pytest.fixture
async def rt(tmp_path: Path, oidc_provider: OidcProvider) -> AsyncIterator[Container]:
    c = await _runtime(tmp_path, oidc_provider)
    try:
        yield c
    finally:
        await c.stop()


@pytest.fixture
def own_provider() -> Iterator[OidcProvider]:
    provider = OidcProvider().start()
    try:
        yield provider
    finally:
        provider.stop()


def browser(rt: Container) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_internal_app(rt)), base_url="http://internal"
    )


async def _through_the_provider(
    ui: httpx.AsyncClient, sub: str, next_path: str = ""
) -> httpx.Response:
    """Click "Sign in with ...", sign in at the provider, follow it back: the callback's answer."""
    login = await ui.get("/ui/login")
    assert login.status_code == 200 and "Sign in with Single sign-on" in login.text
    start = await ui.get("/ui/login/oidc", params={"next": next_path} if next_path else None)
    assert start.status_code == 303, start.text
    back: dict[str, Any] = await sign_in(start.headers["location"], sub)
    assert back["_redirect"] == "http://internal/ui/auth/callback"
    return await ui.get("/ui/auth/callback", params={"code": back["code"], "state": back["state"]})


async def test_sign_in_through_the_real_provider(
    rt: Container, oidc_provider: OidcProvider
) -> None:
    oidc_provider.set_user(
        "sam-ui", {"preferred_username": "sam", "groups": ["cc-supervisors"], "tenants": ["acme"]}
    )
    async with browser(rt) as ui:
        back = await _through_the_provider(ui, "sam-ui", "/ui/")
        assert back.status_code == 303, back.text
        assert back.headers["location"] == "/ui/"
        cookie = back.headers.get_list("set-cookie")
        assert any(c.startswith("dialback_session=") and "HttpOnly" in c for c in cookie)
        home = await ui.get("/ui/")
        assert home.status_code == 200
        assert "oidc:sam" in home.text and "supervisor" in home.text and "acme" in home.text
        # The session ends server-side at logout.
        token = re.search(r'name="csrf_token" value="([^"]+)"', home.text)
        assert token is not None
        out = await ui.post("/ui/logout", data={"csrf_token": token.group(1)})
        assert out.status_code == 303
        assert (await ui.get("/ui/")).status_code == 303
    async with rt.engine.connect() as conn:
        actions = (
            await conn.execute(
                sa.select(audit_log.c.action, audit_log.c.actor).order_by(audit_log.c.at)
            )
        ).all()
    assert [tuple(a) for a in actions] == [
        ("session.login", "oidc:sam"),
        ("session.logout", "oidc:sam"),
    ]


async def test_an_identity_without_a_role_gets_a_page_saying_so(
    rt: Container, oidc_provider: OidcProvider
) -> None:
    oidc_provider.set_user("nobody-ui", {"preferred_username": "nobody", "groups": ["sales"]})
    async with browser(rt) as ui:
        refused = await _through_the_provider(ui, "nobody-ui")
        assert refused.status_code in (401, 403), refused.text
        assert refused.headers["content-type"].startswith("text/html")
        assert "no dialback role" in refused.text
        assert "dialback_session=" not in refused.headers.get("set-cookie", "")


async def test_the_provider_stopped_gives_a_clear_page_and_back_it_works(
    tmp_path: Path, own_provider: OidcProvider
) -> None:
    rt = await _runtime(tmp_path, own_provider)
    try:
        own_provider.set_user("ivy-ui", {"preferred_username": "ivy", "groups": ["cc-admins"]})
        async with browser(rt) as ui:
            # Stopped while the browser is at the provider: the callback cannot be completed.
            start = await ui.get("/ui/login/oidc")
            back = await sign_in(start.headers["location"], "ivy-ui")
            own_provider.stop()
            down = await ui.get(
                "/ui/auth/callback", params={"code": back["code"], "state": back["state"]}
            )
            assert down.status_code == 503, down.text
            assert "cannot be reached" in down.text and "local account" in down.text
            await rt.health.check_all()
            assert rt.metrics.GWS_AUTH_STATUS.value(()) == 1

            own_provider.start()
            own_provider.set_user("ivy-ui", {"preferred_username": "ivy", "groups": ["cc-admins"]})
            again = await _through_the_provider(ui, "ivy-ui")
            assert again.status_code == 303, again.text
            assert "oidc:ivy" in (await ui.get("/ui/")).text
            await rt.health.check_all()
            assert rt.metrics.GWS_AUTH_STATUS.value(()) == 0
    finally:
        await rt.stop()


async def test_a_provider_down_from_the_start_gives_a_clear_page(
    tmp_path: Path, own_provider: OidcProvider
) -> None:
    own_provider.stop()
    rt = await _runtime(tmp_path, own_provider)
    try:
        async with browser(rt) as ui:
            page = await ui.get("/ui/login/oidc")
            assert page.status_code == 503
            assert page.headers["content-type"].startswith("text/html")
            assert "corrId" in page.text or page.headers.get("x-correlation-id", "") in page.text
    finally:
        await rt.stop()
