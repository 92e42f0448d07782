"""The referrer lists a source is classified by: GA4's categories, Matomo's, and our own.

Beyond GA4 (our own lists, in ``scripts/data/sources-own.yaml``):

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

A referrer's category comes from our lists, then GA4's list (exact hosts; beyond GA4, also on
other TLDs: amazon.de like amazon.com), then Matomo's socials and AI assistants (the host or a
parent domain), then the webmail rule, then search front-ends, then Matomo's search engines,
matched Matomo's lossy way ("www.google.co.uk" is "google.{}"); the classifier
(:mod:`~personalize.context.source`) asks for the search term or a path the engine lists as
hiding it before it believes an engine that is not a front-end. A network GA4 names takes
GA4's category (Matomo's YouTube social is VIDEO).

The lists are embedded in ``personalize/data/sources.json``, built by scripts/build_sources.py.

>>> lists = source_lists()
>>> lists.known("mail.google.com"), lists.known("chatgpt.com").category
(ListEntry(category='email', name='gmail', params=(), hidden=()), 'ai')
>>> lists.frontend("search.brave.com", lists.engine("search.brave.com")).name
'brave'
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path
from typing import Any, NamedTuple

__all__ = ["HOST", "ListEntry", "SourceLists", "source_lists"]

HOST = re.compile(r"[\w-]+(?:\.[\w-]+)*|[0-9a-f:.]+", re.IGNORECASE)  # a host name or address
_LOSSY_FIRST = re.compile(r"w+\d*|search")
_COMBINED_TLD = frozenset({"com", "org", "net", "co", "it", "edu"})
_FORMAT = 2  # of sources.json, as scripts/build_sources.py writes it
# A name of a search front-end's own, in the languages Matomo's engines speak: "search",
# "isearch", "aolsearch", "search-results", "suche", "recherche", "ricerca", "buscador",
# "szukaj"...; image, scholarly and custom search ("images", "scholar", "cse"); "so" and
# "sou" (Chinese: search).
_SEARCH_LABEL = re.compile(
    r"[a-z0-9]*(?:search|suche|recherche|ricerca|busca|busqueda|szukaj|hledani|pesquisa|arama"
    r"|otsing|poisk)[a-z0-9-]*|images?|scholar|cse|so|sou"
)
# First labels of a mailbox's own host: mail., webmail., email., webmail1m., mail2...
_WEBMAIL_LABEL = re.compile(r"(?:web|e)?mail\d*[a-z]?")


class ListEntry(NamedTuple):
    category: str  # search, social, video, shopping, ai, email or display
    name: str
    params: tuple[str, ...] = ()  # query parameters holding a search engine's term
    hidden: tuple[re.Pattern[str], ...] = ()  # referrer paths where the engine hides the term


class SourceLists:
    """The embedded lists, indexed for lookups by host and by source name."""

    def __init__(self, raw: dict[str, Any]) -> None:
        if raw.get("version") != _FORMAT:
            raise ValueError(f"sources.json is format {raw.get('version')!r}, not {_FORMAT}")
        self.countries = frozenset(raw["country_codes"].split())
        self.own = {host: ListEntry(cat, name) for host, (cat, name) in raw["own"].items()}
        self.own_paths = {
            host: tuple((prefix, ListEntry(cat, name)) for prefix, cat, name in paths)
            for host, paths in raw["own_paths"].items()
        }
        self.frontends = {
            host: ListEntry("search", name, tuple(p.lower() for p in params))
            for host, (name, params) in raw["frontends"].items()
        }
        self.names: dict[str, str] = raw["names"]
        self.exact = {host: ListEntry(cat, name) for host, (cat, name) in raw["exact"].items()}
        self.walk = {host: ListEntry(cat, name) for host, (cat, name) in raw["walk"].items()}
        self.any_tld: dict[str, ListEntry] = {}  # "amazon.{}" from GA4's amazon.com
        for host, entry in self.exact.items():
            if key := self.any_tld_key(host):
                self.any_tld.setdefault(key, entry)
        self.engines: dict[str, ListEntry] = {}
        for cat, name, hosts, params, hidden in raw["search"]:
            params = tuple(dict.fromkeys(p.lower() for p in params))
            entry = ListEntry(cat, name, params, tuple(re.compile(h) for h in hidden))
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

    def own_site(self, host: str, path: str) -> ListEntry | None:
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

    def known(self, host: str, path: str = "") -> ListEntry | None:
        """What the lists say a host is: own lists first, then GA4 and Matomo, then webmail."""
        found = self.own_site(host, path) or self.site(host)
        labels = host.split(".")
        if found is None and len(labels) > 2 and _WEBMAIL_LABEL.fullmatch(labels[0]):
            return ListEntry("email", host)  # webmail.example.com: a mailbox's own links
        return found

    def frontend(self, host: str, engine: ListEntry | None) -> ListEntry | None:
        """The search engine of a host that serves nothing but search (any path counts).

        That is a search front-end of sources-own.yaml, or a host of a Matomo engine with
        "search" (in one of several languages) in a name of its own: search.brave.com,
        images.search.yahoo.com, aolsearch.aol.co.uk, recherche.aol.fr, de.images.yahoo.com,
        so.360.cn; not brave.com or www.aol.com.
        """
        found = self.frontends.get(host)
        labels = host.split(".")[:-1]
        if found is None and engine and any(_SEARCH_LABEL.fullmatch(x) for x in labels):
            found = engine
        return found

    def site(self, host: str) -> ListEntry | None:
        """The GA4-listed site, Matomo social or AI assistant a host belongs to."""
        found = self.exact.get(host) or self.exact.get(host.removeprefix("www."))
        labels = host.split(".")
        for i in range(len(labels) - 1):
            found = found or self.walk.get(".".join(labels[i:]))
        key = self.any_tld_key(host)
        return found or (self.any_tld.get(key) if key else None)

    def engine(self, host: str) -> ListEntry | None:
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
        if "." not in source or not HOST.fullmatch(source):
            return ""
        entry = self.known(source) or self.frontends.get(source) or self.engine(source)
        return entry.category if entry else ""


@functools.cache
def source_lists() -> SourceLists:
    """The lists of sources.json, loaded once per process."""
    # A plain path: importlib.resources fails on setuptools' editable installs (Python 3.11).
    text = (Path(__file__).parent.parent / "data" / "sources.json").read_text("utf-8")
    return SourceLists(json.loads(text))
