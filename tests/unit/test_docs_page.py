"""/docs serves Swagger UI from this process: the page and its assets reference no other host."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from dialback.app import create_internal_app, create_public_app
from dialback.container import Container
from dialback.settings import Settings


@pytest.mark.parametrize("factory", [create_public_app, create_internal_app])
async def test_docs_page_fetches_nothing_from_the_internet(tmp_path: Path, factory) -> None:  # type: ignore[no-untyped-def]
    app = factory(Container(Settings(database_url=f"sqlite+aiosqlite:///{tmp_path}/x.db")))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://dialback.test"
    ) as client:
        page = await client.get("/docs")
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        assert re.findall(r"https?://|//[a-z0-9.-]+\.[a-z]{2,}/", page.text) == []
        # Swagger UI's validator badge calls an external service unless it is switched off.
        assert '"validatorUrl": null' in page.text
        assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
        assert len(assets) == 3 and all(a.startswith("/docs/assets/") for a in assets)
        for url in assets:
            r = await client.get(url)
            assert r.status_code == 200 and len(r.content) > 1000, url
        assert (await client.get(app.openapi_url)).status_code == 200
        missing = await client.get("/docs/assets/../../settings.py")
        assert missing.status_code == 404
