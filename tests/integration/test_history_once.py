"""Every state change of a callback appears exactly once in its history."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from dialback.db.schema import callback_events, callbacks
from tests.support.stack import SettingsFactory, Stack, make_settings, started_stack, wait_for

CREATE = "/engagement/v3/callbacks/create"


@pytest.fixture(params=["postgres-redis", "embedded-sqlite"])
async def any_stack(
    request: pytest.FixtureRequest, settings_with: SettingsFactory, tmp_path: Path
) -> AsyncIterator[Stack]:
    """The simulator behind real PostgreSQL + Redis, and behind the embedded SQLite store."""
    if request.param == "postgres-redis":
        settings = settings_with(simulator="on")
    else:
        settings = make_settings(database_url=f"sqlite+aiosqlite:///{tmp_path}/dialback.db")
    async with started_stack(settings) as s:
        yield s


async def test_every_transition_of_200_immediate_callbacks_is_recorded_once(
    any_stack: Stack,
) -> None:
    stack = any_stack
    key = await stack.tenant(settings={"throttle": {"maxCallbacks": 10_000}})

    async def book(i: int) -> str:
        body = {"serviceName": "sales", "phoneNumber": f"+1415555{i:04d}"}
        r = await stack.public.post(CREATE, json=body, headers={"x-api-key": key})
        assert r.status_code == 200, r.text
        return str(r.json()["data"]["id"])

    ids = set()
    for wave in range(10):  # waves of 20: each meets the monitor at a different moment
        ids |= set(await asyncio.gather(*(book(wave * 20 + i) for i in range(20))))
        await asyncio.sleep(0.01 * wave)
    assert len(ids) == 200

    async def all_completed() -> bool:
        async with stack.rt.engine.connect() as conn:
            q = sa.select(sa.func.count()).where(callbacks.c.state == "COMPLETED")
            return (await conn.execute(q)).scalar() == 200

    await wait_for(all_completed, timeout=60)
    async with stack.rt.engine.connect() as conn:
        rows = (await conn.execute(sa.select(callback_events))).all()
    seen = Counter((r.callback_id, r.from_state, r.to_state, r.attempt) for r in rows)
    twice = {k: n for k, n in seen.items() if n > 1}
    assert not twice, f"{len(twice)} transitions recorded more than once, e.g. {next(iter(twice))}"
    per_callback = Counter(r.callback_id for r in rows)
    assert set(per_callback) == ids
    # created -> SCHEDULED -> QUEUED -> ROUTING -> PROCESSING -> COMPLETED (answered), one
    # attempt each.
    assert set(per_callback.values()) == {5}, Counter(per_callback.values())
