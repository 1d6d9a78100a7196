"""Click-To-Call-In rules: number rotation, access codes, expiry and the dial-in match."""

from __future__ import annotations

import math
import secrets
import time
import uuid
from typing import TYPE_CHECKING, Any

import phonenumbers
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from dialback.callins import repository as repo
from dialback.callins.schemas import CallInGroupConfig, CreateCallIn, MatchIn
from dialback.kit.errors import BadRequest, Conflict, NotFound
from dialback.kit.phone import normalise_number
from dialback.kit.timefmt import utc_iso
from dialback.services.schemas import ValidationRule
from dialback.tenants.repository import Tenant, get_tenant_by_name

if TYPE_CHECKING:
    from dialback.container import Container

ROTATION_TTL = 86_400
CODE_ATTEMPTS = 20
MATCH_ATTEMPTS = 3


def access_code(length: int) -> str:
    """A random numeric access code of ``length`` digits (leading zeros allowed)."""
    return "".join(str(secrets.randbelow(10)) for _ in range(length))


def pick_number(numbers: list[str], counter: int) -> str:
    """Round-robin choice from the pool for the ``counter``-th request (counter starts at 1)."""
    return numbers[(counter - 1) % len(numbers)]


def _iso(t: float | None) -> str | None:
    return None if t is None else utc_iso(t)


def request_out(row: Any, now: float, tenant_name: str | None = None) -> dict[str, Any]:
    """A stored request as the admin API shows it."""
    if row.matched_at is not None:
        state = "MATCHED"
    elif row.expires_at <= now:
        state = "EXPIRED"
    else:
        state = "PENDING"
    return {
        "id": row.id,
        "tenant": tenant_name,
        "groupName": row.group_name,
        "toPhoneNumber": row.to_phone_number,
        "fromPhoneNumber": row.from_phone_number,
        "accessCode": row.access_code,
        "userData": row.user_data,
        "callbackServiceId": row.callback_service_id,
        "state": state,
        "createdAt": _iso(row.created_at),
        "expirationTime": int(row.expires_at),
        "matchedAt": _iso(row.matched_at),
    }


def group_out(group: repo.CallInGroup, tenant_name: str) -> dict[str, Any]:
    """A group as the admin API shows it."""
    return {
        "id": group.id,
        "tenant": tenant_name,
        "name": group.name,
        "config": group.config.dump(),
        "createdAt": utc_iso(group.created_at),
        "updatedAt": utc_iso(group.updated_at),
    }


async def create_request(
    rt: Container, tenant: Tenant, req: CreateCallIn, now: float | None = None
) -> dict[str, Any]:
    """Hand out a number to dial (and an access code) for the tenant's group.

    ``expirationTime`` is whole epoch seconds (UTC), as GES returns it; the stored expiry is
    that same instant, so the value the client sees is exactly when matching stops.
    """
    async with rt.engine.connect() as conn:
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
    (counter,) = await rt.counters.incr_many([(f"cig:{group.id}", ROTATION_TTL)])
    to_number = pick_number(cfg.numbers, counter)
    now = time.time() if now is None else now
    created = math.floor(now)
    expires = created + cfg.expiry_seconds
    rid = str(uuid.uuid4())
    async with rt.engine.begin() as conn:
        code = None
        if cfg.access_code.enabled:
            code = await _free_code(conn, to_number, cfg.access_code.length, now)
        await repo.insert_request(
            conn,
            {
                "id": rid,
                "tenant_id": tenant.id,
                "group_id": group.id,
                "group_name": group.name,
                "to_phone_number": to_number,
                "from_phone_number": from_number,
                "access_code": code,
                "user_data": req.userData,
                "callback_service_id": req.callbackServiceId,
                "created_at": now,
                "expires_at": float(expires),
            },
        )
    rt.events.callin_created(tenant)
    return {
        "id": rid,
        "toPhoneNumber": to_number,
        "groupName": group.name,
        "expirationTime": expires,
        "accessCode": code,
        "fromPhoneNumber": from_number,
        "callbackServiceId": req.callbackServiceId,
    }


async def _free_code(conn: AsyncConnection, to_number: str, length: int, now: float) -> str:
    # Two open requests with the same code on one number could not be told apart at dial-in.
    for _ in range(CODE_ATTEMPTS):
        code = access_code(length)
        if not await repo.code_in_use(conn, to_number, code, now):
            return code
    raise Conflict(
        f"groupName: no free access code on {to_number}; too many open requests for this "
        "number, retry later or lengthen the group's access codes"
    )


