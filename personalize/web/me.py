"""The visitor's own page at ``<prefix>/me``: what is stored about me, why I see what I see.

Routes (all only ever about the visitor making the request: the signed cookie picks the
profile, and no parameter can pick another one):

=====================  ======  ======================================================
route                  method  what
=====================  ======  ======================================================
``/me``                GET     what is stored and where it came from; segments and
                               each slot's reasons; the buttons below
``/me/export``         GET     all of it as a JSON download
``/me/opt-out``        POST    stop being remembered: erases the profile, keeps a
                               cookie that only says "opted out"
``/me/opt-in``         POST    be remembered again (from now on)
``/me/erase``          POST    erase everything (needs ``confirm=yes``); the browser
                               continues as a new anonymous visitor
``/me/preferences``    POST    the visitor's say: stated preferences, and "not me" to
``/me/not-me``                 what was inferred (see
``/me/withdraw``               :mod:`personalize.web.me_preferences`)
=====================  ======  ======================================================

Posts need the CSRF token of the page (bound to this visitor's profile) and must come from this
site. Every answer is ``Cache-Control: private, no-store``.

>>> from personalize.routing import Router
>>> router = Router()
>>> MePages(None, None, "a-cookie-secret-of-32-characters", clock=lambda: 0.0).add_to(router)
>>> router.paths  # doctest: +NORMALIZE_WHITESPACE
['/me', '/me/erase', '/me/export', '/me/not-me', '/me/opt-in', '/me/opt-out',
 '/me/preferences', '/me/withdraw']
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from starlette.datastructures import MultiDict
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from personalize.content.decisions import Decision, DecisionEngine
from personalize.content.slots import label_from_id
from personalize.content.subject import Preview
from personalize.content.wording import arrival, slot_label
from personalize.exceptions import FormError
from personalize.profiles.norms import habits
from personalize.profiles.preferences import norms_used
from personalize.profiles.profile import Profile
from personalize.routing import Router
from personalize.rules.segments import SegmentLibrary
from personalize.services.profiles import ProfileService
from personalize.web.csrf import FIELD, CsrfSigner, same_origin
from personalize.web.me_preferences import PreferenceForms
from personalize.web.pages import NO_STORE, read_form, render, text

if TYPE_CHECKING:
    from personalize.visitor import Visitor

__all__ = ["MePages"]

DONE = {
    "opted-out": "Done: nothing about you is stored any more, and nothing will be. Pages are "
    "still adapted to this visit alone (country, device, time of day).",
    "opted-in": "Done: from now on this site remembers your visits to tailor its pages.",
    "erased": "Done: everything stored about you has been erased. This browser now counts as "
    "a new visitor.",
    "gpc": "Your browser sends Global Privacy Control, so this site does not remember you. "
    "Turn that setting off to be remembered.",
    "stated": "Saved: what you told us now comes before what the site worked out, on every "
    "device you sign in on.",
    "not-me": "Noted: the site will not use that about you again.",
    "withdrawn": "Done: that is forgotten, and the site goes back to what it works out itself.",
    "unchanged": "Nothing to change: that is what you had already told us.",
}
WHY_NOT = {
    "opted_out": "you opted out",
    "gpc": "your browser sends Global Privacy Control (Sec-GPC), which this site honours",
    "no_consent": "you have not agreed to be remembered",
    "bot": "this looks like an automated client, which is never remembered",
}
_UNKNOWN = "this request carries no visitor id"


_RULE_AT = re.compile(r"^rule at \S+:\d+: ")


def _subject(visitor: Visitor) -> str:
    return f"me:{visitor.profile_key or '-'}"


def _public(line: str) -> str:
    """An explanation line without the server's file paths (visitors need not see those).

    >>> _public("rule at /srv/site/content/home.yaml:13: segment mobile (device is mobile)")
    'the rule for segment mobile (device is mobile)'
    """
    return _RULE_AT.sub("the rule for ", line)


def _facts_in_words(facts: dict[str, Any]) -> list[str]:
    """Plain sentences for the facts events left in a profile.

    >>> _facts_in_words({"purchases": 2, "revenue": 120.5, "returns": 1, "open_tickets": 0,
    ...                  "custom": {"newsletter_signup": {"count": 1, "last": 0}}})
    ['2 orders, worth 120.50 in total', '1 returned order', '0 open support tickets', \
'newsletter_signup: 1 time']
    """
    out = []
    if "purchases" in facts:
        orders = facts["purchases"]
        out.append(
            f"{orders} order{'s' if orders != 1 else ''}, worth "
            f"{float(facts.get('revenue', 0)):.2f} in total"
        )
    if "returns" in facts:
        out.append(f"{facts['returns']} returned order{'s' if facts['returns'] != 1 else ''}")
    if "open_tickets" in facts:
        tickets = facts["open_tickets"]
        out.append(f"{tickets} open support ticket{'s' if tickets != 1 else ''}")
    for name, custom in sorted((facts.get("custom") or {}).items()):
        count = custom.get("count", 0) if isinstance(custom, dict) else 0
        out.append(f"{name}: {count} time{'s' if count != 1 else ''}")
    return out


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple | list | set | frozenset):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return value


def _why(decision: Decision) -> dict[str, Any]:
    why = decision.explanation.to_dict()
    why["rule"] = _public(why["rule"])
    return why


class MePages:
    """The visitor's own pages for one site: its profiles, decisions and CSRF secret."""

    def __init__(
        self,
        profiles: ProfileService | None,
        decisions: DecisionEngine | None,
        secret: str,
        *,
        clock: Callable[[], float],
        prefix: str = "/_personalize",
        categories: Sequence[str] = (),
        segments: SegmentLibrary | None = None,
    ) -> None:
        self.profiles = profiles
        self.decisions = decisions
        self.segments = segments
        self.csrf = CsrfSigner(secret, purpose="me")
        self.clock = clock
        self.prefix = prefix
        self.preferences = PreferenceForms(
            categories, checked=self._checked, back=self._back, segments=segments
        )

    def add_to(self, router: Router) -> None:
        """Route the pages below ``router``'s prefix."""
        router.add("/me", self.page)
        router.add("/me/export", self.export)
        router.add("/me/opt-out", self.opt_out, ("POST",))
        router.add("/me/opt-in", self.opt_in, ("POST",))
        router.add("/me/erase", self.erase, ("POST",))
        self.preferences.add_to(router)

    async def _stored(self, visitor: Visitor) -> Profile | None:
        """What the store holds for this visitor (with page views not written yet), or None."""
        key = visitor.profile_key
        if key is None or not visitor.remembers or self.profiles is None:
            return None
        profile = await self.profiles.load(key)
        if profile is None or profile.merged_into is not None:
            return None
        return profile

    def _decisions(self, visitor: Visitor) -> list[tuple[Decision, list[str]]]:
        """Each slot's decision for this visitor with its reasons in plain words, without
        counting it as shown."""
        engine = self.decisions
        if engine is None:
            return []
        engine.library.reload_if_changed()
        # A preview sees the visitor's own attributes and segments; nothing is recorded for it.
        subject = Preview(
            visitor.attributes,
            visitor.profile,
            visitor.context,
            visitor.is_known,
            visitor.segments,
        )
        decided = [engine.decide_sync(subject, name) for name in engine.library.slots]
        return [(d, engine.plain_reasons(d, subject)) for d in decided]

    def _parts(self, decided: list[tuple[Decision, list[str]]]) -> list[dict[str, Any]]:
        """The page's parts as the visitor is told about them: names, labels, plain reasons."""
        slots = self.decisions.library.slots if self.decisions is not None else {}
        parts = []
        for decision, reasons in decided:
            slot = slots.get(decision.slot)
            variant = slot.variants.get(decision.variant or "") if slot is not None else None
            shows = variant.label if variant is not None else None
            if shows is None and decision.variant is not None:
                shows = label_from_id(decision.variant)
            parts.append({"part": slot_label(slot, decision.slot), "shows": shows,
                          "why": reasons})  # fmt: skip
        return parts

    def _group_name(self, segment: str) -> str:
        """A segment as visitors read it: its description where the editors wrote one."""
        library = self.segments
        found = library.get(segment) if library is not None and segment in library else None
        return (found.description if found is not None else "") or label_from_id(segment)

    def _groups(self, visitor: Visitor) -> list[dict[str, Any]]:
        """The visitor's segments by name, with the reasons."""
        return [{"segment": m.segment, "name": self._group_name(m.segment), "reasons": m.reasons}
                for m in visitor.segments]  # fmt: skip

    async def page(self, request: Request, visitor: Visitor) -> Response:
        """What is stored about the visitor of this request, and why they see what they see."""
        profile = await self._stored(visitor)
        decisions = self._decisions(visitor)
        context = visitor.context
        done = request.query_params.get("done", "")
        why_not = ""
        if not visitor.remembers:
            why_not = WHY_NOT.get(visitor.context_only or "", _UNKNOWN)
        attributes = visitor.attributes
        return render(
            "me.html",
            self.prefix,
            remembered=visitor.remembers,
            why_not=why_not,
            user_id=visitor.user_id,
            profile=profile,
            facts=_facts_in_words(profile.facts) if profile is not None else [],
            events=list(reversed(profile.events[-20:])) if profile is not None else [],
            context=context,
            groups=self._groups(visitor),
            group_name=self._group_name,
            parts=self._parts(decisions),
            site_home=request.scope.get("root_path", "") + "/",
            habits=habits(profile.norms) if profile is not None else [],
            norms_off=profile is not None and not norms_used(profile),
            unusual=attributes.get("unusual"),
            unusual_why=attributes.get("unusual_why"),
            entry=profile.current_session if profile is not None else None,
            arrival=arrival,
            flash=DONE.get(done, ""),
            can_opt_in=not (
                visitor.remembers or context.signals.gpc or visitor.context_only == "bot"
            ),
            preferences=self.preferences.view(visitor, profile),
            csrf_field=FIELD,
            csrf_token=self.csrf.token(_subject(visitor)),
        )

    async def export(self, request: Request, visitor: Visitor) -> Response:
        """Everything about the visitor of this request, as a JSON download."""
        profile = await self._stored(visitor)
        data = {
            "exported_at": datetime.fromtimestamp(self.clock(), UTC).isoformat(timespec="seconds"),
            "about": (
                "What this site's personalization stores about you (stored_profile), what it "
                "derived from this request alone and did not store (this_request), and the "
                "segments and content choices that follow. Your IP address is never stored."
            ),
            "remembered": visitor.remembers,
            "visitor_id": visitor.id if visitor.remembers else None,
            "user_id": visitor.user_id,
            "stored_profile": profile.to_dict() if profile is not None else None,
            "this_request": _jsonable(visitor.context),
            "segments": [
                {"segment": m.segment, "reasons": list(m.reasons)} for m in visitor.segments
            ],
            "slots": {
                d.slot: {"variant": d.variant, "in_words": reasons, "why": _why(d)}
                for d, reasons in self._decisions(visitor)
            },
        }
        body = json.dumps(data, indent=2, ensure_ascii=False, default=str)
        return Response(
            body,
            media_type="application/json",
            headers={
                "content-disposition": 'attachment; filename="my-data.json"',
                "cache-control": NO_STORE,
                "x-content-type-options": "nosniff",
            },
        )

    async def _checked(self, request: Request, visitor: Visitor) -> MultiDict | Response:
        """The posted form if it is genuine, else the response that refuses it."""
        try:
            form = await read_form(request)
        except FormError as exc:
            return text(str(exc), exc.status)
        # A visitor without an id has no secret to bind the token to: then the browser must
        # also say where the form came from.
        strict = visitor.profile_key is None
        headers = request.headers
        if not same_origin(headers, scheme=request.scope.get("scheme", "http")) or (
            strict and not (headers.get("origin") or headers.get("referer"))
        ):
            return text("Refused: this form was posted from another site.", 403)
        if not self.csrf.check(form.get(FIELD), _subject(visitor)):
            return text(
                "Refused: the page's security token is missing or expired. Open the page "
                "again and use its buttons.",
                403,
            )
        return form

    def _back(self, done: str) -> Response:
        return RedirectResponse(
            f"{self.prefix}/me?done={done}", status_code=303, headers={"cache-control": NO_STORE}
        )

    async def opt_out(self, request: Request, visitor: Visitor) -> Response:
        """Stop being remembered: erase the profile; the cookie then only says "opted out"."""
        checked = await self._checked(request, visitor)
        if isinstance(checked, Response):
            return checked
        await visitor.opt_out()
        return self._back("opted-out")

    async def opt_in(self, request: Request, visitor: Visitor) -> Response:
        """Be remembered again, from now on (impossible while the browser sends GPC)."""
        checked = await self._checked(request, visitor)
        if isinstance(checked, Response):
            return checked
        if visitor.context.signals.gpc:
            return self._back("gpc")
        visitor.opt_in()
        return self._back("opted-in")

    async def erase(self, request: Request, visitor: Visitor) -> Response:
        """Erase everything stored about this visitor (and the ids merged into their profile)."""
        checked = await self._checked(request, visitor)
        if isinstance(checked, Response):
            return checked
        if checked.get("confirm") != "yes":
            return text("Tick the box to confirm that everything should be erased.", 400)
        await visitor.forget()
        return self._back("erased")
