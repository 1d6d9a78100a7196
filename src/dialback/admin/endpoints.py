"""Admin API routes (placeholder until the admin module lands)."""

from fastapi import APIRouter

router = APIRouter(prefix="/admin/v1", tags=["admin"])
