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

Beyond GA4 (our own lists, in ``personalize/data/sources-own.yaml``):

- Webmail is Email: mail.google.com, outlook.live.com, GMX's deref-gmx.net... with the
  provider as source ("gmail", "outlook") and medium "email"; so is any host whose first label
  is mail, webmail or email, maybe numbered (webmail1m.orange.fr; source: the host). Outlook's
  Safe Links (``*.safelinks.protection.outlook.com``) count as email from "outlook": Microsoft
  rewrites the links of mail delivered to its mailboxes, whichever program shows them. Links
  Gmail sends through google.com/url arrive as Google search: that cannot be told apart.
- Chat assistants (chatgpt.com, claude.ai, gemini.google.com, copilot, perplexity.ai...) are
  ``ai_assistant``, a channel GA4 lacks, with the assistant as source and medium "ai"; so is
  any visit tagged utm_medium=ai or with an assistant as utm_source (chatgpt.com tags its links
  ``utm_source=chatgpt.com``: the source is then "chatgpt"). Ranked after the paid rules.
- Ad frames (googleads.g.doubleclick.net, tpc.googlesyndication.com, adservice.google.*,
  other ad servers) are Display, source the ad network, medium "display"; a Google click id
  with an ad frame as referrer is Google's Display Network, not Paid Search.
- Search front-ends count from a bare origin. Browsers send only the origin cross-site
  (Referrer-Policy strict-origin-when-cross-origin), so https://search.brave.com/ is the common
  case. A host that serves nothing but a search engine (listed: duckduckgo.com, kagi.com,
  www.ecosia.org...; or a Matomo engine host with "search" in a name of its own:
  search.brave.com, images.search.yahoo.com, aolsearch.aol.co.uk) is organic search whatever
  its path. A host that also serves other pages (brave.com, www.aol.com, www.cnn.com) still needs
  the evidence Matomo's rule asks for.
- Our lists win over GA4's where they disagree (GA4 calls mail.yandex.ru search and Amazon's
  ad servers shopping). Host patterns may be "host/path" (x.com/i/grok is Grok, x.com is
  Twitter's) and Android app ids (android-app://com.google.android.gm/ is Gmail).

Untagged visits take source and medium from the referrer as Universal Analytics did: a search
engine gives medium "organic", webmail "email", an assistant "ai", an ad frame "display",
anything else "referral" with the referring host as source (known networks use their name:
"google", "facebook"). A referrer's category comes from our lists, then GA4's list (exact
hosts; beyond GA4, also on other TLDs: amazon.de like amazon.com), then Matomo's socials and AI
assistants (the host or a parent domain), then the webmail rule, then search front-ends, then
Matomo's search engines, matched Matomo's lossy way ("www.google.co.uk" is "google.{}") and, as
in Matomo, only when the referrer carries the search term or a path the engine lists as hiding
it ("/" for Google; so a link from www.cnn.com, whose site search Google powers, is a
referral). A network GA4 names takes GA4's category (Matomo's YouTube social is VIDEO).

Tags always win over the referrer, an internal one included. A visit tagged with neither
utm_source nor utm_medium (only utm_campaign, say) keeps the referrer as its source.

Click ids count as tags and imply a network: gclid / gbraid / wbraid are google cpc, msclkid
bing cpc, yclid yandex cpc, ttclid / twclid / li_fat_id / epik / ScCid / rdt_cid the social
network's cpc, dclid doubleclick cpm (Display). fbclid and igshid are added to organic links
too, so alone they mean facebook / instagram with medium "referral" (Organic Social); a paid
utm_medium makes them Paid Social. utm values win over the click id's implied ones.

The lists are embedded in ``personalize/data/sources.json``, built by scripts/build_sources.py.

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
import json
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import SplitResult, unquote_plus, urlsplit

