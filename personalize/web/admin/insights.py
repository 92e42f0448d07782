"""What the editor UI computes: segment sizes, a profile's segments, previews.

Nothing here writes anything or feeds learning. A preview decides for a visitor *without an
id*, which the decision engine treats like a bot: no exposure counted, no frequency cap
touched, no decision cached (see :mod:`personalize.content.decisions`).

>>> parse_preview({"device": "mobile", "hour": "20"}, [], []).hour
20
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, get_args

from personalize.content.decisions import Decision
from personalize.content.subject import Preview
from personalize.context.clock import local_clock
from personalize.context.records import (
    Channel,
    Clock,
    Device,
    DeviceType,
    Geo,
    Signals,
    Source,
    VisitorContext,
)
from personalize.profiles.pageviews import Hit, apply_hit
from personalize.profiles.profile import Profile
from personalize.rules.attributes import build_attributes
from personalize.rules.segments import Membership, SegmentLibrary
from personalize.web.admin.model_view import learned_for

if TYPE_CHECKING:
    from personalize.personalizer import Personalizer

MEMBER_SAMPLE = 5_000  # profiles read to size the segments
MEMBER_TTL = 30.0  # seconds the sizes are cached (by the segments page)
CHANNELS: tuple[str, ...] = get_args(Channel)
DEVICES: tuple[str, ...] = tuple(d for d in get_args(DeviceType) if d != "bot")
_DAYPARTS = ("night", "morning", "afternoon", "evening")
FORCED = "added by the editor for this preview"


def profile_context(profile: Profile, now: float, site_time_zone: str) -> VisitorContext:
    """The context of a stored visitor coming back *now* as on their latest visit (country,
    device, entry source); the local time is the site's."""
    last = profile.current_session
    clock = local_clock(datetime.fromtimestamp(now, UTC), None, default=site_time_zone)
    if last is None:
        return VisitorContext(clock=clock)
    device: Any = last.device_type if last.device_type in DEVICES else "other"
    channel: Any = last.channel if last.channel in CHANNELS else "direct"
    return VisitorContext(
        geo=Geo(country=last.country) if last.country else None,
        device=Device(type=device, is_touch=device in ("mobile", "tablet")),
        source=Source(
            channel=channel,
            source=last.source,
            medium=last.medium,
            campaign=last.campaign,
            term=last.term,
        ),
        clock=clock,
        path=last.landing_page,
    )


def profile_segments(
    profile: Profile,
    library: SegmentLibrary | None,
    now: float,
    site_time_zone: str,
    *,
    pz: Personalizer | None = None,
) -> list[Membership]:
    """The segments a stored profile falls into (see :func:`profile_context`), learned
    segments included when ``pz`` has learning."""
    if library is None or profile.merged_into is not None:
        return []
    context = profile_context(profile, now, site_time_zone)
    learned = learned_for(pz, profile.key, profile, context) if pz is not None else None
    attrs = build_attributes(
        context, profile, is_known=profile.user_id is not None, now=now, learned=learned
    )
    return library.evaluate(attrs)


def stated_effect(
    profile: Profile,
    members: list[Membership],
    library: SegmentLibrary,
    now: float,
    zone: str,
    *,
    pz: Personalizer | None = None,
) -> tuple[set[str], set[str]]:
    """Segments joined and left only by what the visitor stated (evaluated as if they had not)."""
    unsaid = replace(profile, stated={})
    inferred = {m.segment for m in profile_segments(unsaid, library, now, zone, pz=pz)}
    current = {m.segment for m in members}
    return current - inferred, inferred - current


@dataclass(frozen=True, slots=True)
class MemberCounts:
    """Segment sizes among a sample of the stored profiles."""

    counts: dict[str, int]
    evaluated: int  # profiles evaluated (merged-away tombstones are skipped)
    sampled: int  # keys read
    total: int  # keys stored
    computed_at: float  # seconds since the epoch
    unavailable: str = ""  # why there are no counts (store down), if so
    stated: dict[str, int] = field(default_factory=dict)  # members only by what they stated
    left: dict[str, int] = field(default_factory=dict)  # not members only by what they stated


async def count_members(pz: Personalizer, *, cap: int = MEMBER_SAMPLE) -> MemberCounts:
    """Evaluate every segment over (a random sample of at most ``cap``) stored profiles."""
    now = pz.now()
    library = pz.segments
    names = library.names if library is not None else ()
    counts, stated, left = dict.fromkeys(names, 0), Counter[str](), Counter[str]()
    try:
        keys = await pz.profiles.keys()
        sample = keys if len(keys) <= cap else random.sample(keys, cap)
        evaluated = 0
        zone = pz.context.site_time_zone
        for key in sample:
            profile = await pz.profiles.read(key)
            if profile is None or profile.merged_into is not None:
                continue
            evaluated += 1
            members = profile_segments(profile, library, now, zone, pz=pz)
            for member in members:
                counts[member.segment] = counts.get(member.segment, 0) + 1
            if profile.stated and library is not None:
                joined, quit = stated_effect(profile, members, library, now, zone, pz=pz)
                stated.update(joined)
                left.update(quit)
    except Exception as exc:  # an outage: say so instead of failing the page
        return MemberCounts(counts, 0, 0, 0, now, f"the profile store is unavailable ({exc})")
    return MemberCounts(counts, evaluated, len(sample), len(keys), now, "", stated, left)


@dataclass(frozen=True, slots=True)
class PreviewRequest:
    """A simulated visitor, from the preview form."""

    path: str = "/"
    country: str = ""
    device: str = "desktop"
    os: str = ""  # "Android", "iOS", "Windows"...
    os_version: str = ""  # "14", "17.4"
    channel: str = "direct"
    source: str = ""
    campaign: str = ""
    hour: int = 12
    weekday: int = 0
    visits: int = 1
    known: bool = False
    language: str = ""
    segments: tuple[str, ...] = ()
    problems: tuple[str, ...] = field(default=())


