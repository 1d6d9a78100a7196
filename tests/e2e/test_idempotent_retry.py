"""SIGKILL a replica mid-burst, retry every unanswered create on another replica with the same
Idempotency-Key: each key books exactly one callback, and every client gets one id."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from dialback.db.engine import create_engine
from dialback.db.schema import callbacks, idempotency_keys, services, tenants
from dialback.tenants import repository as tenants_repo
from tests.support.factories import tenant_and_service
from tests.support.process import DialbackProcess

CREATE = "/engagement/v3/callbacks/create"
KEYS = 300
WORKERS = 32


@pytest.fixture
async def engine(pg_url: str) -> AsyncIterator[AsyncEngine]:
    eng = create_engine(pg_url)
    yield eng
    await eng.dispose()


async def _api_key(engine: AsyncEngine) -> str:
    tenant_id, service_id = await tenant_and_service(engine)
    async with engine.begin() as conn:
        await conn.execute(
            tenants.update()
            .where(tenants.c.id == tenant_id)
            .values(settings={"throttle": {"maxCallbacks": 1_000_000, "windowSeconds": 60}})
        )
        await conn.execute(
            services.update()
            .where(services.c.id == service_id)
            .values(config={"businessHours": {"alwaysOpen": True}})
        )
        key = tenants_repo.generate_key()
        await tenants_repo.create_api_key(conn, tenant_id, "retry", key)
    return key


def _body(i: int) -> dict[str, object]:
    return {"serviceName": "sales", "phoneNumber": f"+1415556{i:04d}", "userData": {"n": i}}


async def test_retries_after_a_replica_kill_book_each_key_once(
    tmp_path: Path, pg_url: str, redis_url: str, engine: AsyncEngine
) -> None:
    api_key = await _api_key(engine)
    env = {
        "DIALBACK_DATABASE_URL": pg_url,
        "DIALBACK_REDIS_URL": redis_url,
        "DIALBACK_LOG_LEVEL": "warn",
    }
    first = DialbackProcess(env, tmp_path / "first.log").start()
    second = DialbackProcess(env, tmp_path / "second.log").start()
    answered: dict[str, str] = {}  # key -> the id replica 1 answered
    try:
        queue: asyncio.Queue[int] = asyncio.Queue()
        for i in range(KEYS):
            queue.put_nowait(i)

        async def worker(client: httpx.AsyncClient) -> None:
            while not queue.empty():
                i = queue.get_nowait()
                try:
                    r = await client.post(
                        CREATE,
                        json=_body(i),
                        headers={"x-api-key": api_key, "Idempotency-Key": f"burst-{i}"},
                    )
                except httpx.HTTPError:
                    continue  # killed mid-request: never answered
                assert r.status_code == 200, r.text
                answered[f"burst-{i}"] = r.json()["data"]["id"]

        async with httpx.AsyncClient(base_url=first.public_url, timeout=10) as client:
            burst = asyncio.gather(*(worker(client) for _ in range(WORKERS)))
            deadline = time.monotonic() + 20
            while len(answered) < KEYS // 3 and time.monotonic() < deadline:
                await asyncio.sleep(0.005)
            # Hold the bookings in flight inside PostgreSQL (they wait on a table lock), kill
            # the replica, then let them go: they commit, and their answers are never written.
            # The window a plain SIGKILL hits now and then, held open.
            async with engine.connect() as lock:
                await lock.begin()
                await lock.execute(sa.text("LOCK TABLE idempotency_keys IN EXCLUSIVE MODE"))
                await asyncio.sleep(0.5)
                first.kill()  # SIGKILL with requests in flight
                await lock.rollback()
            await burst
        assert KEYS // 3 <= len(answered) < KEYS, len(answered)
        async with engine.connect() as conn:
            # The orphaned bookings finish on their own (nothing reads their result).
            for _ in range(100):
                busy = (
                    await conn.execute(
                        sa.text(
                            "SELECT count(*) FROM pg_stat_activity WHERE query LIKE"
                            " '%dialback_book_callback%' AND state = 'active' AND pid <> pg_backend_pid()"
                        )
                    )
                ).scalar()
                if not busy:
                    break
                await asyncio.sleep(0.05)
            at_kill = set((await conn.execute(sa.select(idempotency_keys.c.idem_key))).scalars())
        lost_answers = at_kill - set(answered)  # committed at replica 1, never answered
        assert set(answered) <= at_kill and lost_answers, "no booking was in flight at the kill"

        # The client retries everything it has no answer for on replica 2, with the same key,
        # and re-sends some answered ones too (an answer lost after it was read, say).
        unanswered = [i for i in range(KEYS) if f"burst-{i}" not in answered]
        resent = list(answered)[-20:]
        got: dict[str, str] = {}
        async with httpx.AsyncClient(base_url=second.public_url, timeout=10) as client:
            sem = asyncio.Semaphore(WORKERS)

            async def retry(i: int) -> None:
                async with sem:
                    r = await client.post(
                        CREATE,
                        json=_body(i),
                        headers={"x-api-key": api_key, "Idempotency-Key": f"burst-{i}"},
                    )
                assert r.status_code == 200, r.text
                got[f"burst-{i}"] = r.json()["data"]["id"]

            await asyncio.gather(
                *(retry(i) for i in unanswered),
                *(retry(int(k.removeprefix("burst-"))) for k in resent),
            )
            metrics = (await client.get(f"{second.internal_url}/metrics")).text
    finally:
        first.kill()
        second.kill()

    for key in resent:
        assert got[key] == answered[key]
    ids = {**answered, **got}
    assert len(ids) == KEYS and len(set(ids.values())) == KEYS  # one id per client
    async with engine.connect() as conn:
        stored = set((await conn.execute(sa.select(callbacks.c.id))).scalars())
        keyed = dict(
            (
                await conn.execute(
                    sa.select(idempotency_keys.c.idem_key, idempotency_keys.c.callback_id)
                )
            ).all()
        )
    assert stored == set(ids.values())  # stored rows == distinct keys: nobody booked twice
    assert keyed == ids
    # Requests committed at replica 1 whose answer the kill lost were answered by replica 2
    # from the store (replays), the others booked there.
    replays = sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("ges_callbacks_create_replayed_total{")
    )
    assert replays == len(resent) + len(lost_answers)
    print(
        f"answered by replica 1: {len(answered)}; retried: {len(unanswered)}; "
        f"committed but unanswered at the kill: {len(lost_answers)}"
    )
