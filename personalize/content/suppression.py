"""Context beats blind next best offer: which variants a visitor must not see, and why.

Five checks, in order, each with a sentence for the explanation:

- **stated**: a campaign, and the visitor asked for no offers (``stated.promotions: never``;
  "sometimes" rests campaigns through ``resting_until``, see :mod:`~personalize.content.offers`);
- **schedule**: outside the variant's window in the visitor's local time;
- **recent purchase**: the variant promotes a product (``tags.products``) the visitor bought
  within ``suppress_purchased_days`` (per slot, else the engine's setting);
- **open ticket**: a campaign (``tags.campaign: true``) and the visitor has an open support
  ticket;
- **frequency cap**: seen ``cap.views`` times without a click, it rests ``cap.rest_hours``.

Frequency-cap state (views since the last click, rest until) is kept per visitor and arm. A
:class:`~personalize.Personalizer` keeps it in the state every worker shares
(:class:`~personalize.content.shared.SharedExposures`): views on any worker count, and a restart
keeps them. An engine on its own keeps it in memory (:class:`ExposureLog`, a bounded LRU): a
restart forgets it, and each worker counts its own views. Rewards for learning do not depend on
it.

>>> from personalize.content.slots import Variant
>>> v = Variant("boots", products=("boots-42",))
>>> why_suppressed(v, {"now": 10 * DAY, "purchased_at.boots-42": 8 * DAY}, Clock(),
...                purchased_days=30, resting_until=None)
'promotes boots-42, bought 2 days ago (within 30 days)'
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from personalize.content.offers import (
    ASKED,
    NO_HISTORY,
    OFFERS_ARM,
    allowed_without_history,
    fewer_offers,
)
from personalize.content.slots import Cap, Slot, Variant
from personalize.context.records import Clock

if TYPE_CHECKING:
    from personalize.content.explanation import Decision
    from personalize.content.shared import SharedExposures
    from personalize.content.subject import Subject
    from personalize.rules.segments import SegmentLibrary

DAY = 86_400.0  # seconds
Kind = Literal["asked", "schedule", "purchase", "ticket", "cap", "other"]
# How each check's sentence begins (suppression_kind reads them back).
_STARTS: tuple[tuple[str, Kind], ...] = (
    ("outside its schedule", "schedule"),
    ("promotes ", "purchase"),
    ("a campaign, and the visitor has an open support ticket", "ticket"),
    ("frequency cap:", "cap"),
    (ASKED, "asked"),
)


def why_suppressed(
    variant: Variant,
    attrs: Mapping[str, Any],
    clock: Clock,
    *,
    purchased_days: float,
    resting_until: float | None,
    asked: bool = False,
) -> str | None:
    """Why ``variant`` must not be shown to this visitor, or None when it may.

    ``resting_until`` is when a frequency cap lets it show again; ``asked`` says the rest is
    the one the visitor asked for (fewer offers), not the editors' cap."""
    if variant.campaign and attrs.get("stated.promotions") == "never":
        return f"{ASKED} for no offers"
    if variant.schedule is not None and not variant.schedule.active(clock):
        day = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")[clock.weekday]
        local = f"{day} {clock.hour:02d}:{clock.minute:02d} {clock.time_zone}"
        return f"{_STARTS[0][0]} ({variant.schedule.describe()}; local time {local})"
    now = attrs.get("now")
    if variant.products and isinstance(now, int | float):
        for product in variant.products:
            bought = attrs.get(f"purchased_at.{product}")
            if isinstance(bought, int | float) and now - bought <= purchased_days * DAY:
                ago = (now - bought) / DAY
                within = f"within {purchased_days:g} days"
                return f"{_STARTS[1][0]}{product}, bought {ago:.0f} days ago ({within})"
    if variant.campaign:
        tickets = attrs.get("open_tickets")
        if isinstance(tickets, int | float) and tickets > 0:
            return _STARTS[2][0]
    if resting_until is not None:
        until = datetime.fromtimestamp(resting_until, UTC).strftime("%Y-%m-%d %H:%M UTC")
        if asked:
            return f"{ASKED} for fewer offers: one a day at most (the next after {until})"
        return f"{_STARTS[3][0]} seen without a click, resting until {until}"
    return None


