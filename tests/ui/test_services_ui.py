"""The Services pages in a real browser (Debian's Chromium through Playwright): an
Administrator edits a service's business hours and a capacity cell of the week grid and sees it
applied (a bad value shown next to its field); a Monitor and a Supervisor see read-only pages;
the layout at 1280x800 and 390x844."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dialback.services import repository as services_repo
from dialback.services.schemas import ServiceConfig
from dialback.tenants import repository as tenants_repo
from tests.support.browser import DESKTOP, PHONE, chromium, fits, shot, sign_in, ui_stack

CONFIG = {
    "businessHours": {
        "timezone": "Europe/Berlin",
        "weekly": {
            d: [{"start": "08:00", "end": "18:00"}] for d in ("mon", "tue", "wed", "thu", "fri")
        },
        "closedDates": ["2026-12-25"],
    },
    "capacity": {
        "slotMinutes": 30,
        "defaultCapacity": 10,
        "weekly": {"mon": [{"start": "09:00", "end": "12:00", "capacity": 4}]},
    },
    "validation": {"defaultCountry": "DE", "allowedCountries": ["DE", "AT"]},
}


async def _service(rt: Any) -> None:
    async with rt.engine.begin() as conn:
        t = await tenants_repo.create_tenant(conn, "acme", {})
        cfg = ServiceConfig.model_validate(CONFIG)
        await services_repo.create_service(conn, t.id, "sales", cfg)
        await services_repo.create_service(conn, t.id, "care", cfg)


async def test_an_administrator_edits_hours_and_a_capacity_cell(tmp_path: Path) -> None:
    async with ui_stack(tmp_path, simulator="off") as ui, chromium() as browser:
        await _service(ui.rt)
        page = await browser.new_page(viewport=DESKTOP)
        await sign_in(page, ui.url, "ada")
        await page.get_by_role("link", name="Services", exact=True).click()
        await page.wait_for_url(f"{ui.url}/ui/services")
        assert await page.get_by_role("heading", name="Tenant acme").is_visible()
        await shot(page, "services-list")
        await page.get_by_role("link", name="sales", exact=True).click()
        await page.wait_for_url(f"{ui.url}/ui/services/acme/sales")
        grid = page.locator("table.capgrid")
        assert await grid.is_visible()
        # The delete card is a card (the red is its summary's), its summary readable on it.
        delete = page.locator("section.danger")
        colours = await delete.evaluate(
            "s => [getComputedStyle(s).backgroundColor,"
            " getComputedStyle(s.querySelector('summary')).color]"
        )
        assert colours == ["rgb(255, 255, 255)", "rgb(164, 14, 38)"], colours
        await shot(page, "service-detail")
        await page.get_by_role("link", name="Edit service").click()
        await page.wait_for_url(f"{ui.url}/ui/services/acme/sales/edit")
        # A bad value first: shown next to its field, nothing saved.
        await page.get_by_label("Tue", exact=True).fill("18:00-08:00")
        await page.get_by_label("Mon 10:30-11:00", exact=True).fill("-3")
        await page.get_by_role("button", name="Save service").click()
        assert "Not saved" in await page.locator("[role=alert]").inner_text()
        tue_error = page.locator("#hours-tue-err")
        assert "range 1: end must be after start" in await tue_error.inner_text()
        assert await tue_error.is_visible()
        assert "greater than or equal to 0" in await page.locator("#cap-mon-630-err").inner_text()
        assert await page.get_by_label("Tue", exact=True).get_attribute("aria-invalid") == "true"
        await shot(page, "service-edit")
        # Corrected: saved and shown.
        await page.get_by_label("Tue", exact=True).fill("07:30-12:00, 13:00-19:00")
        await page.get_by_label("Mon 10:30-11:00", exact=True).fill("2")
        await page.get_by_label("Sat 10:00-10:30 (closed)", exact=True).fill("1")
        await page.get_by_role("button", name="Save service").click()
        await page.wait_for_url(f"{ui.url}/ui/services/acme/sales")
        assert "Service saved." in await page.locator("[role=status]").first.inner_text()
        facts = await page.locator("main").inner_text()
        assert "07:30-12:00, 13:00-19:00" in facts

        def row(slot: str) -> Any:
            return page.locator("table.capgrid tr", has=page.locator("th", has_text=slot))

        cells = await row("10:30-11:00").locator("td").all_inner_texts()
        assert cells[0] == "2" and cells[1] == "" and cells[5].split() == ["(closed)"]
        cells = await row("10:00-10:30").locator("td").all_inner_texts()
        assert cells[0] == "4" and cells[5].split() == ["1", "(closed)"]
        cfg = (await ui.rt.services.get("acme", "sales")).config
        assert [(w.start, w.end, w.capacity) for w in cfg.capacity.weekly["mon"]] == [
            ("09:00", "10:30", 4),
            ("10:30", "11:00", 2),
            ("11:00", "12:00", 4),
        ]
        assert [(w.start, w.end, w.capacity) for w in cfg.capacity.weekly["sat"]] == [
            ("10:00", "10:30", 1)
        ]
        assert cfg.business_hours.closed_dates[0].isoformat() == "2026-12-25"
        await fits(page, "service detail")
        # The grid's script: the focused cell's value copied along its row (not saved).
        await page.get_by_role("link", name="Edit service").click()
        await page.get_by_label("Wed 12:00-12:30", exact=True).fill("5")
        await page.get_by_role("button", name="Copy to its row").click()
        assert "to 7 cells" in await page.locator(".capfill [role=status]").inner_text()
        for cell in ("Mon 12:00-12:30", "Sun 12:00-12:30 (closed)"):
            assert await page.get_by_label(cell, exact=True).input_value() == "5"
        assert await page.get_by_label("Wed 12:30-13:00", exact=True).input_value() == ""
        await page.set_viewport_size(PHONE)
        await fits(page, "service editor (phone)")
        assert await page.get_by_role("button", name="Save service").is_visible()


async def test_monitor_and_supervisor_see_read_only_pages_at_both_sizes(tmp_path: Path) -> None:
    async with ui_stack(tmp_path, simulator="off") as ui, chromium() as browser:
        await _service(ui.rt)
        for user, viewport, name in (("mona", PHONE, "phone"), ("sam", DESKTOP, "desktop")):
            context = await browser.new_context(viewport=viewport)
            page = await context.new_page()
            await sign_in(page, ui.url, user)
            await page.goto(f"{ui.url}/ui/services")
            assert await page.get_by_role("link", name="sales", exact=True).is_visible()
            assert await page.get_by_role("link", name="New service").count() == 0
            await fits(page, f"services list ({name})")
            await page.goto(f"{ui.url}/ui/services/acme/sales")
            assert await page.locator("table.capgrid").is_visible()
            assert await page.get_by_role("link", name="Edit service").count() == 0
            assert await page.get_by_role("button", name="Delete service").count() == 0
            await fits(page, f"service detail ({name})")
            if name == "phone":
                await shot(page, "service-detail-phone")
            await context.close()
