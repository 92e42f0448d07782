"""The records content files load into: slots, their variants, caps and mapping rules.

>>> Slot("hero", {"a": Variant("a")}, (), ("a",)).default
('a',)
>>> Variant("uk_free-delivery").label, Variant("tent", label="Trail Tent 2").label
('Uk free delivery', 'Trail Tent 2')
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import jinja2
from markupsafe import Markup

from personalize.content.schedule import Schedule
from personalize.rules.rule import Rule

__all__ = ["NAME", "Cap", "MappingRule", "Slot", "Variant", "label_from_id"]

NAME = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")


def label_from_id(name: str) -> str:
    """A human name for an id an editor gave no ``label:``: ``free_returns`` -> ``Free returns``."""
    words = name.replace("_", " ").replace("-", " ").strip()
    return words[:1].upper() + words[1:]


@dataclass(frozen=True, slots=True)
class Cap:
    """Frequency cap: after ``views`` exposures without a click the variant rests."""

    views: int
    rest_hours: float


@dataclass(frozen=True, slots=True)
class Variant:
    """One thing a slot can show; ``label`` names it for visitors (default: from the id)."""

    id: str
    html: Markup | None = None  # inline HTML or rendered Markdown: the same for everyone
    template: jinja2.Template | None = None  # rendered per visitor
    value: float = 1.0
    products: tuple[str, ...] = ()
    campaign: bool = False
    schedule: Schedule | None = None
    cap: Cap | None = None
    origin: str = ""
    label: str = ""

    def __post_init__(self) -> None:
        if not self.label:
            object.__setattr__(self, "label", label_from_id(self.id))


@dataclass(frozen=True, slots=True)
class MappingRule:
    """One entry of a slot's ordered mapping: who (segment and/or condition) -> variants."""

    variants: tuple[str, ...]
    segment: str | None = None
    when: Rule | None = None
    pin: str | None = None
    origin: str = ""


@dataclass(frozen=True, slots=True)
class Slot:
    name: str
    variants: Mapping[str, Variant]
    rules: tuple[MappingRule, ...]
    default: tuple[str, ...]
    pin: str | None = None
    reward: Literal["click", "conversion"] = "click"
    long_term_weight: float | None = None  # None: the engine's setting
    suppress_purchased_days: float | None = None  # None: the engine's setting
    cap: Cap | None = None
    origin: str = ""
    description: str = ""  # the editors' words for where it is ("Big banner on the home page")
    holdout: float = 0.0  # a share held out of this slot alone, besides the site's holdout
