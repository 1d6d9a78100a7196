"""Public call-in routes (placeholder until the call-in module lands)."""

from fastapi import APIRouter

router = APIRouter(prefix="/engagement/v3", tags=["call-in"])
