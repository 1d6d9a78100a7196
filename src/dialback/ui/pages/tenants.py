"""The Tenants pages (Administrator): the tenants an operator may see with their state and
settings, create (an operator of every tenant only), disable/enable; per tenant its API keys:
create (the key shown once), revoke (after a confirmation). They call ``TenantAdmin`` as the
admin API does."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Path, Request
from pydantic import ValidationError
from starlette.responses import Response

from dialback.identity.roles import Permission, Principal
from dialback.kit.errors import ApiError
from dialback.tenants.repository import ApiKey, TenantRecord
from dialback.tenants.schemas import ApiKeyIn, TenantIn, TenantPatch
from dialback.ui.deps import UiProblem, UiRedirect, ui_router
from dialback.ui.pages.adminkit import (
    field_error,
    once_token,
    refuse_resent,
    shown_once,
    ui_requires_in,
    validation_errors,
)
from dialback.ui.rendering import render
from dialback.web.deps import ContainerDep
from dialback.web.params import TenantPath

router = ui_router()
NAV_PATHS = ("/tenants",)

_TENANT_FIELDS = {
    "name": "name",
    "settings.throttle.maxCallbacks": "max_callbacks",
    "settings.throttle.windowSeconds": "window_seconds",
    "settings.throttle.maxCallIns": "max_call_ins",
    "settings.retention.callbackDays": "callback_days",
    "settings.retention.callInDays": "callin_days",
}
_FORM_FIELDS = set(_TENANT_FIELDS.values())

KeyId = Annotated[str, Path(min_length=1, max_length=200)]
Reader = Annotated[Principal, ui_requires_in(Permission.TENANTS_READ)]
Writer = Annotated[Principal, ui_requires_in(Permission.TENANTS_WRITE)]
Creator = Annotated[Principal, ui_requires_in(Permission.TENANTS_WRITE, every_tenant=True)]
KeyReader = Annotated[Principal, ui_requires_in(Permission.API_KEYS_READ)]
KeyWriter = Annotated[Principal, ui_requires_in(Permission.API_KEYS_WRITE)]


def settings_summary(settings: dict[str, Any]) -> dict[str, str]:
    """A tenant's settings as short texts: throttle, call-in throttle, retention."""
    throttle = settings.get("throttle") or {}
    retention = settings.get("retention") or {}
    calls = throttle.get("maxCallbacks", 500)
    window = throttle.get("windowSeconds", 60)
    callins = throttle.get("maxCallIns")
    cb_days = retention.get("callbackDays")
    ci_days = retention.get("callInDays")
    return {
        "throttle": f"{calls} callbacks / {window} s",
        "callins": f"{callins} call-ins / {window} s" if callins else "default",
        "retention": (
            f"callbacks {f'{cb_days} d' if cb_days else 'default'}, "
            f"call-ins {f'{ci_days} d' if ci_days else 'default'}"
        ),
    }


def _form_text(form: Any, name: str, limit: int = 200) -> str:
    value = form.get(name, "")
    return value.strip()[:limit] if isinstance(value, str) else ""


async def _list_page(
    request: Request,
    c: Any,
    who: Principal,
    status: int = 200,
    *,
    errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
    notice: str = "",
) -> Response:
    rows = [r for r in await c.tenants.list() if who.sees_tenant(r.name)]
    return render(
        request,
        "tenants/list.html",
        status,
        tenants=[(r, settings_summary(r.settings)) for r in rows],
        can_create=who.can(Permission.TENANTS_WRITE) and who.unscoped,
        can_write=who.can(Permission.TENANTS_WRITE),
        errors=errors or {},
        values=values or {},
        notice=notice,
    )


@router.get("/tenants", name="ui_tenants")
async def tenants_page(request: Request, c: ContainerDep, who: Reader) -> Response:
    """The tenants the operator may see: state, throttle, retention; the create form."""
    done = request.query_params.get("done", "")
    notice = {"disabled": "Tenant disabled.", "enabled": "Tenant enabled."}.get(done, "")
    return await _list_page(request, c, who, notice=notice)


def _tenant_body(form: Any) -> dict[str, Any]:
    throttle: dict[str, Any] = {}
    retention: dict[str, Any] = {}
    for field, key, into in (
        ("max_callbacks", "maxCallbacks", throttle),
        ("window_seconds", "windowSeconds", throttle),
        ("max_call_ins", "maxCallIns", throttle),
        ("callback_days", "callbackDays", retention),
        ("callin_days", "callInDays", retention),
    ):
        value = _form_text(form, field, 20)
        if value:
            into[key] = value
    settings: dict[str, Any] = {"throttle": throttle}
    if retention:
        settings["retention"] = retention
    return {"name": _form_text(form, "name"), "settings": settings}


@router.post("/tenants", name="create_tenant")
async def create_tenant(request: Request, c: ContainerDep, who: Creator) -> Response:
    """Create a tenant (an operator of every tenant only); bad fields answer 400 next to them."""
    form = await request.form()
    values = {f: _form_text(form, f) for f in _FORM_FIELDS}
    errors: dict[str, str] = {}
    if not values["name"]:
        errors["name"] = "a tenant needs a name"
    else:
        try:
            body = TenantIn.model_validate(_tenant_body(form))
        except ValidationError as exc:
            errors = validation_errors(exc, _TENANT_FIELDS)
        else:
            try:
                rec = await c.tenants.create(body.name, body.settings)
            except ApiError as exc:
                if exc.status >= 500:
                    raise
                field, text = field_error(exc.message, _FORM_FIELDS)
                errors[field or "form"] = text
                return await _list_page(request, c, who, exc.status, errors=errors, values=values)
            raise UiRedirect(f"/ui/tenants/{quote(rec.name)}?done=created")
    return await _list_page(request, c, who, 400, errors=errors, values=values)


