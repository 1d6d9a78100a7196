"""The started dialback stack of the integration tests: settings, clients, waiting."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from dialback.app import create_internal_app, create_public_app
from dialback.container import Container
from dialback.services import repository as services_repo
from dialback.services.schemas import ServiceConfig
from dialback.settings import Settings
from dialback.tenants import repository as tenants_repo

ADMIN_TOKEN = "test-admin-token"
TEMPLATE_DB = "dialback_template"
"""The migrated database every test database is cloned from."""


SettingsFactory = Callable[..., Settings]


def make_settings(**overrides: Any) -> Settings:
    """Settings for in-process tests: fast monitor, quick simulator, admin token set."""
    base: dict[str, Any] = {
        "admin_tokens": ADMIN_TOKEN,
        "monitor_poll_seconds": 0.05,
        "sim_handle_seconds": 0.05,
        "sim_ring_seconds": 0.01,
        "sim_answer_probability": 1.0,
        "api_key_cache_seconds": 0.0,
        # Every test client is 127.0.0.1: tests of other things send more bad keys than the
        # brute-force limit allows (tests/integration/test_bruteforce.py sets its own limits).
        "auth_failure_limit": 1000,
    }
    base.update(overrides)
    return Settings(**base)


@dataclass
class Stack:
    """A started runtime with clients for both listeners."""

    rt: Container
    public: httpx.AsyncClient
    internal: httpx.AsyncClient

    async def tenant(
        self,
        name: str = "acme",
        *,
        service: str = "sales",
        config: ServiceConfig | None = None,
        settings: dict[str, Any] | None = None,
    ) -> str:
        """Create a tenant with one service and return a fresh API key for it."""
        async with self.rt.engine.begin() as conn:
            t = await tenants_repo.get_tenant_by_name(conn, name)
            if t is None:
                t = await tenants_repo.create_tenant(conn, name, settings or {})
            if service and await services_repo.get_service(conn, t.id, service) is None:
                cfg = config or ServiceConfig.model_validate(
                    {"businessHours": {"alwaysOpen": True}}
                )
                await services_repo.create_service(conn, t.id, service, cfg)
            key = tenants_repo.generate_key()
            await tenants_repo.create_api_key(conn, t.id, "test", key)
        self.rt.keys.clear()
        return key


class started_stack:
    """Start a Container and ASGI clients for ``settings``; stop everything on exit."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def __aenter__(self) -> Stack:
        rt = Container(self.settings)
        await rt.start()
        public = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=create_public_app(rt)), base_url="http://public"
        )
        internal = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=create_internal_app(rt)),
            base_url="http://internal",
            headers={"authorization": f"Bearer {ADMIN_TOKEN}"},
        )
        self.stack = Stack(rt, public, internal)
        return self.stack

    async def __aexit__(self, *exc: object) -> None:
        await self.stack.public.aclose()
        await self.stack.internal.aclose()
        await self.stack.rt.stop()


async def wait_for(predicate: Any, timeout: float = 10.0, interval: float = 0.05) -> Any:
    """Poll an async predicate until it returns a truthy value; fail with the last value."""
    deadline = asyncio.get_running_loop().time() + timeout
    last = None
    while asyncio.get_running_loop().time() < deadline:
        last = await predicate()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s (last value: {last!r})")
