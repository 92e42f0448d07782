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
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Literal

from markupsafe import Markup

from personalize.attributes import build_attributes
from personalize.context import VisitorContext
from personalize.cookie import OPTED_OUT, CookieState, new_visitor_id
from personalize.decisions import Decision, Explanation
from personalize.events import MAX_DEPTH, _depth, apply_event, validate_event
from personalize.exceptions import IdentityError, MiddlewareMissingError
from personalize.identity import check_user_id
from personalize.profile import SESSION_TIMEOUT, Hit, Profile, apply_hit
from personalize.segments import Membership
from personalize.service import copy_profile, hit_view

if TYPE_CHECKING:
    from personalize.middleware import PersonalizeMiddleware

logger = logging.getLogger("personalize.identity")
_warned_unknown: set[str] = set()

STATE_KEY = "visitor"
_MISSING = (
    "PersonalizeMiddleware must be installed to use request.state.visitor: add "
    "`app.add_middleware(PersonalizeMiddleware, secret_key=...)`, and check that this path is "
    "not excluded"
)


class Visitor:
    """Who is asking, in what context, and what is known about them.

    Reading :attr:`context` or :attr:`profile` marks the response as personalized: it then gets
    ``Cache-Control: private`` and ``Vary: Cookie`` so no shared cache hands it to someone else.
    """

    __slots__ = (
        "_attrs",
        "_context",
        "_hit",
        "_memberships",
        "_now",
        "_pz",
        "_stored",
        "_view",
        "consent",
        "cookie_out",
        "id",
        "is_new",
        "mode",
        "used",
        "user_id",
    )

    def __init__(
        self,
        *,
        visitor_id: str | None,
        user_id: str | None,
        context: VisitorContext,
        is_new: bool,
        stored: Profile | None = None,
        hit: Hit | None = None,
        middleware: PersonalizeMiddleware | None = None,
    ) -> None:
        self.id = visitor_id  # None for bots: they get no id, no cookie and no profile
        self.user_id = user_id
        self.is_new = is_new
        self.used = False
        # The cookie the response sends (new visitor, rotation, login, logout, opt-out), if any.
        self.cookie_out: CookieState | None = None
        self.consent = False  # the visitor explicitly agreed to be remembered
        # "full": profile and learning; "context": personalized from this request alone,
        # nothing remembered (opted out, Global Privacy Control, or no consent yet).
        self.mode: Literal["full", "context"] = "full" if visitor_id is not None else "context"
        self._context = context
        self._stored = stored
        self._hit = hit
        self._view: Profile | None = None
        self._pz = middleware
        self._now = hit.ts if hit is not None else (middleware.now() if middleware else 0.0)
        self._attrs: dict[str, Any] | None = None
        self._memberships: list[Membership] | None = None

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
        if self.id is None:
            return None
        return f"u:{self.user_id}" if self.user_id is not None else f"v:{self.id}"

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
        return self._profile_view()

    def _profile_view(self) -> Profile:
        """The profile this request sees (stored plus this page view), without marking the
        response personalized. A copy: the cached profile it comes from changes in place."""
        if self._view is None:
            if self._stored is None or self._stored.merged_into is not None:
                view = Profile(key=self.profile_key or "", user_id=self.user_id)
            elif self._hit is not None:
                view = hit_view(self._stored)
            else:
                view = copy_profile(self._stored)
            if self._hit is not None:
                timeout = self._pz.profiles.store.session_timeout if self._pz else SESSION_TIMEOUT
                apply_hit(view, self._hit, session_timeout=timeout)
            self._view = view
        return self._view

    def _page_view_read(self) -> tuple[Profile, Profile] | None:
        """(the stored profile, the view this request read of it) when the view is exactly
        that profile with this page view folded in; the profile service then takes the
        view as the new cached profile instead of folding the page view a second time."""
        view, stored = self._view, self._stored
        if view is None or stored is None or stored.merged_into is not None or self._hit is None:
            return None
        return stored, view

    @property
    def attributes(self) -> dict[str, Any]:
        """The flat attributes segment rules read (see :mod:`personalize.attributes`)."""
        self.used = True
        if self._attrs is None:
            learned = self._pz.learned_scores(self) if self._pz is not None else None
            self._attrs = build_attributes(
                self._context,
                self.profile if self.id is not None else None,
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
            library = self._pz.segments if self._pz is not None else None
            if library is None:
                self._memberships = []
            else:
                library.reload_if_changed()
                self._memberships = library.evaluate(self.attributes)
        return self._memberships

    @property
    def segment_names(self) -> frozenset[str]:
        return frozenset(m.segment for m in self.segments)

    def in_segment(self, name: str) -> bool:
        """True when the visitor is in segment ``name``.

        An unknown name is logged (once per name) and answers False: a typo in a template
        must not cost the visitor their page.
        """
        library = self._pz.segments if self._pz is not None else None
        if library is None or name not in library:
            if name not in _warned_unknown:
                _warned_unknown.add(name)
                logger.warning(
                    "personalize: unknown segment %r (known: %s)",
                    name,
                    ", ".join(library.names) if library is not None else "none",
                )
            return False
        return name in self.segment_names

    async def decide(self, slot: str) -> Decision:
        """What slot ``slot`` shows this visitor, with the reasons (see
        :mod:`personalize.decisions`)."""
        self.used = True
        engine = self._pz.decisions if self._pz is not None else None
        if engine is None:
            # A configuration mistake must not cost the visitor their page: say it in the log
            # and in the decision's explanation, and render nothing.
            logger.error(
                "personalize: decide(%r) without content: pass content='content/' to "
                "PersonalizeMiddleware",
                slot,
            )
            return Decision(
                slot,
                None,
                Markup(""),
                "",
                Explanation("no content configured on PersonalizeMiddleware"),
            )
        return await engine.decide(self, slot)

    def decide_sync(self, slot: str) -> Decision:
        """:meth:`decide` without a coroutine, for synchronous template engines (Django's,
        Jinja2 without ``enable_async``): deciding a slot does no I/O."""
        self.used = True
        engine = self._pz.decisions if self._pz is not None else None
        if engine is None:
            logger.error("personalize: decide_sync(%r) without content configured", slot)
            why = Explanation("no content configured on PersonalizeMiddleware")
            return Decision(slot, None, Markup(""), "", why)
        return engine.decide_sync(self, slot)

    def _middleware(self) -> PersonalizeMiddleware:
        if self._pz is None or self.id is None:
            raise IdentityError("this visitor cannot be identified (a bot, or no middleware)")
        return self._pz

    @property
    def remembers(self) -> bool:
        """True when this visitor's profile is stored and learned from."""
        return self.mode == "full" and self.id is not None

    def _rebind(self, state: CookieState, stored: Profile | None) -> None:
        self.id = state.visitor_id or None
        self.user_id = state.user_id
        self.mode = "full" if self.id is not None else "context"
        self._stored = stored
        self._view = None
        self._attrs = None
        self._memberships = None
        self.cookie_out = state
        if self._hit is not None:
            self._hit = replace(self._hit, device_id=state.visitor_id) if self.id else None

    async def identify(self, user_id: str, traits: Mapping[str, Any] | None = None) -> Profile:
        """Log the visitor in as ``user_id``: merge their anonymous history into the known
        profile, bind the cookie to the user, and return the merged profile.

        The same request already sees the merged profile. A visitor who is already bound to
        another user is switched to this one without merging the two known profiles.
        Raises :class:`IdentityError` for junk ids ("", "null", "guest", ...).
        """
        if self.mode == "context" and self._pz is not None and not self.is_bot:
            # Opted out, GPC or no consent: the login works, personalize remembers nothing.
            check_user_id(user_id, self._pz.junk_user_ids)
            return self.profile
        pz = self._middleware()
        uid = check_user_id(user_id, pz.junk_user_ids)
        if traits is not None and not isinstance(traits, Mapping):
            raise IdentityError("traits must be a mapping")
        if traits and _depth(dict(traits)) > MAX_DEPTH:
            raise IdentityError(f"traits are nested deeper than {MAX_DEPTH} levels")
        known_key = f"u:{uid}"
        if self.user_id == uid:
            if traits:
                await pz.profiles.flush()
                stored = await pz.profiles.store.update(
                    known_key, _set_traits(known_key, uid, traits, pz.now())
                )
                pz.profiles.remember(known_key, stored)
                self._stored, self._view, self._attrs, self._memberships = stored, None, None, None
            return self.profile
        new_state = CookieState(visitor_id=new_visitor_id(), user_id=uid)
        if self.user_id is not None:
            # Never merge two known profiles implicitly: just switch users.
            await pz.profiles.flush()
            if traits:
                await pz.profiles.store.update(
                    known_key, _set_traits(known_key, uid, traits, pz.now())
                )
            self._rebind(new_state, await pz.profiles.store.get(known_key))
            return self.profile
        anonymous_key = f"v:{self.id}"
        await pz.profiles.flush()  # the merge must include every page view so far
        merged, absorbed = await pz.profiles.store.merge(
            anonymous_key,
            known_key,
            user_id=uid,
            device_id=new_state.visitor_id,
            traits=traits,
            now=pz.now(),
            max_aliases=pz.max_aliases,
        )
        if not absorbed and self._stored is not None and self._stored.page_views:
            logger.warning(
                "personalize: anonymous profile not merged into %s (alias cap %d "
                "reached or already merged)",
                known_key,
                pz.max_aliases,
            )
        pz.profiles.remember(known_key, merged)
        pz.profiles.remember(anonymous_key, None)
        self._rebind(new_state, merged)
        return self.profile

    def logout(self) -> None:
        """Forget who this browser belonged to: a fresh anonymous id, unlinked from the user.

        A shared computer never shows the last user's profile afterwards.
        """
        if self.mode == "context":
            return
        pz = self._middleware()
        self._rebind(CookieState(visitor_id=new_visitor_id(), consent=pz.consent_given(self)), None)

    async def forget(self) -> list[str]:
        """Erase everything stored about this visitor (and the anonymous ids merged into
        their profile) from the store; the browser continues as a new anonymous visitor.
        Returns the keys that were removed."""
        if self.mode == "context":
            return []
        pz = self._middleware()
        removed = await self._erase(pz)
        self._rebind(CookieState(visitor_id=new_visitor_id(), consent=pz.consent_given(self)), None)
        self._hit = None  # this very page view is not recorded either
        return removed

    async def _erase(self, pz: PersonalizeMiddleware) -> list[str]:
        key = self.profile_key or ""
        await pz.profiles.flush()
        removed = await pz.profiles.store.erase(key)
        for k in {key, *removed}:
            pz.profiles.forget(k)
        return removed

    async def opt_out(self) -> list[str]:
        """Stop personalize remembering this visitor, for good: erase what is stored and
        replace the cookie with an opt-out marker that holds no id. Pages are still
        personalized from the request itself (country, device, time...). Returns the erased
        keys."""
        if self._pz is None:
            raise MiddlewareMissingError(_MISSING)
        removed = await self._erase(self._pz) if self.remembers else []
        self._rebind(OPTED_OUT, None)
        return removed

    def opt_in(self) -> None:
        """Undo :meth:`opt_out` (or give consent in consent mode "required"): a fresh
        anonymous id that is remembered from now on."""
        if self.is_bot:
            return  # bots are never remembered (and carry no middleware)
        if self._pz is None:
            raise MiddlewareMissingError(_MISSING)
        if self.remembers:
            return
        self.consent = True
        self._rebind(CookieState(visitor_id=new_visitor_id(), consent=True), None)
        self._hit = self._pz.hit_for(self) if self.id else None

    give_consent = opt_in

    async def track(self, name: str, properties: Mapping[str, Any] | None = None) -> None:
        """Record an event for this visitor: ``order``, ``return``, ``ticket`` (with the
        properties the events API documents) or any custom name.

        Raises :class:`~personalize.events.EventError` for invalid events.
        """
        if self.mode == "context":
            return
        pz = self._middleware()
        kind = name if name in ("order", "return", "ticket") else "custom"
        event = validate_event(kind, dict(properties or {}), name=name, ts=pz.now())
        key = self.profile_key or ""
        if self._stored is None or self._stored.merged_into is not None:
            self._stored = Profile(key=key, user_id=self.user_id)
        else:
            self._stored = copy_profile(self._stored)
        apply_event(self._stored, event)
        if kind == "order" and pz.learning is not None:
            pz.learning.convert(self)
        self._view = None
        self._attrs = None
        self._memberships = None
        await pz.profiles.record(key, event)


def _set_traits(
    key: str, user_id: str, traits: Mapping[str, Any], now: float
) -> Callable[[Profile | None], Profile]:
    def mutate(profile: Profile | None) -> Profile:
        profile = Profile(key=key, user_id=user_id) if profile is None else profile
        for name, value in traits.items():
            profile.traits[str(name)] = value
            profile.trait_times[str(name)] = now
        return profile

    return mutate


def get_visitor(request: Any) -> Visitor:
    """The :class:`Visitor` of a Starlette ``Request`` (or an ASGI ``scope``).

    Raises :class:`MiddlewareMissingError` with a clear message when PersonalizeMiddleware did
    not see this request.
    """
    scope: MutableMapping[str, Any] = request if isinstance(request, dict) else request.scope
    visitor = scope.get("state", {}).get(STATE_KEY)
    if not isinstance(visitor, Visitor):
        raise MiddlewareMissingError(_MISSING)
    return visitor


async def identify(request: Any, user_id: str, traits: Mapping[str, Any] | None = None) -> Profile:
    """Log in the visitor of ``request`` (a Starlette ``Request`` or an ASGI scope) as
    ``user_id``; see :meth:`Visitor.identify`."""
    return await get_visitor(request).identify(user_id, traits)
