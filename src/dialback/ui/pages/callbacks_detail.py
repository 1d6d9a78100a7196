"""The Callback UI's page of one callback (fields, GES parameters, userData by role, timeline;
cancel, reschedule through an availability picker, recreate) and the Create form."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Query, Request
from pydantic import ValidationError
from starlette.datastructures import FormData
from starlette.responses import HTMLResponse, JSONResponse, Response

from dialback.callbacks import views
from dialback.callbacks.schemas import CreateCallback
from dialback.callbacks.service import Availability, CallbackDetail, CallbackStatus
from dialback.identity.roles import Permission, Principal
from dialback.kit.context import bind
from dialback.kit.errors import ApiError, BadRequest
from dialback.kit.text import check_text
from dialback.ui.deps import UiRedirect, ui_requires, ui_router
from dialback.ui.rendering import operator_zone, render
from dialback.web.deps import ContainerDep

router = ui_router()
NAV_PATHS = ("/callbacks/new",)

Reader = Annotated[Principal, ui_requires(Permission.CALLBACKS_READ)]
Writer = Annotated[Principal, ui_requires(Permission.CALLBACKS_WRITE)]
Short = Annotated[str, Query(max_length=100)]
USER_DATA_ROWS = 4
SLOT_DAYS = 3
# The audit action (ui.* or admin.*) of an operator's state change, by the change's reason.
VERBS = {"cancelled": "cancel_callback", "rescheduled": "reschedule_callback"}
SOURCES = {"monitor": "monitor", "routing": "routing engine", "api": "API", "admin": "operator"}
# The form's fields and the service's names for them (its 400s say "phoneNumber: ...").
FIELDS = {
    "tenant": "tenant",
    "serviceName": "service",
    "phoneNumber": "phone",
    "desiredTime": "when",
    "userData": "userData",
    "slot": "slot",
}
STATUS_TITLES = {400: "Bad request", 404: "Not found", 409: "Conflict", 429: "Not booked"}


@dataclass(frozen=True)
class TimelineEntry:
    """One line of a callback's timeline."""

    at: float
    kind: str  # "created", "state" or "audit"
    what: str
    to_state: str | None
    actor: str
    attempt: int | None
    reason: str | None
    corr_id: str | None


def _actor_of(ev: Any, audit: list[Any]) -> tuple[str, str | None]:
    """Who made a state change, and the corrId of the request or monitor step that did."""
    if ev.source == "admin":
        if ev.corr_id:
            same = [a for a in audit if a.corr_id == ev.corr_id]
            if same:
                return same[0].actor, ev.corr_id
        verb = VERBS.get(ev.reason or "", "")
        near = [
            a
            for a in audit
            if abs(a.at - ev.at) < 10 and a.outcome == "ok" and a.action.endswith(verb)
        ]
        if near and not ev.corr_id:
            # Written before migration 12: the operator's audit entry nearest in time.
            best = min(near, key=lambda a: abs(a.at - ev.at))
            return best.actor, best.corr_id
    return SOURCES.get(ev.source, ev.source), ev.corr_id


def timeline(d: CallbackDetail) -> list[TimelineEntry]:
    """State changes and operators' actions, oldest first."""
    entries = []
    if not any(views.is_creation(ev) for ev in d.history):
        # Booked before migration 12: no creation row, nor its corrId.
        entries.append(
            TimelineEntry(d.row.created_at, "created", "created", "SCHEDULED", "—", 1, None, None)
        )
    for ev in d.history:
        actor, corr = _actor_of(ev, d.audit)
        created = views.is_creation(ev)
        what = "created" if created else f"{ev.from_state or '—'} → {ev.to_state}"
        entries.append(
            TimelineEntry(
                ev.at,
                "created" if created else "state",
                what,
                ev.to_state,
                actor,
                ev.attempt,
                ev.reason,
                corr,
            )
        )
    for a in d.audit:
        entries.append(
            TimelineEntry(a.at, "audit", a.action, None, a.actor, None, a.outcome, a.corr_id)
        )
    order = {"created": 0, "state": 1, "audit": 2}
    return sorted(entries, key=lambda e: (e.at, order[e.kind]))


