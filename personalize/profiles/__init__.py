"""Who the visitor is and what is remembered about them, as plain data and pure rules.

No I/O here: stores keep profiles (:mod:`personalize.stores`), the profile service caches and
writes them (:mod:`personalize.services.profiles`).

=================  ==================================================================
module             what lives there
=================  ==================================================================
``identity``       the profile key scheme (``u:``/``v:``), which user ids may log in
``cookie``         the signed visitor cookie and its state
``profile``        Profile and SessionRecord: the stored record, JSON, copies
``pageviews``      Hit (one page view), apply_hit, sessions, CategoryMap
``events``         orders, returns, tickets, custom events: validation and facts
``preferences``    stated preferences: validation, the newest statement wins, effects
``merge``          folding an anonymous profile into a known one at login
``changes``        page views and events as stores log them, forwarding after a merge
=================  ==================================================================
"""

from personalize.profiles.events import Event
from personalize.profiles.pageviews import SESSION_TIMEOUT, CategoryMap, Hit, apply_hit
from personalize.profiles.profile import Profile, SessionRecord

__all__ = [
    "SESSION_TIMEOUT",
    "CategoryMap",
    "Event",
    "Hit",
    "Profile",
    "SessionRecord",
    "apply_hit",
]
