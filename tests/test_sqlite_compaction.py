"""The SQLite store's compaction: what it holds in memory while it folds the change log."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any


def test_compaction_decodes_each_profiles_changes_as_it_folds_them(tmp_path: Path) -> None:
    """The log's rows are read as stored and each profile's page views decoded when that
    profile is folded: not every page view of the run as an object at once."""
    import asyncio

    from personalize import Hit, SQLiteStore
    from personalize.stores import sqlite_schema

    async def scenario() -> None:
        store = SQLiteStore(tmp_path / "p.sqlite3", compact_after=10**9)
        for batch in range(5):
            changes = {
                f"v:x{n}": [Hit(ts=1000.0 + batch * 10 + i, path="/") for i in range(20)]
                for n in range(10)
            }
            await store.apply_changes(changes, batch_id=f"b{batch}")
        with sqlite3.connect(tmp_path / "p.sqlite3") as conn:
            pending, last, taken = sqlite_schema.oldest_changes(conn, 100, 100)
        assert taken == 5 and last is not None and len(pending) == 10
        assert all(isinstance(v, list) and v[0] == "h2" for v in pending["v:x0"])  # as stored
        import personalize.stores.sqlite as sqlite_module

        events: list[str] = []
        decode, fold = sqlite_module.change_from_value, sqlite_module.fold_logged

        def decoding(value: Any) -> Any:
            events.append("decode")
            return decode(value)

        def folding(*args: Any) -> Any:
            events.append("fold")
            return fold(*args)

        sqlite_module.change_from_value, sqlite_module.fold_logged = decoding, folding
        try:
            assert await store.compact() == 10
        finally:
            sqlite_module.change_from_value, sqlite_module.fold_logged = decode, fold
        # One profile's 100 page views decoded, then folded; then the next profile's.
        assert events == (["decode"] * 100 + ["fold"]) * 10
        stored = await store.get("v:x3")
        assert stored is not None and stored.page_views == 100
        await store.close()

    asyncio.run(scenario())