def parse_preview(
    params: Mapping[str, str], segments: Sequence[str], extra: list[str]
) -> PreviewRequest:
    """A :class:`PreviewRequest` from query parameters; problems are collected, not raised.

    >>> p = parse_preview({"path": "/shoes", "country": "gb", "hour": "25"}, [], [])
    >>> p.country, p.hour, p.problems
    ('GB', 12, ('the local hour is 0 to 23',))
    """
    problems: list[str] = []
    path = (params.get("path") or "/").strip()[:512]
    if not path.startswith("/"):
        problems.append("the page path starts with /")
        path = "/"
    country = (params.get("country") or "").strip().upper()
    if country and not (len(country) == 2 and country.isascii() and country.isalpha()):
        problems.append("the country is a two-letter code such as GB")
        country = ""
    device = params.get("device") or "desktop"
    if device not in DEVICES:
        problems.append(f"the device is one of {', '.join(DEVICES)}")
        device = "desktop"
    channel = params.get("channel") or "direct"
    if channel not in CHANNELS:
        problems.append("unknown channel")
        channel = "direct"

    def number(name: str, low: int, high: int, default: int, what: str) -> int:
        raw = params.get(name)
        if raw in (None, ""):
            return default
        try:
            value = int(str(raw))
        except ValueError:
            value = low - 1
        if not low <= value <= high:
            problems.append(what)
            return default
        return value

    hour = number("hour", 0, 23, 12, "the local hour is 0 to 23")
    weekday = number("weekday", 0, 6, 0, "the weekday is 0 (Monday) to 6 (Sunday)")
    visits = number("visits", 1, 100, 1, "visits is 1 to 100")
    chosen = []
    for name in extra:
        if name in segments:
            chosen.append(name)
        elif name:
            problems.append(f"unknown segment {name[:40]!r}")
    return PreviewRequest(
        path=path,
        country=country,
        device=device,
        os=(params.get("os") or "").strip()[:32],
        os_version=(params.get("os_version") or "").strip()[:16],
        channel=channel,
        source=(params.get("source") or "").strip()[:64],
        campaign=(params.get("campaign") or "").strip()[:64],
        hour=hour,
        weekday=weekday,
        visits=visits,
        known=bool(params.get("known")),
        language=(params.get("language") or "").strip().lower()[:16],
        segments=tuple(dict.fromkeys(chosen)),
        problems=tuple(problems),
    )


@dataclass(frozen=True, slots=True)
class PreviewResult:
    attributes: dict[str, Any]
    segments: list[Membership]
    decisions: list[Decision]
    plain: list[list[str]] = field(default_factory=list)  # what the visitor reads, per slot


# The medium a preview's channel implies, as the source classifier would infer it.
_PREVIEW_MEDIUMS = {
    "paid_search": "cpc",
    "email": "email",
    "organic_search": "organic",
    "ai_assistant": "ai",
    "display": "display",
    "referral": "referral",
}


def preview(pz: Personalizer, request: PreviewRequest) -> PreviewResult:
    """Segments and every slot's decision for the simulated visitor; writes nothing."""
    now = pz.now()
    device: Any = request.device
    channel: Any = request.channel
    medium = _PREVIEW_MEDIUMS.get(channel)
    context = VisitorContext(
        geo=Geo(country=request.country) if request.country else None,
        device=Device(
            type=device,
            os=request.os or None,
            os_version=request.os_version or None,
            is_touch=device in ("mobile", "tablet"),
        ),
        source=Source(
            channel=channel,
            source=request.source or None,
            medium=medium,
            campaign=request.campaign or None,
        ),
        clock=Clock(
            time_zone="(preview)",
            hour=request.hour,
            weekday=request.weekday,
            daypart=_DAYPARTS[request.hour // 6],  # type: ignore[arg-type]
            weekend=request.weekday >= 5,
        ),
        path=request.path,
        signals=_signals(request.language),
    )
    profile = _simulated_profile(pz, request, context, now)
    learned = learned_for(pz, profile.key, profile, context)
    attrs = build_attributes(context, profile, is_known=request.known, now=now, learned=learned)
    library = pz.segments
    members = library.evaluate(attrs) if library is not None else []
    have = {m.segment for m in members}
    members += [Membership(name, (FORCED,)) for name in request.segments if name not in have]
    # A preview: the engine records nothing for it (no exposure, cap or cache).
    subject = Preview(attrs, profile, context, request.known, members)
    decisions = []
    engine = pz.decisions
    if engine is None:
        return PreviewResult(attrs, members, [])
    engine.library.reload_if_changed()
    decisions = [engine.decide_sync(subject, name) for name in engine.library.slots]
    plain = [engine.plain_reasons(d, subject) for d in decisions]
    return PreviewResult(attrs, members, decisions, plain)


def _signals(language: str) -> Signals:
    return Signals(languages=(language,) if language else ())


def _simulated_profile(
    pz: Personalizer, request: PreviewRequest, context: VisitorContext, now: float
) -> Profile:
    profile = Profile(key="preview", user_id="preview" if request.known else None)
    for days in range(request.visits - 1, 0, -1):  # earlier visits, one a day, direct
        apply_hit(profile, Hit(ts=now - days * 86_400.0, path="/"))
    source = context.source
    apply_hit(
        profile,
        Hit(
            ts=now,
            path=request.path,
            channel=source.channel,
            source=source.source,
            medium=source.medium,
            campaign=source.campaign,
            category=pz.categories.category(request.path),
            device_type=context.device.type,
            country=request.country or None,
        ),
    )
    return profile
