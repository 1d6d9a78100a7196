"""No log line, at any level, carries userData or an unmasked phone number: real flows (bookings,
call-ins, database errors) on real PostgreSQL and on the embedded SQLite store, real log output."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.support.logs import logging_to
from tests.support.stack import Stack, make_settings, started_stack, wait_for

MARKER = "PRIVATE-ud-7Q3Z"
NUMBER = "+1 415 555 0177"
# Every spelling the number could take in a line: as sent, E.164, national, digits only.
NUMBER_FORMS = ("415 555 0177", "4155550177", "555 0177", "555-0177", "5550177")
POOL = ["+14155550168", "+14155550169"]
FROM_NUMBER = "+14155550166"
POOL_FORMS = ("4155550168", "4155550169", "4155550166")
CREATE = "/engagement/v3/callbacks/create"
CALLIN = "/engagement/v3/call-in/requests/create"

# The database refuses what carries these words in userData, each in its own way.
PG_REFUSALS = [
    """CREATE FUNCTION refuse_marked() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.user_data::text LIKE '%DATA-EXCEPTION%' THEN
        RAISE EXCEPTION 'refused by a test trigger' USING ERRCODE = '22023';
    END IF;
    IF NEW.user_data::text LIKE '%SERVER-GONE%' THEN
        PERFORM pg_terminate_backend(pg_backend_pid());
    END IF;
    RETURN NEW;
END $$""",
    *(
        f"""CREATE TRIGGER refuse_marked BEFORE INSERT ON {table}
            FOR EACH ROW EXECUTE FUNCTION refuse_marked()"""
        for table in ("callin_requests", "callbacks")
    ),
    *(
        f"""ALTER TABLE {table} ADD CONSTRAINT no_violation
            CHECK (user_data::text NOT LIKE '%CHECK-VIOLATION%')"""
        for table in ("callin_requests", "callbacks")
    ),
]
SQLITE_REFUSALS = [
    f"""CREATE TRIGGER refuse_{table} BEFORE INSERT ON {table}
        WHEN NEW.user_data LIKE '%CHECK-VIOLATION%'
        BEGIN SELECT RAISE(ABORT, 'refused by a test trigger'); END"""
    for table in ("callin_requests", "callbacks")
]


@contextmanager
def captured(tmp_path: Path, level: str, fmt: str = "json") -> Iterator[Path]:
    """Everything logged inside the block, at ``level``, in the file yielded."""
    path = tmp_path / f"log-{level}-{fmt}.txt"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        with logging_to(fd, level, max_len=16384, fmt=fmt):
            yield path
    finally:
        os.close(fd)


async def _flows(stack: Stack, refusals: list[str]) -> list[int]:
    """A booking, a call-in and each refused write, all carrying MARKER and the numbers;
    returns the refused writes' status codes."""
    key = await stack.tenant("acme")
    r = await stack.internal.put(
        "/admin/v1/tenants/acme/callin-groups/support",
        json={"numbers": POOL, "accessCode": {"enabled": False}},
    )
    assert r.status_code in (200, 201), r.text
    headers = {"x-api-key": key}
    booking = {"serviceName": "sales", "phoneNumber": NUMBER}
    r = await stack.public.post(
        CREATE, json={**booking, "userData": {"note": MARKER}}, headers=headers
    )
    assert r.status_code == 200, r.text
    cid = r.json()["data"]["id"]
    callin = {"groupName": "support", "fromPhoneNumber": FROM_NUMBER}
    r = await stack.public.post(
        CALLIN, json={**callin, "userData": {"note": MARKER}}, headers=headers
    )
    assert r.status_code == 200, r.text

    async def completed() -> bool:
        r = await stack.internal.get(f"/admin/v1/callbacks/{cid}")
        return "COMPLETED" in [e["toState"] for e in r.json()["data"]["history"]]

    await wait_for(completed, timeout=15)
    statuses = []
    for word in refusals:
        for path, body in ((CREATE, booking), (CALLIN, callin)):
            r = await stack.public.post(
                path, json={**body, "userData": {"note": f"{MARKER} {word}"}}, headers=headers
            )
            statuses.append(r.status_code)
    return statuses


