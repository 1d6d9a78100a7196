"""The Click-To-Call-In page in a real browser: an Administrator creates a call-in group and
sees the records of requests made through the public API (the caller's number masked); the
layout at 1280x800 and 390x844."""

from __future__ import annotations

from pathlib import Path

import httpx

from dialback.app import create_public_app
from dialback.tenants import repository as tenants_repo
from tests.support.browser import DESKTOP, PHONE, chromium, fits, shot, sign_in, ui_stack

CALLER = "+12025550123"


async def test_an_administrator_creates_a_group_and_sees_its_records(tmp_path: Path) -> None:
    async with ui_stack(tmp_path, simulator="off") as ui, chromium() as browser:
        key = tenants_repo.generate_key()
        async with ui.rt.engine.begin() as conn:
            t = await tenants_repo.create_tenant(conn, "acme", {})
            await tenants_repo.create_api_key(conn, t.id, "web", key)
        ui.rt.keys.clear()
        page = await browser.new_page(viewport=DESKTOP)
        await sign_in(page, ui.url, "ada")
        await page.get_by_role("link", name="Call-in", exact=True).click()
        await page.wait_for_url(f"{ui.url}/ui/callins")
        await page.get_by_role("link", name="New group").click()
        await page.get_by_label("Tenant").select_option("acme")
        await page.get_by_label("Name").fill("web")
        await page.get_by_role("button", name="Continue").click()
        await page.get_by_label("Numbers to dial").fill("+1 202 555 0100\n+1 202 555 0101")
        await page.get_by_label("Expiry (seconds)").fill("30")
        await page.get_by_role("button", name="Create group").click()
        error = page.locator("#expiry_seconds-err")
        assert "greater than or equal to 60" in await error.inner_text()
        await page.get_by_label("Expiry (seconds)").fill("600")
        await page.get_by_role("button", name="Create group").click()
        await page.wait_for_url(f"{ui.url}/ui/callins?tenant=acme#groups")
        groups = page.locator("#groups table")
        assert "+12025550100, +12025550101" in await groups.inner_text()
        assert "No call-in requests." in await page.locator("main").inner_text()

        public = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=create_public_app(ui.rt)), base_url="http://public"
        )
        async with public:
            made = await public.post(
                "/engagement/v3/call-in/requests/create",
                headers={"x-api-key": key},
                json={"groupName": "web", "fromPhoneNumber": CALLER},
            )
        assert made.status_code == 200, made.text
        code = str(made.json()["data"]["accessCode"])
        await page.reload()
        records = page.locator("table").nth(1)
        text = await records.inner_text()
        assert "PENDING" in text and "+12025550100" in text
        assert CALLER not in text and "+12*******23" in text
        assert code not in text and f"****{code[-2:]}" in text
        created = records.locator("tbody time").first
        assert (await created.get_attribute("title") or "").endswith(" UTC")
        await shot(page, "callins")
        page = await browser.new_page(viewport=PHONE)
        await sign_in(page, ui.url, "mona")
        await page.goto(f"{ui.url}/ui/callins")
        assert await page.get_by_role("button", name="Filter").is_visible()
        assert await page.get_by_role("link", name="New group").count() == 0
        assert await page.get_by_role("cell", name="PENDING").is_visible()
        await fits(page, "call-ins (phone)")
        await shot(page, "callins-phone")
