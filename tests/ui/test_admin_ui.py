"""The Administrator's pages in a real browser (Debian's Chromium through Playwright): a tenant
and an API key created, the key shown once working against the public API until revoked; a
user added with a generated password who then signs in; a tenant's settings edited (a bad value
answered next to its field, then saved); the pages at 1280x800 and 390 px."""

from __future__ import annotations

from pathlib import Path

import httpx

from dialback.app import create_public_app
from dialback.services import repository as services_repo
from dialback.services.schemas import ServiceConfig
from dialback.tenants.schemas import TenantSettings
from tests.support.browser import (
    DESKTOP,
    PHONE,
    UiStack,
    chromium,
    fits,
    shot,
    sign_in,
    ui_stack,
)


async def _open_for(ui: UiStack, key: str) -> int:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_public_app(ui.rt)), base_url="http://public"
    ) as public:
        answer = await public.get(
            "/engagement/v3/callbacks/open-for/sales", headers={"x-api-key": key}
        )
    return answer.status_code


async def test_a_tenant_and_its_api_key_shown_once_then_revoked(tmp_path: Path) -> None:
    async with ui_stack(tmp_path, simulator="off") as ui, chromium() as browser:
        page = await browser.new_page(viewport=DESKTOP)
        await sign_in(page, ui.url, "ada")
        await page.get_by_role("link", name="Tenants").click()
        await page.get_by_label("Name", exact=True).fill("initech")
        await page.get_by_label("Max callbacks per window").fill("200")
        await page.get_by_role("button", name="Create tenant").click()
        await page.wait_for_url(f"{ui.url}/ui/tenants/initech?done=created")
        assert await page.get_by_role("heading", name="Tenant initech").is_visible()
        async with ui.rt.engine.begin() as conn:
            t = await ui.rt.tenants.named("initech")
            cfg = ServiceConfig.model_validate({"businessHours": {"alwaysOpen": True}})
            await services_repo.create_service(conn, t.id, "sales", cfg)

        await page.get_by_label("Key name").fill("ivr")
        await page.get_by_role("button", name="Create API key").click()
        await page.wait_for_url(f"{ui.url}/ui/tenants/initech/api-keys")
        warning = await page.get_by_role("alert").inner_text()
        assert "Copy it now: it will not be shown again." in warning
        key = await page.get_by_label('API key "ivr"').input_value()
        assert len(key) == 36
        # Our script's Copy button puts it on the clipboard.
        await page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=ui.url)
        await page.get_by_role("button", name="Copy").click()
        await page.get_by_role("button", name="Copied").wait_for()
        assert await page.evaluate("navigator.clipboard.readText()") == key
        await shot(page, "tenant-key-created")
        assert await _open_for(ui, key) == 200
        # A reload resends the form: no second key, and the key is not shown again.
        await page.reload()
        assert key not in await page.content()
        assert "shown once and is not shown again" in await page.locator("main").inner_text()
        assert len(await ui.rt.tenants.list_keys("initech")) == 1

        await page.goto(f"{ui.url}/ui/tenants/initech")
        assert key not in await page.content()
        row = page.locator("tbody tr", has_text="ivr")
        assert "ACTIVE" in await row.inner_text()
        await shot(page, "tenant-keys")
        await row.get_by_role("link", name="Revoke").click()
        assert await page.get_by_role("heading", name="Revoke API key").is_visible()
        await page.get_by_role("button", name="Revoke key").click()
        await page.wait_for_url(f"{ui.url}/ui/tenants/initech?done=revoked")
        assert "REVOKED" in await page.locator("tbody tr", has_text="ivr").inner_text()
        assert await _open_for(ui, key) == 401

        await (
            page.get_by_role("navigation", name="Pages").get_by_role("link", name="Tenants").click()
        )
        await page.get_by_role("button", name="Disable initech").click()
        await page.wait_for_url(f"{ui.url}/ui/tenants?done=disabled")
        assert "DISABLED" in await page.locator("tbody tr", has_text="initech").inner_text()
        await page.get_by_role("button", name="Enable initech").click()
        await page.wait_for_url(f"{ui.url}/ui/tenants?done=enabled")
        await fits(page, "tenants")
        await shot(page, "tenants")

        phone = page
        await phone.set_viewport_size(PHONE)
        for path, control in (
            ("/ui/tenants", "Create tenant"),
            ("/ui/tenants/initech", "Create API key"),
        ):
            await phone.goto(f"{ui.url}{path}")
            await fits(phone, path)
            assert await phone.locator("table.grid").is_visible()
            button = phone.get_by_role("button", name=control)
            await button.scroll_into_view_if_needed()
            assert await button.is_visible()


