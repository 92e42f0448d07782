"""Synthetic traffic with known ground truth, for tests, the demo and ``personalize evaluate``.

Sessions come from a few planted personas (the ``group`` the clusterer should recover; pick
them with ``personas``) and convert at ``base_rate`` times an engagement factor (deeper
sessions convert more), except where a planted :class:`Effect` applies: by default paid-search
mobile visitors in the evening convert ``lift`` times as often (``planted`` is true for them).
``p`` is each session's true conversion probability; ``converted`` its drawn label.

>>> records = list(simulate(3, seed=7))
>>> sorted(records[0])  # doctest: +NORMALIZE_WHITESPACE
['affinities', 'channel', 'converted', 'country', 'days_since_first', 'device_type', 'group',
 'hour', 'known', 'os', 'p', 'page_views', 'planted', 'session', 'session_page_views', 'ts',
 'visits', 'weekday']
>>> records == list(simulate(3, seed=7))
True
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

__all__ = ["GROUPS", "Effect", "is_planted", "simulate", "write_jsonl"]

Choices = Sequence[tuple[str, float]]


@dataclass(frozen=True, slots=True)
class _Persona:
    weight: float
    device: Choices
    channel: Choices
    hours: Choices  # "a-b" inclusive hour ranges
    weekend: float
    visits: tuple[int, int]
    known: float
    category: Choices
    country: Choices


_MOBILE_OS = {
    "mobile": (("iOS", 0.55), ("Android", 0.45)),
    "tablet": (("iOS", 0.7), ("Android", 0.3)),
}
_DESKTOP_OS = (("Windows", 0.6), ("Mac OS X", 0.3), ("Linux", 0.1))

GROUPS: dict[str, _Persona] = {
    "evening_social": _Persona(
        weight=0.3,
        device=(("mobile", 0.85), ("tablet", 0.05), ("desktop", 0.1)),
        channel=(("organic_social", 0.55), ("paid_social", 0.3), ("direct", 0.15)),
        hours=(("18-23", 0.85), ("12-17", 0.15)),
        weekend=0.35,
        visits=(1, 2),
        known=0.05,
        category=(("fashion", 0.8), ("beauty", 0.2)),
        country=(("GB", 0.5), ("US", 0.3), ("IE", 0.2)),
    ),
    "office_search": _Persona(
        weight=0.3,
        device=(("desktop", 0.9), ("mobile", 0.1)),
        channel=(("organic_search", 0.6), ("direct", 0.25), ("paid_search", 0.15)),
        hours=(("9-17", 0.9), ("18-21", 0.1)),
        weekend=0.05,
        visits=(2, 10),
        known=0.3,
        category=(("electronics", 0.8), ("books", 0.2)),
        country=(("US", 0.5), ("DE", 0.3), ("GB", 0.2)),
    ),
    "loyal_email": _Persona(
        weight=0.2,
        device=(("desktop", 0.6), ("tablet", 0.35), ("mobile", 0.05)),
        channel=(("email", 0.75), ("direct", 0.25)),
        hours=(("6-11", 0.85), ("12-17", 0.15)),
        weekend=0.3,
        visits=(10, 60),
        known=0.85,
        category=(("home", 0.8), ("garden", 0.2)),
        country=(("GB", 0.6), ("FR", 0.4)),
    ),
    "deal_hunter": _Persona(
        weight=0.2,
        device=(("mobile", 0.85), ("desktop", 0.15)),
        channel=(("paid_search", 0.75), ("paid_shopping", 0.25)),
        hours=(("18-23", 0.75), ("12-17", 0.25)),
        weekend=0.3,
        visits=(1, 4),
        known=0.1,
        category=(("electronics", 0.5), ("fashion", 0.5)),
        country=(("US", 0.5), ("GB", 0.3), ("DE", 0.2)),
    ),
}
_CATEGORIES = ("fashion", "beauty", "electronics", "books", "home", "garden")


_DAYPARTS = ("night", "morning", "afternoon", "evening")


@dataclass(frozen=True, slots=True)
class Effect:
    """A planted effect: sessions matching every ``when`` field convert ``lift`` times as often.

    ``when`` compares record fields (``channel``, ``device_type``, ``country``, ``daypart``...)
    with a value. :meth:`parse` reads the command line's form.

    >>> effect = Effect.parse("channel=paid_search,device_type=mobile,daypart=evening:4")
    >>> effect.lift, effect.matches({"channel": "paid_search", "device_type": "mobile",
    ...                              "hour": 20})
    (4.0, True)
    """

    when: Mapping[str, str]
    lift: float

    @classmethod
    def parse(cls, text: str) -> Effect:
        """``field=value,field=value:lift``; ValueError with the reason when malformed."""
        conditions, sep, lift = text.rpartition(":")
        if not sep or not conditions:
            raise ValueError(f"effect {text!r}: expected field=value,...:lift")
        when = {}
        for part in conditions.split(","):
            field, eq, value = part.partition("=")
            if not eq or not field.strip() or not value.strip():
                raise ValueError(f"effect {text!r}: {part!r} is not field=value")
            when[field.strip()] = value.strip()
        try:
            factor = float(lift)
        except ValueError:
            raise ValueError(f"effect {text!r}: lift {lift!r} is not a number") from None
        if not 0 < factor <= 100:
            raise ValueError(f"effect {text!r}: lift must be above 0 and at most 100")
        return cls(when, factor)

    def matches(self, record: Mapping[str, Any]) -> bool:
        """True when every condition holds for ``record``."""
        for field, value in self.when.items():
            actual: object = record.get(field)
            if field == "daypart":
                actual = _DAYPARTS[int(record.get("hour", 0)) % 24 // 6]
            if str(actual) != value:
                return False
        return True


#: The default planted effect's conditions: paid search on a phone in the evening.
PLANTED: Mapping[str, str] = {
    "channel": "paid_search",
    "device_type": "mobile",
    "daypart": "evening",
}


def is_planted(record: Mapping[str, Any]) -> bool:
    """True for the default planted sessions: paid search, mobile, evening (18-23h).

    >>> is_planted({"channel": "paid_search", "device_type": "mobile", "hour": 20})
    True
    """
    return Effect(PLANTED, 1.0).matches(record)


def _pick(rng: random.Random, choices: Choices) -> str:
    r = rng.random() * sum(w for _, w in choices)
    for value, weight in choices:
        r -= weight
        if r <= 0:
            return value
    return choices[-1][0]


def _session(rng: random.Random, i: int, ts: float, group: str) -> dict[str, Any]:
    persona = GROUPS[group]
    device = _pick(rng, persona.device)
    lo, hi = (int(h) for h in _pick(rng, persona.hours).split("-"))
    visits = rng.randint(*persona.visits)
    session_pv = 1 + min(int(rng.expovariate(0.4)), 40)
    main = _pick(rng, persona.category)
    affinities = {main: float(max(1, int(visits * rng.uniform(1.0, 3.0))))}
    if rng.random() < 0.4:
        other = rng.choice(_CATEGORIES)
        affinities[other] = affinities.get(other, 0.0) + float(rng.randint(1, 3))
    weekend = rng.random() < persona.weekend
    return {
        "session": f"s{i}",
        "ts": round(ts, 3),
        "group": group,
        "country": _pick(rng, persona.country),
        "device_type": device,
        "os": _pick(rng, _MOBILE_OS.get(device, _DESKTOP_OS)),
        "channel": _pick(rng, persona.channel),
        "hour": rng.randint(lo, hi),
        "weekday": rng.randint(5, 6) if weekend else rng.randint(0, 4),
        "known": rng.random() < persona.known,
        "visits": visits,
        "page_views": visits * 2 + session_pv + rng.randint(0, visits * 3),
        "session_page_views": session_pv,
        "days_since_first": 0.0 if visits == 1 else round(rng.expovariate(1 / (3.0 * visits)), 2),
        "affinities": affinities,
    }


def _outlier(rng: random.Random, i: int, ts: float) -> dict[str, Any]:
    """A visit far from every persona: a scraper-like burst at night from an unusual place."""
    return {
        "session": f"s{i}",
        "ts": round(ts, 3),
        "group": "outlier",
        "country": rng.choice(("KP", "AQ", "TV")),
        "device_type": "other",
        "os": "unknown",
        "channel": rng.choice(("referral", "display")),
        "hour": rng.randint(2, 4),
        "weekday": rng.randint(0, 6),
        "known": False,
        "visits": rng.randint(200, 900),
        "page_views": rng.randint(5000, 20000),
        "session_page_views": rng.randint(300, 2000),
        "days_since_first": 0.01,
        "affinities": {c: float(rng.randint(50, 500)) for c in _CATEGORIES},
    }


def _engagement(record: Mapping[str, Any]) -> float:
    """How much a session's depth multiplies its conversion odds (the same for every group)."""
    return float(min(4.0, (record["session_page_views"] / 3.0) ** 1.2))