@router.post("/tenants/{tenant}/state", name="patch_tenant")
async def set_tenant_state(
    request: Request, tenant: TenantPath, c: ContainerDep, who: Writer
) -> Response:
    """Disable or enable a tenant (a disabled tenant's API keys stop working at once)."""
    form = await request.form()
    wanted = _form_text(form, "disabled", 10)
    if wanted not in ("true", "false"):
        raise UiProblem(400, "Bad request", "disabled: give true or false")
    rec = await c.tenants.patch(tenant, TenantPatch(disabled=wanted == "true"))
    done = "disabled" if rec.disabled else "enabled"
    back = _form_text(form, "back", 10)
    if back == "tenant":
        raise UiRedirect(f"/ui/tenants/{quote(rec.name)}?done={done}")
    raise UiRedirect(f"/ui/tenants?done={done}")


async def _tenant_page(
    request: Request,
    c: Any,
    who: Principal,
    tenant: str,
    status: int = 200,
    *,
    key_error: str = "",
    key_name: str = "",
    notice: str = "",
) -> Response:
    rec: TenantRecord = await c.tenants.get(tenant)
    keys: list[ApiKey] = (
        await c.tenants.list_keys(rec.name) if who.can(Permission.API_KEYS_READ) else []
    )
    keys.sort(key=lambda k: (k.revoked_at is not None, -k.created_at))
    return render(
        request,
        "tenants/tenant.html",
        status,
        tenant=rec,
        summary=settings_summary(rec.settings),
        keys=keys,
        can_read_keys=who.can(Permission.API_KEYS_READ),
        can_write_keys=who.can(Permission.API_KEYS_WRITE),
        can_write=who.can(Permission.TENANTS_WRITE),
        key_error=key_error,
        key_name=key_name,
        once=shown_once.new(),
        notice=notice,
    )


_NOTICES = {
    "created": "Tenant created. Create an API key for its clients below.",
    "revoked": "API key revoked: it no longer works.",
    "disabled": "Tenant disabled: its API keys are refused until it is enabled.",
    "enabled": "Tenant enabled.",
}


@router.get("/tenants/{tenant}", name="ui_tenant")
async def tenant_page(
    request: Request, tenant: TenantPath, c: ContainerDep, who: Reader
) -> Response:
    """One tenant: its settings and state, its API keys (prefixes only), create and revoke."""
    notice = _NOTICES.get(request.query_params.get("done", ""), "")
    return await _tenant_page(request, c, who, tenant, notice=notice)


@router.post("/tenants/{tenant}/api-keys", name="create_api_key")
async def create_api_key(
    request: Request, tenant: TenantPath, c: ContainerDep, who: KeyWriter
) -> Response:
    """Create an API key and show it this once (the answer is never cached; only its hash is
    stored; a resent form makes no second key)."""
    form = await request.form()
    token = once_token(form)
    raw = form.get("name", "")
    name = raw.strip() if isinstance(raw, str) else ""
    if not name:
        return await _tenant_page(
            request, c, who, tenant, 400, key_error="a key needs a name (e.g. ivr, crm)"
        )
    try:
        body = ApiKeyIn.model_validate({"name": name})
    except ValidationError as exc:
        text = validation_errors(exc, {})["name"]
        return await _tenant_page(request, c, who, tenant, 400, key_error=text, key_name=name[:100])
    if not shown_once.use(token):
        raise refuse_resent("API key")
    new = await c.tenants.create_key(tenant, body.name)
    return render(request, "tenants/key-created.html", 201, tenant=tenant, new=new)


async def _active_key(c: Any, tenant: str, key_id: str) -> ApiKey:
    for key in await c.tenants.list_keys(tenant):
        if key.id == key_id and key.revoked_at is None:
            found: ApiKey = key
            return found
    raise UiProblem(404, "Not found", f"tenant {tenant!r} has no active API key {key_id[:64]!r}")


@router.get("/tenants/{tenant}/api-keys/{key_id}/revoke", name="ui_revoke_api_key")
async def revoke_confirm(
    request: Request, tenant: TenantPath, key_id: KeyId, c: ContainerDep, who: KeyWriter
) -> Response:
    """Ask before revoking an API key."""
    return render(
        request, "tenants/revoke.html", tenant=tenant, key=await _active_key(c, tenant, key_id)
    )


@router.post("/tenants/{tenant}/api-keys/{key_id}/revoke", name="revoke_api_key")
async def revoke_api_key(
    request: Request, tenant: TenantPath, key_id: KeyId, c: ContainerDep, who: KeyWriter
) -> Response:
    """Revoke an API key: it stops working at once."""
    await c.tenants.revoke_key(tenant, key_id)
    raise UiRedirect(f"/ui/tenants/{quote(tenant)}?done=revoked")
