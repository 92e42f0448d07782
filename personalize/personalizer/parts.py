"""The parts a :class:`~personalize.personalizer.Personalizer` builds and delegates to: the
default store, the decision engine wired to the state store and the impact log, and
:class:`Outcomes` (conversions, orders from other channels, erasure)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from personalize.content.decisions import DecisionEngine
from personalize.context.records import VisitorContext
from personalize.profiles.cookie import VisitorCookie
from personalize.profiles.events import Event
from personalize.profiles.pageviews import CategoryMap, Hit, make_hit, session_at, session_id
from personalize.rules.segments import SegmentLibrary
from personalize.services.impact import ImpactLog
from personalize.services.profiles import ProfileService
from personalize.services.state import StateService
from personalize.settings import Settings
from personalize.stores.base import ProfileStore

if TYPE_CHECKING:
    from personalize.learning.runtime import LocalLearning, StreamLearning, Visit

__all__ = ["Outcomes", "build_decisions", "default_store", "page_view_of"]


def default_store() -> ProfileStore:
    """The embedded default: SQLite in ``personalize.sqlite3`` in the working directory."""
    from personalize.stores.sqlite import SQLiteStore

    return SQLiteStore("personalize.sqlite3")


def build_decisions(
    settings: Settings,
    segments: SegmentLibrary | None,
    cookies: VisitorCookie,
    state: StateService,
    impact: ImpactLog,
) -> DecisionEngine | None:
    """The decision engine of ``settings.content`` (a folder or an engine), on the shared
    state, reporting exposures to the impact log."""
    given = settings.content
    if given is None:
        return None
    if not isinstance(given, DecisionEngine):
        # Decision ids are signed with a key derived from the cookie secret, so every
        # worker of the site accepts the clicks of every other.
        content = DecisionEngine(
            Path(given),
            segments=segments,
            secret=f"decisions:{cookies.signing_secret}",
            clock=settings.clock,
            holdout=settings.holdout,
            on_exposure=impact.exposed,
        )
    else:
        content = given
        if content.on_exposure is None:
            content.on_exposure = impact.exposed
        if settings.holdout:
            content.default_holdout = settings.holdout
        if content.segments is None and segments is not None:
            content.use_segments(segments)
    content.use_state(state)
    return content


def page_view_of(
    categories: CategoryMap, context: VisitorContext, now: float, device_id: str
) -> Hit:
    """The page view of a request with ``context``, made by browser ``device_id``."""
    device = context.device
    source = context.source
    path = context.path
    # Positional, in field order (ts, path, channel, source, medium, campaign, term,
    # category, device_type, country, device_id, os, browser, hour): this runs for every
    # request.
    return make_hit(
        now,
        path,
        source.channel,
        source.source,
        source.medium,
        source.campaign,
        source.term,
        categories.category(path),
        device.type,
        context.geo.country if context.geo else None,
        device_id,
        device.os,
        device.browser,
        context.clock.hour,
    )


class Outcomes:
    """What happens after a page: conversions, orders from other channels, and erasure of
    everything that names a visitor."""

    def __init__(
        self,
        profiles: ProfileService,
        impact: ImpactLog,
        learning: LocalLearning | StreamLearning | None,
        decisions: DecisionEngine | None,
        clock: Callable[[], float],
    ) -> None:
        self.profiles = profiles
        self.impact = impact
        self.learning = learning
        self._decisions = decisions
        self._clock = clock

    def converted(self, visitor: Visit, value: float = 0.0, *, ref: str = "") -> None:
        """The visitor converted (worth ``value``; ``ref``: an order id, counted once):
        learning labels the session, the impact log attributes it to what they were shown."""
        if not visitor.remembers:
            return
        if self.learning is not None:
            self.learning.convert(visitor)
        if visitor.profile_key:
            self.impact.converted(visitor.profile_key, value, self._clock(), ref=ref)

    async def erase(self, key: str) -> list[str]:
        """Erase profile ``key``, the anonymous profiles merged into it, and the decision
        state that names any of them (caps, session picks, impact counters; aggregate counts
        stay). Returns the profile keys erased."""
        # The decision state first: if deleting it fails, a retry still finds the aliases.
        keys = await self.profiles.linked_keys(key)
        await self._forget_decision_state(keys)
        removed = await self.profiles.erase(key)
        late = [k for k in removed if k not in keys]  # merged in meanwhile
        if late:
            await self._forget_decision_state(late)
        return removed

    async def _forget_decision_state(self, keys: list[str]) -> None:
        if self._decisions is not None and self._decisions.shared is not None:
            await self._decisions.shared.forget(keys)
        await self.impact.forget(keys)

    async def orders_stored(self, events: Mapping[str, Sequence[Event]]) -> int:
        """Orders that reached profiles from another channel (the events API): each is
        attributed to what its profile was shown before it (the impact log, once per order
        id), and converts the session it happened in, when the profile has one open then (an
        order from a phone call converts no web session). Returns how many sessions were
        converted."""
        learning = self.learning
        timeout = self.profiles.session_timeout
        converted = 0
        for key, changes in events.items():
            orders = [e for e in changes if e.kind == "order"]
            if not orders:
                continue
            profile = await self.profiles.load(key)
            if profile is not None and profile.merged_into is not None:
                profile = None  # a merged id's orders stay with it (see split_forwarded)
            unit = key if profile is None else profile.key
            for order in orders:
                value = order.properties.get("value", 0.0)
                ref = str(order.properties.get("order_id", ""))
                self.impact.converted(unit, float(value), order.ts, ref=ref)
            if learning is None or profile is None:
                continue
            for order in orders:
                session = session_at(profile, order.ts, session_timeout=timeout)
                if session is not None:
                    learning.convert_session(session_id(profile, session))
                    converted += 1
        if converted and learning is not None:
            await learning.drain()
        return converted
