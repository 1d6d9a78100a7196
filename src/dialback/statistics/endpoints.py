"""``POST /engagement/v3/statistics/operations/get-statistic-ex``: where GES proxies Genesys
statistics, dialback answers its own per-virtual-queue statistics."""

from __future__ import annotations

import math
import re
from typing import Annotated

from fastapi import APIRouter, Header, Query

from dialback.kit.errors import BadRequest
from dialback.kit.text import SafeText
from dialback.statistics import views
from dialback.statistics.service import MAX_QUEUES, MIN_MAX_AGE, RETENTION_SECONDS
from dialback.web.deps import ContainerDep, TenantDep
from dialback.web.envelope import ERRORS, AnyEnvelope, EnvelopeResponse, ok

router = APIRouter(prefix="/engagement/v3", tags=["statistics"])

_MAX_AGE = re.compile(r"max-age\s*=\s*(\S*)", re.IGNORECASE)


def parse_max_age(header: str | None) -> int:
    """The ``max-age`` of a ``cache-control`` header in seconds, 15 to 300 (15 when absent)."""
    if header is None:
        return MIN_MAX_AGE
    found = _MAX_AGE.search(header)
    if found is None:  # no-cache and the like: as fresh as GES allows
        return MIN_MAX_AGE
    digits = found.group(1).split(",")[0].strip().strip('"')
    if not (digits.isascii() and digits.isdigit() and len(digits) <= 10):
        raise BadRequest("cache-control: max-age must be a whole number of seconds")
    return min(max(int(digits), MIN_MAX_AGE), RETENTION_SECONDS)


@router.post(
    "/statistics/operations/get-statistic-ex", responses={200: {"model": AnyEnvelope}, **ERRORS}
)
async def get_statistic_ex(
    c: ContainerDep,
    tenant: TenantDep,
    cache_control: Annotated[str | None, Header(alias="cache-control", max_length=200)] = None,
    virtual_queues: Annotated[
        str | None, Query(alias="virtual-queues", min_length=1, max_length=2000), SafeText
    ] = None,
    windowSeconds: Annotated[int, Query(ge=60, le=86_400)] = 3600,
) -> EnvelopeResponse:
    """Callbacks per state, completions by reason over a window, EWT (mode2) and the active
    routing-engine consumers of the tenant's virtual queues (all of them, or those named)."""
    max_age = parse_max_age(cache_control)
    names = None
    if virtual_queues is not None:
        names = list(dict.fromkeys(n.strip() for n in virtual_queues.split(",") if n.strip()))
        if not names:
            raise BadRequest("virtual-queues: name at least one virtual queue")
        if len(names) > MAX_QUEUES:
            raise BadRequest(f"virtual-queues: at most {MAX_QUEUES} virtual queues per request")
    snapshot = await c.statistics.statistics(
        tenant, names, window_seconds=windowSeconds, max_age=max_age
    )
    age = max(0, math.floor(c.statistics.clock() - snapshot.computed_at))
    response = ok(views.statistics(snapshot, age))
    response.headers["cache-control"] = f"private, max-age={max(0, max_age - age)}"
    response.headers["age"] = str(age)
    return response
