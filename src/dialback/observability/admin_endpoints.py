"""Admin routes for observability: the log level, changeable at run time without restart."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from dialback.identity.roles import Permission
from dialback.observability.logging import change_level, current_level
from dialback.settings import LogLevel
from dialback.web.deps import requires
from dialback.web.envelope import EnvelopeResponse, ok

router = APIRouter(tags=["admin: logging"])


class LoggingIn(BaseModel):
    """New logging settings."""

    model_config = ConfigDict(extra="forbid")

    level: LogLevel = Field(
        description="trace, debug, info, warn or error, in any case (WARNING, CRITICAL and "
        "FATAL are accepted too); answered as the canonical lower-case name."
    )


@router.get("/logging", dependencies=[requires(Permission.LOGGING_READ)])
async def get_logging() -> EnvelopeResponse:
    """The current log level."""
    return ok({"level": current_level()})


@router.put("/logging", dependencies=[requires(Permission.LOGGING_WRITE, every_tenant=True)])
async def put_logging(body: LoggingIn) -> EnvelopeResponse:
    """Change the log level of this process now (every replica: call each, or roll the chart)."""
    level, previous = change_level(body.level)
    return ok({"level": level, "previous": previous})
