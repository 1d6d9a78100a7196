"""``/admin/v1/users`` through real HTTP on the internal app: the use cases, the roles that may
call them, and never a password hash in an answer."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from dialback.app import create_internal_app
from dialback.container import Container
from tests.support.stack import ADMIN_TOKEN, make_settings

MONITOR_TOKEN = "monitor-token-0123456789"
SCOPED_TOKEN = "scoped-admin-token-0123456789"


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[tuple[Container, httpx.AsyncClient]]:
    settings = make_settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path}/d.db",
        data_dir=str(tmp_path),
        simulator="off",
        admin_tokens=(
            f"{ADMIN_TOKEN},watch:monitor:{MONITOR_TOKEN},acme-admin:administrator@acme:{SCOPED_TOKEN}"
        ),
    )
    rt = Container(settings)
    await rt.start()
    client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_internal_app(rt)),
        base_url="http://internal",
        headers={"authorization": f"Bearer {ADMIN_TOKEN}"},
    )
    try:
        yield rt, client
    finally:
        await client.aclose()
        await rt.stop()


def _no_secret(body: object) -> None:
    text = repr(body)
    assert "argon2" not in text and "password_hash" not in text and "passwordHash" not in text


async def test_users_admin_api(api: tuple[Container, httpx.AsyncClient]) -> None:
    rt, client = api
    made = await client.post(
        "/admin/v1/users",
        json={"username": "Bob", "displayName": "Bob B.", "roles": ["Callback Supervisor"]},
    )
    assert made.status_code == 201, made.text
    bob = made.json()["data"]
    generated = bob.pop("password")
    assert len(generated) >= 20
    assert bob["username"] == "bob" and bob["roles"] == ["supervisor"] and bob["tenants"] is None
    assert bob["lastLoginAt"] is None and bob["disabled"] is False
    _no_secret(bob)
    assert (await rt.users.authenticate("bob", generated)).roles == {"supervisor"}

    given = await client.post(
        "/admin/v1/users",
        json={"username": "carol", "roles": ["monitor"], "tenants": ["acme"], "password": "x" * 12},
    )
    assert given.status_code == 201 and "password" not in given.json()["data"]

    listed = (await client.get("/admin/v1/users")).json()["data"]
    assert [u["username"] for u in listed] == ["bob", "carol"]
    assert listed[0]["lastLoginAt"] is not None  # bob signed in above
    _no_secret(listed)

    patched = await client.patch(
        "/admin/v1/users/carol", json={"roles": ["developer", "monitor"], "tenants": None}
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["data"]["roles"] == ["developer", "monitor"]
    assert patched.json()["data"]["tenants"] is None
    kept = await client.patch("/admin/v1/users/carol", json={"disabled": True})
    assert kept.json()["data"]["tenants"] is None and kept.json()["data"]["disabled"] is True

    reset = await client.post("/admin/v1/users/bob/password")
    assert reset.status_code == 200
    new = reset.json()["data"]["password"]
    assert new != generated
    chosen = await client.post("/admin/v1/users/bob/password", json={"password": "y" * 16})
    assert chosen.status_code == 200 and "password" not in chosen.json()["data"]
    assert (await rt.users.authenticate("bob", "y" * 16)).name == "bob"

    one = await client.get("/admin/v1/users/BOB")
    assert one.status_code == 200 and one.json()["data"]["displayName"] == "Bob B."
    gone = await client.delete("/admin/v1/users/bob")
    assert gone.status_code == 200
    missing = await client.get("/admin/v1/users/bob")
    assert (
        missing.status_code == 404 and "no user named 'bob'" in missing.json()["status"]["message"]
    )


BAD_USERS: list[tuple[dict[str, object], str]] = [
    ({"username": "dave", "roles": ["boss"]}, "unknown role 'boss'"),
    ({"username": "dave", "roles": []}, "roles"),
    ({"username": "dave", "roles": ["monitor"], "password": "short"}, "at least 12"),
    (
        {"username": "dave.long.name", "roles": ["monitor"], "password": "DAVE.LONG.NAME"},
        "not be the user name",
    ),
    ({"username": "no spaces", "roles": ["monitor"]}, "not a valid user name"),
    ({"username": "dave", "roles": ["monitor"], "tenants": ["bad name!"]}, "tenant"),
    ({"username": "dave", "roles": ["monitor"], "extra": 1}, "unknown field"),
]


async def test_bad_users_are_refused_with_a_clear_400(
    api: tuple[Container, httpx.AsyncClient],
) -> None:
    _rt, client = api
    for body, message in BAD_USERS:
        answer = await client.post("/admin/v1/users", json=body)
        assert answer.status_code == 400, (body, answer.text)
        assert message in answer.json()["status"]["message"], body
        assert answer.json()["status"]["corrId"]
    assert (await client.get("/admin/v1/users")).json()["data"] == []


async def test_roles_are_enforced_on_the_users_routes(
    api: tuple[Container, httpx.AsyncClient],
) -> None:
    _rt, client = api
    made = await client.post(
        "/admin/v1/users", json={"username": "erin", "roles": ["monitor"], "password": "z" * 12}
    )
    assert made.status_code == 201
    again = await client.post(
        "/admin/v1/users", json={"username": "ERIN", "roles": ["monitor"], "password": "z" * 12}
    )
    assert again.status_code == 409
    for token in (MONITOR_TOKEN, SCOPED_TOKEN):
        auth = {"authorization": f"Bearer {token}"}
        for method, path in [
            ("GET", "/admin/v1/users"),
            ("GET", "/admin/v1/users/erin"),
            ("POST", "/admin/v1/users"),
            ("PATCH", "/admin/v1/users/erin"),
            ("POST", "/admin/v1/users/erin/password"),
            ("DELETE", "/admin/v1/users/erin"),
        ]:
            answer = await client.request(method, path, headers=auth, json={})
            assert answer.status_code == 403, (token, method, path, answer.text)
    assert (await client.get("/admin/v1/users/erin")).status_code == 200