async def test_a_user_added_with_a_generated_password_signs_in(tmp_path: Path) -> None:
    async with ui_stack(tmp_path, simulator="off") as ui, chromium() as browser:
        page = await browser.new_page(viewport=DESKTOP)
        await sign_in(page, ui.url, "ada")
        await page.get_by_role("link", name="Users").click()
        await page.get_by_label("User name").fill("sue")
        await page.get_by_label("Supervisor").check()
        assert await page.get_by_label("Generate one (shown once)").is_checked()
        await page.get_by_role("button", name="Add user").click()
        assert "it will not be shown again" in await page.get_by_role("alert").inner_text()
        password = await page.get_by_label("Password of sue").input_value()
        assert len(password) >= 12

        other = await browser.new_context(viewport=DESKTOP)
        sue = await other.new_page()
        await sign_in(sue, ui.url, "sue", password)
        assert await sue.get_by_role("heading", name="Signed in as sue").is_visible()
        assert "supervisor" in await sue.locator("header").inner_text()
        await other.close()

        await page.get_by_role("link", name="Done: back to sue").click()
        assert await page.get_by_role("heading", name="User sue").is_visible()
        await page.get_by_role("navigation", name="Pages").get_by_role("link", name="Users").click()
        row = page.locator("tbody tr", has_text="sue")
        text = await row.inner_text()
        assert "supervisor" in text and "every tenant" in text and "ENABLED" in text
        assert await row.locator("time").count() == 1  # the sign-in just made, in the zone
        await fits(page, "users")
        await shot(page, "users")

        phone = page
        await phone.set_viewport_size(PHONE)
        await phone.reload()
        await fits(phone, "users-phone")
        assert await phone.locator("table.grid").is_visible()
        add = phone.get_by_role("button", name="Add user")
        await add.scroll_into_view_if_needed()
        assert await add.is_visible()
        await shot(phone, "users-phone")


async def test_a_tenants_settings_refused_next_to_the_field_then_saved(tmp_path: Path) -> None:
    async with ui_stack(tmp_path, simulator="off") as ui, chromium() as browser:
        await ui.rt.tenants.create("initech", TenantSettings())
        page = await browser.new_page(viewport=DESKTOP)
        await sign_in(page, ui.url, "ada")
        await page.goto(f"{ui.url}/ui/tenants/initech")
        settings = page.locator("form", has=page.get_by_role("heading", name="Settings"))
        window = settings.get_by_label("Throttle window (seconds)")
        await settings.get_by_label("Max callbacks per window").fill("42")
        await window.fill("100000")
        await settings.get_by_role("button", name="Save settings").click()
        await page.wait_for_load_state()
        error = settings.locator("#t-window_seconds-error")
        assert await error.is_visible()
        assert (
            await error.inner_text()
            == "Throttle window (seconds): Input should be less than or equal to 86400"
        )
        assert await window.get_attribute("aria-invalid") == "true"
        assert await window.input_value() == "100000"  # what was typed stays, both fields
        assert await settings.get_by_label("Max callbacks per window").input_value() == "42"
        assert await settings.locator(".field-error").count() == 1
        await fits(page, "tenant-settings-error")
        await shot(page, "tenant-settings-error")
        assert (await ui.rt.tenants.get("initech")).settings["throttle"]["windowSeconds"] == 60

        phone = page
        await phone.set_viewport_size(PHONE)
        await fits(phone, "tenant-settings-error-phone")
        await error.scroll_into_view_if_needed()
        assert await error.is_visible()
        await shot(phone, "tenant-settings-phone")
        await phone.set_viewport_size(DESKTOP)

        await window.fill("30")
        await settings.get_by_role("button", name="Save settings").click()
        await page.wait_for_url(f"{ui.url}/ui/tenants/initech?done=saved")
        assert "Settings saved" in await page.get_by_role("status").inner_text()
        facts = await page.locator("dl.facts").inner_text()
        assert "42 callbacks / 30 s" in facts
        assert await settings.get_by_label("Throttle window (seconds)").input_value() == "30"
        assert await settings.locator(".field-error").count() == 0
        rec = await ui.rt.tenants.get("initech")
        assert rec.settings["throttle"] == {"maxCallbacks": 42, "windowSeconds": 30}
        await fits(page, "tenant-settings-saved")
        await shot(page, "tenant-settings-saved")
