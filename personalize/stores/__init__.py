"""Profile stores: one async interface, several backends.

>>> import asyncio
>>> from personalize.profiles.pageviews import Hit
>>> store = MemoryStore()
>>> profile = asyncio.run(store.apply_hits({"v1": [Hit(ts=1.0, path="/")]}))["v1"]
>>> profile.page_views
1
"""

from personalize.stores.base import ProfileStore
from personalize.stores.memory import MemoryStore
from personalize.stores.sqlite import SQLiteStore

__all__ = ["MemoryStore", "ProfileStore", "SQLiteStore"]
