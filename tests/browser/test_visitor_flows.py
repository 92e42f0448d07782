"""What visitors see: the tailored hero for an ad click on a phone, the why-disclosures, and the
known-customer greeting after login."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.browser.support import IPHONE_UA, PHONE, Shop

pytestmark = pytest.mark.browser

SEARCH_DEAL = "The deal you searched for is one tap away"  # content/home.yaml, hero: search_deal
STRANGER = "Sign in for your orders and favourites"  # greeting: stranger


def simulate(page: Any, *, country: str, device: str, source: str) -> None:
    """Use the demo's visitor simulator panel, as a person would."""
    panel = page.locator("section.simulator")
    panel.get_by_label("Country (by a sample IP)").select_option(country)
    panel.get_by_label("Device (by a sample User-Agent)").select_option(device)
    panel.get_by_label("Arriving from").select_option(source)
    panel.get_by_label(re.compile("Start a new visit")).check()
    with page.expect_navigation():
        panel.get_by_role("button", name="Apply and reload").click()


def open_why(page: Any, slot: str) -> Any:
    """Open a slot's "Why am I seeing this?" and return its text box."""
    why = page.locator(f".slot-{slot} details.why")
    why.locator("summary").click()
    body = why.locator(".why-body")
    body.wait_for(state="visible")
    return body


def test_uk_phone_visitor_from_google_ad_sees_the_search_hero(
    new_context: Callable[..., Any], shop: Shop, screenshot: Callable[..., Path]
) -> None:
    context = new_context(viewport=PHONE, user_agent=IPHONE_UA, is_mobile=True, has_touch=True)
    page = context.new_page()
    page.goto("/")
    simulate(page, country="gb", device="iphone", source="google_ads")

    # The simulator redirects to the ad's landing URL, with its utm tags and click id.
    assert "utm_medium=cpc" in page.url and "gclid=" in page.url
    status = page.locator(".sim-status")
    for words in ("United Kingdom (London) from 81.2.69.142", "iPhone", "Google Ads"):
        assert words in status.inner_text()

    # What the shop made of the request: London, a phone, a paid search click.
    known = page.locator("details.context")
    assert "(GB)" in known.locator("dt:has-text('Location') + dd").inner_text()
    assert known.locator("dt:has-text('Device') + dd").inner_text().startswith("mobile")
    assert (
        "paid_search" in known.locator("dt:has-text('This page view came from') + dd").inner_text()
    )
    segments = known.locator("ul.segments").inner_text()
    assert "paid_search_mobile" in segments and "uk_visitors" in segments

    # The hero: paid_search_mobile is the first rule and pins search_deal (deterministic).
    hero = page.locator(".slot-hero")
    assert hero.locator("h1").inner_text() == SEARCH_DEAL
    screenshot(page, "home-uk-phone-google-ad")
    why = open_why(page, "hero").inner_text()
    assert "search_deal" in why and "paid_search_mobile" in why

    # The banner for ad clicks: the engine may choose between its two allowed variants, but
    # the paid-search rule is what chose them.
    banner_why = open_why(page, "banner").inner_text()
    assert "paid_search" in banner_why


def test_product_page_explains_why(
    new_context: Callable[..., Any], shop: Shop, screenshot: Callable[..., Path]
) -> None:
    page = new_context().new_page()
    page.goto("/")
    simulate(page, country="gb", device="desktop", source="google_ads")
    page.get_by_role("navigation", name="Shop").get_by_role("link", name="Shoes").click()
    page.get_by_role("link", name=re.compile("Boot 7")).first.click()
    assert page.locator("h1").inner_text() == "Boot 7"

    # The visit began with the ad click, so the paid-search banner rule still applies here.
    why = open_why(page, "banner").inner_text()
    assert "paid_search" in why
    context_panel = page.locator("details.context")
    interests = context_panel.locator("dt:has-text('Interests') + dd").text_content() or ""
    assert re.search(r"shoes \([12]\)", interests), interests  # /shoes, /shoes/boot-7
    page.locator(".slot-banner").scroll_into_view_if_needed()
    screenshot(page, "product-why")


def test_login_on_a_second_context_greets_the_known_customer(
    new_context: Callable[..., Any], shop: Shop, screenshot: Callable[..., Path]
) -> None:
    anonymous = new_context().new_page()
    anonymous.goto("/bags")
    assert STRANGER in anonymous.locator(".slot-greeting").inner_text()

    page = new_context().new_page()
    page.goto("/outdoor")
    assert STRANGER in page.locator(".slot-greeting").inner_text()
    page.get_by_role("link", name="Sign in").click()
    page.get_by_label("E-mail").fill("ann@example.com")
    page.get_by_label("Password").fill("trail-ann")
    with page.expect_navigation():
        page.get_by_role("button", name="Sign in").click()

    # The very next page is for the known customer.
    greeting = page.locator(".slot-greeting")
    assert "Welcome back, Ann!" in greeting.inner_text()
    assert page.get_by_role("button", name="Sign out").is_visible()
    signed_in = page.locator("details.context dt:has-text('Signed in') + dd")
    assert signed_in.inner_text() == "yes, as Ann"
    why = open_why(page, "greeting").inner_text()
    assert "known_customer" in why
    screenshot(page, "greeting-logged-in")

    # The other browser is still a stranger.
    anonymous.reload()
    assert STRANGER in anonymous.locator(".slot-greeting").inner_text()
    assert anonymous.get_by_role("link", name="Sign in").is_visible()
