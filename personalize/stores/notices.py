"""What one process tells the others after a write, so their near-caches stay coherent.

A :class:`Notice` lists profiles another process changed. Most writes are page views and
events appended to a profile's change log; each append is numbered per profile (``seq``,
following ``prev``), and the notice carries the appended changes, so a peer holding the
profile at ``prev`` folds them in and moves to ``seq`` instead of reading the store again.
Anything else (a merge, traits, erasure, quarantine, a change too large to send) only says
the profile changed: peers drop their copy.

On the wire (Redis pub/sub) a notice is text lines: the sender's instance id, then every
changed key, one per line (all that earlier versions read: they drop those keys), then
optionally a line starting with :data:`FOLDS` followed by JSON
``[[key, prev, seq, [batch id, change, ...]], ...]`` (a change in the change log's form).

>>> from personalize.profiles.pageviews import Hit
>>> from personalize.profiles.changes import encode_change
>>> entry = b'["b1",' + encode_change(Hit(ts=1.0, path="/")) + b"]"
>>> wire = encode_notice("me", ["u:ann"], [("v:x", 4, 5, entry)])
>>> sender, notice = decode_notice(wire)
>>> sender, notice.dropped, [(a.key, a.prev, a.seq, a.batch_id) for a in notice.appended]
('me', ['u:ann'], [('v:x', 4, 5, 'b1')])
>>> notice.appended[0].changes() == [Hit(ts=1.0, path="/")]
True
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from personalize.profiles.changes import Change, change_from_value

__all__ = [
    "FOLDS",
    "MAX_ENTRY_BYTES",
    "MAX_FOLD_BYTES",
    "Appended",
    "Notice",
    "decode_notice",
    "encode_notice",
]

#: Starts the line of appended changes (a record separator: never in a profile key).
FOLDS = "\x1e"
logger = logging.getLogger("personalize.redis")

MAX_ENTRY_BYTES = 8 * 1024  # one profile's changes; larger ones are sent as a plain drop
MAX_FOLD_BYTES = 256 * 1024  # all the changes of one notice; past it, plain drops


@dataclass(frozen=True, slots=True)
class Appended:
    """Changes appended to ``key``'s change log as its write number ``seq`` (the one before
    was ``prev``; 0: the log was new), in one batch (``batch_id``, None without one);
    ``items`` are the changes in the log's form (:meth:`changes` decodes them)."""

    key: str
    prev: int
    seq: int
    batch_id: str | None
    items: tuple[Any, ...]

    def changes(self) -> list[Change]:
        """The changes, oldest first, as a store folds them (ValueError: unreadable).
        Decoded on demand: only a process that holds the profile needs them."""
        try:
            return sorted(map(change_from_value, self.items), key=_ts)
        except (TypeError, KeyError, IndexError) as exc:
            raise ValueError(f"unreadable change in a notice: {exc}") from exc


@dataclass(frozen=True, slots=True)
class Notice:
    """Profiles another process changed: copies of ``dropped`` are stale; ``appended`` may be
    folded into a copy that is exactly at their ``prev``."""

    dropped: list[str]
    appended: list[Appended]

    def keys(self) -> list[str]:
        """Every key the notice names."""
        return self.dropped + [a.key for a in self.appended]


def encode_notice(
    sender: str, dropped: Sequence[str], appended: Sequence[tuple[str, int, int, bytes]]
) -> bytes:
    """The wire form of a notice; ``appended`` holds (key, prev, seq, change log entry as
    JSON ``[batch id, change, ...]``). An entry over :data:`MAX_ENTRY_BYTES`, or past
    :data:`MAX_FOLD_BYTES` in all, is sent as a plain drop."""
    folds: list[bytes] = []
    size = 0
    for key, prev, seq, entry in appended:
        if len(entry) > MAX_ENTRY_BYTES:
            continue
        fold = b"[%b,%d,%d,%b]" % (orjson.dumps(key), prev, seq, entry)
        if size + len(fold) < MAX_FOLD_BYTES:
            size += len(fold) + 1
            folds.append(fold)
    lines = [sender, *dropped, *(key for key, _, _, _ in appended)]
    wire = "\n".join(lines).encode()
    if folds:
        wire += b"\n" + FOLDS.encode() + b"[" + b",".join(folds) + b"]"
    return wire


def decode_notice(data: bytes) -> tuple[str, Notice]:
    """(sender, notice) from :func:`encode_notice`'s bytes, or from an older version's (keys
    only: every key dropped). Changes that cannot be read are dropped, with a warning.

    >>> decode_notice(b"me\\nv:x\\n\\x1e[[1]]")
    ('me', Notice(dropped=['v:x'], appended=[]))
    """
    text, _, folds = data.partition(b"\n" + FOLDS.encode())
    sender, *keys = text.decode("utf-8", "replace").split("\n")
    appended: list[Appended] = []
    if folds:
        try:
            for key, prev, seq, (batch_id, *items) in orjson.loads(folds):
                appended.append(Appended(str(key), int(prev), int(seq), batch_id, tuple(items)))
        except Exception as exc:  # a peer's bug must not stop coherence: drop those keys
            logger.warning("personalize: unreadable changes in a notice from %s: %s", sender, exc)
            appended = []
    folded = {a.key for a in appended}
    return sender, Notice([k for k in keys if k not in folded], appended)


def _ts(change: Change) -> float:
    return change.ts
