"""The near-cache and write-behind buffer in front of every store (personalize.services)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from personalize import Hit, MemoryStore, Profile, SQLiteStore
from personalize.profiles.changes import Change
from personalize.profiles.events import validate_event
from personalize.profiles.pageviews import apply_hit, hit_view
from personalize.profiles.profile import copy_for_page_view, new_profile
from personalize.services.profiles import MISSING, ProfileService
from personalize.stores.base import ProfileStore


def hit(ts: float, path: str = "/", category: str | None = None) -> Hit:
    return Hit(ts=ts, path=path, category=category, device_id="d1", device_type="desktop")


def test_page_views_fold_into_the_cached_profile_and_views_stay_as_they_were(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        # SQLite returns no profiles from a write: the cache keeps what it folded itself.
        store = SQLiteStore(tmp_path / "p.sqlite3")
        service = ProfileService(store, flush_interval=0)
        await service.record("v:a", hit(1000.0, "/shoes", "shoes"), new=True)
        cached = await service.load("v:a")
        assert cached is not None and cached.page_views == 1
        # A request's view: its own page view folded into a new profile.
        view = hit_view(cached, hit(1010.0, "/shoes", "shoes"))
        await service.record("v:a", hit(1010.0, "/shoes", "shoes"))
        await service.record("v:a", hit(4000.0, "/bags", "bags"))  # a new session
        latest = await service.load("v:a")
        assert latest is not None and (latest.page_views, latest.visits) == (3, 2)
        assert latest.affinities == {"shoes": 2.0, "bags": 1.0}
        # Nothing a request read changes under it: neither its view nor what it came from.
        assert (cached.page_views, cached.visits, cached.affinities) == (1, 1, {"shoes": 1.0})
        assert cached.sessions[-1].page_views == 1 and cached.devices["d1"]["last_seen"] == 1000
        assert (view.page_views, view.visits, view.affinities) == (2, 1, {"shoes": 2.0})
        assert view.sessions[-1].page_views == 2 and len(view.sessions) == 1
        assert view.devices["d1"] is not latest.devices["d1"]
        assert view.norms == {} and latest.norms != {}
        await service.flush()
        stored = await store.get("v:a")
        assert stored is not None and (stored.page_views, stored.visits) == (3, 2)
        assert stored.affinities == latest.affinities
        await store.close()

    asyncio.run(scenario())


def test_a_view_handed_over_becomes_the_cached_profile_and_is_never_changed_after(
    tmp_path: Path,
) -> None:
    """A page that read its profile hands its view over with the page view: the view
    becomes the cached profile (the page view is not folded twice), and the next page view
    folds into a new profile, because the app of that page may still hold the view."""

    async def scenario() -> None:
        store = SQLiteStore(tmp_path / "p.sqlite3")
        service = ProfileService(store, flush_interval=0)
        await service.record("v:a", hit(1000.0, "/shoes", "shoes"), new=True)
        base = await service.load("v:a")
        assert base is not None
        second = hit(1010.0, "/shoes", "shoes")
        view = hit_view(base, second)
        await service.record("v:a", second, read=(base, view))
        assert await service.load("v:a") is view and view.page_views == 2  # once, not twice
        await service.record("v:a", hit(1020.0, "/bags", "bags"))  # a page that did not read
        cached = await service.load("v:a")
        assert cached is not view and cached is not None and cached.page_views == 3
        assert (view.page_views, view.affinities) == (2, {"shoes": 2.0})  # as the app read it
        await service.record("v:a", hit(1030.0))
        fourth = await service.load("v:a")
        assert fourth is not None and fourth.page_views == 4 and cached.page_views == 3
        # A view of a profile the cache no longer holds is not taken: it would lose a view.
        stale = hit_view(base, hit(1040.0))
        await service.record("v:a", hit(1040.0), read=(base, stale))
        latest = await service.load("v:a")
        assert latest is not stale and latest is not None and latest.page_views == 5
        await service.flush()
        stored = await store.get("v:a")
        assert stored is not None and stored.page_views == 5
        assert stored.affinities == {"shoes": 2.0, "bags": 1.0}
        await store.close()

    asyncio.run(scenario())


def test_a_new_profile_handed_over_becomes_the_cached_profile(tmp_path: Path) -> None:
    """A new visitor's page built its profile from nothing: handed over as (None, profile),
    it is what the cache holds (its first page view folded once), as a profile the cache
    would have started itself; a known key is never started by a page view."""

    async def scenario() -> None:
        store = SQLiteStore(tmp_path / "p.sqlite3")
        service = ProfileService(store, flush_interval=0)
        first = hit(1000.0, "/shoes", "shoes")
        page = new_profile("v:a")
        apply_hit(page, first)
        await service.record("v:a", first, new=True, read=(None, page))
        assert await service.load("v:a") is page and page.page_views == 1
        alone = ProfileService(SQLiteStore(tmp_path / "q.sqlite3"), flush_interval=0)
        await alone.record("v:a", first, new=True)  # the profile the cache starts itself
        assert await alone.load("v:a") == page
        await alone.aclose()
        known = new_profile("u:ann", "ann")
        apply_hit(known, first)
        await service.record("u:ann", first, new=True, read=(None, known))
        assert await service.load("u:ann") is None
        await service.flush()
        stored = await store.get("v:a")
        assert stored is not None and stored.page_views == 1
        await store.close()

    asyncio.run(scenario())


def test_cached_answers_from_the_cache_alone() -> None:
    async def scenario() -> None:
        service = ProfileService(MemoryStore(), flush_interval=0)
        assert service.cached("v:a") is MISSING  # only load can tell
        assert await service.load("v:a") is None
        assert service.cached("v:a") is None  # known: the store holds nothing
        await service.record("v:a", hit(1.0), new=True)
        cached = service.cached("v:a")
        assert isinstance(cached, Profile) and cached is await service.load("v:a")
        assert service.stats["cache_hits"] == 3 and service.stats["cache_misses"] == 1

    asyncio.run(scenario())


class SometimesTrustedStore(MemoryStore):
    """A store that trusts the cache for ``ttl`` seconds, changed at run time (as Redis does
    while its invalidations stop arriving), and counts how often it is asked."""

    ttl: float | None = None
    asked = 0

    @property
    def trusted_cache_ttl(self) -> float | None:
        self.asked += 1
        return self.ttl


def test_cached_asks_only_a_store_that_overrides_the_cache_ttl(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def scenario() -> None:
        now = [1000.0]
        store = SometimesTrustedStore()
        service = ProfileService(store, flush_interval=0, clock=lambda: now[0])
        await service.record("v:a", hit(1.0), new=True)
        assert isinstance(service.cached("v:a"), Profile) and store.asked == 1
        now[0] += 10.0
        store.ttl = 5.0  # the store stops trusting the cache: the entry is too old now
        assert service.cached("v:a") is MISSING and store.asked == 2
        store.ttl = 60.0
        assert isinstance(service.cached("v:a"), Profile)
        # The base store's answer (None: always trusted) is not asked for on every read.
        base = ProfileService(MemoryStore(), flush_interval=0, clock=lambda: now[0])
        await base.record("v:a", hit(1.0), new=True)
        asked: list[object] = []
        monkeypatch.setattr(ProfileStore, "trusted_cache_ttl", property(lambda s: asked.append(s)))
        now[0] += 1e9
        assert isinstance(base.cached("v:a"), Profile) and asked == []

    asyncio.run(scenario())


def test_events_fold_into_a_copy_so_views_sharing_facts_do_not_change(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = SQLiteStore(tmp_path / "p.sqlite3")
        service = ProfileService(store, flush_interval=0)
        await service.record("v:a", hit(1.7e9), new=True)
        cached = await service.load("v:a")
        assert cached is not None
        view = copy_for_page_view(cached)  # shares facts with the cached profile
        order: Change = validate_event(
            "order", {"order_id": "o1", "value": 10.0, "products": ["p1"]}, ts=1.7e9 + 1
        )
        await service.record("v:a", order)
        after = await service.load("v:a")
        assert after is not None and after is not cached
        assert after.facts.get("purchases") == 1
        assert "purchases" not in view.facts and "purchases" not in cached.facts
        await store.close()

    asyncio.run(scenario())


class FlakyStore(MemoryStore):
    """A MemoryStore whose reads fail while ``down`` (and whose cache is never trusted)."""

    trusted_cache_ttl = 0.0
    down = False

    async def get(self, key: str) -> Profile | None:
        if self.down:
            raise ConnectionError("store unreachable")
        return await super().get(key)


def test_stale_profile_during_an_outage_counts_pending_page_views_once() -> None:
    async def scenario() -> None:
        store = FlakyStore()
        service = ProfileService(store, flush_interval=0, retry_backoff=3600)
        await service.record("v:a", hit(1000.0), new=True)
        await service.flush()
        store.down = True
        store.update_many = _failing  # type: ignore[method-assign]
        await service.record("v:a", hit(1001.0))  # buffered: the write fails
        assert service.pending == 1
        profile = await service.load("v:a")  # the stale cached copy, store down
        assert profile is not None and profile.page_views == 2

    asyncio.run(scenario())


async def _failing(*args: object, **kwargs: object) -> dict[str, Profile | None]:
    raise ConnectionError("store unreachable")


class FailsOnceStore(MemoryStore):
    """A MemoryStore whose first write fails, as during a failover."""

    failed = False

    async def apply_changes(self, changes: Any, *, batch_id: str | None = None) -> Any:
        if not self.failed:
            self.failed = True
            raise ConnectionError("store unreachable")
        return await super().apply_changes(changes, batch_id=batch_id)


def test_a_failed_write_is_sent_again_after_the_back_off_without_a_request() -> None:
    """The last request of a burst saw its write fail: nothing else comes to send it again,
    so the buffer does, once the back-off is over."""

    async def scenario() -> None:
        store = FailsOnceStore()
        service = ProfileService(store, flush_interval=0, retry_backoff=0.05)
        await service.record("v:a", hit(1000.0), new=True)
        assert store.failed and service.pending == 1 and service.stats["failed"] == 1
        for _ in range(100):
            if not service.pending:
                break
            await asyncio.sleep(0.01)
        assert service.pending == 0 and service.stats["written"] == 1
        stored = await store.get("v:a")
        assert stored is not None and stored.page_views == 1
        await service.aclose()

    asyncio.run(scenario())


class SlowStore(MemoryStore):
    """A store whose every write takes 10 ms (a thread hop, a round trip, a disk)."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    async def apply_changes(
        self, changes: Any, *, batch_id: str | None = None
    ) -> dict[str, Profile]:
        self.writes += 1
        await asyncio.sleep(0.01)
        return await super().apply_changes(changes, batch_id=batch_id)


