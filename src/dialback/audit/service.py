"""Recording and reading the audit log."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from dialback.identity.roles import Principal
from dialback.kit.context import corr_id_var

log = logging.getLogger("dialback.audit")


class AuditLog:
    """Appends audit entries to the store (never secret material) and reads them back."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def record(
        self,
        actor: Principal | str,
        action: str,
        *,
        object_type: str = "",
        object_id: str = "",
        tenant: str | None = None,
        outcome: str = "ok",
        address: str = "",
        corr_id: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        """Append one entry: ``actor`` (a Principal, or e.g. "local:alice" for a failed
        sign-in), ``action`` ("session.login", "callbacks.cancel", ...), ``outcome`` ("ok",
        "denied" or "failed"); ``corr_id`` defaults to the current request's."""
        name = actor.actor if isinstance(actor, Principal) else actor
        log.info(
            "audit %s %s %s/%s outcome=%s",
            name,
            action,
            object_type,
            object_id,
            outcome,
            extra={"corr": corr_id if corr_id is not None else corr_id_var.get()},
        )
