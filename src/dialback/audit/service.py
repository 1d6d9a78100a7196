"""Recording and reading the audit log."""

from __future__ import annotations

import logging
import re
import time
import uuid
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from dialback.audit import repository as repo
from dialback.audit.repository import AuditFilter
from dialback.identity.roles import Principal
from dialback.kit.context import CORR_ID_STORED, corr_id_var, stored_corr_id
from dialback.observability.events import Events
from dialback.observability.logging import escape_controls, mask_phone_numbers

log = logging.getLogger("dialback.audit")

OUTCOMES = ("ok", "denied", "failed")
# Keys never stored in an entry's detail, whatever a caller passes: defence in depth, the
# callers pass no secret material.
_SECRET_KEY = re.compile(r"pass|secret|token|cookie|credential|authorization|api.?key|^code$", re.I)
_MAX_DETAIL_VALUE = 300
# A callback's or a key's id is never a phone number, though its digits may look like one.
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_MAX_DETAIL_KEYS = 20


@dataclass(frozen=True)
class AuditPage:
    """A page of the audit log."""

    rows: list[Any]
    total: int


def _bounded(text: str, n: int) -> str:
    # Stored text is one line of valid UTF-8 without NUL (PostgreSQL refuses \u0000): a path
    # parameter or a refusal's message may echo whatever a client sent.
    clean = escape_controls(text).encode("utf-8", "replace").decode("utf-8")
    return clean[:n]


def _scalar(value: Any) -> bool:
    return isinstance(value, bool | int | float) or value is None


def clean_detail(detail: dict[str, Any] | None, *, nested: bool = True) -> dict[str, Any]:
    """``detail`` as stored: at most 20 keys, no secret-looking key, values short and with
    phone numbers masked; a dict value (``changes``) cleaned the same way one level deep, a
    pair of numbers (a change's old and new value) kept as it is."""
    out: dict[str, Any] = {}
    for key, value in list((detail or {}).items())[:_MAX_DETAIL_KEYS]:
        key = _bounded(str(key), 64)
        if _SECRET_KEY.search(key):
            continue
        if _scalar(value):
            out[key] = value
        elif isinstance(value, dict) and nested:
            out[key] = clean_detail(value, nested=False)
        elif isinstance(value, list | tuple) and len(value) == 2 and all(map(_scalar, value)):
            out[key] = list(value)
        else:
            out[key] = _bounded(mask_phone_numbers(str(value)), _MAX_DETAIL_VALUE)
    return out


class AuditLog:
    """Appends audit entries to the store (never secret material) and reads them back."""

    def __init__(self, engine: AsyncEngine, events: Events | None = None) -> None:
        self.engine = engine
        self.events = events

    async def record(
        self,
        actor: Principal | str,
        action: str,
        *,
        object_type: str = "",
        object_id: str = "",
        tenant: str | None = None,
        callback_id: str | None = None,
        outcome: str = "ok",
        address: str = "",
        corr_id: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        """Append one entry: ``actor`` (a Principal, or e.g. "local:alice" for a failed
        sign-in), ``action`` ("session.login", "callbacks.cancel", ...), ``outcome`` ("ok",
        "denied" or "failed"); ``corr_id`` defaults to the current request's. A failure to
        store is logged and counted, never raised: the action it records has happened."""
        if outcome not in OUTCOMES:
            raise ValueError(f"unknown audit outcome {outcome!r}")
        name = actor.actor if isinstance(actor, Principal) else actor
        kind = actor.kind if isinstance(actor, Principal) else name.partition(":")[0]
        values = {
            "id": str(uuid.uuid4()),
            "at": time.time(),
            "actor": _bounded(mask_phone_numbers(name), 200),
            "actor_kind": _bounded(kind or "unknown", 16),
            "action": _bounded(action, 64),
            "object_type": _bounded(object_type, 32),
            "object_id": _bounded(
                object_id if _UUID.match(object_id) else mask_phone_numbers(object_id), 200
            ),
            "tenant": _bounded(tenant, 100) if tenant else None,
            "callback_id": _bounded(callback_id, 36) if callback_id else None,
            "outcome": outcome,
            "address": _bounded(address, 64),
            "corr_id": _bounded(
                corr_id if corr_id is not None else corr_id_var.get(), CORR_ID_STORED
            ),
            "detail": clean_detail(detail),
        }
        try:
            async with self.engine.begin() as conn:
                await repo.insert_entry(conn, values)
        except Exception:
            log.error(
                "audit entry not stored: %s %s %s/%s outcome=%s",
                values["actor"],
                values["action"],
                values["object_type"],
                values["object_id"],
                outcome,
                exc_info=True,
            )
            if self.events is not None:
                self.events.audit_write_failed()
            return
        if self.events is not None:
            self.events.audited(outcome)
        log.info(
            "audit: %s %s %s %s",
            values["actor"],
            values["action"],
            f"{object_type}/{values['object_id']}" if object_type else "-",
            outcome,
        )

    async def search(self, where: AuditFilter, *, limit: int, offset: int) -> AuditPage:
        """Entries matching ``where``, newest first, paged (its corrId cut as entries keep it)."""
        if where.corr_id:
            where = replace(where, corr_id=stored_corr_id(where.corr_id))
        async with self.engine.connect() as conn:
            rows, total = await repo.search(conn, where, limit=limit, offset=offset)
        return AuditPage(rows, total)

    async def for_callback(self, callback_id: str) -> list[Any]:
        """What operators did to one callback, oldest first."""
        async with self.engine.connect() as conn:
            return await repo.for_callback(conn, callback_id)
