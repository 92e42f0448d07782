"""The visitor's own page: shows what is stored, and "erase everything" empties the store."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.browser.support import IPHONE_UA, PHONE, Shop

pytestmark = pytest.mark.browser


def stored_rows(db: Path, key: str) -> dict[str, int]:
    """Rows under ``key`` in the shop's SQLite store (profiles, and write batches of the
    pending change log that hold changes of ``key``)."""
    with sqlite3.connect(db, timeout=5) as conn:
        profiles = conn.execute("SELECT count(*) FROM profiles WHERE key = ?", (key,))
        log = conn.execute("SELECT data FROM log")
        return {
            "profiles": profiles.fetchone()[0],
            "log": sum(key in json.loads(data) for (data,) in log),
        }


def wait_for(check: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_erase_removes_the_visitor_from_the_store(
    new_context: Callable[..., Any], shop: Shop, screenshot: Callable[..., Path]
) -> None:
    context = new_context()
    page = context.new_page()
    for path in ("/", "/bags", "/bags/tote-3", "/outdoor"):
        page.goto(path)

    page.goto("/_personalize/me")
    assert page.locator("h1").inner_text() == "What this site knows about you"
    exported = context.request.get("/_personalize/me/export")
    assert exported.ok
    data = exported.json()
    visitor_id = data["visitor_id"]
    assert visitor_id and data["user_id"] is None
    key = f"v:{visitor_id}"

    # Page views are written after the response, in batches: wait until all four are stored.
    def stored_views() -> int:
        profile = context.request.get("/_personalize/me/export").json()["stored_profile"]
        return int((profile or {}).get("page_views", 0))

    assert wait_for(lambda: stored_views() == 4), f"{stored_views()} page views stored"
    assert sum(stored_rows(shop.db, key).values()) > 0
    page.reload()
    stored = page.locator("#stored").inner_text()
    assert "1 visit and 4 page views" in stored
    assert "bags: 2" in stored and "outdoor: 1" in stored
    screenshot(page, "me-page", full_page=True)

    page.get_by_label("I want everything stored about me erased").check()
    with page.expect_navigation():
        page.get_by_role("button", name="Erase everything").click()
    assert "done=erased" in page.url
    assert "everything stored about you has been erased" in page.get_by_role("status").inner_text()

    # Gone from the store, and it stays gone (no late page view write brings it back).
    assert stored_rows(shop.db, key) == {"profiles": 0, "log": 0}
    page.goto("/")
    time.sleep(0.5)
    assert stored_rows(shop.db, key) == {"profiles": 0, "log": 0}
    # The browser goes on as a new anonymous visitor with a new id.
    again = context.request.get("/_personalize/me/export").json()
    assert again["visitor_id"] not in (None, visitor_id)
    assert not (again["stored_profile"] or {}).get("affinities")


def test_me_on_a_phone_fits_the_screen_and_leads_back(
    new_context: Callable[..., Any], screenshot: Callable[..., Path]
) -> None:
    context = new_context(viewport=PHONE, user_agent=IPHONE_UA, is_mobile=True, has_touch=True)
    page = context.new_page()
    for path in ("/?utm_source=newsletter&utm_medium=email&utm_campaign=weekly", "/bags",
                 "/bags/tote-3"):  # fmt: skip
        page.goto(path)
    page.goto("/_personalize/me")
    assert wait_for(lambda: "page views" in page.locator("#stored").inner_text())
    page.reload()
    width = page.evaluate("document.documentElement.clientWidth")
    assert page.evaluate("document.documentElement.scrollWidth") <= width  # no sideways scroll
    for table in page.locator("table").all():
        box = table.bounding_box()
        if box is not None:  # a table in a closed <details> has none
            assert box["x"] >= 0 and box["x"] + box["width"] <= width, box
    # Plain words about each part of the page, no variant ids.
    parts = page.locator("#parts").inner_text()
    assert "Big banner at the top of the home page" in parts and "free_returns" not in parts
    screenshot(page, "me-page-phone", full_page=True)
    header = page.locator("header.top")
    assert header.is_visible() and "Your data" in header.inner_text()
    with page.expect_navigation():
        header.get_by_role("link", name="Back to the site").click()
    assert page.url.rstrip("/") == page.url.split("/_personalize")[0].rstrip("/")
    assert page.locator(".logo").is_visible()