def _field_errors(exc: ApiError) -> tuple[dict[str, str], str]:
    """A service error as (errors by form field, the rest)."""
    name, sep, rest = exc.message.partition(": ")
    key = name.split(".")[0].split("[")[0]
    if sep and key in FIELDS:
        return {FIELDS[key]: rest if key != "userData" else exc.message}, ""
    return {}, exc.message


def _validation_errors(exc: ValidationError) -> dict[str, str]:
    out: dict[str, str] = {}
    for err in exc.errors():
        key = str(err["loc"][0]) if err["loc"] else ""
        out.setdefault(FIELDS.get(key, "form"), str(err["msg"]))
    return out


def _proposals(exc: ApiError) -> list[float]:
    slots = exc.data.get("slots") if isinstance(exc.data, dict) else None
    out = []
    for text in slots or {}:
        try:
            out.append(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp())
        except ValueError:
            continue
    return out


def _slot_time(value: str | None) -> float:
    """A picked slot's start (the radio's value: its ISO UTC time); 400 naming ``slot``."""
    if not value:
        raise BadRequest("slot: choose a slot")
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise BadRequest("slot: not a time (choose one of the slots shown)") from None


def slot_days(request: Request, slots: Availability | None) -> list[list[Any]]:
    """The slots grouped by day in the operator's time zone."""
    zone = operator_zone(request)
    days: dict[str, list[Any]] = {}
    for s in slots.slots if slots is not None else []:
        day = datetime.fromtimestamp(s.start, UTC).astimezone(zone).strftime("%Y-%m-%d")
        days.setdefault(day, []).append(s)
    return list(days.values())


