"""Why a visitor sees a slot's content, in words a shopper understands.

The engine's :meth:`Explanation.lines` are for editors: rule files and lines, attribute names,
the sampled probabilities. Visitors get :func:`plain_reasons` instead: what about *them* made
the rule match ("you arrived from a Google ad", "you are on a phone"), the editors' labels of
the variants it chose among, and the removals a visitor cares about (a product they bought, an
offer held back while a support ticket is open, something resting after they saw it often).
No ids, no numbers, no file names.

>>> from personalize.content.explanation import Explanation
>>> from personalize.content.slots import Slot, Variant
>>> slot = Slot("hero", {"deal": Variant("deal"), "welcome": Variant("welcome", label="Hello")},
...             (), ("welcome",))
>>> why = Explanation("rule at home.yaml:9: segment ads", candidates=("deal", "welcome"),
...                   pinned="deal", attributes=frozenset({"entry_channel", "device_type"}))
>>> attrs = {"entry_channel": "paid_search", "entry_source": "google", "device_type": "mobile"}
>>> plain_reasons("deal", why, slot, attrs)
['Shown because you arrived from a Google ad and you are on a phone.']
>>> why = Explanation("no rule matched: the default variants", candidates=("deal", "welcome"))
>>> plain_reasons("welcome", why, slot, {})
['Our pick for you among: Deal and Hello.']
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from personalize.content.explanation import Explanation
from personalize.content.holdout import HELD_OUT
from personalize.content.mapping import NO_RULE
from personalize.content.slots import Slot, label_from_id
from personalize.content.suppression import suppression_kind
from personalize.context.source_lists import source_lists

__all__ = ["arrival", "join_words", "plain_reasons", "slot_label", "source_name"]

Attrs = Mapping[str, Any]

_DEVICES = {"mobile": "a phone", "tablet": "a tablet", "desktop": "a computer"}
_DAYPARTS = {"night": "night", "morning": "morning", "afternoon": "afternoon",
             "evening": "evening"}  # fmt: skip
_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
# channel -> how a visitor arrived; {source} is the site or engine when one is known.
_ARRIVALS = {
    "direct": ("you came straight to the site", ""),
    "organic_search": ("you found us through a search", "you found us through {source} search"),
    "paid_search": ("you arrived from a search ad", "you arrived from a {source} ad"),
    "organic_social": ("you came from social media", "you came from {source}"),
    "paid_social": ("you arrived from an ad on social media", "you arrived from a {source} ad"),
    "organic_video": ("you came from a video site", "you came from {source}"),
    "paid_video": ("you arrived from a video ad", "you arrived from a {source} video ad"),
    "organic_shopping": ("you came from a shopping site", "you came from {source}"),
    "paid_shopping": ("you arrived from a shopping ad", "you arrived from a {source} ad"),
    "email": ("you came from one of our emails", "you came from our {source} email"),
    "sms": ("you came from a text message", ""),
    "referral": ("you followed a link from another site", "you followed a link on {source}"),
    "display": ("you clicked a banner ad", ""),
    "affiliate": ("you came from a partner site", "you came from {source}"),
    "paid_other": ("you arrived from an ad", ""),
    "ai_assistant": ("an AI assistant sent you here", "{source} sent you here"),
    "internal": ("you came from another part of this site", ""),
}


# Source names whose title case is wrong ("Chatgpt"): the brand's own spelling.
_BRANDS = {
    "chatgpt": "ChatGPT",
    "meta-ai": "Meta AI",
    "character-ai": "Character.AI",
    "deepseek": "DeepSeek",
    "huggingchat": "HuggingChat",
    "youtube": "YouTube",
    "linkedin": "LinkedIn",
    "tiktok": "TikTok",
    "duckduckgo": "DuckDuckGo",
    "icloud-mail": "iCloud Mail",
    "aol-mail": "AOL Mail",
    "gmx": "GMX",
    "web-de": "WEB.DE",
    "qq-mail": "QQ Mail",
}


def source_name(source: str) -> str:
    """A source as people write it: "ChatGPT", "Yahoo Mail", "Bing"; hosts stay as they are.

    >>> source_name("chatgpt"), source_name("yahoo-mail"), source_name("blog.example.org")
    ('ChatGPT', 'Yahoo Mail', 'blog.example.org')
    """
    if "." in source:
        return source
    return _BRANDS.get(source) or source.replace("_", " ").replace("-", " ").title()


def arrival(channel: object, source: object = None) -> str | None:
    """How a visit began, in words: ``arrival("paid_search", "google")`` is "you arrived from
    a Google ad"; None for a channel it does not know. An email read in webmail is the
    visitor's, not necessarily ours.

    >>> arrival("ai_assistant", "chatgpt"), arrival("email", "gmail")
    ('ChatGPT sent you here', 'you followed a link in an email you read in Gmail')
    """
    if not isinstance(channel, str) or channel not in _ARRIVALS:
        return None
    plain, named = _ARRIVALS[channel]
    if named and isinstance(source, str) and source and len(source) <= 40:
        if channel == "email" and ("." in source or source_lists().names.get(source) == "email"):
            return f"you followed a link in an email you read in {source_name(source)}"
        return named.format(source=source_name(source))
    return plain


def _arrival(attrs: Attrs, channel_key: str, source_key: str) -> str | None:
    return arrival(attrs.get(channel_key), attrs.get(source_key))


def _device(attrs: Attrs) -> str | None:
    kind = _DEVICES.get(str(attrs.get("device_type")))
    return f"you are on {kind}" if kind else None


_WITH_THE = frozenset({"Netherlands", "Philippines", "Bahamas", "Gambia", "Maldives",
                       "Seychelles", "Comoros", "Vatican City"})  # fmt: skip


def _country(attrs: Attrs, country_name: str | None) -> str | None:
    code = attrs.get("country")
    if not isinstance(code, str):
        return None
    name = country_name or code
    if (
        name in _WITH_THE
        or name.startswith(("United ", "Republic of "))
        or name.endswith((" Islands", " Republic"))
    ):
        name = f"the {name}"
    return f"you are browsing from {name}"


def _city(attrs: Attrs) -> str | None:
    city = attrs.get("city")
    return f"you are near {city}" if isinstance(city, str) and city else None


def _time(attrs: Attrs) -> str | None:
    part = _DAYPARTS.get(str(attrs.get("daypart")))
    return f"it is {part} where you are" if part else None


def _day(attrs: Attrs) -> str | None:
    day = attrs.get("weekday")
    if attrs.get("weekend") is True or day in (5, 6):
        return "it is the weekend"
    return f"it is {_DAYS[day]}" if isinstance(day, int) and 0 <= day <= 6 else None


def _visits(attrs: Attrs) -> str | None:
    visits = attrs.get("visits")
    if isinstance(visits, int) and visits > 1:
        return "you have visited us before"
    return "this is your first visit" if visits == 1 else None


def _interest(attrs: Attrs, read: frozenset[str]) -> str | None:
    categories = [a.split(".", 1)[1] for a in sorted(read) if a.startswith("affinity.")]
    top = attrs.get("top_category")
    stated = attrs.get("stated.interest") or ()
    if "top_category" in read and top in stated:  # the top category because they said so
        return f"you told us you are interested in {top}"
    if "top_category" in read and isinstance(top, str):
        categories.insert(0, top)
    shown = [c.replace("_", " ") for c in dict.fromkeys(categories)][:3]
    return f"you have been looking at {join_words(shown)}" if shown else None


def _orders(attrs: Attrs) -> str | None:
    orders = attrs.get("purchases")
    return "you have ordered from us before" if isinstance(orders, int | float) and orders else None


def _ticket(attrs: Attrs) -> str | None:
    tickets = attrs.get("open_tickets")
    if isinstance(tickets, int | float) and tickets > 0:
        return "you have a support request open"
    return None


def _stated(attrs: Attrs, read: frozenset[str]) -> str | None:
    """What the visitor told us (on /me), as far as the rule read it."""
    said = []
    more = attrs.get("stated.interest")
    if "stated.interest" in read and isinstance(more, frozenset | set) and more:
        said.append(f"you told us you are interested in {join_words(sorted(more))}")
    less = attrs.get("stated.less")
    if "stated.less" in read and isinstance(less, frozenset | set) and less:
        said.append(f"you asked to see less of {join_words(sorted(less))}")
    offers = {"never": "you asked for no offers", "sometimes": "you asked for fewer offers",
              "often": "you asked for offers"}.get(str(attrs.get("stated.promotions")))  # fmt: skip
    if "stated.promotions" in read and offers:
        said.append(offers)
    language = attrs.get("stated.language")
    if "stated.language" in read and isinstance(language, str):
        said.append(f"you chose the language {language}")
    return join_words(said) or None


def _signed_in(attrs: Attrs) -> str | None:
    known = attrs.get("known")
    if isinstance(known, bool):
        return "you are signed in" if known else "you are not signed in"
    return None


# (attributes that lead to it, the phrase): one phrase per topic, in this order. "name.*"
# stands for a family of attributes (affinity.shoes, purchased_at.boot-7).
_Phrase = Callable[[Attrs, frozenset[str], str | None], str | None]
_TOPICS: tuple[tuple[frozenset[str], _Phrase], ...] = (
    (frozenset({"unusual", "unusual_why"}),
     lambda a, r, c: "this visit is not like your usual ones" if "unusual" in a else None),
    (frozenset({"entry_channel", "entry_source", "entry_campaign", "landing_page"}),
     lambda a, r, c: _arrival(a, "entry_channel", "entry_source")),
    (frozenset({"channel", "source", "medium", "campaign", "referrer_host", "term"}),
     lambda a, r, c: _arrival(a, "channel", "source")),
    (frozenset({"device_type", "os", "browser", "touch"}), lambda a, r, c: _device(a)),
    (frozenset({"country", "continent", "region"}), lambda a, r, c: _country(a, c)),
    (frozenset({"city"}), lambda a, r, c: _city(a)),
    (frozenset({"hour", "minute", "daypart"}), lambda a, r, c: _time(a)),
    (frozenset({"weekday", "weekend"}), lambda a, r, c: _day(a)),
    (frozenset({"known", "anonymous"}), lambda a, r, c: _signed_in(a)),
    (frozenset({"visits", "sessions_count", "sessions_30d", "first_seen",
                "days_since_first_seen", "days_since_last_visit"}), lambda a, r, c: _visits(a)),
    (frozenset({"top_category", "affinity.*"}), lambda a, r, c: _interest(a, r)),
    (frozenset({"purchases", "revenue", "last_purchase_at", "days_since_last_purchase",
                "purchased", "purchased_at.*"}), lambda a, r, c: _orders(a)),
    (frozenset({"open_tickets", "last_ticket_at"}), lambda a, r, c: _ticket(a)),
    (frozenset({"propensity", "cluster", "anomaly", "anomalous"}),
     lambda a, r, c: "of how you have been browsing today"),
    (frozenset({"path"}), lambda a, r, c: "of the page you are on"),
    (frozenset({"stated.interest", "stated.less", "stated.promotions", "stated.language"}),
     lambda a, r, c: _stated(a, r)),
)  # fmt: skip


def _because(attrs: Attrs, read: frozenset[str], country_name: str | None) -> list[str]:
    families = {a.split(".", 1)[0] + ".*" for a in read if "." in a}
    phrases: list[str] = []
    for triggers, phrase in _TOPICS:
        if triggers & read or triggers & families:
            text = phrase(attrs, read, country_name)
            if text and text not in phrases:
                phrases.append(text)
    return phrases


def join_words(words: Sequence[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``.

    >>> join_words(["shoes"]), join_words(["shoes", "bags", "tents"])
    ('shoes', 'shoes, bags and tents')
    """
    if len(words) <= 1:
        return "".join(words)
    return f"{', '.join(words[:-1])} and {words[-1]}"


