"""What the administrator's pages (tenants, users) share: the permission check with the tenant
scope of the path (as the admin API's ``requires``), field errors from a service's message, and
the guard of forms whose answer shows a secret once."""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from typing import Any

from fastapi import Depends, Request
from pydantic import ValidationError

from dialback.identity.roles import Permission, Principal
from dialback.ui.deps import UiPrincipalDep, UiProblem, UiRequire


class UiRequireIn(UiRequire):
    """``UiRequire`` plus the admin API's scope rules: the path's ``{tenant}`` within the
    operator's tenants; ``every_tenant``: only an operator of every tenant."""

    def __init__(self, permission: Permission, *, every_tenant: bool = False) -> None:
        super().__init__(permission)
        self.every_tenant = every_tenant

    async def __call__(  # type: ignore[override]
        self, request: Request, principal: UiPrincipalDep
    ) -> Principal:
        await super().__call__(principal)
        tenant = request.path_params.get("tenant")
        if isinstance(tenant, str) and not principal.sees_tenant(tenant):
            raise UiProblem(
                403,
                "Not allowed",
                f"tenant {tenant[:100]!r} is outside the scope of {principal.actor}.",
            )
        if self.every_tenant and not principal.unscoped:
            raise UiProblem(
                403,
                "Not allowed",
                f"Only an operator of every tenant may do this; {principal.actor} is limited to "
                f"{', '.join(sorted(principal.tenants or ()))}.",
            )
        return principal


def ui_requires_in(permission: Permission, *, every_tenant: bool = False) -> Any:
    """``Depends`` on ``UiRequireIn(permission, every_tenant=...)``."""
    return Depends(UiRequireIn(permission, every_tenant=every_tenant))


def field_error(message: str, fields: set[str]) -> tuple[str, str]:
    """(field, text) of a service's "field: text" message; field "" when it names none of
    ``fields``."""
    head, sep, rest = message.partition(": ")
    if sep and head in fields:
        return head, rest
    return "", message


def validation_errors(exc: ValidationError, aliases: dict[str, str]) -> dict[str, str]:
    """Each invalid field's message, keyed by its form field (``aliases``: model field path,
    dotted, to form field)."""
    found: dict[str, str] = {}
    for err in exc.errors():
        path = ".".join(str(p) for p in err.get("loc", ()))
        field = aliases.get(path, path)
        found.setdefault(field, str(err.get("msg", "invalid")).removeprefix("Value error, "))
    return found


class ShownOnce:
    """The one-time tokens of forms whose answer shows a secret (a new API key, a generated
    password): a resent form (the browser's reload of the answer) is refused instead of making
    and showing another secret. Only the tokens are kept, never the secrets; in this process,
    bounded, each for ``ttl`` seconds (a session's longest life)."""

    def __init__(self, ttl: float = 12 * 3600.0, size: int = 10_000) -> None:
        self.ttl = ttl
        self.size = size
        self._used: OrderedDict[str, float] = OrderedDict()

    @staticmethod
    def new() -> str:
        """A fresh token for a form."""
        return secrets.token_urlsafe(16)

    def use(self, token: str) -> bool:
        """Whether ``token`` is fresh (and now used); False when it was sent before."""
        now = time.monotonic()
        while self._used and (
            len(self._used) >= self.size or next(iter(self._used.values())) < now - self.ttl
        ):
            self._used.popitem(last=False)
        if token in self._used:
            return False
        self._used[token] = now
        return True

    def release(self, token: str) -> None:
        """Make ``token`` fresh again: its form failed and showed nothing."""
        self._used.pop(token, None)


shown_once = ShownOnce()
"""The tokens of this process's show-once forms."""


def once_token(form: Any) -> str:
    """The form's one-time token, or 400."""
    value = form.get("once")
    if not isinstance(value, str) or not 16 <= len(value) <= 64:
        raise UiProblem(
            400, "Bad request", "once: the form's one-time token is missing: reload it."
        )
    return value


def refuse_resent(what: str) -> UiProblem:
    """409: a show-once form sent again."""
    return UiProblem(
        409,
        "Already done",
        f"This form was sent already: the {what} was shown once and is not shown again. "
        "Go back to the list to see what was done.",
    )
