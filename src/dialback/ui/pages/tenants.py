"""The Tenants pages (Administrator): the tenants an operator may see with their state and
settings, create (an operator of every tenant only), change a tenant's throttle and retention,
disable/enable; per tenant its API keys: create (the key shown once), revoke (after a
confirmation). They call ``TenantAdmin`` with the admin API's models, as the admin API does."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Path, Request
from pydantic import ValidationError
from starlette.responses import Response

from dialback.identity.roles import Permission, Principal
from dialback.kit.errors import ApiError
from dialback.settings import Settings
from dialback.tenants.repository import ApiKey, TenantRecord
from dialback.tenants.schemas import (
    ApiKeyIn,
    TenantIn,
    TenantPatch,
    TenantRetention,
    TenantSettings,
)
from dialback.ui.deps import UiProblem, UiRedirect, ui_requires, ui_router
from dialback.ui.forms import (
    FormState,
    form_flag,
    form_text,
    notice_of,
    once_token,
    refuse_resent,
    refused_fields,
    shown_once,
    validation_errors,
)
from dialback.ui.rendering import render
from dialback.web.deps import ContainerDep
from dialback.web.params import TenantPath

router = ui_router()
NAV_PATHS = ("/tenants",)

# The admin API's model fields (dotted, by alias) and the form fields that hold them.
_SETTINGS_FIELDS = {
    "settings.throttle.maxCallbacks": "max_callbacks",
    "settings.throttle.windowSeconds": "window_seconds",
    "settings.throttle.maxCallIns": "max_call_ins",
    "settings.retention.callbackDays": "callback_days",
    "settings.retention.callInDays": "callin_days",
}
_TENANT_FIELDS = {"name": "name", **_SETTINGS_FIELDS}
_FORM_FIELDS = set(_TENANT_FIELDS.values())

KeyId = Annotated[str, Path(min_length=1, max_length=200)]
Reader = Annotated[Principal, ui_requires(Permission.TENANTS_READ)]
Writer = Annotated[Principal, ui_requires(Permission.TENANTS_WRITE)]
Creator = Annotated[Principal, ui_requires(Permission.TENANTS_WRITE, every_tenant=True)]
KeyReader = Annotated[Principal, ui_requires(Permission.API_KEYS_READ)]
KeyWriter = Annotated[Principal, ui_requires(Permission.API_KEYS_WRITE)]


def _own(stored: dict[str, Any]) -> tuple[TenantSettings, TenantRetention]:
    settings = TenantSettings.model_validate(stored)
    return settings, settings.retention or TenantRetention()


def settings_summary(stored: dict[str, Any], defaults: Settings) -> dict[str, str]:
    """A tenant's settings as short texts: throttle, call-in throttle, retention; what the
    tenant leaves unset shown as the service-wide value it follows, marked "default"."""
    own, retention = _own(stored)
    throttle = own.throttle

    def value(mine: int | None, default: int, unit: str) -> str:
        return f"{mine} {unit}" if mine else f"{default} {unit} (default)"

    return {
        "throttle": f"{throttle.max_callbacks} callbacks / {throttle.window_seconds} s",
        "callins": (
            f"{value(throttle.max_call_ins, defaults.callin_max_per_window, 'call-ins')}"
            f" / {defaults.callin_window_seconds} s"
        ),
        "retention": (
            f"callbacks {value(retention.callback_days, defaults.retention_callback_days, 'd')}, "
            f"call-ins {value(retention.callin_days, defaults.retention_callin_days, 'd')}"
        ),
    }


def _settings_values(stored: dict[str, Any]) -> dict[str, str]:
    own, retention = _own(stored)
    return {
        "max_callbacks": str(own.throttle.max_callbacks),
        "window_seconds": str(own.throttle.window_seconds),
        "max_call_ins": str(own.throttle.max_call_ins or ""),
        "callback_days": str(retention.callback_days or ""),
        "callin_days": str(retention.callin_days or ""),
    }


def _defaults(settings: Settings) -> dict[str, int]:
    """What an empty settings field stands for (the form's hints)."""
    throttle = TenantSettings().throttle
    return {
        "max_callbacks": throttle.max_callbacks,
        "window_seconds": throttle.window_seconds,
        "max_call_ins": settings.callin_max_per_window,
        "callback_days": settings.retention_callback_days,
        "callin_days": settings.retention_callin_days,
    }


def _settings_body(form: Any) -> dict[str, Any]:
    """The admin API's ``settings`` of the form's fields (an empty field left out)."""
    throttle: dict[str, Any] = {}
    retention: dict[str, Any] = {}
    for path, field in _SETTINGS_FIELDS.items():
        value = form_text(form, field, 20)
        if value:
            section, key = path.split(".")[1:]
            (throttle if section == "throttle" else retention)[key] = value
    settings: dict[str, Any] = {"throttle": throttle}
    if retention:
        settings["retention"] = retention
    return settings


async def _list_page(
    request: Request, c: Any, who: Principal, state: FormState = FormState()
) -> Response:
    rows = [r for r in await c.tenants.list() if who.sees_tenant(r.name)]
    return render(
        request,
        "tenants/list.html",
        state.status,
        tenants=[(r, settings_summary(r.settings, c.settings)) for r in rows],
        can_create=who.can(Permission.TENANTS_WRITE) and who.unscoped,
        can_write=who.can(Permission.TENANTS_WRITE),
        defaults=_defaults(c.settings),
        errors=state.errors,
        values=state.values or {},
        notice=state.notice,
    )


_LIST_NOTICES = {"disabled": "Tenant disabled.", "enabled": "Tenant enabled."}


@router.get("/tenants", name="ui_tenants")
async def tenants_page(request: Request, c: ContainerDep, who: Reader) -> Response:
    """The tenants the operator may see: state, throttle, retention; the create form."""
    return await _list_page(request, c, who, FormState(notice=notice_of(request, _LIST_NOTICES)))


@router.post("/tenants", name="create_tenant")
async def create_tenant(request: Request, c: ContainerDep, who: Creator) -> Response:
    """Create a tenant (an operator of every tenant only); bad fields answer 400 next to them."""
    form = await request.form()
    values = {f: form_text(form, f) for f in _FORM_FIELDS}
    if not values["name"]:
        errors = {"name": "a tenant needs a name"}
        return await _list_page(request, c, who, FormState(400, errors, values))
    try:
        body = TenantIn.model_validate({"name": values["name"], "settings": _settings_body(form)})
    except ValidationError as exc:
        errors = validation_errors(exc, _TENANT_FIELDS)
        return await _list_page(request, c, who, FormState(400, errors, values))
    try:
        rec = await c.tenants.create(body.name, body.settings)
    except ApiError as exc:
        errors = refused_fields(exc, _FORM_FIELDS)
        return await _list_page(request, c, who, FormState(exc.status, errors, values))
    raise UiRedirect(f"/ui/tenants/{quote(rec.name)}?done=created")


@router.post("/tenants/{tenant}/state", name="patch_tenant")
async def set_tenant_state(
    request: Request, tenant: TenantPath, c: ContainerDep, who: Writer
) -> Response:
    """Disable or enable a tenant (a disabled tenant's API keys stop working at once)."""
    form = await request.form()
    rec = await c.tenants.patch(tenant, TenantPatch(disabled=form_flag(form, "disabled")))
    done = "disabled" if rec.disabled else "enabled"
    if form_text(form, "back", 10) == "tenant":
        raise UiRedirect(f"/ui/tenants/{quote(rec.name)}?done={done}")
    raise UiRedirect(f"/ui/tenants?done={done}")


@router.post("/tenants/{tenant}/settings", name="set_tenant_settings")
async def set_tenant_settings(
    request: Request, tenant: TenantPath, c: ContainerDep, who: Writer
) -> Response:
    """Replace a tenant's throttle and retention (the admin API's PATCH of its ``settings``;
    an empty retention field: the service-wide default); bad fields answer 400 next to them."""
    form = await request.form()
    values = {f: form_text(form, f, 20) for f in _SETTINGS_FIELDS.values()}
    try:
        patch = TenantPatch.model_validate({"settings": _settings_body(form)})
    except ValidationError as exc:
        errors = validation_errors(exc, _SETTINGS_FIELDS)
        return await _tenant_page(request, c, who, tenant, FormState(400, errors, values))
    rec = await c.tenants.patch(tenant, patch)
    raise UiRedirect(f"/ui/tenants/{quote(rec.name)}?done=saved")


async def _tenant_page(
    request: Request, c: Any, who: Principal, tenant: str, state: FormState = FormState()
) -> Response:
    rec: TenantRecord = await c.tenants.get(tenant)
    keys: list[ApiKey] = (
        await c.tenants.list_keys(rec.name) if who.can(Permission.API_KEYS_READ) else []
    )
    keys.sort(key=lambda k: (k.revoked_at is not None, -k.created_at))
    return render(
        request,
        "tenants/tenant.html",
        state.status,
        tenant=rec,
        summary=settings_summary(rec.settings, c.settings),
        keys=keys,
        can_read_keys=who.can(Permission.API_KEYS_READ),
        can_write_keys=who.can(Permission.API_KEYS_WRITE),
        can_write=who.can(Permission.TENANTS_WRITE),
        defaults=_defaults(c.settings),
        errors=state.errors,
        values={**_settings_values(rec.settings), **(state.values or {})},
        once=shown_once.new(),
        notice=state.notice,
    )


_NOTICES = {
    "created": "Tenant created. Create an API key for its clients below.",
    "saved": "Settings saved: the throttle applies to the next request, the retention to the "
    "next sweep.",
    "revoked": "API key revoked: it no longer works.",
    "disabled": "Tenant disabled: its API keys are refused until it is enabled.",
    "enabled": "Tenant enabled.",
}


@router.get("/tenants/{tenant}", name="ui_tenant")
async def tenant_page(
    request: Request, tenant: TenantPath, c: ContainerDep, who: Reader
) -> Response:
    """One tenant: its settings (the form for those who may change them) and state, its API
    keys (prefixes only), create and revoke."""
    return await _tenant_page(
        request, c, who, tenant, FormState(notice=notice_of(request, _NOTICES))
    )


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
    values = {"key_name": name[:100]}
    if not name:
        errors = {"key_name": "a key needs a name (e.g. ivr, crm)"}
        return await _tenant_page(request, c, who, tenant, FormState(400, errors, values))
    try:
        body = ApiKeyIn.model_validate({"name": name})
    except ValidationError as exc:
        errors = validation_errors(exc, {"name": "key_name"})
        return await _tenant_page(request, c, who, tenant, FormState(400, errors, values))
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
