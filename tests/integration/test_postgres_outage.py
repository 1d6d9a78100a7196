"""PostgreSQL faults with the real server: stopped, starting up, frozen, a table locked, the pools
exhausted. Every request answers a 503 envelope (never a 500, never a hang) within the
configured bound, the health gauge says so, nothing counts as UNCAUGHT_EXCEPTION, and service
resumes when the server is back (issue #11, items 3 and 4)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import httpx
import pytest
import sqlalchemy as sa
from testbed.metrics_parse import parse, value
from testbed.servers import PostgresServer

from dialback.callbacks import repository as repo
from dialback.db.engine import DbTimeouts, create_engine
from dialback.db.pg import run as pg_run
from dialback.kit.errors import is_dependency_error
from dialback.kit.timefmt import utc_iso
from dialback.tenants import repository as tenants_repo
from tests.support.public_api import API
from tests.support.stack import SettingsFactory, Stack, started_stack, wait_for

# Small bounds so each fault takes seconds: a frozen server is noticed after statement + 1 s
# (the client-side margin), a lock after lock_timeout, a busy pool after pool_timeout.
TIGHT: dict[str, Any] = {
    "db_connect_timeout_seconds": 1.0,
    "db_statement_timeout_seconds": 1.0,
    "db_lock_timeout_seconds": 0.5,
    "db_pool_timeout_seconds": 0.5,
    "health_check_timeout_seconds": 1.0,
    "api_key_cache_seconds": 60.0,  # the paths behind authentication are reached too
}
PHONE = "+14155550100"

Call = Callable[[], Awaitable[httpx.Response]]


def outage_settings(settings_with: SettingsFactory, pg: PostgresServer, **kw: Any) -> Any:
    return settings_with(database_url=pg.url("dialback"), simulator="off", **{**TIGHT, **kw})


async def prepared(stack: Stack, **tenant_settings: Any) -> tuple[str, str]:
    """A tenant with a service and a call-in group, and one booked callback: (key, its id)."""
    key = await stack.tenant(settings=tenant_settings or None)
    r = await stack.internal.put(
        "/admin/v1/tenants/acme/callin-groups/g", json={"numbers": ["+14155550190"]}
    )
    assert r.status_code in (200, 201), r.text
    r = await create(stack, key, PHONE)
    assert r.status_code == 200, r.text
    return key, r.json()["data"]["id"]


async def create(stack: Stack, key: str, phone: str) -> httpx.Response:
    return await stack.public.post(
        f"{API}/callbacks/create",
        json={"serviceName": "sales", "phoneNumber": phone},
        headers={"x-api-key": key},
    )


def every_path(stack: Stack, key: str, cid: str) -> dict[str, Call]:
    """One request of each family that reaches PostgreSQL."""
    h = {"x-api-key": key}
    pub, adm = stack.public, stack.internal
    later = utc_iso(time.time() + 86400)
    return {
        "create": lambda: create(stack, key, "+14155550111"),
        "retrieve": lambda: pub.post(f"{API}/callbacks/retrieve", json={"id": cid}, headers=h),
        "cancel": lambda: pub.post(f"{API}/callbacks/cancel", json={"id": cid}, headers=h),
        "availability": lambda: pub.get(f"{API}/callbacks/availability/sales", headers=h),
        "estimated-wait-time": lambda: pub.get(
            f"{API}/estimated-wait-time", params={"virtual-queues": "sales"}, headers=h
        ),
        "statistics": lambda: pub.post(
            f"{API}/statistics/operations/get-statistic-ex",
            headers={**h, "content-type": "application/json", "cache-control": "no-cache"},
        ),
        "call-in": lambda: pub.post(
            f"{API}/call-in/requests/create",
            json={"groupName": "g", "fromPhoneNumber": "+14155550199"},
            headers=h,
        ),
        "admin callbacks": lambda: adm.get("/admin/v1/callbacks", params={"tenant": "acme"}),
        "admin callback": lambda: adm.get(f"/admin/v1/callbacks/{cid}"),
        "admin reschedule": lambda: adm.post(
            f"/admin/v1/callbacks/{cid}/reschedule", json={"desiredTime": later}
        ),
        "admin tenants": lambda: adm.get("/admin/v1/tenants"),
        "admin call-in": lambda: adm.get("/admin/v1/call-in/requests"),
    }


def assert_unavailable(name: str, r: httpx.Response) -> None:
    assert r.status_code == 503, f"{name}: {r.status_code} {r.text}"
    status = r.json()["status"]
    assert status["code"] == 503 and status["corrId"], f"{name}: {r.text}"
    assert status["message"] == "a dependency of dialback is unavailable; retry later"
    assert int(r.headers["retry-after"]) > 0, name


async def timed(call: Call) -> tuple[httpx.Response, float]:
    start = time.monotonic()
    r = await call()
    return r, time.monotonic() - start


async def all_unavailable_within(paths: dict[str, Call], bound: float) -> None:
    """Every path answers 503 within ``bound`` seconds (all at once: one bound, not a sum)."""
    results = await asyncio.wait_for(
        asyncio.gather(*(timed(call) for call in paths.values())), timeout=bound + 5
    )
    for name, (r, took) in zip(paths, results, strict=True):
        assert_unavailable(name, r)
        assert took < bound, f"{name} took {took:.2f}s, bound {bound}s"


async def postgres_status(stack: Stack) -> float | None:
    await stack.rt.health.check_all()
    return value(parse((await stack.internal.get("/metrics")).text), "POSTGRES_STATUS")


def uncaught(stack: Stack) -> float:
    return stack.rt.metrics.UNCAUGHT_EXCEPTION.value()


@pytest.mark.parametrize("mode", ["immediate", "fast"])
async def test_stopped_postgres_answers_503_on_every_path_at_once(
    settings_with: SettingsFactory, own_postgres: PostgresServer, mode: str
) -> None:
    pg = own_postgres
    settings = outage_settings(settings_with, pg, db_lock_timeout_seconds=5.0)
    async with started_stack(settings) as stack:
        key, cid = await prepared(stack)
        paths = every_path(stack, key, cid)
        # Under load: requests in flight (here waiting on a lock) when the server goes down.
        holder = await hold_lock(pg, "LOCK TABLE callbacks IN ACCESS EXCLUSIVE MODE")
        in_flight = [
            asyncio.create_task(paths[n]())
            for n in ("create", "retrieve", "admin callback", "admin callbacks")
        ]
        await asyncio.sleep(0.5)
        await asyncio.to_thread(pg.stop, mode)  # returns once the postmaster has exited
        stopped = time.monotonic()
        for r in await asyncio.wait_for(asyncio.gather(*in_flight), timeout=10):
            # A fast shutdown rolls the lock holder back first: a waiter may still commit.
            if r.status_code != 200:
                assert_unavailable("in flight", r)
        assert time.monotonic() - stopped < 1.0
        holder.terminate()
        for _ in range(2):  # the pooled connections die first, then connecting is refused
            await all_unavailable_within(paths, bound=1.0)
        assert await postgres_status(stack) == 1
        assert (await stack.internal.get("/health/ready")).status_code == 503
        assert uncaught(stack) == 0
        pg.restart()
        assert (await create(stack, key, "+14155550102")).status_code == 200


async def test_postgres_starting_up_is_503_never_500(
    settings_with: SettingsFactory, own_postgres: PostgresServer
) -> None:
    pg = own_postgres
    # The monitor runs too: its cycles fail against the starting server and must read as the
    # outage they are, not as a bug.
    async with started_stack(outage_settings(settings_with, pg)) as stack:
        key, cid = await prepared(stack)
        pg.stop()
        pg.start_held_in_startup()
        try:
            with pytest.raises(asyncpg.CannotConnectNowError) as refused:
                await asyncpg.connect(pg.url("dialback"))
            assert refused.value.sqlstate == "57P03"
            assert "starting up" in str(refused.value)
            assert is_dependency_error(refused.value)
            paths = every_path(stack, key, cid)
            for _ in range(3):
                await all_unavailable_within(paths, bound=1.5)
            assert await postgres_status(stack) == 1
            await asyncio.sleep(0.3)  # a few monitor cycles (poll 0.05 s)
            assert uncaught(stack) == 0
        finally:
            pg.release_startup()
        # Back: no request fails once the server accepts connections.
        for i in range(3):
            r = await create(stack, key, f"+1415555012{i}")
            assert r.status_code == 200, r.text
        assert await postgres_status(stack) == 0
        assert uncaught(stack) == 0


async def test_frozen_postgres_answers_503_within_the_bound_and_recovers(
    settings_with: SettingsFactory, own_postgres: PostgresServer
) -> None:
    pg = own_postgres
    # The monitor runs too: its cycles time out and must resume once the server answers.
    async with started_stack(outage_settings(settings_with, pg)) as stack:
        key, cid = await prepared(stack)
        paths = every_path(stack, key, cid)
        # Every pooled connection in use: statement_timeout 1 s + the 1 s client margin.
        bound = 1.0 + 1.0 + 1.0  # + scheduling slack on a busy machine
        pg.freeze()
        try:
            start = time.monotonic()
            await all_unavailable_within(paths, bound=bound)
            # Connections the timeouts dropped are reopened: the connect timeout bounds that.
            await all_unavailable_within(paths, bound=bound)
            assert await postgres_status(stack) == 1
            assert uncaught(stack) == 0
            assert time.monotonic() - start < 8
        finally:
            pg.thaw()
        ids = []
        for i in range(3):
            r = await create(stack, key, f"+1415555013{i}")
            assert r.status_code == 200, r.text
            ids.append(r.json()["data"]["id"])
        r = await stack.internal.get(f"/admin/v1/callbacks/{cid}")
        assert r.status_code == 200, r.text

        async def dispatched() -> bool:
            for i in ids:
                r = await stack.internal.get(f"/admin/v1/callbacks/{i}")
                if r.json()["data"]["callbackState"] == "SCHEDULED":
                    return False
            return True

        await wait_for(dispatched, timeout=10)  # the monitor is not stuck on a dead connection
        assert await postgres_status(stack) == 0
        assert uncaught(stack) == 0


async def hold_lock(pg: PostgresServer, sql: str) -> asyncpg.Connection:
    """Another session holding a lock until it is closed."""
    conn = await asyncpg.connect(pg.url("dialback"))
    await conn.execute("BEGIN")
    await conn.execute(sql)
    return conn


@pytest.mark.parametrize(
    ("timeouts", "bound"),
    [
        # lock_timeout cuts the wait (SQLSTATE 55P03)...
        ({"db_lock_timeout_seconds": 0.5, "db_statement_timeout_seconds": 5.0}, 2.0),
        # ... and statement_timeout does when it is the shorter (SQLSTATE 57014).
        ({"db_lock_timeout_seconds": 10.0, "db_statement_timeout_seconds": 0.5}, 2.0),
    ],
    ids=["lock_timeout", "statement_timeout"],
)
async def test_a_locked_table_answers_503_within_the_timeout(
    settings_with: SettingsFactory,
    own_postgres: PostgresServer,
    timeouts: dict[str, float],
    bound: float,
) -> None:
    pg = own_postgres
    settings = outage_settings(settings_with, pg, monitor_enabled=False, **timeouts)
    async with started_stack(settings) as stack:
        key, cid = await prepared(stack)
        paths = every_path(stack, key, cid)
        locked = {n: paths[n] for n in ("create", "retrieve", "admin callbacks", "admin callback")}
        holder = await hold_lock(pg, "LOCK TABLE callbacks IN ACCESS EXCLUSIVE MODE")
        try:
            await all_unavailable_within(locked, bound=bound)
        finally:
            await holder.close()
        # The number's booking lock (an advisory lock) is bounded the same way.
        async with stack.rt.engine.connect() as conn:
            tenant = await tenants_repo.get_tenant_by_name(conn, "acme")
        assert tenant is not None
        lock_key = repo.number_lock_key(tenant.id, "+14155550150")
        holder = await hold_lock(pg, f"SELECT pg_advisory_xact_lock({lock_key})")
        try:
            r, took = await timed(lambda: create(stack, key, "+14155550150"))
            assert_unavailable("create on a locked number", r)
            assert took < bound
        finally:
            await holder.close()
        # The server cancelled the statements cleanly: the same connections serve again.
        assert (await create(stack, key, "+14155550150")).status_code == 200
        assert (await stack.internal.get(f"/admin/v1/callbacks/{cid}")).status_code == 200
        assert uncaught(stack) == 0


async def test_exhausted_pools_answer_503_within_the_pool_timeout(
    settings_with: SettingsFactory, own_postgres: PostgresServer
) -> None:
    pg = own_postgres
    # One booking connection and two pooled ones, held by requests waiting on a lock for 3 s:
    # the requests beyond them wait 0.5 s for a connection, then answer 503.
    settings = outage_settings(
        settings_with,
        pg,
        monitor_enabled=False,
        db_pool_size=1,
        db_lock_timeout_seconds=3.0,
        db_statement_timeout_seconds=5.0,
    )
    async with started_stack(settings) as stack:
        key, cid = await prepared(stack)
        holder = await hold_lock(pg, "LOCK TABLE callbacks IN ACCESS EXCLUSIVE MODE")
        try:
            waiting = [
                asyncio.create_task(timed(lambda: create(stack, key, "+14155550160"))),
                *(
                    asyncio.create_task(timed(lambda: stack.internal.get("/admin/v1/callbacks")))
                    for _ in range(2)
                ),
            ]
            await asyncio.sleep(0.5)  # the three hold every connection now
            extra = {
                "create": lambda: create(stack, key, "+14155550161"),
                "admin callback": lambda: stack.internal.get(f"/admin/v1/callbacks/{cid}"),
            }
            await all_unavailable_within(extra, bound=1.5)
            for r, took in await asyncio.wait_for(asyncio.gather(*waiting), timeout=10):
                assert_unavailable("lock waiter", r)  # lock_timeout, 3 s
                assert 2.5 < took < 5.0
        finally:
            await holder.close()
        assert (await create(stack, key, "+14155550162")).status_code == 200
        assert uncaught(stack) == 0


@pytest.mark.parametrize("via", ["sqlalchemy", "raw asyncpg (db.pg.run)"])
async def test_each_call_on_a_frozen_server_times_out_within_the_bound(
    own_postgres: PostgresServer, via: str
) -> None:
    pg = own_postgres
    bounds = DbTimeouts(connect_seconds=1.0, statement_seconds=0.5, pool_seconds=0.5)
    engine = create_engine(pg.url("dialback"), 1, bounds)

    async def select_one() -> None:
        async with engine.connect() as conn:
            if via == "sqlalchemy":
                await conn.execute(sa.text("SELECT 1"))
            else:
                await pg_run(conn, "fetchval", "SELECT 1")

    try:
        await select_one()  # one pooled connection, reused by each call below
        pg.freeze()
        try:
            # Each call is bounded, whether it gets the pooled connection that timed out (its
            # cancel request unanswered), a dropped one's replacement (connect timeout) or waits.
            for _ in range(3):
                start = time.monotonic()
                with pytest.raises(Exception) as info:
                    await asyncio.wait_for(select_one(), timeout=6)
                assert is_dependency_error(info.value), repr(info.value)
                assert time.monotonic() - start < 0.5 + 1.0 + 1.0
        finally:
            pg.thaw()
        await select_one()
    finally:
        await engine.dispose()


async def test_a_restart_under_load_answers_only_200_or_503_and_keeps_every_200(
    settings_with: SettingsFactory, own_postgres: PostgresServer
) -> None:
    """The reported run, in small: creates keep coming while PostgreSQL stops, starts up
    (refusing connections) and opens again. Each create looks its API key up in the store too
    (no key cache), as every request does once its cached key expires."""
    pg = own_postgres
    async with started_stack(outage_settings(settings_with, pg, api_key_cache_seconds=0)) as stack:
        # A fast machine books more than the default 500 per window here: no 429 either.
        key, _ = await prepared(stack, throttle={"maxCallbacks": 100_000, "windowSeconds": 60})
        answers: list[httpx.Response] = []
        stop = asyncio.Event()

        async def client(n: int) -> None:
            i = 0
            while not stop.is_set():
                i += 1
                answers.append(await create(stack, key, f"+1415555{n}{i:03d}"))
                await asyncio.sleep(0.01)

        clients = [asyncio.create_task(client(n)) for n in range(8)]
        try:
            await asyncio.sleep(0.5)
            await asyncio.to_thread(pg.stop)
            await asyncio.sleep(0.5)
            await asyncio.to_thread(pg.start_held_in_startup)
            await asyncio.sleep(1.0)
            await asyncio.to_thread(pg.release_startup)
            await asyncio.sleep(1.0)
        finally:
            stop.set()
            await asyncio.wait_for(asyncio.gather(*clients), timeout=10)
        codes = [r.status_code for r in answers]
        assert set(codes) <= {200, 503}, sorted(
            {(r.status_code, r.text[:160]) for r in answers if r.status_code not in (200, 503)}
        )
        for r in answers:
            if r.status_code == 503:
                assert_unavailable("create under load", r)
        assert codes.count(503) > 0 and codes[-8:].count(200) == 8, codes
        assert uncaught(stack) == 0
        # Nothing acknowledged is lost.
        acknowledged = {r.json()["data"]["id"] for r in answers if r.status_code == 200}
        conn = await asyncpg.connect(pg.url("dialback"))
        try:
            stored = {row["id"] for row in await conn.fetch("SELECT id FROM callbacks")}
        finally:
            await conn.close()
        assert acknowledged <= stored