def slot_value(ts: float) -> str:
    """A slot's radio value: its start as ISO UTC."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _detail_page(
    request: Request,
    principal: Principal,
    d: CallbackDetail,
    *,
    status: int = 200,
    error: str = "",
    notice: str = "",
    live: CallbackStatus | None = None,
) -> HTMLResponse:
    data = views.admin_detail(d, user_data=principal.can(Permission.CALLBACKS_USERDATA))
    return render(
        request,
        "callbacks/detail.html",
        status,
        cb=d.row,
        data=data,
        params=views.booking_fields(d.row),
        push_targets=views.push_targets(d.row),
        show_user_data=principal.can(Permission.CALLBACKS_USERDATA),
        can_write=principal.can(Permission.CALLBACKS_WRITE),
        # The Developer page's lookup needs both.
        can_lookup=principal.can(Permission.LOGGING_WRITE)
        and principal.can(Permission.REQUESTS_LOOKUP),
        timeline=timeline(d),
        live=live,
        error=error,
        notice=notice,
    )


NOTICES = {
    "cancelled": "Cancelled.",
    "rescheduled": "Rescheduled.",
    "created": "Booked.",
    "recreated": "Recreated: this is the new callback.",
}


async def _tenants_of(c: Any, principal: Principal) -> list[str]:
    if principal.tenants is not None:
        return sorted(principal.tenants)
    return [t.name for t in await c.tenants.list() if not t.disabled]


async def _new_page(
    request: Request,
    c: Any,
    principal: Principal,
    tenant_name: str | None,
    service_name: str | None,
    *,
    status: int = 200,
    values: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    error: str = "",
) -> HTMLResponse:
    tenant_names = await _tenants_of(c, principal)
    tenant_name = tenant_name if tenant_name in tenant_names else None
    if tenant_name is None and tenant_names:
        tenant_name = tenant_names[0]
    services: list[str] = []
    slots: Availability | None = None
    if tenant_name is not None:
        services = [s.name for s in await c.services.list(tenant_name)]
    if service_name not in services:
        service_name = services[0] if services else None
    slot_error = ""
    if tenant_name is not None and service_name is not None:
        tenant = await c.callbacks.tenant_in_scope(tenant_name, principal.tenants)
        try:
            slots = await c.callbacks.slots(tenant, service_name, days=SLOT_DAYS)
        except ApiError as exc:
            slot_error = exc.message
    values = values or {}
    rows = list(values.get("user_data", []))
    rows += [("", "")] * max(USER_DATA_ROWS - len(rows), 1)
    return render(
        request,
        "callbacks/new.html",
        status,
        tenants=tenant_names,
        tenant=tenant_name,
        services=services,
        service=service_name,
        slots=slots,
        days=slot_days(request, slots),
        slot_error=slot_error,
        slot_value=slot_value,
        values=values,
        user_data_rows=rows,
        errors=errors or {},
        error=error,
    )


@router.get("/callbacks/new", name="new_callback_form")
async def new_callback_form(
    request: Request,
    c: ContainerDep,
    principal: Writer,
    tenant: Short | None = None,
    service: Short | None = None,
) -> HTMLResponse:
    """The Create form: tenant (when several), service, number, ASAP or a slot, userData."""
    return await _new_page(request, c, principal, tenant, service)


@router.get("/callbacks/validate-number", name="validate_number")
async def validate_number(
    c: ContainerDep,
    principal: Writer,
    tenant: Short = "",
    service: Short = "",
    phone: Annotated[str, Query(max_length=64)] = "",
) -> JSONResponse:
    """The number checked against the service's rules as the operator types:
    ``{ok, message, normalised}``."""
    try:
        found = await c.callbacks.tenant_in_scope(tenant, principal.tenants)
        if not phone.strip():
            raise BadRequest("phoneNumber: enter a phone number")
        normalised = await c.callbacks.check_number(found, service, phone)
    except ApiError as exc:
        _name, _sep, message = exc.message.partition(": ")
        return JSONResponse({"ok": False, "message": message or exc.message, "normalised": None})
    return JSONResponse({"ok": True, "message": f"valid: {normalised}", "normalised": normalised})


def _user_data(form: FormData) -> tuple[list[tuple[str, str]], dict[str, Any]]:
    keys = [str(k) for k in form.getlist("ud_key")]
    vals = [str(v) for v in form.getlist("ud_value")]
    rows = list(zip(keys, vals, strict=False))
    data: dict[str, Any] = {}
    for k, v in rows:
        k = k.strip()
        if not k and not v:
            continue
        if not k:
            raise BadRequest("userData: a value without a key")
        try:
            check_text(k)
        except ValueError as exc:
            raise BadRequest(f"userData: key {exc}") from None
        if not k.isidentifier() or len(k) > 64:
            raise BadRequest(f"userData: key {k[:64]!r} is not an identifier (letters, digits, _)")
        data[k] = v
    return [r for r in rows if r[0] or r[1]], data


@router.post("/callbacks/new", name="create_callback")
async def create_callback(request: Request, c: ContainerDep, principal: Writer) -> Response:
    """Book a callback through the same path as the API's create; its page after."""
    form = await request.form()
    tenant_name = str(form.get("tenant", ""))[:100]
    service_name = str(form.get("service", ""))[:100]
    phone = str(form.get("phone", ""))[:64]
    when = str(form.get("when", "asap"))[:40]
    values: dict[str, Any] = {"phone": phone, "when": when}
    errors: dict[str, str] = {}
    try:
        rows, user_data = _user_data(form)
        values["user_data"] = rows
        body: dict[str, Any] = {
            "serviceName": service_name,
            "phoneNumber": phone,
            "userData": user_data,
        }
        if when != "asap":
            body["desiredTime"] = datetime.fromtimestamp(_slot_time(when), UTC)
        tenant = await c.callbacks.tenant_in_scope(tenant_name, principal.tenants)
        bind(tenant=tenant.name)  # as an API key binds its tenant: the story's lines carry it
        try:
            req = CreateCallback.model_validate(body)
        except ValidationError as exc:
            errors = _validation_errors(exc)
            raise BadRequest("; ".join(f"{k}: {v}" for k, v in errors.items())) from None
        cid = await c.callbacks.create(tenant, req, source="admin")
    except ApiError as exc:
        by_field, rest = _field_errors(exc)
        if errors:
            by_field, rest = errors, ""
        if "slot" in by_field:
            by_field["when"] = by_field.pop("slot")
        proposals = _proposals(exc)
        if proposals:
            rest = (rest + " " if rest else "") + "Pick a free slot below (full ones are marked)."
        return await _new_page(
            request,
            c,
            principal,
            tenant_name,
            service_name,
            status=exc.status,
            values=values,
            errors=by_field,
            error=rest or f"Not booked: {', '.join(by_field)} needs correcting.",
        )
    raise UiRedirect(f"/ui/callbacks/{cid}?done=created")


