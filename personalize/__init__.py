"""personalize: self-hosted website personalization for Python, as one ASGI middleware.

>>> from starlette.applications import Starlette
>>> from personalize import MemoryStore, PersonalizeMiddleware
>>> app = Starlette()
>>> app.add_middleware(PersonalizeMiddleware, secret_key="change-me-to-32-random-characters",
...                    store=MemoryStore())
"""

from personalize.context import Clock, Device, Geo, Signals, Source, VisitorContext
from personalize.cookie import CookieState, VisitorCookie
from personalize.exceptions import (
    ConfigurationError,
    GeoDatabaseError,
    MiddlewareMissingError,
    PersonalizeError,
    StoreError,
    StoreUnavailableError,
)
from personalize.middleware import PersonalizeMiddleware
from personalize.profile import CategoryMap, Hit, Profile, SessionRecord
from personalize.stores import MemoryStore, ProfileStore, SQLiteStore
from personalize.visitor import Visitor, get_visitor

__version__ = "0.1.0"

__all__ = [
    "CategoryMap",
    "Clock",
    "ConfigurationError",
    "CookieState",
    "Device",
    "Geo",
    "GeoDatabaseError",
    "Hit",
    "MemoryStore",
    "MiddlewareMissingError",
    "PersonalizeError",
    "PersonalizeMiddleware",
    "Profile",
    "ProfileStore",
    "SQLiteStore",
    "SessionRecord",
    "Signals",
    "Source",
    "StoreError",
    "StoreUnavailableError",
    "Visitor",
    "VisitorContext",
    "VisitorCookie",
    "get_visitor",
]
