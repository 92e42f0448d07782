"""The application object: one site's personalization, built from its :class:`Settings`.

A :class:`Personalizer` owns the parts and wires them together: the visitor cookie, the
context builder, the profile service in front of the store, the segments, the decision
engine, learning, and the router of the built-in endpoints. It turns an ASGI scope into a
:class:`~personalize.Visitor` and records the page view after the response; everything
HTTP (headers, routing requests to endpoints) is the middleware's
(:class:`~personalize.PersonalizeMiddleware`), which builds or receives one.

>>> personalizer = Personalizer(secret_key="change-me-to-32-random-characters",
...                             store=__import__("personalize").MemoryStore())
>>> personalizer.excluded("/static/app.css"), personalizer.excluded("/")
(True, False)
>>> personalizer.exclusion.match("/static/app.css") is not None
True
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from fnmatch import translate
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.types import Scope

from personalize.content.decisions import DecisionEngine
from personalize.context.builder import ContextBuilder, read_headers
from personalize.context.records import VisitorContext
from personalize.personalizer.parts import Outcomes, build_decisions, default_store, page_view_of
from personalize.profiles.changes import FORWARD_GRACE
from personalize.profiles.cookie import OPTED_OUT, CookieState, VisitorCookie, new_visitor_id
from personalize.profiles.events import Event
from personalize.profiles.identity import anonymous_key, known_key
from personalize.profiles.pageviews import CategoryMap, Hit, session_start
from personalize.profiles.preferences import location_used, stated_language
from personalize.profiles.profile import Profile
from personalize.profiles.revocation import admits
from personalize.routing import Router
from personalize.rules.segments import SegmentLibrary
from personalize.services.impact import ImpactLog
from personalize.services.nearcache import MISSING, Missing
from personalize.services.profiles import ProfileService
from personalize.services.state import StateService
from personalize.settings import Settings
from personalize.visitor import ContextOnly, Visitor

if TYPE_CHECKING:
    from personalize.learning.runtime import Visit

#: What visitor_now leaves to visitor_for: the visitor and the state to read, or nothing.
Pending = tuple[Visitor, tuple[str, float]] | None

__all__ = ["Personalizer"]

logger = logging.getLogger("personalize")


class Personalizer:
    """One site's personalization; ``Personalizer(settings)`` or ``Personalizer(**options)``
    with the fields of :class:`Settings`."""

    def __init__(self, settings: Settings | None = None, /, **options: Any) -> None:
        if settings is None:
            settings = Settings(**options)
        elif options:
            raise TypeError("give Settings or keyword options, not both")
        self.settings = settings
        self._clock = settings.clock
        self._consent_required = settings.consent == "required"
        self.cookies = VisitorCookie(
            settings.secret_key,
            max_age=settings.cookie_max_age,
            name=settings.cookie_name,
            path=settings.cookie_path,
            domain=settings.cookie_domain,
            same_site=settings.cookie_same_site,
            secure=settings.cookie_secure,
            clock=settings.clock,
        )
        store = default_store() if settings.store is None else settings.store
        store.session_timeout = settings.session_timeout
        self.profiles = ProfileService(
            store,
            junk_user_ids=settings.junk_user_ids,
            max_aliases=settings.max_aliases,
            cache_size=settings.profile_cache_size,
            flush_interval=settings.flush_interval,
        )
        self.state = StateService(
            settings.state_store or store.state_store(),
            flush_interval=settings.flush_interval,
            cache_ttl=settings.state_cache_ttl,
            cache_size=settings.state_cache_size,
        )
        # Exposures and attributed outcomes of the holdout comparison, in the state store.
        self.impact = ImpactLog(
            self.state.store,
            window=settings.attribution_window,
            flush_interval=settings.flush_interval,
        )
        self.context = ContextBuilder(
            geoip_db=settings.geoip_db,
            trusted_proxies=settings.trusted_proxies,
            internal_hosts=settings.internal_hosts,
            site_time_zone=settings.site_time_zone,
            client_hints=settings.client_hints,
            cdn_geo=settings.cdn_geo,
        )
        self.categories = CategoryMap(settings.categories or {})
        segments = settings.segments
        if segments is not None and not isinstance(segments, SegmentLibrary):
            segments = SegmentLibrary(Path(segments))
        self._segments: SegmentLibrary | None = segments
        content = build_decisions(settings, segments, self.cookies, self.state, self.impact)
        self._decisions: DecisionEngine | None = content
        self.learning = settings.learning
        if self.learning is not None:
            self.learning.use_store(self.state)
        self.outcomes = Outcomes(self.profiles, self.impact, self.learning, content, self._clock)
        patterns = list(settings.exclude)
        # The excluded paths as one pattern (``exclusion.match(path)``), None without any.
        self.exclusion = re.compile("|".join(map(translate, patterns))) if patterns else None
        self.router = Router(settings.path_prefix)
        self.counts = {"remembered": 0, "context": 0, "bot": 0, "error": 0}
        self._closed = False

    def __repr__(self) -> str:
        return f"<Personalizer {self.profiles.store!r} prefix={self.router.prefix!r}>"

    # -- what a Visitor asks of its site ---------------------------------------------------

    @property
    def segments(self) -> SegmentLibrary | None:
        return self._segments

    @property
    def decisions(self) -> DecisionEngine | None:
        return self._decisions

    def now(self) -> float:
        """The current time in seconds, from the configured clock."""
        return self._clock()

    def learned_scores(self, visitor: Visit) -> Mapping[str, Any] | None:
        """Scores of the learned models for segment rules (a cluster named by its name)."""
        if self.learning is None or not visitor.remembers:
            return None
        scores = self.learning.scores(visitor)
        cluster = scores.get("cluster")
        if cluster is not None and self._segments is not None:
            scores["cluster"] = self._segments.cluster_label(cluster)
        return scores

    def converted(self, visitor: Visit, value: float = 0.0, *, ref: str = "") -> None:
        """The visitor converted (worth ``value``; ``ref``: an order id, counted once):
        learning labels the session, the impact log attributes it to what they were shown."""
        self.outcomes.converted(visitor, value, ref=ref)

    async def erase(self, key: str) -> list[str]:
        """Erase profile ``key``, the anonymous profiles merged into it, and the decision
        state that names any of them (caps, session picks, impact counters; aggregate counts
        stay). Returns the profile keys erased."""
        return await self.outcomes.erase(key)

    async def orders_stored(self, events: Mapping[str, Sequence[Event]]) -> int:
        """Orders that reached profiles from another channel (the events API), attributed and
        learned (see :meth:`Outcomes.orders_stored`); how many sessions were converted."""
        return await self.outcomes.orders_stored(events)

    def page_view(self, context: VisitorContext, now: float, device_id: str) -> Hit:
        """The page view of a request with ``context``, made by browser ``device_id``."""
        return page_view_of(self.categories, context, now, device_id)

    # -- the request path ------------------------------------------------------------------

    def excluded(self, path: str) -> bool:
        """True when ``path`` skips personalization (static files, health checks...)."""
        return self.exclusion is not None and self.exclusion.match(path) is not None

    def fallback(self) -> Visitor:
        """The visitor of a request whose own could not be built: defaults, nothing stored."""
        self.counts["error"] += 1
        return Visitor(None, None, VisitorContext(), False, site=self)

    async def visitor_for(self, scope: Scope, built: Pending = None) -> Visitor:
        """The visitor of an HTTP request: identity from the cookie, context, stored profile.

        Never raises for what the request carries (a bad cookie is a new visitor); an
        unreachable store serves the page without it. ``built``: :meth:`visitor_now`'s."""
        now = self._clock()
        found = built or self._visitor(scope, now, MISSING)
        if isinstance(found, str):
            stored, unavailable = None, False
            try:
                stored = await self.profiles.load(found)
            except Exception as exc:  # an outage: keep the identity, show default content
                message = "personalize: profile store unavailable (%s); serving the page without it"
                logger.warning(message, exc)
                unavailable = True
            found = self._visitor(scope, now, stored, unavailable=unavailable)
            assert not isinstance(found, str)  # (given the stored profile, it is a visitor)
        visitor, prepare = found
        decisions = self._decisions
        if prepare is not None and decisions is not None:
            # Caps and session picks other workers counted: read before the page decides.
            await decisions.prepare(*prepare, scope["path"])
        return visitor

    def visitor_now(self, scope: Scope) -> Visitor | Pending:
        """:meth:`visitor_for` without a coroutine (this runs for every request): the
        visitor, or what to give :meth:`visitor_for` to read the store for it first."""
        found = self._visitor(scope, self._clock(), MISSING)
        if isinstance(found, str):
            return None
        (visitor, prepare), decisions = found, self._decisions
        if prepare is None or decisions is None or decisions.ready(*prepare, scope["path"]):
            return visitor
        return visitor, prepare

    def _visitor(
        self,
        scope: Scope,
        now: float,
        stored: Profile | Missing | None,
        *,
        unavailable: bool = False,
    ) -> tuple[Visitor, tuple[str, float] | None] | str:
        """The visitor of a request and what shared decision state to read for it first (the
        profile key and the session's start), or the key of the profile to read when
        ``stored`` is :data:`MISSING` and the cache does not hold it (``unavailable``: the
        store could not be read)."""
        listed = scope.get("headers", ())
        raw = dict(listed) if type(listed) is list else {}
        if len(raw) == len(listed):  # no header repeated: the raw bytes are the memo key
            context = self.context.memoized(scope, raw, now)
            loaded = self.cookies.read(raw.get(b"cookie"))
        else:
            headers = read_headers(scope, self.context.wanted)
            context = self.context.build(scope, headers, now)
            loaded = self.cookies.load(self.cookies.find(headers.get(b"cookie")))
        if not context.device.is_browser:
            # Bots, and whatever is not a plausible browser (no User-Agent, "x", HTTP
            # libraries), get no id, no cookie, no profile, and never feed learning.
            self.counts["bot"] += 1
            return self._context_only(context, "bot"), None
        state = loaded.state
        if (state is not None and state.opted_out) or context.signals.gpc:
            # Context-only for good: no id, no profile; the cookie only says "opted out".
            self.counts["context"] += 1
            visitor = self._context_only(context, "gpc" if context.signals.gpc else "opted_out")
            if state is None or not state.opted_out or loaded.reissue:
                visitor.cookie_out = OPTED_OUT
            return visitor, None
        if self._consent_required and (state is None or not state.consent):
            # Until the visitor consents: personalize from the request, persist nothing.
            self.counts["context"] += 1
            return self._context_only(context, "no_consent", is_new=state is None), None
        if state is None:
            self.counts["remembered"] += 1
            return self._new_visitor(context, now, consent=False), None
        user_id = state.user_id
        key = known_key(user_id) if user_id is not None else anonymous_key(state.visitor_id)
        if stored is MISSING:
            stored = self.profiles.cached(key)
            if stored is MISSING:
                return key
        self.counts["remembered"] += 1
        if unavailable:
            stored = None
        elif user_id is not None and (
            stored is None or not admits(stored, state.visitor_id, state.epoch)
        ):
            # A login cookie whose profile was erased, or that a logout revoked: a new
            # anonymous visitor, and nothing of the user is read or recreated.
            return self._new_visitor(context, now, consent=state.consent), None
        if stored is not None and stored.merged_into is not None:
            # This anonymous id was merged at a login: it never reads the known profile.
            # Requests in flight during the login still count (they are forwarded);
            # after that the browser starts over as a new anonymous visitor.
            if now > (stored.merged_at or 0.0) + FORWARD_GRACE:
                return self._new_visitor(context, now, consent=state.consent), None
            stored = None
        if stored is not None and stored.stated:
            # What the visitor said beats what the request says: no geo, their language.
            context = self.context.as_stated(
                context, now, use_geo=location_used(stored), language=stated_language(stored)
            )
        hit = page_view_of(self.categories, context, now, state.visitor_id)
        visitor = Visitor(
            state.visitor_id, user_id, context, False, stored, hit, self, state.consent
        )
        if loaded.reissue:
            visitor.cookie_out = state
        decisions = self._decisions
        if decisions is not None and decisions.shared is not None:
            timeout = self.profiles.session_timeout
            return visitor, (key, session_start(stored, now, session_timeout=timeout))
        return visitor, None

    def _context_only(
        self, context: VisitorContext, why: ContextOnly, *, is_new: bool = False
    ) -> Visitor:
        return Visitor(
            visitor_id=None,
            user_id=None,
            context=context,
            is_new=is_new,
            site=self,
            context_only=why,
        )

    def _new_visitor(self, context: VisitorContext, now: float, *, consent: bool) -> Visitor:
        state = CookieState(visitor_id=new_visitor_id(), consent=consent)
        visitor = Visitor(
            visitor_id=state.visitor_id,
            user_id=None,
            context=context,
            is_new=True,
            hit=page_view_of(self.categories, context, now, state.visitor_id),
            site=self,
            consent=consent,
        )
        visitor.cookie_out = state
        return visitor

    async def record(self, visitor: Visitor, *, page_view: bool = True) -> None:
        """After a page's response: record its page view and let learning see it (with
        ``page_view=False``, after any other response: write what the visitor queued)."""
        if not page_view:
            await self.profiles.write_behind()
        elif self.record_now(visitor):
            await self.record_rest(visitor)

    def record_now(self, visitor: Visitor) -> bool:
        """What :meth:`record` does without awaiting (this runs for every page view): the
        page view is accepted into the write buffer. True when the rest is due: then
        ``await record_rest(visitor)`` (a write batch to start, learning)."""
        recorded = visitor.page_view()
        if recorded is None:
            return visitor.pending_write
        key, hit, read = recorded
        try:
            write = self.profiles.enqueue(key, hit, new=visitor.is_new, read=read)
        except Exception:
            logger.exception("personalize: could not record a page view")
            write = False
        return write or self.learning is not None

    async def record_rest(self, visitor: Visitor) -> None:
        """The part of :meth:`record` that awaits, after :meth:`record_now` said it is due."""
        try:
            await self.profiles.write_behind()
        except Exception:
            logger.exception("personalize: could not record a page view")
        if self.learning is not None and visitor.page_view() is not None:
            try:
                self.learning.observe(visitor)
                await self.learning.drain()
            except Exception:
                logger.exception("personalize: learning failed for a page view")

    async def stored_profile(self, visitor: Visitor) -> Profile | None:
        """What the store holds for ``visitor`` (with changes not written yet), or None."""
        key = visitor.profile_key
        if key is None or not visitor.remembers:
            return None
        profile = await self.profiles.load(key)
        if profile is None or profile.merged_into is not None:
            return None
        return profile

    async def start(self) -> None:
        """At start-up (the ASGI lifespan's): learning resumes from its newest snapshot."""
        if self.learning is not None:
            try:
                await self.learning.restore()
            except Exception:
                logger.exception("personalize: could not restore the learned models")

    async def aclose(self) -> None:
        """Write pending profile updates and release the store and the GeoIP reader.

        Once is enough: the middleware calls it at the lifespan's shutdown, and a second call
        (an app that closes it itself too) does nothing."""
        if self._closed:
            return
        self._closed = True
        if self.learning is not None:
            try:
                await self.learning.aclose()  # its last snapshot goes to the state store
            except Exception:
                logger.exception("personalize: could not save the learned models")
        await self.impact.aclose()  # before the state store it writes to closes
        await self.state.aclose()  # first: it may share the profile store's connections
        await self.profiles.aclose()
        self.context.close()
