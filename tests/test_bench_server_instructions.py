"""The real-server instruction harness: its served app, load and table (valgrind not needed)."""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import apps, server_instructions
from benchmarks.benchkit import free_port
from benchmarks.run import collect_cookies


def test_served_app_turns_the_folder_checks_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BENCH_DB", str(tmp_path / "bench.sqlite3"))
    monkeypatch.setenv(server_instructions.APP_ENV, "personalized_realistic_sqlite")
    monkeypatch.setattr(apps, "_BUILT", {})
    built = server_instructions._Served()._build()
    personalizer = built.personalizer
    assert personalizer.decisions.library._watch.interval == float("inf")
    assert personalizer.segments._watch.interval == float("inf")
    asyncio.run(built.aclose())


def test_load_sends_every_request_to_a_real_server(tmp_path: Path) -> None:
    port = free_port()
    root = Path(server_instructions.__file__).resolve().parent.parent
    env = dict(os.environ, BENCH_DB=str(tmp_path / "bench.sqlite3"), PYTHONPATH=str(root))
    env[server_instructions.APP_ENV] = "personalized_realistic_sqlite"
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "benchmarks.server_instructions:served",
         "--port", str(port), "--log-level", "warning"],
        env=env, cwd=root,
    )  # fmt: skip
    try:
        server_instructions._wait_listening(port, server, timeout=60)
        cookies = collect_cookies(port, 4)
        asyncio.run(server_instructions._load(port, cookies, requests=25, connections=3))
    finally:
        server.terminate()
        server.wait(timeout=30)
    # Each request was a page view of one of the four visitors: 4 first visits + 25.
    from personalize import SQLiteStore

    async def page_views() -> int:
        store = SQLiteStore(tmp_path / "bench.sqlite3")
        try:
            total = 0
            for key in await store.keys():
                profile = await store.get(key)
                total += 0 if profile is None else profile.page_views
            return total
        finally:
            await store.close()

    assert asyncio.run(page_views()) == 4 + 25


def test_render_gives_medians_and_ratios_to_the_reference() -> None:
    args = argparse.Namespace(visitors=3, warm=5, requests=10, connections=2, repeats=3)
    text = server_instructions.render(
        {"realistic_bare": [1000.0, 1100.0, 900.0],
         "personalized_realistic_sqlite": [1500.0, 1200.0, 1800.0]}, args)  # fmt: skip
    assert "| realistic_bare | 1,000 | 1,000, 1,100, 900 | - |" in text
    assert "| personalized_realistic_sqlite | 1,500 |" in text
    assert "1.50 (realistic_bare)" in text
    assert text.startswith(server_instructions.START)
    assert text.rstrip().endswith(server_instructions.END)
