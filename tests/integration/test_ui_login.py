"""The Callback UI's sign-in through real HTTP on the internal app: local users, the session
cookie, rotation, idle and absolute expiry, logout, CSRF, open redirects, OIDC, rate limits."""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import sqlalchemy as sa
from argon2 import PasswordHasher

from dialback.app import create_internal_app
from dialback.container import Container
from dialback.db.schema import audit_log, ui_sessions, users
from dialback.identity.oidc import (
    AuthorizationRequest,
    OidcClient,
    OidcIdentity,
    OidcRejected,
    OidcUnavailable,
)
from dialback.identity.roles import Permission, Principal, Role
from dialback.identity.sessions import sha256_hex
from dialback.ui.deps import UiPrincipalDep, ui_requires, ui_router
from tests.support.logs import logging_to
from tests.support.ui_client import PASSWORD, TOKEN_RE, Audit, Ui, runtime


@pytest.fixture
async def rt(tmp_path: Path) -> AsyncIterator[Container]:
    """A started runtime on SQLite with a supervisor ``alice``."""
    c = await runtime(f"sqlite+aiosqlite:///{tmp_path}/dialback.db", tmp_path)
    await c.users.add("alice", frozenset({Role.SUPERVISOR}), password=PASSWORD)
    try:
        yield c
    finally:
        await c.stop()


def _cookie(response: httpx.Response, name: str) -> SimpleCookie:
    for header in response.headers.get_list("set-cookie"):
        jar: SimpleCookie = SimpleCookie()
        jar.load(header)
        if name in jar:
            return jar
    raise AssertionError(f"no {name} cookie in {response.headers.get_list('set-cookie')}")


async def test_local_sign_in_on_both_stores(database_url: str, tmp_path: Path) -> None:
    rt = await runtime(database_url, tmp_path)
    audit = Audit(rt)
    try:
        await rt.users.add(
            "Alice", frozenset({Role.SUPERVISOR}), frozenset({"acme"}), password=PASSWORD
        )
        async with rt.engine.connect() as conn:
            stored = (await conn.execute(sa.select(users.c.username, users.c.password_hash))).one()
        assert stored.username == "alice"
        assert stored.password_hash.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
        assert PASSWORD not in stored.password_hash

        async with Ui(rt) as ui:
            first = await ui.client.get("/ui/")
            assert first.status_code == 303 and first.headers["location"] == "/ui/login"
            signed = await ui.sign_in("ALICE")
            assert signed.status_code == 303 and signed.headers["location"] == "/ui/"
            cookie = _cookie(signed, "dialback_session")["dialback_session"]
            assert cookie["httponly"] is True
            assert cookie["samesite"].lower() == "lax"
            assert cookie["path"] == "/ui"
            assert not cookie["secure"]
            value = cookie.value
            sid, _, sig = value.rpartition(".")
            assert len(sid) >= 43 and len(sig) == 43  # 32 random bytes, an HMAC-SHA256

            home = await ui.client.get("/ui/")
            assert home.status_code == 200
            assert "Signed in as alice" in home.text and "supervisor" in home.text
            assert "acme" in home.text and "Sign out" in home.text
            assert home.headers["content-security-policy"].startswith("default-src 'self'")
            assert "frame-ancestors 'none'" in home.headers["content-security-policy"]
            assert home.headers["x-frame-options"] == "DENY"
            assert home.headers["referrer-policy"] == "same-origin"
            assert home.headers["cache-control"] == "no-store"

        # The store keys the session by the id's hash, never the id.
        async with rt.engine.connect() as conn:
            keys = list((await conn.execute(sa.select(ui_sessions.c.id_hash))).scalars())
        assert keys == [sha256_hex(sid)]
        assert audit.calls[-1][1] == "session.login"
        actor, _, kw = audit.calls[-1]
        assert actor.actor == "local:alice" and kw["address"] == "127.0.0.1"
    finally:
        await rt.stop()


