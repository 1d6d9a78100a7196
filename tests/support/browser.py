"""A real browser for the Callback UI's tests: Playwright for Python driving Debian's Chromium
(``/usr/bin/chromium``; never a downloaded browser) against dialback's internal app served by
uvicorn on a free loopback port, in the test's own event loop.

``ui_stack`` gives a started runtime on SQLite with one local user per role and the base URL;
``browser_page`` a fresh browser context and page (1280x800) for it; ``sign_in`` fills the
sign-in form; ``shot`` writes a screenshot under test-artifacts/screenshots/; ``fits`` checks
that a page does not scroll sideways.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn
from testbed.servers import free_port

from dialback.app import create_internal_app
from dialback.container import Container
from dialback.identity.roles import Role
from dialback.server import listener_config
from tests.support.stack import make_settings

CHROMIUM = Path("/usr/bin/chromium")
INSTALL_HINT = "apt-get install -y chromium (or run scripts/ensure-system-deps.sh as root)"
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
PASSWORD = "a-long-test-password-1"
USERS = {
    "mona": Role.MONITOR,
    "sam": Role.SUPERVISOR,
    "ada": Role.ADMINISTRATOR,
    "dev": Role.DEVELOPER,
}
"""One local user per role, each with PASSWORD."""
# The flags the machine's probe starts Chromium with: headless, no sandbox (root), and none
# of the background connections this closed network would refuse.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


class _Server(uvicorn.Server):
    """uvicorn without its signal handlers (pytest owns the process)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@contextlib.asynccontextmanager
async def serving_internal(rt: Container) -> AsyncIterator[str]:
    """The runtime's internal app (probes, admin API, /ui) over real HTTP; its base URL."""
    port = free_port()
    server = _Server(listener_config(create_internal_app(rt), port, rt.settings))
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("uvicorn stopped before it started")
            await asyncio.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, timeout=15)


@dataclass
class UiStack:
    """A started runtime with one local user per role, served over HTTP at ``url``."""

    rt: Container
    url: str


@contextlib.asynccontextmanager
async def ui_stack(tmp_path: Path, **overrides: Any) -> AsyncIterator[UiStack]:
    """A runtime on SQLite (``overrides``: more settings) with USERS, served at a URL."""
    settings = make_settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path}/ui.db",
        data_dir=str(tmp_path),
        health_check_min_seconds=3600,
        health_check_max_seconds=3600,
        **overrides,
    )
    rt = Container(settings)
    await rt.start()
    try:
        for name, role in USERS.items():
            await rt.users.add(name, frozenset({role}), password=PASSWORD)
        async with serving_internal(rt) as url:
            yield UiStack(rt, url)
    finally:
        await rt.stop()


@contextlib.asynccontextmanager
async def chromium() -> AsyncIterator[Any]:
    """Debian's Chromium, headless, driven by Playwright; fails (never skips) when missing."""
    if not await asyncio.to_thread(CHROMIUM.exists):
        raise AssertionError(f"{CHROMIUM} is missing: {INSTALL_HINT}")
    try:
        from playwright.async_api import async_playwright
    except ImportError as exc:  # pragma: no cover - the dev extras install it
        raise AssertionError("playwright is missing: make venv (pip install playwright)") from exc
    async with async_playwright() as p:
        browser = await p.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            await browser.close()


async def sign_in(page: Any, url: str, user: str, password: str = PASSWORD) -> None:
    """Sign in through the local form as a person would: type, press the button."""
    await page.goto(f"{url}/ui/login")
    await page.get_by_label("User name").fill(user)
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Sign in", exact=True).click()
    await page.wait_for_url(f"{url}/ui/**")


async def shot(page: Any, name: str) -> Path:
    """A full-page screenshot under test-artifacts/screenshots/ (looked at by people, used by
    docs/ui.md through ``make ui-screenshots``)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    return path


async def fits(page: Any, name: str) -> None:
    """Fail when the page scrolls sideways (wider than its viewport)."""
    overflow = await page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0, f"{name}: the page scrolls sideways by {overflow}px"
