"""What an audit entry may hold, and an entry that cannot be stored."""

from __future__ import annotations

from pathlib import Path

from dialback.audit.repository import AuditFilter
from dialback.audit.service import AuditLog, clean_detail
from dialback.db.engine import create_engine
from dialback.db.migrations import migrate
from dialback.identity.roles import Principal, Role
from dialback.observability.events import Events
from dialback.observability.metrics import Metrics


def test_secret_looking_keys_are_dropped_and_numbers_masked() -> None:
    detail = clean_detail(
        {
            "password": "hunter2hunter2",
            "client_secret": "s",
            "accessToken": "t",
            "x-api-key": "k",
            "code": "c",
            "message": "phoneNumber +14155550123 is blocked",
            "status": 400,
            "long": "x" * 1000,
        }
    )
    assert set(detail) == {"message", "status", "long"}
    assert "4155550123" not in detail["message"]
    assert len(detail["long"]) == 300 and detail["status"] == 400


def test_a_change_keeps_its_numbers_and_is_cleaned_one_level_deep() -> None:
    detail = clean_detail(
        {
            "changes": {
                "throttle.maxCallbacks": [500, 10_000_000],
                "retention.callbackDays": [None, 7],
                "secretValue": [1, 2],
                "note": "call +14155550123",
                "texts": ["+14155550123", "+14155550124"],
                "deeper": {"a": 1},
            }
        }
    )
    changes = detail["changes"]
    assert set(changes) == {
        "throttle.maxCallbacks",
        "retention.callbackDays",
        "note",
        "texts",
        "deeper",
    }
    # A number of 7 digits or more is no phone number here: it stays a number.
    assert changes["throttle.maxCallbacks"] == [500, 10_000_000]
    assert changes["retention.callbackDays"] == [None, 7]
    assert "4155550123" not in changes["note"] and "4155550123" not in changes["texts"]
    assert changes["deeper"] == "{'a': 1}"  # a second level is text, bounded


def test_at_most_twenty_keys() -> None:
    assert len(clean_detail({f"k{i}": i for i in range(50)})) == 20


async def test_an_entry_that_cannot_be_stored_is_counted_not_raised(tmp_path: Path) -> None:
    # A database file whose directory does not exist: every write fails.
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/missing/dir/db.sqlite")
    metrics = Metrics()
    audit = AuditLog(engine, Events(metrics))
    who = Principal("local", "ada", frozenset({Role.SUPERVISOR}))
    await audit.record(who, "admin.cancel_callback", object_type="callback", object_id="x")
    await engine.dispose()
    assert metrics.ges_audit_write_failures_total.value(()) == 1
    assert metrics.ges_audit_entries_total.value(("ok",)) == 0


async def test_a_uuid_object_id_is_kept_a_number_in_a_name_is_masked(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/audit.db")
    await migrate(engine)
    audit = AuditLog(engine, Events(Metrics()))
    who = Principal("local", "ada", frozenset({Role.SUPERVISOR}))
    uuid_like = "12345678-1234-4234-8234-123456789012"  # digit runs a phone mask would take
    await audit.record(who, "admin.cancel_callback", object_type="callback", object_id=uuid_like)
    await audit.record(who, "admin.delete_user", object_type="user", object_id="+14155550123")
    page = await audit.search(AuditFilter(), limit=10, offset=0)
    await engine.dispose()
    ids = {r.object_type: r.object_id for r in page.rows}
    assert ids["callback"] == uuid_like
    assert "4155550123" not in ids["user"]


async def test_hostile_text_is_stored_escaped_never_refused(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/audit.db")
    await migrate(engine)
    metrics = Metrics()
    audit = AuditLog(engine, Events(metrics))
    await audit.record(
        "anonymous",
        "admin.delete_user",
        object_type="user",
        object_id="a\x00b\u2028c\ud800",
        detail={"message": "bad \x00 value\nnext line"},
    )
    page = await audit.search(AuditFilter(), limit=10, offset=0)
    await engine.dispose()
    [row] = page.rows
    assert "\x00" not in row.object_id and "\\x00" in row.object_id
    assert "\n" not in row.detail["message"] and "\\n" in row.detail["message"]
    assert metrics.ges_audit_write_failures_total.value(()) == 0
