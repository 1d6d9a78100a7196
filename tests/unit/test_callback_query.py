"""The callback filters' one reader: names, bounds and error texts for the admin API and the
UI's list alike."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from dialback.callbacks.query import read_callback_query
from dialback.callbacks.repository import CallbackFilter
from dialback.ui.pages.callbacks_list import parse_list_query


def test_the_admin_names_read_into_a_query() -> None:
    q, errors = read_callback_query(
        {
            "tenant": "acme",
            "service": "sales",
            "state": "SCHEDULED",
            "phoneNumber": " +14155550123 ",
            "createdFrom": "2026-05-01T10:00:00Z",
            "dueTo": "2026-05-02T10:00:00+02:00",
            "parked": "TRUE",
        }
    )
    assert errors == {}
    assert q.tenant == "acme"
    assert q.where == CallbackFilter(
        state="SCHEDULED",
        service_name="sales",
        created_from=datetime(2026, 5, 1, 10, tzinfo=UTC).timestamp(),
        due_to=datetime(2026, 5, 2, 8, tzinfo=UTC).timestamp(),
        parked=True,
        phone_number="+14155550123",
    )


@pytest.mark.parametrize(
    ("params", "name", "text"),
    [
        ({"tenant": "no spaces"}, "tenant", "not a valid name"),
        ({"service": "x" * 200}, "service", "not a valid name"),
        (
            {"state": "LOST"},
            "state",
            "use one of SCHEDULED, QUEUED, ROUTING, PROCESSING, COMPLETED",
        ),
        ({"phoneNumber": "1" * 41}, "phoneNumber", "at most 40 characters"),
        ({"dueFrom": "soon"}, "dueFrom", "not a date and time (ISO-8601"),
        ({"dueFrom": "x" * 41}, "dueFrom", "at most 40 characters"),
        ({"createdTo": "0001-01-01T00:00:00Z"}, "createdTo", "out of range (1970 to 3000)"),
        (
            {"createdFrom": "2026-05-02T00:00:00Z", "createdTo": "2026-05-01T00:00:00Z"},
            "createdTo",
            "must be after createdFrom",
        ),
        ({"parked": "yes"}, "parked", "use true or false (or nothing: any)"),
    ],
)
def test_each_problem_is_named_by_its_filter(params: dict[str, str], name: str, text: str) -> None:
    _q, errors = read_callback_query(params)
    assert list(errors) == [name] and errors[name].startswith(text)


def test_the_uis_names_words_and_zone() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    q = parse_list_query({"due_from": "2026-05-01T10:00", "parked": "none"}, berlin)
    assert q.errors == {}
    assert q.where.due_from == datetime(2026, 5, 1, 8, tzinfo=UTC).timestamp()
    assert q.where.parked is False
    bad = parse_list_query(
        {"due_from": "2026-05-02T10:00", "due_to": "2026-05-01T10:00", "parked": "true"}, berlin
    )
    assert bad.errors == {
        "due_to": "Due to: must be after due from",
        "parked": "Parked: use only or none (or nothing: any)",
    }
