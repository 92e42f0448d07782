"""Session features for the learned segments: plain ``dict[str, float | str]``, as river expects.

Numbers are already tamed (hour on the unit circle, counts and durations through ``log1p``);
strings are categories the models one-hot encode.

>>> from personalize.context.records import Clock, Device, Source, VisitorContext
>>> from personalize.profiles.profile import Profile
>>> ctx = VisitorContext(device=Device(type="mobile", os="iOS"),
...                      source=Source(channel="paid_search"),
...                      clock=Clock(hour=19, daypart="evening"))
>>> p = Profile(key="v:1", visits=1, page_views=3, first_seen=0.0, affinities={"shoes": 2.0})
>>> x = session_features(ctx, p, now=86400.0)
>>> x["device_type"], x["channel"], x["daypart"], x["country"], x["category"]
('mobile', 'paid_search', 'evening', 'unknown', 'shoes')
>>> round(x["visits"], 3), round(x["days_since_first"], 3), x["affinity_share"]
(0.693, 0.693, 1.0)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from personalize.context.records import VisitorContext
from personalize.profiles.profile import Profile

__all__ = [
    "CATEGORICAL_FEATURES",
    "NUMERIC_FEATURES",
    "Features",
    "features_from_record",
    "pages_from_record",
    "session_features",
]

Features = dict[str, float | str]

NUMERIC_FEATURES = (
    "hour_sin",
    "hour_cos",
    "weekend",
    "known",
    "visits",
    "page_views",
    "session_page_views",
    "days_since_first",
    "affinity_share",
)
CATEGORICAL_FEATURES = ("device_type", "channel", "country", "daypart", "os", "category")

_DAY = 86400.0
_SIN = tuple(math.sin(2 * math.pi * h / 24) for h in range(24))
_COS = tuple(math.cos(2 * math.pi * h / 24) for h in range(24))
_DAYPARTS = ("night", "morning", "afternoon", "evening")
_log1p = math.log1p


def _features(
    hour: int,
    weekend: bool,
    daypart: str,
    device_type: str,
    os: str | None,
    channel: str,
    country: str | None,
    known: bool,
    visits: float,
    page_views: float,
    session_page_views: float,
    days_since_first: float,
    affinities: Mapping[str, float],
) -> Features:
    h = hour % 24
    if affinities:
        category = max(affinities, key=affinities.__getitem__)
        total = sum(affinities.values())
        share = affinities[category] / total if total > 0 else 0.0
    else:
        category, share = "none", 0.0
    return {
        "hour_sin": _SIN[h],
        "hour_cos": _COS[h],
        "weekend": 1.0 if weekend else 0.0,
        "known": 1.0 if known else 0.0,
        "visits": _log1p(max(visits, 0.0)),
        "page_views": _log1p(max(page_views, 0.0)),
        "session_page_views": _log1p(max(session_page_views, 0.0)),
        "days_since_first": _log1p(max(days_since_first, 0.0)),
        "affinity_share": share,
        "device_type": device_type,
        "channel": channel,
        "country": country or "unknown",
        "daypart": daypart,
        "os": os or "unknown",
        "category": category,
    }


def session_features(
    context: VisitorContext, profile: Profile | None, *, now: float
) -> dict[str, float | str]:
    """The features of the current session from the request context and the visitor profile.

    ``now`` is seconds since the epoch (the profile's clock). ``channel`` is the one that
    opened the session (its later pages come by internal links). Without a profile the visitor
    is treated as new: no visits, no history.
    """
    clock = context.clock
    geo = context.geo
    if profile is None:
        return _features(
            clock.hour, clock.weekend, clock.daypart, context.device.type, context.device.os,
            context.source.channel, geo.country if geo else None, False,
            0.0, 0.0, 0.0, 0.0, {},
        )  # fmt: skip
    session = profile.sessions[-1] if profile.sessions else None
    first = profile.first_seen
    # The channel that opened the session: later pages of it arrive by internal links.
    channel = session.channel if session is not None else context.source.channel
    return _features(
        clock.hour, clock.weekend, clock.daypart, context.device.type, context.device.os,
        channel, geo.country if geo else None, profile.user_id is not None,
        profile.visits, profile.page_views, session.page_views if session else 0,
        (now - first) / _DAY if first is not None else 0.0, profile.affinities,
    )  # fmt: skip


def features_from_record(record: Mapping[str, Any]) -> dict[str, float | str]:
    """Features from one flat session record (a line of ``personalize simulate`` output).

    Missing keys take the defaults of a new visitor, so any JSONL dataset with some of these
    keys can be replayed: ``hour``, ``weekday``, ``device_type``, ``os``, ``channel``,
    ``country``, ``known``, ``visits``, ``page_views``, ``session_page_views``,
    ``days_since_first``, ``affinities`` (category -> page views).

    >>> x = features_from_record({"hour": 20, "weekday": 5, "device_type": "mobile"})
    >>> x["daypart"], x["weekend"], x["channel"]
    ('evening', 1.0, 'direct')
    """
    hour = int(record.get("hour", 0)) % 24
    return _features(
        hour,
        int(record.get("weekday", 0)) >= 5,
        _DAYPARTS[hour // 6],
        str(record.get("device_type", "other")),
        record.get("os"),
        str(record.get("channel", "direct")),
        record.get("country"),
        bool(record.get("known", False)),
        float(record.get("visits", 0)),
        float(record.get("page_views", 0)),
        float(record.get("session_page_views", 0)),
        float(record.get("days_since_first", 0.0)),
        record.get("affinities") or {},
    )


def pages_from_record(record: Mapping[str, Any], *, max_pages: int = 8) -> list[Features]:
    """The features at each page's start of one session record (what a decision saw).

    A record with ``"pages"`` (a list of dicts of what changed from page to page) gives one
    feature dict per page; otherwise the pages are rebuilt from the session's end state: page
    ``k`` of ``n`` had seen ``k`` pages of the session and ``n - k`` fewer in all. Like the
    labeller, it keeps the first ``max_pages - 1`` pages and the last.

    >>> pages = pages_from_record({"session_page_views": 3, "page_views": 10})
    >>> [round(math.expm1(p["session_page_views"])) for p in pages]
    [1, 2, 3]
    >>> [round(math.expm1(p["page_views"])) for p in pages]
    [8, 9, 10]
    """
    listed = record.get("pages")
    if isinstance(listed, list) and listed:
        steps = [{**record, **page} for page in listed if isinstance(page, Mapping)]
    else:
        n = max(1, int(record.get("session_page_views", 1) or 1))
        total = float(record.get("page_views", n) or n)
        steps = [
            {**record, "session_page_views": k, "page_views": max(total - n + k, k)}
            for k in range(1, n + 1)
        ]
    if len(steps) > max_pages:
        steps = [*steps[: max_pages - 1], steps[-1]]
    return [features_from_record(step) for step in steps]
