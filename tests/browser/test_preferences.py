"""The visitor's say on a phone: the /me preferences form fits a phone's width, works with taps,
and the home page follows what was said."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.browser.support import IPHONE_UA, PHONE, Shop

pytestmark = pytest.mark.browser


def within_width(page: Any, selector: str) -> None:
    """Every box under ``selector`` lies inside the phone's width (nothing to scroll sideways)."""
    right = page.evaluate(
        """(selector) => Math.max(...[...document.querySelectorAll(selector + ' *')]
            .filter((e) => e.getClientRects().length)
            .map((e) => e.getBoundingClientRect().right))""",
        selector,
    )
    assert right <= PHONE["width"], f"{selector} reaches {right}px on a {PHONE['width']}px phone"


def test_stating_preferences_on_a_phone_changes_the_home_page(
    new_context: Callable[..., Any], shop: Shop, screenshot: Callable[..., Path]
) -> None:
    context = new_context(viewport=PHONE, user_agent=IPHONE_UA, is_mobile=True, has_touch=True)
    page = context.new_page()
    for path in ("/shoes/sandal-5", "/shoes/boot-7", "/shoes/runner-42", "/"):
        page.goto(path)
    recommendation = page.locator(".slot-recommendation details.why")
    assert "Shown because you have been looking at shoes." in (recommendation.text_content() or "")

    page.goto("/_personalize/me")
    say = page.locator("#your-say")
    say.scroll_into_view_if_needed()
    within_width(page, "#your-say")
    shoes = say.locator(".choice-row", has_text="shoes")
    outdoor = say.locator(".choice-row", has_text="outdoor")
    # Radio buttons and their words are one target, big enough for a thumb.
    target = shoes.get_by_text("less").bounding_box()
    assert target is not None and target["height"] >= 24 and target["width"] >= 24
    shoes.get_by_label("less").tap()
    outdoor.get_by_label("more").tap()
    say.get_by_label("never: no promotions at all").tap()
    screenshot(page, "me-say-phone")
    with page.expect_navigation():
        say.get_by_role("button", name="Save my preferences").tap()

    assert "done=stated" in page.url
    assert "Saved" in page.get_by_role("status").inner_text()
    said = page.locator("#you-said").inner_text()
    assert "Show me less of shoes" in said and "Show me more of outdoor" in said
    assert "Offers: never" in said and "on this page" in said
    assert page.locator("#your-say .choice-row", has_text="shoes").get_by_label("less").is_checked()
    within_width(page, "#you-said")
    not_me = page.locator("#not-me")
    # outdoor_fans holds by what was said: listed, but not offered as an inference to deny.
    outdoor_fans = "Asked for more outdoor kit, or looked at three or more outdoor pages"
    fans = not_me.locator("li.group", has_text=outdoor_fans)
    assert "the interests you stated include outdoor" in fans.inner_text()
    assert "outdoor_fans" not in not_me.inner_text()
    assert not_me.get_by_role("button", name=f"Not me: {outdoor_fans}").count() == 0
    not_me.scroll_into_view_if_needed()
    screenshot(page, "me-said-phone")

    page.goto("/")
    why = page.locator(".slot-recommendation details.why").text_content() or ""
    assert "Shown because you told us you are interested in outdoor." in why
    assert "looking at shoes" not in why
    # "Not me" from /me: the shoes interest is already gone from what the shop shows.
    context_panel = page.locator("details.context").text_content() or ""
    assert "shoes (" not in context_panel
