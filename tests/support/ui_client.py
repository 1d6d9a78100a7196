"""The Callback UI over httpx for integration tests: a started runtime, a browser-like client
with its own cookie jar (signed in, its CSRF token at hand), the audit entries stored, and a
spy of what the code asked the audit log to record."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

from dialback.app import create_internal_app
from dialback.container import Container
from dialback.db.schema import audit_log
from tests.support.stack import make_settings

PASSWORD = "correct horse battery staple"
TOKEN_RE = re.compile(r'name="csrf_token" value="([^"]*)"')


async def runtime(url: str, tmp_path: Path, **overrides: Any) -> Container:
    """A started runtime on ``url`` (no simulator); the caller stops it."""
    rt = Container(
        make_settings(database_url=url, data_dir=str(tmp_path), simulator="off", **overrides)
    )
    await rt.start()
    return rt


class Ui:
    """A browser on the internal app: its own cookie jar."""

    def __init__(
        self, rt: Container, base_url: str = "http://internal", app: Any = None, **kw: Any
    ) -> None:
        self.client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app or create_internal_app(rt)),
            base_url=base_url,
            **kw,
        )
        self.login_token = ""
        self.token = ""
        """The signed-in session's CSRF token (``signed_in`` sets it)."""

    async def __aenter__(self) -> Ui:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.client.aclose()

    async def login_form(self, next_path: str = "") -> str:
        """Open the sign-in page; its form's CSRF token."""
        page = await self.client.get("/ui/login", params={"next": next_path} if next_path else {})
        assert page.status_code == 200, page.text
        found = TOKEN_RE.search(page.text)
        assert found
        self.login_token = found.group(1)
        return self.login_token

    async def sign_in(
        self, username: str, password: str = PASSWORD, next_path: str = ""
    ) -> httpx.Response:
        """Post the sign-in form."""
        # Signed in already, the form redirects: its token (and cookie) from before still hold.
        token = self.login_token or await self.login_form()
        return await self.client.post(
            "/ui/login",
            data={
                "username": username,
                "password": password,
                "csrf_token": token,
                "next": next_path,
            },
        )

    async def csrf(self) -> str:
        """The signed-in session's CSRF token, read from the home page."""
        home = await self.client.get("/ui/")
        assert home.status_code == 200, home.text
        found = TOKEN_RE.search(home.text)
        assert found and found.group(1)
        return found.group(1)

    async def post(self, path: str, data: dict[str, Any] | None = None) -> httpx.Response:
        """Post a page's form as the browser would: with the session's CSRF token."""
        return await self.client.post(path, data={**(data or {}), "csrf_token": self.token})


async def signed_in(rt: Container, user: str, password: str = PASSWORD) -> Ui:
    """A browser signed in as ``user``, its CSRF token in ``token`` (close it: ``async with``)."""
    ui = Ui(rt)
    answer = await ui.sign_in(user, password)
    assert answer.status_code == 303, answer.text
    ui.token = await ui.csrf()
    return ui


async def audit_rows(rt: Container) -> list[Any]:
    """The audit log's entries as stored, oldest first."""
    async with rt.engine.connect() as conn:
        return list((await conn.execute(sa.select(audit_log).order_by(audit_log.c.at))).all())


class Audit:
    """What the code asked the audit log to record (before it is cleaned and stored)."""

    def __init__(self, rt: Container) -> None:
        self.calls: list[tuple[Any, str, dict[str, Any]]] = []
        original = rt.audit.record

        async def record(actor: Any, action: str, **kw: Any) -> None:
            self.calls.append((actor, action, kw))
            await original(actor, action, **kw)

        rt.audit.record = record  # type: ignore[method-assign]

    def actions(self) -> list[str]:
        """The actions asked for, in order."""
        return [a for _, a, _ in self.calls]
