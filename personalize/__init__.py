"""personalize: self-hosted website personalization for Python, as one ASGI middleware.

>>> from starlette.applications import Starlette
>>> from personalize import MemoryStore, PersonalizeMiddleware
>>> app = Starlette()
>>> app.add_middleware(PersonalizeMiddleware, secret_key="change-me-to-32-random-characters",
...                    store=MemoryStore())
"""

from personalize.content.decisions import Decision, DecisionEngine
from personalize.content.explanation import Explanation
from personalize.content.library import ContentLibrary
from personalize.context.records import Clock, Device, Geo, Signals, Source, VisitorContext
from personalize.exceptions import (
    ConfigurationError,
    EventError,
    GeoDatabaseError,
    IdentityError,
    MiddlewareMissingError,
    PersonalizeError,
    SegmentError,
    StoreError,
    StoreUnavailableError,
)
from personalize.logs import configure_logging
from personalize.middleware import PersonalizeMiddleware
from personalize.personalizer import Personalizer
from personalize.profiles.cookie import CookieState, VisitorCookie
from personalize.profiles.events import Event
from personalize.profiles.pageviews import CategoryMap, Hit
from personalize.profiles.profile import Profile, SessionRecord
from personalize.rules.segments import Membership, Segment, SegmentLibrary
from personalize.scope import get_visitor, identify
from personalize.settings import Settings
from personalize.stores import (
    MemoryStateStore,
    MemoryStore,
    ProfileStore,
    SQLiteStateStore,
    SQLiteStore,
    StateStore,
)
from personalize.visitor import Visitor

__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    # The Redis stores need the optional redis extra: import them only when asked for.
    if name == "RedisStore":
        from personalize.stores.redis import RedisStore

        return RedisStore
    if name == "RedisStateStore":
        from personalize.stores.state_redis import RedisStateStore

        return RedisStateStore
    raise AttributeError(f"module 'personalize' has no attribute {name!r}")


__all__ = [
    "CategoryMap",
    "Clock",
    "ConfigurationError",
    "ContentLibrary",
    "CookieState",
    "Decision",
    "DecisionEngine",
    "Device",
    "Event",
    "EventError",
    "Explanation",
    "Geo",
    "GeoDatabaseError",
    "Hit",
    "IdentityError",
    "Membership",
    "MemoryStateStore",
    "MemoryStore",
    "MiddlewareMissingError",
    "PersonalizeError",
    "PersonalizeMiddleware",
    "Personalizer",
    "Profile",
    "ProfileStore",
    "RedisStateStore",
    "RedisStore",
    "SQLiteStateStore",
    "SQLiteStore",
    "Segment",
    "SegmentError",
    "SegmentLibrary",
    "SessionRecord",
    "Settings",
    "Signals",
    "Source",
    "StateStore",
    "StoreError",
    "StoreUnavailableError",
    "Visitor",
    "VisitorContext",
    "VisitorCookie",
    "configure_logging",
    "get_visitor",
    "identify",
]
