"""The embedded default: SQLite file, no Redis, in-process routing simulator."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from dialback.services.schemas import ServiceConfig
from tests.support.stack import make_settings, started_stack, wait_for


async def test_embedded_mode_books_and_completes_callbacks(tmp_path: Path) -> None:
    settings = make_settings(database_url=f"sqlite+aiosqlite:///{tmp_path}/var/dialback.db")
    assert settings.simulator_enabled()
    async with started_stack(settings) as stack:
        cfg = ServiceConfig.model_validate(
            {
                "businessHours": {"alwaysOpen": True},
                "capacity": {"slotMinutes": 30, "defaultCapacity": 1},
            }
        )
        key = await stack.tenant(config=cfg)
        headers = {"x-api-key": key}
        r = await stack.public.post(
            "/engagement/v3/callbacks/create",
            json={"serviceName": "sales", "phoneNumber": "+442079460000"},
            headers=headers,
        )
        assert r.status_code == 200, r.text
        cid = r.json()["data"]["id"]

        async def completed() -> bool:
            r = await stack.public.post(
                "/engagement/v3/callbacks/retrieve", json={"id": cid}, headers=headers
            )
            return r.json()["data"]["callbackState"] == "COMPLETED"

        await wait_for(completed, timeout=15)

        # Capacity is enforced on SQLite too: one place in the slot, the second booking is refused.
        when = (datetime.now(UTC) + timedelta(days=2)).replace(
            hour=10, minute=5, second=0, microsecond=0
        )
        body = {
            "serviceName": "sales",
            "phoneNumber": "+442079460001",
            "desiredTime": when.isoformat(),
        }
        assert (
            await stack.public.post("/engagement/v3/callbacks/create", json=body, headers=headers)
        ).status_code == 200
        body["phoneNumber"] = "+442079460002"
        r = await stack.public.post("/engagement/v3/callbacks/create", json=body, headers=headers)
        assert r.status_code == 429, r.text
        assert r.json()["data"]["slots"]
    assert (tmp_path / "var" / "dialback.db").exists()
