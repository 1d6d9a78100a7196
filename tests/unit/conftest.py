"""Fixtures of the unit tier: nothing here starts a server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from dialback.container import Container
from tests.support.stack import make_settings


@pytest.fixture
async def embedded(tmp_path: Path) -> AsyncIterator[Container]:
    """A container on SQLite with the in-memory transport, not started yet."""
    settings = make_settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path}/dialback.db",
        data_dir=str(tmp_path),
        simulator="off",
    )
    c = Container(settings)
    try:
        yield c
    finally:
        await c.stop()
