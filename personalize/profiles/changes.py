"""What the request path writes to a profile: page views and events, and how stores log them.

A :data:`Change` is a page view (:class:`~personalize.profiles.pageviews.Hit`) or an event
(:class:`~personalize.profiles.events.Event`). Stores append changes to a log and fold them in
later (:func:`fold_changes`); the log keeps them in the compact form :func:`encode_change`
gives.

>>> from personalize.profiles.pageviews import Hit
>>> decode_change(encode_change(Hit(ts=1.5, path="/"))) == Hit(ts=1.5, path="/")
True
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import replace
from operator import attrgetter
from typing import Any

import orjson

from personalize.profiles.events import Event, apply_event
from personalize.profiles.identity import user_id_of, visitor_id_of
from personalize.profiles.pageviews import SESSION_TIMEOUT, Hit, apply_hit, make_hit
from personalize.profiles.profile import Profile
from personalize.profiles.revocation import REVOKE

#: What the request path writes: page views and events.
Change = Hit | Event

#: After a merge, changes that reach the old anonymous id and happened up to this many seconds
#: after the merge (requests that were in flight during the login) are forwarded to the known
#: profile. Later ones stay on the tombstone: the old id never again reaches the known profile.
FORWARD_GRACE = 120.0  # seconds
#: Write batches remembered per profile, so a batch sent again applies once: one whose outcome
#: was unknown is sent again after the write-behind's back-off (1 s), and other workers may
#: write the profile meanwhile (8 was too few for a visitor loading pages fast on two workers
#: during a failover: the drill saw a batch counted twice).
MAX_BATCH_IDS = 32


def _renamed(change: Change, key: str, device_id: str | None) -> Change:
    """A page view forwarded from a merged anonymous id carries the device's new id."""
    if isinstance(change, Hit) and device_id and change.device_id == visitor_id_of(key):
        return replace(change, device_id=device_id)
    return change


def creates_profile(key: str, changes: Iterable[Change]) -> bool:
    """Whether ``changes`` may create the profile of ``key`` when the store holds none.

    A known profile is created by a login, traits, or an event from another channel; page
    views and logouts alone never create one, so a cookie of an erased user (a stale copy,
    a request in flight, another worker's cache) recreates nothing.

    >>> creates_profile("u:ann", [Hit(ts=1.0, path="/")]), creates_profile("v:x1", [])
    (False, True)
    """
    if user_id_of(key) is None:
        return True
    return any(isinstance(c, Event) and c.kind != REVOKE for c in changes)


def fold_changes(
    profile: Profile,
    changes: Sequence[Change],
    *,
    session_timeout: float = SESSION_TIMEOUT,
    rejected: list[tuple[Change, str]] | None = None,
) -> None:
    """Apply page views and events to ``profile`` in place, in the order given.

    With ``rejected``, a change that cannot be folded (into a sum an earlier version stored
    as ``null``, say) is listed there with the reason and the others are folded: stores set
    those aside, so one bad profile never stops a compaction. Without it, it raises.
    """
    for change in changes:
        try:
            if isinstance(change, Hit):
                apply_hit(profile, change, session_timeout=session_timeout)
            else:
                apply_event(profile, change)
        except Exception as exc:
            if rejected is None:
                raise
            rejected.append((change, _reason(exc)))


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:300]


def quarantine_record(
    key: str,
    reason: str,
    *,
    profile: bytes | str | None = None,
    changes: Sequence[tuple[Change, str]] = (),
) -> bytes:
    """What a store keeps of a profile it could not read, or changes it could not fold or
    encode: JSON ``{key, at, reason, profile, changes: [[change, reason], ...]}`` (changes in
    the log's form), for an operator to inspect; erasing the profile erases it too.

    >>> record = orjson.loads(quarantine_record("u:ann", "TypeError: x", profile=b"{"))
    >>> record["key"], record["reason"], record["profile"], record["changes"]
    ('u:ann', 'TypeError: x', '{', [])
    """
    raw = profile.decode("utf-8", "replace") if isinstance(profile, bytes) else profile
    data = {
        "key": key,
        "at": time.time(),
        "reason": reason,
        "profile": raw,
        "changes": [[change_value(c), why] for c, why in changes],
    }
    try:
        return orjson.dumps(data)
    except TypeError:  # text orjson refuses (a lone surrogate): kept escaped
        return json.dumps(data, default=str).encode()


def read_stored(key: str, raw: bytes | str | None, quarantine: list[bytes]) -> Profile | None:
    """A stored profile from its JSON (or None); one that cannot be read is set aside as a
    :func:`quarantine_record` appended to ``quarantine``, and reads as None."""
    if raw is None:
        return None
    try:
        return Profile.from_json(raw)
    except Exception as exc:
        quarantine.append(quarantine_record(key, _reason(exc), profile=raw))
        return None