async def test_wrong_password_and_unknown_user_answer_401_and_are_audited(
    rt: Container, tmp_path: Path
) -> None:
    log_path = tmp_path / "trace.log"
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT)
    try:
        with logging_to(fd, "trace", fmt="json"):
            await _wrong_passwords(rt)
    finally:
        os.close(fd)
    logged = log_path.read_text()
    assert "sign-in failed from 127.0.0.1: wrong password" in logged
    assert "not the password" not in logged and PASSWORD not in logged


async def _wrong_passwords(rt: Container) -> None:
    audit = Audit(rt)
    async with Ui(rt) as ui:
        wrong = await ui.sign_in("alice", "not the password at all")
        assert wrong.status_code == 401
        assert "Wrong user name or password." in wrong.text
        assert "corrId" in wrong.text and "dialback_session" not in wrong.headers.get(
            "set-cookie", ""
        )
        unknown = await ui.sign_in("mallory" * 20, PASSWORD)
        assert unknown.status_code == 401 and "Wrong user name or password." in unknown.text
        assert (await ui.client.get("/ui/")).status_code == 303
    # Counted by the brute-force limits, per address, as sign-in failures.
    assert rt.metrics.ges_auth_failures_total.value(("login",)) == 2
    failed = [c for c in audit.calls if c[1] == "session.login_failed"]
    assert [c[0] for c in failed] == ["local:alice", "local:" + ("mallory" * 20)[:64]]
    assert [c[2]["detail"]["reason"] for c in failed] == ["wrong password", "unknown user"]
    assert all(c[2]["outcome"] == "failed" for c in failed)
    assert "not the password" not in repr(audit.calls) and PASSWORD not in repr(audit.calls)
    # ... and stored, with the address and without the password.
    async with rt.engine.connect() as conn:
        rows = (
            await conn.execute(
                sa.select(audit_log).where(audit_log.c.action == "session.login_failed")
            )
        ).all()
    assert sorted(r.actor for r in rows) == sorted(c[0] for c in failed)
    assert {r.address for r in rows} == {"127.0.0.1"} and {r.outcome for r in rows} == {"failed"}
    assert "not the password" not in repr(rows) and PASSWORD not in repr(rows)


async def test_cookie_is_secure_over_https_from_a_trusted_proxy_only(tmp_path: Path) -> None:
    rt = await runtime(
        f"sqlite+aiosqlite:///{tmp_path}/d.db", tmp_path, trusted_proxies="127.0.0.1"
    )
    try:
        await rt.users.add("alice", frozenset({Role.MONITOR}), password=PASSWORD)
        async with Ui(rt, headers={"x-forwarded-proto": "https"}) as ui:
            page = await ui.client.get("/ui/login")
            assert _cookie(page, "dialback_login_csrf")["dialback_login_csrf"]["secure"] is True
            token = TOKEN_RE.search(page.text).group(1)  # type: ignore[union-attr]
            cookie = page.headers["set-cookie"].split(";")[0]
            signed = await ui.client.post(
                "/ui/login",
                data={"username": "alice", "password": PASSWORD, "csrf_token": token},
                headers={"cookie": cookie},
            )
            assert signed.status_code == 303
            assert _cookie(signed, "dialback_session")["dialback_session"]["secure"] is True
    finally:
        await rt.stop()
    # The same header from a peer that is not a trusted proxy proves nothing.
    rt = await runtime(f"sqlite+aiosqlite:///{tmp_path}/d.db", tmp_path)
    try:
        async with Ui(rt, headers={"x-forwarded-proto": "https"}) as ui:
            page = await ui.client.get("/ui/login")
            assert not _cookie(page, "dialback_login_csrf")["dialback_login_csrf"]["secure"]
        async with Ui(rt, base_url="https://internal") as ui:
            page = await ui.client.get("/ui/login")
            assert _cookie(page, "dialback_login_csrf")["dialback_login_csrf"]["secure"] is True
    finally:
        await rt.stop()


