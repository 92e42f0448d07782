"""The flat attribute vocabulary that segment rules read, built once per request.

:func:`build_attributes` turns the request context, the profile and (optionally) the learned
scores into one ``dict``. A value that is not known is simply a missing key, so a rule about it
does not match. Timestamps are seconds since the epoch; ``now`` is the evaluation time.

=========================  =========  ======================================================
attribute                  type       what
=========================  =========  ======================================================
country                    text       ISO 3166-1 alpha-2 country code, upper case ("GB")
region                     text       ISO 3166-2 subdivision without the country ("ENG")
city                       text       city name (from the CDN's headers or GeoIP)
continent                  text       two-letter continent code ("EU")
time_zone                  text       IANA time zone from geo ("Europe/London")
device_type                text       mobile, tablet, desktop, bot or other (client hints
                                      first, where Chromium sends them)
os                         text       operating system family ("iOS", "Mac OS X", "Windows")
os_version                 text       its version ("17.4", "11"; client hints give the real
                                      one where the User-Agent is frozen)
browser                    text       browser family ("Mobile Safari")
touch                      bool       the device has a touch screen
channel                    text       this request's channel (direct, organic_search, email,
                                      ai_assistant...; see the README)
source                     text       this request's source ("google", "newsletter"; for
                                      ai_assistant the assistant: "chatgpt", "claude")
medium                     text       utm_medium or the inferred one ("cpc", "organic")
campaign                   text       utm_campaign
term                       text       search term or utm_term
referrer_host              text       host of the Referer header
path                       text       the page being requested ("/shoes/red")
hour                       number     visitor's local hour, 0-23 (windows may wrap midnight)
minute                     number     visitor's local minute, 0-59
daypart                    text       night (0-5), morning (6-11), afternoon, evening (18-23)
weekday                    number     0 = Monday ... 6 = Sunday; rules may say "saturday"
weekend                    bool       Saturday or Sunday, local time
language                   text       primary language of Accept-Language ("en")
languages                  set        all Accept-Language tags, lower case ("en-gb", "en")
gpc                        bool       the browser sends Global Privacy Control
dnt                        bool       the browser sends Do Not Track
known                      bool       logged in (bound to a user id)
anonymous                  bool       not logged in
visits                     number     sessions ever, this one included
sessions_count             number     same as visits (the analytics name)
sessions_30d               number     sessions started in the last 30 days (of the 20 kept)
page_views                 number     page views ever, this one included
session_page_views         number     page views in the current session
entry_channel              text       channel that opened the current session
entry_source               text       source that opened the current session
entry_campaign             text       campaign that opened the current session
landing_page               text       first page of the current session
first_seen                 timestamp  first visit or event
last_seen                  timestamp  latest visit or event (this request included)
days_since_first_seen      number     days since first_seen (fractional)
days_since_last_visit      number     days between the previous session and now
top_category               text       the category with the most page views
affinity.<category>        number     page views in that category ("affinity.shoes")
traits.<name>              any        a trait given at identify ("traits.plan")
purchases                  number     orders ever
revenue                    number     order value ever
last_purchase_at           timestamp  latest order
days_since_last_purchase   number     days since the latest order (fractional)
purchased                  set        product ids ever ordered (of the newest 200)
purchased_at.<product>     timestamp  latest order of that product ("purchased_at.sku-1")
returns                    number     returned orders ever
last_return_at             timestamp  latest return
open_tickets               number     support tickets currently open
last_ticket_at             timestamp  latest support ticket update
events.<name>.count        number     how often a custom event happened
events.<name>.last         timestamp  when a custom event last happened
propensity                 number     learned probability that this session converts, 0-1
cluster                    any        the learned cluster: its name (``clusters:`` in a
                                      segments file) or, unnamed, its number
anomaly                    number     learned anomaly score; higher is further from the norm
anomalous                  bool       far from the norm by the anomaly model's own cutoff
unusual                    number     how unusual this visit is for this visitor: 0 (their
                                      usual device, channel, time, country, category) to 1
unusual_why                text       the reasons ("first visit from a mobile; usually
                                      desktop, in the morning")
stated.interest            set        categories the visitor asked to see more of
stated.less                set        categories the visitor asked to see less of (their
                                      ``affinity.<category>`` is 0, never the top_category)
stated.promotions          text       how often the visitor wants offers: never, sometimes, often
stated.language            text       the language the visitor chose (then also ``language``)
stated.location            bool       false: the visitor said not to use their location
stated.history             bool       false: no offers chosen by the visitor's browsing history
stated.not_me              set        segments the visitor said do not describe them
now                        timestamp  the evaluation time
=========================  =========  ======================================================

>>> from personalize.context.records import Geo, VisitorContext
>>> attrs = build_attributes(VisitorContext(geo=Geo(country="GB")), None, is_known=False,
...                          now=1_700_000_000.0)
>>> attrs["country"], attrs["anonymous"], "city" in attrs, "visits" in attrs
('GB', True, False, False)
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Mapping
from typing import Any

from personalize.context.records import VisitorContext
from personalize.profiles.norms import unusualness
from personalize.profiles.profile import Profile
from personalize.rules.stated import put_stated
from personalize.rules.vocabulary import (
    ATTRIBUTES,
    DAY,
    FAMILIES,
    WEEKDAYS,
    Attribute,
    AttributeType,
    label,
    lookup,
    suggest,
    unknown_attribute_message,
)

__all__ = [
    "ATTRIBUTES",
    "DAY",
    "FAMILIES",
    "WEEKDAYS",
    "Attribute",
    "AttributeType",
    "build_attributes",
    "label",
    "lookup",
    "suggest",
    "unknown_attribute_message",
]


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


_FACT_NUMBERS = (
    "purchases",
    "revenue",
    "returns",
    "open_tickets",
    "last_purchase_at",
    "last_return_at",
    "last_ticket_at",
)


def _most_views(item: tuple[str, float]) -> tuple[float, str]:
    return -item[1], item[0]


def _put(attrs: dict[str, Any], name: str, value: object) -> None:
    if value is not None:
        attrs[name] = value


def build_attributes(
    context: VisitorContext,
    profile: Profile | None,
    *,
    is_known: bool,
    now: float,
    learned: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The attributes rules read for one request; unknown values are missing keys.

    ``now`` is seconds since the epoch; ``learned`` holds the model outputs (``propensity``,
    ``cluster``, ``anomaly``, ``anomalous``) when the models ran.

    >>> from personalize.profiles.pageviews import Hit, apply_hit
    >>> p = Profile(key="v:1", facts={"purchased": {"sku-1": 1_000.0}, "open_tickets": 1})
    >>> apply_hit(p, Hit(ts=1_000.0, path="/shoes/x", category="shoes", channel="email"))
    >>> a = build_attributes(VisitorContext(), p, is_known=True, now=1_000.0 + 2 * DAY)
    >>> a["visits"], a["affinity.shoes"], a["entry_channel"], a["purchased"], a["open_tickets"]
    (1, 1.0, 'email', frozenset({'sku-1'}), 1)
    >>> a["days_since_first_seen"], a["known"], "propensity" in a
    (2.0, True, False)
    """
    attrs: dict[str, Any] = {"now": now, "known": is_known, "anonymous": not is_known}
    attrs.update(_context_attributes(context))
    if profile is not None:
        _profile_attributes(attrs, profile, now)
    if learned:
        for name in ("propensity", "cluster", "anomaly", "anomalous"):
            _put(attrs, name, learned.get(name))
    if profile is not None and profile.stated:
        put_stated(attrs, profile.stated)  # last: what the visitor said beats what was inferred
    return attrs


