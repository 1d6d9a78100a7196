"""Click-To-Call-In use cases: number rotation, access codes, expiry, the dial-in match, groups,
the tenant's per-window limit.

Each ``CallInService`` method owns its transaction.
"""

from __future__ import annotations

import builtins
import math
import secrets
import time
import uuid
from dataclasses import dataclass, replace
from typing import Any

import phonenumbers
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from dialback.callins import repository as repo
from dialback.callins.repository import CallInGroup
from dialback.callins.schemas import CallInGroupConfig, CreateCallIn, MatchIn
from dialback.kit import jsontext
from dialback.kit.errors import BadRequest, Conflict, Forbidden, NotFound, TooManyRequests
from dialback.kit.phone import normalise_number
from dialback.observability.events import Events
from dialback.services.schemas import ValidationRule
from dialback.settings import Settings
from dialback.tenants import repository as tenants_repo
from dialback.tenants.repository import Tenant, get_tenant_by_name
from dialback.throttle.counters import Counters

ROTATION_TTL = 86_400
CODE_ATTEMPTS = 20
MATCH_ATTEMPTS = 3
MAX_CODE_DIGITS = 12


def access_code(length: int) -> str:
    """A random access code of ``length`` digits that does not start with 0."""
    # The SDKs parse the code as a number: a leading zero would be lost on the way to the
    # customer, so codes are drawn from [10^(length-1), 10^length).
    low = 10 ** (length - 1)
    return str(low + secrets.randbelow(9 * low))


def code_spellings(code: str) -> list[str]:
    """Every stored form of ``code``: itself without leading zeros, and with 1 to 12 of them.

    Codes handed out before they were drawn without a leading zero may start with 0, and a
    client that parsed one as a number sends it without; they match until they expire.
    """
    bare = code.lstrip("0") or "0"
    return [bare] + ["0" * k + bare for k in range(1, MAX_CODE_DIGITS - len(bare) + 1)]


def callin_limit(tenant: Tenant, settings: Settings, now: float) -> tuple[int, str, int]:
    """The tenant's call-in limit, its window's counter key and the window in seconds."""
    window = max(1, settings.callin_window_seconds)
    limit = tenant.settings.get("throttle", {}).get("maxCallIns") or settings.callin_max_per_window
    return int(limit), f"cit:{tenant.id}:{int(now // window)}", window


def pick_number(numbers: list[str], counter: int) -> str:
    """Round-robin choice from the pool for the ``counter``-th request (counter starts at 1)."""
    return numbers[(counter - 1) % len(numbers)]


@dataclass(frozen=True)
class CallInRequest:
    """A stored call-in request (``tenant_name`` when it was read with it)."""

    id: str
    tenant_id: str
    group_name: str
    to_phone_number: str
    from_phone_number: str | None
    access_code: str | None
    user_data: dict[str, Any]
    callback_service_id: str | None
    created_at: float
    expires_at: float
    matched_at: float | None
    tenant_name: str | None = None
    # The stored text of ``user_data`` when it cannot be rendered (then ``user_data`` is None).
    user_data_raw: str | None = None

    @classmethod
    def of_row(cls, row: Any, tenant_name: str | None = None) -> CallInRequest:
        """The request of a ``callin_requests`` row."""
        return cls(
            row.id,
            row.tenant_id,
            row.group_name,
            row.to_phone_number,
            row.from_phone_number,
            row.access_code,
            row.user_data,
            row.callback_service_id,
            row.created_at,
            row.expires_at,
            row.matched_at,
            tenant_name,
        )


@dataclass(frozen=True)
class RequestPage:
    """One page of requests, newest first, with the total that match and when it was read."""

    items: list[CallInRequest]
    total: int
    limit: int
    offset: int
    as_of: float


def _region_of(e164: str) -> str:
    region = phonenumbers.region_code_for_number(phonenumbers.parse(e164))
    return region if region in phonenumbers.SUPPORTED_REGIONS else "US"


def _lookup_rule(country: str) -> ValidationRule:
    # Lookups only parse: what was refused at booking can never be stored to match anyway.
    return ValidationRule.model_validate({"defaultCountry": country, "allowPremium": True})


async def _free_code(conn: AsyncConnection, to_number: str, length: int, now: float) -> str:
    # Two open requests with the same code on one number could not be told apart at dial-in.
    for _ in range(CODE_ATTEMPTS):
        code = access_code(length)
        # Also refused: an older code of the same value with leading zeros, since a lookup
        # by number could not tell the two apart.
        if not await repo.code_in_use(conn, to_number, code_spellings(code), now):
            return code
    raise Conflict(
        f"groupName: no free access code on {to_number}; too many open requests for this "
        "number, retry later or lengthen the group's access codes"
    )


