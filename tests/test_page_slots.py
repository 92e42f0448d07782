"""The read of shared decision state before a page asks for the slots that page decides:
learned per path (:class:`~personalize.content.shared.PageSlots`), every slot for a path not
known yet, nothing for a path that decides none."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from personalize import MemoryStore, PersonalizeMiddleware, get_visitor
from personalize.content.explanation import UNCONFIGURED
from personalize.content.shared import PageSlots, SharedExposures

DESKTOP = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36"
)
CONTENT = """
slots:
  hero:
    variants:
      - id: a
        html: <h1>A</h1>
      - id: b
        html: <h1>B</h1>
    default: [a, b]
  teaser:
    variants:
      - id: t
        html: <p>T</p>
    default: [t]
  footer:
    variants:
      - id: f
        html: <p>F</p>
    default: [f]
"""


async def home(request: Request) -> HTMLResponse:
    visitor = get_visitor(request)
    shown = [visitor.decide_sync("hero")]
    if request.query_params.get("more"):  # a branch most visitors do not take
        shown.append(visitor.decide_sync("teaser"))
    return HTMLResponse("".join(str(d.content) for d in shown))


async def plain(request: Request) -> HTMLResponse:
    visitor = get_visitor(request)
    return HTMLResponse(f"{visitor.profile_key} {visitor.profile.visits}")


async def explain(request: Request) -> HTMLResponse:
    decision = get_visitor(request).decide_sync("hero")
    return HTMLResponse(f"{decision.variant}|{decision.content!s}|{decision.explanation.rule}")


class Site:
    """The app, its middleware, and every read of the shared state store (counter keys,
    value keys)."""

    def __init__(self, content: Path | None) -> None:
        routes = [Route("/", home), Route("/plain", plain), Route("/explain", explain)]
        app = Starlette(routes=routes)
        self.middleware = PersonalizeMiddleware(
            app,
            secret_key="s" * 32,
            store=MemoryStore(),
            content=content,
            state_cache_ttl=0,  # every page reads (as with visits more than a second apart)
            metrics_public=True,
        )
        self.reads: list[tuple[list[str], list[str]]] = []
        store = self.middleware.personalizer.state.store
        read = store.read

        async def recorded(counters: Sequence[str], values: Sequence[str]) -> Any:
            self.reads.append((list(counters), list(values)))
            return await read(counters, values)

        store.read = recorded  # type: ignore[method-assign]
        self.client = TestClient(self.middleware, headers={"user-agent": DESKTOP})
        # A new visitor: the cookie (no read before the page: nothing to read yet).
        self.key = self.client.get("/plain").text.split()[0]
        self.reads.clear()

    def page(self, path: str) -> tuple[list[str], list[str]] | None:
        """The state read before one page on ``path`` (None: none)."""
        self.reads.clear()
        assert self.client.get(path).status_code == 200
        before = [read for read in self.reads if SharedExposures.key(self.key) in read[0]]
        assert len(before) <= 1
        return before[0] if before else None


def slots_read(read: tuple[list[str], list[str]] | None) -> list[str]:
    assert read is not None
    return sorted(key.rsplit("|", 1)[1] for key in read[1])


@pytest.fixture
def site(tmp_path: Path) -> Site:
    (tmp_path / "home.yaml").write_text(CONTENT)
    return Site(tmp_path)


def test_a_path_not_known_yet_reads_every_slot_then_only_those_it_decided(site: Site) -> None:
    assert slots_read(site.page("/")) == ["footer", "hero", "teaser"]
    for _ in range(3):
        assert slots_read(site.page("/")) == ["hero"]


def test_the_metrics_count_the_reads_and_their_keys(site: Site) -> None:
    def figures() -> tuple[float, float]:
        text = site.client.get("/_personalize/metrics").text
        reads = re.search(r'personalize_state_reads_total\{result="ok"\} (\S+)', text)
        keys = re.search(r"^personalize_state_keys_read_total (\S+)$", text, re.M)
        assert reads is not None and keys is not None, text
        return float(reads[1]), float(keys[1])

    site.page("/")  # every slot: the caps and 3 picks
    reads, keys = figures()
    for _ in range(3):
        site.page("/")  # the caps and the hero's pick
    # Per page, one read before it (the caps and the hero's pick) and one after it (the
    # hero's pick, which the decision found stale: with state_cache_ttl=0, at once).
    assert figures() == (reads + 3 * 2, keys + 3 * 3)
    assert (
        'personalize_state_reads_total{result="failed"} 0.0'
        in site.client.get("/_personalize/metrics").text
    )


def test_a_slot_decided_in_a_branch_is_read_from_then_on(site: Site) -> None:
    site.page("/")
    assert slots_read(site.page("/?more=1")) == ["hero"]  # (the path is "/": not known yet)
    assert slots_read(site.page("/")) == ["hero", "teaser"]


def test_a_path_that_decides_nothing_reads_nothing_before_its_page(site: Site) -> None:
    # The visitor's first page was /plain (Site): it decided nothing.
    for _ in range(3):
        assert site.page("/plain") is None
    engine = site.middleware.personalizer.decisions
    assert engine is not None and not engine.reads_before("/plain") and engine.reads_before("/")


def test_new_content_is_learned_again(site: Site, tmp_path: Path) -> None:
    site.page("/")
    assert slots_read(site.page("/")) == ["hero"]
    engine = site.middleware.personalizer.decisions
    assert engine is not None
    (tmp_path / "home.yaml").write_text(CONTENT.replace("<p>T</p>", "<p>T2</p>"))
    assert engine.library.reload_if_changed(force=True)
    assert slots_read(site.page("/")) == ["footer", "hero", "teaser"]


def test_the_session_pick_holds_on_every_page(site: Site) -> None:
    shown = {site.client.get("/").text for _ in range(6)}
    assert len(shown) == 1


def test_the_paths_remembered_are_bounded() -> None:
    pages = PageSlots(size=2)
    for path in ("/a", "/b", "/c"):
        pages.add(path, 0, ["hero"])
    assert pages.get("/a", 0) is None
    assert pages.get("/b", 0) == pages.get("/c", 0) == frozenset({"hero"})


def test_a_slot_asked_for_without_content_shows_nothing_and_says_why(
    caplog: pytest.LogCaptureFixture,
) -> None:
    site = Site(None)
    with caplog.at_level(logging.ERROR, logger="personalize.decisions"):
        assert site.client.get("/explain").text == f"None||{UNCONFIGURED}"
    assert "decide('hero') without content" in caplog.text
    assert site.middleware.personalizer.decisions is None
