"""The decision engine: what each slot shows this visitor, and why.

For one slot: the first mapping rule the visitor matches (segment and/or condition) names the
allowed variants, else the slot's default; :mod:`~personalize.content.suppression` removes
those the context forbids, and :mod:`~personalize.content.offers` the offers the visitor said
no to; a pin wins if it survived; otherwise
:class:`~personalize.content.policy.ThompsonPolicy` picks by expected value (probability of the
reward x value) in the visitor's context bucket (device type / entry channel). The decision is
cached per (visitor, session, slot), and with shared state every worker keeps the session's
first pick: the page does not flicker, and a visitor counts as one exposure per session. The
Thompson draw is seeded with a hash of (visitor id, session start, slot), so even a restarted
worker decides the same.

Nothing here does I/O: counters, caps and session picks are read from memory (in this
process, or from the state every worker shares, :mod:`~personalize.content.shared`, which the
:class:`~personalize.Personalizer` reads for a visitor before their page and writes after it),
so :meth:`DecisionEngine.decide_sync` can be called from a synchronous Jinja2 template (see
:func:`personalize.templating.install`);
``await visitor.decide("hero")`` and ``decide_all`` are the async faces of the same call. An
unknown slot or a failing template gives an empty :class:`Decision` with the reason, logged.
The engine decides for a :class:`Subject`: a :class:`~personalize.Visitor`, or a
:class:`Preview` (an editor's simulated visitor, the /me page's explanations), for which
nothing is recorded.

A decision id is ``slot.variant.bucket.nonce.signature``: any worker that shares ``secret``
can attribute a click or conversion to the (variant, bucket) without shared state.

>>> from personalize.content.library import ContentLibrary
>>> from personalize.context.records import VisitorContext
>>> from personalize.content.subject import Preview
>>> from personalize.profiles.profile import Profile
>>> engine = DecisionEngine(ContentLibrary.from_data({"hero": {
...     "variants": [{"id": "a", "html": "<b>A</b>"}], "default": ["a"]}}))
>>> d = engine.decide_sync(Preview({}, Profile(key="preview"), VisitorContext()), "hero")
>>> d.variant, d.content, d.explanation.lines()[0]
('a', Markup('<b>A</b>'), 'no rule matched: the default variants')
"""

from __future__ import annotations

import logging
import random
import secrets as _secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from markupsafe import Markup

from personalize.content.decision_ids import DecisionIds
from personalize.content.draws import decision_random
from personalize.content.explanation import Decision as Decision  # re-exported: it lived here
from personalize.content.explanation import Explanation as Explanation  # (and this)
from personalize.content.explanation import empty_decision as _empty
from personalize.content.holdout import (
    HELD_OUT,
    HOLDOUT,
    PERSONALIZED,
    Exposure,
    site_held_out,
    slot_held_out,
)
from personalize.content.library import ContentLibrary
from personalize.content.mapping import (
    LazyNames,
    Matches,
    Members,
    Memo,
    render_variant,
    rule_attributes,
    rule_label,
    rule_reasons,
)
from personalize.content.offers import FEWER_OFFERS, OFFERS_ARM, asked_away, fewer_offers
from personalize.content.policy import Score, ThompsonPolicy
from personalize.content.shared import SharedDecisionState, SharedExposures
from personalize.content.slots import Slot, Variant
from personalize.content.subject import Subject
from personalize.content.suppression import ExposureLog, SlotPlan, allowed_variants
from personalize.content.wording import plain_reasons

if TYPE_CHECKING:
    from personalize.rules.segments import SegmentLibrary
    from personalize.services.state import StateService

logger = logging.getLogger("personalize.decisions")
KEPT = "kept for the session (picked on an earlier page)"


