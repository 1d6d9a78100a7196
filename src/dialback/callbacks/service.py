"""The callback use cases: booking rules (validation, business hours, capacity, throttles),
cancel, reschedule, retrieve, availability and EWT, and the admin reads.

Each method owns its transaction; it returns domain rows and dataclasses, which
``callbacks.views`` renders.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, get_args

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from dialback.audit import repository as audit_repo
from dialback.callbacks import lifecycle
from dialback.callbacks import repository as repo
from dialback.callbacks.booking import CallbackStore, IdempotencyKey, NewCallback
from dialback.callbacks.repository import KeyedCallback
from dialback.callbacks.schemas import CreateCallback
from dialback.callbacks.story import CreateStory, create_story
from dialback.kit.context import bind, current_corr_id, stored_corr_id
from dialback.kit.errors import BadRequest, Conflict, Forbidden, NotFound, TooManyRequests
from dialback.kit.names import is_id
from dialback.kit.phone import normalise_number
from dialback.kit.timefmt import iso, utc_iso
from dialback.observability.events import Events
from dialback.routing.cancels import announce_cancel
from dialback.routing.transport import RoutingTransport
from dialback.services import repository as services_repo
from dialback.services.calendar import Slot
from dialback.services.repository import ServiceCache, ServiceRecord
from dialback.settings import Settings
from dialback.tenants import repository as tenants_repo
from dialback.tenants.repository import Tenant
from dialback.throttle.counters import Counters

log = logging.getLogger("dialback.callbacks")
PROPOSED_SLOTS = 5


@dataclass(frozen=True, slots=True)
class CallbackStatus:
    """One callback as its tenant sees it: the row, and while it is dispatched its position
    in the queue and estimated wait (None before and after)."""

    row: Any
    position: int | None = None
    wait: int | None = None


@dataclass(frozen=True, slots=True)
class FreeSlot:
    """A bookable slot: its start, places left and places in all (None: no limit)."""

    start: float
    free: int | None
    total: int | None


@dataclass(frozen=True, slots=True)
class Availability:
    """The bookable slots of a service in a range, shown in ``timezone``."""

    slots: list[FreeSlot]
    slot_minutes: int
    timezone: str


# The EWT result codes of GES's EstimatedWaitTime model.
EWT_VALID = 0
EWT_NO_HISTORY = -1  # no interactions yet (or an unknown queue): the wait is unknown
EWT_NO_AGENTS = -2  # nobody is logged in: no routing-engine consumer is alive


@dataclass(frozen=True, slots=True)
class WaitEstimate:
    """An estimated wait in seconds (-1 when unknown) and why (an ``EWT_*`` code)."""

    seconds: int
    result_code: int


@dataclass(frozen=True, slots=True)
class QueueStatus:
    """Whether to offer immediate and scheduled callbacks now, with the EWT (-1: unknown)."""

    ewt: int
    offer_immediate: bool
    offer_scheduled: bool


@dataclass(frozen=True, slots=True)
class CallbackDetail:
    """One callback for the admin API: the row, its tenant's name, its history and what
    operators did to it (audit entries)."""

    row: repo.Shown
    tenant_name: str | None
    history: list[Any]
    audit: list[Any] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class CorrEvents:
    """The state changes one corrId made (at most ``limit``; ``more``: others not shown), and
    their callbacks' tenant names."""

    rows: list[Any]
    tenant_names: dict[str, str]
    limit: int
    more: bool


@dataclass(frozen=True, slots=True)
class CallbackPage:
    """A page of the admin search, the tenants' names and the total count (``total_exact``
    False: more than ``total`` match, which is ``repository.COUNT_CAP``)."""

    rows: list[Any]
    tenant_names: dict[str, str]
    total: int
    total_exact: bool = True


_day_label: tuple[int, str] = (-1, "")


