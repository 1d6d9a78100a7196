"""Every state-changing route of the Callback UI is behind the one CSRF check, and the UI's
pages stay out of the OpenAPI document."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi.routing import APIRoute

from dialback.app import create_internal_app
from dialback.container import Container
from dialback.settings import Settings
from dialback.ui.deps import csrf_protect
from dialback.web.fastpath import served_routes


def _calls(dependant: Any) -> set[Any]:
    found = set()
    for dep in dependant.dependencies:
        found.add(dep.call)
        found |= _calls(dep)
    return found


def test_every_state_changing_ui_route_checks_csrf(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path}/x.db")
    app = create_internal_app(Container(settings))
    unsafe = [
        (route, path, methods)
        for route, path, methods in served_routes(app)
        if path.startswith("/ui") and methods - {"GET", "HEAD", "OPTIONS"}
    ]
    assert {(path, *sorted(methods)) for _, path, methods in unsafe} >= {
        ("/ui/login", "POST"),
        ("/ui/logout", "POST"),
    }
    assert all(isinstance(route, APIRoute) for route, _, _ in unsafe)
    unchecked = [path for route, path, _ in unsafe if csrf_protect not in _calls(route.dependant)]
    assert unchecked == []
    assert not any(p.startswith("/ui") for p in app.openapi()["paths"])


def test_every_template_and_asset_ships_in_the_wheel() -> None:
    import fnmatch
    import tomllib

    import dialback

    root = Path(dialback.__file__).parent
    pyproject = tomllib.loads((root.parents[1] / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["dialback"]
    files = [
        str(p.relative_to(root))
        for folder in ("ui/templates", "ui/static")
        for p in (root / folder).rglob("*")
        if p.is_file()
    ]
    assert len(files) >= 5
    assert [f for f in files if not any(fnmatch.fnmatch(f, pat) for pat in patterns)] == []
