"""What every framework's small app shares: a site (segments/, content/), the page it renders,
and the checks of what the middleware must add to a response."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from personalize import MemoryStore

HERE = Path(__file__).resolve().parent
JINJA_TEMPLATES = HERE / "templates"  # page.html for FastAPI, Litestar and Quart
SECRET = "frameworks-test-secret-0123456789abcdef"
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
NEWSLETTER = "?utm_source=newsletter&utm_medium=email"  # a visit from the newsletter
WELCOME = "<h1>Welcome</h1>"
THANKS = "<h1>Thanks for reading</h1>"

SEGMENTS = """\
- name: newsletter_readers
  description: Came from the newsletter
  rule: {attribute: channel, operator: eq, value: email}
- name: regulars
  description: Three page views or more
  rule: {attribute: page_views, operator: gte, value: 3}
"""
CONTENT = f"""\
slots:
  hero:
    variants:
      - id: welcome
        html: "{WELCOME}"
      - id: thanks
        html: "{THANKS}"
    rules:
      - segment: newsletter_readers
        variants: [thanks]
    default: [welcome]
"""


def write_site(root: Path) -> dict[str, Any]:
    """segments/ and content/ under ``root``; returns PersonalizeMiddleware's options."""
    (root / "segments").mkdir()
    (root / "segments" / "site.yaml").write_text(SEGMENTS, encoding="utf-8")
    (root / "content").mkdir()
    (root / "content" / "home.yaml").write_text(CONTENT, encoding="utf-8")
    return {
        "secret_key": SECRET,
        "store": MemoryStore(),
        "segments": root / "segments",
        "content": root / "content",
        "flush_interval": 0,
    }


@dataclass(frozen=True)
class Page:
    """What page.html (each framework's version) rendered."""

    visitor_id: str
    user_id: str
    page_views: int
    segments: dict[str, str]  # name -> reasons
    hero: str  # the slot's HTML as sent, wrapper included


def read_page(html: str) -> Page:
    who = re.search(r'<p id="who">([^|<]*)\|([^|<]*)\|(\d+)</p>', html)
    hero = re.search(r"<main>(.*?)</main>", html, re.S)
    assert who is not None and hero is not None, html
    segments = dict(re.findall(r"<li>(\w+): ([^<]*)</li>", html))
    return Page(who[1], who[2], int(who[3]), segments, hero[1].strip())


def slot_html(variant_html: str) -> re.Pattern[str]:
    """The decided slot as it must reach the browser: the engine's wrapper, not escaped."""
    return re.compile(
        r'<div data-pz-slot="hero" data-pz-decision="[^"<>&]+">'
        + re.escape(variant_html)
        + "</div>"
    )


def visitor_cookie(set_cookies: Iterable[str]) -> str:
    """The one ``pz_visitor`` Set-Cookie among ``set_cookies``, checked attribute by attribute."""
    ours = [c for c in set_cookies if c.startswith("pz_visitor=")]
    assert len(ours) == 1, ours
    value, *attributes = ours[0].split("; ")
    assert attributes == ["Path=/", "Max-Age=31536000", "HttpOnly", "SameSite=Lax"], ours[0]
    return value.removeprefix("pz_visitor=")


def assert_private(cache_control: str | None, vary: Iterable[str]) -> None:
    """A personalized response: no shared cache may keep it, and caches key it by cookie."""
    assert cache_control is not None and cache_control.split(",")[0].strip() == "private"
    assert "public" not in cache_control and "s-maxage" not in cache_control, cache_control
    names = [n.strip().lower() for v in vary for n in v.split(",")]
    assert names.count("cookie") == 1, names