def simulate(
    n: int,
    *,
    seed: int = 0,
    base_rate: float = 0.03,
    lift: float = 3.0,
    effects: Sequence[Effect] | None = None,
    personas: Sequence[str] | None = None,
    outlier_rate: float = 0.0,
    start: float = 1_700_000_000.0,
) -> Iterator[dict[str, Any]]:
    """``n`` synthetic sessions, deterministic for a ``seed``; see the module docstring.

    ``effects`` default to paid search on a phone in the evening at ``lift``; ``personas``
    to all of :data:`GROUPS` (a KeyError names the ones that exist)."""
    if effects is None:
        effects = (Effect(PLANTED, lift),)
    names = tuple(personas) if personas else tuple(GROUPS)
    unknown = [p for p in names if p not in GROUPS]
    if unknown:
        raise KeyError(f"unknown personas {', '.join(unknown)}; known: {', '.join(GROUPS)}")
    weights = tuple(GROUPS[p].weight for p in names)
    rng = random.Random(seed)
    ts = start
    for i in range(n):
        ts += rng.expovariate(1 / 2.0)  # about one session every two seconds
        if outlier_rate and rng.random() < outlier_rate:
            record = _outlier(rng, i, ts)
        else:
            record = _session(rng, i, ts, rng.choices(names, weights)[0])
        factor = 1.0
        for effect in effects:
            if effect.matches(record):
                factor *= effect.lift
        planted = factor != 1.0
        p = min(1.0, base_rate * factor * _engagement(record))
        record["planted"] = planted
        record["p"] = p
        record["converted"] = rng.random() < p
        yield record


def write_jsonl(records: Iterable[Mapping[str, Any]], out: TextIO) -> int:
    """Write one JSON object per line; returns how many."""
    n = 0
    for record in records:
        out.write(json.dumps(record, separators=(",", ":")) + "\n")
        n += 1
    return n
