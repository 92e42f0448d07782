"""Stores: profiles and decision state, each one async interface with several backends.

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
from personalize.stores.state import StateStore
from personalize.stores.state_memory import MemoryStateStore
from personalize.stores.state_sqlite import SQLiteStateStore

__all__ = [
    "MemoryStateStore",
    "MemoryStore",
    "ProfileStore",
    "SQLiteStateStore",
    "SQLiteStore",
    "StateStore",
]
