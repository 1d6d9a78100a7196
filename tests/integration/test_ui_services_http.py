"""The Services and Click-To-Call-In pages over HTTP (no browser): roles, forged and CSRF-less
posts, invalid configurations answered 400 with each error next to its field, tenant scope."""

from __future__ import annotations

import html as html_lib
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from dialback.container import Container
from dialback.db.schema import audit_log
from dialback.identity.roles import Role
from dialback.services import repository as services_repo
from dialback.services.schemas import ServiceConfig
from dialback.tenants import repository as tenants_repo
from dialback.ui.service_form import values_of
from tests.support.stack import make_settings
from tests.support.ui_client import PASSWORD, Ui

HOURS = {"timezone": "Europe/Berlin", "weekly": {"mon": [{"start": "09:00", "end": "17:00"}]}}
CAPACITY = {
    "slotMinutes": 30,
    "weekly": {"mon": [{"start": "09:00", "end": "10:00", "capacity": 4}]},
}


@pytest.fixture
async def rt(tmp_path: Path) -> AsyncIterator[Container]:
    """A runtime with tenants acme (service sales) and globex (service support), the four roles
    and an administrator of acme only (sue)."""
    c = Container(
        make_settings(
            database_url=f"sqlite+aiosqlite:///{tmp_path}/ui.db",
            data_dir=str(tmp_path),
            simulator="off",
        )
    )
    await c.start()
    cfg = ServiceConfig.model_validate(
        {"businessHours": HOURS, "capacity": CAPACITY, "validation": {"defaultCountry": "DE"}}
    )
    async with c.engine.begin() as conn:
        for tenant, service in (("acme", "sales"), ("globex", "support")):
            t = await tenants_repo.create_tenant(conn, tenant, {})
            await services_repo.create_service(conn, t.id, service, cfg)
    try:
        yield c
    finally:
        await c.stop()


USERS = {
    "mona": (Role.MONITOR, None),
    "sam": (Role.SUPERVISOR, None),
    "ada": (Role.ADMINISTRATOR, None),
    "sue": (Role.ADMINISTRATOR, frozenset({"acme"})),
}


async def _signed_in(rt: Container, user: str) -> Ui:
    """A browser signed in as ``user`` (added on first use: password hashing is slow)."""
    if user not in {u.username for u in await rt.users.list()}:
        role, tenants = USERS[user]
        await rt.users.add(user, frozenset({role}), tenants, password=PASSWORD)
    ui = Ui(rt)
    signed = await ui.sign_in(user)
    assert signed.status_code == 303, signed.text
    return ui


def _form(cfg: ServiceConfig, token: str, **changes: Any) -> dict[str, Any]:
    """The editor's form as a browser sends it (unchecked boxes absent)."""
    data: dict[str, Any] = {"csrf_token": token}
    for k, v in {**values_of(cfg), **changes}.items():
        if v is True:
            data[k] = "on"
        elif v is False:
            continue
        else:
            data[k] = v
    return data


def _field_error(html: str, field: str) -> str:
    found = re.search(rf'<p class="field-error" id="{re.escape(field)}-err">([^<]*)</p>', html)
    assert found, f"no error shown next to {field}"
    assert f'id="{field}"' in html and f'aria-describedby="{field}-err"' in html
    return html_lib.unescape(found.group(1))


async def test_the_services_pages_by_role(rt: Container) -> None:
    for user in ("mona", "sam"):
        async with await _signed_in(rt, user) as ui:
            listing = await ui.client.get("/ui/services")
            assert listing.status_code == 200
            assert "Tenant acme" in listing.text and "Tenant globex" in listing.text
            assert 'href="/ui/services/acme/sales"' in listing.text
            assert "New service" not in listing.text
            detail = await ui.client.get("/ui/services/acme/sales")
            assert detail.status_code == 200
            assert "Europe/Berlin" in detail.text and "09:00-17:00" in detail.text
            assert "Edit service" not in detail.text and "Delete service" not in detail.text
            for path in ("/ui/services/acme/sales/edit", "/ui/services/new"):
                page = await ui.client.get(path)
                assert page.status_code == 403 and "services.write" in page.text
    async with await _signed_in(rt, "ada") as ui:
        detail = await ui.client.get("/ui/services/acme/sales")
        assert "Edit service" in detail.text and "Delete service" in detail.text
        edit = await ui.client.get("/ui/services/acme/sales/edit")
        assert edit.status_code == 200
        # The week grid: 48 half-hour cells a day, the configured window's two cells at 4.
        assert len(re.findall(r'<input type="number" min="0" id="cap-', edit.text)) == 48 * 7
        assert 'id="cap-mon-540" name="cap-mon-540" value="4"' in edit.text
        assert 'id="cap-mon-570" name="cap-mon-570" value="4"' in edit.text
        assert 'id="cap-mon-600" name="cap-mon-600" value=""' in edit.text
        assert '<label class="vh" for="cap-mon-540">Mon 09:00-09:30</label>' in edit.text
        assert '<label class="vh" for="cap-tue-540">Tue 09:00-09:30 (closed)</label>' in edit.text


