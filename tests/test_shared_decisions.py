"""Decision state shared by real worker processes: two uvicorn servers on one SQLite file or
one Redis see the same caps, session picks and counters, and a restart keeps them."""

from __future__ import annotations

import base64
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import REDIS_URL, ROOT

DESKTOP = (  # a browser: bots get no id, no cookie and no caps
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36"
)
CONTENT = """
slots:
  hero:
    variants:
      - id: welcome
        html: <h1>Welcome</h1>
      - id: uk_free_delivery
        html: <h1>Free next-day delivery across the UK</h1>
        value: 2
        cap: {views: 5, rest_hours: 24}
    pin: uk_free_delivery
    default: [uk_free_delivery, welcome]
  teaser:
    variants:
      - id: a
        html: <p>A</p>
      - id: b
        html: <p>B</p>
    default: [a, b]
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Worker:
    """One uvicorn process serving tests/state_app.py."""

    def __init__(self, env: dict[str, str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--factory", "tests.state_app:create_app",
             "--host", "127.0.0.1", "--port", str(self.port), "--log-level", "warning"],
            cwd=ROOT,
            env={**os.environ, **env},
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"worker on port {self.port} did not start")
            time.sleep(0.1)

    def stop(self) -> None:
        """Stop it as a deployment does (SIGTERM: the lifespan writes what is buffered)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture(params=["sqlite", "redis"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    content = tmp_path / "content"
    content.mkdir()
    (content / "home.yaml").write_text(CONTENT)
    env = {"PZ_TEST_CONTENT": str(content), "PZ_TEST_STATE_TTL": "0.2"}
    if request.param == "redis":
        env["PZ_TEST_STORE"] = REDIS_URL
        env["PZ_TEST_PREFIX"] = request.getfixturevalue("redis_prefix")
    else:
        env["PZ_TEST_STORE"] = str(tmp_path / "site.sqlite3")
    return env


@pytest.fixture
def workers(backend: dict[str, str]) -> Iterator[list[Worker]]:
    started: list[Worker] = []
    try:
        started += [Worker(backend), Worker(backend)]
        yield started
    finally:
        for worker in started:
            worker.stop()


def page(client: httpx.Client, worker: Worker) -> dict[str, Any]:
    answer = client.get(f"{worker.url}/")
    assert answer.status_code == 200
    result: dict[str, Any] = answer.json()
    time.sleep(0.3)  # past the write-behind and the other worker's cache bound
    return result


def test_a_cap_counts_the_views_of_every_worker_and_survives_a_restart(
    workers: list[Worker], backend: dict[str, str]
) -> None:
    a, b = workers
    with httpx.Client(headers={"user-agent": DESKTOP}) as visitor:
        shown = [page(visitor, a)["hero"] for _ in range(3)]
        shown += [page(visitor, b)["hero"] for _ in range(3)]
        assert shown == ["uk_free_delivery"] * 5 + ["welcome"]
        assert page(visitor, a)["hero"] == "welcome"  # the first worker knows too
        for worker in workers:
            worker.stop()
        workers.append(Worker(backend))  # a new process: nothing in its memory
        assert page(visitor, workers[-1])["hero"] == "welcome"
    with httpx.Client(headers={"user-agent": DESKTOP}) as someone_else:
        assert page(someone_else, workers[-1])["hero"] == "uk_free_delivery"


def test_a_visitor_keeps_their_pick_on_every_worker(workers: list[Worker]) -> None:
    a, b = workers
    with httpx.Client(headers={"user-agent": DESKTOP}) as visitor:
        first = page(visitor, a)
        there = page(visitor, b)
        assert there["teaser"] == first["teaser"]
        assert any("kept for the session" in line for line in there["teaser_why"])


def test_exposures_and_rewards_add_up_across_workers(workers: list[Worker]) -> None:
    a, b = workers
    for i in range(6):
        with httpx.Client(headers={"user-agent": DESKTOP}) as visitor:
            page(visitor, workers[i % 2])
    time.sleep(0.3)
    for worker in (a, b):
        counts = httpx.get(f"{worker.url}/counts").json()
        assert counts["teaser/a"] + counts["teaser/b"] == 6  # one exposure per visitor


def learned_views(html: str, slot: str) -> dict[str, dict[str, str]]:
    """The slots page's learned figures of ``slot``: variant -> column -> text."""
    section = html.split(f'id="slot-{slot}"', 1)[1].split("</section>", 1)[0]
    table = section.split('class="learned"', 1)[1].split("</tbody>", 1)[0]
    rows = {}
    for row in table.split("<tr>")[2:]:
        cells = {
            label: " ".join(re.sub(r"<[^>]+>", " ", text).split())
            for label, text in re.findall(r'<td data-label="([^"]+)">(.*?)</td>', row, re.S)
        }
        rows[cells["variant"]] = cells
    return rows


def test_the_editor_page_of_every_worker_shows_the_shared_bandit_counters(
    backend: dict[str, str],
) -> None:
    from personalize.web.admin.passwords import hash_password

    editor = {"authorization": "Basic " + base64.b64encode(b"editor:s3cret-pass").decode()}
    env = {**backend, "PZ_TEST_EDITOR_HASH": hash_password("s3cret-pass")}
    started = [Worker(env), Worker(env)]
    try:
        a = started[0]
        for _ in range(5):  # five visitors, all on the first worker
            with httpx.Client(headers={"user-agent": DESKTOP}) as visitor:
                page(visitor, a)
        counts = httpx.get(f"{a.url}/counts").json()
        assert counts["teaser/a"] + counts["teaser/b"] == 5
        pages = [httpx.get(f"{w.url}/_personalize/admin/slots", headers=editor) for w in started]
        assert [p.status_code for p in pages] == [200, 200]
        shown = [learned_views(p.text, "teaser") for p in pages]
        # The second worker served no visitor: what it shows comes from the shared state.
        assert shown[0] == shown[1]
        for variant in ("a", "b"):
            views = counts[f"teaser/{variant}"]
            if views:
                assert shown[1][variant]["views"] == f"{views:.0f}"
            else:  # all five saw the other one (the bandit's draw): listed as not counted
                assert variant not in shown[1]
                assert f"Not counted yet (nothing learned of them): {variant}" in pages[1].text
        assert "Learned so far: 5 counted views" in pages[1].text
    finally:
        for worker in started:
            worker.stop()


def test_the_model_page_of_every_worker_shows_the_shared_snapshot(
    backend: dict[str, str],
) -> None:
    from personalize.web.admin.passwords import hash_password

    editor = {"authorization": "Basic " + base64.b64encode(b"editor:s3cret-pass").decode()}
    env = {**backend, "PZ_TEST_EDITOR_HASH": hash_password("s3cret-pass"), "PZ_TEST_LEARNING": "1"}
    started = [Worker(env), Worker(env)]
    try:
        a, b = started
        before = httpx.get(f"{b.url}/_personalize/admin/model", headers=editor).text
        assert "no worker has saved one yet" in before
        with httpx.Client(headers={"user-agent": DESKTOP}) as visitor:
            page(visitor, a)  # a learns from it and saves its models
        pages = [httpx.get(f"{w.url}/_personalize/admin/model", headers=editor) for w in started]
        assert [p.status_code for p in pages] == [200, 200]
        cards = [p.text.split('id="shared-model"', 1)[1].split("</div>", 1)[0] for p in pages]
        assert cards[0] == cards[1]  # b learned nothing itself: it reads the shared state
        assert "version 1</strong>" in cards[1]
    finally:
        for worker in started:
            worker.stop()
