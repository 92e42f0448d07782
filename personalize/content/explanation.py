"""What a slot shows (:class:`Decision`) and why it came out as it did (:class:`Explanation`):
the engine's record, for templates, editors and the decisions API.

Visitors get plain words instead (:mod:`personalize.content.wording`).

>>> why = Explanation("no rule matched: the default variants", pinned="welcome")
>>> why.lines()
['no rule matched: the default variants', 'pinned by the editors: welcome']
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from typing import Any

from markupsafe import Markup, escape

from personalize.content.policy import Score
from personalize.util.frozen import fast_init

logger = logging.getLogger("personalize.decisions")
UNCONFIGURED = "no content configured on PersonalizeMiddleware"

__all__ = ["UNCONFIGURED", "Decision", "Explanation", "empty_decision", "unconfigured_decision"]


@fast_init  # built for every decision
@dataclass(frozen=True, slots=True)
class Explanation:
    """Why a decision came out as it did."""

    rule: str  # which mapping entry allowed the variants (or "default")
    reasons: tuple[str, ...] = ()  # why the visitor matched it (segment reasons, conditions)
    suppressed: tuple[tuple[str, str], ...] = ()  # (variant, why) removed by the context
    scores: tuple[Score, ...] = ()  # the expected values compared, best first
    pinned: str | None = None
    note: str = ""
    candidates: tuple[str, ...] = ()  # the variants the rule (or default) allowed, in order
    attributes: frozenset[str] = frozenset()  # what the matching rule read (for plain words)

    def lines(self) -> list[str]:
        out = [self.rule + (f" ({'; '.join(self.reasons)})" if self.reasons else "")]
        out += [f"suppressed {variant}: {why}" for variant, why in self.suppressed]
        if self.pinned:
            out.append(f"pinned by the editors: {self.pinned}")
        out += [s.describe() for s in self.scores]
        return out + ([self.note] if self.note else [])

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "reasons": list(self.reasons),
            "suppressed": dict(self.suppressed),
            "pinned": self.pinned,
            "scores": [_score(s) for s in self.scores],
            "note": self.note,
        }


def _score(s: Score) -> dict[str, Any]:
    variant = s.arm.split("/", 1)[1]
    return {"variant": variant, "p": round(s.mean, 4), "draw": round(s.draw, 4),
            "value": s.value, "score": round(s.score, 4)}  # fmt: skip


@fast_init  # built for every decision
@dataclass(frozen=True, slots=True)
class Decision:
    """What a slot shows: ``html`` (wrapped for the beacon) renders it in a template."""

    slot: str
    variant: str | None
    content: Markup
    decision_id: str
    explanation: Explanation = field(default_factory=lambda: Explanation("nothing decided"))
    # The html once rendered: a session's decision is shown on every page of the visit.
    _html: Markup | None = field(default=None, repr=False, compare=False)

    @property
    def html(self) -> Markup:
        html = self._html
        if html is not None:
            return html
        if self.variant is None:
            return Markup("")
        # What Markup.format does, without its Python-level formatter: text escaped, the
        # content's markup kept (this renders for every decided slot of every page).
        slot, decision_id, content = (
            escape(self.slot),
            escape(self.decision_id),
            escape(self.content),
        )
        html = Markup(
            f'<div data-pz-slot="{slot}" data-pz-decision="{decision_id}">{content}</div>'
        )
        _set_html(self, html)
        return html

    def __html__(self) -> str:
        return str(self.html)

    def to_dict(self) -> dict[str, Any]:
        return {"slot": self.slot, "id": self.decision_id, "variant": self.variant,
                "html": str(self.html), "why": self.explanation.to_dict()}  # fmt: skip


_set_html = vars(Decision)["_html"].__set__  # (writes the slot, past frozen)


def unconfigured_decision(slot: str) -> Decision:
    """What ``slot`` shows on a site without content (a configuration mistake must not cost
    the visitor their page): nothing, said in the log and in the explanation."""
    logger.error(
        "personalize: decide(%r) without content: pass content='content/' to PersonalizeMiddleware",
        slot,
    )
    return Decision(slot, None, Markup(""), "", Explanation(UNCONFIGURED))


def empty_decision(slot: str, note: str, explanation: Explanation | None = None) -> Decision:
    """A decision that shows nothing, and why (``note``)."""
    base = explanation or Explanation("nothing shown")
    return Decision(slot, None, Markup(""), "", replace(base, note=note))
