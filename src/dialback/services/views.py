"""How the admin API shows services."""

from __future__ import annotations

from typing import Any

from dialback.kit.timefmt import utc_iso
from dialback.services.repository import ServiceRecord
from dialback.services.service import PutResult


def service_out(rec: ServiceRecord) -> dict[str, Any]:
    """A service as the admin API shows it."""
    return {
        "id": rec.id,
        "name": rec.name,
        "config": rec.config.dump(),
        "createdAt": utc_iso(rec.created_at),
        "updatedAt": utc_iso(rec.updated_at),
    }


def service_put_out(res: PutResult) -> dict[str, Any]:
    """The answer of a PUT: the service, ``routingProvisioned`` and its ``warnings`` (a list)."""
    return {
        **service_out(res.record),
        "routingProvisioned": res.routing_provisioned,
        "warnings": list(res.warnings),
    }
