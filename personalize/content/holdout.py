"""The holdout: a share of visitors who see every slot's default content, to measure against.

Membership is a pure function of the visitor's profile key: the user id once they logged in
(so a stitched user keeps one arm on every device), else the anonymous visitor id. The site
holdout (``Settings.holdout``, or a content file's top-level ``holdout:``) sees defaults on every
slot; a slot's own ``holdout:`` holds back a further, independent share on that slot alone.
A share is 0 (none) or from :data:`MIN_SHARE` to :data:`MAX_SHARE`.

>>> site_held_out("u:ann", 0.1) == site_held_out("u:ann", 0.1)
True
>>> sum(site_held_out(f"v:{i}", 0.1) for i in range(10_000))  # about 10 %
999
>>> check_share(0.5, "holdout")
Traceback (most recent call last):
...
personalize.exceptions.ConfigurationError: holdout is 0 (none) or a share from 0.05 to 0.2, not 0.5
"""

from __future__ import annotations

import hashlib
import math

from personalize.exceptions import ConfigurationError
from personalize.services.impact import Arm, Exposure

__all__ = [
    "HELD_OUT",
    "HOLDOUT",
    "MAX_SHARE",
    "MIN_SHARE",
    "PERSONALIZED",
    "Arm",
    "Exposure",
    "check_share",
    "share_problem",
    "site_held_out",
    "slot_held_out",
]

MIN_SHARE, MAX_SHARE = 0.05, 0.2
PERSONALIZED: Arm = "personalized"
HOLDOUT: Arm = "holdout"
HELD_OUT = "held out: the default variants (the holdout group personalization is measured against)"
_SCALE = float(1 << 64)


def share_problem(value: object) -> str | None:
    """What is wrong with a holdout share, or None (0, or 0.05 to 0.2).

    >>> share_problem(0.1), share_problem(0), share_problem(True)
    (None, None, 'holdout is 0 (none) or a share from 0.05 to 0.2, not True')
    """
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if ok and (value == 0 or MIN_SHARE <= value <= MAX_SHARE):  # type: ignore[operator]
        return None
    shown = repr(value)[:40]
    return f"holdout is 0 (none) or a share from {MIN_SHARE:g} to {MAX_SHARE:g}, not {shown}"


def check_share(value: object, what: str = "holdout") -> float:
    """``value`` as a share, or :class:`ConfigurationError` naming ``what``."""
    problem = share_problem(value)
    if problem is not None:
        raise ConfigurationError(problem.replace("holdout", what, 1))
    return float(value)  # type: ignore[arg-type]


def _draw(unit: str, salt: str) -> float:
    """A uniform number in [0, 1) that only ``unit`` and ``salt`` decide."""
    digest = hashlib.blake2b(f"{salt}|{unit}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / _SCALE


def site_held_out(unit: str, share: float) -> bool:
    """True when the visitor with profile key ``unit`` is in the site's holdout."""
    return share > 0 and _draw(unit, "pz-holdout") < share


def slot_held_out(unit: str, slot: str, share: float) -> bool:
    """True when ``unit`` is held out of slot ``slot`` by the slot's own holdout (a draw
    independent of the site's and of other slots')."""
    return share > 0 and _draw(unit, f"pz-holdout/{slot}") < share