def _region_of(e164: str) -> str:
    region = phonenumbers.region_code_for_number(phonenumbers.parse(e164))
    return region if region in phonenumbers.SUPPORTED_REGIONS else "US"


def _lookup_rule(country: str) -> ValidationRule:
    # Lookups only parse: what was refused at booking can never be stored to match anyway.
    return ValidationRule.model_validate({"defaultCountry": country, "allowPremium": True})


async def match_request(rt: Container, body: MatchIn, now: float | None = None) -> dict[str, Any]:
    """Claim the newest open request for a dial-in; 404 when nothing matches.

    With ``accessCode`` the request is found by dialled number and code (the caller may ring
    from any phone); without it, only requests of groups without codes match, by caller number.
    """
    to_rule = _lookup_rule(body.default_country or "US")
    to_number = normalise_number(body.to_phone_number, to_rule, field="toPhoneNumber")
    from_number = None
    if body.access_code is None:
        if body.from_phone_number is None:
            raise BadRequest("fromPhoneNumber: required when no accessCode is given")
        from_rule = _lookup_rule(body.default_country or _region_of(to_number))
        from_number = normalise_number(body.from_phone_number, from_rule, field="fromPhoneNumber")
    for _ in range(MATCH_ATTEMPTS):
        t = time.time() if now is None else now
        async with rt.engine.begin() as conn:
            row = await repo.find_open_request(
                conn, to_number, t, access_code=body.access_code, from_number=from_number
            )
            if row is None:
                break
            if await repo.mark_matched(conn, row.id, t):
                name = await repo.tenant_name(conn, row.tenant_id)
                out = request_out(row, t, name)
                out.update(state="MATCHED", matchedAt=_iso(t))
                return out
    how = "with that access code" if body.access_code is not None else "from that caller"
    raise NotFound(f"no open call-in request for {to_number} {how}")


async def _tenant(conn: AsyncConnection, name: str, field: str | None = None) -> Tenant:
    tenant = await get_tenant_by_name(conn, name)
    if tenant is None:
        if field:
            raise BadRequest(f"{field}: no tenant named {name!r}")
        raise NotFound(f"no tenant named {name!r}")
    return tenant


async def put_group(
    rt: Container, tenant_name: str, name: str, config: CallInGroupConfig
) -> tuple[dict[str, Any], bool]:
    """Create or replace a group; returns it and whether it was created."""
    try:
        async with rt.engine.begin() as conn:
            tenant = await _tenant(conn, tenant_name)
            created = False
            if not await repo.update_group(conn, tenant.id, name, config):
                await repo.create_group(conn, tenant.id, name, config)
                created = True
            group = await repo.get_group(conn, tenant.id, name)
    except IntegrityError:
        raise Conflict(f"call-in group {name!r} was created concurrently; retry") from None
    assert group is not None
    return group_out(group, tenant.name), created


async def get_group(rt: Container, tenant_name: str, name: str) -> dict[str, Any]:
    """One group of a tenant, or 404."""
    async with rt.engine.connect() as conn:
        tenant = await _tenant(conn, tenant_name)
        group = await repo.get_group(conn, tenant.id, name)
    if group is None:
        raise NotFound(f"no call-in group named {name!r} for tenant {tenant_name!r}")
    return group_out(group, tenant.name)


async def list_groups(rt: Container, tenant_name: str) -> list[dict[str, Any]]:
    """All groups of a tenant by name."""
    async with rt.engine.connect() as conn:
        tenant = await _tenant(conn, tenant_name)
        groups = await repo.list_groups(conn, tenant.id)
    return [group_out(g, tenant.name) for g in groups]


async def delete_group(rt: Container, tenant_name: str, name: str) -> dict[str, Any]:
    """Delete a group; its open requests stay matchable until they expire."""
    async with rt.engine.begin() as conn:
        tenant = await _tenant(conn, tenant_name)
        if not await repo.delete_group(conn, tenant.id, name):
            raise NotFound(f"no call-in group named {name!r} for tenant {tenant_name!r}")
    return {"name": name, "deleted": True}


async def list_requests(
    rt: Container, tenant_name: str | None, group: str | None, limit: int, offset: int
) -> dict[str, Any]:
    """Requests newest first, optionally of one tenant and/or group."""
    now = time.time()
    async with rt.engine.connect() as conn:
        tenant_id = None
        if tenant_name is not None:
            tenant_id = (await _tenant(conn, tenant_name, field="tenant")).id
        rows, total = await repo.list_requests(
            conn, tenant_id=tenant_id, group=group, limit=limit, offset=offset
        )
    items = [request_out(r, now, r.tenant_name) for r in rows]
    return {"items": items, "total": total, "limit": limit, "offset": offset}
