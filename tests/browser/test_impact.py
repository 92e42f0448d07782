"""The editor's impact page in a browser, at desktop and phone size: the chart with its band,
the numbers, the exports, and the holdout share set through the form."""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from personalize.services.impact import ImpactLog
from personalize.stores.state_sqlite import SQLiteStateStore
from tests.browser.support import EDITOR, IPHONE_UA, PHONE, Shop
from tests.impact_app import plant

pytestmark = pytest.mark.browser

PAGE = "/_personalize/admin/impact"


@pytest.fixture(scope="module")
def measured(shop: Shop) -> Shop:
    """Three weeks of holdout measurements in the shop's store (a +40 % planted uplift)."""

    async def fill() -> None:
        store = SQLiteStateStore(shop.db)
        await plant(ImpactLog(store), time.time(), days=21, per_day=1200, uplift=0.4, seed=7)
        await store.close()

    # Playwright's sync API runs an event loop on this thread: fill the store from another.
    filler = threading.Thread(target=asyncio.run, args=(fill(),))
    filler.start()
    filler.join()
    return shop


def no_sideways_scroll(page: Any) -> bool:
    return bool(page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1"))


def test_impact_page_at_desktop_and_phone_size(
    new_context: Callable[..., Any], measured: Shop, screenshot: Callable[..., Path]
) -> None:
    credentials = {"username": EDITOR, "password": measured.editor_password}
    page = new_context(http_credentials=credentials).new_page()
    page.goto(PAGE)
    assert page.get_by_role("heading", level=1).inner_text().startswith("Impact")
    charts = page.locator("svg.chart")
    assert charts.count() == 2 and charts.first.is_visible()
    box = charts.first.bounding_box()
    assert box is not None and box["width"] > 400
    assert page.locator("svg.chart polygon.band").count() == 2
    site = page.locator("#scopes tr.site").inner_text()
    assert site.startswith("Whole site") and "20,144 / 5,056" in site  # the planted visitors
    assert re.search(r"\+\d+\.\d % \[[-+]\d+\.\d, \+\d+\.\d\]", site)  # uplift [interval]
    page.get_by_text("The numbers behind the chart").click()
    assert page.locator("#numbers tbody tr").count() == 21
    assert no_sideways_scroll(page)
    screenshot(page, "impact-desktop", full_page=True)
    # The exports download what the page shows.
    with page.expect_download() as download:
        page.get_by_role("link", name="CSV").click()
    text = Path(download.value.path()).read_text()
    assert text.startswith("scope,day,") and text.count("\nsite,") == 21

    phone = new_context(
        viewport=PHONE, user_agent=IPHONE_UA, is_mobile=True, has_touch=True,
        http_credentials=credentials,
    ).new_page()  # fmt: skip
    phone.goto(PAGE)
    assert phone.locator("svg.chart").first.is_visible()
    chart = phone.locator("svg.chart").first.bounding_box()
    assert chart is not None and chart["width"] <= PHONE["width"]
    assert no_sideways_scroll(phone)
    phone.locator("#chart").scroll_into_view_if_needed()
    screenshot(phone, "impact-phone")


def test_the_holdout_share_is_set_in_the_form(
    new_context: Callable[..., Any], shop: Shop, screenshot: Callable[..., Path]
) -> None:
    credentials = {"username": EDITOR, "password": shop.editor_password}
    page = new_context(http_credentials=credentials).new_page()
    written = shop.content / "holdout.yaml"
    try:
        page.goto(PAGE + "#holdout")
        share = page.get_by_label("the site's holdout share")
        share.fill("0.5")  # more than 0.2: the browser's own check stops it first
        page.get_by_role("button", name="Save holdout").click()
        assert not written.exists()
        assert share.evaluate("e => e.validity.valid") is False
        share.fill("0.1")
        with page.expect_navigation():
            page.get_by_role("button", name="Save holdout").click()
        assert "Saved." in page.locator(".flash[role=status]").inner_text()
        assert written.read_text().endswith("holdout: 0.1\n")
        assert page.get_by_label("the site's holdout share").input_value() == "0.1"
        screenshot(page, "impact-holdout-saved")
    finally:  # the tests after this one see the shop as shipped (no holdout)
        written.unlink(missing_ok=True)
        deadline = time.monotonic() + 10  # the shop looks at its files once a second
        fresh = new_context(http_credentials=credentials)
        while 'name="site" value="0"' not in fresh.request.get(PAGE).text():
            assert time.monotonic() < deadline, "the shop kept the holdout"
            time.sleep(0.2)
