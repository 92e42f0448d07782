"""The visitor profile: what is known about one visitor or user, as plain data.

A profile round-trips through JSON (:meth:`Profile.to_json`, :meth:`Profile.from_json`); page
views fold into it with :func:`personalize.profiles.pageviews.apply_hit`, events with
:func:`personalize.profiles.events.apply_event`.

>>> p = Profile(key="v:v1", visits=1, affinities={"shoes": 2.0})
>>> Profile.from_json(p.to_json()) == p
True
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from personalize.util.frozen import maker

MAX_SESSIONS = 20  # session records kept per profile (the counters keep the totals)
MAX_DEVICES = 10  # per-device records kept per profile, least recently seen dropped first
MAX_EVENTS = 50  # raw events kept per profile (facts keep the aggregates)


def new_cookie_epoch() -> int:
    """A random cookie epoch for a new profile (see :mod:`personalize.profiles.revocation`)."""
    # secrets.randbits(31), without its two Python frames: 31 bits of os.urandom.
    return int.from_bytes(os.urandom(4), "big") >> 1


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
    # "<profile key when it opened>@<start>": the session's identity, kept through a login
    # (the merged profile keeps the record), so learning labels it once.
    id: str | None = None
    hour: int | None = None  # the visitor's local hour when it started
    category: str | None = None  # the landing page's category


@dataclass(slots=True)
class Profile:
    """What is known about one visitor (anonymous) or one user (known).

    ``facts`` are aggregates of events from other channels, for segments to use:
    ``purchases`` (count), ``revenue``, ``last_purchase_at`` (ts), ``purchased``
    (product id -> last ts), ``returns``, ``last_return_at``, ``open_tickets`` (count),
    ``tickets`` (ticket id -> status), ``last_ticket_at``, and ``custom`` (event name ->
    ``{"count": n, "last": ts}``). ``stated`` holds what the visitor said about themselves
    (see :mod:`personalize.profiles.preferences`): preference -> ``{"value", "ts", "origin"}``.
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
    stated: dict[str, dict[str, Any]] = field(default_factory=dict)  # stated preferences
    # The visitor's usual context: past sessions by device, channel, daypart, country and
    # landing category (see personalize.profiles.norms).
    norms: dict[str, dict[str, float]] = field(default_factory=dict)
    # On a known profile: which of its login cookies still read it (see
    # personalize.profiles.revocation): those signed with this (random) epoch whose device
    # ids were not logged out since.
    cookie_epoch: int = field(default_factory=new_cookie_epoch, compare=False)
    revoked: list[str] = field(default_factory=list)

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
            "stated": self.stated,
            "norms": self.norms,
            "cookie_epoch": self.cookie_epoch,
            "revoked": self.revoked,
        }

    def to_json(self) -> bytes:
        """The profile serialised, as stores keep it."""
        data = self.to_dict()
        try:
            return orjson.dumps(data, option=orjson.OPT_NON_STR_KEYS)
        except TypeError:  # what orjson refuses (integers beyond 64 bits...), json takes;
            # text that is not UTF-8 and non-finite numbers raise: no store could read them back.
            return json.dumps(data, default=str, ensure_ascii=False, allow_nan=False).encode()

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
            get("stated") or {},
            get("norms") or {},
            get("cookie_epoch", 0),
            get("revoked") or [],
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
            stated={str(k): dict(v) for k, v in data.get("stated", {}).items()},
            norms={
                str(k): {str(v): float(n) for v, n in dict(c).items()}
                for k, c in dict(data.get("norms") or {}).items()
            },
            cookie_epoch=int(data.get("cookie_epoch", 0)),
            revoked=[str(d) for d in data.get("revoked", ())],
        )

    def copy(self) -> Profile:
        """A deep copy that shares no mutable state with this profile."""
        return Profile.from_json(self.to_json())


_SESSION_FIELDS = tuple(SessionRecord.__dataclass_fields__)
#: ``Profile(*every field)`` and ``SessionRecord(*every field)`` without the class call: the
#: profile views built per request use them.
make_profile = maker(Profile)
make_session = maker(SessionRecord)


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
        "id": s.id,
        "hour": s.hour,
        "category": s.category,
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
        get("id"),
        get("hour"),
        get("category"),
    )


def new_profile(key: str, user_id: str | None = None) -> Profile:
    """``Profile(key=key, user_id=user_id)``, without the class call and its default
    factories (a new visitor's profile is built on their first page)."""
    return make_profile(
        key, user_id, None, None, 0, 0, {}, [], {}, {}, {}, [], {}, [], None, None, None,
        False, [], {}, {}, new_cookie_epoch(), [],
    )  # fmt: skip


def copy_profile(profile: Profile) -> Profile:
    """A copy whose own fields and top-level containers can be changed freely.

    Everything :func:`~personalize.profiles.pageviews.apply_hit` and
    :func:`~personalize.profiles.events.apply_event` change is copied; deeper values (a trait
    that is itself a list, an event's properties) are shared with ``profile``. That keeps this
    on the per-request path cheap; treat those nested values as read-only.
    """
    copy = copy_for_page_view(profile)
    copy.traits = dict(profile.traits)
    copy.trait_times = dict(profile.trait_times)
    copy.events = list(profile.events)
    copy.facts = {k: dict(v) if isinstance(v, dict) else v for k, v in profile.facts.items()}
    copy.aliases = list(profile.aliases)
    copy.batches = list(profile.batches)
    copy.stated = dict(profile.stated)
    copy.revoked = list(profile.revoked)
    return copy


def copy_for_page_view(profile: Profile) -> Profile:
    """A copy good for folding page views into, cheaper than :func:`copy_profile`: only what
    :func:`~personalize.profiles.pageviews.apply_hit` changes is copied (counters, sessions,
    affinities, devices, norms); traits, facts, events and statements are shared with
    ``profile``, read-only."""
    sessions = profile.sessions[:]
    if sessions:
        sessions[-1] = copy_session(sessions[-1])  # the only session a page view changes
    # Positional, in field order: this runs for every page that reads its profile.
    return make_profile(
        profile.key,
        profile.user_id,
        profile.first_seen,
        profile.last_seen,
        profile.visits,
        profile.page_views,
        profile.affinities.copy(),
        sessions,
        profile.traits,
        profile.trait_times,
        {k: v.copy() for k, v in profile.devices.items()},
        profile.events,
        profile.facts,
        profile.aliases,
        profile.merged_into,
        profile.merged_at,
        profile.merged_device,
        profile.opted_out,
        profile.batches,
        profile.stated,
        {k: v.copy() for k, v in profile.norms.items()} if profile.norms else {},
        profile.cookie_epoch,
        profile.revoked,
    )


def copy_session(s: SessionRecord) -> SessionRecord:
    """A copy of one session record (its fields are all immutable values)."""
    return make_session(
        s.started,
        s.last_seen,
        s.page_views,
        s.channel,
        s.source,
        s.medium,
        s.campaign,
        s.term,
        s.landing_page,
        s.device_type,
        s.country,
        s.id,
        s.hour,
        s.category,
    )
