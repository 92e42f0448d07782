"""Traffic source: the GA4 default channel of a request, from utm tags, click ids and Referer.

Rules followed: GA4's newer (2023+) default channel group for manual traffic, evaluated top-down,
first match wins, in the order of Velir/dbt-ga4 (version B of GA4-DEFAULT-CHANNEL-RULES-NOTES.md
in ../shared/data/ga4-channel-group). Where the published versions disagree:

- PAID is ``^(.*cp.*|ppc|retargeting|paid.*)$`` (with "retargeting", as Velir).
- Referral is medium in {referral, app, link} and is tested before Email (Velir).
- Paid Other (any PAID medium after Display) is kept: ``paid_other`` exists in our channels.
- Email is an exact source or medium of email / e-mail / e_mail / e mail (the stated rule, not
  Velir's "contains"); SMS is source or medium "sms" (Velir); Affiliates also accepts
  "affiliates" (version A).
- Channels GA4 has and we do not: Cross-network and Audio -> ``paid_other``; Mobile Push
  Notifications and Unassigned -> ``referral`` when a source or medium is known, else ``direct``.
- Video has no campaign regex in either version; only Shopping does.

Beyond GA4, our own lists (:mod:`~personalize.context.source_lists`): webmail is Email, chat
assistants are ``ai_assistant`` (a channel GA4 lacks, ranked after the paid rules, with the
assistant as source and medium "ai"; so is any visit tagged utm_medium=ai or with an
assistant as utm_source: chatgpt.com's ``utm_source=chatgpt.com`` gives source "chatgpt"),
ad frames are Display (a Google click id with an ad frame as referrer is Google's Display
Network, not Paid Search), and search front-ends count from a bare origin.

Untagged visits take source and medium from the referrer as Universal Analytics did: a search
engine gives medium "organic", webmail "email", an assistant "ai", an ad frame "display",
anything else "referral" with the referring host as source (known networks use their name:
"google", "facebook"). A search engine that is not a front-end counts, as in Matomo, only
when the referrer carries the search term or a path the engine lists as hiding it ("/" for
Google; so a link from www.cnn.com, whose site search Google powers, is a referral).

Tags always win over the referrer, an internal one included. A visit tagged with neither
utm_source nor utm_medium (only utm_campaign, say) keeps the referrer as its source.

Click ids count as tags and imply a network: gclid / gbraid / wbraid are google cpc, msclkid
bing cpc, yclid yandex cpc, ttclid / twclid / li_fat_id / epik / ScCid / rdt_cid the social
network's cpc, dclid doubleclick cpm (Display). fbclid and igshid are added to organic links
too, so alone they mean facebook / instagram with medium "referral" (Organic Social); a paid
utm_medium makes them Paid Social. utm values win over the click id's implied ones.

>>> c = SourceClassifier()
>>> s = c.classify(host="a.test", referer="https://search.brave.com/", query_string="")
>>> s.channel, s.source
('organic_search', 'brave')
>>> s = c.classify(host="a.test", referer="https://outlook.live.com/", query_string="")
>>> s.channel, s.source, s.medium
('email', 'outlook', 'email')
>>> c.classify(host="a.test", referer=None, query_string="utm_source=chatgpt.com").source
'chatgpt'
"""

from __future__ import annotations

import contextlib
import functools
import re
from collections.abc import Callable, Iterable
from typing import NamedTuple
from urllib.parse import SplitResult, unquote_plus, urlsplit

from personalize.context.records import Channel, Source
from personalize.context.source_lists import HOST, ListEntry, source_lists

__all__ = ["SourceClassifier"]

MAX_LENGTH = 200  # characters kept of any stored string
_MAX_INPUT = 4096  # characters of Referer / query string looked at; the rest is ignored
_MAX_FIELDS = 64  # query parameters looked at
_UTM = ("source", "medium", "campaign", "term", "content", "id", "source_platform")
# Parameter -> (source, medium) it implies; the first one present wins.
_CLICK_IDS: dict[str, tuple[str, str]] = {
    "gclid": ("google", "cpc"),
    "gbraid": ("google", "cpc"),
    "wbraid": ("google", "cpc"),
    "dclid": ("doubleclick", "cpm"),
    "msclkid": ("bing", "cpc"),
    "yclid": ("yandex", "cpc"),
    "ttclid": ("tiktok", "cpc"),
    "twclid": ("twitter", "cpc"),
    "li_fat_id": ("linkedin", "cpc"),
    "epik": ("pinterest", "cpc"),
    "sccid": ("snapchat", "cpc"),
    "rdt_cid": ("reddit", "cpc"),
    "fbclid": ("facebook", "referral"),
    "igshid": ("instagram", "referral"),
    "mc_cid": ("mailchimp", "email"),
}
_BARE_HOST = re.compile(r"[\w-]+(?:\.[\w-]+)*\.[a-z]{2,}(?:[:/?#]|$)", re.IGNORECASE)
# The medium of an untagged visit, by the category of its referrer.
_REFERRER_MEDIUM = {"search": "organic", "email": "email", "ai": "ai", "display": "display"}
_GOOGLE_CLICK_IDS = frozenset({"gclid", "gbraid", "wbraid"})

