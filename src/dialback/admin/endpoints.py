"""The admin API on the internal port: every route needs an admin bearer token."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from dialback.callbacks.admin import router as callbacks_router
from dialback.callbacks.endpoints import ERRORS
from dialback.services.admin import router as services_router
from dialback.tenants.admin import router as tenants_router
from dialback.tenants.service import require_admin

router = APIRouter(
    prefix="/admin/v1", tags=["admin"], dependencies=[Depends(require_admin)], responses=ERRORS
)
router.include_router(tenants_router)
router.include_router(services_router)
router.include_router(callbacks_router)
