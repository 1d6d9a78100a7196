"""The Developer page in a real browser: a developer changes the log level (the admin API reads
it back) and finds a failed request's error by its corrId, masked as the log line is; follows a
callback timeline's corrId to the state changes that request made, and back."""

from __future__ import annotations

import logging
from pathlib import Path

import httpx

from dialback.kit.context import bound, corr_id_var, corr_scope
from dialback.observability.logging import current_level, set_level
from tests.support.browser import DESKTOP, PHONE, chromium, fits, shot, sign_in, ui_stack
from tests.support.factories import add_tenant, book
from tests.support.stack import ADMIN_TOKEN


async def test_a_developer_sets_the_level_and_finds_an_error_by_corr_id(tmp_path: Path) -> None:
    level = current_level()
    set_level("info")
    try:
        async with ui_stack(tmp_path, simulator="off") as ui, chromium() as browser:
            page = await browser.new_page(viewport=DESKTOP)
            await sign_in(page, ui.url, "dev")
            await page.get_by_role("link", name="Developer").click()
            await page.wait_for_url(f"{ui.url}/ui/developer")
            await page.get_by_role("combobox", name="Log level").select_option("debug")
            await page.get_by_role("button", name="Set level").click()
            await page.wait_for_url(f"{ui.url}/ui/developer?previous=info")
            notice = page.get_by_role("status")
            assert (
                await notice.inner_text() == "Log level changed from info to debug on this replica."
            )
            async with httpx.AsyncClient(base_url=ui.url) as api:
                r = await api.get(
                    "/admin/v1/logging", headers={"authorization": f"Bearer {ADMIN_TOKEN}"}
                )
            assert r.json()["data"] == {"level": "debug"}

            # A request that failed, as its handler would log it: its corrId and tenant bound.
            corr = "3c2f9a1e-5b7d-4e21-9c0a-1f2e3d4c5b6a"
            token = corr_id_var.set(corr)
            try:
                with bound(tenant="acme"):
                    logging.getLogger("dialback.callbacks").error(
                        "booking failed for +1 415 555 0199: store timed out"
                    )
            finally:
                corr_id_var.reset(token)
            await page.get_by_role("textbox", name="corrId").fill(corr)
            await page.get_by_role("button", name="Look up").click()
            await page.wait_for_url(f"{ui.url}/ui/developer?corrId={corr}")
            row = page.locator("table.dev-log tbody tr")
            assert await row.count() == 1
            text = await row.inner_text()
            assert "booking failed for +1 " in text and "store timed out" in text
            assert "555 0199" not in text and "acme" in text and "error" in text
            assert await page.get_by_role("heading", name=f"corrId {corr}").is_visible()
            await shot(page, "developer")

            phone = page  # the same session, on a phone's width
            await phone.set_viewport_size(PHONE)
            await phone.reload()
            assert await phone.get_by_role("button", name="Set level").is_visible()
            assert await phone.get_by_role("button", name="Look up").is_visible()
            await shot(phone, "developer-phone")
            await fits(phone, "developer page (phone)")
    finally:
        set_level(level)


async def test_a_developer_follows_a_timeline_corr_id_to_what_the_request_made(
    tmp_path: Path,
) -> None:
    async with ui_stack(tmp_path, simulator="off") as ui, chromium() as browser:
        await add_tenant(ui.rt, "acme")
        with corr_scope("req-book-0042"):  # as the API's request would have it
            cid = await book(ui.rt, "acme", "+14155550160")
        page = await browser.new_page(viewport=DESKTOP)
        await sign_in(page, ui.url, "dev")
        await page.goto(f"{ui.url}/ui/callbacks/{cid}")
        timeline = page.locator("table.timeline")
        await timeline.get_by_role("link", name="req-book-0042").click()
        await page.wait_for_url(f"{ui.url}/ui/developer?corrId=req-book-0042")
        rows = page.locator("table.dev-events tbody tr")
        assert await rows.count() == 1
        text = await rows.inner_text()
        assert cid in text and "acme" in text and "created → SCHEDULED" in text
        await shot(page, "developer-corr-events")
        await rows.get_by_role("link", name=cid).click()
        await page.wait_for_url(f"{ui.url}/ui/callbacks/{cid}")
