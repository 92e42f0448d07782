"""Browser tests: the demo shop served by a real uvicorn, driven by Debian's Chromium.

The browser is always ``/usr/bin/chromium`` (``apt-get install chromium``; ``scripts/test``
installs it when it runs as root), never one Playwright downloads. Without it (or without the
``playwright`` package) the tests skip, except with ``CI`` set, where they fail.

One shop process and one browser serve all the tests of this folder; every test opens its own
browser contexts (fresh cookies: a new visitor each). Screenshots go to a temporary folder, or
to ``docs/screenshots/`` with ``PERSONALIZE_SCREENSHOTS=1``.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from personalize.web.admin.passwords import hash_password
from tests.browser.support import (
    CHROMIUM,
    CHROMIUM_ARGS,
    DESKTOP,
    DESKTOP_AGENT,
    IN_CI,
    ROOT,
    START_TIMEOUT,
    Shop,
)


def _unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"{reason}; CI must run the browser tests", pytrace=False)
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_until_up(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the shop exited with {process.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                response.read()
            return
        except urllib.error.HTTPError:
            return  # it answers
        except OSError:
            time.sleep(0.1)
    pytest.fail(f"the shop did not answer at {url} within {START_TIMEOUT} s:\n{log.read_text()}")


@pytest.fixture(scope="package")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shop]:
    """``demo_site`` under uvicorn in a subprocess, on a free port of 127.0.0.1."""
    folder = tmp_path_factory.mktemp("shop")
    content = folder / "content"
    shutil.copytree(ROOT / "content", content)
    db = folder / "profiles.sqlite3"
    log = folder / "uvicorn.log"
    port = _free_port()
    editor_password = "browser-test-" + secrets.token_urlsafe(12)
    env = {
        **os.environ,
        "PZ_BROWSER_SECRET": secrets.token_urlsafe(32),
        "PZ_BROWSER_DB": str(db),
        # Relative to the server's working folder, so pages and screenshots show
        # "content/home.yaml", not a temporary path.
        "PZ_BROWSER_CONTENT": "content",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        "PZ_BROWSER_EDITOR_HASH": hash_password(editor_password, n=2**12),
    }
    command = [
        sys.executable, "-m", "uvicorn", "--factory", "tests.browser.shop_server:create",
        "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
    ]  # fmt: skip
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=folder, env=env, stdout=out, stderr=out)
    base_url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(base_url + "/health", process, log)
        yield Shop(base_url, db, content, process.pid, editor_password)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    """One headless Debian Chromium for all the browser tests.

    Package-scoped, not session-scoped: Playwright's sync API keeps an event loop running on
    this thread while it is open, and the tests that run after these call ``asyncio.run``.
    """
    if not os.path.exists(CHROMIUM):
        _unavailable(f"{CHROMIUM} is missing: sudo apt-get install chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playwright package is missing: pip install -e '.[dev]'")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def new_context(browser: Any, shop: Shop) -> Iterator[Callable[..., Any]]:
    """Opens browser contexts (desktop-sized unless told) on the shop; closes them after."""
    contexts: list[Any] = []

    # Headless Chromium says "HeadlessChrome" in its User-Agent, which the shop rightly
    # treats as a bot (no visitor id, no login): the tests present as the desktop browser.
    desktop_agent = DESKTOP_AGENT.format(version=browser.version.split(".")[0])

    def open_context(**options: Any) -> Any:
        options.setdefault("viewport", DESKTOP)
        options.setdefault("user_agent", desktop_agent)
        context = browser.new_context(base_url=shop.base_url, **options)
        context.set_default_timeout(10_000)
        contexts.append(context)
        return context

    yield open_context
    for context in contexts:
        context.close()


@pytest.fixture(scope="session")
def screenshot_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if os.environ.get("PERSONALIZE_SCREENSHOTS") == "1":
        folder = ROOT / "docs" / "screenshots"
        folder.mkdir(parents=True, exist_ok=True)
        return folder
    return tmp_path_factory.mktemp("screenshots")


@pytest.fixture
def screenshot(screenshot_dir: Path) -> Callable[..., Path]:
    """``screenshot(page, "name")`` saves ``name.png``; returns its path."""

    def take(page: Any, name: str, *, full_page: bool = False) -> Path:
        path = screenshot_dir / f"{name}.png"
        page.screenshot(path=str(path), full_page=full_page, animations="disabled")
        return path

    return take
