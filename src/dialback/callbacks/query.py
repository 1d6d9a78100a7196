"""The filters the admin search, the admin export and the UI's list narrow callbacks by: one
definition of their names, bounds and error texts, read from the query string's raw text."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import Annotated, get_args

from fastapi import Query, Request

from dialback.callbacks.lifecycle import StateName
from dialback.callbacks.repository import CallbackFilter
from dialback.kit.errors import BadRequest
from dialback.kit.names import NAME_MAX, NAME_PATTERN, is_name

PHONE_MAX = 40
TIME_MAX = 40
STATES: tuple[str, ...] = get_args(StateName)
FILTERS = (
    "tenant",
    "service",
    "state",
    "phoneNumber",
    "createdFrom",
    "createdTo",
    "dueFrom",
    "dueTo",
    "parked",
)
"""The filters by the admin API's names (a reader's ``names`` map them to a form's)."""
PARKED = {"true": True, "false": False}
"""The admin API's ``parked`` values (the UI's list has its own words for them)."""
_TIMES = (("createdFrom", "createdTo"), ("dueFrom", "dueTo"))
# Epoch seconds of 3000-01-01: times near year 1 or 9999 overflow the slot arithmetic.
_LATEST = 32503680000


@dataclass(frozen=True)
class CallbackQuery:
    """A search's tenant (None: every tenant in scope) and what to narrow its callbacks by."""

    tenant: str | None = None
    where: CallbackFilter = field(default_factory=CallbackFilter)


def _time(text: str, zone: tzinfo) -> float:
    """An ISO-8601 time as epoch seconds; without an offset, a wall-clock time in ``zone``."""
    try:
        at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            "not a date and time (ISO-8601: YYYY-MM-DDTHH:MM[:SS], an offset or Z for UTC)"
        ) from None
    if at.tzinfo is None:
        at = at.replace(tzinfo=zone)  # fold=0: a repeated hour is its first occurrence
    if not 0 <= at.timestamp() <= _LATEST:
        raise ValueError("out of range (1970 to 3000)")
    return at.timestamp()


def read_callback_query(
    params: Mapping[str, str],
    *,
    zone: tzinfo = UTC,
    names: Mapping[str, str] | None = None,
    labels: Mapping[str, str] | None = None,
    parked: Mapping[str, bool] = PARKED,
) -> tuple[CallbackQuery, dict[str, str]]:
    """The callback filters of a query string's raw values and the problems by filter (each
    text without its name: the caller names it). ``names`` maps a filter (FILTERS) to the
    parameter that holds it, ``labels`` to how a text names another filter (default: its
    parameter); ``parked`` the words of that filter; ``zone`` the zone of a time without an
    offset."""
    names = names or {}
    labels = labels or names
    raw = {f: params.get(names.get(f, f), "").strip() for f in FILTERS}
    errors: dict[str, str] = {}
    for f in ("tenant", "service"):
        if raw[f] and (len(raw[f]) > NAME_MAX or not is_name(raw[f])):
            errors[f] = "not a valid name"
    if raw["state"] and raw["state"] not in STATES:
        errors["state"] = f"use one of {', '.join(STATES)}"
    if len(raw["phoneNumber"]) > PHONE_MAX:
        errors["phoneNumber"] = f"at most {PHONE_MAX} characters"
    times: dict[str, float | None] = {}
    for f in (f for pair in _TIMES for f in pair):
        times[f] = None
        if len(raw[f]) > TIME_MAX:
            errors[f] = f"at most {TIME_MAX} characters"
        elif raw[f]:
            try:
                times[f] = _time(raw[f], zone)
            except ValueError as exc:
                errors[f] = str(exc)
    for start, end in _TIMES:
        lo, hi = times[start], times[end]
        if lo is not None and hi is not None and hi <= lo:
            errors[end] = f"must be after {labels.get(start, start)}"
    if raw["parked"] and raw["parked"].lower() not in parked:
        errors["parked"] = f"use {' or '.join(parked)} (or nothing: any)"
    query = CallbackQuery(
        tenant=raw["tenant"] or None,
        where=CallbackFilter(
            state=raw["state"] or None,
            service_name=raw["service"] or None,
            created_from=times["createdFrom"],
            created_to=times["createdTo"],
            due_from=times["dueFrom"],
            due_to=times["dueTo"],
            parked=parked.get(raw["parked"].lower()),
            phone_number=raw["phoneNumber"] or None,
        ),
    )
    return query, errors


# The parameters document the filters in OpenAPI (types, enums, bounds, as the schema keywords
# clients and fuzzers read) without FastAPI validating them: the reader below does, so the
# admin API and the UI's list refuse with the same texts.
_NAME_SCHEMA = {"maxLength": NAME_MAX, "pattern": NAME_PATTERN}
_TimeParam = Annotated[
    str | None,
    Query(
        description="ISO-8601 time (no offset: UTC)",
        json_schema_extra={"maxLength": TIME_MAX, "format": "date-time"},
    ),
]


async def callback_query(
    request: Request,
    tenant: Annotated[
        str | None, Query(description="a tenant's name", json_schema_extra=_NAME_SCHEMA)
    ] = None,
    state: Annotated[
        str | None,
        Query(description=f"one of {', '.join(STATES)}", json_schema_extra={"enum": list(STATES)}),
    ] = None,
    service: Annotated[
        str | None, Query(description="a service's name", json_schema_extra=_NAME_SCHEMA)
    ] = None,
    createdFrom: _TimeParam = None,
    createdTo: _TimeParam = None,
    dueFrom: _TimeParam = None,
    dueTo: _TimeParam = None,
    parked: Annotated[
        str | None,
        Query(
            description="true: only callbacks the monitor parked; false: none",
            json_schema_extra={"enum": list(PARKED)},
        ),
    ] = None,
    phoneNumber: Annotated[
        str | None,
        Query(
            description="the number in full, read as bookings read it, matched exactly",
            json_schema_extra={"maxLength": PHONE_MAX},
        ),
    ] = None,
) -> CallbackQuery:
    """The admin API's callback filters (a dependency; its parameters document them); 400
    naming each malformed one."""
    # The parameters above document the filters; the reader reads their raw text.
    query, errors = read_callback_query(request.query_params)
    if errors:
        raise BadRequest("; ".join(f"{name}: {text}" for name, text in errors.items()))
    return query
