"""Public Engagement API routes for callbacks (port 3005, GES v3 paths)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Literal

from fastapi import APIRouter, Header, Query, Request
from pydantic import Field
from starlette.responses import Response

from dialback.callbacks import views
from dialback.callbacks.schemas import (
    CallbackId,
    CreateCallback,
    idempotency_key,
    parse_time_param,
)
from dialback.kit.errors import BadRequest
from dialback.kit.text import SafeText
from dialback.services.schemas import _check_tz
from dialback.web.deps import ContainerDep, TenantDep, api_tenant, container_of
from dialback.web.envelope import ERRORS, AnyEnvelope, EnvelopeResponse, IdEnvelope, ok
from dialback.web.fastpath import DirectRoute, read_json_body, validate_body

router = APIRouter(prefix="/engagement/v3", tags=["callbacks"])


IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description="Up to 255 printable ASCII characters: a retry with the same key (and "
        "the same body) answers the callback the first create booked, without booking again.",
    ),
]


async def create_callback(
    body: CreateCallback,
    c: ContainerDep,
    tenant: TenantDep,
    key: IdempotencyKeyHeader = None,
) -> EnvelopeResponse:
    """Book an immediate (no desiredTime) or scheduled callback."""
    return ok({"id": await c.callbacks.create(tenant, body, idempotency_key(key))})


async def _serve_create(request: Request) -> Response:
    """``create_callback`` without FastAPI's per-request dependency solving (the hot path).

    The same steps in the same order, with the same errors: read the body and parse it as
    JSON when the content type says JSON, authenticate, validate, read the Idempotency-Key,
    book.
    """
    raw, body = await read_json_body(request)
    headers = request.headers
    tenant = await api_tenant(request, headers.get("x-api-key"))
    req = validate_body(CreateCallback, raw, body)
    key = idempotency_key(headers.get("idempotency-key"))
    cid = await container_of(request).callbacks.create(tenant, req, key)
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
async def cancel_callback(body: CallbackId, c: ContainerDep, tenant: TenantDep) -> EnvelopeResponse:
    """Cancel a callback that no agent is handling yet."""
    return ok({"id": await c.callbacks.cancel(tenant, body.id)})


@router.post("/callbacks/retrieve", responses={200: {"model": AnyEnvelope}, **ERRORS})
async def retrieve_callback(
    body: CallbackId, c: ContainerDep, tenant: TenantDep
) -> EnvelopeResponse:
    """State, reason, position in queue and EWT of one callback."""
    return ok(views.callback(await c.callbacks.retrieve(tenant, body.id)))


ServicePath = Annotated[str, Field(min_length=1, max_length=100), SafeText]


def _tz(value: str | None) -> str:
    if value is None:
        return "UTC"
    try:
        return _check_tz(value)
    except ValueError as exc:
        raise BadRequest(f"timezone: {exc}") from None


async def availability(
    service_name: ServicePath,
    c: ContainerDep,
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
    tz = _tz(timezone)
    found = await c.callbacks.availability(
        tenant,
        service_name,
        start=parse_time_param("start", start, startMS, tz),
        end=parse_time_param("end", end, endMS, tz),
        number_of_days=numberOfDays,
        timezone=tz,
        max_slots=maxTimeSlots,
        report_busy=reportBusy,
    )
    return ok(views.availability(found))


async def open_for(
    service_name: ServicePath,
    c: ContainerDep,
    tenant: TenantDep,
    start: Annotated[str | None, Query(max_length=40)] = None,
    timezone: Annotated[str | None, Query(max_length=64)] = None,
) -> EnvelopeResponse:
    """Seconds until the service closes (0 when closed)."""
    t = parse_time_param("start", start, None, _tz(timezone))
    return ok(views.open_for(await c.callbacks.open_for(tenant, service_name, t)))


@router.get(
    "/callbacks/queue-status/{queue_name}", responses={200: {"model": AnyEnvelope}, **ERRORS}
)
async def queue_status(
    queue_name: ServicePath, c: ContainerDep, tenant: TenantDep
) -> EnvelopeResponse:
    """EWT and whether immediate and scheduled callbacks should be offered now."""
    return ok(views.queue_status(await c.callbacks.queue_status(tenant, queue_name)))


EwtMode = Literal["mode1", "mode2", "mode3"]


@router.get("/estimated-wait-time", responses={200: {"model": AnyEnvelope}, **ERRORS})
async def estimated_wait_time(
    c: ContainerDep,
    tenant: TenantDep,
    virtual_queues: Annotated[
        str, Query(alias="virtual-queues", min_length=1, max_length=2000), SafeText
    ],
    mode: EwtMode = "mode2",
) -> EnvelopeResponse:
    """Estimated wait time for each of a comma-separated list of virtual queues."""
    names = [n.strip() for n in virtual_queues.split(",") if n.strip()]
    if not names:
        raise BadRequest("virtual-queues: name at least one virtual queue")
    if len(names) > 50:
        raise BadRequest("virtual-queues: at most 50 virtual queues per request")
    return ok(views.wait_times(await c.callbacks.estimated_wait_times(tenant, names, mode)))


async def estimated_wait_time_of_queue(
    vq: ServicePath, c: ContainerDep, tenant: TenantDep, mode: EwtMode = "mode2"
) -> EnvelopeResponse:
    """Estimated wait time of one virtual queue (the path before GES-492 moved the list to
    the query string): the one ``EstimatedWaitTime`` item itself, as those clients read it."""
    ((name, found),) = await c.callbacks.estimated_wait_times(tenant, [vq], mode)
    return ok(views.wait_time(name, found))


_DOCUMENTED = {200: {"model": AnyEnvelope}, **ERRORS}
router.add_api_route(
    "/callbacks/availability/{service_name}", availability, methods=["GET"], responses=_DOCUMENTED
)
router.add_api_route(
    "/callbacks/open-for/{service_name}", open_for, methods=["GET"], responses=_DOCUMENTED
)

# Paths of earlier GES releases (the reference's path history, Genesys' raw-HTTP tutorials),
# served by the same handlers so that they answer exactly as the current routes do.
legacy_router = APIRouter(tags=["callbacks: historical paths"])


def _alias(path: str, endpoint: Callable[..., Awaitable[EnvelopeResponse]]) -> None:
    legacy_router.add_api_route(path, endpoint, methods=["GET"], responses=_DOCUMENTED)


_alias("/engagement/v3/callbacks/openfor/{service_name}", open_for)  # GES-429: open-for
# GES-371: /interactions/v3/callbacks/... -> /engagement/v3/callbacks/...
_alias("/interactions/v3/callbacks/openfor/{service_name}", open_for)
_alias("/interactions/v3/callbacks/availability/{service_name}", availability)
# GES-492: the virtual queue moved from the path to the ``virtual-queues`` query parameter.
_alias("/engagement/v3/estimated-wait-time/virtual-queues/{vq}", estimated_wait_time_of_queue)
