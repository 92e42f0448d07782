"""The visitor of the current request, as the application sees it.

>>> from starlette.applications import Starlette
>>> from starlette.responses import PlainTextResponse
>>> from starlette.routing import Route
>>> from starlette.testclient import TestClient
>>> from personalize import MemoryStore, PersonalizeMiddleware, get_visitor
>>> async def home(request):
...     visitor = get_visitor(request)
...     return PlainTextResponse(f"{visitor.context.device.type} visit {visitor.profile.visits}")
>>> app = Starlette(routes=[Route("/", home)])
>>> app.add_middleware(PersonalizeMiddleware, secret_key="s" * 32, store=MemoryStore())
>>> TestClient(app).get("/", headers={"user-agent": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 "
...     "like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 "
...     "Safari/604.1"}).text
'mobile visit 1'
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any, Literal

from personalize.content.decisions import Decision
from personalize.content.explanation import unconfigured_decision as unconfigured
from personalize.context.records import VisitorContext
from personalize.exceptions import IdentityError, MiddlewareMissingError
from personalize.profiles.cookie import OPTED_OUT, CookieState, new_visitor_id
from personalize.profiles.events import Event, apply_event, check_revenue, validate_event
from personalize.profiles.identity import anonymous_key, known_key, profile_key
from personalize.profiles.pageviews import SESSION_TIMEOUT, Hit, apply_hit, hit_view
from personalize.profiles.profile import Profile, copy_profile, new_profile
from personalize.profiles.revocation import REVOKE
from personalize.rules.attributes import build_attributes
from personalize.rules.segments import Membership, known_segment
from personalize.site import Site

__all__ = ["ContextOnly", "Visitor"]

logger = logging.getLogger("personalize.identity")

ContextOnly = Literal["bot", "gpc", "opted_out", "no_consent"]
_NO_SITE = "this visitor was not built by PersonalizeMiddleware: nothing to opt out of or into"


class Visitor:
    """Who is asking, in what context, and what is known about them.

    Reading :attr:`context` or :attr:`profile` marks the response as personalized: it then gets
    ``Cache-Control: private`` and ``Vary: Cookie`` so no shared cache hands it to someone else.
    """

    __slots__ = (
        "_attrs",
        "_context",
        "_current",
        "_hit",
        "_key",
        "_memberships",
        "_now",
        "_site",
        "_stored",
        "consent",
        "context_only",
        "cookie_out",
        "decided",
        "id",
        "is_new",
        "mode",
        "pending_write",
        "used",
        "user_id",
    )

    def __init__(  # (positional too: a returning visitor is built so for every page view)
        self,
        visitor_id: str | None,
        user_id: str | None,
        context: VisitorContext,
        is_new: bool,
        stored: Profile | None = None,
        hit: Hit | None = None,
        site: Site | None = None,
        consent: bool = False,
        context_only: ContextOnly | None = None,
    ) -> None:
        self.id = visitor_id  # None for bots: they get no id, no cookie and no profile
        self.user_id = user_id
        self.is_new = is_new
        self.used = False
        self.decided: list[str] | None = None  # the slots this request decided, in order
        # The cookie the response sends (new visitor, rotation, login, logout, opt-out), if any.
        self.cookie_out: CookieState | None = None
        # A change was queued without writing it (a logout): the response's end writes it.
        self.pending_write = False
        self.consent = consent  # the visitor explicitly agreed to be remembered
        # "full": profile and learning; "context": personalized from this request alone,
        # nothing remembered (opted out, Global Privacy Control, or no consent yet).
        self.mode: Literal["full", "context"] = "full" if visitor_id is not None else "context"
        # Why nothing is remembered, for the visitor's own page: a bot, Global Privacy
        # Control, an opt-out, or no consent yet (consent mode "required").
        self.context_only = context_only
        self._context = context
        self._stored = stored
        self._hit = hit
        self._current: Profile | None = None  # the profile this request sees, once built
        self._site = site
        self._now = hit.ts if hit is not None else (site.now() if site is not None else 0.0)
        self._attrs: dict[str, Any] | None = None
        self._memberships: list[Membership] | None = None
        self._key = profile_key(visitor_id, user_id)

    def __repr__(self) -> str:
        who = f"user_id={self.user_id!r}" if self.user_id else f"id={self.id!r}"
        return f"<Visitor {who} new={self.is_new}>"

    @property
    def is_known(self) -> bool:
        """True once the visitor has logged in (the cookie is bound to a user id)."""
        return self.user_id is not None

    @property
    def is_bot(self) -> bool:
        return self._context.device.is_bot

    @property
    def profile_key(self) -> str | None:
        """The key the profile is stored under: the user id when known, else the visitor id."""
        return self._key

    @property
    def remembers(self) -> bool:
        """True when this visitor's profile is stored and learned from."""
        return self.mode == "full" and self.id is not None

    @property
    def context(self) -> VisitorContext:
        """Geo, device, source, local clock and browser signals of this request."""
        self.used = True
        return self._context

    @property
    def profile(self) -> Profile:
        """The stored profile with this page view already folded in.

        Read it; change it through :meth:`identify`, :meth:`track` and the events API. (Its
        counters and sessions are this request's own; nested traits, facts and events are
        shared with the cache.)"""
        self.used = True
        return self._profile()

    def _profile(self) -> Profile:
        """The profile this request sees (stored plus this page view), without marking the
        response personalized. Its own object: never the cached one."""
        current = self._current
        if current is None:
            stored, hit, site = self._stored, self._hit, self._site
            timeout = site.profiles.session_timeout if site is not None else SESSION_TIMEOUT
            if stored is None or stored.merged_into is not None:  # a profile of its own
                current = new_profile(self._key or "", self.user_id)
                if hit is not None:  # (folded in place: nothing else holds it)
                    apply_hit(current, hit, session_timeout=timeout)
            elif hit is None:
                current = copy_profile(stored)
            else:
                current = hit_view(stored, hit, session_timeout=timeout)
            self._current = current
        return current

    def page_view(self) -> tuple[str, Hit, tuple[Profile | None, Profile] | None] | None:
        """The profile key and page view to record after the response (None: nothing to
        record), with (the stored profile, the profile this request saw) when the request
        built the latter from the former, or from nothing (None: a profile of its own): the
        profile service then caches it instead of folding the page view a second time."""
        hit, key = self._hit, self._key
        if hit is None or key is None or self.mode != "full":
            return None
        current, stored = self._current, self._stored
        if current is None or (stored is not None and stored.merged_into is not None):
            return key, hit, None
        return key, hit, (stored, current)

    @property
    def attributes(self) -> dict[str, Any]:
        """The flat attributes segment rules read (see :mod:`personalize.rules.attributes`)."""
        self.used = True
        if self._attrs is None:
            site = self._site
            learned = site.learned_scores(self) if site is not None else None
            self._attrs = build_attributes(
                self._context,
                self._profile() if self.id is not None else None,
                is_known=self.is_known,
                now=self._now,
                learned=learned,
            )
        return self._attrs

    @property
    def segments(self) -> list[Membership]:
        """The live segments this visitor belongs to, each with the reasons it matched."""
        self.used = True
        if self._memberships is None:
            library = self._site.segments if self._site is not None else None
            if library is None:
                self._memberships = []
            else:
                library.reload_if_changed()
                self._memberships = library.evaluate(self.attributes)
        return self._memberships

    @property
    def evaluated_segments(self) -> Sequence[Membership] | None:
        """:attr:`segments` if this request evaluated them already, else None (for the
        decision engine, which then evaluates only the segments its mapping needs)."""
        return self._memberships

    @property
    def segment_names(self) -> frozenset[str]:
        return frozenset(m.segment for m in self.segments)

    def in_segment(self, name: str) -> bool:
        """True when the visitor is in segment ``name`` (an unknown name is logged and is
        False: see :func:`~personalize.rules.segments.known_segment`)."""
        library = self._site.segments if self._site is not None else None
        return known_segment(library, name) and name in self.segment_names

    async def decide(self, slot: str) -> Decision:
        """What slot ``slot`` shows this visitor, with the reasons (see
        :mod:`personalize.content.decisions`)."""
        return self.decide_sync(slot)

    def decide_sync(self, slot: str) -> Decision:
        """:meth:`decide` without a coroutine, for synchronous template engines (Django's,
        Jinja2 without ``enable_async``): deciding a slot does no I/O."""
        self.used = True
        if self.decided is None:
            self.decided = [slot]
        else:
            self.decided.append(slot)
        engine = self._site.decisions if self._site is not None else None
        return engine.decide_sync(self, slot) if engine is not None else unconfigured(slot)

    def why(self, decision: Decision) -> list[str]:
        """Why the visitor sees ``decision``, in plain words for them (no ids, numbers or file
        names; ``decision.explanation.lines()`` is the editors' version)."""
        engine = self._site.decisions if self._site is not None else None
        return engine.plain_reasons(decision, self) if engine is not None else []

    # -- identity -------------------------------------------------------------------------

    def _identifiable(self) -> Site:
        if self._site is None or self.id is None:
            raise IdentityError("this visitor cannot be identified (a bot, or no middleware)")
        return self._site

    def _rebind(self, state: CookieState, stored: Profile | None) -> None:
        self.id = state.visitor_id or None
        self.user_id = state.user_id
        self._key = profile_key(self.id, self.user_id)
        self.mode = "full" if self.id is not None else "context"
        self._stored = stored
        self._current = self._attrs = self._memberships = None
        self.cookie_out = state
        if self._hit is not None:
            self._hit = replace(self._hit, device_id=state.visitor_id) if self.id else None

    def _changed(self, stored: Profile | None) -> None:
        self._stored = stored
        self._current = self._attrs = self._memberships = None

    async def identify(self, user_id: str, traits: Mapping[str, Any] | None = None) -> Profile:
        """Log the visitor in as ``user_id``: merge their anonymous history into the known
        profile, bind the cookie to the user, and return the merged profile.

        The same request already sees the merged profile. A visitor who is already bound to
        another user is switched to this one without merging the two known profiles.
        Raises :class:`IdentityError` for junk ids ("", "null", "guest", ...).
        """
        if self.mode == "context" and self._site is not None and self.context_only != "bot":
            # Opted out, GPC or no consent: the login works, personalize remembers nothing.
            self._site.profiles.check_user_id(user_id)
            return self.profile
        site = self._identifiable()
        profiles = site.profiles
        uid = profiles.check_user_id(user_id)
        if traits is not None and not isinstance(traits, Mapping):
            raise IdentityError("traits must be a mapping")
        now = site.now()
        if self.user_id == uid:
            if traits:
                self._changed(await profiles.set_traits(uid, traits, now=now))
            return self.profile
        device_id = new_visitor_id()
        if self.user_id is not None:
            # Never merge two known profiles implicitly: just switch users. The profile is
            # created if need be: a login cookie reads only a profile that exists.
            known = await profiles.set_traits(uid, traits or {}, now=now)
        else:
            assert self.id is not None
            known = await profiles.merge(
                anonymous_key(self.id), uid, device_id=device_id, traits=traits, now=now
            )
        epoch = known.cookie_epoch if known is not None else 0
        state = CookieState(device_id, user_id=uid, consent=self.consent, epoch=epoch)
        self._rebind(state, known)
        return self.profile

    def logout(self, *, everywhere: bool = False) -> None:
        """Forget who this browser belonged to: a fresh anonymous id, unlinked from the user.

        A shared computer never shows the last user's profile afterwards: by default the
        login cookie this browser held stops reading the known profile, and so does every
        copy of it taken before (the user's other devices stay logged in). With
        ``everywhere=True`` every login cookie of the user issued so far is revoked, on
        every device. (The revocation is written when the response ends.)
        """
        if self.mode == "context":
            return
        site = self._identifiable()
        if self.user_id is not None and self.id is not None:
            revocation = {} if everywhere else {"device": self.id}
            event = Event(REVOKE, "logout", site.now(), revocation)
            site.profiles.enqueue(known_key(self.user_id), event)
            self.pending_write = True
        self._rebind(CookieState(visitor_id=new_visitor_id(), consent=self.consent), None)

    async def forget(self) -> list[str]:
        """Erase everything stored about this visitor (and the anonymous ids merged into
        their profile) from the store; the browser continues as a new anonymous visitor.
        Returns the keys that were removed."""
        if self.mode == "context":
            return []
        site = self._identifiable()
        removed = await site.erase(self.profile_key or "")
        self._rebind(CookieState(visitor_id=new_visitor_id(), consent=self.consent), None)
        self._hit = None  # this very page view is not recorded either
        return removed

    async def opt_out(self) -> list[str]:
        """Stop personalize remembering this visitor, for good: erase what is stored and
        replace the cookie with an opt-out marker that holds no id. Pages are still
        personalized from the request itself (country, device, time...). Returns the erased
        keys."""
        if self._site is None:
            raise MiddlewareMissingError(_NO_SITE)
        if self.context_only == "bot":
            return []  # bots are never remembered: nothing to erase, no cookie to set
        removed = await self._site.erase(self.profile_key or "") if self.remembers else []
        self._rebind(OPTED_OUT, None)
        self.context_only = "opted_out"
        return removed

    def opt_in(self) -> None:
        """Undo :meth:`opt_out` (or give consent in consent mode "required"): a fresh
        anonymous id that is remembered from now on."""
        if self.context_only == "bot":
            return  # bots are never remembered (and carry no site)
        if self._site is None:
            raise MiddlewareMissingError(_NO_SITE)
        if self.remembers:
            return
        self.consent = True
        self.context_only = None
        visitor_id = new_visitor_id()
        self._rebind(CookieState(visitor_id=visitor_id, consent=True), None)
        self._hit = self._site.page_view(self._context, self._site.now(), visitor_id)

    give_consent = opt_in

    async def track(self, name: str, properties: Mapping[str, Any] | None = None) -> None:
        """Record an event for this visitor: ``order``, ``return``, ``ticket``, ``preference``
        (with the properties the events API documents) or any custom name. Raises
        :class:`~personalize.exceptions.EventError` for invalid events (or an order that
        would take the revenue past its bound)."""
        if self.mode == "context":
            return
        site = self._identifiable()
        kind = name if name in ("order", "return", "ticket", "preference") else "custom"
        props, categories = dict(properties or {}), site.categories.names
        event = validate_event(kind, props, name=name, ts=site.now(), categories=categories)
        check_revenue(self._stored, event)
        key = self.profile_key or ""
        stored = self._stored
        if stored is None or stored.merged_into is not None:
            stored = Profile(key=key, user_id=self.user_id)
        else:
            stored = copy_profile(stored)
        apply_event(stored, event)
        if kind == "order":
            site.converted(self, event.properties["value"], ref=event.properties["order_id"])
        self._changed(stored)
        await site.profiles.record(key, event)
