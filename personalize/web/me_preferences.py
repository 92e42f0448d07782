"""The visitor's say on ``<prefix>/me``: state preferences, and say "not me" to what was inferred.

=========================  ======  ================================================
route                      method  what
=========================  ======  ================================================
``/me/preferences``        POST    the form: interests (more / less), offers,
                                   location, browsing history, language
``/me/not-me``             POST    ``name``: an inferred interest, segment or
                                   cluster is not me (for good)
``/me/withdraw``           POST    ``name``: forget one statement
=========================  ======  ================================================

Every post carries the page's CSRF token (checked by :class:`~personalize.web.me.MePages`)
and works without JavaScript. A statement is a ``preference`` event with origin ``me``
(:mod:`personalize.profiles.preferences`): it reaches the store like any other event, and
only what changed is stated, so each statement keeps the time it was really made. A visitor
who is not remembered (opted out, Global Privacy Control, no consent) has nowhere to keep a
preference: the page says so and the posts answer 409.

>>> said_in_words("location", False), said_in_words("segment.shoe_lovers", "not_me")
('do not use my location', 'the group shoe_lovers is not me')
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from starlette.datastructures import MultiDict
from starlette.requests import Request
from starlette.responses import Response

from personalize.exceptions import EventError
from personalize.profiles.preferences import stated_value
from personalize.profiles.profile import Profile
from personalize.routing import Router
from personalize.rules.segments import SegmentLibrary
from personalize.web.pages import text

if TYPE_CHECKING:
    from personalize.visitor import Visitor

__all__ = ["PreferenceForms", "said_in_words"]

Checked = Callable[[Request, "Visitor"], Awaitable[MultiDict | Response]]
ORIGINS = {"me": "on this page", "site": "on this site", "api": "through the shop's systems"}
OFFERS = {
    "never": "never: no promotions at all",
    "sometimes": "sometimes: one a day at most",
    "often": "often: whatever the shop thinks fits",
}
LANGUAGES = ("en", "en-gb", "en-us", "de", "fr", "es", "it", "nl", "pl", "pt", "sv")
_FORM = "preferences"  # the form's marker: its checkboxes were on the page (unticked = absent)


def said_in_words(name: str, value: Any) -> str:
    """A statement as the visitor would say it.

    >>> said_in_words("interest.shoes", "less"), said_in_words("promotions", "sometimes")
    ('show me less of shoes', 'offers: sometimes (one a day at most)')
    """
    family, _, rest = name.partition(".")
    if family == "interest":
        return f"show me {value} of {rest}"
    if family == "segment":
        return f"the group {rest} is not me"
    if family == "cluster":
        return f"the group the site's model formed, {rest}, is not me"
    if name == "norms":
        return "do not compare my visits with my usual ones"
    if name == "promotions":
        return "offers: " + {"sometimes": "sometimes (one a day at most)"}.get(value, str(value))
    if name == "language":
        return f"my language is {value}"
    what = {"location": "my location", "history": "my browsing history to choose offers"}
    return f"{'you may' if value else 'do not'} use {what.get(name, name)}"


def _origin(origin: object) -> str:
    name = str(origin)
    return ORIGINS.get(name, "by " + name.replace("_", " "))


class PreferenceForms:
    """The forms of the visitor's say, for a site with these interest ``categories``."""

    def __init__(
        self,
        categories: Sequence[str],
        *,
        checked: Checked,
        back: Callable[[str], Response],
        segments: SegmentLibrary | None = None,
    ) -> None:
        self.categories = tuple(categories)
        self.segments = segments
        self._checked = checked
        self._back = back

    def _by_statement(self, segment: str, attrs: Mapping[str, Any]) -> bool:
        """True when the visitor is in ``segment`` only because of what they stated."""
        library = self.segments
        if library is None or segment not in library:
            return False
        rule = library.get(segment).rule
        if not any(name.startswith("stated.") for name in rule.attributes):
            return False
        return not rule.evaluate({k: v for k, v in attrs.items() if not k.startswith("stated.")})

    def add_to(self, router: Router) -> None:
        router.add("/me/preferences", self.save, ("POST",))
        router.add("/me/not-me", self.not_me, ("POST",))
        router.add("/me/withdraw", self.withdraw, ("POST",))

    def view(self, visitor: Visitor, profile: Profile | None) -> dict[str, Any]:
        """What the page shows of the visitor's say (``me_preferences.html``)."""
        stated: Mapping[str, Any] = profile.stated if profile is not None else {}
        said = [
            {"name": name, "words": said_in_words(name, entry["value"]), "ts": entry["ts"],
             "origin": _origin(entry.get("origin"))}
            for name, entry in sorted(stated.items(), key=lambda kv: -kv[1]["ts"])
            if entry["value"] is not None
        ]  # fmt: skip
        language = stated_value(stated, "language")
        browser = visitor.context.signals.languages
        attrs = visitor.attributes if visitor.remembers else {}
        memberships = visitor.segments if visitor.remembers else []
        return {
            "can_state": visitor.remembers,
            "interests": [
                {"category": c, "value": stated_value(stated, f"interest.{c}") or ""}
                for c in self.categories
            ],
            "offers": OFFERS,
            "promotions": stated_value(stated, "promotions") or "",
            "location_off": stated_value(stated, "location") is False,
            "history_off": stated_value(stated, "history") is False,
            "language": language or "",
            "languages": LANGUAGES,
            "browser_language": next((tag for tag in browser if tag != language), ""),
            "affinities": [
                (c, views)
                for c, views in (profile.top_affinities(20) if profile is not None else [])
                if c in self.categories or not self.categories
            ],
            "groups": [m for m in memberships if not self._by_statement(m.segment, attrs)],
            "groups_said": [m.segment for m in memberships if self._by_statement(m.segment, attrs)],
            "cluster": attrs.get("cluster"),
            "said": said,
        }

    async def _refused(self, request: Request, visitor: Visitor) -> MultiDict | Response:
        checked = await self._checked(request, visitor)
        if isinstance(checked, Response):
            return checked
        if not visitor.remembers:
            return text(
                "This site does not remember you, so it has nowhere to keep a preference. "
                "Your page already adapts to this visit alone.",
                409,
            )
        return checked

    async def _say(self, visitor: Visitor, statements: dict[str, Any], done: str) -> Response:
        if not statements:
            return self._back("unchanged")
        try:
            await visitor.track("preference", {**statements, "origin": "me"})
        except EventError as exc:
            return text(f"Not saved: {exc}", 422)
        return self._back(done)

    async def save(self, request: Request, visitor: Visitor) -> Response:
        """The preferences form: states what differs from what the visitor said before."""
        form = await self._refused(request, visitor)
        if isinstance(form, Response):
            return form
        if form.get("form") != _FORM:
            return text("Use the form on the page to save your preferences.", 400)
        stated = visitor.profile.stated
        wanted: dict[str, Any] = {}
        for name, value in form.multi_items():
            if name.startswith("interest."):
                wanted[name] = value or None
        promotions = form.get("promotions")
        if promotions is not None:
            wanted["promotions"] = promotions or None
        if "language" in form:
            wanted["language"] = form["language"].strip().lower() or None
        for name in ("location", "history"):
            off = form.get(name) == "off"
            if off or stated_value(stated, name) is False:
                wanted[name] = not off
        changes = {n: v for n, v in wanted.items() if v != stated_value(stated, n)}
        return await self._say(visitor, changes, "stated")

    async def not_me(self, request: Request, visitor: Visitor) -> Response:
        """One inferred fact (``interest.<c>``, ``segment.<name>``, ``cluster.<id>``, ``norms``)
        is not me."""
        form = await self._refused(request, visitor)
        if isinstance(form, Response):
            return form
        name = form.get("name", "")
        value = "less" if name.startswith("interest.") else "not_me"
        return await self._say(visitor, {name: value}, "not-me")

    async def withdraw(self, request: Request, visitor: Visitor) -> Response:
        """Forget one statement: the site goes back to what it infers."""
        form = await self._refused(request, visitor)
        if isinstance(form, Response):
            return form
        name = form.get("name", "")
        if stated_value(visitor.profile.stated, name) is None:
            return self._back("unchanged")
        return await self._say(visitor, {name: None}, "withdrawn")
