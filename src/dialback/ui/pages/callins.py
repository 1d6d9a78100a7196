"""The Click-To-Call-In pages: each tenant's call-in groups (numbers, access codes, expiry), their
editor, and the records of call-in requests (GES: "Viewing Click-To-Call-In records")."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Query, Request
from pydantic import ValidationError
from starlette.responses import Response

from dialback.callins.repository import CallInGroup
from dialback.callins.schemas import CallInGroupConfig
from dialback.callins.service import CallInRequest
from dialback.identity.roles import Permission, Principal
from dialback.kit.errors import Conflict
from dialback.kit.phone import mask
from dialback.ui.deps import UiProblem, UiRedirect, ui_requires, ui_router
from dialback.ui.forms import new_name_chooser
from dialback.ui.rendering import render
from dialback.web.deps import ContainerDep
from dialback.web.params import NamePath, TenantPath

router: APIRouter = ui_router()
NAV_PATHS = ("/callins",)
PAGE_SIZE = 100

Reader = Annotated[Principal, ui_requires(Permission.CALLINS_READ)]
Writer = Annotated[Principal, ui_requires(Permission.CALLINS_WRITE)]
GENERAL = "_form"
_FIELDS = {
    "defaultCountry": "default_country",
    "numbers": "numbers",
    "accessCode": "access_enabled",
    "expirySeconds": "expiry_seconds",
}
_NEW = {
    "default_country": "US",
    "numbers": "",
    "access_enabled": True,
    "access_length": "6",
    "expiry_seconds": "900",
}


@dataclass(frozen=True)
class Record:
    """A call-in request as the records table shows it (the caller's number masked)."""

    req: CallInRequest
    state: str
    from_masked: str
    code_masked: str


def _record(req: CallInRequest, now: float) -> Record:
    if req.matched_at is not None:
        state = "MATCHED"
    elif req.expires_at <= now:
        state = "EXPIRED"
    else:
        state = "PENDING"
    return Record(
        req,
        state,
        mask(req.from_phone_number) if req.from_phone_number else "",
        mask(req.access_code) if req.access_code else "",
    )


@router.get("/callins", name="ui_callins")
async def callins_page(
    request: Request,
    c: ContainerDep,
    who: Reader,
    tenant: Annotated[str, Query(max_length=100)] = "",
    group: Annotated[str, Query(max_length=100)] = "",
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    deleted: Annotated[str, Query(max_length=210)] = "",
) -> Response:
    """The groups of every tenant the operator may see and the records of requests, paged."""
    groups = await c.callins.groups_by_tenant(who.tenants)
    page = await c.callins.list_requests(
        tenant or None, group or None, PAGE_SIZE, offset, scope=who.tenants
    )
    query = {k: v for k, v in (("tenant", tenant), ("group", group)) if v}

    def page_link(at: int) -> str:
        return "?" + urlencode({**query, "offset": at})

    return render(
        request,
        "callins/page.html",
        groups=groups,
        records=[_record(r, page.as_of) for r in page.items],
        page=page,
        prev_link=page_link(max(0, offset - PAGE_SIZE)) if offset > 0 else "",
        next_link=page_link(offset + PAGE_SIZE) if offset + PAGE_SIZE < page.total else "",
        tenant=tenant,
        group=group,
        can_write=who.can(Permission.CALLINS_WRITE),
        deleted=deleted,
    )


@router.get("/callins/new", name="ui_callin_group_new")
async def callin_group_new(
    request: Request,
    c: ContainerDep,
    who: Writer,
    tenant: Annotated[str, Query(max_length=200)] = "",
    name: Annotated[str, Query(max_length=200)] = "",
) -> Response:
    """Choose a new call-in group's tenant and name, then its numbers and codes."""
    by_tenant = await c.callins.groups_by_tenant(who.tenants)
    taken = {t: {g.name for g in groups} for t, groups in by_tenant}
    chooser = new_name_chooser(
        request,
        taken,
        tenant,
        name,
        kind="call-in group",
        next_step="its numbers and access codes come next",
        action="/callins/new",
    )
    if chooser is not None:
        return chooser
    return _editor(request, tenant, name, dict(_NEW), {}, creating=True)


@router.get("/callins/{tenant}/{name}", name="ui_callin_group")
async def callin_group_edit(
    request: Request, tenant: TenantPath, name: NamePath, c: ContainerDep, who: Writer
) -> Response:
    """The editor of one call-in group."""
    group = await c.callins.get_group(tenant, name, scope=who.tenants)
    return _editor(request, tenant, name, _values_of(group), {}, creating=False)


@router.post("/callins/{tenant}/{name}", name="put_callin_group")
async def put_callin_group(
    request: Request, tenant: TenantPath, name: NamePath, c: ContainerDep, who: Writer
) -> Response:
    """Save a call-in group (``mode=create``: a new one, never a replacement)."""
    form = await request.form()
    creating = form.get("mode") == "create"
    values = _values_from(form)
    errors: dict[str, list[str]] = {}
    config = _config_of(values, errors)
    if config is None:
        return _editor(request, tenant, name, values, errors, creating=creating, status=400)
    try:
        await c.callins.put_group(tenant, name, config, scope=who.tenants, create_only=creating)
    except Conflict as exc:
        errors = {GENERAL: [exc.message]}
        return _editor(request, tenant, name, values, errors, creating=creating, status=409)
    raise UiRedirect(f"/ui/callins?tenant={quote(tenant)}#groups")


@router.post("/callins/{tenant}/{name}/delete", name="delete_callin_group")
async def delete_callin_group(
    request: Request, tenant: TenantPath, name: NamePath, c: ContainerDep, who: Writer
) -> Response:
    """Delete a call-in group once confirmed; its requests stay as records."""
    form = await request.form()
    if form.get("confirm") != "yes":
        raise UiProblem(
            400, "Not confirmed", "confirm: tick the box to confirm the delete, then try again."
        )
    await c.callins.delete_group(tenant, name, scope=who.tenants)
    raise UiRedirect(f"/ui/callins?deleted={quote(f'{tenant}/{name}', safe='/')}")


def _values_of(group: CallInGroup) -> dict[str, Any]:
    cfg = group.config
    return {
        "default_country": cfg.default_country,
        "numbers": "\n".join(cfg.numbers),
        "access_enabled": cfg.access_code.enabled,
        "access_length": str(cfg.access_code.length),
        "expiry_seconds": str(cfg.expiry_seconds),
    }


def _values_from(form: Any) -> dict[str, Any]:
    def text(name: str, limit: int = 200) -> str:
        value = form.get(name, "")
        return value.strip()[:limit] if isinstance(value, str) else ""

    return {
        "default_country": text("default_country"),
        "numbers": text("numbers", 8000),
        "access_enabled": form.get("access_enabled") == "on",
        "access_length": text("access_length"),
        "expiry_seconds": text("expiry_seconds"),
    }


def _int_or_text(value: str) -> int | str:
    try:
        return int(value)
    except ValueError:
        return value


def _config_of(values: dict[str, Any], errors: dict[str, list[str]]) -> CallInGroupConfig | None:
    body = {
        "defaultCountry": values["default_country"] or "US",
        "numbers": [n.strip() for n in values["numbers"].splitlines() if n.strip()],
        "accessCode": {
            "enabled": values["access_enabled"],
            "length": _int_or_text(values["access_length"]),
        },
        "expirySeconds": _int_or_text(values["expiry_seconds"]),
    }
    try:
        return CallInGroupConfig.model_validate(body)
    except ValidationError as exc:
        for err in exc.errors():
            loc = tuple(err["loc"])
            field = _FIELDS.get(str(loc[0]), GENERAL) if loc else GENERAL
            if loc[:2] == ("accessCode", "length"):
                field = "access_length"
            error = err.get("ctx", {}).get("error")
            text = str(error) if err["type"] == "value_error" and error else str(err["msg"])
            if field == "numbers" and len(loc) > 1 and isinstance(loc[1], int):
                text = f"number {loc[1] + 1}: {text}"
            errors.setdefault(field, []).append(text)
        return None


def _editor(
    request: Request,
    tenant: str,
    name: str,
    values: dict[str, Any],
    errors: dict[str, list[str]],
    *,
    creating: bool,
    status: int = 200,
) -> Response:
    return render(
        request,
        "callins/edit.html",
        status,
        tenant=tenant,
        name=name,
        values=values,
        errors=errors,
        creating=creating,
        general=GENERAL,
    )
