"""The Services pages: each tenant's services, one service's business hours, capacity week grid,
validation rules, throttles and retry policy; the editor (Administrator) and delete."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from dialback.identity.roles import Permission, Principal
from dialback.kit.errors import Conflict
from dialback.services.repository import ServiceRecord
from dialback.services.schemas import WEEKDAYS, ServiceConfig
from dialback.ui import service_form as sf
from dialback.ui.deps import UiProblem, UiRedirect, ui_requires, ui_router
from dialback.ui.forms import new_name_chooser
from dialback.ui.rendering import render, zone_names
from dialback.web.deps import ContainerDep
from dialback.web.params import NamePath, TenantPath

router: APIRouter = ui_router()
NAV_PATHS = ("/services",)

Reader = Annotated[Principal, ui_requires(Permission.SERVICES_READ)]
Writer = Annotated[Principal, ui_requires(Permission.SERVICES_WRITE)]
_NEW_CONFIG = ServiceConfig()


@router.get("/services", name="ui_services")
async def services_list(
    request: Request,
    c: ContainerDep,
    who: Reader,
    deleted: Annotated[str, Query(max_length=210)] = "",
) -> Response:
    """The services of the tenants the operator may see, per tenant."""
    by_tenant = await c.services.by_tenant(who.tenants)
    return render(
        request,
        "services/list.html",
        by_tenant=by_tenant,
        can_write=who.can(Permission.SERVICES_WRITE),
        deleted=deleted,
        days=WEEKDAYS,
        day_labels=sf.DAY_LABELS,
    )


@router.get("/services/new", name="ui_service_new")
async def service_new(
    request: Request,
    c: ContainerDep,
    who: Writer,
    tenant: Annotated[str, Query(max_length=200)] = "",
    name: Annotated[str, Query(max_length=200)] = "",
) -> Response:
    """Choose a new service's tenant and name, then edit its configuration."""
    by_tenant = await c.services.by_tenant(who.tenants)
    taken = {t: {s.name for s in rows} for t, rows in by_tenant}
    chooser = new_name_chooser(
        request,
        taken,
        tenant,
        name,
        kind="service",
        next_step="its configuration comes next",
        action="/services/new",
    )
    if chooser is not None:
        return chooser
    return _editor(request, tenant, name, sf.values_of(_NEW_CONFIG), _NEW_CONFIG, {}, True)


@router.get("/services/{tenant}/{name}", name="ui_service")
async def service_detail(
    request: Request, tenant: TenantPath, name: NamePath, c: ContainerDep, who: Reader
) -> Response:
    """One service's configuration, read-only (with the edit and delete controls for those who
    may)."""
    rec = await c.services.get(tenant, name, scope=who.tenants)
    return _detail(request, who, tenant, rec)


@router.get("/services/{tenant}/{name}/edit", name="ui_service_edit")
async def service_edit(
    request: Request, tenant: TenantPath, name: NamePath, c: ContainerDep, who: Writer
) -> Response:
    """The editor of one service's configuration."""
    rec = await c.services.get(tenant, name, scope=who.tenants)
    return _editor(request, tenant, name, sf.values_of(rec.config), rec.config, {}, False)


@router.post("/services/{tenant}/{name}", name="put_service")
async def put_service(
    request: Request, tenant: TenantPath, name: NamePath, c: ContainerDep, who: Writer
) -> Response:
    """Save the editor's configuration (``mode=create``: a new service, never a replacement)."""
    form = await request.form()
    creating = form.get("mode") == "create"
    base = (
        _NEW_CONFIG if creating else (await c.services.get(tenant, name, scope=who.tenants)).config
    )
    parsed = sf.parse(form)
    if parsed.config is None:
        return _editor(request, tenant, name, parsed.values, base, parsed.errors, creating, 400)
    try:
        res = await c.services.put(
            tenant, name, parsed.config, scope=who.tenants, create_only=creating
        )
    except Conflict as exc:
        errors = {sf.GENERAL: [exc.message]}
        return _editor(request, tenant, name, parsed.values, base, errors, creating, 409)
    notice = "Service created." if res.created else "Service saved."
    if not res.routing_provisioned:
        notice += " Its routing objects are not provisioned yet (retried in the background)."
    return _detail(request, who, tenant, res.record, notice=notice, warnings=res.warnings)


@router.post("/services/{tenant}/{name}/delete", name="delete_service")
async def delete_service(
    request: Request, tenant: TenantPath, name: NamePath, c: ContainerDep, who: Writer
) -> Response:
    """Delete a service once the operator has confirmed it (409 while it has open callbacks)."""
    form = await request.form()
    if form.get("confirm") != "yes":
        raise UiProblem(
            400, "Not confirmed", "confirm: tick the box to confirm the delete, then try again."
        )
    await c.services.delete(tenant, name, scope=who.tenants)
    raise UiRedirect(f"/ui/services?deleted={quote(f'{tenant}/{name}', safe='/')}")


def _detail(
    request: Request,
    who: Principal,
    tenant: str,
    rec: ServiceRecord,
    *,
    notice: str = "",
    warnings: tuple[str, ...] = (),
) -> Response:
    cfg = rec.config
    values = sf.values_of(cfg)
    rows = sf.grid_rows(cfg, cfg.capacity.slot_minutes)
    return render(
        request,
        "services/detail.html",
        tenant=tenant,
        rec=rec,
        cfg=cfg,
        values=values,
        rows=sf.shown_rows(rows, values),
        all_rows=len(rows),
        unaligned=sf.unaligned(cfg),
        days=WEEKDAYS,
        day_labels=sf.DAY_LABELS,
        can_write=who.can(Permission.SERVICES_WRITE),
        notice=notice,
        warnings=warnings,
    )


def _editor(
    request: Request,
    tenant: str,
    name: str,
    values: dict[str, object],
    base: ServiceConfig,
    errors: dict[str, list[str]],
    creating: bool,
    status: int = 200,
) -> Response:
    step = int(str(values.get("grid_minutes") or base.capacity.slot_minutes))
    return render(
        request,
        "services/edit.html",
        status,
        tenant=tenant,
        name=name,
        values=values,
        errors=errors,
        creating=creating,
        rows=sf.grid_rows(base, step if step in (30, 60) else 30),
        unaligned=sf.unaligned(base),
        days=WEEKDAYS,
        day_labels=sf.DAY_LABELS,
        retry_reasons=sf.RETRY_REASONS,
        zones=zone_names(),
        general=sf.GENERAL,
    )
