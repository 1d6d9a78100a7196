"""The callbacks list in a real browser (Debian's Chromium through Playwright): filter by state and
service, page 2 of 250-row pages, bulk cancel two rows and see the counts change, the CSV export
downloaded and parsed; a Monitor without checkboxes, button or export, whose forged POST gets
403; the page at 1280x800 and on a 390-px-wide phone."""

from __future__ import annotations

import csv
import re
import time
from pathlib import Path
from typing import Any

from playwright.async_api import expect

from dialback.container import Container
from dialback.services import repository as services_repo
from dialback.services.schemas import ServiceConfig
from tests.support.browser import DESKTOP, PHONE, chromium, fits, shot, sign_in, ui_stack
from tests.support.factories import insert_due_callbacks, tenant_and_service


async def _callbacks(rt: Container) -> None:
    """acme: 260 SCHEDULED (sales), 5 QUEUED (support), 2 PROCESSING (sales); beta: 3 SCHEDULED."""
    now = time.time()
    acme, sales = await tenant_and_service(rt.engine, "acme", "sales")
    beta, beta_sales = await tenant_and_service(rt.engine, "beta", "sales")
    async with rt.engine.begin() as conn:
        cfg = ServiceConfig.model_validate({"businessHours": {"alwaysOpen": True}})
        support = (await services_repo.create_service(conn, acme, "support", cfg)).id
    # Due tomorrow: the monitor leaves them be while the test runs.
    await insert_due_callbacks(rt.engine, acme, sales, 260, due_at=now + 86400)
    await insert_due_callbacks(
        rt.engine,
        acme,
        support,
        5,
        due_at=now - 60,
        service_name="support",
        state="QUEUED",
        queued_at=now - 30,
        created_at=now - 120,
    )
    await insert_due_callbacks(
        rt.engine, acme, sales, 2, due_at=now - 600, state="PROCESSING", created_at=now - 900
    )
    await insert_due_callbacks(
        rt.engine,
        beta,
        beta_sales,
        3,
        due_at=now + 7200,
        created_at=now - 3600,
    )


async def _counts(page: Any) -> dict[str, int]:
    out = {}
    for item in await page.locator(".cb-counts a").all():
        state = await item.get_attribute("data-state")
        out[state] = int(await item.locator(".cb-count").inner_text())
    return out


async def _fits(page: Any, viewport: dict[str, int]) -> None:
    await fits(page, str(viewport))
    for control in (
        page.get_by_label("State", exact=True),
        page.get_by_label("Phone number"),
        page.get_by_role("button", name="Filter"),
        page.locator("table.cb-table"),
    ):
        assert await control.is_visible()


