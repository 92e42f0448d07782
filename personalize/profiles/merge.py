"""Identity stitching's arithmetic: folding an anonymous profile into a known one.

>>> from personalize.profiles.profile import Profile
>>> known = Profile(key="u:ann", visits=2, page_views=5, affinities={"shoes": 3.0},
...                 first_seen=500.0, last_seen=900.0)
>>> anon = Profile(key="v:x1", visits=1, page_views=2, affinities={"shoes": 1.0, "bags": 1.0},
...                first_seen=100.0, last_seen=200.0)
>>> merge_profiles(known, anon)
>>> known.visits, known.page_views, known.affinities, known.first_seen, known.last_seen
(3, 7, {'shoes': 4.0, 'bags': 1.0}, 100.0, 900.0)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from personalize.profiles.bounds import add_amount
from personalize.profiles.events import bounded
from personalize.profiles.norms import count_session, merge_norms
from personalize.profiles.preferences import merge_stated
from personalize.profiles.profile import MAX_DEVICES, MAX_EVENTS, MAX_SESSIONS, Profile

MAX_ALIASES = 50  # anonymous ids merged into one known profile before merges are refused


def merge_profiles(target: Profile, source: Profile) -> None:
    """Fold the anonymous ``source`` into the known ``target`` in place.

    Counters add, first_seen takes the minimum and last_seen the maximum, affinities add,
    session and event histories concatenate in time order (bounded), devices combine, and a
    trait keeps the value that was set most recently, as a stated preference does; what was
    stated then applies to the whole merged history (an interest asked to see less of stays
    at zero).

    >>> known = Profile(key="u:ann", visits=2, page_views=5, affinities={"shoes": 3.0},
    ...                 first_seen=500.0, last_seen=900.0)
    >>> anon = Profile(key="v:x1", visits=1, page_views=2, affinities={"shoes": 1.0, "bags": 1.0},
    ...                first_seen=100.0, last_seen=200.0)
    >>> merge_profiles(known, anon)
    >>> known.visits, known.page_views, known.affinities, known.first_seen, known.last_seen
    (3, 7, {'shoes': 4.0, 'bags': 1.0}, 100.0, 900.0)
    """
    target.visits += source.visits
    target.page_views += source.page_views
    target.first_seen = _min(target.first_seen, source.first_seen)
    target.last_seen = _max(target.last_seen, source.last_seen)
    for category, views in source.affinities.items():
        target.affinities[category] = target.affinities.get(category, 0.0) + views
    ends = [p.sessions[-1] for p in (target, source) if p.sessions]
    target.sessions = sorted([*target.sessions, *source.sessions], key=lambda s: s.started)[
        -MAX_SESSIONS:
    ]
    merge_norms(target.norms, source.norms)
    for session in ends:  # a profile's last session is not in its norms yet
        if session is not target.sessions[-1]:
            count_session(target.norms, session)
    for name, value in source.traits.items():
        when = source.trait_times.get(name, 0.0)
        if name not in target.traits or when > target.trait_times.get(name, 0.0):
            target.traits[name] = value
            target.trait_times[name] = when
    for device_id, device in source.devices.items():
        mine = target.devices.get(device_id)
        if mine is None or device.get("last_seen", 0) > mine.get("last_seen", 0):
            target.devices[device_id] = dict(device)
    while len(target.devices) > MAX_DEVICES:
        oldest = min(target.devices, key=lambda d: target.devices[d].get("last_seen", 0))
        del target.devices[oldest]
    target.events = sorted([*target.events, *source.events], key=lambda e: e.get("ts", 0))[
        -MAX_EVENTS:
    ]
    merge_facts(target.facts, source.facts)
    merge_stated(target, source)
    target.opted_out = target.opted_out or source.opted_out


def _min(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else min(a, b)


def _max(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else max(a, b)


def merge_facts(target: dict[str, Any], source: Mapping[str, Any]) -> None:
    """Combine the facts of two profiles (used when an anonymous profile is merged)."""
    # Orders: each order id counts once, even when both profiles saw it.
    orders = target.setdefault("orders", {})
    source_orders: Mapping[str, Any] = source.get("orders", {})
    for order_id, order in source_orders.items():
        if order_id not in orders:
            orders[order_id] = dict(order)
            target["purchases"] = target.get("purchases", 0) + 1
            target["revenue"] = add_amount(target.get("revenue", 0.0), order["value"])
    # Orders the source already forgot (beyond MAX_TRACKED_IDS) still count.
    evicted = source.get("purchases", 0) - len(source_orders)
    if evicted > 0:
        target["purchases"] = target.get("purchases", 0) + evicted
        kept = sum(o["value"] for o in source_orders.values())
        forgotten = float(source.get("revenue", 0.0)) - kept
        target["revenue"] = add_amount(target.get("revenue", 0.0), forgotten)
    bounded(orders)
    for name in ("last_purchase_at", "last_return_at", "last_ticket_at"):
        if name in source:
            target[name] = max(target.get(name, 0.0), source[name])
    purchased = target.setdefault("purchased", {})
    for product, ts in source.get("purchased", {}).items():
        purchased[product] = max(purchased.get(product, 0.0), ts)
    bounded(purchased)
    returned = target.setdefault("returned_orders", {})
    new_returns = [k for k in source.get("returned_orders", {}) if k not in returned]
    for order_id in new_returns:
        returned[order_id] = source["returned_orders"][order_id]
    bounded(returned)
    if new_returns:
        target["returns"] = target.get("returns", 0) + len(new_returns)
    tickets = target.setdefault("tickets", {})
    for ticket_id, ticket in source.get("tickets", {}).items():
        if ticket_id not in tickets or ticket["ts"] > tickets[ticket_id]["ts"]:
            tickets[ticket_id] = dict(ticket)
    bounded(tickets)
    if tickets:
        target["open_tickets"] = sum(1 for t in tickets.values() if t["status"] == "open")
    custom = target.setdefault("custom", {})
    for name, entry in source.get("custom", {}).items():
        mine = custom.setdefault(name, {"count": 0, "last": 0.0})
        mine["count"] += entry["count"]
        mine["last"] = max(mine["last"], entry["last"])
    for empty in [k for k, v in target.items() if v == {}]:
        del target[empty]
