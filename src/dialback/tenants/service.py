"""Tenant and API-key use cases of the admin API; each method owns its transaction."""

from __future__ import annotations

import builtins
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from dialback.kit.context import note_for_audit
from dialback.kit.errors import Conflict, NotFound
from dialback.kit.names import is_id, is_name
from dialback.observability.events import Events
from dialback.tenants import repository as repo
from dialback.tenants.auth import KeyCache
from dialback.tenants.repository import ApiKey, Tenant, TenantRecord
from dialback.tenants.schemas import TenantPatch, TenantSettings


def _flat_settings(stored: dict[str, Any]) -> dict[str, Any]:
    own = TenantSettings.model_validate(stored)
    dumped = own.model_dump(mode="json", by_alias=True, exclude_none=True)
    return {f"{section}.{k}": v for section, part in dumped.items() for k, v in part.items()}


def tenant_changes(
    before: Tenant, settings: dict[str, Any] | None, disabled: bool | None
) -> dict[str, list[Any]]:
    """What a patch changes of a tenant: each field's old and new value
    (``{"throttle.windowSeconds": [60, 30]}``, None: unset); throttle and retention numbers and
    the state, no personal data."""
    changes: dict[str, list[Any]] = {}
    if settings is not None:
        old, new = _flat_settings(before.settings), _flat_settings(settings)
        for key in sorted(old.keys() | new.keys()):
            if old.get(key) != new.get(key):
                changes[key] = [old.get(key), new.get(key)]
    if disabled is not None and disabled != before.disabled:
        changes["disabled"] = [before.disabled, disabled]
    return changes


@dataclass(frozen=True)
class NewApiKey:
    """A key just created: its record and the plaintext, shown this once."""

    record: ApiKey
    key: str


class TenantAdmin:
    """Tenants (list, create, get, patch) and their API keys (create, list, revoke)."""

    def __init__(self, engine: AsyncEngine, keys: KeyCache, events: Events) -> None:
        self.engine = engine
        self.keys = keys
        self.events = events

    async def named(self, name: str) -> Tenant:
        """The tenant with this name, or 404."""
        async with self.engine.connect() as conn:
            return await repo.tenant_named(conn, name)

    async def list(self) -> list[TenantRecord]:
        """All tenants, oldest first."""
        async with self.engine.connect() as conn:
            return await repo.list_tenants(conn)

    async def create(self, name: str, settings: TenantSettings) -> TenantRecord:
        """Create a tenant; 409 when the name is taken."""
        values = settings.model_dump(mode="json", by_alias=True, exclude_none=True)
        try:
            async with self.engine.begin() as conn:
                if await repo.get_tenant_by_name(conn, name) is not None:
                    raise Conflict(f"name: a tenant named {name!r} already exists")
                await repo.create_tenant(conn, name, values)
        except IntegrityError:
            # Another request created the same name between the check and the insert.
            raise Conflict(f"name: a tenant named {name!r} already exists") from None
        self.events.tenant_known(name)
        async with self.engine.connect() as conn:
            rec = await repo.get_tenant_record(conn, name)
        assert rec is not None
        return rec

    async def get(self, name: str) -> TenantRecord:
        """One tenant by name, or 404."""
        async with self.engine.connect() as conn:
            rec = await repo.get_tenant_record(conn, name) if is_name(name) else None
        if rec is None:
            raise NotFound(f"no tenant named {name!r}")
        return rec

    async def patch(self, name: str, patch: TenantPatch) -> TenantRecord:
        """Replace a tenant's settings and/or disable or enable it; what changed goes to the
        request's audit entry."""
        values: dict[str, Any] = {}
        if patch.settings is not None:
            values["settings"] = patch.settings.model_dump(
                mode="json", by_alias=True, exclude_none=True
            )
        if patch.disabled is not None:
            values["disabled"] = patch.disabled
        async with self.engine.begin() as conn:
            t = await repo.tenant_named(conn, name)
            if values:
                await repo.update_tenant(conn, t.id, **values)
            rec = await repo.get_tenant_record(conn, name)
        # Cached key lookups carry the tenant's settings and enabled state.
        self.keys.clear()
        changes = tenant_changes(t, values.get("settings"), patch.disabled)
        if changes:
            note_for_audit(changes=changes)
        assert rec is not None
        return rec

    async def create_key(self, tenant: str, name: str) -> NewApiKey:
        """Create an API key; only its hash is stored."""
        key = repo.generate_key()
        async with self.engine.begin() as conn:
            t = await repo.tenant_named(conn, tenant)
            kid = await repo.create_api_key(conn, t.id, name, key)
            rec = await repo.get_api_key(conn, t.id, kid)
        assert rec is not None
        return NewApiKey(rec, key)

    async def list_keys(self, tenant: str) -> builtins.list[ApiKey]:
        """The tenant's API keys, revoked ones included."""
        async with self.engine.connect() as conn:
            t = await repo.tenant_named(conn, tenant)
            return await repo.list_api_keys(conn, t.id)

    async def revoke_key(self, tenant: str, key_id: str) -> ApiKey:
        """Revoke an active API key (404 otherwise); it stops working at once in this process."""
        async with self.engine.begin() as conn:
            t = await repo.tenant_named(conn, tenant)
            revoked = is_id(key_id) and await repo.revoke_api_key(conn, t.id, key_id)
            if not revoked:
                raise NotFound(f"keyId: tenant {tenant!r} has no active API key {key_id!r}")
            rec = await repo.get_api_key(conn, t.id, key_id)
        self.keys.clear()
        assert rec is not None
        return rec
