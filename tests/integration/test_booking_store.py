"""The booking store (dialback.callbacks.store): the same rules on PostgreSQL (one plpgsql call on
a raw asyncpg pool) and on SQLite (SQLAlchemy), its errors and reconnects, and the Redis link
of the throttle counters.

The store tests run against both implementations with the same assertions, on real servers.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import phonenumbers
import pytest
import redis.asyncio as aioredis
import sqlalchemy as sa
from phonenumbers import PhoneNumberType
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine
from testbed.servers import PostgresServer, RedisServer

from dialback.callbacks.booking import (
    CallbackStore,
    IdempotencyKey,
    NewCallback,
    PostgresStore,
    SqlAlchemyStore,
    store_for,
)
from dialback.db import migrations
from dialback.db.engine import create_engine
from dialback.db.migrations import latest_version, migrate
from dialback.db.schema import callback_events, callbacks, capacity_usage, idempotency_keys
from dialback.throttle.counters import RedisCounters
from dialback.throttle.resp import RespLink
from tests.support.stack import SettingsFactory, started_stack

SLOT = 2_000_000_000.0


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    eng = create_engine(database_url)
    await migrate(eng)  # SQLite: a new file; PostgreSQL: already migrated, a no-op
    try:
        yield eng
    finally:
        await eng.dispose()


@pytest.fixture
async def store(engine: AsyncEngine) -> AsyncIterator[CallbackStore]:
    st = store_for(engine, 4)
    await st.start()
    try:
        yield st
    finally:
        await st.close()


def new(phone: str = "+14155550100", **kw: Any) -> NewCallback:
    now = time.time()
    values: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "tenant_id": "tenant-1",
        "service_id": "service-1",
        "service_name": "sales",
        "phone_number": phone,
        "offer_type": "SCHEDULED",
        "desired_time": now + 86400,
        "due_at": now + 86400,
        "priority": 7,
        "language": "fr-CA",
        "max_attempts": 3,
        "created_at": now,
        "user_data": {"order": "A1", "n": 3, "ok": True, "none": None, "big": 10**40},
        "params": {"channel": "web"},
    }
    values.update(kw)
    return NewCallback(**values)


async def rows(engine: AsyncEngine, **where: Any) -> list[Any]:
    q = sa.select(callbacks).where(*(callbacks.c[k] == v for k, v in where.items()))
    async with engine.connect() as conn:
        return list((await conn.execute(q)).all())


async def booked(engine: AsyncEngine, slot: float) -> int | None:
    q = sa.select(capacity_usage.c.booked).where(capacity_usage.c.slot_start == slot)
    async with engine.connect() as conn:
        return (await conn.execute(q)).scalar()


def test_each_database_gets_its_store(engine: AsyncEngine, store: CallbackStore) -> None:
    expected = PostgresStore if engine.dialect.name == "postgresql" else SqlAlchemyStore
    assert type(store) is expected


async def test_a_booking_stores_every_column(engine: AsyncEngine, store: CallbackStore) -> None:
    cb = new()
    result = await store.book(cb, max_open=5, slot_start=SLOT, slot_total=10)
    assert (result.outcome, result.open_count) == ("ok", 0)
    [row] = await rows(engine, id=cb.id)
    assert row._asdict() | {"user_data": None} == {
        **{c.name: None for c in callbacks.columns},
        **cb.row(SLOT),
        "user_data": None,
    }
    assert row.user_data == cb.user_data  # an integer beyond 64 bits survives as JSON
    assert row.state == "SCHEDULED" and row.attempt == 1 and row.slot_start == SLOT
    assert await booked(engine, SLOT) == 1
    # Without a capacity limit no place is taken and no slot is recorded.
    other = new("+14155550101")
    assert (await store.book(other, max_open=5, slot_start=None, slot_total=None)).outcome == "ok"
    [row] = await rows(engine, id=other.id)
    assert row.slot_start is None
    assert await booked(engine, SLOT) == 1


async def test_open_limit_per_number(engine: AsyncEngine, store: CallbackStore) -> None:
    for i in range(2):
        result = await store.book(new(), max_open=2, slot_start=None, slot_total=None)
        assert (result.outcome, result.open_count) == ("ok", i)
    refused = new()
    result = await store.book(refused, max_open=2, slot_start=SLOT, slot_total=5)
    assert (result.outcome, result.open_count) == ("open_limit", 2)
    assert await rows(engine, id=refused.id) == []
    assert await booked(engine, SLOT) is None  # refused before taking a place
    # Another number, and the same number for another tenant, are independent.
    assert (
        await store.book(new("+14155550199"), max_open=2, slot_start=None, slot_total=None)
    ).outcome == "ok"
    assert (
        await store.book(new(tenant_id="tenant-2"), max_open=2, slot_start=None, slot_total=None)
    ).outcome == "ok"
    # Completed callbacks do not count.
    async with engine.begin() as conn:
        await conn.execute(
            callbacks.update()
            .where(callbacks.c.tenant_id == "tenant-1", callbacks.c.phone_number == "+14155550100")
            .values(state="COMPLETED")
        )
    result = await store.book(new(), max_open=2, slot_start=None, slot_total=None)
    assert (result.outcome, result.open_count) == ("ok", 0)


async def test_full_and_zero_capacity_slots(engine: AsyncEngine, store: CallbackStore) -> None:
    for i in range(2):
        result = await store.book(new(f"+1415555020{i}"), max_open=1, slot_start=SLOT, slot_total=2)
        assert result.outcome == "ok"
    refused = new("+14155550209")
    result = await store.book(refused, max_open=1, slot_start=SLOT, slot_total=2)
    assert result.outcome == "full"
    assert await rows(engine, id=refused.id) == []
    assert await booked(engine, SLOT) == 2
    # Another slot of the same service has its own places; a slot of capacity 0 has none.
    assert (
        await store.book(refused, max_open=1, slot_start=SLOT + 3600, slot_total=2)
    ).outcome == "ok"
    closed = new("+14155550210")
    assert (
        await store.book(closed, max_open=1, slot_start=SLOT + 7200, slot_total=0)
    ).outcome == "full"
    assert await booked(engine, SLOT + 7200) is None
    assert await rows(engine, id=closed.id) == []


async def test_concurrent_bookings_keep_both_limits(
    engine: AsyncEngine, store: CallbackStore
) -> None:
    same_number = await asyncio.gather(
        *(store.book(new(), max_open=1, slot_start=None, slot_total=None) for _ in range(12))
    )
    assert sorted(r.outcome for r in same_number) == ["ok"] + ["open_limit"] * 11
    assert len(await rows(engine, phone_number="+14155550100")) == 1
    one_slot = await asyncio.gather(
        *(
            store.book(new(f"+141555503{i:02d}"), max_open=1, slot_start=SLOT, slot_total=3)
            for i in range(12)
        )
    )
    assert sorted(r.outcome for r in one_slot) == ["full"] * 9 + ["ok"] * 3
    assert await booked(engine, SLOT) == 3
    assert len(await rows(engine, slot_start=SLOT)) == 3


async def test_a_booking_records_its_creation_with_the_corr_id(
    engine: AsyncEngine, store: CallbackStore
) -> None:
    cb = new(source="admin", corr_id="req-create-1")
    assert (await store.book(cb, max_open=1, slot_start=None, slot_total=None)).outcome == "ok"
    refused = new(corr_id="req-create-2")  # the number's one open callback is booked
    booked = await store.book(refused, max_open=1, slot_start=None, slot_total=None)
    assert booked.outcome == "open_limit"
    async with engine.connect() as conn:
        rows = (await conn.execute(sa.select(callback_events))).all()
    assert [
        (r.callback_id, r.at, r.from_state, r.to_state, r.reason, r.attempt, r.source, r.corr_id)
        for r in rows
    ] == [(cb.id, cb.created_at, None, "SCHEDULED", None, 1, "admin", "req-create-1")]


async def _index_names(conn: Any) -> set[str]:
    return await conn.run_sync(
        lambda c: {ix["name"] for ix in sa.inspect(c).get_indexes("callbacks")}
    )


async def _booking_function_source(conn: Any, nargs: int = 20) -> str | None:
    """The booking function's source: of version 3 (20 arguments), 8 (with the key, 23) or 12
    (with the creation row, 25)."""
    q = "SELECT prosrc FROM pg_proc WHERE proname = 'dialback_book_callback' AND pronargs = :n"
    return (await conn.execute(sa.text(q), {"n": nargs})).scalar()


async def test_migrations_give_the_booking_function_and_the_open_number_index(
    engine: AsyncEngine,
) -> None:
    async with engine.connect() as conn:
        version = (
            await conn.execute(sa.text("SELECT max(version) FROM schema_migrations"))
        ).scalar()
        assert version == latest_version() >= 8
        assert "ix_callbacks_open_number" in await _index_names(conn)
        assert "ix_callbacks_completed" in await _index_names(conn)
        if engine.dialect.name == "postgresql":
            current = await _booking_function_source(conn, 25)
            assert current is not None and "EXECUTE" not in current  # the cached-plan count
            assert "idempotency_keys" in current and "callback_events" in current
            # Version 8 (the Idempotency-Key, without the creation row) stays for replicas of
            # the previous release during a rolling upgrade; version 3 is gone.
            keyed = await _booking_function_source(conn, 23)
            assert keyed is not None and "EXECUTE" not in keyed and "idempotency_keys" in keyed
            assert "callback_events" not in keyed
            assert await _booking_function_source(conn, 20) is None


async def test_a_version_2_database_upgrades_to_3(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:  # back to what version 2 left
        await conn.execute(sa.text("DROP INDEX ix_callbacks_open_number"))
        await conn.execute(sa.text("DELETE FROM schema_migrations WHERE version = 3"))
        if engine.dialect.name == "postgresql":
            await conn.run_sync(migrations.MIGRATIONS[1].apply)
            assert "EXECUTE" in (await _booking_function_source(conn) or "")
    assert await migrate(engine) == [3]
    async with engine.connect() as conn:
        assert "ix_callbacks_open_number" in await _index_names(conn)
        if engine.dialect.name == "postgresql":
            assert "EXECUTE" not in (await _booking_function_source(conn) or "")


async def test_the_booking_count_keeps_its_index_in_a_generic_plan(pg_url: str) -> None:
    """plpgsql caches a generic plan of the count once a session has booked a few times; it must
    stay an index lookup of the number, whichever size the table had when it was planned."""
    engine = create_engine(pg_url)
    count = (
        "SELECT count(*) FROM callbacks WHERE phone_number = $1 AND tenant_id = $2"
        " AND state IN ('SCHEDULED', 'QUEUED', 'ROUTING', 'PROCESSING')"
    )
    try:
        async with engine.connect() as conn:
            await conn.execute(sa.text("SET plan_cache_mode = force_generic_plan"))
            await conn.execute(sa.text(f"PREPARE open_count(varchar, varchar) AS {count}"))
            explain = sa.text("EXPLAIN EXECUTE open_count('+14155550100', 'tenant-1')")
            plans = ["\n".join((await conn.execute(explain)).scalars())]
            await conn.execute(
                sa.text(
                    "INSERT INTO callbacks (id, tenant_id, service_id, service_name, phone_number,"
                    " state, offer_type, due_at, priority, language, user_data, params, attempt,"
                    " max_attempts, created_at, updated_at)"
                    " SELECT 'g' || g, 'tenant-1', 's', 'sales', '+1415' || lpad(g::text, 7, '0'),"
                    " CASE WHEN g % 10 = 0 THEN 'SCHEDULED' ELSE 'COMPLETED' END, 'SCHEDULED',"
                    " g, 0, 'en', '{}', '{}', 1, 1, g, g FROM generate_series(1, 50000) g"
                )
            )
            await conn.execute(sa.text("ANALYZE callbacks"))
            plans.append("\n".join((await conn.execute(explain)).scalars()))
            await conn.rollback()
    finally:
        await engine.dispose()
    for plan in plans:
        assert "ix_callbacks_open_number" in plan, plan


async def test_postgres_store_errors_keep_their_meaning(pg_url: str) -> None:
    engine = create_engine(pg_url)
    store = PostgresStore(engine, 1)
    await store.start()
    try:
        # A value the server refuses (SQLSTATE class 22) is the 400 safety net's DBAPIError...
        with pytest.raises(DBAPIError) as info:
            await store.book(new("+1415\x00"), max_open=1, slot_start=None, slot_total=None)
        assert not isinstance(info.value, OperationalError)
        assert str(getattr(info.value.orig, "sqlstate", "")).startswith("22")
        # ... and the connection stays usable.
        assert (
            await store.book(new(), max_open=1, slot_start=None, slot_total=None)
        ).outcome == "ok"
    finally:
        await store.close()
        await engine.dispose()
    with pytest.raises(OperationalError):  # closed: not a bug, the store is unavailable
        await store.book(new(), max_open=1, slot_start=None, slot_total=None)


async def test_postgres_down_is_503_and_bookings_resume_after_a_restart(
    settings_with: SettingsFactory, own_postgres: PostgresServer
) -> None:
    pg = own_postgres
    settings = settings_with(
        database_url=pg.url("dialback"),
        simulator="off",
        api_key_cache_seconds=60.0,
        monitor_enabled=False,  # the create path alone
    )
    async with started_stack(settings) as stack:
        key = await stack.tenant()

        async def create(phone: str) -> Any:
            return await stack.public.post(
                "/engagement/v3/callbacks/create",
                json={"serviceName": "sales", "phoneNumber": phone},
                headers={"x-api-key": key},
            )

        assert (await create("+14155550100")).status_code == 200
        pg.stop()
        r = await create("+14155550101")
        assert r.status_code == 503, r.text
        pg.restart()
        # The booking pool reconnects: no request fails once the server is back.
        for i in range(3):
            r = await create(f"+1415555011{i}")
            assert r.status_code == 200, r.text
        assert stack.rt.metrics.UNCAUGHT_EXCEPTION.value() == 0


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    server = RedisServer().start()
    yield server
    server.stop()


async def test_redis_counters_survive_a_restart_and_keep_their_ttl(own_redis: RedisServer) -> None:
    link = RespLink.from_url(own_redis.url)
    assert link is not None
    counters = RedisCounters(aioredis.from_url(own_redis.url), link=link)
    client = aioredis.from_url(own_redis.url, decode_responses=True)
    try:
        keys = [("ten:t:1", 60), ("num:n:1", 172800)]
        assert await counters.incr_many(keys) == [1, 1]
        assert await counters.incr_many(keys) == [2, 2]
        assert 0 < await client.ttl("dialback:ten:t:1") <= 60
        assert 60 < await client.ttl("dialback:num:n:1") <= 172800
        # A counter given back after it expired has no TTL: the next use sets one again.
        await client.delete("dialback:ten:t:1")
        await counters.decr("ten:t:1")
        assert await counters.incr_many(keys) == [0, 3]
        assert 0 < await client.ttl("dialback:ten:t:1") <= 60
        # A restarted server has neither the data nor the script: reconnect and load it again.
        own_redis.stop()
        with pytest.raises(Exception) as info:
            await counters.incr_many(keys)
        assert "Connection" in type(info.value).__name__
        own_redis.start()
        assert await counters.incr_many(keys) == [1, 1]
    finally:
        await counters.close()
        await client.aclose()


async def test_resp_link_authenticates_and_selects_the_database(own_redis: RedisServer) -> None:
    admin = aioredis.from_url(own_redis.url, decode_responses=True)
    await admin.config_set("requirepass", "s3cret")
    try:
        base = f"redis://:s3cret@127.0.0.1:{own_redis.port}"
        link = RespLink.from_url(f"{base}/3")
        assert link is not None
        assert await link.execute("INCR", "k") == 1
        authed = aioredis.from_url(f"{base}/3", decode_responses=True)
        assert await authed.get("k") == "1"
        await authed.aclose()
        wrong = RespLink.from_url(f"redis://:nope@127.0.0.1:{own_redis.port}/0")
        assert wrong is not None
        with pytest.raises(Exception, match=r"WRONGPASS|invalid"):
            await wrong.execute("PING")
        await link.close()
        await wrong.close()
    finally:
        await admin.aclose()
    # TLS and Unix sockets go through redis-py.
    assert RespLink.from_url("rediss://127.0.0.1:6380/0") is None
    assert RespLink.from_url("unix:///tmp/redis.sock") is None


async def test_a_silent_redis_times_out_instead_of_hanging() -> None:
    done = asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1024)  # read the command, never answer
        await reader.read()  # until the client gives up and aborts the connection
        writer.close()
        await writer.wait_closed()
        done.set()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    link = RespLink("127.0.0.1", port, timeout=0.2)
    try:
        started = time.monotonic()
        with pytest.raises(Exception, match="no answer from Redis"):
            await link.execute("PING")
        assert time.monotonic() - started < 2
    finally:
        await link.close()
        await asyncio.wait_for(done.wait(), 5)
        server.close()
        await server.wait_closed()


def test_number_type_decides_validity_like_is_valid_number() -> None:
    """numbers.normalise_number relies on it to look the number type up once."""
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        for kind in (
            PhoneNumberType.MOBILE,
            PhoneNumberType.FIXED_LINE,
            PhoneNumberType.PREMIUM_RATE,
        ):
            ex = phonenumbers.example_number_for_type(region, kind)
            if ex is None:
                continue
            for num in (ex, phonenumbers.parse(f"+{ex.country_code}{ex.national_number}9", None)):
                known = phonenumbers.number_type(num) != PhoneNumberType.UNKNOWN
                assert phonenumbers.is_valid_number(num) == known, (region, num)


async def keys_stored(engine: AsyncEngine) -> list[Any]:
    async with engine.connect() as conn:
        return list((await conn.execute(sa.select(idempotency_keys))).all())


def idem(key: str = "order-1", request_hash: str = "h1", ttl: float = 3600) -> IdempotencyKey:
    return IdempotencyKey(key, request_hash, time.time() + ttl)


async def test_a_keyed_booking_stores_its_key_and_a_second_books_nothing(
    engine: AsyncEngine, store: CallbackStore
) -> None:
    first = new()
    assert (
        await store.book(first, max_open=5, slot_start=None, slot_total=None, idem=idem())
    ).outcome == "ok"
    again = await store.book(new(), max_open=5, slot_start=None, slot_total=None, idem=idem())
    assert again.outcome == "duplicate"
    assert again.existing == (first.id, "h1")
    other = await store.book(
        new(), max_open=5, slot_start=None, slot_total=None, idem=idem(request_hash="h2")
    )
    assert other.existing == (first.id, "h1")  # the service answers 409 for another request
    assert [r.id for r in await rows(engine)] == [first.id]
    assert await store.find_key("tenant-1", "order-1", time.time()) == (first.id, "h1")
    assert await store.find_key("tenant-2", "order-1", time.time()) is None
    # Another tenant's key of the same name is its own.
    theirs = new(tenant_id="tenant-2")
    assert (
        await store.book(theirs, max_open=5, slot_start=None, slot_total=None, idem=idem())
    ).outcome == "ok"
    assert len(await rows(engine)) == 2


async def test_a_refused_keyed_booking_keeps_no_key(
    engine: AsyncEngine, store: CallbackStore
) -> None:
    await store.book(new(), max_open=1, slot_start=None, slot_total=None)
    refused = await store.book(new(), max_open=1, slot_start=None, slot_total=None, idem=idem())
    assert refused.outcome == "open_limit"
    full = await store.book(
        new("+14155550199"), max_open=5, slot_start=SLOT, slot_total=0, idem=idem()
    )
    assert full.outcome == "full"
    assert await keys_stored(engine) == []
    # Decided afresh: the key books once the number has room.
    ok = await store.book(
        new("+14155550199"), max_open=5, slot_start=None, slot_total=None, idem=idem()
    )
    assert ok.outcome == "ok"


async def test_concurrent_creates_with_one_key_book_once(
    engine: AsyncEngine, store: CallbackStore
) -> None:
    # Same number (same lock) and other numbers (no lock in common): one booking either way.
    cbs = [new() for _ in range(6)] + [new(f"+1415555{i:04d}") for i in range(6)]
    results = await asyncio.gather(
        *(store.book(cb, max_open=100, slot_start=None, slot_total=None, idem=idem()) for cb in cbs)
    )
    [winner] = [cb for cb, r in zip(cbs, results, strict=True) if r.outcome == "ok"]
    assert {r.existing for r in results if r.outcome != "ok"} == {(winner.id, "h1")}
    assert [r.id for r in await rows(engine)] == [winner.id]


async def test_an_expired_key_books_again_and_expired_keys_are_purged(
    engine: AsyncEngine, store: CallbackStore
) -> None:
    old = new()
    await store.book(old, max_open=5, slot_start=None, slot_total=None, idem=idem(ttl=-1))
    for i in range(3):
        await store.book(
            new(f"+1415555{i:04d}"),
            max_open=5,
            slot_start=None,
            slot_total=None,
            idem=idem(f"stale-{i}", ttl=-1),
        )
    assert await store.find_key("tenant-1", "order-1", time.time()) is None
    fresh = new()
    assert (
        await store.book(fresh, max_open=5, slot_start=None, slot_total=None, idem=idem())
    ).outcome == "ok"
    assert await store.find_key("tenant-1", "order-1", time.time()) == (fresh.id, "h1")
    # Each keyed booking purges up to two expired keys: two more bookings leave none.
    for i in range(2):
        await store.book(
            new(f"+1415556{i:04d}"),
            max_open=5,
            slot_start=None,
            slot_total=None,
            idem=idem(f"new-{i}"),
        )
    now = time.time()
    assert [k for k in await keys_stored(engine) if k.expires_at <= now] == []
    assert len(await keys_stored(engine)) == 3
