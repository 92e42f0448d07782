"""A tiny shop behind the middleware with segments, content and an editor, for the page tests."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from personalize import MemoryStore, PersonalizeMiddleware, get_visitor, identify
from personalize.web.admin.passwords import hash_password

SECRET = "test-secret-key-of-at-least-32-chars"
UA = {
    "user-agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36"
}
PHONE = {
    "user-agent": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1"
}
PASSWORD = "correct horse battery staple"
EDITOR = ("editor", PASSWORD)
SEGMENTS = """\
# Device segments.
- name: mobile
  description: Phones
  rule: {attribute: device_type, operator: eq, value: mobile}
- name: desktop_users
  description: Big screens
  rule: {attribute: device_type, operator: eq, value: desktop}
"""
CONTENT = """\
# Home page slots. This comment must survive edits.
slots:
  hero:
    description: Top banner
    variants:
      - id: welcome
        html: "<h1>Welcome</h1>"
      - id: phone
        html: "<h1>On the go</h1>"
      - id: desk
        html: "<h1>Big screen deals</h1>"
    rules:
      - segment: mobile   # phones first
        variants: [phone]
    default: [welcome]

  banner:
    variants:
      - {id: plain, html: "<p>Plain</p>"}
    default: [plain]  # keep me
"""
CATEGORIES = {"/shoes/*": "shoes", "/bags/*": "bags"}


async def page(request: Request) -> Response:
    visitor = get_visitor(request)
    hero = await visitor.decide("hero")
    return HTMLResponse(f"<main data-visitor='{visitor.id}'>{hero.html}</main>")


async def login(request: Request) -> Response:
    await identify(request, request.query_params.get("user", "ann"))
    return HTMLResponse("<p>logged in</p>")


def folders(tmp_path: Path) -> tuple[Path, Path]:
    segments = tmp_path / "segments"
    content = tmp_path / "content"
    segments.mkdir()
    content.mkdir()
    (segments / "devices.yaml").write_text(SEGMENTS)
    (content / "home.yaml").write_text(CONTENT)
    return segments, content


def make(tmp_path: Path, **options: Any) -> PersonalizeMiddleware:
    """The middleware around the shop (TestClient(pz) drives it; pz is at hand for checks)."""
    segments, content = folders(tmp_path)
    app = Starlette(
        routes=[
            Route("/", page),
            Route("/shoes/{item}", page),
            Route("/bags/{item}", page),
            Route("/login", login),
        ]
    )
    options.setdefault("admin_users", {"editor": hash_password(PASSWORD, n=2**10)})
    return PersonalizeMiddleware(
        app,
        secret_key=SECRET,
        store=MemoryStore(),
        segments=segments,
        content=content,
        categories=CATEGORIES,
        flush_interval=0,
        **options,
    )


def client(pz: PersonalizeMiddleware, headers: dict[str, str] | None = None) -> TestClient:
    return TestClient(pz, headers={**UA, **(headers or {})})


def csrf_token(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found is not None, "no CSRF token on the page"
    return found.group(1)


def visitor_id(html: str) -> str:
    found = re.search(r"data-visitor='([^']+)'", html)
    assert found is not None
    return found.group(1)