def slot_label(slot: Slot | None, name: str) -> str:
    """How visitors are told which part of the page a slot is: its description, else its name."""
    return (slot.description if slot is not None else "") or label_from_id(name)


def _labels(slot: Slot | None, ids: Iterable[str]) -> list[str]:
    variants = slot.variants if slot is not None else {}
    return [variants[v].label if v in variants else label_from_id(v) for v in ids]


def plain_reasons(
    variant: str | None,
    why: Explanation,
    slot: Slot | None,
    attrs: Attrs,
    *,
    country_name: str | None = None,
) -> list[str]:
    """Sentences for a visitor on why ``slot`` shows ``variant`` (None: nothing), from the
    decision's explanation ``why`` (see the module).

    ``attrs`` are the visitor's attributes; ``country_name`` names their country ("United
    Kingdom") where the rule was about it.
    """
    removed = dict(why.suppressed)
    allowed = [v for v in why.candidates if v not in removed]
    lines: list[str] = []
    if variant is None:
        lines.append("Nothing is shown here for you right now.")
    elif why.rule == HELD_OUT:
        lines.append(
            "Our standard choice here: a few visitors see it whatever their visit, so we can "
            "tell whether personalizing helps."
        )
        return lines + _removals(slot, why.suppressed)
    elif why.rule != NO_RULE:
        phrases = _because(attrs, why.attributes, country_name)
        lines.append(
            f"Shown because {join_words(phrases)}." if phrases else "Chosen for visitors like you."
        )
    elif len(allowed) <= 1:
        lines.append("Our standard choice here: nothing about your visit changed it.")
    if variant is not None and not why.pinned and len(allowed) > 1:
        lines.append(f"Our pick for you among: {join_words(_labels(slot, allowed))}.")
    lines += _removals(slot, why.suppressed)
    return lines


def _removals(slot: Slot | None, suppressed: Sequence[tuple[str, str]]) -> list[str]:
    by_kind: dict[str, list[str]] = {}
    for variant, sentence in suppressed:
        by_kind.setdefault(suppression_kind(sentence), []).append(variant)
    lines = []
    for sentence in dict.fromkeys(s for _, s in suppressed if suppression_kind(s) == "asked"):
        lines.append(sentence[:1].upper() + sentence[1:] + ".")  # already in the visitor's words
    if "purchase" in by_kind:
        names, it = _names(slot, by_kind["purchase"])
        lines.append(f"Not shown: {names}, because you bought {it} recently.")
    if "ticket" in by_kind:
        lines.append("We hold back offers while your support request is open.")
    if "cap" in by_kind:
        names, it = _names(slot, by_kind["cap"])
        lines.append(f"Resting for a while: {names}, since you have seen {it} several times.")
    return lines


def _names(slot: Slot | None, ids: Sequence[str]) -> tuple[str, str]:
    return join_words(_labels(slot, ids)), "it" if len(ids) == 1 else "them"
