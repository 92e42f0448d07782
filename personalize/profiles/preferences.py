"""Stated preferences: what visitors say about themselves, which beats what was inferred.

A statement is an event of kind ``preference`` (from ``/me``, ``visitor.track`` or the events
API), folded by :func:`~personalize.profiles.events.apply_event` into ``Profile.stated``. Being
an event, it travels the path every other change takes to every store (write-behind, change
logs, forwarding after a login, merges, erasure, export) and no store needs to know about it.
``Profile.stated`` maps each preference to its newest statement, ``{"value", "ts",
"origin"}``; a withdrawn statement keeps ``value: None``, so that withdrawing on one device
still beats an older statement from another when the two profiles merge at login.

======================  ==========================  ==================================
preference              values (``null`` withdraws)  effect
======================  ==========================  ==================================
``interest.<category>`` ``more`` or ``less``         ``less``: the inferred interest is
                                                     dropped and stays at zero
``promotions``          never, sometimes, often      how many offers the visitor sees
``language``            a language tag (``fr-ch``)   beats Accept-Language
``location``            ``true`` or ``false``        ``false``: no geo for this visitor
``history``             ``true`` or ``false``        ``false``: no offers chosen by
                                                     browsing history
``segment.<name>``      ``not_me``                   never in that segment again
``cluster.<id>``        ``not_me``                   never in that learned cluster again
``norms``               ``not_me``                   usual visits forgotten and no longer
                                                     counted (no ``unusual``)
======================  ==========================  ==================================

>>> from personalize.profiles.profile import Profile
>>> p = Profile(key="v:1", affinities={"shoes": 3.0, "bags": 1.0})
>>> state(p, {"interest.shoes": "less", "promotions": "never", "origin": "me"}, ts=100.0)
>>> p.affinities, stated_value(p.stated, "promotions"), p.stated["promotions"]["origin"]
({'bags': 1.0}, 'never', 'me')
>>> state(p, {"promotions": "often", "origin": "api"}, ts=50.0)  # older: the newer one stays
>>> stated_value(p.stated, "promotions")
'never'
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import replace
from typing import Any

from personalize.exceptions import EventError
from personalize.profiles.profile import Profile

__all__ = [
    "PROMOTIONS",
    "check_preferences",
    "location_used",
    "merge_stated",
    "norms_used",
    "state",
    "stated_language",
    "stated_value",
    "wants_less",
]

PROMOTIONS = ("never", "sometimes", "often")
INTEREST = ("more", "less")
NOT_ME = "not_me"
MAX_STATED = 200  # statements kept per profile; withdrawn ones are dropped first
MAX_PER_EVENT = 50
FAMILIES = ("interest.", "segment.", "cluster.")
KNOWN = (
    "promotions, language, location, history, norms, interest.<category>, segment.<name>, "
    "cluster.<id>"
)
_CATEGORY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
_SEGMENT = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_CLUSTER = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
_LANGUAGE = re.compile(r"^[a-z]{2,3}(-[a-z0-9]{1,8}){0,3}$")
_ORIGIN = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")


def check_preferences(
    properties: Mapping[str, Any], *, categories: Collection[str] = (), origin: str = "site"
) -> dict[str, Any]:
    """The statements of one ``preference`` event, normalised, with their ``origin``.

    ``categories`` are the site's own (``interest.<category>`` must be one of them when it
    has any; any safe name otherwise). Raises :class:`EventError` listing every problem.

    >>> check_preferences({"promotions": "Never", "language": "fr-CH", "location": False})
    {'promotions': 'never', 'language': 'fr-ch', 'location': False, 'origin': 'site'}
    >>> check_preferences({"interest.hats": "more", "colour": "red"}, categories=["shoes"])
    Traceback (most recent call last):
    ...
    personalize.exceptions.EventError: interest.hats: unknown category 'hats' (the site's \
categories: shoes); colour: unknown preference (known: promotions, language, location, history, \
norms, interest.<category>, segment.<name>, cluster.<id>)
    """
    out: dict[str, Any] = {}
    problems: list[str] = []
    given = dict(properties)
    raw_origin = given.pop("origin", origin)
    if not isinstance(raw_origin, str) or not _ORIGIN.match(raw_origin):
        problems.append("origin must be a lower-case name such as call_centre")
    if not given:
        problems.append("a preference event states at least one preference")
    elif len(given) > MAX_PER_EVENT:
        problems.append(f"at most {MAX_PER_EVENT} preferences per event")
    for name, value in given.items():
        try:
            out[str(name)] = _checked(str(name), value, categories)
        except EventError as exc:
            problems.append(f"{str(name)[:80]}: {exc}")
    if problems:
        raise EventError("; ".join(problems))
    out["origin"] = raw_origin
    return out


def _checked(name: str, value: object, categories: Collection[str]) -> Any:
    if isinstance(value, str):
        value = value.strip().lower()
    if name == "promotions":
        return _choice(value, PROMOTIONS)
    if name == "norms":
        return _choice(value, (NOT_ME,))
    if name in ("location", "history"):
        if value is None or isinstance(value, bool):
            return value
        raise EventError("must be true, false or null")
    if name == "language":
        if value is None or (isinstance(value, str) and _LANGUAGE.match(value)):
            return value
        raise EventError("must be a language tag such as en, fr or de-ch (or null)")
    family, _, rest = name.partition(".")
    if family == "interest" and rest:
        if categories and rest not in categories:
            known = ", ".join(sorted(categories))[:200]
            raise EventError(f"unknown category {rest[:40]!r} (the site's categories: {known})")
        if not categories and not _CATEGORY.match(rest):
            raise EventError("a category is 1 to 64 letters, digits or _.:-")
        return _choice(value, INTEREST)
    if family in ("segment", "cluster") and rest:
        pattern = _SEGMENT if family == "segment" else _CLUSTER
        if not pattern.match(rest):
            raise EventError(f"{rest[:40]!r} is not a {family} name")
        return _choice(value, (NOT_ME,))
    raise EventError(f"unknown preference (known: {KNOWN})")


def _choice(value: object, choices: tuple[str, ...]) -> str | None:
    if value is None or (isinstance(value, str) and value in choices):
        return value
    raise EventError(f"must be one of {', '.join(choices)} (or null to withdraw)")


def _newer(new: Mapping[str, Any], old: Mapping[str, Any] | None) -> bool:
    """Whether statement ``new`` beats ``old``: the newest wins, ties broken by content so
    that every order of applying and merging ends the same."""
    if old is None:
        return True
    if new["ts"] != old["ts"]:
        return bool(new["ts"] > old["ts"])
    return repr((new["value"], new["origin"])) > repr((old["value"], old["origin"]))


def state(profile: Profile, statements: Mapping[str, Any], *, ts: float) -> None:
    """Fold what :func:`check_preferences` returned, said at ``ts``, into ``profile``.

    Each statement replaces the stored one of its name only if it is newer; the entries are
    new dicts, never changed in place (copies of a profile share them).
    """
    origin = statements.get("origin", "site")
    stated = profile.stated
    for name, value in statements.items():
        if name == "origin":
            continue
        entry = {"value": value, "ts": ts, "origin": origin}
        if _newer(entry, stated.get(name)):
            stated[name] = entry
    _bound(stated)
    enforce(profile)


def merge_stated(target: Profile, source: Profile) -> None:
    """Combine the statements of two profiles at login: per preference, the newest wins."""
    for name, entry in source.stated.items():
        if _newer(entry, target.stated.get(name)):
            target.stated[name] = dict(entry)
    _bound(target.stated)
    enforce(target)


def _bound(stated: dict[str, Any]) -> None:
    if len(stated) <= MAX_STATED:
        return
    # Withdrawn statements go first, then the oldest.
    order = sorted(stated, key=lambda n: (stated[n]["value"] is not None, stated[n]["ts"]))
    for name in order[: len(stated) - MAX_STATED]:
        del stated[name]


def enforce(profile: Profile) -> None:
    """Make what was inferred agree with what was stated: interests asked to see less of
    are dropped, usual visits said not to be me are forgotten, and without location the
    countries of past visits are forgotten."""
    stated = profile.stated
    if not stated:
        return
    for name, entry in stated.items():
        if entry["value"] == "less" and name.startswith("interest."):
            profile.affinities.pop(name[9:], None)
    if profile.norms and not norms_used(profile):
        profile.norms = {}
    if not location_used(profile):
        # New records: copies of a profile share the older sessions.
        profile.sessions = [replace(s, country=None) if s.country else s for s in profile.sessions]


def stated_value(stated: Mapping[str, Any], name: str) -> Any:
    """The value the visitor stated for ``name`` (None when they said nothing or withdrew)."""
    entry = stated.get(name)
    return None if entry is None else entry["value"]


def wants_less(stated: Mapping[str, Any], category: str) -> bool:
    """True when the visitor asked to see less of ``category`` (its interest stays at zero)."""
    entry = stated.get("interest." + category)
    return entry is not None and entry["value"] == "less"


def location_used(profile: Profile) -> bool:
    """False when the visitor said not to use their location."""
    entry = profile.stated.get("location")
    return entry is None or entry["value"] is not False


def norms_used(profile: Profile) -> bool:
    """False when the visitor said their usual visits are not them (nothing is counted)."""
    entry = profile.stated.get("norms")
    return entry is None or entry["value"] is None


def stated_language(profile: Profile) -> str | None:
    """The language the visitor chose, if they did."""
    value = stated_value(profile.stated, "language")
    return value if isinstance(value, str) else None
