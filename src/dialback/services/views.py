"""How the admin API shows services."""

from __future__ import annotations

from typing import Any

from dialback.kit.timefmt import utc_iso
from dialback.services.repository import ServiceRecord


def service_out(rec: ServiceRecord) -> dict[str, Any]:
    """A service as the admin API shows it."""
    return {
        "id": rec.id,
        "name": rec.name,
        "config": rec.config.dump(),
        "createdAt": utc_iso(rec.created_at),
        "updatedAt": utc_iso(rec.updated_at),
    }