def test_under_load_the_buffer_writes_once_per_interval() -> None:
    """Page views keep coming during a write: they wait for the next interval, not for a
    write of their own at once (each write hands the GIL to the store's thread and back)."""

    async def scenario() -> None:
        store = SlowStore()
        service = ProfileService(store, flush_interval=0.05)
        started = asyncio.get_running_loop().time()
        n, writers = 0, []
        while asyncio.get_running_loop().time() - started < 0.5:
            n += 1
            if service.enqueue(f"v:{n % 7}", hit(1000.0 + n), new=n <= 7):
                writers.append(asyncio.ensure_future(service.write_behind()))  # as a page does
            await asyncio.sleep(0.001)
        await asyncio.gather(*writers)
        await service.flush()
        assert store.writes <= 0.5 / 0.05 + 2, store.writes  # back to back: about 40
        stored = [await store.get(key) for key in await store.keys()]
        assert sum(p.page_views for p in stored if p is not None) == n
        await service.aclose()

    asyncio.run(scenario())


def test_hit_view_copies_every_field() -> None:
    """hit_view builds the Profile positionally: a field added or moved must not shift."""
    import dataclasses

    values: dict[str, object] = {}
    for i, f in enumerate(dataclasses.fields(Profile)):
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else None
        if f.name == "norms":
            values[f.name] = {"device": {f"k{i}": float(i)}}
        elif isinstance(default, dict):
            values[f.name] = {f"k{i}": {"n": i}} if f.name == "devices" else {f"k{i}": float(i)}
        elif isinstance(default, list):
            values[f.name] = [] if f.name == "sessions" else [f"item{i}"]
        elif isinstance(f.default, bool):
            values[f.name] = True
        elif f.name in ("visits", "page_views"):
            values[f.name] = i
        elif f.name in ("first_seen", "last_seen", "merged_at"):
            values[f.name] = float(i)
        else:
            values[f.name] = f"value{i}"
    profile = Profile(**values)  # type: ignore[arg-type]
    view = copy_for_page_view(profile)
    assert view == profile
    assert view.devices is not profile.devices and view.affinities is not profile.affinities
    assert view.norms["device"] is not profile.norms["device"]  # page views count sessions