def _utc_day(now: float) -> str:
    """YYYYMMDD of ``now`` in UTC (formatted once a day)."""
    global _day_label
    day = int(now // 86400)
    if _day_label[0] != day:
        _day_label = (day, datetime.fromtimestamp(day * 86400, UTC).strftime("%Y%m%d"))
    return _day_label[1]


def throttle_keys(tenant: Tenant, phone: str, now: float) -> list[tuple[str, int]]:
    """The counters a booking increments: the tenant's window and the number's day."""
    throttle = tenant.settings.get("throttle", {})
    window = int(throttle.get("windowSeconds", 60))
    digest = hashlib.sha1(f"{tenant.id}:{phone}".encode()).hexdigest()[:20]
    return [
        (f"ten:{tenant.id}:{int(now // window)}", window),
        (f"num:{digest}:{_utc_day(now)}", 2 * 86400),
    ]


STATES: tuple[str, ...] = get_args(lifecycle.StateName)
"""The five callback states, in their order."""
BULK_CANCEL_MAX = 250
"""At most this many callbacks in one bulk cancel (the UI's page size)."""
EXPORT_BATCH = 2000
"""Rows per read of the CSV export: 1,000 spent a third of the time per batch; 5,000 grew the
server's peak RSS by ~18 MiB (bench/export.py)."""
NOT_FOUND_REASON = "not found (or not in your tenants)"


def _bulk_ids(ids: Sequence[str]) -> list[str]:
    """The distinct ids a bulk cancel is asked, in order; 400 for none or too many."""
    wanted = list(dict.fromkeys(i.strip() for i in ids if i.strip()))
    if not wanted:
        raise BadRequest("ids: select at least one callback")
    if len(wanted) > BULK_CANCEL_MAX:
        raise BadRequest(
            f"ids: at most {BULK_CANCEL_MAX} callbacks at a time ({len(wanted)} given)"
        )
    return wanted


@dataclass(frozen=True, slots=True)
class BulkRefusal:
    """A callback a bulk cancel did not cancel: its state when known and why."""

    id: str
    state: str | None
    reason: str


@dataclass(frozen=True, slots=True)
class BulkCancelResult:
    """What a bulk cancel did: the ids cancelled and those refused, in the order asked."""

    cancelled: list[str]
    refused: list[BulkRefusal]

    @property
    def missing(self) -> int:
        """How many of the ids asked name no callback (within the operator's tenants)."""
        return sum(1 for r in self.refused if r.state is None)


@dataclass(frozen=True, slots=True)
class BulkCancelPreview:
    """What a bulk cancel would be asked: the callbacks found (soonest due first), their tenants'
    names, and how many ids name none."""

    rows: list[Any]
    tenant_names: dict[str, str]
    missing: int


@dataclass(frozen=True, slots=True)
class FilterChoices:
    """What the callback list's filters offer: tenant names and service names."""

    tenants: list[str]
    services: list[str]


@dataclass(frozen=True, slots=True)
class ExportBatch:
    """Some of one tenant's callbacks of an export (rows without userData)."""

    tenant: str
    rows: list[Any]


@dataclass(frozen=True)
class _AnyNumber:
    """A number search reads a number as a booking does, but refuses none by the service's
    rules (a refused number can never be stored, so it simply finds nothing)."""

    default_country: str
    allowed_countries: Sequence[str] | None = None
    allow_premium: bool = True
    blocked_patterns: Sequence[str] = ()


class CallbackService:
    """The callback use cases of the public and admin APIs."""

    def __init__(
        self,
        engine: AsyncEngine,
        store: CallbackStore,
        counters: Counters,
        service_cache: ServiceCache,
        transport: RoutingTransport,
        events: Events,
        settings: Settings,
        wake_monitor: Callable[[], None],
    ) -> None:
        self.engine = engine
        self.store = store
        self.counters = counters
        self.service_cache = service_cache
        self.transport = transport
        self.events = events
        self.settings = settings
        self.wake_monitor = wake_monitor
        self._in_flight: dict[tuple[str, str], asyncio.Future[None]] = {}

    async def require_service(
        self, tenant: Tenant, name: str, *, field: str | None = None
    ) -> ServiceRecord:
        """The tenant's service; 400 naming the body field, or 404 for a path parameter."""
        svc = await self.service_cache.get(tenant.id, name)
        if svc is None:
            if field:
                raise BadRequest(f"{field}: no service named {name!r}")
            raise NotFound(f"no service named {name!r}")
        return svc

    async def _release(self, keys: list[tuple[str, int]]) -> None:
        for key, _ttl in keys:
            await self.counters.decr(key)

    async def create(
        self,
        tenant: Tenant,
        req: CreateCallback,
        idempotency_key: str | None = None,
        *,
        source: str = "api",
    ) -> str:
        """Book a callback; returns its id once the row is committed (``source``, "api" or
        "admin", and the request's corrId go to its history).

        With an ``idempotency_key`` the tenant already booked with (within the window), the
        callback it booked, without booking again; 409 when that request asked otherwise.
        """
        story = create_story()
        story.accepted(req)
        if idempotency_key is None:
            return await self._book(tenant, req, story, None, source)
        idem = IdempotencyKey(
            idempotency_key,
            req.fingerprint(),
            time.time() + self.settings.idempotency_window_seconds,
        )
        # One create per key at a time in this replica: a retry sent while the first is still
        # booking waits for it and answers its id (rather than count against the throttles).
        # Across replicas the store's transaction decides (``duplicate``).
        flight = (tenant.id, idempotency_key)
        while (pending := self._in_flight.get(flight)) is not None:
            await asyncio.wait([pending])
        done = asyncio.get_running_loop().create_future()
        self._in_flight[flight] = done
        try:
            found = await self.store.find_key(tenant.id, idempotency_key, time.time())
            if found is not None:
                return self._replay(tenant, idem, found)
            return await self._book(tenant, req, story, idem, source)
        finally:
            del self._in_flight[flight]
            done.set_result(None)

    async def _book(
        self,
        tenant: Tenant,
        req: CreateCallback,
        story: CreateStory,
        idem: IdempotencyKey | None,
        source: str,
    ) -> str:
        svc = await self.require_service(tenant, req.serviceName, field="serviceName")
        cfg = svc.config
        story.service_resolved(svc.id)
        phone = normalise_number(req.phoneNumber, cfg.validation)
        story.number_valid(phone)
        settings = self.settings
        now = time.time()
        desired = req.desiredTime.timestamp() if req.desiredTime else None
        immediate = desired is None or (
            desired <= now + settings.immediate_window_seconds and not req.alwaysCheckCapacity
        )
        slot: Slot | None = None
        if desired is not None and desired < now - settings.immediate_window_seconds:
            raise BadRequest("desiredTime: is in the past")
        if immediate:
            if not cfg.immediate_enabled:
                raise BadRequest(
                    f"serviceName: service {svc.name!r} does not offer immediate callbacks"
                )
            if not svc.calendar.is_open(now):
                nxt = svc.calendar.next_opening(now)
                hint = f"; it opens at {iso(nxt)}" if nxt else ""
                raise BadRequest(
                    f"serviceName: service {svc.name!r} is closed now{hint}; book a desiredTime"
                )
            due = now
        else:
            assert desired is not None
            if not cfg.scheduled_enabled:
                raise BadRequest(
                    f"desiredTime: service {svc.name!r} does not offer scheduled callbacks"
                )
            if desired > now + settings.booking_horizon_days * 86400:
                raise BadRequest(
                    f"desiredTime: is more than {settings.booking_horizon_days} days ahead"
                )
            slot = open_slot(svc, max(desired, now), desired)
            due = desired
        story.scheduled(immediate, due, slot)

        keys = throttle_keys(tenant, phone, now)
        tenant_count, day_count = await self.counters.incr_many(keys)
        story.counters_read(tenant_count, day_count)
        limit = int(tenant.settings.get("throttle", {}).get("maxCallbacks", 500))
        if tenant_count > limit:
            await self._release(keys)
            self.events.tenant_throttled(tenant)
            raise TooManyRequests(
                f"tenant {tenant.name!r} has reached its limit of {limit} callbacks per window"
            )
        if day_count > cfg.throttle.max_per_number_per_day:
            await self._release(keys)
            self.events.number_throttled(tenant)
            raise TooManyRequests(
                "phoneNumber: reached the limit of "
                f"{cfg.throttle.max_per_number_per_day} callbacks per day"
            )

        cid = str(uuid.uuid4())
        max_open = cfg.throttle.max_open_per_number
        limit_slot = slot if slot is not None and slot.total is not None else None
        try:
            booking = await self.store.book(
                NewCallback(
                    id=cid,
                    tenant_id=tenant.id,
                    service_id=svc.id,
                    service_name=svc.name,
                    phone_number=phone,
                    offer_type=req.stored_offer_type(),
                    desired_time=desired,
                    due_at=due,
                    priority=req.priority,
                    language=req.language,
                    max_attempts=cfg.retry.max_attempts,
                    created_at=now,
                    user_data=req.userData,
                    params=req.extra_params(),
                    source=source,
                    corr_id=current_corr_id(),
                ),
                max_open=max_open,
                slot_start=limit_slot.start if limit_slot else None,
                slot_total=limit_slot.total if limit_slot else None,
                idem=idem,
            )
            if booking.outcome == "duplicate":
                # The same key booked concurrently: that booking's answer, uncounted.
                assert idem is not None and booking.existing is not None
                existing = self._replay(tenant, idem, booking.existing)
                await self._release(keys)
                return existing
            story.open_counted(booking.open_count, max_open)
            if booking.outcome == "open_limit":
                self.events.number_throttled(tenant)
                raise TooManyRequests(
                    f"phoneNumber: already has {booking.open_count} open callbacks "
                    f"(limit {max_open})"
                )
            if booking.outcome == "full":
                assert limit_slot is not None
                async with self.engine.connect() as conn:
                    proposals = await propose_slots(conn, svc, limit_slot.end, now)
                raise TooManyRequests(
                    f"desiredTime: the slot starting {iso(limit_slot.start)} is full",
                    data={"slots": proposals},
                )
            story.capacity_checked(slot, limit_slot is not None)
        except BaseException:
            await self._release(keys)
            raise
        bind(callbackId=cid)
        story.stored()
        self.events.callback_created(tenant, svc.name, immediate)
        if immediate:
            self.wake_monitor()
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "callback booked",
                extra={"service": svc.name, "immediate": immediate, "dueTime": iso(due)},
            )
        return cid

    def _replay(self, tenant: Tenant, idem: IdempotencyKey, found: KeyedCallback) -> str:
        """The callback an Idempotency-Key booked, for a retry asking the same; else 409."""
        if found.request_hash != idem.request_hash:
            raise Conflict(
                "Idempotency-Key: already used for a different request; "
                "send a new key for a new callback"
            )
        bind(callbackId=found.callback_id)
        self.events.idempotent_replay(tenant)
        return found.callback_id

    async def cancel(self, tenant: Tenant, callback_id: str) -> str:
        """Public cancel of a callback no agent handles yet; 400 once an agent has it.

        GES documents only 400 and 404 for cancel (its clients model no 409), see docs/api.md.
        """
        try:
            return await self._cancel(tenant, callback_id, source="api")
        except Conflict as exc:
            raise BadRequest(exc.message) from None

    async def _cancel(self, tenant: Tenant, callback_id: str, *, source: str) -> str:
        """Cancel a callback no agent handles yet (``source`` goes to its history); 409 when
        it is PROCESSING or COMPLETED."""
        now = time.time()
        async with self.engine.begin() as conn:
            row = await repo.lock_callback(conn, tenant.id, callback_id)
            if row is None:
                raise NotFound(f"no callback with id {callback_id!r}")
            t = lifecycle.cancel(row, now, source)
            await repo.apply(conn, row, t)
        if t.notify_routing:
            await announce_cancel(self.transport, self.events, row.id, row.attempt)
        return callback_id

    async def retrieve(self, tenant: Tenant, callback_id: str) -> CallbackStatus:
        """One of the tenant's callbacks, with its position and EWT while dispatched."""
        async with self.engine.connect() as conn:
            row = await repo.get_callback(conn, tenant.id, callback_id)
            if row is None:
                raise NotFound(f"no callback with id {callback_id!r}")
            if row.state not in ("QUEUED", "ROUTING", "PROCESSING"):
                return CallbackStatus(row)
            pos = await repo.position_in_queue(conn, row) if row.state == "QUEUED" else 0
            svc = await self.service_cache.get(tenant.id, row.service_name)
            wait = await self._estimate(conn, svc, "mode1", position=pos) if svc and pos else 0
        return CallbackStatus(row, pos, wait)

    async def _estimate(
        self, conn: AsyncConnection, svc: ServiceRecord, mode: str, position: int | None = None
    ) -> int:
        """Estimated wait in seconds for a new (or the given-position) callback; -1 when unknown."""
        return (await self.wait_estimate(conn, svc, mode, position)).seconds

    async def wait_estimate(
        self, conn: AsyncConnection, svc: ServiceRecord, mode: str, position: int | None = None
    ) -> WaitEstimate:
        """The wait for a new (or the given-position) callback of ``svc`` and its result code.

        mode1: backlog / throughput of the last 32 routed completions.
        mode2: as mode1, but -1 (no agents) while no routing-engine consumer is active.
        mode3: mean queued->routed wait of the last 32 routed callbacks.
        """
        unknown = WaitEstimate(-1, EWT_NO_HISTORY)
        comps = await repo.recent_completions(conn, svc.id, 32)
        if mode == "mode3":
            waits = [r.routed_at - r.queued_at for r in comps if r.queued_at and r.routed_at]
            return WaitEstimate(round(sum(waits) / len(waits)), EWT_VALID) if waits else unknown
        if mode == "mode2" and await self.transport.active_consumers() == 0:
            return WaitEstimate(-1, EWT_NO_AGENTS)
        if len(comps) < 2:
            return unknown
        span = comps[0].completed_at - comps[-1].completed_at
        if span <= 0:
            return WaitEstimate(0, EWT_VALID)
        rate = (len(comps) - 1) / span
        ahead = position if position is not None else await repo.queued_count(conn, svc.id) + 1
        return WaitEstimate(round(ahead / rate), EWT_VALID)

    async def availability(
        self,
        tenant: Tenant,
        service_name: str,
        *,
        start: float | None,
        end: float | None,
        number_of_days: int | None,
        timezone: str,
        max_slots: int | None,
        report_busy: bool,
    ) -> Availability:
        """Slots of the service where scheduled callbacks can be booked."""
        svc = await self.require_service(tenant, service_name)
        cfg = svc.config
        now = time.time()
        start = now if start is None else start
        if end is None:
            end = start + (number_of_days or 1) * 86400
        if end <= start:
            raise BadRequest("end: must be after start")
        if end - start > 31 * 86400:
            raise BadRequest("end: the range may span at most 31 days")
        async with self.engine.connect() as conn:
            usage = await repo.slot_usage(conn, svc.id, start - 3600, end)
        slots = []
        horizon = now + self.settings.booking_horizon_days * 86400
        # A slot is offered only when booking its start books a scheduled callback into it:
        # one under way (or starting within the immediate window) would be refused as "in
        # the past" or booked as an immediate callback instead. An immediate callback (no
        # desiredTime) is the way to be called back now.
        bookable_from = now + self.settings.immediate_window_seconds
        for s in svc.calendar.iter_slots(start, end):
            if s.start < bookable_from:
                continue
            if s.start > horizon:  # create would refuse it
                break
            free = None if s.total is None else max(0, s.total - usage.get(s.start, 0))
            if free == 0 and not report_busy:
                continue
            slots.append(FreeSlot(s.start, free, s.total))
            if max_slots is not None and len(slots) >= max_slots:
                break
        return Availability(slots, cfg.capacity.slot_minutes, timezone)

    async def open_for(self, tenant: Tenant, service_name: str, start: float | None) -> int:
        """Seconds until the service closes, 0 when closed."""
        svc = await self.require_service(tenant, service_name)
        t = time.time() if start is None else start
        return int(svc.calendar.open_for(t))

    async def queue_status(self, tenant: Tenant, queue: str) -> QueueStatus:
        """Whether immediate and scheduled callbacks should be offered now, with the EWT."""
        svc = await self.require_service(tenant, queue)
        cfg = svc.config
        now = time.time()
        async with self.engine.connect() as conn:
            ewt = await self._estimate(conn, svc, "mode2")
        remaining = svc.calendar.open_for(now)
        offer_now = cfg.immediate_enabled and remaining > 0 and (ewt < 0 or ewt < remaining)
        if ewt < 0 and await self.transport.active_consumers() == 0:
            offer_now = False
        # A service that never opens within the booking horizon has no slot to offer.
        horizon = self.settings.booking_horizon_days
        offer_scheduled = (
            cfg.scheduled_enabled and svc.calendar.next_opening(now, horizon) is not None
        )
        return QueueStatus(ewt, offer_now, offer_scheduled)

    async def estimated_wait_times(
        self, tenant: Tenant, queues: list[str], mode: str
    ) -> list[tuple[str, WaitEstimate | None]]:
        """(name, estimate) for each named virtual queue; None for a queue that does not exist."""
        out: list[tuple[str, WaitEstimate | None]] = []
        async with self.engine.connect() as conn:
            for name in queues:
                svc = await self.service_cache.get(tenant.id, name)
                found = None if svc is None else await self.wait_estimate(conn, svc, mode)
                out.append((name, found))
        return out

    async def search(
        self,
        tenant: str | None,
        where: repo.CallbackFilter,
        *,
        limit: int,
        offset: int,
        scope: frozenset[str] | None = None,
        sort: str = "-createdTime",
    ) -> CallbackPage:
        """Admin: callbacks of every tenant (or of ``tenant``, by name) matching ``where``, in the
        ``sort`` order (``repository.SORTS``; default newest first), paged; ``scope``: the tenant
        names the caller may see (None: all)."""
        async with self.engine.connect() as conn:
            where = await self._resolve(conn, tenant, where, scope)
            rows, total = await repo.search_callbacks(
                conn, where, limit=limit, offset=offset, sort=sort
            )
            names = await tenants_repo.tenant_names(conn, {r.tenant_id for r in rows})
        if total > repo.COUNT_CAP:
            return CallbackPage(rows, names, repo.COUNT_CAP, total_exact=False)
        return CallbackPage(rows, names, total)

    async def detail(self, callback_id: str, scope: frozenset[str] | None = None) -> CallbackDetail:
        """Admin: a callback with its user data and history, or 404 (also when its tenant is
        outside ``scope``)."""
        async with self.engine.connect() as conn:
            return await self._detail(conn, callback_id, scope)

    async def _detail(
        self, conn: AsyncConnection, callback_id: str, scope: frozenset[str] | None = None
    ) -> CallbackDetail:
        row = await repo.show_callback(conn, callback_id) if is_id(callback_id) else None
        if row is None:
            raise NotFound(f"no callback with id {callback_id!r}")
        names = await tenants_repo.tenant_names(conn, {row.tenant_id})
        _check_scope(scope, names.get(row.tenant_id), callback_id)
        history = await repo.callback_history(conn, row.id)
        audit = await audit_repo.for_callback(conn, row.id)
        return CallbackDetail(row, names.get(row.tenant_id), history, audit)

    async def events_with_corr_id(
        self, corr_id: str, scope: frozenset[str] | None = None, *, limit: int = 100
    ) -> CorrEvents:
        """The state changes made by the request or monitor step ``corr_id`` (cut as stored),
        oldest first, of the tenants within ``scope`` only."""
        async with self.engine.connect() as conn:
            ids = None if scope is None else sorted(await tenants_repo.tenant_ids(conn, scope))
            rows = await repo.events_by_corr_id(conn, stored_corr_id(corr_id) or "", ids, limit + 1)
            names = await tenants_repo.tenant_names(conn, {r.tenant_id for r in rows})
        return CorrEvents(rows[:limit], names, limit, len(rows) > limit)

    async def tenant_name_of(self, callback_id: str) -> str | None:
        """The name of the tenant a callback belongs to (None: no such callback)."""
        async with self.engine.connect() as conn:
            row = await repo.find_callback(conn, callback_id) if is_id(callback_id) else None
            if row is None:
                return None
            return (await tenants_repo.tenant_names(conn, {row.tenant_id})).get(row.tenant_id)

    async def admin_cancel(
        self, callback_id: str, scope: frozenset[str] | None = None
    ) -> CallbackDetail:
        """Admin: cancel a callback (of a tenant within ``scope``) no agent handles yet; its
        detail after."""
        async with self.engine.connect() as conn:
            row = await repo.find_callback(conn, callback_id) if is_id(callback_id) else None
            tenant = await tenants_repo.get_tenant(conn, row.tenant_id) if row is not None else None
        if row is None or tenant is None:
            raise NotFound(f"no callback with id {callback_id!r}")
        _check_scope(scope, tenant.name, callback_id)
        await self._cancel(tenant, callback_id, source="admin")
        return await self.detail(callback_id)

    async def reschedule(
        self, callback_id: str, desired: float, scope: frozenset[str] | None = None
    ) -> CallbackDetail:
        """Admin: move a SCHEDULED callback (of a tenant within ``scope``) to a time that is
        open and has capacity."""
        now = time.time()
        if desired <= now:
            raise BadRequest("desiredTime: must be in the future")
        horizon = self.settings.booking_horizon_days
        if desired > now + horizon * 86400:
            raise BadRequest(f"desiredTime: is more than {horizon} days ahead")
        async with self.engine.begin() as conn:
            row = (
                await repo.find_callback(conn, callback_id, lock=True)
                if is_id(callback_id)
                else None
            )
            if row is None:
                raise NotFound(f"no callback with id {callback_id!r}")
            if scope is not None:
                names = await tenants_repo.tenant_names(conn, {row.tenant_id})
                _check_scope(scope, names.get(row.tenant_id), callback_id)
            lifecycle.check_reschedule(row, now)
            svc = await self.service_cache.get(row.tenant_id, row.service_name)
            if svc is None or svc.id != row.service_id:
                raise Conflict(f"the callback's service {row.service_name!r} no longer exists")
            slot = open_slot(svc, desired, desired)
            slot_start = None
            if slot.total is not None:
                slot_start = slot.start
                moved = row.slot_start != slot.start
                if moved and not await repo.reserve_capacity(conn, svc.id, slot.start, slot.total):
                    proposals = await propose_slots(conn, svc, slot.end, now)
                    raise TooManyRequests(
                        f"desiredTime: the slot starting {iso(slot.start)} is full",
                        data={"slots": proposals},
                    )
            await repo.apply(conn, row, lifecycle.reschedule(row, desired, slot_start, now))
            return await self._detail(conn, callback_id)

    # The Callback UI's use cases (issue #13): a callback's page, its reschedule picker, a
    # recreate, and the create form's tenant, number check and slots.

    async def tenant_in_scope(self, name: str, scope: frozenset[str] | None = None) -> Tenant:
        """The tenant named ``name`` when the caller's ``scope`` holds it; 400 naming the
        ``tenant`` field otherwise (an unknown tenant and one outside the scope alike)."""
        if scope is None or name in scope:
            async with self.engine.connect() as conn:
                found = await tenants_repo.get_tenant_by_name(conn, name)
            if found is not None:
                return found
        raise BadRequest(f"tenant: no tenant named {name!r} in your tenants")

    async def check_number(self, tenant: Tenant, service_name: str, phone: str) -> str:
        """The E.164 form of ``phone`` under the service's number rules (the ones create
        applies); 400 naming ``serviceName`` or ``phoneNumber`` and why."""
        svc = await self.require_service(tenant, service_name, field="serviceName")
        return normalise_number(phone, svc.config.validation)

    async def slots(
        self, tenant: Tenant, service_name: str, *, days: int = 3, max_slots: int = 500
    ) -> Availability:
        """The service's slots of the next ``days`` days, free AND full (``free == 0``)."""
        return await self.availability(
            tenant,
            service_name,
            start=None,
            end=None,
            number_of_days=days,
            timezone="UTC",
            max_slots=max_slots,
            report_busy=True,
        )

    async def reschedule_slots(
        self, callback_id: str, scope: frozenset[str] | None = None, *, days: int = 3
    ) -> tuple[CallbackDetail, Availability]:
        """A callback (404 outside ``scope``) and its service's slots, free and full."""
        detail = await self.detail(callback_id, scope)
        async with self.engine.connect() as conn:
            tenant = await tenants_repo.get_tenant(conn, detail.row.tenant_id)
        if tenant is None:
            raise NotFound(f"no callback with id {callback_id!r}")
        return detail, await self.slots(tenant, detail.row.service_name, days=days)

    async def live_status(self, detail: CallbackDetail) -> CallbackStatus:
        """A callback's position in queue and EWT as retrieve answers them (None when it is
        not dispatched), for a detail already read within the caller's scope."""
        if detail.row.state not in ("QUEUED", "ROUTING", "PROCESSING"):
            return CallbackStatus(detail.row)
        async with self.engine.connect() as conn:
            tenant = await tenants_repo.get_tenant(conn, detail.row.tenant_id)
        if tenant is None:
            return CallbackStatus(detail.row)
        return await self.retrieve(tenant, detail.row.id)

    async def recreate(
        self,
        callback_id: str,
        scope: frozenset[str] | None = None,
        *,
        desired: float | None = None,
    ) -> str:
        """A new callback from this one's data (service, number, language, priority, userData,
        GES parameters), immediate or at ``desired``, booked through ``create`` (the same
        rules, throttles and capacity); the new id."""
        detail = await self.detail(callback_id, scope)
        row = detail.row
        async with self.engine.connect() as conn:
            tenant = await tenants_repo.get_tenant(conn, row.tenant_id)
        if tenant is None:
            raise NotFound(f"no callback with id {callback_id!r}")
        if row.unreadable:
            raise Conflict("the callback's stored data cannot be read; create a new one instead")
        body: dict[str, Any] = {
            **{k: v for k, v in row.params.items() if k != "pushTargets"},
            "serviceName": row.service_name,
            "phoneNumber": row.phone_number,
            "language": row.language,
            "priority": row.priority,
            "userData": row.user_data or {},
        }
        if row.params.get("pushTargets"):
            body["pushTargets"] = row.params["pushTargets"]
        if desired is not None:
            body["desiredTime"] = datetime.fromtimestamp(desired, UTC)
        try:
            req = CreateCallback.model_validate(body)
        except ValidationError as exc:  # a row stored under older rules
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "callback"
            raise Conflict(f"{where}: the stored value is refused today ({first['msg']})") from None
        return await self.create(tenant, req, source="admin")

    # The Callback UI's list: filters, counts per state, bulk cancel, export.

    async def _resolve(
        self,
        conn: AsyncConnection,
        tenant: str | None,
        where: repo.CallbackFilter,
        scope: frozenset[str] | None,
    ) -> repo.CallbackFilter:
        """``where`` narrowed to ``tenant`` (by name) or to the tenants of ``scope``, its number
        read into the E.164 forms to match; 403 for a tenant outside the scope."""
        if scope is not None and tenant is not None and tenant not in scope:
            raise Forbidden(f"tenant {tenant!r} is outside your scope")
        if tenant is not None:
            tenant_id = (await tenants_repo.tenant_named(conn, tenant)).id
            where = dataclasses.replace(where, tenant_id=tenant_id)
        elif scope is not None:
            ids = await tenants_repo.tenant_ids(conn, scope)
            where = dataclasses.replace(where, tenant_ids=tuple(sorted(ids)))
        raw = (where.phone_number or "").strip()
        if raw:
            where = dataclasses.replace(where, phone_numbers=await self._numbers(conn, where, raw))
        return where

    async def _numbers(
        self, conn: AsyncConnection, where: repo.CallbackFilter, raw: str
    ) -> tuple[str, ...]:
        """Every E.164 form ``raw`` takes as a booking reads it: under the default country of
        each service the filter covers; 400 naming ``phoneNumber`` when it is none."""
        tenant_ids = (where.tenant_id,) if where.tenant_id else where.tenant_ids
        countries = await services_repo.default_countries(conn, tenant_ids, where.service_name)
        forms: dict[str, None] = {}
        error: BadRequest | None = None
        for cc in countries or ["US"]:
            try:
                forms[normalise_number(raw[:64], _AnyNumber(cc))] = None
            except BadRequest as exc:
                error = exc
        if not forms:
            assert error is not None
            raise error
        return tuple(forms)

    async def filter_choices(self, scope: frozenset[str] | None = None) -> FilterChoices:
        """The tenants (names) within ``scope`` and the names of their services, sorted: what
        the list's filters offer."""
        async with self.engine.connect() as conn:
            records = await tenants_repo.list_tenants(conn)
            seen = [t for t in records if scope is None or t.name in scope]
            ids = None if scope is None else tuple(t.id for t in seen)
            names = await services_repo.service_names(conn, ids)
        return FilterChoices(sorted(t.name for t in seen), names)

    async def count_by_state(
        self,
        tenant: str | None,
        where: repo.CallbackFilter,
        *,
        scope: frozenset[str] | None = None,
    ) -> dict[str, int]:
        """How many callbacks match ``where`` (as ``search`` reads it) in each of the five
        states, counted in the store up to ``repository.COUNT_CAP + 1`` (more than the cap)."""
        async with self.engine.connect() as conn:
            where = await self._resolve(conn, tenant, where, scope)
            return await repo.count_matching_by_state(conn, where, STATES)

    async def bulk_cancel(
        self, ids: Sequence[str], scope: frozenset[str] | None = None
    ) -> BulkCancelResult:
        """Admin: cancel each callback (of a tenant within ``scope``) no agent handles yet, each
        in its own transaction; the others refused with the reason. 400 for none or more than
        ``BULK_CANCEL_MAX``."""
        wanted = _bulk_ids(ids)
        tenants: dict[str, Tenant | None] = {}
        cancelled: list[str] = []
        refused: list[BulkRefusal] = []
        for cid in wanted:
            async with self.engine.connect() as conn:
                row = await repo.find_callback(conn, cid) if is_id(cid) else None
                if row is not None and row.tenant_id not in tenants:
                    tenants[row.tenant_id] = await tenants_repo.get_tenant(conn, row.tenant_id)
            tenant = tenants.get(row.tenant_id) if row is not None else None
            if row is None or tenant is None or (scope is not None and tenant.name not in scope):
                refused.append(BulkRefusal(cid, None, NOT_FOUND_REASON))
                continue
            try:
                await self._cancel(tenant, cid, source="admin")
            except NotFound:
                refused.append(BulkRefusal(cid, None, NOT_FOUND_REASON))
            except Conflict as exc:
                refused.append(BulkRefusal(cid, row.state, exc.message))
            else:
                cancelled.append(cid)
        return BulkCancelResult(cancelled, refused)

    async def bulk_cancel_preview(
        self, ids: Sequence[str], scope: frozenset[str] | None = None
    ) -> BulkCancelPreview:
        """Admin: the callbacks (of a tenant within ``scope``) a bulk cancel of ``ids`` would be
        asked about, changing nothing; 400 as the bulk cancel."""
        asked = _bulk_ids(ids)
        wanted = [i for i in asked if is_id(i)]
        async with self.engine.connect() as conn:
            rows = await repo.callbacks_by_ids(conn, wanted) if wanted else []
            names = await tenants_repo.tenant_names(conn, {r.tenant_id for r in rows})
        rows = [
            r
            for r in rows
            if r.tenant_id in names and (scope is None or names[r.tenant_id] in scope)
        ]
        return BulkCancelPreview(rows, names, len(asked) - len(rows))

    async def export(
        self,
        tenant: str | None,
        where: repo.CallbackFilter,
        *,
        scope: frozenset[str] | None = None,
        batch: int = EXPORT_BATCH,
    ) -> AsyncIterator[ExportBatch]:
        """Admin: every callback matching ``where`` (as ``search`` reads it), tenant by tenant
        (by name), oldest created first, in batches read by keyset on (created_at, id): never
        the whole set in memory. The filter and scope are checked before this returns."""
        async with self.engine.connect() as conn:
            where = await self._resolve(conn, tenant, where, scope)
            if where.tenant_id is not None:
                ids: set[str] | tuple[str, ...] = (where.tenant_id,)
            elif where.tenant_ids is not None:
                ids = where.tenant_ids
            else:
                ids = {t.id for t in await tenants_repo.list_tenants(conn)}
            names = await tenants_repo.tenant_names(conn, set(ids))
        order = sorted(names.items(), key=lambda item: (item[1], item[0]))
        return self._export_batches(where, order, batch)

    async def _export_batches(
        self, where: repo.CallbackFilter, tenants: list[tuple[str, str]], batch: int
    ) -> AsyncIterator[ExportBatch]:
        for tenant_id, name in tenants:
            after: tuple[float, str] | None = None
            while True:
                # A connection per batch: a slow download never holds one from the pool.
                async with self.engine.connect() as conn:
                    rows = await repo.export_batch(conn, where, tenant_id, after, batch)
                if rows:
                    yield ExportBatch(name, rows)
                if len(rows) < batch:
                    break
                after = (rows[-1].created_at, rows[-1].id)


