"""The Redis state store's change feed (see :mod:`~personalize.stores.state_feed`): a stream.

One stream, ``<prefix>f:{~feed}`` (one Redis Cluster slot), holds an entry per write call,
fields ``w`` (the writer) and ``t`` (the keys' tags), trimmed to about
:data:`~personalize.stores.state_feed.MAX_ENTRIES` entries. Each write sends its entry in the
same pipeline, after its commands (one round trip; a write whose entry failed raises and is
sent again, as any failed write). A reader's position is the last entry id it read, as one
integer (milliseconds << 20 | sequence); it lost track when the stream trimmed an entry past
it (``max-deleted-entry-id``), or is gone. Before Redis 7 trimming cannot be seen: every
read says "lost track", and copies last ``cache_ttl`` as without a feed. A stream deleted
and made again (``FLUSHDB``, which wipes the decision state too) cannot be seen either:
restart the workers after wiping Redis, or their copies live up to five minutes.

>>> stream_position(b"1796386835286-3") >> 20, stream_id(stream_position(b"1796386835286-3"))
(1796386835286, '1796386835286-3')
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from personalize.stores.state_feed import MAX_ENTRIES, Changes, parse_tags, tags_text

__all__ = ["feed_entry", "read_stream", "stream_id", "stream_position"]

_SEQ_BITS = 20


def stream_position(entry_id: bytes | str) -> int:
    """A stream entry id ``<ms>-<seq>`` as one integer."""
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    ms, _, seq = text.partition("-")
    return (int(ms) << _SEQ_BITS) | int(seq or 0)


def stream_id(position: int) -> str:
    """The entry id of a position."""
    return f"{position >> _SEQ_BITS}-{position & ((1 << _SEQ_BITS) - 1)}"


def feed_entry(stream: str, writer: str, keys: Iterable[str]) -> tuple[Any, ...] | None:
    """The XADD command of one write of ``keys`` (None for no key)."""
    tags = tags_text(keys)
    if not tags:
        return None
    return ("XADD", stream, "MAXLEN", "~", MAX_ENTRIES, "*", "w", writer, "t", tags)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def read_stream(info: Any, rows: Any, after: int | None) -> Changes:
    """The changes after ``after`` from an ``XINFO STREAM`` reply (an error: no stream)
    and an ``XRANGE`` reply of the entries after it (None when not asked)."""
    if isinstance(info, Exception):  # no such key: nothing written since it was created
        last, deleted = 0, 0
    else:
        fields = {_text(k): v for k, v in info.items()}
        last = stream_position(fields["last-generated-id"])
        if "max-deleted-entry-id" not in fields:  # Redis < 7: trimming cannot be seen
            return Changes(last, None)
        deleted = stream_position(fields["max-deleted-entry-id"] or b"0-0")
    if after is None or after > last or isinstance(rows, Exception) or len(rows) > MAX_ENTRIES:
        return Changes(last, None)
    if deleted > after or (not rows and last > after):  # an entry past it is gone
        return Changes(last, None)
    entries = []
    for _, values in rows:
        found = {_text(k): _text(v) for k, v in values.items()}
        entries.append((found.get("w", ""), parse_tags(found.get("t", ""))))
    position = stream_position(rows[-1][0]) if rows else after
    return Changes(max(position, after), entries)
