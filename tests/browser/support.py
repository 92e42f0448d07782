"""What the browser tests share: the browser's settings, page sizes, the running shop."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

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
