"""Persistence of call-in groups and call-in requests."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from dialback.callins.schemas import CallInGroupConfig
from dialback.db.named_configs import NamedConfig, NamedConfigs
from dialback.db.schema import callin_groups, callin_requests, tenants

CallInGroup = NamedConfig[CallInGroupConfig]


def _parse_stored(config: Any) -> CallInGroupConfig:
    return CallInGroupConfig.model_validate(config, context={"stored": True})


_groups: NamedConfigs[CallInGroupConfig, CallInGroup] = NamedConfigs(
    callin_groups, _parse_stored, NamedConfig
)
get_group = _groups.get
list_groups = _groups.list
create_group = _groups.create
update_group = _groups.update
delete_group = _groups.delete  # a group's requests are kept as history


async def insert_request(conn: AsyncConnection, values: dict[str, Any]) -> None:
    """Insert a call-in request row."""
    await conn.execute(callin_requests.insert().values(**values))


async def code_in_use(conn: AsyncConnection, to_number: str, codes: list[str], now: float) -> bool:
    """Whether an open (unexpired, unmatched) request already holds this number and one of
    ``codes``."""
    q = (
        sa.select(callin_requests.c.id)
        .where(
            callin_requests.c.to_phone_number == to_number,
            callin_requests.c.access_code.in_(codes),
            callin_requests.c.expires_at > now,
            callin_requests.c.matched_at.is_(None),
        )
        .limit(1)
    )
    return (await conn.execute(q)).first() is not None


async def find_open_request(
    conn: AsyncConnection,
    to_number: str,
    now: float,
    *,
    access_codes: list[str] | None,
    from_number: str | None,
) -> Any | None:
    """The newest open request for the dialled number with one of ``access_codes`` (or,
    without codes, from that caller)."""
    q = sa.select(callin_requests).where(
        callin_requests.c.to_phone_number == to_number,
        callin_requests.c.expires_at > now,
        callin_requests.c.matched_at.is_(None),
    )
    if access_codes is not None:
        q = q.where(callin_requests.c.access_code.in_(access_codes))
    else:
        q = q.where(
            callin_requests.c.access_code.is_(None),
            callin_requests.c.from_phone_number == from_number,
        )
    q = q.order_by(callin_requests.c.created_at.desc(), callin_requests.c.id).limit(1)
    return (await conn.execute(q)).first()


async def mark_matched(conn: AsyncConnection, request_id: str, now: float) -> bool:
    """Set matched_at unless another lookup got there first."""
    res = await conn.execute(
        callin_requests.update()
        .where(callin_requests.c.id == request_id, callin_requests.c.matched_at.is_(None))
        .values(matched_at=now)
    )
    return res.rowcount > 0


async def list_requests(
    conn: AsyncConnection,
    *,
    tenant_id: str | None,
    group: str | None,
    limit: int,
    offset: int,
    tenant_ids: set[str] | None = None,
) -> tuple[list[Any], int]:
    """Requests newest first, each with its tenant's name (``user_data`` as its stored JSON
    text), and the total that match."""
    conds = []
    if tenant_id is not None:
        conds.append(callin_requests.c.tenant_id == tenant_id)
    if tenant_ids is not None:
        ids = sorted(tenant_ids)
        conds.append(callin_requests.c.tenant_id.in_(ids) if ids else sa.false())
    if group is not None:
        conds.append(callin_requests.c.group_name == group)
    q = (
        sa.select(
            *(c for c in callin_requests.c if c.name != "user_data"),
            # As stored: a value that cannot be read is shown raw, never an error.
            sa.cast(callin_requests.c.user_data, sa.Text()).label("user_data"),
            tenants.c.name.label("tenant_name"),
        )
        .join(tenants, tenants.c.id == callin_requests.c.tenant_id, isouter=True)
        .where(*conds)
        .order_by(callin_requests.c.created_at.desc(), callin_requests.c.id)
        .limit(limit)
        .offset(offset)
    )
    rows = list(await conn.execute(q))
    total = (
        await conn.execute(sa.select(sa.func.count()).select_from(callin_requests).where(*conds))
    ).scalar_one()
    return rows, int(total)


async def tenant_name(conn: AsyncConnection, tenant_id: str) -> str | None:
    """The name of a tenant id (for match results)."""
    q = sa.select(tenants.c.name).where(tenants.c.id == tenant_id)
    return (await conn.execute(q)).scalar_one_or_none()
