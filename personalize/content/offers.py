"""What visitors said about offers, applied to a slot's campaigns (``tags: {campaign: true}``).

- ``stated.promotions: never``: no campaign at all (:func:`~personalize.content.suppression.
  why_suppressed` says "you asked for no offers").
- ``sometimes``: at most one a day. Once a page shows the visitor a campaign, every other
  campaign rests for :data:`FEWER_OFFERS` (counted like a frequency cap, on the arm
  :data:`OFFERS_ARM` of the engine's exposure log); the slot that shows it keeps it for the
  rest of that visit, so the page does not flicker.
- ``often`` (or nothing said): as the editors' mapping and the caps decide.
- A visit keeps its pick of a slot unless what the visitor said since removes other variants
  (:func:`asked_away`): then the slot is decided again, and its explanation says why.
- ``stated.history: false``: a campaign shows only if the mapping would allow it without the
  attributes inferred from browsing (:data:`~personalize.rules.stated.HISTORY`), so nothing
  the visitor looked at picks an offer for them.

>>> from personalize.content.library import ContentLibrary
>>> slot = ContentLibrary.from_data({"hero": {"variants": [
...     {"id": "sale", "html": "Sale", "tags": {"campaign": True}}, {"id": "hi", "html": "Hi"}],
...     "rules": [{"when": {"attribute": "affinity.shoes", "operator": "gte", "value": 3},
...                "variants": ["sale"]}], "default": ["hi"]}}).slots["hero"]
>>> allowed_without_history(slot, {"affinity.shoes": 5.0, "stated.history": False}, None)
frozenset({'hi'})
>>> allowed_without_history(slot, {"affinity.shoes": 5.0}, None) is None
True
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from personalize.content.mapping import Members, match_rule
from personalize.content.slots import Cap, Slot
from personalize.rules.stated import history_blind

if TYPE_CHECKING:
    from personalize.rules.segments import SegmentLibrary

__all__ = [
    "ASKED",
    "FEWER_OFFERS",
    "NO_HISTORY",
    "OFFERS_ARM",
    "allowed_without_history",
    "asked_away",
    "fewer_offers",
]

OFFERS_ARM = "*/offers"  # not a slot/variant: slot names cannot start with "*"
FEWER_OFFERS = Cap(views=1, rest_hours=24.0)
ASKED = "you asked"  # how every reason that comes from what the visitor said begins
NO_HISTORY = f"{ASKED} us not to use your browsing history for offers"


def fewer_offers(attrs: Mapping[str, Any]) -> bool:
    """True when the visitor asked for offers only sometimes."""
    return attrs.get("stated.promotions") == "sometimes"


def allowed_without_history(
    slot: Slot, attrs: Mapping[str, Any], segments: SegmentLibrary | None
) -> frozenset[str] | None:
    """The variants the slot's mapping allows when nothing inferred from browsing is known,
    if the visitor said not to use their history for offers (else None)."""
    if attrs.get("stated.history") is not False:
        return None
    blind = history_blind(attrs)
    return frozenset(match_rule(slot, blind, Members(None, segments, blind))[3])


def asked_away(suppressed: Iterable[tuple[str, str]]) -> frozenset[str]:
    """The variants among ``suppressed`` (variant, why) that the visitor's own words removed.

    >>> asked_away([("sale", "you asked for no offers"), ("tent", "outside its schedule")])
    frozenset({'sale'})
    """
    return frozenset(variant for variant, why in suppressed if why.startswith(ASKED))
