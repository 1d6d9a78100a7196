"""Where the sign-in page may send a browser afterwards: only a path under /ui."""

from __future__ import annotations

import pytest

from dialback.ui.deps import safe_next


@pytest.mark.parametrize(
    ("asked", "lands"),
    [
        ("", "/ui/"),
        ("/ui", "/ui"),
        ("/ui/", "/ui/"),
        ("/ui/callbacks/", "/ui/callbacks/"),
        ("/ui/callbacks?state=QUEUED&page=2", "/ui/callbacks?state=QUEUED&page=2"),
        ("/ui/./callbacks", "/ui/callbacks"),
        ("/ui/../admin/v1/tenants", "/ui/"),
        ("/uix", "/ui/"),
        ("/metrics", "/ui/"),
        ("https://evil.example/ui/", "/ui/"),
        ("http:/ui/", "/ui/"),
        ("//evil.example/ui/", "/ui/"),
        ("///evil.example/ui/", "/ui/"),
        ("/\\evil.example/ui/", "/ui/"),
        ("/ui/\\evil", "/ui/"),
        ("/ui/\r\nSet-Cookie:x=1", "/ui/"),
        ("/ui/ x", "/ui/"),
        ("javascript:alert(1)", "/ui/"),
        ("ui/callbacks", "/ui/"),
        ("/ui/" + "a" * 600, "/ui/"),
    ],
)
def test_safe_next(asked: str, lands: str) -> None:
    assert safe_next(asked) == lands
