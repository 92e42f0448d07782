"""What the visitor stated, as rule attributes that take precedence over what was inferred.

:func:`put_stated` runs last in :func:`~personalize.rules.attributes.build_attributes`, for
profiles with statements only. It adds the ``stated.*`` attributes and makes the inferred ones
agree with them: an interest asked to see less of is zero and never the ``top_category``
(a category asked to see more of is, before any other), a stated language is the
``language``, without location there is no geo, and a disowned cluster is no cluster. A
segment the visitor said is not them is left out by
:meth:`~personalize.rules.segments.SegmentLibrary.evaluate` (it reads ``stated.not_me``).

>>> attrs = {"affinity.shoes": 0.0, "affinity.outdoor": 1.0, "top_category": "outdoor",
...          "country": "GB", "language": "en", "languages": frozenset({"en"})}
>>> put_stated(attrs, {"interest.shoes": {"value": "more", "ts": 1.0, "origin": "me"},
...                    "location": {"value": False, "ts": 1.0, "origin": "me"}})
>>> attrs["stated.interest"], attrs["top_category"], attrs["stated.location"], "country" in attrs
(frozenset({'shoes'}), 'shoes', False, False)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["HISTORY", "NOT_ME", "history_blind", "put_stated"]

NOT_ME = "stated.not_me"  # segments the visitor said are not them
GEO = ("country", "region", "city", "continent", "time_zone")
#: Attributes inferred from browsing: what "don't use my browsing history for offers" leaves
#: out (with every ``affinity.<category>``).
HISTORY = frozenset(
    {
        "visits",
        "sessions_count",
        "sessions_30d",
        "page_views",
        "session_page_views",
        "entry_channel",
        "entry_source",
        "entry_campaign",
        "landing_page",
        "first_seen",
        "last_seen",
        "days_since_first_seen",
        "days_since_last_visit",
        "top_category",
        "propensity",
        "cluster",
        "anomaly",
        "anomalous",
        "unusual",  # the visitor's norms are counted from their past visits
        "unusual_why",
    }
)


def put_stated(attrs: dict[str, Any], stated: Mapping[str, Mapping[str, Any]]) -> None:
    """Add the visitor's statements to ``attrs`` and let them overrule what was inferred."""
    more: list[tuple[float, str]] = []
    less: set[str] = set()
    not_me: set[str] = set()
    for name, entry in stated.items():
        value = entry.get("value")
        if value is None:
            continue
        family, _, rest = name.partition(".")
        if family == "interest":
            if value == "more":
                more.append((entry.get("ts") or 0.0, rest))
            else:
                less.add(rest)
        elif family == "segment":
            not_me.add(rest)
        elif family == "cluster":
            if "cluster" in attrs and str(attrs["cluster"]) == rest:
                del attrs["cluster"]
        elif name == "language" and isinstance(value, str):
            attrs["stated.language"] = value
            attrs["language"] = value.split("-", 1)[0]
            attrs["languages"] = frozenset({value, attrs["language"]}) | attrs.get(
                "languages", frozenset()
            )
        elif name in ("promotions", "location", "history"):
            attrs[f"stated.{name}"] = value
    if attrs.get("stated.location") is False:
        for geo in GEO:
            attrs.pop(geo, None)
    if less:
        attrs["stated.less"] = frozenset(less)
        for category in less:
            attrs[f"affinity.{category}"] = 0.0
    if more:
        attrs["stated.interest"] = frozenset(c for _, c in more)
        # The stated interest viewed most (then the one said last) is the top category.
        attrs["top_category"] = max(more, key=lambda m: (attrs.get(f"affinity.{m[1]}", 0.0), m))[1]
    elif attrs.get("top_category") in less:
        _top_without(attrs, less)
    if not_me:
        attrs[NOT_ME] = frozenset(not_me)


def _top_without(attrs: dict[str, Any], less: set[str]) -> None:
    views = [
        (-value, name[9:])
        for name, value in attrs.items()
        if name.startswith("affinity.") and name[9:] not in less and value > 0
    ]
    if views:
        attrs["top_category"] = min(views)[1]
    else:
        del attrs["top_category"]


def history_blind(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """``attrs`` without what was inferred from browsing (for "not for offers").

    >>> history_blind({"country": "GB", "visits": 3, "affinity.shoes": 2.0})
    {'country': 'GB'}
    """
    return {k: v for k, v in attrs.items() if k not in HISTORY and not k.startswith("affinity.")}
