"""The attribute vocabulary segment rules may use: names, types, words for explanations.

The attributes themselves are built per request by
:func:`personalize.rules.attributes.build_attributes`; its docstring lists them all.

>>> lookup("hour").label, lookup("affinity.shoes").type
('local hour', 'number')
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, get_args

from personalize.context.records import Channel, Daypart, DeviceType
from personalize.profiles.preferences import PROMOTIONS

__all__ = [
    "ATTRIBUTES",
    "DAY",
    "FAMILIES",
    "WEEKDAYS",
    "Attribute",
    "AttributeType",
    "label",
    "lookup",
    "suggest",
    "unknown_attribute_message",
]

AttributeType = Literal["text", "number", "bool", "set", "timestamp", "any"]
DAY = 86_400.0  # seconds
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


@dataclass(frozen=True, slots=True)
class Attribute:
    """What a rule may say about one attribute: its type, words for explanations, and limits."""

    type: AttributeType
    description: str
    label: str = ""  # how explanations name it; the attribute name when empty
    choices: tuple[str, ...] = ()  # the only text values that exist, when known
    bounds: tuple[int, int] | None = None  # inclusive range of a bounded number
    cyclic: bool = False  # `between` with low > high wraps around (hour windows over midnight)


def _a(
    type_: AttributeType,
    description: str,
    label: str = "",
    *,
    choices: tuple[str, ...] = (),
    bounds: tuple[int, int] | None = None,
    cyclic: bool = False,
) -> Attribute:
    return Attribute(type_, description, label, choices, bounds, cyclic)


ATTRIBUTES: Mapping[str, Attribute] = {
    "country": _a("text", "ISO 3166-1 alpha-2 country code, upper case"),
    "region": _a("text", "ISO 3166-2 subdivision code without the country"),
    "city": _a("text", "city name"),
    "continent": _a("text", "two-letter continent code"),
    "time_zone": _a("text", "IANA time zone from geo", "time zone"),
    "device_type": _a("text", "device type", "device", choices=get_args(DeviceType)),
    "os": _a("text", "operating system family", "operating system"),
    "os_version": _a("text", "operating system version", "operating system version"),
    "browser": _a("text", "browser family"),
    "touch": _a("bool", "touch screen", "touch screen"),
    "channel": _a("text", "this request's channel", choices=get_args(Channel)),
    "source": _a("text", "this request's source (for ai_assistant: the assistant)"),
    "medium": _a("text", "utm_medium or the inferred one"),
    "campaign": _a("text", "utm_campaign"),
    "term": _a("text", "search term", "search term"),
    "referrer_host": _a("text", "host of the referrer", "referrer"),
    "path": _a("text", "the requested page", "page"),
    "hour": _a("number", "local hour", "local hour", bounds=(0, 23), cyclic=True),
    "minute": _a("number", "local minute", "local minute", bounds=(0, 59), cyclic=True),
    "daypart": _a("text", "part of the local day", "time of day", choices=get_args(Daypart)),
    "weekday": _a("number", "0 = Monday ... 6 = Sunday", bounds=(0, 6), cyclic=True),
    "weekend": _a("bool", "Saturday or Sunday, local time"),
    "language": _a("text", "primary language"),
    "languages": _a("set", "Accept-Language tags"),
    "gpc": _a("bool", "Global Privacy Control", "Global Privacy Control"),
    "dnt": _a("bool", "Do Not Track", "Do Not Track"),
    "known": _a("bool", "logged in", "logged in"),
    "anonymous": _a("bool", "not logged in"),
    "visits": _a("number", "sessions ever"),
    "sessions_count": _a("number", "sessions ever (same as visits)", "sessions"),
    "sessions_30d": _a("number", "sessions in the last 30 days", "sessions in 30 days"),
    "page_views": _a("number", "page views ever", "page views"),
    "session_page_views": _a("number", "page views this session", "page views this session"),
    "entry_channel": _a(
        "text", "channel of this session", "entry channel", choices=get_args(Channel)
    ),
    "entry_source": _a("text", "source of this session", "entry source"),
    "entry_campaign": _a("text", "campaign of this session", "entry campaign"),
    "landing_page": _a("text", "first page of this session", "landing page"),
    "first_seen": _a("timestamp", "first visit or event", "first visit"),
    "last_seen": _a("timestamp", "latest visit or event", "latest visit"),
    "days_since_first_seen": _a("number", "days since the first visit", "days since first visit"),
    "days_since_last_visit": _a("number", "days since the previous visit", "days since last visit"),
    "top_category": _a("text", "most viewed category", "top category"),
    "purchases": _a("number", "orders ever"),
    "revenue": _a("number", "order value ever"),
    "last_purchase_at": _a("timestamp", "latest order", "last purchase"),
    "days_since_last_purchase": _a("number", "days since the latest order", "days since purchase"),
    "purchased": _a("set", "product ids ordered", "purchased products"),
    "returns": _a("number", "returned orders ever"),
    "last_return_at": _a("timestamp", "latest return", "last return"),
    "open_tickets": _a("number", "open support tickets", "open support tickets"),
    "last_ticket_at": _a("timestamp", "latest support ticket update", "last support ticket"),
    "propensity": _a("number", "learned conversion probability, 0-1", "p(convert)"),
    "cluster": _a("any", "learned cluster: its name, or its number when unnamed"),
    "anomaly": _a("number", "learned anomaly score", "anomaly score"),
    "anomalous": _a("bool", "far from the norm by the anomaly model's own cutoff"),
    "unusual": _a(
        "number", "how unusual this visit is for this visitor, 0-1", "unusual for this visitor"
    ),
    "unusual_why": _a("text", "why this visit is unusual for this visitor", "unusual because"),
    "stated.interest": _a("set", "categories asked to see more of", "the interests you stated"),
    "stated.less": _a("set", "categories asked to see less of", "what you asked to see less of"),
    "stated.promotions": _a(
        "text", "offers wanted", "the offers you asked for", choices=PROMOTIONS
    ),
    "stated.language": _a("text", "language chosen", "the language you chose"),
    "stated.location": _a("bool", "location may be used", "your location allowed"),
    "stated.history": _a("bool", "history may choose offers", "your history allowed for offers"),
    "stated.not_me": _a("set", "segments said not to describe the visitor", "groups not you"),
    "now": _a("timestamp", "the evaluation time"),
}

# Open families: any name after the prefix is allowed (traits and categories are the site's own).
FAMILIES: Mapping[str, Attribute] = {
    "traits.": _a("any", "a trait given at identify"),
    "affinity.": _a("number", "page views in a category"),
    "purchased_at.": _a("timestamp", "latest order of a product"),
    "events.": _a("any", "a custom event: events.<name>.count or events.<name>.last"),
}
_EVENT_FIELDS: Mapping[str, Attribute] = {
    "count": _a("number", "how often a custom event happened"),
    "last": _a("timestamp", "when a custom event last happened"),
}


def lookup(name: str) -> Attribute | None:
    """The :class:`Attribute` for ``name``, including the open families; None when unknown.

    >>> lookup("hour").label, lookup("affinity.shoes").type, lookup("events.signup.last").type
    ('local hour', 'number', 'timestamp')
    >>> lookup("events.signup") is None, lookup("colour") is None
    (True, True)
    """
    found = ATTRIBUTES.get(name)
    if found is not None:
        return found
    for prefix, family in FAMILIES.items():
        if name.startswith(prefix) and len(name) > len(prefix):
            if prefix != "events.":
                return family
            event, _, field = name[len(prefix) :].rpartition(".")
            return _EVENT_FIELDS.get(field) if event else None
    return None


def unknown_attribute_message(name: str) -> str:
    """Why ``name`` is not an attribute, with the nearest known name when one is close.

    >>> unknown_attribute_message("contry")
    "unknown attribute 'contry' (did you mean 'country'?)"
    """
    close = difflib.get_close_matches(name, list(ATTRIBUTES), n=1, cutoff=0.7)
    head, dot, rest = name.partition(".")
    if not close and dot:  # "affinities.shoes" -> "affinity.shoes"
        families = [prefix.rstrip(".") for prefix in FAMILIES]
        close = [f"{f}.{rest}" for f in difflib.get_close_matches(head, families, n=1)]
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown attribute {name!r:.80}{hint}"


def label(name: str) -> str:
    """How explanations name an attribute.

    >>> label("hour"), label("affinity.shoes"), label("traits.plan"), label("events.signup.count")
    ('local hour', 'shoes page views', 'plan', 'signup events')
    """
    found = ATTRIBUTES.get(name)
    if found is not None:
        return found.label or name.replace("_", " ")
    prefix, _, rest = name.partition(".")
    if prefix == "affinity":
        return f"{rest} page views"
    if prefix == "purchased_at":
        return f"last purchase of {rest}"
    if prefix == "events":
        event, _, field = rest.rpartition(".")
        return f"{event} events" if field == "count" else f"last {event} event"
    return rest or name


def suggest(value: str, choices: tuple[str, ...]) -> str:
    """`` (did you mean 'x'?)`` when ``value`` is close to one of ``choices``, else ``""``."""
    close = difflib.get_close_matches(value, choices, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""
