"""Per-tenant named configurations (services, call-in groups): one table shape, one repository.

Each table has ``id``, ``tenant_id``, ``name`` (unique per tenant), ``config`` (JSON),
``created_at`` and ``updated_at``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection


class Config(Protocol):
    """A configuration model that can be stored as JSON."""

    def dump(self) -> dict[str, Any]: ...


C = TypeVar("C", bound=Config)
R = TypeVar("R", bound="NamedConfig[Any]")


@dataclass(frozen=True)
class NamedConfig(Generic[C]):
    """A stored configuration with its parsed ``config``."""

    id: str
    tenant_id: str
    name: str
    config: C
    created_at: float
    updated_at: float


class NamedConfigs(Generic[C, R]):
    """Get, list, create, update and delete the named configurations of ``table``.

    ``record`` builds the record type (``NamedConfig`` or a subclass that derives more from the
    parsed config when it is loaded).
    """

    def __init__(
        self,
        table: sa.Table,
        parse: Callable[[Any], C],
        record: Callable[[str, str, str, C, float, float], R],
    ) -> None:
        self.table = table
        self.parse = parse
        self.record = record

    def _record(self, row: Any) -> R:
        return self.record(
            row.id, row.tenant_id, row.name, self.parse(row.config), row.created_at, row.updated_at
        )

    def _named(self, tenant_id: str, name: str) -> sa.ColumnElement[bool]:
        c = self.table.c
        return sa.and_(c.tenant_id == tenant_id, c.name == name)

    async def get(self, conn: AsyncConnection, tenant_id: str, name: str) -> R | None:
        """A tenant's configuration by name."""
        row = (
            await conn.execute(sa.select(self.table).where(self._named(tenant_id, name)))
        ).first()
        return self._record(row) if row else None

    async def list(self, conn: AsyncConnection, tenant_id: str) -> list[R]:
        """A tenant's configurations by name."""
        c = self.table.c
        q = sa.select(self.table).where(c.tenant_id == tenant_id).order_by(c.name)
        return [self._record(r) for r in await conn.execute(q)]

    async def create(self, conn: AsyncConnection, tenant_id: str, name: str, config: C) -> R:
        """Insert a configuration."""
        now = time.time()
        rid = str(uuid.uuid4())
        values = {"config": config.dump(), "created_at": now, "updated_at": now}
        await conn.execute(
            self.table.insert().values(id=rid, tenant_id=tenant_id, name=name, **values)
        )
        return self.record(rid, tenant_id, name, config, now, now)

    async def update(self, conn: AsyncConnection, tenant_id: str, name: str, config: C) -> bool:
        """Replace a configuration; False when it does not exist."""
        res = await conn.execute(
            self.table.update()
            .where(self._named(tenant_id, name))
            .values(config=config.dump(), updated_at=time.time())
        )
        return res.rowcount > 0

    async def delete(self, conn: AsyncConnection, tenant_id: str, name: str) -> bool:
        """Delete a configuration; False when it does not exist."""
        res = await conn.execute(self.table.delete().where(self._named(tenant_id, name)))
        return res.rowcount > 0
