"""Admin API models for tenants and API keys."""

from __future__ import annotations

from pydantic import Field

from dialback.kit.names import Name
from dialback.kit.text import SafeStr
from dialback.services.schemas import Strict


class TenantThrottle(Strict):
    """Tenant-wide limits on callbacks (and call-in requests) created per window."""

    max_callbacks: int = Field(500, ge=1, le=10_000_000, alias="maxCallbacks")
    window_seconds: int = Field(60, ge=1, le=86_400, alias="windowSeconds")
    # Unset: DIALBACK_CALLIN_MAX_PER_WINDOW, per DIALBACK_CALLIN_WINDOW_SECONDS.
    max_call_ins: int | None = Field(
        None, ge=1, le=10_000_000, alias="maxCallIns", exclude_if=lambda v: v is None
    )


class TenantRetention(Strict):
    """Per-tenant retention in days; an unset field follows DIALBACK_RETENTION_*_DAYS."""

    callback_days: int | None = Field(None, ge=1, le=3650, alias="callbackDays")
    callin_days: int | None = Field(None, ge=1, le=3650, alias="callInDays")


class TenantSettings(Strict):
    """Per-tenant settings."""

    throttle: TenantThrottle = Field(default_factory=TenantThrottle)
    retention: TenantRetention | None = None


class TenantIn(Strict):
    """Admin request to create a tenant."""

    name: Name
    settings: TenantSettings = Field(default_factory=TenantSettings)


class TenantPatch(Strict):
    """Admin request to change a tenant."""

    settings: TenantSettings | None = None
    disabled: bool | None = None


class ApiKeyIn(Strict):
    """Admin request to create an API key."""

    name: SafeStr = Field("default", min_length=1, max_length=100)