async def test_filter_page_bulk_cancel_and_export_as_a_supervisor(tmp_path: Path) -> None:
    async with ui_stack(tmp_path, simulator="off") as ui, chromium() as browser:
        await _callbacks(ui.rt)
        context = await browser.new_context(viewport=DESKTOP, accept_downloads=True)
        page = await context.new_page()
        await sign_in(page, ui.url, "sam")
        await page.get_by_role("link", name="Callbacks", exact=True).click()
        await page.wait_for_url(f"{ui.url}/ui/callbacks")
        assert await _counts(page) == {
            "SCHEDULED": 263,
            "QUEUED": 5,
            "ROUTING": 0,
            "PROCESSING": 2,
            "COMPLETED": 0,
        }
        assert await page.get_by_label("Tenant", exact=True).is_visible()  # two tenants
        await page.get_by_label("State", exact=True).select_option("SCHEDULED")
        await page.get_by_label("Service", exact=True).select_option("sales")
        await page.get_by_label("Tenant", exact=True).select_option("acme")
        await page.get_by_role("button", name="Filter").click()
        await page.wait_for_url(re.compile(r".*state=SCHEDULED.*"))
        assert "260 callbacks, page 1 of 2" in await page.locator("#cb-total").inner_text()
        assert await page.locator("tbody tr").count() == 250
        await page.get_by_role("link", name="Next →").click()
        await page.wait_for_url(re.compile(r".*page=2.*"))
        assert {"state=SCHEDULED", "service=sales", "tenant=acme"} <= set(
            page.url.split("?")[1].split("&")
        )
        rows = page.locator("tbody tr")
        assert await rows.count() == 10
        await _fits(page, DESKTOP)
        # Bulk cancel two rows: tick them, press the button, confirm, read the banner.
        chosen = [
            await rows.nth(i).locator("input[name=ids]").get_attribute("value") for i in (0, 1)
        ]
        for cid in chosen:
            await page.get_by_label(f"Select callback {cid}").check()
        await page.get_by_role("button", name="Cancel selected").click()
        await page.wait_for_url(re.compile(r".*/ui/callbacks/cancel$"))
        assert await page.get_by_role("heading", name="Cancel 2 callbacks?").is_visible()
        assert await page.locator("tbody tr").count() == 2
        assert all(
            re.fullmatch(r"\+14\*{7}\d\d", t)
            for t in await page.locator("tbody tr td:nth-child(3) code").all_inner_texts()
        )
        await shot(page, "callbacks-bulk-cancel-confirm")
        await page.get_by_role("button", name="Cancel 2 callbacks").click()
        await page.wait_for_url(re.compile(r".*/ui/callbacks\?.*state=SCHEDULED.*cancelled=2.*"))
        status = page.locator("#cb-outcome")
        assert "Cancelled 2 callbacks." in await status.inner_text()
        await shot(page, "callbacks-bulk-cancel-done")
        counts = await _counts(page)
        assert counts["SCHEDULED"] == 258 and counts["COMPLETED"] == 2
        # The export of the filtered set, downloaded as a person would.
        async with page.expect_download() as waiting:
            await page.get_by_role("link", name="Export CSV").click()
        download = await waiting.value
        saved = tmp_path / "export.csv"
        await download.save_as(saved)
        with saved.open(newline="") as f:
            exported = list(csv.DictReader(f))
        assert len(exported) == 258
        assert {r["callbackState"] for r in exported} == {"SCHEDULED"}
        assert {r["tenant"] for r in exported} == {"acme"}
        assert not set(chosen) & {r["id"] for r in exported}
        assert all(re.fullmatch(r"\+14\*{7}\d\d", r["phoneNumberMasked"]) for r in exported)
        # The list unfiltered, page 2: a mix of states, for the screenshot.
        await page.goto(f"{ui.url}/ui/callbacks?page=2")
        await shot(page, "callbacks-list")
        await page.set_viewport_size(PHONE)
        await page.goto(f"{ui.url}/ui/callbacks?service=support")
        await _fits(page, PHONE)
        assert await page.get_by_role("button", name="Cancel selected").is_visible()
        assert await page.get_by_role("link", name="Export CSV").is_visible()
        # ui.js: the header's box ticks every row of the page (and clears them again).
        select_all = page.get_by_label("Select every callback on this page")
        await select_all.check()
        boxes = page.locator("input[name=ids]")
        assert await boxes.count() == 5
        assert all([await boxes.nth(i).is_checked() for i in range(5)])
        await select_all.uncheck()
        assert not any([await boxes.nth(i).is_checked() for i in range(5)])
        await shot(page, "callbacks-list-phone")
        await context.close()


async def test_a_monitor_sees_no_bulk_cancel_and_its_forged_post_gets_403(tmp_path: Path) -> None:
    async with ui_stack(tmp_path, simulator="off") as ui, chromium() as browser:
        acme, sales = await tenant_and_service(ui.rt.engine, "acme", "sales")
        ids = await insert_due_callbacks(ui.rt.engine, acme, sales, 3, due_at=time.time() + 86400)
        page = await browser.new_page(viewport=DESKTOP)
        await page.clock.install()
        await sign_in(page, ui.url, "mona")
        await page.goto(f"{ui.url}/ui/callbacks")
        assert await page.locator("tbody tr").count() == 3
        # callbacks-list.js refreshes the counts in place every 15 s.
        count = page.locator(".cb-counts a[data-state=SCHEDULED] .cb-count")
        assert await count.inner_text() == "3"
        await insert_due_callbacks(ui.rt.engine, acme, sales, 2, due_at=time.time() + 86400)
        await page.clock.run_for(16_000)
        await expect(count).to_have_text("5")
        assert await page.locator("tbody tr").count() == 3  # the table stays as it was
        assert await page.locator("input[type=checkbox]").count() == 0
        assert await page.get_by_role("button", name="Cancel selected").count() == 0
        assert await page.get_by_role("link", name="Export CSV").count() == 0
        token = await page.locator("input[name=csrf_token]").first.get_attribute("value")
        forged = await page.request.post(
            f"{ui.url}/ui/callbacks/cancel", form={"ids": ids[0], "csrf_token": token or ""}
        )
        assert forged.status == 403
        assert "callbacks.write" in await forged.text()
        await page.reload()
        assert await count.inner_text() == "5"  # the forged cancel cancelled nothing
