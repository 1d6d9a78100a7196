"""The Callback UI's Tenants and Users pages over httpx: who may do what (forged posts of other
roles and of a tenant-scoped administrator answer 403), CSRF, bad input (400 naming the field),
the show-once answers, an operator's own account."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from dialback.container import Container
from dialback.identity.roles import Principal, Role
from dialback.kit.errors import Conflict
from dialback.tenants.schemas import TenantSettings
from tests.support.ui_client import PASSWORD, Ui, audit_rows, runtime, signed_in

ONCE_RE = re.compile(r'name="once" value="([^"]*)"')
KEY_RE = re.compile(r'id="new-key"[^>]*value="([0-9a-f-]{36})"')
PW_RE = re.compile(r'id="new-password"[^>]*value="([^"]+)"')


@pytest.fixture
async def rt(tmp_path: Path) -> AsyncIterator[Container]:
    """A runtime with tenants acme and globex, and ada (administrator of every tenant), tina
    (administrator of acme only), sam (supervisor)."""
    c = await runtime(f"sqlite+aiosqlite:///{tmp_path}/dialback.db", tmp_path)
    await c.tenants.create("acme", TenantSettings())
    await c.tenants.create("globex", TenantSettings())
    await c.users.add("ada", frozenset({Role.ADMINISTRATOR}), password=PASSWORD)
    await c.users.add(
        "tina", frozenset({Role.ADMINISTRATOR}), frozenset({"acme"}), password=PASSWORD
    )
    await c.users.add("sam", frozenset({Role.SUPERVISOR}), password=PASSWORD)
    try:
        yield c
    finally:
        await c.stop()


async def _once(ui: Ui, path: str) -> str:
    page = await ui.client.get(path)
    assert page.status_code == 200, page.text
    found = ONCE_RE.search(page.text)
    assert found
    return found.group(1)


async def test_forged_posts_of_a_supervisor_and_csrf_less_posts_are_refused(
    rt: Container,
) -> None:
    async with await signed_in(rt, "sam") as sam:
        # No buttons, no pages: sam lacks the permissions.
        assert (await sam.client.get("/ui/users")).status_code == 403
        tenants = await sam.client.get("/ui/tenants")  # a monitor's read (TENANTS_READ)
        assert tenants.status_code == 200
        assert "Create tenant" not in tenants.text and ">Disable<" not in tenants.text
        assert 'href="/ui/tenants"' not in tenants.text  # not in the navigation
        acme = await sam.client.get("/ui/tenants/acme")
        assert acme.status_code == 200 and "API keys" not in acme.text
        once = "x" * 22
        forged = {
            "/ui/tenants": {"name": "evil"},
            "/ui/tenants/acme/api-keys": {"name": "evil", "once": once},
            "/ui/tenants/acme/state": {"disabled": "true"},
            "/ui/users": {"username": "evil", "roles": "administrator", "once": once},
            "/ui/users/ada/remove": {},
        }
        for path, data in forged.items():
            answer = await sam.post(path, data)
            assert answer.status_code == 403, (path, answer.text)
            assert "Not allowed" in answer.text
    async with await signed_in(rt, "ada") as ada:
        once = await _once(ada, "/ui/tenants/acme")
        for path, data in (
            ("/ui/tenants", {"name": "nocsrf"}),
            ("/ui/tenants/acme/api-keys", {"name": "nocsrf", "once": once}),
            ("/ui/users", {"username": "nocsrf", "roles": "monitor", "once": once}),
        ):
            answer = await ada.client.post(path, data=data)
            assert answer.status_code == 403, (path, answer.text)
            assert "CSRF token is missing" in answer.text
    assert [t.name for t in await rt.tenants.list()] == ["acme", "globex"]
    assert await rt.tenants.list_keys("acme") == []
    assert {u.username for u in await rt.users.list()} == {"ada", "tina", "sam"}
    assert not (await rt.tenants.get("acme")).disabled


async def test_a_tenant_scoped_administrator_manages_only_its_tenants_keys(
    rt: Container,
) -> None:
    async with await signed_in(rt, "tina") as tina:
        listing = await tina.client.get("/ui/tenants")
        assert listing.status_code == 200
        assert "acme" in listing.text and "globex" not in listing.text
        assert "Create tenant" not in listing.text
        assert "Only an administrator of every tenant creates tenants." in listing.text
        refused = await tina.post("/ui/tenants", {"name": "new"})
        assert (
            refused.status_code == 403
            and "only an operator of every tenant may do this; local:tina is scoped to acme."
            in refused.text
        )
        user = await tina.post(
            "/ui/users",
            {"username": "x", "roles": "monitor", "once": "y" * 22},
        )
        assert user.status_code == 403
        assert (await tina.client.get("/ui/users")).status_code == 403
        other = await tina.client.get("/ui/tenants/globex")
        assert other.status_code == 403 and "outside the scope" in other.text
        forged_key = await tina.post(
            "/ui/tenants/globex/api-keys",
            {"name": "k", "once": "z" * 22},
        )
        assert forged_key.status_code == 403

        once = await _once(tina, "/ui/tenants/acme")
        made = await tina.post("/ui/tenants/acme/api-keys", {"name": "ivr", "once": once})
        assert made.status_code == 201, made.text
        key = KEY_RE.search(made.text)
        assert key and "it will not be shown again" in made.text
        assert made.headers["cache-control"] == "no-store"
        (stored,) = await rt.tenants.list_keys("acme")
        assert stored.name == "ivr" and key.group(1).startswith(stored.prefix)
        # The browser's reload resends the same form: no second key, the key not shown again.
        again = await tina.post("/ui/tenants/acme/api-keys", {"name": "ivr", "once": once})
        assert again.status_code == 409 and key.group(1) not in again.text
        assert len(await rt.tenants.list_keys("acme")) == 1
        page = await tina.client.get("/ui/tenants/acme")
        assert stored.prefix in page.text and key.group(1) not in page.text

        confirm = await tina.client.get(f"/ui/tenants/acme/api-keys/{stored.id}/revoke")
        assert confirm.status_code == 200 and "cannot be undone" in confirm.text
        revoked = await tina.post(f"/ui/tenants/acme/api-keys/{stored.id}/revoke")
        assert revoked.status_code == 303
        assert revoked.headers["location"] == "/ui/tenants/acme?done=revoked"
        (after,) = await rt.tenants.list_keys("acme")
        assert after.revoked_at is not None
        twice = await tina.post(f"/ui/tenants/acme/api-keys/{stored.id}/revoke")
        assert twice.status_code == 404
    # Audited like an admin call, never with the key.
    rows = await audit_rows(rt)
    seen = {(r.action, r.outcome, r.object_type, r.object_id, r.tenant) for r in rows}
    assert ("ui.create_tenant", "denied", "tenant", "", None) in seen
    assert ("ui.create_api_key", "ok", "tenant", "acme", "acme") in seen
    assert ("ui.create_api_key", "denied", "tenant", "globex", "globex") in seen
    assert ("ui.revoke_api_key", "ok", "api_key", stored.id, "acme") in seen
    assert all(
        r.actor == "local:tina" for r in rows if r.action.startswith("ui.") and "key" in r.action
    )
    assert key.group(1) not in repr(rows)


async def test_bad_input_answers_400_naming_the_field(rt: Container) -> None:
    async with await signed_in(rt, "ada") as ada:
        empty = await ada.post("/ui/tenants", {"name": " "})
        assert empty.status_code == 400
        assert "Name: a tenant needs a name" in empty.text
        assert 'id="t-name" name="name" value="" aria-invalid="true"' in empty.text
        bad = await ada.post(
            "/ui/tenants",
            {
                "name": "ok-name",
                "max_callbacks": "0",
                "window_seconds": "x",
            },
        )
        assert bad.status_code == 400
        assert "Max callbacks per window: Input should be greater than or equal to 1" in bad.text
        assert "Throttle window (seconds): Input should be a valid integer" in bad.text
        assert 'value="ok-name"' in bad.text  # what was typed stays
        pattern = await ada.post("/ui/tenants", {"name": "no spaces"})
        assert pattern.status_code == 400 and "Name: String should match pattern" in pattern.text
        taken = await ada.post("/ui/tenants", {"name": "acme"})
        assert (
            taken.status_code == 409
            and "a tenant named &#39;acme&#39; already exists" in taken.text
        )
        made = await ada.post(
            "/ui/tenants",
            {
                "name": "initech",
                "max_callbacks": "42",
                "callback_days": "7",
            },
        )
        assert (
            made.status_code == 303
            and made.headers["location"] == "/ui/tenants/initech?done=created"
        )
        rec = await rt.tenants.get("initech")
        assert rec.settings["throttle"] == {"maxCallbacks": 42, "windowSeconds": 60}
        assert rec.settings["retention"] == {"callbackDays": 7}
        listing = await ada.client.get("/ui/tenants")
        assert (
            "42 callbacks / 60 s" in listing.text
            and "callbacks 7 d, call-ins 30 d (default)" in listing.text
        )

        once = await _once(ada, "/ui/tenants/acme")
        no_name = await ada.post("/ui/tenants/acme/api-keys", {"name": "", "once": once})
        assert no_name.status_code == 400 and "Key name: a key needs a name" in no_name.text

        once = await _once(ada, "/ui/users")
        typed = {"once": once, "password_mode": "type"}
        long_enough = {"password": "long-enough-pass", "password2": "long-enough-pass"}
        bob = {"username": "bob", "roles": "monitor"}
        short = await ada.post(
            "/ui/users", {**typed, **bob, "password": "short", "password2": "short"}
        )
        assert short.status_code == 400
        assert "Password: a password must be at least 12 characters" in short.text
        differ = await ada.post(
            "/ui/users", {**typed, **bob, **long_enough, "password2": "long-enough-pasz"}
        )
        assert (
            differ.status_code == 400 and "Password again: the two passwords differ" in differ.text
        )
        nothing = await ada.post(
            "/ui/users", {**typed, "username": "", "scope": "some", "password": "p"}
        )
        assert nothing.status_code == 400
        assert "User name: a user needs a name" in nothing.text
        assert "Roles: a user needs at least one role" in nothing.text
        assert "Tenants: give at least one tenant" in nothing.text
        bad_name = await ada.post(
            "/ui/users", {**typed, **long_enough, "username": "no spaces", "roles": "monitor"}
        )
        assert (
            bad_name.status_code == 400
            and "User name: &#39;no spaces&#39; is not a valid" in bad_name.text
        )
        assert {u.username for u in await rt.users.list()} == {"ada", "tina", "sam"}


async def test_users_added_changed_reset_and_removed_but_never_ones_own_account(
    rt: Container,
) -> None:
    async with await signed_in(rt, "ada") as ada:
        once = await _once(ada, "/ui/users")
        made = await ada.post(
            "/ui/users",
            {
                "once": once,
                "username": "Olga",
                "roles": ["monitor", "supervisor"],
                "scope": "some",
                "tenants": ["acme", "globex"],
                "password_mode": "generate",
            },
        )
        assert made.status_code == 201, made.text
        password = PW_RE.search(made.text)
        assert password and "it will not be shown again" in made.text
        olga = await rt.users.get("olga")
        assert olga.roles == {Role.MONITOR, Role.SUPERVISOR}
        assert olga.tenants == {"acme", "globex"}
        assert (await rt.users.authenticate("olga", password.group(1))).name == "olga"
        resent = await ada.post(
            "/ui/users",
            {"once": once, "username": "olga2", "roles": "monitor"},
        )
        assert resent.status_code == 409 and password.group(1) not in resent.text

        listing = await ada.client.get("/ui/users")
        assert "olga" in listing.text and "acme, globex" in listing.text
        assert password.group(1) not in listing.text

        patched = await ada.post(
            "/ui/users/olga",
            {"roles": "supervisor", "scope": "every"},
        )
        assert patched.status_code == 303
        olga = await rt.users.get("olga")
        assert olga.roles == {Role.SUPERVISOR} and olga.tenants is None

        off = await ada.post("/ui/users/olga/state", {"disabled": "true"})
        assert off.status_code == 303 and (await rt.users.get("olga")).disabled
        on = await ada.post("/ui/users/olga/state", {"disabled": "false"})
        assert on.status_code == 303 and not (await rt.users.get("olga")).disabled

        once = await _once(ada, "/ui/users/olga")
        reset = await ada.post("/ui/users/olga/password", {"once": once})
        assert reset.status_code == 200
        new = PW_RE.search(reset.text)
        assert new and new.group(1) != password.group(1)
        assert (await rt.users.authenticate("olga", new.group(1))).name == "olga"
        again = await ada.post("/ui/users/olga/password", {"once": once})
        assert again.status_code == 409
        assert (await rt.users.authenticate("olga", new.group(1))).name == "olga"

        # One's own account: no buttons, and the service refuses the forged posts.
        mine = await ada.client.get("/ui/users/ada")
        assert "This is your own account" in mine.text
        assert "Disable user" not in mine.text and "Remove…" not in mine.text
        for path, data in (
            ("/ui/users/ada/state", {"disabled": "true"}),
            ("/ui/users/ada/remove", {}),
        ):
            refused = await ada.post(path, data)
            assert refused.status_code == 409, refused.text
            assert "their own account" in refused.text
        demote = await ada.post("/ui/users/ada", {"roles": "monitor", "scope": "every"})
        assert demote.status_code == 409 and "Roles: ada cannot take away" in demote.text
        narrow = await ada.post(
            "/ui/users/ada",
            {
                "roles": "administrator",
                "scope": "some",
                "tenants": "acme",
            },
        )
        assert narrow.status_code == 409 and "Tenants: ada cannot narrow" in narrow.text
        me = await rt.users.get("ada")
        assert me.roles == {Role.ADMINISTRATOR} and me.tenants is None and not me.disabled

        confirm = await ada.client.get("/ui/users/olga/remove")
        assert confirm.status_code == 200 and "Remove user olga?" in confirm.text
        gone = await ada.post("/ui/users/olga/remove")
        assert gone.status_code == 303 and gone.headers["location"] == "/ui/users?done=removed"
        assert {u.username for u in await rt.users.list()} == {"ada", "tina", "sam"}


async def test_the_service_refuses_an_operator_locking_themselves_out(rt: Container) -> None:
    me = (await rt.users.get("ada")).principal()
    for change in (
        {"disabled": True},
        {"roles": frozenset({Role.SUPERVISOR})},
        {"tenants": frozenset({"acme"}), "set_tenants": True},
    ):
        with pytest.raises(Conflict, match="ada cannot"):
            await rt.users.update("ada", by=me, **change)  # type: ignore[arg-type]
    with pytest.raises(Conflict, match="cannot remove their own account"):
        await rt.users.remove("ada", by=me)
    # Harmless changes of one's own account, and anyone else's (or the CLI's, by no one).
    await rt.users.update("ada", display_name="Ada L.", roles=frozenset(Role), by=me)
    sso_ada = Principal("oidc", "ada", frozenset({Role.ADMINISTRATOR}))
    await rt.users.update("tina", disabled=True, by=me)
    await rt.users.update("ada", disabled=True, by=sso_ada)  # another identity of that name
    await rt.users.update("ada", disabled=False)
    assert not (await rt.users.get("ada")).disabled
    assert (await rt.users.get("tina")).disabled


async def test_a_tenants_settings_edited_with_errors_per_field_and_read_only_for_others(
    rt: Container,
) -> None:
    async with await signed_in(rt, "tina") as tina:
        page = await tina.client.get("/ui/tenants/acme")
        assert "Save settings" in page.text and 'id="t-max_callbacks"' in page.text
        bad = await tina.post(
            "/ui/tenants/acme/settings",
            {"max_callbacks": "0", "callin_days": "99999"},
        )
        assert bad.status_code == 400
        assert "Max callbacks per window: Input should be greater than or equal to 1" in bad.text
        assert "Keep call-ins (days): Input should be less than or equal to 3650" in bad.text
        assert 'id="t-max_callbacks" name="max_callbacks" value="0"' in bad.text
        saved = await tina.post(
            "/ui/tenants/acme/settings",
            {
                "max_callbacks": "42",
                "window_seconds": "30",
                "callback_days": "7",
            },
        )
        assert saved.status_code == 303
        assert saved.headers["location"] == "/ui/tenants/acme?done=saved"
        rec = await rt.tenants.get("acme")
        assert rec.settings == {
            "throttle": {"maxCallbacks": 42, "windowSeconds": 30},
            "retention": {"callbackDays": 7},
        }
        after = await tina.client.get("/ui/tenants/acme?done=saved")
        assert "42 callbacks / 30 s" in after.text and "call-ins 30 d (default)" in after.text
        other = await tina.post("/ui/tenants/globex/settings", {"max_callbacks": "1"})
        assert other.status_code == 403 and "outside the scope" in other.text
    async with await signed_in(rt, "sam") as sam:
        page = await sam.client.get("/ui/tenants/acme")
        assert "42 callbacks / 30 s" in page.text and "Save settings" not in page.text
        forged = await sam.post("/ui/tenants/acme/settings", {"max_callbacks": "1"})
        assert forged.status_code == 403
    assert (await rt.tenants.get("acme")).settings["throttle"]["maxCallbacks"] == 42
    assert (await rt.tenants.get("globex")).settings["throttle"]["maxCallbacks"] == 500
    rows = await audit_rows(rt)
    seen = {(r.action, r.outcome, r.tenant) for r in rows}
    assert ("ui.set_tenant_settings", "ok", "acme") in seen
    assert ("ui.set_tenant_settings", "denied", "globex") in seen
    # What the save changed, old → new (the 400 and the refusals changed nothing).
    settings_rows = [r for r in rows if r.action == "ui.set_tenant_settings"]
    assert [r.detail.get("changes") for r in settings_rows if r.outcome == "ok"] == [
        {
            "throttle.maxCallbacks": [500, 42],
            "throttle.windowSeconds": [60, 30],
            "retention.callbackDays": [None, 7],
        }
    ]
    assert all("changes" not in r.detail for r in settings_rows if r.outcome != "ok")


async def test_every_ui_route_with_a_tenant_in_its_path_refuses_another_tenants_operator(
    rt: Container,
) -> None:
    from dialback.app import create_internal_app
    from dialback.web.fastpath import served_routes

    app = create_internal_app(rt)
    routes = [
        (method, path)
        for _route, path, methods in served_routes(app)
        if path.startswith("/ui") and "{tenant}" in path
        for method in sorted(methods - {"HEAD"})
    ]
    assert len(routes) >= 10 and {m for m, _ in routes} == {"GET", "POST"}
    async with await signed_in(rt, "tina") as tina:  # an administrator of acme only
        for method, path in routes:
            url = re.sub(r"\{[^}]+\}", "x1", path).replace("/x1", "/globex", 1)
            answer = await tina.client.request(
                method, url, data={"csrf_token": tina.token} if method == "POST" else None
            )
            assert answer.status_code == 403, (method, path, answer.status_code)
            assert "outside the scope of local:tina" in answer.text, (method, path)
            assert "corrId" in answer.text
