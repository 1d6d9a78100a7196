"""The CSV export's rows: every column from its stored value, free text defused, by position."""

from __future__ import annotations

import csv
import io

from dialback.callbacks import repository, views
from dialback.kit.timefmt import utc_iso

# EXPORT_COLUMNS' stored sources, the tenant (passed per batch) left out.
SOURCES = (
    "id",
    "service_name",
    "phone_number",
    "state",
    "reason",
    "offer_type",
    "desired_time",
    "due_at",
    "created_at",
    "updated_at",
    "completed_at",
    "attempt",
    "max_attempts",
    "priority",
    "language",
)


def test_the_export_selects_the_columns_in_the_order_the_rows_unpack_them() -> None:
    assert tuple(c.name for c in repository.EXPORT_SELECT) == SOURCES
    assert len(views.EXPORT_COLUMNS) == len(SOURCES) + 1


def test_an_export_row_holds_every_column_of_its_callback() -> None:
    stored = (
        "3f0c2a1e-5b7d-4e21-9c0a-1f2e3d4c5b6a",
        "=HYPERLINK(1)",
        "+14155550123",
        "COMPLETED",
        "answered",
        "SCHEDULED",
        None,
        1_790_000_000.25,
        1_789_990_000.5,
        1_790_000_700.125,
        1_790_000_700.125,
        2,
        3,
        5,
        "-en",
    )
    [row] = views.export_rows("@acme", [stored])
    text = io.StringIO()
    csv.writer(text, lineterminator="\r\n").writerows([row])
    written = next(csv.reader(io.StringIO(text.getvalue())))
    assert dict(zip(views.EXPORT_COLUMNS, written, strict=True)) == {
        "id": "3f0c2a1e-5b7d-4e21-9c0a-1f2e3d4c5b6a",
        "tenant": "'@acme",
        "serviceName": "'=HYPERLINK(1)",
        "phoneNumberMasked": "+14*******23",
        "callbackState": "COMPLETED",
        "callbackReason": "answered",
        "cbOfferType": "SCHEDULED",
        "desiredTime": "",
        "dueTime": utc_iso(1_790_000_000.25),
        "createdTime": utc_iso(1_789_990_000.5),
        "updatedTime": utc_iso(1_790_000_700.125),
        "completedTime": "2026-09-21T14:25:00.125Z",
        "attempt": "2",
        "maxAttempts": "3",
        "priority": "5",
        "language": "'-en",
    }


def test_an_open_callback_has_no_completed_time_and_its_desired_time() -> None:
    stored = ("i", "sales", "+14155550123", "SCHEDULED", None, "SCHEDULED", 1e9, 1e9, 1e9, 1e9)
    [row] = views.export_rows("acme", [(*stored, None, 1, 1, 0, "en-US")])
    assert row[5] == "" and row[7] == utc_iso(1e9) and row[11] == ""
