"""Retention and erasure use cases; each method owns its transaction.

Retention: per tenant, completed callbacks (with their history) and expired call-in requests
older than the tenant's retention are deleted in batches of at most ``retention_batch_size``
rows, one short transaction each, with a pause between; the routing streams are trimmed to
what no consumer group still needs plus a margin, and dead consumers of the outcome group
without pending entries are removed. Open callbacks are never purged.

Erasure: one callback, or everything about a phone number for a tenant. An open callback is
cancelled and deleted in one transaction (the routing engine is told to drop a queued one),
and the dispatch-stream entries of what is erased are deleted too;
one an agent is handling (PROCESSING) or that is being dispatched right now is refused with
409. Every erasure writes an audit row: who, when, what and how much, the number masked and
as a keyed hash (``DIALBACK_ERASURE_HASH_KEY``), never in clear.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from dialback.audit import repository as audit_repo
from dialback.callbacks import lifecycle
from dialback.callbacks import repository as callbacks_repo
from dialback.callbacks.lifecycle import OPEN_STATES
from dialback.callins import repository as callins_repo
from dialback.kit.context import current_corr_id
from dialback.kit.errors import BadRequest, Conflict, NotFound
from dialback.kit.names import is_id
from dialback.kit.phone import mask, normalise_number
from dialback.observability.events import Events
from dialback.retention import repository as repo
from dialback.routing.cancels import announce_cancel
from dialback.routing.transport import RoutingTransport
from dialback.services import repository as services_repo
from dialback.settings import Settings
from dialback.tenants import repository as tenants_repo
from dialback.tenants.repository import Tenant

log = logging.getLogger("dialback.retention")

DAY = 86400.0


@dataclass(frozen=True)
class _AnyNumber:
    """The parse-only rule of an erasure: what a booking refused can never be stored anyway,
    so no allow/deny rule applies; only the default country of national numbers matters."""

    default_country: str
    allowed_countries: Sequence[str] | None = None
    allow_premium: bool = True
    blocked_patterns: Sequence[str] = ()


@dataclass
class SweepReport:
    """What one retention sweep removed, by kind (catalogue RETENTION_KINDS)."""

    counts: dict[str, int] = field(default_factory=dict)

    def add(self, kind: str, n: int) -> None:
        """Add ``n`` removed items of ``kind``."""
        self.counts[kind] = self.counts.get(kind, 0) + n


@dataclass(frozen=True)
class Erasure:
    """A committed erasure: its audit row and what it removed."""

    audit: Any
    counts: dict[str, int]


def retention_days(tenant: Tenant, settings: Settings) -> tuple[int, int]:
    """(callback days, call-in days) of a tenant: its own settings, else the global defaults."""
    own = tenant.settings.get("retention") or {}
    cb = own.get("callbackDays") or settings.retention_callback_days
    ci = own.get("callInDays") or settings.retention_callin_days
    return int(cb), int(ci)


class RetentionService:
    """Purges old personal data in small batches and erases on request, audited."""

    def __init__(
        self,
        engine: AsyncEngine,
        transport: RoutingTransport,
        events: Events,
        settings: Settings,
        consumer: str,
    ) -> None:
        self.engine = engine
        self.transport = transport
        self.events = events
        self.settings = settings
        # This replica's outcome-group consumer, never removed as dead.
        self.consumer = consumer

    # Retention -------------------------------------------------------------------------

    async def sweep(self, stopping: Callable[[], bool] = lambda: False) -> SweepReport:
        """One pass over every tenant and the routing streams; stops early when ``stopping``."""
        report = SweepReport()
        async with self.engine.connect() as conn:
            tenants = await tenants_repo.list_tenants(conn)
        now = time.time()
        for rec in tenants:
            if stopping():
                return report
            tenant = Tenant(rec.id, rec.name, rec.settings, rec.disabled)
            cb_days, ci_days = retention_days(tenant, self.settings)
            await self._purge_callbacks(tenant.id, now - cb_days * DAY, report, stopping)
            await self._purge_callins(tenant.id, now - ci_days * DAY, now, report, stopping)
        if not stopping():
            await self._purge_audit(
                now - self.settings.retention_audit_days * DAY, report, stopping
            )
        if not stopping():
            await self._trim_streams(report, stopping)
        self.events.retention_swept()
        return report

    async def _pause(self) -> None:
        await asyncio.sleep(self.settings.retention_batch_pause_seconds)

    async def _purge_callbacks(
        self, tenant_id: str, cutoff: float, report: SweepReport, stopping: Callable[[], bool]
    ) -> None:
        batch = self.settings.retention_batch_size
        while not stopping():
            async with self.engine.begin() as conn:
                n_cb, n_ev = await repo.purge_completed_callbacks(conn, tenant_id, cutoff, batch)
            report.add("callbacks", n_cb)
            report.add("callback_events", n_ev)
            self.events.retention_purged("callbacks", n_cb)
            self.events.retention_purged("callback_events", n_ev)
            if n_cb < batch:
                return
            await self._pause()

    async def _purge_audit(
        self, cutoff: float, report: SweepReport, stopping: Callable[[], bool]
    ) -> None:
        batch = self.settings.retention_batch_size
        while not stopping():
            async with self.engine.begin() as conn:
                n = await audit_repo.purge_before(conn, cutoff, batch)
            report.add("audit_entries", n)
            self.events.retention_purged("audit_entries", n)
            if n < batch:
                return
            await self._pause()

    async def _purge_callins(
        self,
        tenant_id: str,
        cutoff: float,
        now: float,
        report: SweepReport,
        stopping: Callable[[], bool],
    ) -> None:
        batch = self.settings.retention_batch_size
        while not stopping():
            async with self.engine.begin() as conn:
                n = await repo.purge_callin_requests(conn, tenant_id, cutoff, now, batch)
            report.add("callin_requests", n)
            self.events.retention_purged("callin_requests", n)
            if n < batch:
                return
            await self._pause()

    async def _trim_streams(self, report: SweepReport, stopping: Callable[[], bool]) -> None:
        s = self.settings
        batch = s.retention_batch_size
        while not stopping():
            n = await self.transport.trim_streams(
                s.retention_stream_margin_entries,
                int(s.retention_stream_margin_seconds * 1000),
                batch,
            )
            report.add("stream_entries", n)
            self.events.retention_purged("stream_entries", n)
            if n < batch:
                break
            await self._pause()
        if stopping():
            return
        gone = await self.transport.remove_dead_consumers(
            int(s.retention_consumer_idle_seconds * 1000), keep=[self.consumer], limit=batch
        )
        report.add("stream_consumers", gone)
        self.events.retention_purged("stream_consumers", gone)

    # Erasure ---------------------------------------------------------------------------

    def phone_hash(self, number: str) -> str | None:
        """The keyed hash (HMAC-SHA256) of a normalised number; None without a key."""
        key = self.settings.erasure_hash_key
        if key is None or not key.get_secret_value():
            return None
        digest = hmac.new(key.get_secret_value().encode(), number.encode(), hashlib.sha256)
        return digest.hexdigest()

    async def _numbers(
        self, conn: AsyncConnection, tenant: Tenant, raw: str, country: str | None
    ) -> list[str]:
        """Every E.164 form ``raw`` takes under the default countries the tenant's services and
        call-in groups (or ``country``) read national numbers with; 400 when it is none."""
        countries: list[str] = []
        if country:
            countries.append(country)
        for svc in await services_repo.list_services(conn, tenant.id):
            countries.append(svc.config.validation.default_country)
        for grp in await callins_repo.list_groups(conn, tenant.id):
            countries.append(grp.config.default_country)
        forms: list[str] = []
        error: BadRequest | None = None
        for cc in dict.fromkeys(countries or ["US"]):
            try:
                e164 = normalise_number(raw, _AnyNumber(cc))
            except BadRequest as exc:
                error = exc
                continue
            if e164 not in forms:
                forms.append(e164)
        if not forms:
            assert error is not None
            raise error
        return forms

    def _decide(self, row: Any, now: float) -> lifecycle.Transition | None:
        """How an erasure ends a callback: None when it is completed, the cancel the state
        machine decides when it is open; 409 when an agent has it or it is being dispatched."""
        if row.state not in OPEN_STATES:
            return None
        if row.state == "SCHEDULED" and row.lease_expires_at and row.lease_expires_at > now:
            raise Conflict(
                "a callback is being dispatched right now; retry the erasure in a few seconds"
            )
        try:
            return lifecycle.cancel(row, now, "erasure")
        except Conflict:
            raise Conflict(
                "a callback is being handled by an agent (PROCESSING); retry the erasure once "
                "it is completed"
            ) from None

    async def _end_open(
        self, conn: AsyncConnection, rows: Sequence[Any], now: float
    ) -> tuple[list[Any], int]:
        """Decide every row first (one refusal refuses all), then give their slots back;
        (rows the routing engine must drop, slots released)."""
        decided = [(row, self._decide(row, now)) for row in rows]
        notify, released = [], 0
        for row, t in decided:
            if t is None:
                continue
            if t.release_slot is not None:
                await callbacks_repo.release_capacity(conn, row.service_id, t.release_slot)
                released += 1
            if t.notify_routing:
                notify.append(row)
        return notify, released

    async def _scrub(self, rows: Sequence[Any]) -> int:
        """Delete the dispatch-stream entries (number, userData) of the callbacks ever
        dispatched, before the rows go: a routing Redis that cannot be reached fails the
        erasure (503), which then changes nothing and can be retried."""
        dispatched = [r.id for r in rows if r.queued_at is not None]
        return await self.transport.scrub_dispatches(dispatched) if dispatched else 0

    async def _withdraw(self, rows: Sequence[Any]) -> None:
        """Tell the routing engine to drop these (committed) callbacks."""
        for row in rows:
            await announce_cancel(self.transport, self.events, row.id, row.attempt)

    def _audit_values(
        self, actor: str, kind: str, tenant: Tenant | None, now: float, counts: dict[str, int]
    ) -> dict[str, Any]:
        return {
            "at": now,
            "actor": actor,
            "kind": kind,
            "tenant_id": tenant.id if tenant else None,
            "tenant_name": tenant.name if tenant else None,
            "counts": counts,
            "corr_id": current_corr_id(),
        }

    async def erase_callback(
        self, callback_id: str, actor: str, scope: frozenset[str] | None = None
    ) -> Erasure:
        """Delete one callback and its history (cancelling it first when open), audited;
        ``scope``: the tenant names the actor may see (None: all)."""
        now = time.time()
        async with self.engine.begin() as conn:
            await repo.write_lock(conn)
            row = (
                await callbacks_repo.find_callback(conn, callback_id, lock=True)
                if is_id(callback_id)
                else None
            )
            if row is None:
                raise NotFound(f"no callback with id {callback_id!r}")
            tenant = await tenants_repo.get_tenant(conn, row.tenant_id)
            if scope is not None and (tenant is None or tenant.name not in scope):
                raise NotFound(f"no callback with id {callback_id!r} in your tenants")
            notify, released = await self._end_open(conn, [row], now)
            scrubbed = await self._scrub([row])
            n_cb, n_ev = await repo.delete_callbacks(conn, [row.id])
            counts = {
                "callbacks": n_cb,
                "openCallbacksCancelled": int(row.state in OPEN_STATES),
                "callbackEvents": n_ev,
                "capacityReleased": released,
                "streamEntries": scrubbed,
            }
            values = self._audit_values(actor, "callback", tenant, now, counts)
            values.update(
                callback_id=row.id,
                phone_masked=mask(row.phone_number),
                phone_hash=self.phone_hash(row.phone_number),
            )
            audit = await repo.get_audit(conn, await repo.insert_audit(conn, values))
        await self._withdraw(notify)
        self.events.erased("callback")
        log.info(
            "callback erased",
            extra={"tenant": tenant.name if tenant else None, "callbackId": row.id, **counts},
        )
        return Erasure(audit, counts)

    async def erase_number(
        self, tenant_name: str, raw_number: str, country: str | None, actor: str
    ) -> Erasure:
        """Erase everything the tenant holds about a phone number, audited."""
        now = time.time()
        async with self.engine.begin() as conn:
            await repo.write_lock(conn)
            tenant = await tenants_repo.tenant_named(conn, tenant_name)
            numbers = await self._numbers(conn, tenant, raw_number, country)
            rows = await repo.callbacks_for_numbers(conn, tenant.id, numbers)
            notify, released = await self._end_open(conn, rows, now)
            scrubbed = await self._scrub(rows)
            n_cb, n_ev = await repo.delete_callbacks(conn, [r.id for r in rows])
            n_ci = await repo.delete_callins_for_numbers(conn, tenant.id, numbers)
            counts = {
                "callbacks": n_cb,
                "openCallbacksCancelled": sum(1 for r in rows if r.state in OPEN_STATES),
                "callbackEvents": n_ev,
                "callInRequests": n_ci,
                "capacityReleased": released,
                "streamEntries": scrubbed,
            }
            values = self._audit_values(actor, "phone_number", tenant, now, counts)
            values.update(phone_masked=mask(numbers[0]), phone_hash=self.phone_hash(numbers[0]))
            audit = await repo.get_audit(conn, await repo.insert_audit(conn, values))
        await self._withdraw(notify)
        self.events.erased("phone_number")
        log.info("phone number erased", extra={"tenant": tenant.name, **counts})
        return Erasure(audit, counts)

    async def audit_log(
        self, tenant_name: str | None, *, limit: int, offset: int
    ) -> tuple[list[Any], int]:
        """The erasure audit (of one tenant, by name, or all), newest first, paged."""
        async with self.engine.connect() as conn:
            tenant_id = None
            if tenant_name is not None:
                tenant_id = (await tenants_repo.tenant_named(conn, tenant_name)).id
            return await repo.list_audit(conn, tenant_id, limit=limit, offset=offset)