async def test_sign_in_rotates_the_session_id(rt: Container) -> None:
    async with Ui(rt) as ui:
        first = _cookie(await ui.sign_in("alice"), "dialback_session")["dialback_session"].value
        second = _cookie(await ui.sign_in("alice"), "dialback_session")["dialback_session"].value
        assert first != second
        assert (await ui.client.get("/ui/")).status_code == 200
    async with Ui(rt, cookies={"dialback_session": first}) as stale:
        refused = await stale.client.get("/ui/")
        assert refused.status_code == 303 and refused.headers["location"] == "/ui/login"
    async with rt.engine.connect() as conn:
        reasons = dict(
            (await conn.execute(sa.select(ui_sessions.c.id_hash, ui_sessions.c.end_reason))).all()
        )
    assert sorted(reasons.values(), key=str) == [None, "replaced"]


async def _stored(rt: Container, **values: Any) -> None:
    async with rt.engine.begin() as conn:
        await conn.execute(ui_sessions.update().values(**values))


async def _end_reason(rt: Container) -> str | None:
    async with rt.engine.connect() as conn:
        return (await conn.execute(sa.select(ui_sessions.c.end_reason))).scalar()


async def test_idle_and_absolute_expiry_are_enforced_by_the_server(
    database_url: str, tmp_path: Path
) -> None:
    rt = await runtime(database_url, tmp_path)
    try:
        await rt.users.add("alice", frozenset({Role.SUPERVISOR}), password=PASSWORD)
        await _expiry(rt)
    finally:
        await rt.stop()


async def _expiry(rt: Container) -> None:
    async with Ui(rt) as ui:
        await ui.sign_in("alice")
        assert (await ui.client.get("/ui/")).status_code == 200
        # 19 minutes idle: still alive (and the visit is recorded); 20: over.
        await _stored(rt, last_seen_at=time.time() - 19 * 60)
        assert (await ui.client.get("/ui/")).status_code == 200
        await _stored(rt, last_seen_at=time.time() - 20 * 60 - 1)
        idle = await ui.client.get("/ui/?tab=x")
        assert idle.status_code == 303
        assert idle.headers["location"] == "/ui/login?next=/ui/%3Ftab%3Dx"
        assert await _end_reason(rt) == "idle"
    async with rt.engine.begin() as conn:
        await conn.execute(ui_sessions.delete())
    async with Ui(rt) as ui:
        await ui.sign_in("alice")
        await _stored(rt, expires_at=time.time() - 1)  # 12 hours after sign-in, however busy
        assert (await ui.client.get("/ui/")).status_code == 303
        assert await _end_reason(rt) == "expired"


async def test_logout_ends_the_session_in_the_store(rt: Container) -> None:
    audit = Audit(rt)
    async with Ui(rt) as ui:
        signed = await ui.sign_in("alice")
        cookie = _cookie(signed, "dialback_session")["dialback_session"].value
        token = await ui.csrf()
        out = await ui.client.post("/ui/logout", data={"csrf_token": token})
        assert out.status_code == 303 and out.headers["location"] == "/ui/login?signed_out=1"
        cleared = _cookie(out, "dialback_session")["dialback_session"]
        assert cleared.value == "" and cleared["path"] == "/ui"
        page = await ui.client.get(out.headers["location"])
        assert "You have signed out." in page.text
    assert await _end_reason(rt) == "logout"
    assert "session.logout" in audit.actions()
    async with Ui(rt, cookies={"dialback_session": cookie}) as replay:
        refused = await replay.client.get("/ui/")
        assert refused.status_code == 303 and refused.headers["location"] == "/ui/login"


