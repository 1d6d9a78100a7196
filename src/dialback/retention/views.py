"""How the admin API shows erasures and their audit rows."""

from __future__ import annotations

from typing import Any

from dialback.kit.timefmt import utc_iso
from dialback.retention.service import Erasure


def audit_out(row: Any) -> dict[str, Any]:
    """An audit row: who, when, what and how much; the number masked and hashed only."""
    return {
        "id": row.id,
        "at": utc_iso(row.at),
        "actor": row.actor,
        "kind": row.kind,
        "tenant": row.tenant_name,
        "callbackId": row.callback_id,
        "phoneNumberMasked": row.phone_masked,
        "phoneNumberHash": row.phone_hash,
        "counts": row.counts,
        "corrId": row.corr_id,
    }


def erasure_out(e: Erasure) -> dict[str, Any]:
    """The answer to an erasure: what was erased (counts) and its audit row."""
    return {"erased": e.counts, "audit": audit_out(e.audit)}


def audit_page(rows: list[Any], total: int, limit: int, offset: int) -> dict[str, Any]:
    """A page of the audit log."""
    return {
        "items": [audit_out(r) for r in rows],
        "total": total,
        "limit": limit,
        "offset": offset,
    }
