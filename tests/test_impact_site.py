"""Impact through the real middleware: exposures and the outcomes of every channel reach the
shared state store, after the response and at shutdown, in one process and in two."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import orjson
import pytest
from starlette.testclient import TestClient

from personalize.content.holdout import site_held_out
from personalize.services.impact import ImpactLog
from personalize.stores.state_sqlite import SQLiteStateStore
from tests.impact_app import API_KEY, make_app

ROOT = Path(__file__).resolve().parent.parent
BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/120.0 Safari/537.36"


def totals(folder: Path) -> dict[str, float]:
    """Every daily field of the shop's state store, summed, read by a fresh store object."""

    async def read() -> dict[str, float]:
        store = SQLiteStateStore(folder / "shop.sqlite3")
        out: dict[str, float] = {}
        for _, fields in await ImpactLog(store).daily(time.time(), days=3):
            for name, amount in fields.items():
                out[name] = out.get(name, 0.0) + amount
        await store.close()
        return out

    return asyncio.run(read())


def test_every_channel_is_attributed_and_written_by_shutdown(tmp_path: Path) -> None:
    shop = make_app(tmp_path)
    arms: dict[str, str] = {}
    with TestClient(shop, headers={"user-agent": BROWSER}) as client:  # browsers only
        for i in range(40):
            client.cookies.clear()
            vid, variant = client.get("/").text.split("|")
            arms[vid] = variant
            if i % 4 == 0:  # an order in the page (visitor.track)
                assert client.post(f"/buy?order=o{i}&value=10").status_code == 200
            elif i % 4 == 1:  # the beacon's conversion of the decision shown
                decision = client.get("/_personalize/slots?slot=hero").json()["decisions"][0]
                body = orjson.dumps({"decision_id": decision["id"], "type": "conversion",
                                     "value": 5})  # fmt: skip
                assert client.post("/_personalize/collect", content=body).status_code == 204
        # The events API (a shop back end): orders by visitor id, one of them sent twice.
        events = [
            {"type": "order", "visitor_id": vid, "ts": time.time(),
             "properties": {"order_id": f"api-{vid}", "products": ["p2"], "value": 7}}
            for vid in list(arms)[2::4]
        ]  # fmt: skip
        headers = {"authorization": f"Bearer {API_KEY}", "content-type": "application/json"}
        for batch in (events, events[:1]):
            sent = client.post("/_personalize/events", content=orjson.dumps(batch), headers=headers)
            assert sent.status_code == 202, sent.text
    # Shutdown (the lifespan) wrote whatever the last responses left buffered.
    assert shop.personalizer.impact.pending == 0
    held = {vid for vid in arms if site_held_out(f"v:{vid}", 0.2)}
    assert {vid for vid, variant in arms.items() if variant == "welcome"} == held
    assert 0 < len(held) < len(arms)
    found = totals(tmp_path)
    for arm, members in (("holdout", held), ("personalized", set(arms) - held)):
        ids = list(arms)
        buyers = [ids[i] for i in range(len(ids)) if i % 4 in (0, 1, 2) and ids[i] in members]
        value = sum({0: 10.0, 1: 5.0, 2: 7.0}[ids.index(v) % 4] for v in buyers)
        assert found[f"site|{arm}|visitors"] == len(members)
        assert found.get(f"site|{arm}|converted", 0) == len(buyers)
        assert found.get(f"site|{arm}|value", 0) == value
        assert found[f"slot/hero|{arm}|visitors"] == len(members)
    assert found["segment/hero/(condition)|personalized|visitors"] == len(arms) - len(held)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(folder: Path, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PZ_IMPACT_DIR": str(folder), "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "tests.impact_app:from_env", "--factory",
         "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip


def _wait_up(port: int, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(server.stderr.read().decode() if server.stderr else "exited")
        try:
            httpx.get(f"http://127.0.0.1:{port}/_personalize/beacon.js", timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.2)
    raise AssertionError(f"server on {port} did not start")


def test_two_server_processes_share_one_impact_log(tmp_path: Path) -> None:
    """A visitor sees the page on one server and buys on the other: one visitor, one order."""
    from tests.impact_app import write_content

    write_content(tmp_path)
    ports = [_free_port(), _free_port()]
    servers = [_serve(tmp_path, port) for port in ports]
    arms: dict[str, str] = {}
    try:
        for port, server in zip(ports, servers, strict=True):
            _wait_up(port, server)
        urls = [f"http://127.0.0.1:{port}" for port in ports]
        for i in range(30):
            with httpx.Client(timeout=10, headers={"user-agent": BROWSER}) as client:
                page = client.get(urls[i % 2] + "/")  # the cookie is set here...
                vid, variant = page.text.split("|")
                arms[vid] = variant
                client.get(urls[(i + 1) % 2] + "/")  # ...the same visitor on the other server
                bought = client.post(urls[(i + 1) % 2] + f"/buy?order=o{i}&value={i}")
                assert bought.status_code == 200
    finally:
        for server in servers:
            server.send_signal(signal.SIGTERM)  # the lifespan's shutdown flushes the rest
        codes = [server.wait(timeout=30) for server in servers]
    errors = [s.communicate()[1].decode() for s in servers]
    # uvicorn re-raises the SIGTERM it handled, after its graceful shutdown (the lifespan).
    assert set(codes) <= {0, -signal.SIGTERM}, errors
    assert all("Traceback" not in e for e in errors), errors
    held = {vid for vid in arms if site_held_out(f"v:{vid}", 0.2)}
    found = totals(tmp_path)
    ids = list(arms)
    for arm, members in (("holdout", held), ("personalized", set(arms) - held)):
        assert found.get(f"site|{arm}|visitors", 0) == len(members)  # once, not once per server
        assert found.get(f"site|{arm}|converted", 0) == len(members)
        assert found.get(f"site|{arm}|value", 0) == sum(ids.index(v) for v in members)


@pytest.mark.parametrize("window", [59, 91 * 86_400])
def test_the_attribution_window_is_validated(tmp_path: Path, window: int) -> None:
    from personalize.exceptions import ConfigurationError

    with pytest.raises(ConfigurationError, match="attribution_window"):
        make_app(tmp_path, attribution_window=window)
