"""A callback's page and the Create form in a real browser (Debian's Chromium through
Playwright): a supervisor creates ASAP and in a slot (the number checked as typed), reads the
timeline, reschedules through the picker (a full slot shown disabled), cancels and recreates;
a monitor's page has no actions; a cancel posted without its CSRF token is refused; both pages
at 1280x800 and 390x844."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from tests.support.browser import DESKTOP, PHONE, chromium, fits, shot, sign_in, ui_stack
from tests.support.factories import add_tenant, book, next_slot

ID_RE = re.compile(r"/ui/callbacks/([0-9a-f-]{36})")


async def test_supervisor_creates_reschedules_cancels_and_recreates(tmp_path: Path) -> None:
    async with ui_stack(tmp_path, simulator="off") as ui, chromium() as browser:
        await add_tenant(ui.rt, "acme")
        full_at = next_slot(3)
        await book(ui.rt, "acme", "+14155550150", full_at)  # that slot's one place, taken
        page = await browser.new_page(viewport=DESKTOP)
        await sign_in(page, ui.url, "sam")
        await page.get_by_role("link", name="Create", exact=True).click()
        await page.wait_for_url(f"{ui.url}/ui/callbacks/new")

        # Typing an invalid number shows the error next to the field, before any submit.
        phone = page.get_by_label("Phone number")
        await phone.fill("12")
        error = page.locator("#phone-error")
        await error.filter(has_text="phone number").wait_for()
        assert await phone.get_attribute("aria-invalid") == "true"
        await shot(page, "callback-new")
        await phone.fill("415 555 0151")
        await error.filter(has_text="valid: +14155550151").wait_for()
        assert await page.get_by_label("As soon as possible").is_checked()
        await page.get_by_label("Key 1").fill("order")
        await page.get_by_label("Value 1").fill("A-1001")
        await page.get_by_role("button", name="Create callback").click()
        await page.wait_for_url(re.compile(r".*/ui/callbacks/[0-9a-f-]{36}\?done=created"))
        asap = ID_RE.search(page.url)
        assert asap
        assert await page.get_by_role("status").inner_text() == "Booked."
        assert await page.get_by_role("cell", name="A-1001").is_visible()
        timeline = page.locator("table.timeline")
        assert await timeline.is_visible()
        assert "created" in await timeline.inner_text()

        # In a slot: the full one is disabled and says so in text.
        await page.goto(f"{ui.url}/ui/callbacks/new")
        full_radio = page.locator(f'input[name=when][value="{_iso(full_at)}"]')
        assert await full_radio.is_disabled()
        full_label = page.locator("label.slot", has=full_radio)
        assert "full" in await full_label.inner_text()
        await page.get_by_label("Phone number").fill("+1 415 555 0152")
        free_slot = page.locator("input[name=when]:not([disabled])").nth(1)  # 0 is ASAP
        await free_slot.check()
        await page.get_by_role("button", name="Create callback").click()
        await page.wait_for_url(re.compile(r".*\?done=created"))
        slot_cb = ID_RE.search(page.url)
        assert slot_cb
        await fits(page, "callback detail (desktop)")
        await shot(page, "callback-detail")

        # Reschedule through the picker.
        await page.get_by_role("link", name="Reschedule").click()
        await page.wait_for_url(f"{ui.url}/ui/callbacks/{slot_cb.group(1)}/reschedule")
        picker_full = page.locator(f'input[name=slot][value="{_iso(full_at)}"]')
        assert await picker_full.is_disabled()
        assert "full" in await page.locator("label.slot", has=picker_full).inner_text()
        await shot(page, "callback-reschedule")
        target = next_slot(5)
        await page.locator(f'input[name=slot][value="{_iso(target)}"]').check()
        await page.get_by_role("button", name="Reschedule").click()
        await page.wait_for_url(re.compile(r".*\?done=rescheduled"))
        assert await page.get_by_role("status").inner_text() == "Rescheduled."
        assert "rescheduled" in await page.locator("table.timeline").inner_text()
        assert (await ui.rt.callbacks.detail(slot_cb.group(1))).row.due_at == target

        # Cancel, then recreate a new one from it.
        await page.get_by_role("button", name="Cancel callback").click()
        await page.wait_for_url(re.compile(r".*\?done=cancelled"))
        assert "cancelled" in await page.locator("table.timeline").inner_text()
        assert "local:sam" in await page.locator("table.timeline").inner_text()
        assert await page.get_by_role("button", name="Cancel callback").count() == 0
        await page.get_by_role("button", name="Recreate").click()
        await page.wait_for_url(re.compile(r".*\?done=recreated"))
        recreated = ID_RE.search(page.url)
        assert recreated and recreated.group(1) not in (slot_cb.group(1), asap.group(1))
        d = await ui.rt.callbacks.detail(recreated.group(1))
        assert d.row.phone_number == "+14155550152"


async def _signed_in_at_a_callback(ui: Any, browser: Any, user: str, phone: str) -> tuple[Any, str]:
    """A desktop page signed in as ``user`` on a callback booked two slots ahead for ``phone``
    (tenant acme); the page and the callback's id."""
    await add_tenant(ui.rt, "acme")
    cid = await book(ui.rt, "acme", phone, next_slot(2))
    page = await browser.new_page(viewport=DESKTOP)
    await sign_in(page, ui.url, user)
    await page.goto(f"{ui.url}/ui/callbacks/{cid}")
    return page, cid


