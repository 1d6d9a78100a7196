"""The trace-level story of one create callback (docs/logging.md): a line per step.

``create_story()`` is the story for this request: one that writes TRACE lines, or, when TRACE is
off, one whose steps do nothing (no formatting, no allocation).
"""

from __future__ import annotations

import logging
from typing import Any

from dialback.kit.phone import mask
from dialback.kit.timefmt import iso
from dialback.observability.logging import TRACE
from dialback.services.calendar import Slot

log = logging.getLogger("dialback.callbacks")


def _trace(msg: str, extra: dict[str, Any]) -> None:
    log.log(TRACE, f"create callback: {msg}", extra=extra)


class CreateStory:
    """Each step of a create callback, written at TRACE."""

    def accepted(self, req: Any) -> None:
        """The body parsed."""
        _trace(
            "request accepted for validation",
            {
                "service": req.serviceName,
                "desiredTime": req.desiredTime.isoformat() if req.desiredTime else None,
                "cbOfferType": req.cbOfferType,
                "userDataKeys": len(req.userData),
            },
        )

    def service_resolved(self, service_id: str) -> None:
        """The service exists."""
        _trace("service resolved", {"serviceId": service_id})

    def number_valid(self, phone: str) -> None:
        """The phone number passed the service's validation."""
        _trace("phone number valid", {"number": mask(phone)})

    def scheduled(self, immediate: bool, due: float, slot: Slot | None) -> None:
        """When the callback is due, and in which slot."""
        _trace(
            "schedule decided",
            {
                "immediate": immediate,
                "dueTime": iso(due),
                "slot": iso(slot.start) if slot else None,
            },
        )

    def counters_read(self, tenant_count: int, day_count: int) -> None:
        """The throttle counters, incremented."""
        _trace(
            "throttle counters read",
            {"tenantCount": tenant_count, "numberTodayCount": day_count},
        )

    def open_counted(self, open_count: int, limit: int) -> None:
        """The number's open callbacks, counted by the booking."""
        _trace("open callbacks for the number counted", {"open": open_count, "limit": limit})

    def capacity_checked(self, slot: Slot | None, reserved: bool) -> None:
        """The slot's capacity, checked (and a place reserved when it has a limit)."""
        _trace(
            "capacity checked",
            {
                "slot": iso(slot.start) if slot else None,
                "total": slot.total if slot else None,
                "reserved": reserved,
            },
        )

    def stored(self) -> None:
        """The row is committed."""
        _trace("stored (committed)", {"state": "SCHEDULED"})


class _Silent(CreateStory):
    """The story when TRACE is off: every step does nothing."""


def _nothing(*_args: Any) -> None:
    return None


for _step in [name for name in vars(CreateStory) if not name.startswith("_")]:
    setattr(_Silent, _step, _nothing)

_TRACING = CreateStory()
_SILENT = _Silent()


def create_story() -> CreateStory:
    """The story of this create: written when TRACE is on, silent otherwise."""
    return _TRACING if log.isEnabledFor(TRACE) else _SILENT
