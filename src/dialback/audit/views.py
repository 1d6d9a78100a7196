"""How the admin API shows audit entries."""

from __future__ import annotations

from typing import Any

from dialback.audit.service import AuditPage
from dialback.kit.timefmt import utc_iso


def entry_out(row: Any) -> dict[str, Any]:
    """One entry: who, what, which object, when, from where, the outcome and the corrId."""
    return {
        "id": row.id,
        "at": utc_iso(row.at),
        "actor": row.actor,
        "actorKind": row.actor_kind,
        "action": row.action,
        "objectType": row.object_type,
        "objectId": row.object_id,
        "tenant": row.tenant,
        "callbackId": row.callback_id,
        "outcome": row.outcome,
        "address": row.address,
        "corrId": row.corr_id,
        "detail": row.detail,
    }


def page_out(page: AuditPage, limit: int, offset: int) -> dict[str, Any]:
    """A page of the audit log."""
    return {
        "items": [entry_out(r) for r in page.rows],
        "total": page.total,
        "limit": limit,
        "offset": offset,
    }
