"""Page views and how they fold into a profile: sessions, affinities, devices.

:func:`apply_hit` is the one place that changes a profile for a page view, so every store
applies exactly the same rules.

>>> from personalize.profiles.profile import Profile
>>> p = Profile(key="v:v1")
>>> apply_hit(p, Hit(ts=1000.0, path="/shoes/red", channel="organic_search", source="google",
...                  category="shoes", device_type="mobile"))
>>> apply_hit(p, Hit(ts=1100.0, path="/shoes/blue", category="shoes", channel="internal"))
>>> p.visits, p.page_views, p.affinities, p.sessions[-1].channel, p.sessions[-1].landing_page
(1, 2, {'shoes': 2.0}, 'organic_search', '/shoes/red')
>>> apply_hit(p, Hit(ts=1100.0 + 31 * 60, path="/", channel="direct"))
>>> p.visits
2
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fnmatch import translate
from typing import Any

from personalize.profiles.norms import count_session
from personalize.profiles.preferences import location_used, norms_used, wants_less
from personalize.profiles.profile import (
    MAX_DEVICES,
    MAX_SESSIONS,
    Profile,
    SessionRecord,
    copy_session,
    make_profile,
    make_session,
)
from personalize.util.frozen import fast_init, maker

SESSION_TIMEOUT = 30 * 60  # seconds of inactivity that end a session
_MAX_PATH = 512


@fast_init  # built on every request
@dataclass(frozen=True, slots=True)
class Hit:
    """One page view, as it is written to the profile. It never holds the IP address."""

    ts: float  # seconds since the epoch
    path: str
    channel: str = "direct"
    source: str | None = None
    medium: str | None = None
    campaign: str | None = None
    term: str | None = None
    category: str | None = None
    device_type: str | None = None
    country: str | None = None
    device_id: str | None = None  # the visitor (cookie) id of the browser that made the hit
    os: str | None = None
    browser: str | None = None
    hour: int | None = None  # the visitor's local hour (per-visitor norms)

    def to_dict(self) -> dict[str, Any]:
        # By hand: dataclasses.asdict is generic and ~20x slower; this runs per page view.
        return {
            "ts": self.ts,
            "path": self.path,
            "channel": self.channel,
            "source": self.source,
            "medium": self.medium,
            "campaign": self.campaign,
            "term": self.term,
            "category": self.category,
            "device_type": self.device_type,
            "country": self.country,
            "device_id": self.device_id,
            "os": self.os,
            "browser": self.browser,
            "hour": self.hour,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Hit:
        try:
            return cls(**data)  # what to_dict wrote: exactly the fields
        except TypeError:  # written by another version: take the fields we know
            return cls(**{k: data[k] for k in _HIT_FIELDS if k in data})


_HIT_FIELDS = tuple(Hit.__dataclass_fields__)
#: ``Hit(*every field)`` without the class call (one is built for every page view).
make_hit = maker(Hit)


def apply_hit(profile: Profile, hit: Hit, *, session_timeout: float = SESSION_TIMEOUT) -> None:
    """Fold one page view into ``profile`` in place.

    A new session opens after ``session_timeout`` seconds of inactivity, remembering its entry
    source and landing page. An internal referrer never opens one by itself; a session opened
    by an internal hit (after a long pause) counts as direct. What the visitor stated holds:
    a category they asked to see less of gains no interest, and without location a session
    keeps no country.
    """
    ts = hit.ts
    sessions = profile.sessions
    last = sessions[-1] if sessions else None
    if last is None or ts - last.last_seen > session_timeout:
        if last is not None and norms_used(profile):
            count_session(profile.norms, last)  # the visit before this one is now a habit
        internal = hit.channel == "internal"
        # Positional, in field order (started, last_seen, page_views, channel, source,
        # medium, campaign, term, landing_page, device_type, country, id, hour, category).
        profile.sessions.append(
            make_session(
                ts,
                ts,
                0,
                "direct" if internal else hit.channel,
                None if internal else hit.source,
                None if internal else hit.medium,
                None if internal else hit.campaign,
                None if internal else hit.term,
                hit.path[:_MAX_PATH],
                hit.device_type,
                hit.country if not profile.stated or location_used(profile) else None,
                f"{profile.key}@{ts:.0f}",
                hit.hour,
                hit.category,
            )
        )
        del sessions[:-MAX_SESSIONS]
        profile.visits += 1
        last = sessions[-1]
    elif ts > last.last_seen:  # (plain comparisons: this runs twice per page view)
        last.last_seen = ts
    last.page_views += 1
    profile.page_views += 1
    if profile.first_seen is None or ts < profile.first_seen:
        profile.first_seen = ts
    if profile.last_seen is None or ts > profile.last_seen:
        profile.last_seen = ts
    category = hit.category
    if category and not (profile.stated and wants_less(profile.stated, category)):
        profile.affinities[category] = profile.affinities.get(category, 0.0) + 1.0
    device_id = hit.device_id
    if device_id:
        devices = profile.devices
        device = devices.get(device_id)
        if device is None:
            device = devices[device_id] = {"first_seen": ts}
        if ts >= device.get("last_seen", -1.0):
            device["type"] = hit.device_type
            device["os"] = hit.os
            device["browser"] = hit.browser
            device["last_seen"] = ts
        if len(devices) > MAX_DEVICES:
            oldest = min(profile.devices, key=lambda d: profile.devices[d].get("last_seen", 0))
            del profile.devices[oldest]


def session_start(
    profile: Profile | None, ts: float, *, session_timeout: float = SESSION_TIMEOUT
) -> float:
    """When the session of a page view at ``ts`` started, as :func:`apply_hit` will fold it
    into ``profile`` (the stored profile, before this page view).

    >>> from personalize.profiles.profile import Profile
    >>> p = Profile(key="v:x1")
    >>> apply_hit(p, Hit(ts=1000.0, path="/"))
    >>> session_start(p, 1500.0), session_start(p, 1000.0 + 3600), session_start(None, 7.0)
    (1000.0, 4600.0, 7.0)
    """
    last = profile.sessions[-1] if profile is not None and profile.sessions else None
    if last is None or ts - last.last_seen > session_timeout:
        return ts
    return last.started


def hit_view(profile: Profile, hit: Hit, *, session_timeout: float = SESSION_TIMEOUT) -> Profile:
    """``profile`` with ``hit`` folded in, as a new profile; ``profile`` is not changed.

    Only what this page view changes is copied (the session list and the session it
    continues, the device it came from, the affinities when it has a category, the norms
    when it opens a session); everything else is shared with ``profile``: treat both as
    read-only and fold the next page view into another view.

    >>> from personalize.profiles.profile import Profile
    >>> p = Profile(key="v:v1")
    >>> apply_hit(p, Hit(ts=1000.0, path="/shoes", category="shoes", device_id="d1"))
    >>> v = hit_view(p, Hit(ts=1100.0, path="/shoes/red", category="shoes", device_id="d1"))
    >>> (p.page_views, p.affinities, p.sessions[-1].page_views), (v.page_views, v.affinities)
    ((1, {'shoes': 1.0}, 1), (2, {'shoes': 2.0}))
    """
    ts = hit.ts
    last = profile.sessions[-1] if profile.sessions else None
    device_id = hit.device_id
    device = profile.devices.get(device_id) if device_id else None
    if (
        last is not None
        and ts >= last.last_seen
        and ts - last.last_seen <= session_timeout
        and (device is not None or not device_id)
    ):
        return _next_page(profile, hit, last, device_id, device)
    sessions = profile.sessions[:]
    norms = profile.norms
    if last is None or hit.ts - last.last_seen > session_timeout:
        if last is not None and norms:
            norms = {k: v.copy() for k, v in norms.items()}  # the closed session counts
        elif last is not None:
            norms = {}
    else:
        sessions[-1] = copy_session(last)
    devices = profile.devices
    if device_id:
        devices = devices.copy()
        if device is not None:
            devices[device_id] = device.copy()
    # Positional, in field order: this runs for every page that reads its profile.
    view = make_profile(
        profile.key,
        profile.user_id,
        profile.first_seen,
        profile.last_seen,
        profile.visits,
        profile.page_views,
        profile.affinities.copy() if hit.category else profile.affinities,
        sessions,
        profile.traits,
        profile.trait_times,
        devices,
        profile.events,
        profile.facts,
        profile.aliases,
        profile.merged_into,
        profile.merged_at,
        profile.merged_device,
        profile.opted_out,
        profile.batches,
        profile.stated,
        norms,
        profile.cookie_epoch,
        profile.revoked,
    )
    apply_hit(view, hit, session_timeout=session_timeout)
    return view


def _next_page(
    profile: Profile,
    hit: Hit,
    last: SessionRecord,
    device_id: str | None,
    device: dict[str, Any] | None,
) -> Profile:
    """:func:`hit_view` of the most common page view: the next page of the session under
    way, from a device the profile knows (or none), in order. The same rules as
    :func:`apply_hit`, written out for that case (tests hold the two equal)."""
    ts = hit.ts
    session = make_session(
        last.started,
        ts,
        last.page_views + 1,
        last.channel,
        last.source,
        last.medium,
        last.campaign,
        last.term,
        last.landing_page,
        last.device_type,
        last.country,
        last.id,
        last.hour,
        last.category,
    )
    sessions = profile.sessions[:]
    sessions[-1] = session
    devices = profile.devices
    if device_id and device is not None and ts >= device.get("last_seen", -1.0):
        devices = devices.copy()
        # (a copy set key by key: a dict display with ``**device`` grows a new table)
        device = devices[device_id] = device.copy()
        device["type"] = hit.device_type
        device["os"] = hit.os
        device["browser"] = hit.browser
        device["last_seen"] = ts
    affinities = profile.affinities
    category = hit.category
    if category and not (profile.stated and wants_less(profile.stated, category)):
        affinities = affinities.copy()
        affinities[category] = affinities.get(category, 0.0) + 1.0
    first_seen, last_seen = profile.first_seen, profile.last_seen
    # Positional, in field order: this runs for most pages that read their profile.
    return make_profile(
        profile.key,
        profile.user_id,
        ts if first_seen is None or ts < first_seen else first_seen,
        ts if last_seen is None or ts > last_seen else last_seen,
        profile.visits,
        profile.page_views + 1,
        affinities,
        sessions,
        profile.traits,
        profile.trait_times,
        devices,
        profile.events,
        profile.facts,
        profile.aliases,
        profile.merged_into,
        profile.merged_at,
        profile.merged_device,
        profile.opted_out,
        profile.batches,
        profile.stated,
        profile.norms,
        profile.cookie_epoch,
        profile.revoked,
    )


def session_id(profile: Profile, session: SessionRecord) -> str:
    """The identity of one of ``profile``'s sessions; it survives a login (the merged profile
    keeps the session record). Records written before sessions had ids get one from the
    profile's key and the start.

    >>> from personalize.profiles.profile import Profile
    >>> p = Profile(key="v:x1")
    >>> apply_hit(p, Hit(ts=1000.0, path="/"))
    >>> session_id(p, p.sessions[-1])
    'v:x1@1000'
    """
    return session.id or f"{profile.key}@{session.started:.0f}"


def session_at(
    profile: Profile, ts: float, *, session_timeout: float = SESSION_TIMEOUT
) -> SessionRecord | None:
    """The session ``ts`` belongs to: the newest that started by then and was still open
    (an order reported a little after the last page still counts for its session).

    >>> from personalize.profiles.profile import Profile
    >>> p = Profile(key="v:x1")
    >>> apply_hit(p, Hit(ts=1000.0, path="/"))
    >>> session_at(p, 1500.0).started, session_at(p, 999.0), session_at(p, 1000.0 + 3600)
    (1000.0, None, None)
    """
    for session in reversed(profile.sessions):
        if session.started <= ts:
            return session if ts - session.last_seen <= session_timeout else None
    return None


class CategoryMap:
    """Maps request paths to interest categories with shell-style patterns; first match wins.

    >>> cats = CategoryMap({"/shoes/*": "shoes", "/bags": "bags", "/bags/*": "bags"})
    >>> cats.category("/shoes/red-sneaker"), cats.category("/bags"), cats.category("/")
    ('shoes', 'bags', None)
    >>> cats.names
    ('shoes', 'bags')
    """

    def __init__(self, mapping: Mapping[str, str] | Iterable[tuple[str, str]] = ()) -> None:
        items = list(mapping.items()) if isinstance(mapping, Mapping) else list(mapping)
        self._categories = [category for _, category in items]
        if items:
            # One alternation with a named group per pattern: a single regex search per path.
            alternatives = "|".join(
                f"(?P<c{i}>{translate(pattern)[4:-3]})" for i, (pattern, _) in enumerate(items)
            )
            self._regex: re.Pattern[str] | None = re.compile(f"(?s:{alternatives})\\Z")
        else:
            self._regex = None

    @property
    def names(self) -> tuple[str, ...]:
        """The categories, each once, in the order they were given."""
        return tuple(dict.fromkeys(self._categories))

    def category(self, path: str) -> str | None:
        if self._regex is None:
            return None
        match = self._regex.match(path)
        if match is None or match.lastgroup is None:
            return None
        return self._categories[int(match.lastgroup[1:])]