# The attributes of recent contexts, by the context object: the context builder hands the
# same object to requests alike (same headers, same minute), so most requests copy these.
_CONTEXT_MEMO: dict[int, tuple[VisitorContext, dict[str, Any]]] = {}
_CONTEXT_MEMO_SIZE = 4096


def _context_attributes(context: VisitorContext) -> dict[str, Any]:
    """The attributes that come from the request's context alone (read-only: copy them)."""
    entry = _CONTEXT_MEMO.get(id(context))
    if entry is not None and entry[0] is context:  # (the entry keeps its id from reuse)
        return entry[1]
    attrs: dict[str, Any] = {}
    geo = context.geo
    if geo is not None:
        _put(attrs, "country", geo.country)
        _put(attrs, "region", geo.region)
        _put(attrs, "city", geo.city)
        _put(attrs, "continent", geo.continent)
        _put(attrs, "time_zone", geo.time_zone)
    device, source, clock, signals = context.device, context.source, context.clock, context.signals
    attrs["device_type"] = device.type
    _put(attrs, "os", device.os)
    _put(attrs, "os_version", device.os_version)
    _put(attrs, "browser", device.browser)
    attrs["touch"] = device.is_touch
    attrs["channel"] = source.channel
    _put(attrs, "source", source.source)
    _put(attrs, "medium", source.medium)
    _put(attrs, "campaign", source.campaign)
    _put(attrs, "term", source.term)
    _put(attrs, "referrer_host", source.referrer_host)
    attrs["path"] = context.path
    attrs["hour"] = clock.hour
    attrs["minute"] = clock.minute
    attrs["daypart"] = clock.daypart
    attrs["weekday"] = clock.weekday
    attrs["weekend"] = clock.weekend
    _put(attrs, "language", signals.language)
    attrs["languages"] = frozenset(signals.languages)
    attrs["gpc"] = signals.gpc
    attrs["dnt"] = signals.dnt
    if len(_CONTEXT_MEMO) >= _CONTEXT_MEMO_SIZE:
        with contextlib.suppress(StopIteration, RuntimeError, KeyError):  # (another thread)
            del _CONTEXT_MEMO[next(iter(_CONTEXT_MEMO))]  # the oldest: first in, first out
    _CONTEXT_MEMO[id(context)] = (context, attrs)
    return attrs