class SlotPlan:
    """What the suppression pass knows of a slot before any visitor: the variants no check
    can remove (no campaign, schedule, products or cap: shown whenever a rule allows them,
    with nothing to count) and each variant's arm name (``<slot>/<variant>``)."""

    __slots__ = ("arms", "free", "slot")

    def __init__(self, slot: Slot) -> None:
        self.slot = slot
        self.arms = {vid: f"{slot.name}/{vid}" for vid in slot.variants}
        self.free = frozenset(
            vid
            for vid, v in slot.variants.items()
            if not (v.campaign or v.products or v.schedule is not None)
            and v.cap is None
            and slot.cap is None
        )


def allowed_variants(
    plan: SlotPlan,
    candidates: tuple[str, ...],
    visitor: Subject,
    who: str,
    now: float,
    cached: Decision | None,
    exposures: ExposureLog | SharedExposures,
    segments: SegmentLibrary | None,
    purchased_days: float,
) -> tuple[list[str], list[tuple[str, str]]]:
    """Of a slot's ``candidates`` for ``visitor`` (profile key ``who``), those that may show
    (ids, in order) and those removed with why: the checks above, in order, and the offers
    the visitor cannot be shown without history (:mod:`~personalize.content.offers`).
    ``cached`` is the session's decision, if any (its offer keeps its place in the visit);
    ``purchased_days`` applies where the slot sets none."""
    slot, attrs = plan.slot, visitor.attributes
    free, names = plan.free, plan.arms
    clock = visitor.context.clock
    days = slot.suppress_purchased_days
    days = purchased_days if days is None else days
    blind = allowed_without_history(slot, attrs, segments)
    fewer = fewer_offers(attrs)
    ids: list[str] = []
    removed: list[tuple[str, str]] = []
    for vid in candidates:
        if vid in free:
            ids.append(vid)
            continue
        variant = slot.variants[vid]
        if variant.campaign and blind is not None and vid not in blind:
            removed.append((vid, NO_HISTORY))
            continue
        rest = None
        if variant.cap is not None or slot.cap is not None:
            rest = exposures.resting_until(who, names[vid], now)
        # Fewer offers: one a day, kept by the slot that shows it for the rest of the visit.
        asked = fewer and variant.campaign and (cached is None or cached.variant != vid)
        if asked:
            asked_rest = exposures.resting_until(who, OFFERS_ARM, now)
            asked, rest = asked_rest is not None, asked_rest or rest
        why = why_suppressed(
            variant, attrs, clock, purchased_days=days, resting_until=rest, asked=asked
        )
        if why is None:
            ids.append(vid)
        else:
            removed.append((vid, why))
    return ids, removed


def suppression_kind(why: str) -> Kind:
    """Which check a sentence of :func:`why_suppressed` comes from.

    >>> suppression_kind("frequency cap: seen without a click"), suppression_kind("other")
    ('cap', 'other')
    """
    return next((kind for start, kind in _STARTS if why.startswith(start)), "other")


class ExposureLog:
    """Views since the last click per (visitor, variant), in memory, for frequency caps."""

    def __init__(self, max_visitors: int = 100_000) -> None:
        self.max_visitors = max_visitors
        # visitor key -> arm -> [views since click, last counted view (request ts), rest until]
        self._log: OrderedDict[str, dict[str, list[float]]] = OrderedDict()
        self._lock = threading.Lock()

    def resting_until(self, visitor: str, arm: str, now: float) -> float | None:
        """When the arm's rest ends, if it is resting now."""
        entry = self._log.get(visitor, {}).get(arm)
        if entry is None or entry[2] <= now:
            return None
        return entry[2]

    def seen(self, visitor: str, arm: str, cap: Cap | None, *, now: float, request: float) -> None:
        """Count a view; ``request`` (the page view's time) counts one view per page."""
        if cap is None:
            return
        with self._lock:
            arms = self._log.get(visitor)
            if arms is None:
                arms = self._log[visitor] = {}
                while len(self._log) > self.max_visitors:
                    self._log.popitem(last=False)
            else:
                self._log.move_to_end(visitor)
            entry = arms.setdefault(arm, [0.0, -1.0, 0.0])
            if entry[1] == request:
                return  # the same page asked twice
            if entry[2] and entry[2] <= now:
                entry[0], entry[2] = 0.0, 0.0  # the rest is over: start counting again
            entry[0] += 1
            entry[1] = request
            if entry[0] >= cap.views:
                entry[2] = now + cap.rest_hours * 3600.0

    def clicked(self, visitor: str, arm: str) -> None:
        """A click resets the count: the visitor wants it."""
        with self._lock:
            entry = self._log.get(visitor, {}).get(arm)
            if entry is not None:
                entry[0], entry[2] = 0.0, 0.0