def _assert_private(path: Path) -> str:
    text = path.read_text()
    assert MARKER not in text, [ln for ln in text.splitlines() if MARKER in ln]
    for form in NUMBER_FORMS + POOL_FORMS:
        assert form not in text, [ln for ln in text.splitlines() if form in ln]
    return text


@pytest.mark.parametrize("level", ["trace", "debug", "info", "warn"])
async def test_no_line_on_postgresql_carries_user_data_or_a_number(
    stack: Stack, tmp_path: Path, level: str
) -> None:
    async with stack.rt.engine.begin() as conn:
        for ddl in PG_REFUSALS:
            await conn.exec_driver_sql(ddl)
    with captured(tmp_path, level) as path:
        await stack.internal.put("/admin/v1/logging", json={"level": level})
        statuses = await _flows(stack, ["DATA-EXCEPTION", "CHECK-VIOLATION", "SERVER-GONE"])
        await stack.internal.put("/admin/v1/logging", json={"level": level})
    # A refused value is the client's 400, a broken rule a 500, the server gone a 503.
    assert statuses == [400, 400, 500, 500, 503, 503], statuses
    text = _assert_private(path)
    # The failures were logged, with what an operator needs: the statement and the server's
    # own words, never the values.
    assert "refused by a test trigger" in text
    assert "no_violation" in text
    assert "a dependency is unavailable" in text


@pytest.mark.parametrize("level", ["trace", "debug", "info", "warn"])
async def test_no_line_on_embedded_sqlite_carries_user_data_or_a_number(
    tmp_path: Path, level: str
) -> None:
    settings = make_settings(database_url=f"sqlite+aiosqlite:///{tmp_path}/db.sqlite")
    with captured(tmp_path, level) as path:
        async with started_stack(settings) as stack:
            async with stack.rt.engine.begin() as conn:
                for ddl in SQLITE_REFUSALS:
                    await conn.exec_driver_sql(ddl)
            await stack.internal.put("/admin/v1/logging", json={"level": level})
            statuses = await _flows(stack, ["CHECK-VIOLATION"])
    assert statuses == [500, 500], statuses
    text = _assert_private(path)
    assert "refused by a test trigger" in text


def test_library_debug_lines_and_database_errors_are_scrubbed(tmp_path: Path) -> None:
    from sqlalchemy.exc import IntegrityError

    err = IntegrityError(
        "INSERT INTO t (a, b) VALUES ($1, $2)",
        (MARKER, "+14155550177"),
        Exception(
            'new row violates check constraint "c"\n'
            f"DETAIL:  Failing row contains (1, {MARKER}, x).\n"
            f'CONTEXT:  JSON data, line 1: {{"note": "{MARKER}'
        ),
    )
    from pydantic import BaseModel, ValidationError

    class Outcome(BaseModel):
        attempt: int

    try:
        Outcome.model_validate({"attempt": {"note": MARKER, "n": "+14155550177"}})
    except ValidationError as exc:
        invalid = exc
    with captured(tmp_path, "trace") as path:
        for name in ("aiosqlite", "asyncpg", "sqlalchemy.engine.Engine", "redis", "httpx"):
            logging.getLogger(name).debug("executing %r", ("SELECT ?", (MARKER,)))
            logging.getLogger(name).info("params %s", MARKER)
        logging.getLogger("dialback.test").warning("failed: %s", err)
        logging.getLogger("dialback.test").error("failed", exc_info=err)
        logging.getLogger("some.library").warning("failed: %s", err)
        logging.getLogger("dialback.test").warning("ignoring malformed event: %s", invalid)
    text = _assert_private(path)
    lines = text.splitlines()
    assert len(lines) == 4, lines
    assert all("INSERT INTO t" in ln and 'check constraint \\"c\\"' in ln for ln in lines[:3])
    assert "attempt" in lines[3] and "input_type=dict" in lines[3]