def _check_scope(scope: frozenset[str] | None, tenant: str | None, callback_id: str) -> None:
    # 404, not 403: an operator scoped to some tenants learns nothing of the others' callbacks.
    if scope is not None and (tenant is None or tenant not in scope):
        raise NotFound(f"no callback with id {callback_id!r} in your tenants")


def open_slot(svc: ServiceRecord, at: float, desired: float) -> Slot:
    """The slot instant ``at`` falls in; 400 naming the opening after ``desired`` when closed."""
    slot = svc.calendar.slot_for(at)
    if slot is None:
        nxt = svc.calendar.next_opening(desired)
        hint = f"; the next opening is {iso(nxt)}" if nxt else ""
        raise BadRequest(f"desiredTime: is outside the business hours of {svc.name!r}{hint}")
    return slot


UNLIMITED_CAPACITY = "-1"


async def propose_slots(
    conn: AsyncConnection, svc: ServiceRecord, after: float, now: float
) -> dict[str, str]:
    """Up to PROPOSED_SLOTS free slots from ``after`` (a 429's ``data.slots``): each slot's
    ``utcTime`` -> its remaining capacity as a decimal string ("-1": the slot has no limit).

    GES's SDKs type ``slots`` as HashData, a map of strings to strings.
    """
    start = max(after, now)
    end = start + 14 * 86400
    usage = await repo.slot_usage(conn, svc.id, start - 3600, end)
    out: dict[str, str] = {}
    for s in svc.calendar.iter_slots(start, end):
        if s.start < start:
            continue
        if s.total is None:
            out[utc_iso(s.start)] = UNLIMITED_CAPACITY
        elif (used := usage.get(s.start, 0)) < s.total:
            out[utc_iso(s.start)] = str(s.total - used)
        else:
            continue
        if len(out) >= PROPOSED_SLOTS:
            break
    return out
