"""The visitor simulator in a real browser: its form fits its boxes on a desktop and a phone,
and a local time keeps the chosen country."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.browser.support import IPHONE_UA, PHONE, open_why, simulate

pytestmark = pytest.mark.browser

FIELDS = ("#sim-country", "#sim-device", "#sim-source", "#sim-hour")


def inside(inner: dict[str, float], outer: dict[str, float]) -> bool:
    return (
        inner["x"] >= outer["x"] - 0.5
        and inner["y"] >= outer["y"] - 0.5
        and inner["x"] + inner["width"] <= outer["x"] + outer["width"] + 0.5
        and inner["y"] + inner["height"] <= outer["y"] + outer["height"] + 0.5
    )


def overlap(a: dict[str, float], b: dict[str, float]) -> bool:
    return not (
        a["x"] + a["width"] <= b["x"]
        or b["x"] + b["width"] <= a["x"]
        or a["y"] + a["height"] <= b["y"]
        or b["y"] + b["height"] <= a["y"]
    )


def check_layout(page: Any) -> None:
    """No select overlaps another field or sticks out of its own box or the panel."""
    panel = page.locator("section.simulator").bounding_box()
    boxes = {}
    for selector in FIELDS:
        select = page.locator(selector).bounding_box()
        field = page.locator(f".field:has({selector})").bounding_box()
        assert inside(select, field), (selector, select, field)
        assert inside(field, panel), (selector, field, panel)
        boxes[selector] = field
    for a in FIELDS:
        for b in FIELDS:
            if a < b:
                assert not overlap(boxes[a], boxes[b]), (a, b, boxes[a], boxes[b])
    width = page.evaluate("document.documentElement.clientWidth")
    assert page.evaluate("document.documentElement.scrollWidth") <= width  # no sideways scroll


@pytest.mark.parametrize("device", ["desktop", "phone"])
def test_the_simulator_form_fits_its_boxes(
    new_context: Callable[..., Any], screenshot: Callable[..., Path], device: str
) -> None:
    options = (
        {"viewport": PHONE, "user_agent": IPHONE_UA, "is_mobile": True, "has_touch": True}
        if device == "phone"
        else {}
    )
    page = new_context(**options).new_page()
    page.goto("/")
    check_layout(page)
    # The longest options chosen: still inside their boxes.
    simulate(page, country="us-west", device="desktop", source="facebook_ads", hour="21")
    check_layout(page)
    if device == "phone":
        page.locator("section.simulator").scroll_into_view_if_needed()
        screenshot(page, "simulator-phone")


@pytest.mark.parametrize(("country", "hour", "code"), [("gb", "20", "GB"), ("de", "9", "DE")])
def test_a_local_time_keeps_the_chosen_country(
    new_context: Callable[..., Any],
    screenshot: Callable[..., Path],
    country: str,
    hour: str,
    code: str,
) -> None:
    page = new_context().new_page()
    page.goto("/")
    simulate(page, country=country, device="desktop", hour=hour)
    known = page.locator("details.context")
    assert known.locator("dt:has-text('Location') + dd").inner_text().endswith(f"({code})")
    local = known.locator("dt:has-text('Your local time') + dd").inner_text()
    assert re.match(rf"\w+ {int(hour):02d}:\d\d, ", local), local
    panel = page.locator("section.simulator")
    assert panel.locator("#sim-country").input_value() == country  # the form keeps the choice
    assert panel.locator("#sim-hour").input_value() == hour
    status = panel.locator(".sim-status").inner_text()
    assert f"{int(hour):02d}:00-{int(hour):02d}:59 local time" in status
    if country == "gb":
        segments = known.locator("ul.segments").inner_text()
        assert "uk_visitors" in segments and "us_visitors" not in segments
        assert "evening" in local
        came = known.locator("dt:has-text('This page view came from') + dd").inner_text()
        assert came == "direct"  # the form's own page is not where the visit came from
        known.evaluate("element => element.scrollIntoView({block: 'start'})")
        screenshot(page, "simulator-uk-evening")


def test_chromium_sends_the_hints_the_demo_asks_for(new_context: Callable[..., Any]) -> None:
    """A real Chromium on the demo (127.0.0.1 is a secure origin): the low-entropy hints come
    unasked, the ones Accept-CH names from the next page on."""
    page = new_context().new_page()
    response = page.goto("/")
    assert "Sec-CH-UA-Platform-Version" in response.headers["accept-ch"]
    device = page.locator("details.context dt:has-text('Device') + dd")
    first = device.text_content()  # the panel may be folded: its text, shown or not
    assert "Sec-CH-UA-Platform" in first and "Full-Version-List" not in first
    page.goto("/bags")
    assert "Sec-CH-UA-Full-Version-List" in device.text_content()


def test_an_ai_assistant_visit_on_a_reduced_user_agent(
    new_context: Callable[..., Any], screenshot: Callable[..., Path]
) -> None:
    page = new_context(viewport=PHONE, is_mobile=True, has_touch=True).new_page()
    page.goto("/")
    simulate(page, device="android-hints", source="chatgpt")
    check_layout(page)  # the longest new options fit
    known = page.locator("details.context")
    device = known.locator("dt:has-text('Device') + dd").inner_text()
    assert device.startswith("mobile, Android 15, Chrome Mobile"), device
    came = known.locator("dt:has-text('This page view came from') + dd").inner_text()
    assert came.startswith("ai_assistant (chatgpt")
    hero = page.locator(".slot-hero")
    assert "Sent here by an AI assistant?" in hero.inner_text()
    assert "ChatGPT sent you here" in open_why(page, "hero").inner_text()
    hero.scroll_into_view_if_needed()
    screenshot(page, "simulator-ai-assistant")
