"""The editor UI: closed without credentials; a mapping edited in it changes the public site
at once, without a restart."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from playwright.sync_api import Error as PlaywrightError

from tests.browser.support import EDITOR, IPHONE_UA, PHONE, ROOT, Shop

pytestmark = pytest.mark.browser

FREE_RETURNS = "Free returns for 60 days"  # content/home.yaml, banner: free_returns (default)
AD_OFFER = "Came from an ad? 10% off your first order with AD10."  # banner: paid_search_offer


def refused_in_the_browser(page: Any, path: str) -> Any:
    """Open ``path`` and return the response: Chromium gets a 401 challenge; without
    credentials it shows no page at all (ERR_INVALID_AUTH_CREDENTIALS), with wrong ones it
    shows the 401 answer."""
    with page.expect_response(lambda r: r.url.endswith(path)) as answer:
        try:
            page.goto(path)
        except PlaywrightError as exc:
            assert "ERR_INVALID_AUTH_CREDENTIALS" in str(exc)
        else:
            assert "Slots: who sees what" not in page.content()
    return answer.value


def test_editor_ui_is_closed_without_credentials(new_context: Callable[..., Any]) -> None:
    anonymous = new_context()
    shop_page = anonymous.new_page()
    shop_page.goto("/")
    for path in ("/_personalize/admin", "/_personalize/admin/slots"):
        response = refused_in_the_browser(anonymous.new_page(), path)
        assert response.status == 401, path
        assert "Basic" in (response.header_value("www-authenticate") or "")
        # The same request sent by a script of the shop's page: 401, nothing of the UI.
        status, body = shop_page.evaluate(
            "p => fetch(p, {credentials: 'omit'}).then(async r => [r.status, await r.text()])",
            path,
        )
        assert status == 401 and "Slots" not in body

    wrong = new_context(http_credentials={"username": EDITOR, "password": "not-the-password"})
    response = refused_in_the_browser(wrong.new_page(), "/_personalize/admin/slots")
    assert response.status == 401

    # A form post without credentials changes nothing either.
    posted = anonymous.request.post("/_personalize/admin/slots", form={"slot": "banner"})
    assert posted.status == 401


def test_editor_changes_a_mapping_and_the_site_follows_without_restart(
    new_context: Callable[..., Any], shop: Shop, screenshot: Callable[..., Path]
) -> None:
    original = (shop.content / "home.yaml").read_text()
    try:
        edit_the_banner_default(new_context, shop, screenshot)
    finally:  # the tests after this one (and their screenshots) see the shop as shipped
        (shop.content / "home.yaml").write_text(original)
        fresh = new_context()
        deadline = time.monotonic() + 10  # the shop looks at its files once a second
        while "banner.free_returns." not in fresh.request.get("/").text():
            assert time.monotonic() < deadline, "the restored content was not picked up"
            time.sleep(0.2)


def edit_the_banner_default(
    new_context: Callable[..., Any], shop: Shop, screenshot: Callable[..., Path]
) -> None:
    # Before: a visitor no banner rule matches (direct, no ad) gets the default, free returns.
    before = new_context().new_page()
    before.goto("/")
    assert FREE_RETURNS in before.locator(".slot-banner").inner_text()

    editor = new_context(http_credentials={"username": EDITOR, "password": shop.editor_password})
    page = editor.new_page()
    response = page.goto("/_personalize/admin/slots")
    assert response is not None and response.status == 200
    form = page.locator("#slot-banner form.mapping")
    form.locator("input[name=default][value=free_returns]").uncheck()
    form.locator("input[name=default][value=paid_search_offer]").check()
    with page.expect_navigation():
        form.get_by_role("button", name="Save banner").click()
    assert "done=saved" in page.url
    assert page.get_by_role("status").inner_text().startswith("Saved.")
    saved = page.locator("#slot-banner form.mapping")
    assert saved.locator("input[name=default][value=paid_search_offer]").is_checked()
    assert not saved.locator("input[name=default][value=free_returns]").is_checked()
    page.evaluate("window.scrollTo(0, 0)")  # the page opened at #slot-banner
    screenshot(page, "editor-slots")

    # Written to the (copied) YAML; the repository's content/ is untouched.
    banner = yaml.safe_load((shop.content / "home.yaml").read_text())["slots"]["banner"]
    assert banner["default"] == ["paid_search_offer"]
    repo = yaml.safe_load((ROOT / "content" / "home.yaml").read_text())["slots"]["banner"]
    assert repo["default"] == ["free_returns"]

    # After: a new visitor of the same, still running shop process sees the new default.
    os.kill(shop.pid, 0)  # the very process the session started: no restart happened
    after = new_context().new_page()
    after.goto("/")
    banner_slot = after.locator(".slot-banner")
    assert AD_OFFER in banner_slot.inner_text()
    assert FREE_RETURNS not in banner_slot.inner_text()
    decision = banner_slot.locator("[data-pz-decision]").get_attribute("data-pz-decision")
    assert decision is not None and decision.startswith("banner.paid_search_offer.")
    banner_slot.locator("details.why summary").click()
    assert "Our standard choice here" in banner_slot.locator(".why-body").inner_text()


def test_the_editor_ui_fits_a_phone(
    new_context: Callable[..., Any], shop: Shop, screenshot: Callable[..., Path]
) -> None:
    editor = new_context(
        viewport=PHONE,
        user_agent=IPHONE_UA,
        is_mobile=True,
        has_touch=True,
        http_credentials={"username": EDITOR, "password": shop.editor_password},
    )
    page = editor.new_page()
    for path in ("slots", "segments", "preview?path=/&device=mobile", "model", ""):
        page.goto(f"/_personalize/admin/{path}".rstrip("/"))
        width = page.evaluate("document.documentElement.clientWidth")
        scrolled = page.evaluate("document.documentElement.scrollWidth")
        assert scrolled <= width, f"{path}: {scrolled} px wide in {width}"
        assert str(shop.content.parent) not in page.content()  # no server paths
    page.goto("/_personalize/admin/slots")
    page.locator("#slot-hero").scroll_into_view_if_needed()
    screenshot(page, "editor-slots-phone")


def test_the_slots_page_shows_what_every_worker_learned(
    new_context: Callable[..., Any], shop: Shop, screenshot: Callable[..., Path]
) -> None:
    """Counters another process adds to the shop's state store (as another worker would)
    are what the slots page shows, at desktop and phone width."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from personalize import SQLiteStore

    counts = {  # arm:<slot>/<variant>|<device>/<channel>, and |* for every context
        "arm:hero/uk_free_delivery|*": {"trials": 412, "rewards": 37, "value": 74},
        "arm:hero/uk_free_delivery|mobile/organic_search": {"trials": 160, "rewards": 21},
        "arm:hero/uk_free_delivery|desktop/direct": {"trials": 252, "rewards": 16},
        "arm:hero/welcome|*": {"trials": 388, "rewards": 19},
        "arm:hero/welcome|desktop/direct": {"trials": 388, "rewards": 19},
    }

    async def added_by_another_worker() -> None:
        store = SQLiteStore(shop.db)
        state = store.state_store()
        try:
            await state.increment(
                {k: {f: float(v) for f, v in c.items()} for k, c in counts.items()}
            )
        finally:
            await state.close()
            await store.close()

    credentials = {"username": EDITOR, "password": shop.editor_password}
    page = new_context(http_credentials=credentials).new_page()

    def views() -> tuple[int, dict[str, int]]:
        """The hero's counted views, and per variant (the session's other tests count too)."""
        page.goto("/_personalize/admin/slots")
        learned = page.locator("#slot-hero details.learned")
        summary = learned.locator("summary").first.inner_text()
        total = int(summary.split("Learned so far: ")[1].split(" ")[0].replace(",", ""))
        rows = learned.locator("table").first.locator("tbody tr")  # not the contexts
        per = {
            rows.nth(i).locator("[data-label=variant]").inner_text(): int(
                rows.nth(i).locator("[data-label=views]").inner_text().replace(",", "")
            )
            for i in range(rows.count())
        }
        return total, per

    total, per = views()
    with ThreadPoolExecutor(1) as pool:  # Playwright's loop runs in this thread
        pool.submit(asyncio.run, added_by_another_worker()).result()
    total_after, per_after = views()
    assert total_after == total + 800
    assert per_after["uk_free_delivery"] == per.get("uk_free_delivery", 0) + 412
    assert per_after["welcome"] == per.get("welcome", 0) + 388
    learned = page.locator("#slot-hero details.learned")
    learned.locator("details summary").click()  # by context
    assert "mobile/organic_search" in learned.inner_text()
    learned.scroll_into_view_if_needed()
    screenshot(page, "editor-learned")
    phone = new_context(
        viewport=PHONE,
        user_agent=IPHONE_UA,
        is_mobile=True,
        has_touch=True,
        http_credentials=credentials,
    ).new_page()
    phone.goto("/_personalize/admin/slots")
    width = phone.evaluate("document.documentElement.clientWidth")
    assert phone.evaluate("document.documentElement.scrollWidth") <= width
    phone.locator("#slot-hero details.learned").scroll_into_view_if_needed()
    screenshot(phone, "editor-learned-phone")