async def test_forged_and_csrf_less_posts_are_refused(rt: Container) -> None:
    before = (await rt.services.get("acme", "sales")).config
    async with await _signed_in(rt, "sam") as ui:
        token = await ui.csrf()
        forged = await ui.client.post("/ui/services/acme/sales", data=_form(before, token))
        assert forged.status_code == 403 and "services.write" in forged.text
        delete = await ui.client.post(
            "/ui/services/acme/sales/delete", data={"csrf_token": token, "confirm": "yes"}
        )
        assert delete.status_code == 403
        group = await ui.client.post(
            "/ui/callins/acme/g1",
            data={"csrf_token": token, "numbers": "+4930123456", "expiry_seconds": "900"},
        )
        assert group.status_code == 403 and "callins.write" in group.text
    async with await _signed_in(rt, "ada") as ui:
        form = _form(before, "")
        del form["csrf_token"]
        for path in (
            "/ui/services/acme/sales",
            "/ui/services/acme/sales/delete",
            "/ui/callins/acme/g1",
            "/ui/callins/acme/g1/delete",
        ):
            refused = await ui.client.post(path, data=form)
            assert refused.status_code == 403 and "CSRF" in refused.text, path
    assert (await rt.services.get("acme", "sales")).config == before
    assert await rt.callins.list_groups("acme") == []
    async with rt.engine.connect() as conn:
        outcomes = set(
            (
                await conn.execute(
                    sa.select(audit_log.c.action, audit_log.c.outcome).where(
                        audit_log.c.action == "ui.put_service"
                    )
                )
            ).all()
        )
    assert ("ui.put_service", "denied") in outcomes


async def test_an_invalid_configuration_shows_each_error_next_to_its_field(
    rt: Container,
) -> None:
    before = (await rt.services.get("acme", "sales")).config
    async with await _signed_in(rt, "ada") as ui:
        token = await ui.csrf()
        bad = _form(
            before,
            token,
            **{
                "tz": "Mars/Olympus",
                "hours-tue": "17:00-09:00",
                "hours-wed": "nine to five",
                "cap-mon-600": "-1",
                "cap-fri-720": "lots",
                "closed_dates": "2026-02-30",
                "allowed_countries": "US, XX",
                "blocked_patterns": "(unclosed",
                "max_attempts": "0",
            },
        )
        page = await ui.client.post("/ui/services/acme/sales", data=bad)
        assert page.status_code == 400
        assert "Not saved" in page.text
        assert "unknown IANA time zone 'Mars/Olympus'" in _field_error(page.text, "tz")
        assert "range 1: end must be after start" in _field_error(page.text, "hours-tue")
        assert "'nine' is not a range" in _field_error(page.text, "hours-wed")
        assert "greater than or equal to 0" in _field_error(page.text, "cap-mon-600")
        assert "'lots' is not a whole number" in _field_error(page.text, "cap-fri-720")
        assert "value 1" in _field_error(page.text, "closed_dates")
        assert "XX" in _field_error(page.text, "allowed_countries")
        assert "invalid pattern" in _field_error(page.text, "blocked_patterns")
        assert "greater than or equal to 1" in _field_error(page.text, "max_attempts")
        # What was typed is kept, so it can be corrected.
        assert 'value="Mars/Olympus"' in page.text and 'value="lots"' in page.text
    assert (await rt.services.get("acme", "sales")).config == before


async def test_an_edit_is_applied_and_its_warnings_shown(rt: Container) -> None:
    before = (await rt.services.get("acme", "sales")).config
    async with await _signed_in(rt, "ada") as ui:
        token = await ui.csrf()
        form = _form(
            before,
            token,
            **{"hours-tue": "08:00-12:00, 13:00-18:00", "cap-mon-600": "7", "default_country": ""},
        )
        saved = await ui.client.post("/ui/services/acme/sales", data=form)
        assert saved.status_code == 200, saved.text
        assert "Service saved." in saved.text
        assert "validation.defaultCountry not set" in saved.text
    cfg = (await rt.services.get("acme", "sales")).config
    assert [(r.start, r.end) for r in cfg.business_hours.weekly["tue"]] == [
        ("08:00", "12:00"),
        ("13:00", "18:00"),
    ]
    assert [(w.start, w.end, w.capacity) for w in cfg.capacity.weekly["mon"]] == [
        ("09:00", "10:00", 4),
        ("10:00", "10:30", 7),
    ]
    # The calendar the booking uses reads the new limit.
    rec = await rt.services.get("acme", "sales")
    slot = rec.calendar.slot_for(_monday_at(rec.calendar.zone, 10, 15))
    assert slot is not None and slot.total == 7


def _monday_at(zone: Any, hour: int, minute: int) -> float:
    from datetime import datetime

    return datetime(2026, 12, 7, hour, minute, tzinfo=zone).timestamp()


