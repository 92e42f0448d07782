"""Events from other channels (orders, returns, support tickets, custom) and the facts they leave.

Events arrive in-app through ``visitor.track(...)`` or server to server through
``POST /_personalize/events``. Each is validated here, then folded into the profile's
``facts``, which segments and suppression rules read; a ``preference`` (what the visitor
said, :mod:`personalize.profiles.preferences`) goes to ``stated`` instead.

>>> from personalize.profiles.profile import Profile
>>> key, event = parse_event({"type": "order", "user_id": "ann", "ts": 1.7e9,
...                           "properties": {"order_id": "o1", "products": ["p1"], "value": 20}})
>>> key
'u:ann'
>>> p = Profile(key=key)
>>> apply_event(p, event); apply_event(p, event)  # the same order twice counts once
>>> p.facts["purchases"], p.facts["revenue"], p.facts["purchased"]
(1, 20.0, {'p1': 1700000000.0})
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from personalize.exceptions import EventError, IdentityError
from personalize.profiles.bounds import (
    MAX_TOTAL,
    add_amount,
    amount_problem,
    bad_text,
    problem_in,
)
from personalize.profiles.identity import DEFAULT_JUNK_IDS, check_user_id
from personalize.profiles.preferences import check_preferences, state
from personalize.profiles.profile import MAX_EVENTS, Profile
from personalize.profiles.revocation import REVOKE, revoke

MAX_TRACKED_IDS = 200  # order ids / products / tickets remembered per profile
MAX_PROPERTIES_BYTES = 4096
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.:-]{0,63}$")
_ID_MAX = 256


@dataclass(frozen=True, slots=True)
class Event:
    """One validated event. ``kind`` is order, return, ticket, preference or custom."""

    kind: str
    name: str  # "order", "return", "ticket", or the custom event's own name
    ts: float
    properties: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "ts": self.ts, "properties": self.properties}


def _identifier(value: object, name: str) -> str:
    if not isinstance(value, str | int) or isinstance(value, bool):
        raise EventError(f"{name} must be a string")
    text = str(value).strip()
    if not text or len(text) > _ID_MAX or bad_text(text):
        raise EventError(f"{name} must be 1 to {_ID_MAX} printable characters")
    return text


def _profile_id(value: object, name: str, junk: Collection[str]) -> str:
    """A user or visitor id, by the rules :func:`check_user_id` applies at login."""
    try:
        return check_user_id(value, junk)
    except IdentityError as exc:
        raise EventError(f"{name}: {exc}") from None


def _timestamp(value: object) -> float:
    if value is None:
        return time.time()
    if isinstance(value, bool):
        raise EventError("ts must be seconds since the epoch or an ISO 8601 timestamp")
    if isinstance(value, int | float):
        ts = float(value)
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise EventError(f"ts {value[:40]!r} is not an ISO 8601 timestamp") from None
        if parsed.tzinfo is None:
            raise EventError("ts needs a time zone offset (e.g. 2026-11-26T10:00:00+00:00)")
        ts = parsed.timestamp()
    else:
        raise EventError("ts must be seconds since the epoch or an ISO 8601 timestamp")
    if not math.isfinite(ts) or not 946_684_800 <= ts <= time.time() + 86_400:
        raise EventError("ts must be between 2000-01-01 and tomorrow")
    return ts


def _products(props: Mapping[str, Any]) -> list[str]:
    products = props.get("products")
    if not isinstance(products, list) or not products or len(products) > 100:
        raise EventError("properties.products must be a list of 1 to 100 product ids")
    return [_identifier(p, "properties.products[]") for p in products]


def validate_event(
    kind: str,
    properties: object,
    *,
    name: str | None = None,
    ts: object = None,
    categories: Collection[str] = (),
) -> Event:
    """Check one event's fields and return it normalised; raises :class:`EventError`.

    ``categories`` are the site's interest categories, which a ``preference`` may name."""
    if properties is None:
        properties = {}
    if not isinstance(properties, dict):
        raise EventError("properties must be an object")
    problem = problem_in(properties, "properties")
    if problem is not None:
        raise EventError(problem)
    if len(json.dumps(properties)) > MAX_PROPERTIES_BYTES:
        raise EventError(f"properties exceed {MAX_PROPERTIES_BYTES} bytes")
    props = dict(properties)
    when = _timestamp(ts)
    if kind == "order":
        props["order_id"] = _identifier(props.get("order_id"), "properties.order_id")
        props["products"] = _products(props)
        value = props.get("value", 0)
        problem = amount_problem(value, "properties.value")
        if problem is not None:
            raise EventError(problem)
        props["value"] = float(value)
        return Event("order", "order", when, props)
    if kind == "return":
        props["order_id"] = _identifier(props.get("order_id"), "properties.order_id")
        props["products"] = _products(props)
        return Event("return", "return", when, props)
    if kind == "ticket":
        props["ticket_id"] = _identifier(props.get("ticket_id"), "properties.ticket_id")
        status = props.get("status")
        if status not in ("open", "closed"):
            raise EventError("properties.status must be 'open' or 'closed'")
        return Event("ticket", "ticket", when, props)
    if kind == "preference":
        statements = check_preferences(props, categories=categories)
        return Event("preference", "preference", when, statements)
    if kind == "custom":
        if not isinstance(name, str) or not _NAME.match(name):
            raise EventError(
                "name must start with a letter and hold at most 64 letters, digits or _.:-"
            )
        return Event("custom", name, when, props)
    raise EventError(
        f"type must be one of order, return, ticket, preference, custom (got {kind!r:.40})"
    )


