"""Capture the request headers Debian's Chromium sends, for tests/data/client_hints_chromium.yaml.

Run from the project root (it needs /usr/bin/chromium and the playwright package, never a
downloaded browser):

    .venv/bin/python tests/capture_client_hints.py > tests/data/client_hints_chromium.yaml

A local HTTP server on 127.0.0.1 (a secure context, so Chromium sends client hints) logs every
request's headers. Each scenario loads /plain (no Accept-CH), then /ach, whose response carries
Accept-CH and Critical-CH, so Chromium retries it at once with the high-entropy hints, then
/after, which shows what Chromium keeps sending to the origin. Scenarios: headless as it is,
Playwright's "Pixel 7" device emulation, and Chromium's own User-Agent override with
user-agent metadata over CDP (what a real Android, Windows or macOS Chrome would report: the
headers are Chromium's own serialisation of that metadata).
"""

from __future__ import annotations

import contextlib
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

CHROMIUM = "/usr/bin/chromium"
HIGH_ENTROPY = (
    "Sec-CH-UA-Platform-Version, Sec-CH-UA-Model, Sec-CH-UA-Full-Version-List, "
    "Sec-CH-UA-Arch, Sec-CH-UA-Bitness, Sec-CH-UA-WoW64, Sec-CH-UA-Form-Factors"
)
CRITICAL = "Sec-CH-UA-Platform-Version, Sec-CH-UA-Model, Sec-CH-UA-Form-Factors"
SKIPPED = {"host", "cookie"}  # the port changes from run to run; no cookies are set

# (name, User-Agent, metadata for Emulation.setUserAgentOverride) of the CDP scenarios.
EMULATED: list[tuple[str, str, dict[str, Any]]] = [
    (
        "android-phone-reduced-ua",
        "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/{major}.0.0.0 Mobile Safari/537.36",
        {"platform": "Android", "platformVersion": "14.0.0", "architecture": "", "bitness": "",
         "model": "Pixel 7", "mobile": True, "formFactors": ["Mobile"]},
    ),
    (
        "android-tablet-reduced-ua",
        "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/{major}.0.0.0 Safari/537.36",
        {"platform": "Android", "platformVersion": "13.0.0", "architecture": "", "bitness": "",
         "model": "SM-X710", "mobile": False, "formFactors": ["Tablet"]},
    ),
    (
        "windows-11-frozen-ua",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/{major}.0.0.0 Safari/537.36",
        {"platform": "Windows", "platformVersion": "15.0.0", "architecture": "x86",
         "bitness": "64", "model": "", "mobile": False, "wow64": False,
         "formFactors": ["Desktop"]},
    ),
    (
        "macos-frozen-ua",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 "
        "(KHTML, like Gecko) Chrome/{major}.0.0.0 Safari/537.36",
        {"platform": "macOS", "platformVersion": "14.5.0", "architecture": "arm",
         "bitness": "64", "model": "", "mobile": False, "formFactors": ["Desktop"]},
    ),
    (
        "chromeos-reduced-ua",
        "Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/{major}.0.0.0 Safari/537.36",
        {"platform": "Chrome OS", "platformVersion": "16093.68.0", "architecture": "x86",
         "bitness": "64", "model": "", "mobile": False, "formFactors": ["Desktop"]},
    ),
]  # fmt: skip


class _Log:
    def __init__(self) -> None:
        self.requests: list[tuple[str, list[tuple[str, str]]]] = []
        self.lock = threading.Lock()

    def take(self) -> list[tuple[str, list[tuple[str, str]]]]:
        with self.lock:
            taken, self.requests = self.requests, []
        return taken


def _server(log: _Log) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            headers = [(k.lower(), v) for k, v in self.headers.items() if k.lower() not in SKIPPED]
            with log.lock:
                log.requests.append((self.path, headers))
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            if self.path == "/ach":
                self.send_header("Accept-CH", HIGH_ENTROPY)
                self.send_header("Critical-CH", CRITICAL)
            body = b"<!doctype html><title>hints</title>"
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            # Critical-CH: Chromium drops the first /ach response and asks again at once.
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    return ThreadingHTTPServer(("127.0.0.1", 0), Handler)


def _visit(page: Any, base: str, log: _Log) -> list[dict[str, Any]]:
    for path in ("/plain", "/ach", "/after"):
        page.goto(base + path)
    return [
        {"request": f"GET {path}", "headers": dict(headers)}
        for path, headers in log.take()
        if path != "/favicon.ico"
    ]


def capture() -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    log = _Log()
    server = _server(log)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    scenarios: list[dict[str, Any]] = []
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            version = browser.version
            major = version.split(".")[0]

            context = browser.new_context()
            scenarios.append(
                {"name": "headless-as-is", "how": "headless Chromium, no emulation",
                 "requests": _visit(context.new_page(), base, log)}
            )  # fmt: skip
            context.close()

            context = browser.new_context(**pw.devices["Pixel 7"])
            scenarios.append(
                {"name": "playwright-pixel-7",
                 "how": "Playwright's 'Pixel 7' device (User-Agent and is_mobile emulated, "
                        "no user-agent metadata)",
                 "requests": _visit(context.new_page(), base, log)}
            )  # fmt: skip
            context.close()

            for name, agent, metadata in EMULATED:
                context = browser.new_context()
                page = context.new_page()
                brands = [
                    {"brand": "Chromium", "version": major},
                    {"brand": "Google Chrome", "version": major},
                    {"brand": "Not.A/Brand", "version": "99"},
                ]
                full = [
                    {"brand": b["brand"], "version": version if b["version"] == major
                     else b["version"] + ".0.0.0"} for b in brands
                ]  # fmt: skip
                session = context.new_cdp_session(page)
                session.send(
                    "Emulation.setUserAgentOverride",
                    {"userAgent": agent.format(major=major),
                     "userAgentMetadata": {"brands": brands, "fullVersionList": full,
                                           "fullVersion": version, **metadata}},
                )  # fmt: skip
                scenarios.append(
                    {"name": name,
                     "how": "Chromium's User-Agent override with this metadata over CDP: "
                            + ", ".join(f"{k}={v}" for k, v in metadata.items()),
                     "requests": _visit(page, base, log)}
                )  # fmt: skip
                context.close()
            browser.close()
    finally:
        server.shutdown()
    return {"chromium": version, "scenarios": scenarios}


def main() -> int:
    import yaml

    data = capture()
    print(
        "# Request headers sent by Debian's Chromium "
        f"{data['chromium']} (/usr/bin/chromium, headless),\n"
        "# captured by tests/capture_client_hints.py (see its docstring for the set-up).\n"
        "# Host and Cookie are left out. Regenerate rather than edit."
    )
    print(yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=120), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