async def _tenant(conn: AsyncConnection, name: str, field: str | None = None) -> Tenant:
    tenant = await get_tenant_by_name(conn, name)
    if tenant is None:
        if field:
            raise BadRequest(f"{field}: no tenant named {name!r}")
        raise NotFound(f"no tenant named {name!r}")
    return tenant


def _check_scope(tenant_name: str, scope: frozenset[str] | None) -> None:
    if scope is not None and tenant_name not in scope:
        raise Forbidden(f"tenant {tenant_name!r} is outside your scope")


class CallInService:
    """Call-in requests (create, match, list) and the tenants' call-in groups."""

    def __init__(
        self, engine: AsyncEngine, counters: Counters, events: Events, settings: Settings
    ) -> None:
        self.engine = engine
        self.counters = counters
        self.events = events
        self.settings = settings

    async def create_request(
        self, tenant: Tenant, req: CreateCallIn, now: float | None = None
    ) -> CallInRequest:
        """Hand out a number to dial (and an access code) for the tenant's group.

        The expiry is whole epoch seconds (UTC), as GES returns it; the stored expiry is that
        same instant, so the value the client sees is exactly when matching stops. Over the
        tenant's call-in limit the request is refused with 429 (counted in
        CB_TTL_LIMIT_REACHED: in GES a Click-To-Call-In is a callback type) and not counted.
        """
        async with self.engine.connect() as conn:
            group = await repo.get_group(conn, tenant.id, req.groupName)
        if group is None:
            raise BadRequest(f"groupName: no call-in group named {req.groupName!r}")
        cfg = group.config
        from_number = None
        if req.fromPhoneNumber is not None:
            from_number = normalise_number(req.fromPhoneNumber, cfg.rule(), field="fromPhoneNumber")
        if not cfg.access_code.enabled and from_number is None:
            raise BadRequest(
                f"fromPhoneNumber: required, because call-in group {group.name!r} has no access "
                "codes and matches callers by their number"
            )
        now = time.time() if now is None else now
        limit, window_key, window = callin_limit(tenant, self.settings, now)
        rotation_key = f"cig:{group.id}"
        counter, in_window = await self.counters.incr_many(
            [(rotation_key, ROTATION_TTL), (window_key, window)]
        )
        if in_window > limit:
            await self.counters.decr(window_key)
            await self.counters.decr(rotation_key)
            self.events.tenant_throttled(tenant)
            raise TooManyRequests(
                f"tenant {tenant.name!r} has reached its limit of {limit} call-in requests "
                f"per {window} s window"
            )
        try:
            request = await self._store(tenant, group, req, from_number, counter, now)
        except BaseException:
            await self.counters.decr(window_key)
            raise
        self.events.callin_created(tenant)
        return request

    async def _store(
        self,
        tenant: Tenant,
        group: CallInGroup,
        req: CreateCallIn,
        from_number: str | None,
        counter: int,
        now: float,
    ) -> CallInRequest:
        cfg = group.config
        to_number = pick_number(cfg.numbers, counter)
        created = math.floor(now)
        expires = created + cfg.expiry_seconds
        request = CallInRequest(
            id=str(uuid.uuid4()),
            tenant_id=tenant.id,
            group_name=group.name,
            to_phone_number=to_number,
            from_phone_number=from_number,
            access_code=None,
            user_data=req.userData,
            callback_service_id=req.callbackServiceId,
            created_at=now,
            expires_at=float(expires),
            matched_at=None,
        )
        async with self.engine.begin() as conn:
            if cfg.access_code.enabled:
                code = await _free_code(conn, to_number, cfg.access_code.length, now)
                request = replace(request, access_code=code)
            await repo.insert_request(
                conn,
                {
                    "id": request.id,
                    "tenant_id": tenant.id,
                    "group_id": group.id,
                    "group_name": group.name,
                    "to_phone_number": to_number,
                    "from_phone_number": from_number,
                    "access_code": request.access_code,
                    "user_data": req.userData,
                    "callback_service_id": req.callbackServiceId,
                    "created_at": now,
                    "expires_at": request.expires_at,
                },
            )
        return request

    async def match_request(self, body: MatchIn, now: float | None = None) -> CallInRequest:
        """Claim the newest open request for a dial-in; 404 when nothing matches.

        With ``accessCode`` the request is found by dialled number and code (the caller may ring
        from any phone); without it, only requests of groups without codes match, by caller
        number.
        """
        to_rule = _lookup_rule(body.default_country or "US")
        to_number = normalise_number(body.to_phone_number, to_rule, field="toPhoneNumber")
        from_number = None
        if body.access_code is None:
            if body.from_phone_number is None:
                raise BadRequest("fromPhoneNumber: required when no accessCode is given")
            from_rule = _lookup_rule(body.default_country or _region_of(to_number))
            from_number = normalise_number(
                body.from_phone_number, from_rule, field="fromPhoneNumber"
            )
        for _ in range(MATCH_ATTEMPTS):
            t = time.time() if now is None else now
            async with self.engine.begin() as conn:
                row = await repo.find_open_request(
                    conn,
                    to_number,
                    t,
                    access_codes=code_spellings(body.access_code) if body.access_code else None,
                    from_number=from_number,
                )
                if row is None:
                    break
                if await repo.mark_matched(conn, row.id, t):
                    name = await repo.tenant_name(conn, row.tenant_id)
                    return replace(CallInRequest.of_row(row, name), matched_at=t)
        how = "with that access code" if body.access_code is not None else "from that caller"
        raise NotFound(f"no open call-in request for {to_number} {how}")

    async def put_group(
        self,
        tenant_name: str,
        name: str,
        config: CallInGroupConfig,
        *,
        scope: frozenset[str] | None = None,
        create_only: bool = False,
    ) -> tuple[CallInGroup, bool]:
        """Create or replace a group; returns it and whether it was created; ``create_only``:
        409 when it exists already; ``scope``: the tenants the caller may see (None: all)."""
        _check_scope(tenant_name, scope)
        try:
            async with self.engine.begin() as conn:
                tenant = await _tenant(conn, tenant_name)
                if create_only and await repo.get_group(conn, tenant.id, name) is not None:
                    raise Conflict(
                        f"name: tenant {tenant_name!r} already has a call-in group named {name!r}"
                    )
                created = False
                if not await repo.update_group(conn, tenant.id, name, config):
                    await repo.create_group(conn, tenant.id, name, config)
                    created = True
                group = await repo.get_group(conn, tenant.id, name)
        except IntegrityError:
            raise Conflict(f"call-in group {name!r} was created concurrently; retry") from None
        assert group is not None
        return group, created

    async def get_group(
        self, tenant_name: str, name: str, *, scope: frozenset[str] | None = None
    ) -> CallInGroup:
        """One group of a tenant, or 404."""
        _check_scope(tenant_name, scope)
        async with self.engine.connect() as conn:
            tenant = await _tenant(conn, tenant_name)
            group = await repo.get_group(conn, tenant.id, name)
        if group is None:
            raise NotFound(f"no call-in group named {name!r} for tenant {tenant_name!r}")
        return group

    async def list_groups(self, tenant_name: str) -> builtins.list[CallInGroup]:
        """All groups of a tenant by name."""
        async with self.engine.connect() as conn:
            tenant = await _tenant(conn, tenant_name)
            return await repo.list_groups(conn, tenant.id)

    async def delete_group(
        self, tenant_name: str, name: str, *, scope: frozenset[str] | None = None
    ) -> None:
        """Delete a group; its open requests stay matchable until they expire."""
        _check_scope(tenant_name, scope)
        async with self.engine.begin() as conn:
            tenant = await _tenant(conn, tenant_name)
            if not await repo.delete_group(conn, tenant.id, name):
                raise NotFound(f"no call-in group named {name!r} for tenant {tenant_name!r}")

    async def list_requests(
        self,
        tenant_name: str | None,
        group: str | None,
        limit: int,
        offset: int,
        *,
        scope: frozenset[str] | None = None,
    ) -> RequestPage:
        """Requests newest first, optionally of one tenant and/or group; ``scope``: the tenant
        names the caller may see (None: all)."""
        if tenant_name is not None:
            _check_scope(tenant_name, scope)
        now = time.time()
        async with self.engine.connect() as conn:
            tenant_id = None
            tenant_ids: set[str] | None = None
            if tenant_name is not None:
                tenant_id = (await _tenant(conn, tenant_name, field="tenant")).id
            elif scope is not None:
                tenant_ids = await tenants_repo.tenant_ids(conn, scope)
            rows, total = await repo.list_requests(
                conn,
                tenant_id=tenant_id,
                tenant_ids=tenant_ids,
                group=group,
                limit=limit,
                offset=offset,
            )
        items = []
        for r in rows:
            user_data, raw = jsontext.shown(r.user_data)
            req = CallInRequest.of_row(r, r.tenant_name)
            items.append(replace(req, user_data=user_data, user_data_raw=raw))
        return RequestPage(items, total, limit, offset, now)

    async def groups_by_tenant(
        self, scope: frozenset[str] | None
    ) -> builtins.list[tuple[str, builtins.list[CallInGroup]]]:
        """The call-in groups of every tenant ``scope`` names (None: every tenant), per tenant
        name."""
        async with self.engine.connect() as conn:
            tenants = [
                t for t in await tenants_repo.list_tenants(conn) if scope is None or t.name in scope
            ]
            return [
                (t.name, await repo.list_groups(conn, t.id))
                for t in sorted(tenants, key=lambda t: t.name)
            ]