_PAID = re.compile(r"^(.*cp.*|ppc|retargeting|paid.*)$")
_SHOP_CAMPAIGN = re.compile(r"^(.*(([^a-df-z]|^)shop|shopping).*)$")
_DISPLAY = frozenset({"display", "banner", "expandable", "interstitial", "cpm"})
_SOCIAL = frozenset(
    {"social", "social-network", "social-media", "sm", "social network", "social media"}
)
_REFERRAL = frozenset({"referral", "app", "link"})
_EMAIL = frozenset({"email", "e-mail", "e_mail", "e mail"})


class _Facts(NamedTuple):
    """What the channel rules look at: lower-case, "" when absent."""

    category: str
    source: str
    medium: str
    campaign: str


def _paid(f: _Facts) -> bool:
    return _PAID.match(f.medium) is not None


def _shop(f: _Facts) -> bool:
    return f.category == "shopping" or _SHOP_CAMPAIGN.match(f.campaign) is not None


def _push(f: _Facts) -> bool:
    m = f.medium
    return m.endswith("push") or "mobile" in m or "notification" in m or f.source == "firebase"


_RULES: tuple[tuple[Channel, Callable[[_Facts], bool]], ...] = (
    ("direct", lambda f: f.source == "(direct)" and f.medium in {"", "(none)", "(not set)"}),
    ("paid_other", lambda f: "cross-network" in f.campaign),
    ("paid_shopping", lambda f: _shop(f) and _paid(f)),
    ("paid_search", lambda f: f.category == "search" and _paid(f)),
    ("paid_social", lambda f: f.category == "social" and _paid(f)),
    ("paid_video", lambda f: f.category == "video" and _paid(f)),
    ("display", lambda f: f.medium in _DISPLAY or f.category == "display"),
    ("paid_other", _paid),
    ("ai_assistant", lambda f: f.category == "ai" or f.medium == "ai"),
    ("organic_shopping", _shop),
    ("organic_social", lambda f: f.category == "social" or f.medium in _SOCIAL),
    ("organic_video", lambda f: f.category == "video" or "video" in f.medium),
    ("organic_search", lambda f: f.category == "search" or f.medium == "organic"),
    ("referral", lambda f: f.medium in _REFERRAL),
    ("email", lambda f: f.source in _EMAIL or f.medium in _EMAIL or f.category == "email"),
    ("affiliate", lambda f: f.medium in {"affiliate", "affiliates"}),
    ("paid_other", lambda f: f.medium == "audio"),
    ("sms", lambda f: f.source == "sms" or f.medium == "sms"),
    ("referral", _push),
)


def _channel(facts: _Facts) -> Channel:
    for channel, rule in _RULES:
        if rule(facts):
            return channel
    return "referral" if facts.source or facts.medium else "direct"  # GA4's Unassigned


def _clean(value: str | None) -> str | None:
    """One line, at most MAX_LENGTH characters, None when empty."""
    if value is None:
        return None
    text = " ".join(value.split())[:MAX_LENGTH]
    return text or None


def _query(text: str) -> dict[str, str]:
    """Query parameters by lower-case name, first value wins; never raises."""
    params: dict[str, str] = {}
    for field in text.split("&")[:_MAX_FIELDS]:
        name, _, value = field.partition("=")
        key = unquote_plus(name, errors="replace").strip().lower()
        if key and key not in params:
            params[key] = unquote_plus(value, errors="replace")
    return params


def _split_referer(referer: str) -> tuple[str, SplitResult] | None:
    """The lower-case host and the parts of a Referer; None when no host can be parsed."""
    text = referer.strip()
    if "://" not in text:
        if not _BARE_HOST.match(text):
            return None
        text = "//" + text  # "www.example.com/page" with the scheme left off
    try:
        parts = urlsplit(text)
        host = (parts.hostname or "").rstrip(".")
    except ValueError:
        return None
    if not host or len(host) > 253 or not HOST.fullmatch(host):
        return None
    return host.lower(), parts


def _host_key(host: str) -> str:
    """A host compared for "internal": lower case, no port, no trailing dot, no "www."."""
    host = host.strip().lower()
    with contextlib.suppress(ValueError):  # "[::1" and such: compare the raw text
        host = urlsplit("//" + host).hostname or host
    return host.rstrip(".").removeprefix("www.")


