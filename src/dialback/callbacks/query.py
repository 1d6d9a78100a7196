"""The filters the admin search, the admin export and the UI's list narrow callbacks by: one
definition of their names, bounds and error texts."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Query

from dialback.callbacks.lifecycle import StateName
from dialback.callbacks.repository import CallbackFilter
from dialback.callbacks.schemas import parse_time_param
from dialback.kit.names import NAME_MAX, NAME_PATTERN

PHONE_MAX = 40
TIME_MAX = 40

TenantFilter = Annotated[str | None, Query(max_length=NAME_MAX, pattern=NAME_PATTERN)]
ServiceFilter = Annotated[
    str | None, Query(alias="service", max_length=NAME_MAX, pattern=NAME_PATTERN)
]
TimeFilter = Annotated[str | None, Query(max_length=TIME_MAX, description="ISO-8601 time")]
ParkedFilter = Annotated[
    bool | None, Query(description="true: only callbacks the monitor parked; false: none")
]
PhoneFilter = Annotated[
    str | None,
    Query(
        max_length=PHONE_MAX,
        description="the number in full, read as bookings read it, matched exactly",
    ),
]


@dataclass(frozen=True)
class CallbackQuery:
    """A search's tenant (None: every tenant in scope) and what to narrow its callbacks by."""

    tenant: str | None = None
    where: CallbackFilter = field(default_factory=CallbackFilter)


async def callback_query(
    tenant: TenantFilter = None,
    state: StateName | None = None,
    service_name: ServiceFilter = None,
    createdFrom: TimeFilter = None,
    createdTo: TimeFilter = None,
    dueFrom: TimeFilter = None,
    dueTo: TimeFilter = None,
    parked: ParkedFilter = None,
    phoneNumber: PhoneFilter = None,
) -> CallbackQuery:
    """The callback filters of a query string (a dependency); 400 naming a malformed one."""
    return CallbackQuery(
        tenant=tenant,
        where=CallbackFilter(
            state=state,
            service_name=service_name,
            created_from=parse_time_param("createdFrom", createdFrom, None),
            created_to=parse_time_param("createdTo", createdTo, None),
            due_from=parse_time_param("dueFrom", dueFrom, None),
            due_to=parse_time_param("dueTo", dueTo, None),
            parked=parked,
            phone_number=phoneNumber,
        ),
    )