async def test_csrf_is_checked_on_every_state_changing_request(rt: Container) -> None:
    async with Ui(rt) as ui:
        await ui.sign_in("alice")
        token = await ui.csrf()
        missing = await ui.client.post("/ui/logout", data={})
        assert missing.status_code == 403 and "CSRF token is missing" in missing.text
        assert "corrId" in missing.text
        wrong = await ui.client.post("/ui/logout", data={"csrf_token": token[:-2] + "xx"})
        assert wrong.status_code == 403 and "CSRF token is wrong" in wrong.text
        json_body = await ui.client.post("/ui/logout", json={"csrf_token": token})
        assert json_body.status_code == 403
        other_site = await ui.client.post(
            "/ui/logout", data={"csrf_token": token}, headers={"origin": "https://evil.example"}
        )
        assert other_site.status_code == 403 and "another site" in other_site.text
        referer = await ui.client.post(
            "/ui/logout",
            data={"csrf_token": token},
            headers={"referer": "https://evil.example/page"},
        )
        assert referer.status_code == 403
        assert (await ui.client.get("/ui/")).status_code == 200  # none of these signed out
        good = await ui.client.post(
            "/ui/logout", data={"csrf_token": token}, headers={"origin": "http://internal"}
        )
        assert good.status_code == 303
    assert await _end_reason(rt) == "logout"


async def test_the_sign_in_form_is_protected_by_a_double_submit_cookie(rt: Container) -> None:
    async with Ui(rt) as ui:
        no_cookie = await ui.client.post(
            "/ui/login", data={"username": "alice", "password": PASSWORD, "csrf_token": "x"}
        )
        assert no_cookie.status_code == 403 and "sign-in form has expired" in no_cookie.text
        token = await ui.login_form()
        wrong = await ui.client.post(
            "/ui/login",
            data={"username": "alice", "password": PASSWORD, "csrf_token": token + "x"},
        )
        assert wrong.status_code == 403
        ui.client.cookies.set("dialback_login_csrf", "abc.forged", path="/ui")
        forged_cookie = await ui.client.post(
            "/ui/login", data={"username": "alice", "password": PASSWORD, "csrf_token": "abc"}
        )
        assert forged_cookie.status_code == 403
        ui.client.cookies.clear()
        ui.login_token = ""
        assert (await ui.client.get("/ui/")).status_code == 303  # not signed in by any of them
        assert (await ui.sign_in("alice")).status_code == 303


NEXT_CASES = [
    ("https://evil.example/ui/", "/ui/"),
    ("//evil.example/ui/", "/ui/"),
    ("/\\evil.example", "/ui/"),
    ("/ui/../admin/v1/tenants", "/ui/"),
    ("/admin/v1/tenants", "/ui/"),
    ("javascript:alert(1)", "/ui/"),
    ("/ui/callbacks?state=QUEUED", "/ui/callbacks?state=QUEUED"),
]


async def test_next_is_only_ever_a_path_under_ui(rt: Container) -> None:
    async with Ui(rt) as ui:
        signed = await ui.sign_in("alice", next_path="https://evil.example/ui/")
        assert signed.status_code == 303 and signed.headers["location"] == "/ui/"
        for asked, lands in NEXT_CASES:  # signed in, the sign-in page sends you on to next
            again = await ui.client.get("/ui/login", params={"next": asked})
            assert again.status_code == 303 and again.headers["location"] == lands, asked


async def test_a_disabled_or_demoted_user_loses_access_at_once(rt: Container) -> None:
    async with Ui(rt) as ui:
        await ui.sign_in("alice")
        await rt.users.update("alice", roles=frozenset({Role.MONITOR}))
        home = await ui.client.get("/ui/")
        assert home.status_code == 200 and "monitor" in home.text
        assert "supervisor" not in home.text
        await rt.users.update("alice", disabled=True)
        assert (await ui.client.get("/ui/")).status_code == 303
        refused = await ui.sign_in("alice")
        assert refused.status_code == 401
    assert await _end_reason(rt) == "user_disabled"