from personalize.context.records import Channel, Source

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
_HOST = re.compile(r"[\w-]+(?:\.[\w-]+)*|[0-9a-f:.]+", re.IGNORECASE)
_BARE_HOST = re.compile(r"[\w-]+(?:\.[\w-]+)*\.[a-z]{2,}(?:[:/?#]|$)", re.IGNORECASE)
_LOSSY_FIRST = re.compile(r"w+\d*|search")
_COMBINED_TLD = frozenset({"com", "org", "net", "co", "it", "edu"})

_FORMAT = 2  # of sources.json, as scripts/build_sources.py writes it
# A name of a search front-end's own ("search", "isearch", "aolsearch", "search-results").
_SEARCH_LABEL = re.compile(r"[a-z0-9]*search[a-z0-9-]*")
# First labels of a mailbox's own host: mail., webmail., email., webmail1m., mail2...
_WEBMAIL_LABEL = re.compile(r"(?:web|e)?mail\d*[a-z]?")
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


class _Entry(NamedTuple):
    category: str  # search, social, video, shopping, ai, email or display
    name: str
    params: tuple[str, ...] = ()  # query parameters holding a search engine's term
    hidden: tuple[re.Pattern[str], ...] = ()  # referrer paths where the engine hides the term


class _Tables:
    """The embedded lists, indexed for lookups by host and by source name."""

    def __init__(self, raw: dict[str, Any]) -> None:
        if raw.get("version") != _FORMAT:
            raise ValueError(f"sources.json is format {raw.get('version')!r}, not {_FORMAT}")
        self.countries = frozenset(raw["country_codes"].split())
        self.own = {host: _Entry(cat, name) for host, (cat, name) in raw["own"].items()}
        self.own_paths = {
            host: tuple((prefix, _Entry(cat, name)) for prefix, cat, name in paths)
            for host, paths in raw["own_paths"].items()
        }
        self.frontends = {
            host: _Entry("search", name, tuple(p.lower() for p in params))
            for host, (name, params) in raw["frontends"].items()
        }
        self.names: dict[str, str] = raw["names"]
        self.exact = {host: _Entry(cat, name) for host, (cat, name) in raw["exact"].items()}
        self.walk = {host: _Entry(cat, name) for host, (cat, name) in raw["walk"].items()}
        self.any_tld: dict[str, _Entry] = {}  # "amazon.{}" from GA4's amazon.com
        for host, entry in self.exact.items():
            if key := self.any_tld_key(host):
                self.any_tld.setdefault(key, entry)
        self.engines: dict[str, _Entry] = {}
        for cat, name, hosts, params, hidden in raw["search"]:
            params = tuple(dict.fromkeys(p.lower() for p in params))
            entry = _Entry(cat, name, params, tuple(re.compile(h) for h in hidden))
            for pattern in hosts:
                key = self.lossy(pattern)
                known = self.engines.setdefault(key, entry)
                if known.name == name and known is not entry:  # www. and www2. blocks, say
                    merged = tuple(dict.fromkeys(known.params + entry.params))
                    self.engines[key] = known._replace(
                        params=merged, hidden=tuple(dict.fromkeys(known.hidden + entry.hidden))
                    )

    def lossy(self, host: str) -> str:
        """Matomo's lossy host: no www/search/m, "{}" for country codes ("de.bing.com")."""
        labels = host.split(".")
        if len(labels) > 2 and _LOSSY_FIRST.fullmatch(labels[0]):
            del labels[0]
        labels = [x for i, x in enumerate(labels) if x != "m" or i >= len(labels) - 2]
        if len(labels) > 1 and labels[-1] in self.countries:
            labels[-1] = "{}"
            if len(labels) > 2 and labels[-2] in _COMBINED_TLD:
                del labels[-2]
        # Unlike Matomo, the registrable label stays ("so.com" must not become "{}.com").
        last = len(labels) - 2
        return ".".join(
            "{}" if i < last and x in self.countries else x for i, x in enumerate(labels)
        )

    def any_tld_key(self, host: str) -> str | None:
        """ "amazon.{}" for amazon.com / amazon.co.uk; None unless one label of 4+ is left."""
        labels = host.removeprefix("www.").split(".")
        if len(labels) > 2 and labels[-1] in self.countries and labels[-2] in _COMBINED_TLD:
            del labels[-1]
        if len(labels) != 2 or len(labels[0]) < 4:
            return None
        return labels[0] + ".{}"

    def own_site(self, host: str, path: str) -> _Entry | None:
        """The webmail, AI assistant or ad frame of sources-own.yaml a host (and path) is."""
        for prefix, entry in self.own_paths.get(host, ()):
            if path == prefix or path.startswith((prefix + "/", prefix + "?")):
                return entry
        labels = host.split(".")
        for i in range(len(labels) - 1):
            if found := self.own.get(".".join(labels[i:])):
                return found
        if len(labels) > 2 and labels[-1] in self.countries:  # "{}" for a country-code TLD
            del labels[-1]
            if len(labels) > 2 and labels[-1] in _COMBINED_TLD:
                del labels[-1]
            for i in range(len(labels) - 1):
                if found := self.own.get(".".join(labels[i:]) + ".{}"):
                    return found
        return None

    def known(self, host: str, path: str = "") -> _Entry | None:
        """What the lists say a host is: own lists first, then GA4 and Matomo, then webmail."""
        found = self.own_site(host, path) or self.site(host)
        labels = host.split(".")
        if found is None and len(labels) > 2 and _WEBMAIL_LABEL.fullmatch(labels[0]):
            return _Entry("email", host)  # webmail.example.com: a mailbox's own links
        return found

    def frontend(self, host: str, engine: _Entry | None) -> _Entry | None:
        """The search engine of a host that serves nothing but search (any path counts).

        That is a search front-end of sources-own.yaml, or a host of a Matomo engine with
        "search" in a name of its own: search.brave.com, images.search.yahoo.com,
        aolsearch.aol.co.uk, uk.search-results.com; not brave.com.
        """
        found = self.frontends.get(host)
        labels = host.split(".")[:-1]
        if found is None and engine and any(_SEARCH_LABEL.fullmatch(x) for x in labels):
            found = engine
        return found

    def site(self, host: str) -> _Entry | None:
        """The GA4-listed site, Matomo social or AI assistant a host belongs to."""
        found = self.exact.get(host) or self.exact.get(host.removeprefix("www."))
        labels = host.split(".")
        for i in range(len(labels) - 1):
            found = found or self.walk.get(".".join(labels[i:]))
        key = self.any_tld_key(host)
        return found or (self.any_tld.get(key) if key else None)

    def engine(self, host: str) -> _Entry | None:
        """The Matomo search engine of a host ("google.{}" matches any TLD)."""
        lossy = self.lossy(host)
        found = self.engines.get(lossy)
        if found is None and not lossy.endswith("{}"):
            found = self.engines.get(lossy.rsplit(".", 1)[0] + ".{}")
        if found is None and lossy.startswith("{}.") and lossy.count(".") > 2:
            found = self.engine(lossy[3:])  # it.images.search.yahoo.com: a country's edition
        return found

    def category(self, source: str) -> str:
        """GA4's category of a source name or host ("google", "l.facebook.com"), or ""."""
        if source in self.names:
            return self.names[source]
        if "." not in source or not _HOST.fullmatch(source):
            return ""
        entry = self.known(source) or self.frontends.get(source) or self.engine(source)
        return entry.category if entry else ""


@functools.cache
def _tables() -> _Tables:
    # A plain path: importlib.resources fails on setuptools' editable installs (Python 3.11).
    text = (Path(__file__).parent.parent / "data" / "sources.json").read_text("utf-8")
    return _Tables(json.loads(text))


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
    if not host or len(host) > 253 or not _HOST.fullmatch(host):
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
        self._tables = _tables()
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

    def _referrer_site(self, referrer: tuple[str, SplitResult]) -> tuple[_Entry | None, str | None]:
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