def _profile_attributes(attrs: dict[str, Any], profile: Profile, now: float) -> None:
    attrs["visits"] = profile.visits
    attrs["sessions_count"] = profile.visits
    attrs["sessions_30d"] = sum(1 for s in profile.sessions if now - s.started <= 30 * DAY)
    attrs["page_views"] = profile.page_views
    session = profile.current_session
    if session is not None:
        attrs["session_page_views"] = session.page_views
        attrs["entry_channel"] = session.channel
        _put(attrs, "entry_source", session.source)
        _put(attrs, "entry_campaign", session.campaign)
        attrs["landing_page"] = session.landing_page
    if len(profile.sessions) > 1:
        attrs["days_since_last_visit"] = (now - profile.sessions[-2].last_seen) / DAY
    unusual = unusualness(profile)
    if unusual is not None:
        attrs["unusual"] = unusual[0]
        if unusual[1]:
            attrs["unusual_why"] = unusual[1][0]
    if profile.first_seen is not None:
        attrs["first_seen"] = profile.first_seen
        attrs["days_since_first_seen"] = (now - profile.first_seen) / DAY
    _put(attrs, "last_seen", profile.last_seen)
    for trait, value in profile.traits.items():
        _put(attrs, f"traits.{trait}", value)
    for category, views in profile.affinities.items():
        attrs[f"affinity.{category}"] = views
    if profile.affinities:  # (as top_affinities(1): the most views, then the first name)
        attrs["top_category"] = min(profile.affinities.items(), key=_most_views)[0]
    facts = profile.facts
    if not facts:
        return
    for name in _FACT_NUMBERS:
        value = facts.get(name)
        if _number(value) is not None:
            attrs[name] = value
    if "last_purchase_at" in attrs:
        attrs["days_since_last_purchase"] = (now - attrs["last_purchase_at"]) / DAY
    purchased = facts.get("purchased")
    if isinstance(purchased, Mapping):
        attrs["purchased"] = frozenset(str(p) for p in purchased)
        for product, ts in purchased.items():
            _put(attrs, f"purchased_at.{product}", _number(ts))
    custom = facts.get("custom")
    if isinstance(custom, Mapping):
        for event, entry in custom.items():
            if isinstance(entry, Mapping):
                _put(attrs, f"events.{event}.count", _number(entry.get("count")))
                _put(attrs, f"events.{event}.last", _number(entry.get("last")))