async def test_too_many_attempts_answer_a_429_page_with_retry_after(tmp_path: Path) -> None:
    rt = await runtime(
        f"sqlite+aiosqlite:///{tmp_path}/d.db",
        tmp_path,
        login_failure_limit=3,
        auth_failure_window_seconds=3600,
    )
    try:
        await rt.users.add("alice", frozenset({Role.SUPERVISOR}), password=PASSWORD)
        async with Ui(rt) as ui:
            statuses = [
                (await ui.sign_in("alice", f"wrong-{n}-password")).status_code for n in range(4)
            ]
            assert statuses == [401, 401, 401, 429]
            # Over the limit, the right password is refused too, with a page that says why.
            page = await ui.sign_in("alice")
            assert page.status_code == 429
            retry = int(page.headers["retry-after"])
            assert 0 < retry <= 3600
            assert page.headers["content-type"].startswith("text/html")
            assert "Too many attempts" in page.text and f"retry in {retry} s" in page.text
            assert page.headers["x-frame-options"] == "DENY"
            assert (await ui.client.get("/ui/")).status_code == 303
        assert rt.metrics.ges_auth_rate_limited_total.value(("login",)) >= 2
    finally:
        await rt.stop()


async def test_bad_input_gets_a_page_not_a_500(rt: Container) -> None:
    async with Ui(rt) as ui:
        token = await ui.login_form()
        long = await ui.client.post(
            "/ui/login", data={"username": "a" * 300, "password": "x", "csrf_token": token}
        )
        assert long.status_code == 400 and "username" in long.text
        empty = await ui.client.post(
            "/ui/login", data={"username": "", "password": "", "csrf_token": token}
        )
        assert empty.status_code == 400 and "Enter your user name and password." in empty.text
        missing = await ui.client.get("/ui/no/such/page")
        assert missing.status_code == 404 and "No such page." in missing.text
        assert missing.headers["content-type"].startswith("text/html")
        css = await ui.client.get("/ui/static/ui.css")
        assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
        assert "http" not in css.text  # nothing fetched from elsewhere
        assert (await ui.client.get("/ui/static/x.js")).status_code == 404
        oidc_off = await ui.client.get("/ui/login/oidc")
        assert oidc_off.status_code == 404 and "not configured" in oidc_off.text
        # The admin API still answers JSON envelopes.
        api = await ui.client.get("/admin/v1/users")
        assert api.status_code == 401 and api.json()["status"]["corrId"]


# --- OIDC, with a stand-in relying party (the end-to-end test runs against a real provider) ---


class StandIn(OidcClient):
    display_name = "Test IdP"

    def __init__(self) -> None:
        self.redirects: list[str] = []
        self.completed: list[dict[str, str]] = []
        self.failure: Exception | None = None
        self.roles = frozenset({Role.DEVELOPER})

    async def authorization_request(self, redirect_uri: str) -> AuthorizationRequest:
        if isinstance(self.failure, OidcUnavailable):
            raise self.failure
        self.redirects.append(redirect_uri)
        n = len(self.redirects)
        state = f"state-{n}-0123456789abcdef"
        return AuthorizationRequest(
            f"https://idp.example/authorize?state={state}", state, f"nonce-{n}", f"verifier-{n}"
        )

    async def complete(
        self, *, code: str, redirect_uri: str, code_verifier: str, nonce: str
    ) -> OidcIdentity:
        self.completed.append(
            {"code": code, "redirect_uri": redirect_uri, "verifier": code_verifier, "nonce": nonce}
        )
        if self.failure is not None:
            raise self.failure
        return OidcIdentity("sub-1", "dana@example.com", "dana@example.com", self.roles, None)


def _state(response: httpx.Response) -> str:
    assert response.status_code == 303, response.text
    return parse_qs(urlsplit(response.headers["location"]).query)["state"][0]


