"""The demo shop under TestClient, as a browser drives it: clients, forms, and reading slots."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from typing import Any

from conftest import shared_data_path
from starlette.testclient import TestClient

from demo_site.app import create_app, packaged_geoip_db
from personalize import MemoryStore

DESKTOP = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36"
)
SECRET = "demo-site-test-secret-0123456789abcdef"
WHY = "Why am I seeing this?"
INTERNALS = ("rule at", "no rule matched", "p~", "drew", "suppressed ", "pinned by", ".yaml")


def geoip_db() -> str:
    """The demo's GeoLite2 database when the demo extra is installed, else MaxMind's test
    database (81.2.69.142, the simulator's UK sample, is London in both)."""
    return packaged_geoip_db() or str(
        shared_data_path("maxmind-test-db", "test-data", "GeoIP2-City-Test.mmdb")
    )


#: Wednesday 2026-06-03 at 10:00 UTC: the demo's content shows other heroes at night (22:00
#: to 05:59), in the evening on phones and at weekends; the pages here are read at this time.
WEEKDAY_MORNING = 1_780_480_800.0


def weekday_morning_clock() -> Callable[[], float]:
    """A clock that starts at :data:`WEEKDAY_MORNING` and runs at the real pace."""
    started = time.time()
    return lambda: WEEKDAY_MORNING + (time.time() - started)


def make_client(*, demo_mode: bool = False, **overrides: object) -> Iterator[TestClient]:
    overrides.setdefault("geoip_db", None)
    overrides.setdefault("clock", weekday_morning_clock())
    # Write page views before the response ends, so each request sees the ones before it.
    overrides.setdefault("flush_interval", 0.0)
    app = create_app(store=MemoryStore(), secret_key=SECRET, demo_mode=demo_mode, **overrides)
    with TestClient(app, headers={"user-agent": DESKTOP}) as client:
        yield client


def token(client: TestClient) -> str:
    """The CSRF token (double-submit: the cookie's value goes in the form)."""
    if "demo_csrf" not in client.cookies:
        client.get("/login")
    return client.cookies["demo_csrf"]


def post(client: TestClient, path: str, data: dict[str, str], **kwargs: Any) -> Any:
    """POST a form with this browser's CSRF token."""
    return client.post(path, data={"csrf_token": token(client), **data}, **kwargs)


def slot_why(html: str, slot: str) -> str:
    """The text of ``slot``'s why-disclosure, which shoppers read: never engine internals."""
    match = re.search(
        rf'<div class="slot slot-{slot}".*?<details class="why">(.*?)</details>', html, re.S
    )
    assert match, f"no {slot} slot with a why-disclosure"
    text = re.sub(r"\s+", " ", match.group(1))
    for internal in INTERNALS:
        assert internal not in text, f"{internal!r} shown to a shopper: {text}"
    return text


def engine_why(client: TestClient, slot: str) -> dict[str, Any]:
    """The engine's own explanation of this visit's decision (the decisions API)."""
    answer = client.get(f"/_personalize/slots?slot={slot}").json()
    why: dict[str, Any] = answer["decisions"][0]["why"]
    return why


def words(html: str) -> str:
    return re.sub(r"\s+", " ", html)


def variant(html: str, slot: str) -> str | None:
    match = re.search(rf'data-pz-decision="{slot}\.([a-z0-9_-]+)\.', html)
    return match.group(1) if match else None
