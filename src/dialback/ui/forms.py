"""What the pages' forms share: their text fields and toggles, each field's error (from a
schema's validation or a service's refusal) with what was typed, the notice after a redirect,
the chooser of a new object's tenant and name, and the guard of forms whose answer shows a
secret once."""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response

from dialback.kit.errors import ApiError
from dialback.kit.names import is_name
from dialback.ui.deps import UiProblem
from dialback.ui.rendering import render

FORM = "form"
"""The key of an error that names no field of the form (shown above it)."""


def form_text(form: Any, name: str, limit: int = 200) -> str:
    """A form field's text, stripped and cut to ``limit``; "" when absent or a file."""
    value = form.get(name, "")
    return value.strip()[:limit] if isinstance(value, str) else ""


def form_list(form: Any, name: str) -> list[str]:
    """A repeated form field's non-empty texts (a multi-select, checkboxes), bounded."""
    return [v.strip()[:100] for v in form.getlist(name)[:1000] if isinstance(v, str) and v.strip()]


def form_flag(form: Any, name: str) -> bool:
    """A true/false form field (a Disable/Enable button's), or 400 naming it."""
    value = form_text(form, name, 10)
    if value not in ("true", "false"):
        raise UiProblem(400, "Bad request", f"{name}: give true or false")
    return value == "true"


def notice_of(request: Request, notices: Mapping[str, str]) -> str:
    """The notice of the action a redirect says was done (``?done=``), or ""."""
    return notices.get(request.query_params.get("done", ""), "")


@dataclass(frozen=True)
class FormState:
    """What a page shows of the form it answers: the status, each field's error, what was
    typed (None: the page's own values) and a notice."""

    status: int = 200
    errors: dict[str, str] = field(default_factory=dict)
    values: dict[str, Any] | None = None
    notice: str = ""


def field_error(message: str, fields: Collection[str]) -> tuple[str, str]:
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
        name = aliases.get(path, path)
        found.setdefault(name, str(err.get("msg", "invalid")).removeprefix("Value error, "))
    return found


def refused_fields(exc: ApiError, fields: Collection[str]) -> dict[str, str]:
    """A service's refusal as a form's errors: under the field its message names, else under
    ``FORM``; a 5xx or a 404 (nothing left to show the form on) is raised again."""
    if exc.status >= 500 or exc.status == 404:
        raise exc
    name, text = field_error(exc.message, fields)
    return {name or FORM: text}


def new_name_chooser(
    request: Request,
    taken: Mapping[str, Collection[str]],
    tenant: str,
    name: str,
    *,
    kind: str,
    next_step: str,
    action: str,
) -> Response | None:
    """None when ``tenant`` (one of ``taken``'s keys: the tenants the operator may see) has no
    ``kind`` named ``name`` yet; else the page that chooses them (400 with each field's error
    once something was chosen)."""
    errors: dict[str, list[str]] = {}
    if tenant or name:
        if tenant not in taken:
            errors["tenant"] = [f"no tenant named {tenant[:100]!r} that you may see"]
        if not is_name(name):
            errors["name"] = [
                "a letter or digit, then letters, digits, '_', '.' or '-' (at most 100)"
            ]
        elif tenant in taken and name in taken[tenant]:
            errors["name"] = [f"tenant {tenant!r} already has a {kind} named {name!r}"]
        if not errors:
            return None
    return render(
        request,
        "new-name.html",
        400 if errors else 200,
        kind=kind,
        next_step=next_step,
        action=action,
        tenants=sorted(taken),
        tenant=tenant,
        name=name[:100],
        errors=errors,
    )


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