def parse_event(
    payload: object, *, categories: Collection[str] = (), junk: Collection[str] = DEFAULT_JUNK_IDS
) -> tuple[str, Event]:
    """Validate one API payload; returns the profile key it targets and the event.

    A payload names ``user_id`` (a known customer) or ``visitor_id`` (an anonymous browser),
    either checked as a login checks a user id (``junk`` are the placeholders refused).
    A ``preference`` without an ``origin`` property says it came through the API.
    """
    if not isinstance(payload, dict):
        raise EventError("each event must be a JSON object")
    user_id, visitor_id = payload.get("user_id"), payload.get("visitor_id")
    if (user_id is None) == (visitor_id is None):
        raise EventError("give exactly one of user_id or visitor_id")
    if user_id is not None:
        key = "u:" + _profile_id(user_id, "user_id", junk)
    else:
        key = "v:" + _profile_id(visitor_id, "visitor_id", junk)
    unknown = set(payload) - {"type", "name", "user_id", "visitor_id", "ts", "properties"}
    if unknown:
        raise EventError(f"unknown fields: {', '.join(sorted(map(str, unknown)))[:200]}")
    kind = payload.get("type")
    if not isinstance(kind, str):
        raise EventError("type is required: order, return, ticket, preference or custom")
    properties = payload.get("properties")
    if kind == "preference" and isinstance(properties, dict) and "origin" not in properties:
        properties = {**properties, "origin": "api"}
    event = validate_event(
        kind, properties, name=payload.get("name"), ts=payload.get("ts"), categories=categories
    )
    return key, event


REVENUE_OVERFLOW = f"properties.value: the profile's revenue would pass {MAX_TOTAL:.0f}"


def revenue_overflow(profile: Profile | None, events: Sequence[Event]) -> int | None:
    """The index of the first of ``events`` whose order would take the profile's revenue
    past MAX_TOTAL (orders it holds already count once), or None when all fit.

    >>> first = Event("order", "order", 1.7e9, {"order_id": "o1", "value": 9e14})
    >>> again = Event("order", "order", 1.7e9, {"order_id": "o2", "value": 9e14})
    >>> revenue_overflow(None, [first, first]), revenue_overflow(None, [first, again])
    (None, 1)
    """
    facts = profile.facts if profile is not None else {}
    seen = set(facts.get("orders") or ())
    total = facts.get("revenue", 0.0)
    total = total if isinstance(total, int | float) and math.isfinite(total) else 0.0
    for index, event in enumerate(events):
        order_id = event.properties.get("order_id") if event.kind == "order" else None
        if order_id is None or order_id in seen:
            continue
        seen.add(order_id)
        total += event.properties["value"]
        if total > MAX_TOTAL:
            return index
    return None


def check_revenue(profile: Profile | None, event: Event) -> None:
    """Raise :class:`EventError` when ``event`` is an order that would take the profile's
    revenue past MAX_TOTAL (see :func:`revenue_overflow`)."""
    if revenue_overflow(profile, [event]) is not None:
        raise EventError(REVENUE_OVERFLOW)


def bounded(d: dict[str, Any], limit: int = MAX_TRACKED_IDS) -> None:
    # Insertion order: the oldest entries go first.
    while len(d) > limit:
        del d[next(iter(d))]


def apply_event(profile: Profile, event: Event) -> None:
    """Fold ``event`` into ``profile.facts`` (idempotent for orders, returns and tickets),
    or a preference into ``profile.stated`` (the newest statement per preference wins)."""
    facts = profile.facts
    props = event.properties
    if event.kind == "preference":
        state(profile, props, ts=event.ts)
        return  # kept in ``stated`` with its time and origin, not in the events list
    if event.kind == REVOKE:  # a logout (internal: validate_event never makes one)
        revoke(profile, props.get("device"))
        return
    if event.kind == "order":
        orders = facts.setdefault("orders", {})
        if props["order_id"] in orders:
            return
        # The sum first: a stored revenue that is not a number fails before anything changed.
        revenue = add_amount(facts.get("revenue", 0.0), props["value"])
        orders[props["order_id"]] = {"ts": event.ts, "value": props["value"]}
        bounded(orders)
        facts["purchases"] = facts.get("purchases", 0) + 1
        facts["revenue"] = revenue
        facts["last_purchase_at"] = max(facts.get("last_purchase_at", 0.0), event.ts)
        purchased = facts.setdefault("purchased", {})
        for product in props["products"]:
            purchased[product] = max(purchased.get(product, 0.0), event.ts)
        bounded(purchased)
    elif event.kind == "return":
        returned = facts.setdefault("returned_orders", {})
        if props["order_id"] in returned:
            return
        returned[props["order_id"]] = event.ts
        bounded(returned)
        facts["returns"] = facts.get("returns", 0) + 1
        facts["last_return_at"] = max(facts.get("last_return_at", 0.0), event.ts)
    elif event.kind == "ticket":
        tickets = facts.setdefault("tickets", {})
        old = tickets.get(props["ticket_id"])
        if old is not None and old["ts"] > event.ts:
            return  # an older status update arriving late
        tickets[props["ticket_id"]] = {"status": props["status"], "ts": event.ts}
        bounded(tickets)
        facts["open_tickets"] = sum(1 for t in tickets.values() if t["status"] == "open")
        facts["last_ticket_at"] = max(facts.get("last_ticket_at", 0.0), event.ts)
    else:
        custom = facts.setdefault("custom", {})
        entry = custom.get(event.name, {"count": 0, "last": 0.0})
        # A new entry rather than an update in place: views share nested values.
        custom[event.name] = {"count": entry["count"] + 1, "last": max(entry["last"], event.ts)}
        bounded(custom)
    profile.events.append(event.to_dict())
    del profile.events[:-MAX_EVENTS]
    profile.last_seen = max(profile.last_seen or event.ts, event.ts)
    if profile.first_seen is None:
        profile.first_seen = event.ts