class DecisionEngine:
    """Decides slots for visitors from a content folder (or :class:`ContentLibrary`).

    ``long_term_weight`` and ``suppress_purchased_days`` apply where a slot does not set its
    own. ``rng`` seeds the engine's salt for the per-visitor draws (so tests reproduce);
    ``secret`` signs decision ids (give every worker the same one; default: per process).
    ``holdout`` is the site's holdout share (a content file's top-level ``holdout:`` wins);
    ``on_exposure`` hears of each new decision while a holdout is on (see
    :mod:`personalize.content.holdout`).
    """

    def __init__(
        self,
        content: ContentLibrary | str | Path,
        *,
        segments: SegmentLibrary | None = None,
        policy: ThompsonPolicy | None = None,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.time,
        secret: str | None = None,
        long_term_weight: float = 0.0,
        suppress_purchased_days: float = 30.0,
        cache_size: int = 100_000,
        holdout: float = 0.0,
        on_exposure: Callable[[Exposure], None] | None = None,
    ) -> None:
        if not isinstance(content, ContentLibrary):
            content = ContentLibrary(content, segments=segments)
        self.library = content
        self.segments = segments
        self._own_policy = policy is None
        self.policy = policy or ThompsonPolicy(long_term_weight=long_term_weight)
        self.long_term_weight = long_term_weight
        self.suppress_purchased_days = suppress_purchased_days
        self.exposures: ExposureLog | SharedExposures = ExposureLog()
        self.shared: SharedDecisionState | None = None
        self._salt = (rng or random.Random(0)).getrandbits(64).to_bytes(8, "big")
        self._ids = DecisionIds(secret or _secrets.token_urlsafe(32))
        self.counts = {"decisions": 0, "errors": 0}  # for the metrics endpoint
        self._clock = clock
        self._cache: OrderedDict[tuple[str, float, str, int], Decision] = OrderedDict()
        self._cache_size = cache_size
        self._counted: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._memo: Memo | None = None  # the last visitor's rules and segments, for the next slot
        self._matches: Matches | None = None  # each slot's matching rule, by what it reads
        self._plans: dict[str, SlotPlan] = {}  # each slot's suppression plan
        self.default_holdout = holdout  # Settings.holdout: used when no content file sets one
        self.on_exposure = on_exposure

    @property
    def holdout(self) -> float:
        """The site's holdout share: a content file's, else :attr:`default_holdout`."""
        shared = self.library.holdout
        return self.default_holdout if shared is None else shared

    def use_segments(self, segments: SegmentLibrary) -> None:
        """Check the mapping's segment names against ``segments`` and evaluate with them
        (for an engine built before the site's segments were loaded)."""
        self.segments = segments
        self.library.segments = segments
        self.library.reload_if_changed(force=True)

    def use_state(self, state: StateService) -> None:
        """Keep counters, caps and session picks in ``state``, shared by every worker (the
        :class:`~personalize.Personalizer` calls it; a policy given to the constructor keeps
        its own store)."""
        self.shared = SharedDecisionState(state)
        if self._own_policy:
            self.policy.store = self.shared.policy
        self.exposures = self.shared.exposures

    async def prepare(self, visitor_key: str, session_started: float, path: str = "") -> None:
        """Read a visitor's caps and session picks from the shared state before their page
        on ``path``, where they are not cached (decisions themselves never wait): of the
        slots that path decided before (:class:`~personalize.content.shared.PageSlots`),
        none if it decided none, every slot for a path not known ("")."""
        shared, library = self.shared, self.library
        if shared is not None:
            slots = shared.pages.get(path, library.version) if path else None
            if slots != frozenset():
                await shared.prepare(visitor_key, session_started, slots or library.slots)

    def ready(self, visitor_key: str, session_started: float, path: str) -> bool:
        """True when :meth:`prepare` would read nothing for this page (asked first, without
        a coroutine: the copies are fresh, or the change feed vouches for them)."""
        shared = self.shared
        if shared is None:
            return True
        slots = shared.pages.get(path, self.library.version)
        if slots == frozenset():
            return True
        return shared.ready(visitor_key, session_started, slots or self.library.slots)

    def reads_before(self, path: str) -> bool:
        """Whether a page on ``path`` reads shared state before it runs (:meth:`prepare`)."""
        shared = self.shared
        return shared is not None and shared.pages.get(path, self.library.version) != frozenset()

    def decided_on(self, path: str, slots: Iterable[str]) -> None:
        """Remember that a page on ``path`` decided ``slots`` (what :meth:`prepare` reads)."""
        if self.shared is not None:
            self.shared.pages.add(path, self.library.version, slots)

    async def decide(self, visitor: Subject, slot: str) -> Decision:
        """The decision for ``slot``; never raises (see :meth:`decide_sync`)."""
        return self.decide_sync(visitor, slot)

    async def decide_all(self, visitor: Subject, slots: Iterable[str]) -> dict[str, Decision]:
        """Several slots at once, e.g. before rendering a page."""
        return {name: self.decide_sync(visitor, name) for name in slots}

    def plain_reasons(self, decision: Decision, visitor: Subject) -> list[str]:
        """Why ``decision`` shows what it shows, in words for the visitor themselves: no ids,
        numbers or file names (see :mod:`personalize.content.wording`)."""
        geo = visitor.context.geo
        return plain_reasons(
            decision.variant,
            decision.explanation,
            self.library.slots.get(decision.slot),
            visitor.attributes,
            country_name=geo.country_name if geo is not None else None,
        )

    def decide_sync(self, visitor: Subject, name: str) -> Decision:
        """The decision for slot ``name``; an error gives an empty decision with the reason."""
        self.counts["decisions"] += 1
        try:
            return self._decide(visitor, name)
        except Exception as exc:  # never cost the visitor their page
            self.counts["errors"] += 1
            logger.exception("personalize: slot %r could not be decided", name)
            return _empty(name, f"error: {type(exc).__name__}: {exc}")

    def _decide(self, visitor: Subject, name: str) -> Decision:
        library = self.library
        library.reload_if_changed()
        slot = library.slots.get(name)
        if slot is None:
            logger.warning("personalize: unknown slot %r", name)
            return _empty(name, f"unknown slot {name!r} (slots: {', '.join(library.slots)})")
        plan = self._plans.get(name)
        if plan is None or plan.slot is not slot:
            plan = self._plans[name] = SlotPlan(slot)
        attrs = visitor.attributes
        segments = self.segments
        installed = segments.installed if segments is not None else None
        memo = self._memo
        if memo is None or not memo.fits(attrs, installed, library.version):
            matches = self._matches
            if matches is None or not matches.fits(segments, installed, library.version):
                matches = self._matches = Matches(segments, installed, library.version)
            memo = self._memo = Memo(attrs, installed, library.version, matches)
        done = visitor.evaluated_segments
        members = Members(done, segments, attrs, memo.known)
        entry = memo.rule(slot, members, done=done is not None)
        rule = rule_label(entry)
        candidates = slot.default if entry is None else entry.variants
        unit = visitor.profile_key
        share = self.holdout
        arm = site_arm = PERSONALIZED  # the comparison group: the holdout's draws, if any
        if unit is not None and share > 0 and site_held_out(unit, share):
            arm = site_arm = HOLDOUT
        elif unit is not None and slot.holdout > 0 and slot_held_out(unit, name, slot.holdout):
            arm = HOLDOUT
        if arm == HOLDOUT:  # (the slot's default, as if no rule matched)
            rule, candidates, matched = HELD_OUT, slot.default, rule
        known = visitor.id is not None
        session = visitor.profile.current_session if known else None
        started = session.started if session is not None else 0.0
        who = unit or ""
        key = (who, started, name, library.version)
        now = self._clock()
        cached = self._cache.get(key) if known else None
        shared = self.shared if known else None
        found = shared.pick(who, started, name) if shared is not None else None
        picked = found[0] if found is not None and found[1] == rule else None
        if cached is not None and picked is not None and cached.variant != picked:
            cached = None  # another worker picked first: the session keeps theirs
        removed: list[tuple[str, str]] = []
        if plan.free.issuperset(candidates):  # nothing to check: every one may show
            ids = list(candidates)
        else:
            days, exposures = self.suppress_purchased_days, self.exposures
            ids, removed = allowed_variants(plan, candidates, visitor, who, now, cached,
                                            exposures, self.segments, days)  # fmt: skip
        if (  # the session's pick, while the same rule allows it and nothing else changed
            cached is not None
            and cached.explanation.rule == rule
            and cached.variant in ids
            and (
                not (removed or cached.explanation.suppressed)
                or asked_away(cached.explanation.suppressed) == asked_away(removed)
            )
        ):
            if cached.variant not in plan.free:
                self._seen(visitor, who, slot, slot.variants[cached.variant or ""], now)
            return cached
        # A new decision: its explanation, with the reasons (not needed for the cached one).
        reasons = () if arm == HOLDOUT or entry is None else rule_reasons(entry, attrs, members)
        read = rule_attributes(entry, segments)
        if not ids:
            explanation = Explanation(rule, reasons, tuple(removed), candidates=candidates,
                                      attributes=read)  # fmt: skip
            return _empty(name, "every allowed variant was suppressed", explanation)
        bucket = f"{attrs.get('device_type', 'other')}/{attrs.get('entry_channel', 'direct')}"
        pin = (entry.pin if entry is not None and entry.pin else slot.pin) or ""
        scores: tuple[Score, ...] = ()
        pinned, note = None, ""
        if arm == HOLDOUT:
            rng = self._rng(visitor.id, started, name) if visitor.id is not None else None
            chosen = ids[rng.randrange(len(ids)) if rng is not None else 0]
            note = f"held out; would have matched: {matched}"
        elif pin and pin in ids:
            chosen = pinned = pin
        elif picked is not None and picked in ids:
            chosen, note = picked, KEPT
        else:
            variants, names = slot.variants, plan.arms
            arms = {names[vid]: variants[vid].value for vid in ids}
            one = len(ids) == 1  # (a single arm is scored without a draw)
            rng = None if one or visitor.id is None else self._rng(visitor.id, started, name)
            weight = slot.long_term_weight
            weight = self.long_term_weight if weight is None else weight
            ranked = self.policy.scores(arms, context=bucket, rng=rng, long_term_weight=weight)
            chosen = ranked[0].arm.split("/", 1)[1]
            scores, note = tuple(ranked), f"pin {pin} was suppressed" if pin else ""
        explanation = Explanation(rule, reasons, tuple(removed), scores, pinned, note,
                                  candidates, read)  # fmt: skip
        variant = slot.variants[chosen]
        content = variant.html
        if variant.template is not None:
            content = render_variant(variant, visitor, LazyNames(members.names))
        if visitor.id is None:  # bots: no id, no learning
            return Decision(name, chosen, content or Markup(""), "", explanation)
        decision_id = self._ids.sign(name, chosen, bucket, who, started)
        decision = Decision(name, chosen, content or Markup(""), decision_id, explanation)
        if chosen != picked:  # one exposure per session: the worker that picked counted it
            if arm == PERSONALIZED:  # the holdout's defaults teach the policy nothing
                self.policy.expose(plan.arms[chosen], bucket)
            if shared is not None:  # (instead of a pick found: one this rule does not allow)
                shared.keep_pick(who, started, name, chosen, rule, replace=found is not None)
        if chosen not in plan.free:
            self._seen(visitor, who, slot, variant, now)
        if self.on_exposure is not None and (share > 0 or slot.holdout > 0):
            segment = "(default)" if entry is None else entry.segment or "(condition)"
            self.on_exposure(Exposure(who, name, chosen, arm, site_arm, segment, now))
        self._cache[key] = decision
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return decision

    def _seen(self, visitor: Subject, who: str, slot: Slot, variant: Variant, now: float) -> None:
        if visitor.id is None:
            return
        cap = variant.cap or slot.cap
        page = visitor.profile.last_seen or now
        if cap is not None:
            self.exposures.seen(who, f"{slot.name}/{variant.id}", cap, now=now, request=page)
        if variant.campaign and fewer_offers(visitor.attributes):
            self.exposures.seen(who, OFFERS_ARM, FEWER_OFFERS, now=now, request=page)

    def _rng(self, visitor_id: str, started: float, slot: str) -> random.Random:
        return decision_random(f"{visitor_id}|{started!r}|{slot}", self._salt)

    def record(
        self, decision_id: str, kind: str, *, visitor_key: str = "", value: float = 0.0
    ) -> str:
        """Attribute a ``click`` or ``conversion`` to its decision; returns what was done.

        Raises ValueError for an id this engine did not sign. Each (decision, kind) counts once.
        """
        slot_name, variant, bucket = self._ids.verify(decision_id)
        if (decision_id, kind) in self._counted:
            return "already counted"
        self._counted[(decision_id, kind)] = None
        while len(self._counted) > self._cache_size:
            self._counted.popitem(last=False)
        arm = f"{slot_name}/{variant}"
        if kind == "click" and visitor_key:
            self.exposures.clicked(visitor_key, arm)
        slot = self.library.slots.get(slot_name)
        if kind == (slot.reward if slot is not None else "click"):
            self.policy.update(arm, 1.0, context=bucket, value=value)
            return f"rewarded {arm} in {bucket}"
        self.policy.store.add(f"{arm}|{kind}", rewards=1.0, value=value)  # for reports only
        return f"counted {kind} for {arm}"
