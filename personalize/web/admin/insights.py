"""What the editor UI computes: segment sizes, a profile's segments, previews, the AUC chart.

Nothing here writes anything or feeds learning. A preview decides for a visitor *without an
id*, which the decision engine treats like a bot: no exposure counted, no frequency cap
touched, no decision cached (see :mod:`personalize.content.decisions`).

>>> svg = auc_chart([[100, 0.61], [200, 0.68], [400, 0.74]], min_auc=0.65)
>>> svg.startswith("<svg"), svg.count("<polyline"), "quality gate 0.65" in svg
(True, 1, True)
>>> auc_chart([], min_auc=0.6)
Markup('')
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, get_args

from markupsafe import Markup

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
    profile: Profile, library: SegmentLibrary | None, now: float, site_time_zone: str
) -> list[Membership]:
    """The segments a stored profile falls into (see :func:`profile_context`)."""
    if library is None or profile.merged_into is not None:
        return []
    context = profile_context(profile, now, site_time_zone)
    attrs = build_attributes(context, profile, is_known=profile.user_id is not None, now=now)
    return library.evaluate(attrs)


def stated_effect(
    profile: Profile, members: list[Membership], library: SegmentLibrary, now: float, zone: str
) -> tuple[set[str], set[str]]:
    """Segments joined and left only by what the visitor stated (evaluated as if they had not)."""
    inferred = {
        m.segment for m in profile_segments(replace(profile, stated={}), library, now, zone)
    }
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
            members = profile_segments(profile, library, now, zone)
            for member in members:
                counts[member.segment] = counts.get(member.segment, 0) + 1
            if profile.stated and library is not None:
                joined, quit = stated_effect(profile, members, library, now, zone)
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


def preview(pz: Personalizer, request: PreviewRequest) -> PreviewResult:
    """Segments and every slot's decision for the simulated visitor; writes nothing."""
    now = pz.now()
    device: Any = request.device
    channel: Any = request.channel
    medium = {"paid_search": "cpc", "email": "email", "organic_search": "organic"}.get(channel)
    context = VisitorContext(
        geo=Geo(country=request.country) if request.country else None,
        device=Device(type=device, is_touch=device in ("mobile", "tablet")),
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
    attrs = build_attributes(context, profile, is_known=request.known, now=now)
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


def auc_chart(
    history: Sequence[Sequence[float]],
    *,
    min_auc: float | None,
    width: int = 560,
    height: int = 200,
) -> Markup:
    """Prequential AUC over the events learned, as a small inline SVG ('' without data)."""
    points = [
        (float(p[0]), float(p[1]))
        for p in history
        if isinstance(p, list | tuple)
        and len(p) == 2
        and all(isinstance(v, int | float) and math.isfinite(v) for v in p)
    ]
    if not points:
        return Markup("")
    left, right, top, bottom = 46, 12, 12, 30
    xs = [x for x, _ in points]
    x0, x1 = min(xs), max(xs)
    x1 = x1 if x1 > x0 else x0 + 1
    lows = [y for _, y in points] + ([min_auc] if min_auc is not None else [])
    y0 = min(0.5, math.floor(min(lows) * 10) / 10)
    y1 = 1.0

    def sx(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * (width - left - right)

    def sy(y: float) -> float:
        return top + (y1 - y) / (y1 - y0) * (height - top - bottom)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" '
        f'aria-label="prequential AUC over events learned">'
    ]
    ticks = [y0 + i * (y1 - y0) / 5 for i in range(6)]
    for t in ticks:
        parts.append(
            f'<line x1="{left}" y1="{sy(t):.1f}" x2="{width - right}" y2="{sy(t):.1f}" '
            f'stroke="#e3e6ec"/><text x="{left - 6}" y="{sy(t) + 4:.1f}" font-size="11" '
            f'text-anchor="end" fill="#5b6474">{t:.2f}</text>'
        )
    for x, anchor in ((x0, "start"), (x1, "end")):
        parts.append(
            f'<text x="{sx(x):.1f}" y="{height - 10}" font-size="11" text-anchor="{anchor}" '
            f'fill="#5b6474">{int(x):,} events</text>'
        )
    if min_auc is not None and math.isfinite(min_auc):
        parts.append(
            f'<line x1="{left}" y1="{sy(min_auc):.1f}" x2="{width - right}" '
            f'y2="{sy(min_auc):.1f}" stroke="#b42318" stroke-dasharray="5 4"/>'
            f'<text x="{width - right}" y="{sy(min_auc) - 4:.1f}" font-size="11" '
            f'text-anchor="end" fill="#b42318">quality gate {min_auc:.2f}</text>'
        )
    line = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in points)
    parts.append(f'<polyline points="{line}" fill="none" stroke="#2456c7" stroke-width="2"/>')
    for x, y in points[-1:]:
        parts.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3.5" fill="#2456c7"/>')
    parts.append("</svg>")
    # Only numbers formatted above and fixed text: nothing from the outside is interpolated.
    return Markup("".join(parts))


def learning_status(pz: Personalizer) -> dict[str, Any] | None:
    """The learning integration's status, or None when learning is off; errors are reported."""
    learning = pz.learning
    if learning is None:
        return None
    try:
        status = learning.status()
    except Exception as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}
    return dict(status) if isinstance(status, Mapping) else {"error": "status() is not a mapping"}


def gate_verdict(status: Mapping[str, Any]) -> tuple[bool, list[str]]:
    """Whether the model passes its quality gate, and why (not).

    >>> gate_verdict({"events": 50, "min_labelled": 200, "auc_history": [], "min_auc": 0.6})
    (False, ['50 labelled events of the 200 needed'])
    """
    reasons: list[str] = []
    events, needed = status.get("events"), status.get("min_labelled")
    if isinstance(events, int | float) and isinstance(needed, int | float) and events < needed:
        reasons.append(f"{int(events)} labelled events of the {int(needed)} needed")
    history = status.get("auc_history") or []
    min_auc = status.get("min_auc")
    last = history[-1][1] if history and isinstance(history[-1], list | tuple) else None
    if isinstance(min_auc, int | float) and isinstance(last, int | float) and last < min_auc:
        reasons.append(f"AUC {last:.3f} is below the gate of {min_auc:.2f}")
    ready = status.get("ready")
    passed = bool(ready) if isinstance(ready, bool) else not reasons
    if not passed and not reasons:
        reasons.append("the learner reports it is not ready")
    return passed, reasons
