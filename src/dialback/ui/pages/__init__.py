"""The Callback UI's pages, one module per area; each has a ``router`` (built with
``ui.deps.ui_router``) and ``NAV_PATHS``, the navigation entries (``ui.rendering.NAV``) it
serves. Add a module to ``MODULES`` to install it."""

from __future__ import annotations

from types import ModuleType

from fastapi import APIRouter

from dialback.ui.pages import (
    callbacks_detail,
    callbacks_list,
    callins,
    developer,
    health,
    services,
    tenants,
    users,
)

# callbacks_list before callbacks_detail: /callbacks/export.csv is not a callback's id.
MODULES: tuple[ModuleType, ...] = (
    callbacks_list,
    callbacks_detail,
    callins,
    developer,
    health,
    services,
    tenants,
    users,
)


def page_routers() -> list[APIRouter]:
    """Every page module's router."""
    return [m.router for m in MODULES]


def built_paths() -> set[str]:
    """The navigation paths the installed pages serve."""
    return {p for m in MODULES for p in m.NAV_PATHS}