def fold_guarded(
    key: str,
    profile: Profile | None,
    changes: Sequence[Change],
    *,
    session_timeout: float,
    quarantine: list[bytes],
) -> Profile | None:
    """``profile`` (or a new one) with ``changes`` folded in, in the order given, as a store
    folds its change log; changes for a tombstone's forwarding window are left out (they
    were forwarded). Changes that cannot be folded are set aside as one
    :func:`quarantine_record` appended to ``quarantine``, and the others are folded."""
    if not changes:
        return profile
    profile = Profile(key=key) if profile is None else profile
    kept, _ = split_forwarded(profile, changes)
    rejected: list[tuple[Change, str]] = []
    fold_changes(profile, kept, session_timeout=session_timeout, rejected=rejected)
    if rejected:
        quarantine.append(quarantine_record(key, rejected[0][1], changes=rejected))
    return profile


def split_forwarded(
    profile: Profile, ordered: Sequence[Change]
) -> tuple[Sequence[Change], list[Change]]:
    """For a tombstone: (changes it keeps, changes forwarded to the known profile).

    Only page views are forwarded: those are the requests that were in flight during the
    login. An event (an order, a ticket, a preference) sent with the merged cookie stays on
    the tombstone: whoever holds that old cookie (an attacker who planted it, say) never
    writes into the known profile.
    """
    if profile.merged_into is None:
        return ordered, []
    grace_end = (profile.merged_at or 0.0) + FORWARD_GRACE
    forwarded = [_renamed(c, profile.key, profile.merged_device) for c in ordered
                 if c.ts <= grace_end and isinstance(c, Hit)]  # fmt: skip
    return [c for c in ordered if c.ts > grace_end or not isinstance(c, Hit)], forwarded


#: The fields of a page view in the change log's compact form ``["h1", ts, path, ...]``, in
#: this order; "h2" rows add the local ``hour``. A new field of :class:`Hit` needs a new tag
#: ("h3"); older rows keep decoding.
HIT_V1_FIELDS = (
    "ts",
    "path",
    "channel",
    "source",
    "medium",
    "campaign",
    "term",
    "category",
    "device_type",
    "country",
    "device_id",
    "os",
    "browser",
)


def change_value(change: Change) -> tuple[Any, ...] | dict[str, Any]:
    """A change as JSON-able data, in the form change logs keep (see :func:`encode_change`).

    >>> change_from_value(change_value(Hit(ts=1.5, path="/"))) == Hit(ts=1.5, path="/")
    True
    """
    if isinstance(change, Hit):
        return ("h2", *_HIT_VALUES(change))
    return {"e": change.to_dict()}


# The fields of an "h2" log entry, in order, read in one C call (one per page view written).
_HIT_VALUES = attrgetter(
    "ts", "path", "channel", "source", "medium", "campaign", "term", "category",
    "device_type", "country", "device_id", "os", "browser", "hour",
)  # fmt: skip


def encode_change(change: Change) -> bytes:
    """A change as stores keep it in a change log.

    Page views, written for every request, take a compact positional form (half the
    bytes of a JSON object, a third of the encoding time); events keep an object.

    >>> encode_change(Hit(ts=1.5, path="/"))
    b'["h2",1.5,"/","direct",null,null,null,null,null,null,null,null,null,null,null]'
    >>> decode_change(encode_change(Hit(ts=1.5, path="/"))) == Hit(ts=1.5, path="/")
    True
    """
    return orjson.dumps(change_value(change))


def decode_change(data: bytes | str) -> Change:
    """What :func:`encode_change` wrote, in this version or an earlier one (``{"h": {...}}``)."""
    return change_from_value(orjson.loads(data))


def change_from_value(d: Any) -> Change:
    """A change from the parsed JSON of :func:`encode_change` (for logs that hold several)."""
    if isinstance(d, list | tuple):
        if d[0] == "h2" and len(d) == len(HIT_V1_FIELDS) + 2:  # h1 and the local hour
            return make_hit(*d[1:])  # (every field: no class call; compaction decodes each)
        if d[0] == "h1" and len(d) == len(HIT_V1_FIELDS) + 1:
            return Hit(*d[1:])
        raise ValueError(f"unknown change log record {d[0]!r}")
    if "h" in d:
        return Hit.from_dict(d["h"])
    e = d["e"]
    return Event(e["kind"], e["name"], e["ts"], e.get("properties") or {})
