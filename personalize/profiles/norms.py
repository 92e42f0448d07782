"""Per-visitor norms: the visitor's usual context, kept compactly in the profile, and how unusual
this visit is for them.

``profile.norms`` counts past sessions by device, entry channel, part of the local day, country
and landing category (at most :data:`MAX_VALUES` values each; older sessions weigh less,
:data:`DECAY` per session). A session is counted when the next one opens, so the current visit
is always compared with the visits before it. :func:`unusualness` scores the current session:
for each of those contexts, 1 minus the share of past sessions that had this value (a value never
seen before scores 1); the visit's score is the highest, with the reasons in words.

>>> from personalize.profiles.pageviews import Hit, apply_hit
>>> from personalize.profiles.profile import Profile
>>> p = Profile(key="v:1")
>>> for day in range(4):
...     apply_hit(p, Hit(ts=day * 86400.0, path="/", device_type="desktop", hour=9))
>>> apply_hit(p, Hit(ts=5 * 86400.0, path="/", device_type="mobile", hour=20))
>>> score, reasons = unusualness(p)
>>> round(score, 2), reasons
(1.0, ('first visit from a mobile, in the evening; usually desktop, in the morning',))
"""

from __future__ import annotations

from collections.abc import Mapping

from personalize.profiles.profile import Profile, SessionRecord

__all__ = [
    "DECAY",
    "MAX_VALUES",
    "MIN_SESSIONS",
    "count_session",
    "habits",
    "merge_norms",
    "unusualness",
]

MAX_VALUES = 8  # values kept per context (the rarest is dropped first)
DECAY = 0.97  # weight of past sessions each time one more is counted (half-life ~23 sessions)
MIN_SESSIONS = 3.0  # (weighted) past sessions before a visit can be unusual for a visitor
DAYPARTS = ("night", "morning", "afternoon", "evening")

# context -> how a reason says it: "first visit <from a mobile>", "usually <desktop>"
_WORDS: Mapping[str, tuple[str, str]] = {
    "device": ("from a {}", "{}"),
    "channel": ("via {}", "via {}"),
    "daypart": ("in the {}", "in the {}"),
    "country": ("from {}", "from {}"),
    "category": ("for {}", "for {}"),
}


def session_context(session: SessionRecord) -> dict[str, str]:
    """The contexts of one session that norms count."""
    out: dict[str, str] = {}
    if session.device_type:
        out["device"] = session.device_type
    out["channel"] = session.channel
    if session.hour is not None:
        out["daypart"] = DAYPARTS[int(session.hour) % 24 // 6]
    if session.country:
        out["country"] = session.country
    if session.category:
        out["category"] = session.category
    return out


_HEADINGS: Mapping[str, str] = {
    "device": "Device",
    "channel": "How you arrive",
    "daypart": "Time of day",
    "country": "Country",
    "category": "First page about",
}


def habits(norms: Mapping[str, Mapping[str, float]]) -> list[tuple[str, str]]:
    """The visitor's norms in words, one (heading, habit) per context, for people to read.

    >>> habits({"device": {"desktop": 2.9, "mobile": 0.97}, "daypart": {"morning": 1.0}})
    [('Device', 'mostly desktop, sometimes mobile'), ('Time of day', 'mostly morning')]
    """
    out = []
    for context, heading in _HEADINGS.items():
        counts = norms.get(context) or {}
        total = sum(counts.values())
        if total <= 0:
            continue
        ranked = sorted(counts, key=lambda v: (-counts[v], v))
        words = []
        for value in ranked:
            share = counts[value] / total
            said = value.replace("_", " ")
            if share >= 0.5:
                words.append("mostly " + said)
            elif share >= 0.15:
                words.append(("sometimes " if not words or "mostly" in words[-1] else "") + said)
            else:
                rare = "now and then " if "now and then" not in " ".join(words) else ""
                words.append(rare + said)
        out.append((heading, ", ".join(words)))
    return out


def count_session(norms: dict[str, dict[str, float]], session: SessionRecord) -> None:
    """Count one (past) session into ``norms`` in place."""
    for counts in norms.values():
        for value in counts:
            counts[value] = round(counts[value] * DECAY, 4)
    for context, value in session_context(session).items():
        counts = norms.setdefault(context, {})
        counts[value] = counts.get(value, 0.0) + 1.0
        _bound(counts)


def merge_norms(
    target: dict[str, dict[str, float]], source: Mapping[str, Mapping[str, float]]
) -> None:
    """Add ``source``'s norms to ``target``'s (a login merging an anonymous profile)."""
    for context, counts in source.items():
        mine = target.setdefault(context, {})
        for value, count in counts.items():
            mine[value] = round(mine.get(value, 0.0) + float(count), 4)
        _bound(mine)


def _bound(counts: dict[str, float]) -> None:
    while len(counts) > MAX_VALUES:
        del counts[min(counts, key=lambda v: (counts[v], v))]


def unusualness(profile: Profile) -> tuple[float, tuple[str, ...]] | None:
    """How unusual the current session is for this visitor, 0 (their usual) to 1 (never seen),
    with the reasons; None without a current session or with too little history."""
    session = profile.current_session
    norms = profile.norms
    if session is None or not norms:
        return None
    total = max((sum(c.values()) for c in norms.values()), default=0.0)
    if total < MIN_SESSIONS:
        return None
    score = 0.0
    new: list[str] = []
    rare: list[str] = []
    usual: list[str] = []
    for context, value in session_context(session).items():
        counts = norms.get(context) or {}
        seen = sum(counts.values())
        if seen < MIN_SESSIONS:
            continue
        surprise = 1.0 - counts.get(value, 0.0) / (seen + 1.0)
        score = max(score, surprise)
        if surprise < 0.7:
            continue
        said, habit = _WORDS[context]
        (new if value not in counts else rare).append(said.format(value.replace("_", " ")))
        top = max(counts, key=lambda v: (counts[v], v))
        if top != value and counts[top] / seen >= 0.5:
            usual.append(habit.format(top.replace("_", " ")))
    parts = []
    if new:
        parts.append("first visit " + ", ".join(new))
    if rare:
        parts.append("rarely " + ", ".join(rare))
    if parts and usual:
        parts.append("usually " + ", ".join(usual))
    return score, ("; ".join(parts),) if parts else ()
