"""A service configuration that is never open or reads national numbers as US says so."""

from __future__ import annotations

from pathlib import Path

import pytest

from dialback.db.engine import create_engine
from dialback.db.migrations import migrate
from dialback.observability.events import Events
from dialback.services.repository import ServiceCache
from dialback.services.schemas import ServiceConfig
from dialback.services.service import ServiceAdmin
from dialback.services.views import service_put_out
from dialback.tenants.auth import KeyCache
from dialback.tenants.schemas import TenantSettings
from dialback.tenants.service import TenantAdmin

NEVER_OPEN = (
    "no business hours: the service is never open "
    "(set businessHours.weekly or businessHours.alwaysOpen)"
)
READ_AS_US = (
    "validation.defaultCountry not set: national numbers are read as US "
    "(send numbers in E.164 or set it)"
)
LONDON = {"timezone": "Europe/London", "weekly": {"mon": [{"start": "08:00", "end": "18:00"}]}}


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({}, [NEVER_OPEN, READ_AS_US]),
        ({"businessHours": {"timezone": "Europe/London"}}, [NEVER_OPEN, READ_AS_US]),
        ({"businessHours": {"weekly": {"mon": []}}}, [NEVER_OPEN, READ_AS_US]),
        ({"businessHours": LONDON}, [READ_AS_US]),
        ({"businessHours": {"alwaysOpen": True}, "validation": {}}, [READ_AS_US]),
        ({"validation": {"defaultCountry": "GB"}}, [NEVER_OPEN]),
        # Choosing US explicitly is a choice, not a surprise.
        ({"businessHours": LONDON, "validation": {"defaultCountry": "US"}}, []),
        ({"businessHours": {"alwaysOpen": True}, "validation": {"defaultCountry": "gb"}}, []),
    ],
)
def test_warnings_name_what_the_author_may_not_expect(body: dict, expected: list[str]) -> None:
    assert ServiceConfig.model_validate(body).warnings() == expected


async def test_put_answers_its_warnings(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/w.db")
    await migrate(engine)
    try:
        await TenantAdmin(engine, KeyCache(engine, ttl=60), Events()).create(
            "acme", TenantSettings()
        )

        async def provision() -> bool:
            return True

        services = ServiceAdmin(engine, ServiceCache(engine, ttl=60), Events(), provision)
        bare = service_put_out(await services.put("acme", "sales", ServiceConfig()))
        assert bare["warnings"] == [NEVER_OPEN, READ_AS_US]
        assert bare["routingProvisioned"] is True and bare["name"] == "sales"
        # The stored configuration keeps the defaults that were applied, unchanged.
        assert bare["config"]["validation"]["defaultCountry"] == "US"
        assert bare["config"]["businessHours"]["alwaysOpen"] is False
        cfg = ServiceConfig.model_validate(
            {"businessHours": LONDON, "validation": {"defaultCountry": "GB"}}
        )
        fixed = service_put_out(await services.put("acme", "sales", cfg))
        assert fixed["warnings"] == []
    finally:
        await engine.dispose()
