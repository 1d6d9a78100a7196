"""The demo tenant, service and key that ``make run`` starts with."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncEngine

from dialback.db.schema import api_keys
from dialback.services import repository as services_repo
from dialback.services.schemas import ServiceConfig
from dialback.settings import Settings
from dialback.tenants import repository as repo

DEMO_TENANT = "demo"
DEMO_SERVICE = "demo"
_GENERATED = "demo-generated"


@dataclass
class DemoCredentials:
    """What ``make run`` prints so the README's curl works."""

    api_key: str
    admin_token: str | None


async def ensure_demo(engine: AsyncEngine, settings: Settings) -> DemoCredentials:
    """Create the demo tenant and its 24/7 service when missing; return usable credentials.

    Without configured admin tokens, a generated one is set in ``settings``.
    """
    async with engine.begin() as conn:
        tenant = await repo.get_tenant_by_name(conn, DEMO_TENANT)
        if tenant is None:
            tenant = await repo.create_tenant(conn, DEMO_TENANT, {})
        if await services_repo.get_service(conn, tenant.id, DEMO_SERVICE) is None:
            cfg = ServiceConfig.model_validate(
                {
                    "businessHours": {"alwaysOpen": True},
                    "retry": {"maxAttempts": 3, "delaySeconds": 5},
                }
            )
            await services_repo.create_service(conn, tenant.id, DEMO_SERVICE, cfg)
        if settings.demo_api_key is not None:
            key = settings.demo_api_key.get_secret_value()
            if await repo.tenant_for_key_hash(conn, repo.hash_key(key)) is None:
                await repo.create_api_key(conn, tenant.id, "demo", key)
        else:
            # A fresh key each start; the previous generated one stops working.
            await conn.execute(
                api_keys.update()
                .where(
                    api_keys.c.tenant_id == tenant.id,
                    api_keys.c.name == _GENERATED,
                    api_keys.c.revoked_at.is_(None),
                )
                .values(revoked_at=time.time())
            )
            key = repo.generate_key()
            await repo.create_api_key(conn, tenant.id, _GENERATED, key)
    admin = None
    if not settings.admin_token_list():
        admin = secrets.token_urlsafe(24)
        settings.admin_tokens = SecretStr(admin)
    return DemoCredentials(api_key=key, admin_token=admin)
