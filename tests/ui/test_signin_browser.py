"""Signing in to the Callback UI in a real browser (Debian's Chromium through Playwright): the
local form, single sign-on through a real OIDC provider's page, the session expiring, signing
out; the layout at 1280x800 and on a 390-px-wide phone."""

from __future__ import annotations

from pathlib import Path

from tests.support.browser import DESKTOP, PHONE, chromium, fits, shot, sign_in, ui_stack
from tests.support.oidc_provider import OidcProvider, oidc_settings


async def test_local_sign_in_home_and_sign_out(tmp_path: Path) -> None:
    async with ui_stack(tmp_path, simulator="off") as ui, chromium() as browser:
        page = await browser.new_page(viewport=DESKTOP)
        await page.goto(f"{ui.url}/ui/")
        assert page.url.startswith(f"{ui.url}/ui/login")
        await shot(page, "sign-in")
        await page.get_by_label("User name").fill("sam")
        await page.get_by_label("Password").fill("not the password")
        await page.get_by_role("button", name="Sign in", exact=True).click()
        assert "Wrong user name or password." in await page.locator("[role=alert]").inner_text()
        await sign_in(page, ui.url, "sam")
        heading = page.get_by_role("heading", name="Signed in as sam")
        assert await heading.is_visible()
        assert "supervisor" in await page.locator("header").inner_text()
        await shot(page, "home")
        # Keyboard use: the skip link is the first stop and is visible when focused.
        await page.keyboard.press("Tab")
        skip = page.get_by_role("link", name="Skip to content")
        assert await skip.evaluate("el => el === document.activeElement")
        assert await skip.is_visible()
        await page.get_by_role("button", name="Sign out").click()
        await page.wait_for_url(f"{ui.url}/ui/login**")
        await page.goto(f"{ui.url}/ui/")
        assert page.url.startswith(f"{ui.url}/ui/login")


async def test_the_session_expires_when_idle(tmp_path: Path) -> None:
    async with ui_stack(tmp_path, simulator="off") as ui, chromium() as browser:
        page = await browser.new_page(viewport=DESKTOP)
        await sign_in(page, ui.url, "mona")
        async with ui.rt.engine.begin() as conn:  # 21 minutes without a request
            from dialback.db.schema import ui_sessions

            await conn.execute(
                ui_sessions.update().values(last_seen_at=ui_sessions.c.last_seen_at - 21 * 60)
            )
        await page.goto(f"{ui.url}/ui/")
        assert page.url.startswith(f"{ui.url}/ui/login")


async def test_single_sign_on_through_the_providers_page(
    tmp_path: Path, oidc_provider: OidcProvider
) -> None:
    oidc_provider.set_user("olga-browser", {"preferred_username": "olga", "groups": ["cc-admins"]})
    settings = oidc_settings(oidc_provider, oidc_role_map="cc-admins=administrator")
    async with ui_stack(tmp_path, simulator="off", **settings) as ui, chromium() as browser:
        page = await browser.new_page(viewport=DESKTOP)
        await page.goto(f"{ui.url}/ui/login")
        await page.get_by_role("link", name="Sign in with Single sign-on").click()
        # The provider's own authorization page (oidc-provider-mock), in the real browser.
        await page.wait_for_url(f"{oidc_provider.issuer}/**")
        await page.get_by_placeholder("sub").fill("olga-browser")
        await page.get_by_role("button", name="Authorize").click()
        await page.wait_for_url(f"{ui.url}/ui/**")
        assert await page.get_by_role("heading", name="Signed in as olga").is_visible()
        assert "oidc:olga" in await page.locator("main").inner_text()


async def test_the_layout_at_desktop_and_phone_widths(tmp_path: Path) -> None:
    async with ui_stack(tmp_path, simulator="off") as ui, chromium() as browser:
        for name, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
            page = await browser.new_page(viewport=viewport)
            await sign_in(page, ui.url, "ada")
            main = page.locator("main")
            box = await main.bounding_box()
            assert box is not None and box["width"] <= viewport["width"]
            # Nothing wider than the screen: no horizontal scrolling of the page itself.
            await fits(page, name)
            assert await page.get_by_role("button", name="Sign out").is_visible()
            await shot(page, f"home-{name}")
            await page.close()


async def test_times_in_the_operators_zone_with_utc_on_hover(tmp_path: Path) -> None:
    async with ui_stack(tmp_path, simulator="off") as ui, chromium() as browser:
        page = await browser.new_page(viewport=DESKTOP)
        await sign_in(page, ui.url, "mona")
        await page.get_by_role("link", name="UTC").click()
        await page.get_by_role("combobox", name="Time zone").select_option("America/New_York")
        await page.get_by_role("button", name="Save").click()
        await page.wait_for_url(f"{ui.url}/ui/")
        assert "America/New_York" in await page.locator("header").inner_text()
        first = page.locator("main time").first
        utc = await first.get_attribute("datetime")
        assert utc is not None and (await first.get_attribute("title")) == f"{utc} UTC"
        from datetime import datetime
        from zoneinfo import ZoneInfo

        local = datetime.fromisoformat(utc.replace("Z", "+00:00")).astimezone(
            ZoneInfo("America/New_York")
        )
        assert (await first.inner_text()) == local.strftime("%Y-%m-%d %H:%M:%S")
