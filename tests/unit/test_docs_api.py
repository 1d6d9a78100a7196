"""docs/api.md lists every route both apps serve, and nothing they do not."""

from __future__ import annotations

import re
from pathlib import Path

from dialback.app import create_internal_app, create_public_app
from dialback.container import Container
from dialback.settings import Settings

DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"


def _normalise(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "{}", path.split("?")[0])


def test_every_route_is_documented(tmp_path: Path) -> None:
    rt = Container(Settings(database_url=f"sqlite+aiosqlite:///{tmp_path}/x.db"))
    served = set()
    for app in (create_public_app(rt), create_internal_app(rt)):
        for path, ops in app.openapi()["paths"].items():
            for method in ops:
                served.add((method.upper(), _normalise(path)))
    served.add(("GET", "/metrics"))
    text = DOC.read_text()
    documented = {
        (m, _normalise(p)) for m, p in re.findall(r"`(GET|POST|PUT|PATCH|DELETE) (/[^`\s]+)`", text)
    }
    documented |= {("GET", _normalise(p)) for p in re.findall(r"\| `GET (/[^`]+)` \|", text)}
    assert served - documented == set(), "routes missing from docs/api.md"
    assert documented - served == set(), "docs/api.md lists routes the code does not serve"