class SourceClassifier:
    """Classifies a request's traffic source into a GA4 default channel.

    ``internal_hosts`` are hosts whose links are not a new source: "shop.example.com" matches
    that host, ".example.com" matches example.com and its subdomains. The request's own host
    (with or without "www.", any port) is always internal. Results are memoized in an LRU of
    ``cache_size`` entries.

    >>> classifier = SourceClassifier(internal_hosts=[".example.com"])
    >>> s = classifier.classify(host="a.test", referer="https://www.google.co.uk/", query_string="")
    >>> s.channel, s.source, s.medium, s.referrer_host
    ('organic_search', 'google', 'organic', 'www.google.co.uk')
    >>> classifier.classify(host="a.test", referer=None, query_string="gclid=Cj0x").channel
    'paid_search'
    """

    def __init__(self, *, internal_hosts: Iterable[str] = (), cache_size: int = 4096) -> None:
        keys = [h.strip().lower() for h in internal_hosts if h.strip()]
        self._internal = frozenset(_host_key(h) for h in keys if not h.startswith("."))
        self._internal_domains = tuple(_host_key(h[1:]) for h in keys if h.startswith("."))
        self._tables = source_lists()
        self._cached = functools.lru_cache(maxsize=cache_size)(self._classify)

    def classify(self, *, host: str | None, referer: str | None, query_string: str) -> Source:
        """The source of one request; never raises (garbage in gives direct or referral)."""
        try:
            # Truncating before the cache keeps absurd headers from filling memory.
            return self._cached(
                host[:_MAX_INPUT] if host else None,
                (referer or "")[:_MAX_INPUT],
                (query_string or "")[:_MAX_INPUT],
            )
        except Exception:  # a bug here must not fail the request: fall back to direct
            return Source()

    def _is_internal(self, referrer_host: str, host: str | None) -> bool:
        key = _host_key(referrer_host)
        if (host and key == _host_key(host)) or key in self._internal:
            return True
        return any(key == d or key.endswith("." + d) for d in self._internal_domains)

    def _referrer_site(
        self, referrer: tuple[str, SplitResult]
    ) -> tuple[ListEntry | None, str | None]:
        """The known site of a referrer and the search term it carries."""
        host, parts = referrer
        tables = self._tables
        site, engine = tables.known(host, parts.path), tables.engine(host)
        frontend = None if site else tables.frontend(host, engine)
        searched = frontend or engine
        if searched is None:
            return site, None
        found = _query(parts.query)
        term = next((t for p in searched.params if (t := _clean(found.get(p)))), None)
        if site is None and frontend is None and term is None:
            # Matomo's rule: without the term, only the paths the engine lists count as search.
            path = parts.path + (f"?{parts.query}" if parts.query else "")
            path += f"#{parts.fragment}" if parts.fragment else ""
            return (engine if any(h.search(path) for h in searched.hidden) else None), None
        return site or searched, term

    def _classify(self, host: str | None, referer: str, query_string: str) -> Source:
        params = _query(query_string)
        utm = {name: _clean(params.get("utm_" + name)) for name in _UTM}
        click_id = next((c for c in _CLICK_IDS if params.get(c, "").strip()), None)
        referrer = _split_referer(referer)
        referrer_host = referrer[0][:MAX_LENGTH] if referrer else None
        internal = referrer is not None and self._is_internal(referrer[0], host)
        entry, term = self._referrer_site(referrer) if referrer and not internal else (None, None)

        source, medium = utm["source"], utm["medium"]
        if click_id:
            implied_source, implied_medium = _CLICK_IDS[click_id]
            if click_id in _GOOGLE_CLICK_IDS and entry and entry.category == "display":
                implied_medium = "display"  # a click inside a Google ad frame: Display Network
            source = source or implied_source
            medium = medium or implied_medium
        tagged = click_id is not None or any(utm.values())
        category = None
        if not (source or medium) and referrer_host and not internal:
            # Untagged (or only campaign-tagged): the referrer is the source.
            category = entry.category if entry else ""
            source = entry.name if entry else referrer_host.removeprefix("www.")
            medium = _REFERRER_MEDIUM.get(category, "referral")
        elif not tagged:
            channel: Channel = "internal" if internal else "direct"
            return Source(channel=channel, referrer_host=referrer_host)
        source = source.lower() if source else None
        medium = medium.lower() if medium else None
        if category is None:
            category = self._tables.category(source) if source else ""
            if category == "ai" and source and "." in source:
                # ChatGPT tags its links utm_source=chatgpt.com: name the assistant.
                known = self._tables.known(source)
                source = known.name if known else source
        campaign = utm["campaign"]
        facts = _Facts(category, source or "", medium or "", (campaign or "").lower())
        return Source(
            channel=_channel(facts),
            source=source,
            medium=medium,
            campaign=campaign,
            term=term or utm["term"],
            content=utm["content"],
            referrer_host=referrer_host,
            click_id=click_id,
        )
