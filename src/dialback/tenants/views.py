"""How the admin API shows tenants and API keys."""

from __future__ import annotations

from typing import Any

from dialback.kit.timefmt import iso, utc_iso
from dialback.tenants.repository import ApiKey, TenantRecord


def tenant_out(rec: TenantRecord) -> dict[str, Any]:
    """A tenant as the admin API shows it."""
    return {
        "id": rec.id,
        "name": rec.name,
        "settings": rec.settings,
        "disabled": rec.disabled,
        "createdAt": utc_iso(rec.created_at),
    }


def key_out(rec: ApiKey) -> dict[str, Any]:
    """An API key as listed: the prefix, never the key or its hash."""
    return {
        "id": rec.id,
        "name": rec.name,
        "prefix": rec.prefix,
        "createdAt": utc_iso(rec.created_at),
        "revokedAt": iso(rec.revoked_at),
    }