async def test_oidc_sign_in_through_the_redirect_and_callback(rt: Container) -> None:
    idp = StandIn()
    rt.oidc = idp
    audit = Audit(rt)
    async with Ui(rt) as ui:
        page = await ui.client.get("/ui/login")
        assert "Sign in with Test IdP" in page.text
        start = await ui.client.get("/ui/login/oidc", params={"next": "/ui/callbacks"})
        assert start.headers["location"].startswith("https://idp.example/authorize")
        flow = _cookie(start, "dialback_login_flow")["dialback_login_flow"]
        assert flow["path"] == "/ui/auth" and flow["httponly"] is True
        assert idp.redirects == ["http://internal/ui/auth/callback"]
        state = _state(start)

        back = await ui.client.get("/ui/auth/callback", params={"code": "c0de", "state": state})
        assert back.status_code == 303 and back.headers["location"] == "/ui/callbacks"
        assert idp.completed == [
            {
                "code": "c0de",
                "redirect_uri": "http://internal/ui/auth/callback",
                "verifier": "verifier-1",
                "nonce": "nonce-1",
            }
        ]
        home = await ui.client.get("/ui/")
        assert "dana@example.com" in home.text and "oidc:dana@example.com" in home.text
        assert "developer" in home.text

        # A state is single use.
        replay = await ui.client.get("/ui/auth/callback", params={"code": "c0de", "state": state})
        assert replay.status_code == 400 and "Start again" in replay.text
    assert audit.actions()[-2:] == ["session.login", "session.login_failed"]

    # A flow started in one browser cannot be finished in another.
    async with Ui(rt) as victim, Ui(rt) as attacker:
        state = _state(await attacker.client.get("/ui/login/oidc"))
        stolen = await victim.client.get("/ui/auth/callback", params={"code": "x", "state": state})
        assert stolen.status_code == 400


async def test_oidc_failures_render_clear_pages(rt: Container, tmp_path: Path) -> None:
    idp = StandIn()
    rt.oidc = idp
    audit = Audit(rt)
    async with Ui(rt) as ui:
        state = _state(await ui.client.get("/ui/login/oidc"))
        denied = await ui.client.get(
            "/ui/auth/callback",
            params={"error": "access_denied", "error_description": "no <b>", "state": state},
        )
        assert denied.status_code == 401 and "access_denied" in denied.text
        assert "<b>" not in denied.text  # escaped

        idp.failure = OidcRejected("the ID token's audience is not dialback")
        state = _state(await ui.client.get("/ui/login/oidc"))
        rejected = await ui.client.get("/ui/auth/callback", params={"code": "c", "state": state})
        assert rejected.status_code == 401 and "audience" in rejected.text

        idp.failure = None
        idp.roles = frozenset()
        state = _state(await ui.client.get("/ui/login/oidc"))
        no_role = await ui.client.get("/ui/auth/callback", params={"code": "c", "state": state})
        assert no_role.status_code == 403 and "grants a dialback role" in no_role.text

        idp.failure = OidcUnavailable("connection refused")
        down = await ui.client.get("/ui/login/oidc")
        assert down.status_code == 503 and "cannot be reached" in down.text
        assert "corrId" in down.text
        assert (await ui.client.get("/ui/")).status_code == 303
    failed = [c for c in audit.calls if c[1] == "session.login_failed"]
    assert [c[0] for c in failed] == ["oidc:?"] * 3
    assert [c[2]["detail"]["reason"] for c in failed] == [
        "provider error access_denied",
        "OidcRejected",
        "no role",
    ]


