"""Public Engagement API routes for callbacks (port 3005, GES v3 paths)."""

from __future__ import annotations

import email.message
import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field, ValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response

from dialback.callbacks import service
from dialback.callbacks.schemas import CallbackId, CreateCallback
from dialback.errors import BadRequest
from dialback.http import DirectRoute, EnvelopeResponse, SafeText, ok
from dialback.services.schemas import _check_tz
from dialback.tenants.repository import Tenant
from dialback.tenants.service import api_tenant

router = APIRouter(prefix="/engagement/v3", tags=["callbacks"])
TenantDep = Annotated[Tenant, Depends(api_tenant)]


class Status(BaseModel):
    """The GES status block of every response."""

    code: int
    message: str
    corrId: str


class ErrorEnvelope(BaseModel):
    """An error answer: status names the problem, data may hold proposed slots."""

    status: Status
    data: Any = None


class IdData(BaseModel):
    id: str


class IdEnvelope(BaseModel):
    status: Status
    data: IdData


class AnyEnvelope(BaseModel):
    status: Status
    data: Any = None


ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorEnvelope} for code in (400, 401, 404, 409, 413, 415, 429)
}


def _runtime(request: Request) -> Any:
    return request.app.state.runtime


async def create_callback(
    body: CreateCallback, request: Request, tenant: TenantDep
) -> EnvelopeResponse:
    """Book an immediate (no desiredTime) or scheduled callback."""
    cid = await service.create_callback(_runtime(request), tenant, body)
    return ok({"id": cid})


def _is_json(content_type: str) -> bool:
    if content_type == "application/json":
        return True
    message = email.message.Message()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (
        subtype == "json" or subtype.endswith("+json")
    )


async def _serve_create(request: Request) -> Response:
    """``create_callback`` without FastAPI's per-request dependency solving (the hot path).

    The same steps in the same order, with the same errors: read the body and parse it as
    JSON when the content type says JSON, authenticate, validate, book.
    """
    raw = await request.body()
    body: Any = None
    if raw:
        content_type = request.headers.get("content-type")
        if content_type and _is_json(content_type):
            try:
                body = json.loads(raw)
            except json.JSONDecodeError as exc:
                error = {
                    "type": "json_invalid",
                    "loc": ("body", exc.pos),
                    "msg": "JSON decode error",
                    "input": {},
                    "ctx": {"error": exc.msg},
                }
                raise RequestValidationError([error], body=exc.doc) from None
            except Exception:
                # Not UTF-8/16/32, nested too deeply, an integer with too many digits: what
                # FastAPI raises (the error handler words it for the client).
                raise HTTPException(400, "There was an error parsing the body") from None
        else:
            body = raw  # refused below: 415
    tenant = await api_tenant(request, request.headers.get("x-api-key"))
    if not raw:
        errors: list[Any] = [{"type": "missing", "loc": ("body",), "msg": "Field required"}]
        raise RequestValidationError(errors, body=None)
    try:
        req = CreateCallback.model_validate(body, from_attributes=True)
    except ValidationError as exc:
        errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
        raise RequestValidationError(errors, body=body) from None
    cid = await service.create_callback(_runtime(request), tenant, req)
    return ok({"id": cid})


class _CreateRoute(DirectRoute):
    """Documented from ``create_callback``'s signature, served by ``_serve_create``."""

    serve = staticmethod(_serve_create)


router.add_api_route(
    "/callbacks/create",
    create_callback,
    methods=["POST"],
    responses={200: {"model": IdEnvelope}, **ERRORS},
    route_class_override=_CreateRoute,
)


@router.post("/callbacks/cancel", responses={200: {"model": IdEnvelope}, **ERRORS})
async def cancel_callback(
    body: CallbackId, request: Request, tenant: TenantDep
) -> EnvelopeResponse:
    """Cancel a callback that no agent is handling yet."""
    return ok({"id": await service.cancel_callback(_runtime(request), tenant, body.id)})


@router.post("/callbacks/retrieve", responses={200: {"model": AnyEnvelope}, **ERRORS})
async def retrieve_callback(
    body: CallbackId, request: Request, tenant: TenantDep
) -> EnvelopeResponse:
    """State, reason, position in queue and EWT of one callback."""
    return ok(await service.retrieve_callback(_runtime(request), tenant, body.id))


ServicePath = Annotated[str, Field(min_length=1, max_length=100), SafeText]


def _tz(value: str | None) -> str:
    if value is None:
        return "UTC"
    try:
        return _check_tz(value)
    except ValueError as exc:
        raise BadRequest(f"timezone: {exc}") from None


@router.get(
    "/callbacks/availability/{service_name}", responses={200: {"model": AnyEnvelope}, **ERRORS}
)
async def availability(
    service_name: ServicePath,
    request: Request,
    tenant: TenantDep,
    start: Annotated[str | None, Query(max_length=40)] = None,
    startMS: Annotated[str | None, Query(max_length=20)] = None,
    end: Annotated[str | None, Query(max_length=40)] = None,
    endMS: Annotated[str | None, Query(max_length=20)] = None,
    numberOfDays: Annotated[int | None, Query(ge=1, le=31)] = None,
    timezone: Annotated[str | None, Query(max_length=64)] = None,
    maxTimeSlots: Annotated[int | None, Query(ge=1, le=5000)] = None,
    reportBusy: bool = False,
) -> EnvelopeResponse:
    """Slots where scheduled callbacks can be booked, with remaining capacity and total."""
    data = await service.availability(
        _runtime(request),
        tenant,
        service_name,
        start=service.parse_time_param("start", start, startMS),
        end=service.parse_time_param("end", end, endMS),
        number_of_days=numberOfDays,
        timezone=_tz(timezone),
        max_slots=maxTimeSlots,
        report_busy=reportBusy,
    )
    return ok(data)


@router.get("/callbacks/open-for/{service_name}", responses={200: {"model": AnyEnvelope}, **ERRORS})
async def open_for(
    service_name: ServicePath,
    request: Request,
    tenant: TenantDep,
    start: Annotated[str | None, Query(max_length=40)] = None,
    timezone: Annotated[str | None, Query(max_length=64)] = None,
) -> EnvelopeResponse:
    """Seconds until the service closes (0 when closed)."""
    _tz(timezone)
    t = service.parse_time_param("start", start, None)
    return ok(await service.open_for(_runtime(request), tenant, service_name, t))


@router.get(
    "/callbacks/queue-status/{queue_name}", responses={200: {"model": AnyEnvelope}, **ERRORS}
)
async def queue_status(
    queue_name: ServicePath, request: Request, tenant: TenantDep
) -> EnvelopeResponse:
    """EWT and whether immediate and scheduled callbacks should be offered now."""
    return ok(await service.queue_status(_runtime(request), tenant, queue_name))


@router.get("/estimated-wait-time", responses={200: {"model": AnyEnvelope}, **ERRORS})
async def estimated_wait_time(
    request: Request,
    tenant: TenantDep,
    virtual_queues: Annotated[
        str, Query(alias="virtual-queues", min_length=1, max_length=2000), SafeText
    ],
    mode: Literal["mode1", "mode2", "mode3"] = "mode2",
) -> EnvelopeResponse:
    """Estimated wait time for each of a comma-separated list of virtual queues."""
    names = [n.strip() for n in virtual_queues.split(",") if n.strip()]
    if not names:
        raise BadRequest("virtual-queues: name at least one virtual queue")
    if len(names) > 50:
        raise BadRequest("virtual-queues: at most 50 virtual queues per request")
    return ok(await service.estimated_wait_times(_runtime(request), tenant, names, mode))