async def test_monitor_has_no_actions_and_the_pages_fit_a_phone(tmp_path: Path) -> None:
    async with ui_stack(tmp_path, simulator="off") as ui, chromium() as browser:
        page, cid = await _signed_in_at_a_callback(ui, browser, "mona", "+14155550160")
        assert await page.get_by_role("heading", name="Timeline").is_visible()
        assert await page.get_by_text("hidden for your role").is_visible()
        for name in ("Cancel callback", "Recreate", "Reschedule"):
            assert await page.get_by_role("button", name=name).count() == 0
            assert await page.get_by_role("link", name=name).count() == 0
        assert await page.get_by_role("link", name="Create", exact=True).count() == 0

        phone = await browser.new_page(viewport=PHONE)
        await sign_in(phone, ui.url, "sam")
        await phone.goto(f"{ui.url}/ui/callbacks/{cid}")
        await fits(phone, "callback detail (phone)")
        for name in ("Cancel callback", "Recreate"):
            assert await phone.get_by_role("button", name=name).is_visible()
        assert await phone.get_by_role("link", name="Reschedule").is_visible()
        assert await phone.locator("table.timeline").is_visible()
        await shot(phone, "callback-detail-phone")
        await phone.goto(f"{ui.url}/ui/callbacks/new")
        await fits(phone, "create form (phone)")
        for label in ("Phone number", "As soon as possible", "Key 1", "Value 1"):
            assert await phone.get_by_label(label).is_visible()
        assert await phone.get_by_role("button", name="Create callback").is_visible()
        await shot(phone, "callback-new-phone")


def _iso(ts: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def test_a_cancel_posted_without_its_csrf_token_is_refused_and_changes_nothing(
    tmp_path: Path,
) -> None:
    async with ui_stack(tmp_path, simulator="off") as ui, chromium() as browser:
        page, cid = await _signed_in_at_a_callback(ui, browser, "sam", "+14155550170")
        # The page's own form, its token taken out (as a cross-site form would post it).
        removed = await page.evaluate(
            "() => { const t = document.querySelectorAll('input[name=csrf_token]');"
            " t.forEach((e) => e.remove()); return t.length; }"
        )
        assert removed >= 1
        async with page.expect_response(f"{ui.url}/ui/callbacks/{cid}/cancel") as answer:
            await page.get_by_role("button", name="Cancel callback").click()
        assert (await answer.value).status == 403
        await page.get_by_text("CSRF", exact=False).first.wait_for()
        await shot(page, "callback-cancel-without-csrf")
        assert (await ui.rt.callbacks.detail(cid)).row.state == "SCHEDULED"