async def test_the_redirect_uri_follows_dialback_ui_url(tmp_path: Path) -> None:
    rt = await runtime(
        f"sqlite+aiosqlite:///{tmp_path}/d.db", tmp_path, ui_url="https://callbacks.example.com/"
    )
    try:
        rt.oidc = idp = StandIn()
        # TLS ends at the ingress: over this plain-http hop the cookies are Secure all the same.
        async with Ui(rt) as plain:
            page = await plain.client.get("/ui/login")
            assert _cookie(page, "dialback_login_csrf")["dialback_login_csrf"]["secure"] is True
        async with Ui(rt, base_url="https://internal") as ui:
            await ui.client.get("/ui/login/oidc")
            assert idp.redirects == ["https://callbacks.example.com/ui/auth/callback"]
            await rt.users.add("alice", frozenset({Role.MONITOR}), password=PASSWORD)
            await ui.sign_in("alice")
            token = await ui.csrf()
            wrong = await ui.client.post(
                "/ui/logout", data={"csrf_token": token}, headers={"origin": "http://internal"}
            )
            assert wrong.status_code == 403
            right = await ui.client.post(
                "/ui/logout",
                data={"csrf_token": token},
                headers={"origin": "https://callbacks.example.com"},
            )
            assert right.status_code == 303
    finally:
        await rt.stop()


async def test_a_hash_with_old_parameters_is_remade_at_the_next_sign_in(rt: Container) -> None:
    weak = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1).hash(PASSWORD)
    async with rt.engine.begin() as conn:
        await conn.execute(users.update().values(password_hash=weak))
    async with Ui(rt) as ui:
        assert (await ui.sign_in("alice")).status_code == 303
    async with rt.engine.connect() as conn:
        stored = (await conn.execute(sa.select(users.c.password_hash))).scalar_one()
    assert stored != weak and stored.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    assert (await rt.users.authenticate("alice", PASSWORD)).name == "alice"


async def test_pages_built_on_the_ui_dependencies_enforce_roles_and_csrf(tmp_path: Path) -> None:
    """What the Callback UI's pages build on: ``ui_router``, ``ui_requires``, the session."""
    pages = ui_router()

    @pages.get("/admin-only")
    async def admin_only(p: Annotated[Principal, ui_requires(Permission.USERS_WRITE)]) -> str:
        return p.actor

    @pages.post("/act")
    async def act(p: UiPrincipalDep) -> str:
        return p.actor

    rt = await runtime(f"sqlite+aiosqlite:///{tmp_path}/d.db", tmp_path)
    try:
        await rt.users.add("mo", frozenset({Role.MONITOR}), password=PASSWORD)
        await rt.users.add("ada", frozenset({Role.ADMINISTRATOR}), password=PASSWORD)
        app = create_internal_app(rt)
        app.include_router(pages)
        async with Ui(rt, app=app) as anon:
            first = await anon.client.get("/ui/admin-only?x=1")
            assert first.headers["location"] == "/ui/login?next=/ui/admin-only%3Fx%3D1"
            no_session = await anon.client.post("/ui/act", data={"csrf_token": "x"})
            assert no_session.status_code == 401 and "not signed in" in no_session.text
        for name, status in (("mo", 403), ("ada", 200)):
            async with Ui(rt, app=app) as ui:
                await ui.sign_in(name)
                page = await ui.client.get("/ui/admin-only")
                assert page.status_code == status, page.text
                if status == 403:
                    assert "needs users.write" in page.text
                token = await ui.csrf()
                assert (await ui.client.post("/ui/act")).status_code == 403
                done = await ui.client.post("/ui/act", data={"csrf_token": token})
                assert done.status_code == 200 and done.json() == f"local:{name}"
        # Every state-changing UI request is audited like an admin call: who, which action,
        # the outcome (the CSRF refusals as denied), never the form's content.
        async with rt.engine.connect() as conn:
            rows = (
                await conn.execute(
                    sa.select(audit_log)
                    .where(audit_log.c.action == "ui.act")
                    .order_by(audit_log.c.at)
                )
            ).all()
        assert [(r.actor, r.outcome, r.detail["status"]) for r in rows] == [
            ("anonymous", "failed", 401),
            ("local:mo", "denied", 403),
            ("local:mo", "ok", 200),
            ("local:ada", "denied", 403),
            ("local:ada", "ok", 200),
        ]
        assert all(r.detail["route"] == "/ui/act" for r in rows)
    finally:
        await rt.stop()
