"""The Health page in a real browser: the database up, then a Redis the test owns stopped and
the very same cell turning to "down" without a reload (health.js polling /ui/health.json); the
layout at 1280x800 and on a 390-px-wide phone."""

from __future__ import annotations

from pathlib import Path

from testbed.servers import RedisServer

from tests.support.browser import DESKTOP, PHONE, chromium, fits, shot, sign_in, ui_stack


async def test_the_health_page_follows_a_dependency_down_without_reload(tmp_path: Path) -> None:
    redis = RedisServer().start()
    try:
        async with (
            ui_stack(tmp_path, simulator="off", redis_url=redis.url) as ui,
            chromium() as browser,
        ):
            page = await browser.new_page(viewport=DESKTOP)
            await sign_in(page, ui.url, "mona")
            await page.get_by_role("link", name="Health").click()
            await page.wait_for_url(f"{ui.url}/ui/health")
            database = page.locator('[data-cell="dep-database-status"]')
            assert await database.inner_text() == "up"
            assert "h-up" in (await database.get_attribute("class") or "")
            cell = await page.locator('[data-cell="dep-redis-status"]').element_handle()
            assert cell is not None and await cell.inner_text() == "up"
            assert await page.locator('[data-cell="ges-health"]').inner_text() == "0: healthy"
            checked = page.locator('[data-cell="dep-redis-checked"] time')
            utc = await checked.get_attribute("datetime")
            assert utc and await checked.get_attribute("title") == f"{utc} UTC"
            assert await page.get_by_role("table").is_visible()
            await fits(page, "health (desktop)")
            await page.evaluate("window.notReloaded = true")
            await shot(page, "health")

            redis.stop()
            await ui.rt.health.check_all()
            # The same node, updated in place by the poll (every 5 s): no reload.
            await page.wait_for_function(
                "el => el.textContent === 'down'", arg=cell, timeout=12_000
            )
            assert await page.evaluate("window.notReloaded === true")
            assert "h-down" in (await cell.get_attribute("class") or "")
            error = await page.locator('[data-cell="dep-redis-error"]').inner_text()
            assert error not in ("", "—")
            assert await page.locator('[data-cell="dep-redis-gauge"]').inner_text() == "1"
            assert await database.inner_text() == "up"
            live = await page.locator("[data-live]").inner_text()
            assert live == "(live, every 5 s)"

            phone = page  # the same session, on a phone's width
            await phone.set_viewport_size(PHONE)
            await phone.reload()
            assert await phone.locator('[data-cell="dep-redis-status"]').inner_text() == "down"
            assert await phone.get_by_role("heading", name="Backlog").is_visible()
            await shot(phone, "health-phone")
            await fits(phone, "health (phone)")
    finally:
        redis.discard()