@router.get("/callbacks/{callback_id:uuid}", name="callback_detail")
async def callback_detail(
    request: Request,
    callback_id: uuid.UUID,
    c: ContainerDep,
    principal: Reader,
    done: Annotated[str, Query(max_length=20)] = "",
) -> HTMLResponse:
    """A callback: its fields, GES parameters, userData (by role) and timeline."""
    d = await c.callbacks.detail(str(callback_id), principal.tenants)
    live = await c.callbacks.live_status(d)
    return _detail_page(request, principal, d, notice=NOTICES.get(done, ""), live=live)


async def _after_failure(
    request: Request, c: Any, principal: Principal, callback_id: str, exc: ApiError
) -> HTMLResponse:
    if exc.status == 404:
        raise exc
    d = await c.callbacks.detail(callback_id, principal.tenants)
    title = STATUS_TITLES.get(exc.status, "Not done")
    return _detail_page(request, principal, d, status=exc.status, error=f"{title}: {exc.message}")


@router.post("/callbacks/{callback_id:uuid}/cancel", name="cancel_callback")
async def cancel_callback(
    request: Request, callback_id: uuid.UUID, c: ContainerDep, principal: Writer
) -> Response:
    """Cancel a callback no agent handles yet (409 shown on its page)."""
    cid = str(callback_id)
    try:
        await c.callbacks.admin_cancel(cid, principal.tenants)
    except ApiError as exc:
        return await _after_failure(request, c, principal, cid, exc)
    raise UiRedirect(f"/ui/callbacks/{cid}?done=cancelled")


@router.post("/callbacks/{callback_id:uuid}/recreate", name="recreate_callback")
async def recreate_callback(
    request: Request, callback_id: uuid.UUID, c: ContainerDep, principal: Writer
) -> Response:
    """A new immediate callback from this one's data; the new one's page."""
    cid = str(callback_id)
    try:
        new_id = await c.callbacks.recreate(cid, principal.tenants)
    except ApiError as exc:
        return await _after_failure(request, c, principal, cid, exc)
    raise UiRedirect(f"/ui/callbacks/{new_id}?done=recreated")


async def _picker(
    request: Request,
    c: Any,
    principal: Principal,
    cid: str,
    *,
    status: int = 200,
    error: str = "",
    proposals: list[float] | None = None,
) -> HTMLResponse:
    d, slots = await c.callbacks.reschedule_slots(cid, principal.tenants, days=SLOT_DAYS)
    return render(
        request,
        "callbacks/reschedule.html",
        status,
        cb=d.row,
        slots=slots,
        days=slot_days(request, slots),
        slot_value=slot_value,
        error=error,
        proposals=proposals or [],
    )


@router.get("/callbacks/{callback_id:uuid}/reschedule", name="reschedule_form")
async def reschedule_form(
    request: Request, callback_id: uuid.UUID, c: ContainerDep, principal: Writer
) -> HTMLResponse:
    """The availability picker: free and full slots of the next days, full ones disabled."""
    return await _picker(request, c, principal, str(callback_id))


@router.post("/callbacks/{callback_id:uuid}/reschedule", name="reschedule_callback")
async def reschedule_callback(
    request: Request, callback_id: uuid.UUID, c: ContainerDep, principal: Writer
) -> Response:
    """Move a SCHEDULED callback to the slot picked (errors shown on the picker)."""
    cid = str(callback_id)
    form = await request.form()
    picked = form.get("slot")
    try:
        at = _slot_time(picked if isinstance(picked, str) else None)
        await c.callbacks.reschedule(cid, at, principal.tenants)
    except ApiError as exc:
        if exc.status == 404:
            raise
        title = STATUS_TITLES.get(exc.status, "Not done")
        return await _picker(
            request,
            c,
            principal,
            cid,
            status=exc.status,
            error=f"{title}: {exc.message}",
            proposals=_proposals(exc),
        )
    raise UiRedirect(f"/ui/callbacks/{cid}?done=rescheduled")
