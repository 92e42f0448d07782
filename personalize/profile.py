"""The visitor profile and how one page view folds into it.

A profile is plain data (it round-trips through JSON); :func:`apply_hit` is the one place that
changes it for a page view, so every store applies exactly the same rules.

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

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from fnmatch import translate
from typing import Any

import orjson

from personalize.frozen import fast_init

SESSION_TIMEOUT = 30 * 60  # seconds of inactivity that end a session
MAX_SESSIONS = 20  # session records kept per profile (the counters keep the totals)
MAX_DEVICES = 10  # per-device records kept per profile, least recently seen dropped first
MAX_EVENTS = 50  # raw events kept per profile (facts keep the aggregates)
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
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Hit:
        try:
            return cls(**data)  # what to_dict wrote: exactly the fields
        except TypeError:  # written by another version: take the fields we know
            return cls(**{k: data[k] for k in _HIT_FIELDS if k in data})


_HIT_FIELDS = tuple(Hit.__dataclass_fields__)


@dataclass(slots=True)
class SessionRecord:
    """One visit: when it started, how it came in, and how many pages it saw."""

    started: float
    last_seen: float
    page_views: int = 0
    channel: str = "direct"
    source: str | None = None
    medium: str | None = None
    campaign: str | None = None
    term: str | None = None
    landing_page: str = "/"
    device_type: str | None = None
    country: str | None = None  # where the visit came from (never the IP address)


@dataclass(slots=True)
class Profile:
    """What is known about one visitor (anonymous) or one user (known).

    ``facts`` are aggregates of events from other channels, for segments to use:
    ``purchases`` (count), ``revenue``, ``last_purchase_at`` (ts), ``purchased``
    (product id -> last ts), ``returns``, ``last_return_at``, ``open_tickets`` (count),
    ``tickets`` (ticket id -> status), ``last_ticket_at``, and ``custom`` (event name ->
    ``{"count": n, "last": ts}``).
    """

    key: str  # where it is stored: "v:<visitor id>" while anonymous, "u:<user id>" once known
    user_id: str | None = None
    first_seen: float | None = None
    last_seen: float | None = None
    visits: int = 0  # sessions, ever
    page_views: int = 0
    affinities: dict[str, float] = field(default_factory=dict)  # category -> page views
    sessions: list[SessionRecord] = field(default_factory=list)  # the newest MAX_SESSIONS
    traits: dict[str, Any] = field(default_factory=dict)
    trait_times: dict[str, float] = field(default_factory=dict)  # trait -> when it was set
    devices: dict[str, dict[str, Any]] = field(default_factory=dict)  # device id -> facts
    events: list[dict[str, Any]] = field(default_factory=list)  # the newest MAX_EVENTS
    facts: dict[str, Any] = field(default_factory=dict)
    aliases: list[str] = field(default_factory=list)  # anonymous ids merged into this profile
    merged_into: str | None = None  # on an anonymous profile once merged: a tombstone
    merged_at: float | None = None
    merged_device: str | None = None  # on a tombstone: the device id the browser got at login
    opted_out: bool = False
    batches: list[str] = field(default_factory=list)  # ids of the last write batches applied

    @property
    def current_session(self) -> SessionRecord | None:
        return self.sessions[-1] if self.sessions else None

    @property
    def is_tombstone(self) -> bool:
        """True for an anonymous profile that was merged into a known one."""
        return self.merged_into is not None

    def top_affinities(self, n: int = 3) -> list[tuple[str, float]]:
        """The ``n`` categories with the most page views, strongest first."""
        return sorted(self.affinities.items(), key=lambda kv: (-kv[1], kv[0]))[:n]

    def to_dict(self) -> dict[str, Any]:
        """The profile as plain JSON-able data. It shares containers with the profile:
        serialise it or copy it, don't change it."""
        # Written out by hand: dataclasses.asdict deep-copies generically and is several
        # times slower, and this runs for every profile write.
        return {
            "key": self.key,
            "user_id": self.user_id,
            "first_seen": self.first_seen,
            "last_seen": self.last_seen,
            "visits": self.visits,
            "page_views": self.page_views,
            "affinities": self.affinities,
            "sessions": [_session_dict(s) for s in self.sessions],
            "traits": self.traits,
            "trait_times": self.trait_times,
            "devices": self.devices,
            "events": self.events,
            "facts": self.facts,
            "aliases": self.aliases,
            "merged_into": self.merged_into,
            "merged_at": self.merged_at,
            "merged_device": self.merged_device,
            "opted_out": self.opted_out,
            "batches": self.batches,
        }

    def to_json(self) -> bytes:
        """The profile serialised, as stores keep it."""
        data = self.to_dict()
        try:
            return orjson.dumps(data, option=orjson.OPT_NON_STR_KEYS)
        except TypeError:  # what orjson refuses (integers beyond 64 bits...), json takes
            return json.dumps(data, default=str).encode()

    @classmethod
    def from_json(cls, data: bytes | str) -> Profile:
        """A profile from what :meth:`to_json` wrote (the decoded containers are fresh, so
        they are taken as they are: this runs for every profile a store reads)."""
        d = orjson.loads(data)
        get = d.get
        return cls(
            d["key"],
            get("user_id"),
            get("first_seen"),
            get("last_seen"),
            get("visits", 0),
            get("page_views", 0),
            get("affinities") or {},
            [_session_from(s) for s in get("sessions", ())],
            get("traits") or {},
            get("trait_times") or {},
            get("devices") or {},
            get("events") or [],
            get("facts") or {},
            get("aliases") or [],
            get("merged_into"),
            get("merged_at"),
            get("merged_device"),
            get("opted_out", False),
            get("batches") or [],
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Profile:
        """A profile from plain data of any origin: types are checked and containers copied."""
        sessions = [_session_from(s) for s in data.get("sessions", ())]
        return cls(
            key=str(data["key"]),
            user_id=data.get("user_id"),
            first_seen=data.get("first_seen"),
            last_seen=data.get("last_seen"),
            visits=int(data.get("visits", 0)),
            page_views=int(data.get("page_views", 0)),
            affinities={str(k): float(v) for k, v in data.get("affinities", {}).items()},
            sessions=sessions,
            traits=dict(data.get("traits", {})),
            trait_times={str(k): float(v) for k, v in data.get("trait_times", {}).items()},
            devices={str(k): dict(v) for k, v in data.get("devices", {}).items()},
            events=[dict(e) for e in data.get("events", ())],
            facts=dict(data.get("facts", {})),
            aliases=[str(a) for a in data.get("aliases", ())],
            merged_into=data.get("merged_into"),
            merged_at=data.get("merged_at"),
            merged_device=data.get("merged_device"),
            opted_out=bool(data.get("opted_out", False)),
            batches=[str(b) for b in data.get("batches", ())],
        )

    def copy(self) -> Profile:
        """A deep copy that shares no mutable state with this profile."""
        return Profile.from_json(self.to_json())


_SESSION_FIELDS = tuple(SessionRecord.__dataclass_fields__)


def _session_dict(s: SessionRecord) -> dict[str, Any]:
    return {
        "started": s.started,
        "last_seen": s.last_seen,
        "page_views": s.page_views,
        "channel": s.channel,
        "source": s.source,
        "medium": s.medium,
        "campaign": s.campaign,
        "term": s.term,
        "landing_page": s.landing_page,
        "device_type": s.device_type,
        "country": s.country,
    }


def _session_from(d: Mapping[str, Any]) -> SessionRecord:
    get = d.get
    return SessionRecord(
        d["started"],
        d["last_seen"],
        get("page_views", 0),
        get("channel", "direct"),
        get("source"),
        get("medium"),
        get("campaign"),
        get("term"),
        get("landing_page", "/"),
        get("device_type"),
        get("country"),
    )


def apply_hit(profile: Profile, hit: Hit, *, session_timeout: float = SESSION_TIMEOUT) -> None:
    """Fold one page view into ``profile`` in place.

    A new session opens after ``session_timeout`` seconds of inactivity, remembering its entry
    source and landing page. An internal referrer never opens one by itself; a session opened
    by an internal hit (after a long pause) counts as direct.
    """
    ts = hit.ts
    sessions = profile.sessions
    last = sessions[-1] if sessions else None
    if last is None or ts - last.last_seen > session_timeout:
        internal = hit.channel == "internal"
        profile.sessions.append(
            SessionRecord(
                started=hit.ts,
                last_seen=hit.ts,
                channel="direct" if internal else hit.channel,
                source=None if internal else hit.source,
                medium=None if internal else hit.medium,
                campaign=None if internal else hit.campaign,
                term=None if internal else hit.term,
                landing_page=hit.path[:_MAX_PATH],
                device_type=hit.device_type,
                country=hit.country,
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
    if category:
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


class CategoryMap:
    """Maps request paths to interest categories with shell-style patterns; first match wins.

    >>> cats = CategoryMap({"/shoes/*": "shoes", "/bags": "bags", "/bags/*": "bags"})
    >>> cats.category("/shoes/red-sneaker"), cats.category("/bags"), cats.category("/")
    ('shoes', 'bags', None)
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

    def category(self, path: str) -> str | None:
        if self._regex is None:
            return None
        match = self._regex.match(path)
        if match is None or match.lastgroup is None:
            return None
        return self._categories[int(match.lastgroup[1:])]


MAX_ALIASES = 50  # anonymous ids merged into one known profile before merges are refused


def merge_profiles(target: Profile, source: Profile) -> None:
    """Fold the anonymous ``source`` into the known ``target`` in place.

    Counters add, first_seen takes the minimum and last_seen the maximum, affinities add,
    session and event histories concatenate in time order (bounded), devices combine, and a
    trait keeps the value that was set most recently.

    >>> known = Profile(key="u:ann", visits=2, page_views=5, affinities={"shoes": 3.0},
    ...                 first_seen=500.0, last_seen=900.0)
    >>> anon = Profile(key="v:x1", visits=1, page_views=2, affinities={"shoes": 1.0, "bags": 1.0},
    ...                first_seen=100.0, last_seen=200.0)
    >>> merge_profiles(known, anon)
    >>> known.visits, known.page_views, known.affinities, known.first_seen, known.last_seen
    (3, 7, {'shoes': 4.0, 'bags': 1.0}, 100.0, 900.0)
    """
    target.visits += source.visits
    target.page_views += source.page_views
    target.first_seen = _min(target.first_seen, source.first_seen)
    target.last_seen = _max(target.last_seen, source.last_seen)
    for category, views in source.affinities.items():
        target.affinities[category] = target.affinities.get(category, 0.0) + views
    target.sessions = sorted([*target.sessions, *source.sessions], key=lambda s: s.started)[
        -MAX_SESSIONS:
    ]
    for name, value in source.traits.items():
        when = source.trait_times.get(name, 0.0)
        if name not in target.traits or when > target.trait_times.get(name, 0.0):
            target.traits[name] = value
            target.trait_times[name] = when
    for device_id, device in source.devices.items():
        mine = target.devices.get(device_id)
        if mine is None or device.get("last_seen", 0) > mine.get("last_seen", 0):
            target.devices[device_id] = dict(device)
    while len(target.devices) > MAX_DEVICES:
        oldest = min(target.devices, key=lambda d: target.devices[d].get("last_seen", 0))
        del target.devices[oldest]
    target.events = sorted([*target.events, *source.events], key=lambda e: e.get("ts", 0))[
        -MAX_EVENTS:
    ]
    from personalize.events import merge_facts

    merge_facts(target.facts, source.facts)
    target.opted_out = target.opted_out or source.opted_out


def _min(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else min(a, b)


def _max(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else max(a, b)