async def test_create_and_delete_a_service(rt: Container) -> None:
    async with await _signed_in(rt, "ada") as ui:
        token = await ui.csrf()
        taken = await ui.client.get("/ui/services/new", params={"tenant": "acme", "name": "sales"})
        assert taken.status_code == 400 and "already has a service named" in taken.text
        bad = await ui.client.get("/ui/services/new", params={"tenant": "acme", "name": "-x"})
        assert bad.status_code == 400 and 'id="name-err"' in bad.text
        new = await ui.client.get("/ui/services/new", params={"tenant": "acme", "name": "care"})
        assert new.status_code == 200 and 'name="mode" value="create"' in new.text
        form = _form(ServiceConfig(), token, **{"mode": "create", "always_open": True})
        created = await ui.client.post("/ui/services/acme/care", data=form)
        assert created.status_code == 200 and "Service created." in created.text
        # A create never replaces: the same form again is a conflict shown on the form.
        again = await ui.client.post("/ui/services/acme/care", data=form)
        assert again.status_code == 409 and "already has a service named" in again.text
        unconfirmed = await ui.client.post(
            "/ui/services/acme/care/delete", data={"csrf_token": token}
        )
        assert unconfirmed.status_code == 400
        deleted = await ui.client.post(
            "/ui/services/acme/care/delete", data={"csrf_token": token, "confirm": "yes"}
        )
        assert deleted.status_code == 303
        assert deleted.headers["location"] == "/ui/services?deleted=acme/care"
    assert [s.name for s in await rt.services.list("acme")] == ["sales"]
    async with rt.engine.connect() as conn:
        rows = (
            await conn.execute(
                sa.select(
                    audit_log.c.action,
                    audit_log.c.object_type,
                    audit_log.c.object_id,
                    audit_log.c.tenant,
                    audit_log.c.outcome,
                ).where(audit_log.c.action.in_(["ui.put_service", "ui.delete_service"]))
            )
        ).all()
    assert ("ui.put_service", "service", "care", "acme", "ok") in rows
    assert ("ui.delete_service", "service", "care", "acme", "ok") in rows


async def test_a_scoped_operator_sees_its_tenants_only(rt: Container) -> None:
    async with await _signed_in(rt, "sue") as ui:
        token = await ui.csrf()
        listing = await ui.client.get("/ui/services")
        assert "Tenant acme" in listing.text and "globex" not in listing.text
        other = await ui.client.get("/ui/services/globex/support")
        assert other.status_code == 403 and "outside the scope of local:sue" in other.text
        cfg = (await rt.services.get("globex", "support")).config
        forged = await ui.client.post("/ui/services/globex/support", data=_form(cfg, token))
        assert forged.status_code == 403
        new = await ui.client.get("/ui/services/new", params={"tenant": "globex", "name": "x"})
        assert new.status_code == 400 and "that you may see" in new.text
        callins = await ui.client.get("/ui/callins")
        assert callins.status_code == 200 and '<option value="globex"' not in callins.text
        outside = await ui.client.get("/ui/callins", params={"tenant": "globex"})
        assert outside.status_code == 403
    assert (await rt.services.get("globex", "support")).config == cfg


async def test_callin_groups_by_role_with_errors_per_field(rt: Container) -> None:
    async with await _signed_in(rt, "ada") as ui:
        token = await ui.csrf()
        bad = await ui.client.post(
            "/ui/callins/acme/web",
            data={
                "csrf_token": token,
                "mode": "create",
                "numbers": "+1 202 555 0100\nnot a number",
                "default_country": "US",
                "access_enabled": "on",
                "access_length": "3",
                "expiry_seconds": "10",
            },
        )
        assert bad.status_code == 400
        assert "number 2" in _field_error(bad.text, "numbers")
        assert "greater than or equal to 4" in _field_error(bad.text, "access_length")
        assert "greater than or equal to 60" in _field_error(bad.text, "expiry_seconds")
        good = await ui.client.post(
            "/ui/callins/acme/web",
            data={
                "csrf_token": token,
                "mode": "create",
                "numbers": "+1 202 555 0100",
                "default_country": "US",
                "access_enabled": "on",
                "access_length": "6",
                "expiry_seconds": "600",
            },
        )
        assert good.status_code == 303
        page = await ui.client.get("/ui/callins")
        assert "+12025550100" in page.text and "6 digits" in page.text and "10.0 min" in page.text
    group = await rt.callins.get_group("acme", "web")
    assert group.config.expiry_seconds == 600
    async with await _signed_in(rt, "mona") as ui:
        page = await ui.client.get("/ui/callins")
        assert page.status_code == 200 and "+12025550100" in page.text
        assert "New group" not in page.text and "/ui/callins/acme/web" not in page.text
        assert (await ui.client.get("/ui/callins/acme/web")).status_code == 403
        token = await ui.csrf()
        forged = await ui.client.post(
            "/ui/callins/acme/web/delete", data={"csrf_token": token, "confirm": "yes"}
        )
        assert forged.status_code == 403
    async with await _signed_in(rt, "ada") as ui:
        token = await ui.csrf()
        gone = await ui.client.post(
            "/ui/callins/acme/web/delete", data={"csrf_token": token, "confirm": "yes"}
        )
        assert gone.status_code == 303
    assert await rt.callins.list_groups("acme") == []
