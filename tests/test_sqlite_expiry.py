"""The SQLite store expires anonymous profiles as Redis does: not read once ``anonymous_ttl``
passed without a write, deleted in the background, and under a steady flood of one-time
visitors the file stops growing."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from personalize import ConfigurationError, Hit, Profile, SQLiteStore
from personalize.stores.sqlite_expiry import EXPIRE_INTERVAL

HOUR = 3600.0
T0 = 1_800_000_000.0


def test_an_anonymous_profile_expires_after_the_ttl_without_a_write(tmp_path: Path) -> None:
    now = [T0]

    async def scenario() -> None:
        store = SQLiteStore(tmp_path / "p.sqlite3", anonymous_ttl=int(HOUR), clock=lambda: now[0])
        await store.apply_changes({"v:old": [Hit(ts=now[0], path="/")]})
        await store.apply_changes({"v:back": [Hit(ts=now[0], path="/")]})
        await store.update("u:ann", lambda p: Profile(key="u:ann", user_id="ann"))
        await store.compact()
        now[0] += 0.75 * HOUR
        await store.apply_changes({"v:back": [Hit(ts=now[0], path="/again")]})  # a write
        await store.compact()
        now[0] += 0.5 * HOUR  # v:old is past the TTL, v:back is not
        assert await store.get("v:old") is None  # no longer read, before any deletion
        back = await store.get("v:back")
        assert back is not None and back.page_views == 2
        assert await store.get("u:ann") is not None  # known profiles never expire
        with sqlite3.connect(tmp_path / "p.sqlite3") as conn:
            assert conn.execute("SELECT count(*) FROM profiles").fetchone() == (3,)
        assert await store.expire() == 1
        assert sorted(await store.keys()) == ["u:ann", "v:back"]
        # A page view with the old cookie starts a new profile, as after a Redis expiry.
        await store.apply_changes({"v:old": [Hit(ts=now[0], path="/")]})
        fresh = await store.get("v:old")
        assert fresh is not None and fresh.page_views == 1
        await store.compact()
        now[0] += 100 * HOUR
        assert await store.expire() == 2  # both anonymous ones; ann stays
        assert await store.keys() == ["u:ann"]
        await store.close()

    asyncio.run(scenario())


def test_zero_keeps_anonymous_profiles_and_a_negative_ttl_is_refused(tmp_path: Path) -> None:
    now = [T0]

    async def scenario() -> None:
        store = SQLiteStore(tmp_path / "p.sqlite3", anonymous_ttl=0, clock=lambda: now[0])
        await store.apply_changes({"v:x": [Hit(ts=now[0], path="/")]})
        await store.compact()
        now[0] += 10_000 * HOUR
        assert await store.get("v:x") is not None
        assert await store.expire() == 0
        await store.close()

    asyncio.run(scenario())
    with pytest.raises(ConfigurationError, match="anonymous_ttl"):
        SQLiteStore(tmp_path / "q.sqlite3", anonymous_ttl=-1)


def flood(path: Path, *, ttl: int, steps: int, visitors: int) -> list[int]:
    """One-time visitors, ``visitors`` an hour (three page views each), for ``steps`` hours;
    returns the file's size (database and write-ahead log) after each hour."""
    now = [T0]
    sizes: list[int] = []

    async def scenario() -> None:
        store = SQLiteStore(path, anonymous_ttl=ttl, clock=lambda: now[0], compact_after=1000)
        for step in range(steps):
            now[0] += HOUR
            batch = {
                f"v:{step}-{n}": [Hit(ts=now[0] + i, path=f"/shoes/{i}") for i in range(3)]
                for n in range(visitors)
            }
            await store.apply_changes(batch)  # compacts (3 changes a visitor), then expires
            sizes.append(sum(f.stat().st_size for f in path.parent.iterdir()))
        await store.close()

    asyncio.run(scenario())
    return sizes


def test_the_file_stops_growing_under_a_flood_of_one_time_visitors(tmp_path: Path) -> None:
    assert EXPIRE_INTERVAL < HOUR  # each hour's first batch runs the background expiry
    (tmp_path / "ttl").mkdir()
    (tmp_path / "forever").mkdir()
    steps, ttl = 36, int(6 * HOUR)
    sizes = flood(tmp_path / "ttl" / "p.sqlite3", ttl=ttl, steps=steps, visitors=400)
    kept = flood(tmp_path / "forever" / "p.sqlite3", ttl=0, steps=steps, visitors=400)
    print(
        "file size (KiB) after 6, 12, 24, 36 hours: with a 6-hour TTL "
        f"{[sizes[h - 1] // 1024 for h in (6, 12, 24, 36)]}, without "
        f"{[kept[h - 1] // 1024 for h in (6, 12, 24, 36)]}"
    )
    # Once the first visitors expire (after 6 hours) and the write-ahead log has reached its
    # working size, the file stays within 10 % of its size at 18 hours: deleted pages are
    # reused. (The same hours without expiry add half again.)
    plateau = sizes[17]
    assert max(sizes[18:]) <= plateau * 1.1, sizes
    assert kept[-1] > 1.5 * kept[17], kept
    with sqlite3.connect(tmp_path / "ttl" / "p.sqlite3") as conn:
        (count,) = conn.execute("SELECT count(*) FROM profiles").fetchone()
    assert count <= 400 * 7  # the last six hours' visitors (and this hour's)
    # Without expiry the same flood keeps growing the file.
    assert kept[-1] > 2 * kept[11], kept
