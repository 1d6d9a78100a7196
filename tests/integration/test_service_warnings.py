"""PUT /admin/v1/tenants/{t}/services/{name} answers `warnings`, next to its unchanged fields."""

from __future__ import annotations

from tests.support.stack import Stack


async def test_put_of_an_empty_service_warns_and_keeps_its_fields(stack: Stack) -> None:
    r = await stack.internal.post("/admin/v1/tenants", json={"name": "warn"})
    assert r.status_code == 201, r.text
    r = await stack.internal.put("/admin/v1/tenants/warn/services/bare", json={})
    assert r.status_code == 201, r.text
    data = r.json()["data"]
    assert set(data) == {
        "id", "name", "config", "createdAt", "updatedAt", "routingProvisioned", "warnings",
    }  # fmt: skip
    assert [w.split(":")[0] for w in data["warnings"]] == [
        "no business hours",
        "validation.defaultCountry not set",
    ]
    r = await stack.internal.put(
        "/admin/v1/tenants/warn/services/bare",
        json={"businessHours": {"alwaysOpen": True}, "validation": {"defaultCountry": "GB"}},
    )
    assert r.status_code == 200 and r.json()["data"]["warnings"] == []
    # GET shows the stored service as before: no warnings field.
    r = await stack.internal.get("/admin/v1/tenants/warn/services/bare")
    assert "warnings" not in r.json()["data"]
