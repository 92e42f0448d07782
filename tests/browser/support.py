"""What the browser tests share: the browser's settings, page sizes, the running shop, and
the steps a person takes in it (the simulator panel, signing in, opening a why)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
IN_CI = bool(os.environ.get("CI"))
EDITOR = "editor"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
DESKTOP_AGENT = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/{version}.0.0.0 Safari/537.36"
)
IPHONE_UA = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1"
)
START_TIMEOUT = 30.0  # seconds for the shop to answer


@dataclass(frozen=True)
class Shop:
    """The running demo shop of this session."""

    base_url: str
    db: Path  # its SQLite store
    content: Path  # its (copied) content folder
    pid: int
    editor_password: str  # of the editor EDITOR

    def url(self, path: str) -> str:
        return self.base_url + path


def simulate(
    page: Any, *, country: str = "", device: str = "", source: str = "", hour: str = ""
) -> None:
    """Use the demo's visitor simulator panel, as a person would."""
    panel = page.locator("section.simulator")
    panel.get_by_label("Country", exact=True).select_option(country)
    panel.get_by_label("Device", exact=True).select_option(device)
    panel.get_by_label("Arriving from").select_option(source)
    panel.get_by_label("Local time").select_option(hour)
    panel.get_by_label(re.compile("Start a new visit")).check()
    with page.expect_navigation():
        panel.get_by_role("button", name="Apply and reload").click()


def sign_in(page: Any) -> None:
    page.get_by_role("link", name="Sign in").click()
    page.get_by_label("E-mail").fill("ann@example.com")
    page.get_by_label("Password").fill("trail-ann")
    with page.expect_navigation():
        page.get_by_role("button", name="Sign in").click()


def open_why(page: Any, slot: str) -> Any:
    """Open a slot's "Why am I seeing this?" and return its text box."""
    why = page.locator(f".slot-{slot} details.why")
    why.locator("summary").click()
    body = why.locator(".why-body")
    body.wait_for(state="visible")
    return body
