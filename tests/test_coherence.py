"""Near-cache coherence: notices carry the changes a write appended, numbered per profile, and
a copy folds them in order; a duplicate is skipped, a gap drops the copy (the next read goes
to the store). The wire format, the fold rules, and the near-cache itself with a store that
numbers its writes. (Separate worker processes: tests/test_shared_profiles.py.)"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence

import pytest

from personalize.profiles.changes import Change, change_value, encode_change
from personalize.profiles.events import Event, validate_event
from personalize.profiles.pageviews import Hit
from personalize.profiles.profile import Profile
from personalize.services.coherence import DUPLICATE_WINDOW, GAP_WAIT, Entry, fold_notice
from personalize.services.profiles import MISSING, ProfileService
from personalize.stores.memory import MemoryStore
from personalize.stores.notices import (
    FOLDS,
    MAX_ENTRY_BYTES,
    MAX_FOLD_BYTES,
    Appended,
    Notice,
    decode_notice,
    encode_notice,
)


def hit(ts: float, path: str = "/") -> Hit:
    return Hit(ts=ts, path=path)


def appended(prev: int, seq: int, *changes: Change, batch: str | None = None) -> Appended:
    return Appended("v:x", prev, seq, batch or f"b{seq}", tuple(map(change_value, changes)))


def entry(position: int | None, page_views: int = 0) -> Entry:
    profile = Profile(key="v:x")
    for i in range(page_views):
        profile = fold_notice((profile, 0.0, i), appended(i, i + 1, hit(float(i))), {})[0]  # type: ignore[index]
    return profile, 0.0, position


# -- the wire format ------------------------------------------------------------------------


def log_entry(batch: str | None, *changes: Change) -> bytes:
    import orjson

    return b",".join([b"[" + orjson.dumps(batch), *map(encode_change, changes)]) + b"]"


def test_a_notice_carries_the_appended_changes_and_lists_every_key_for_older_readers() -> None:
    wire = encode_notice(
        "me", ["u:ann"], [("v:x", 4, 5, log_entry("b1", hit(2.0, "/b"), hit(1.0, "/a")))]
    )
    # What versions before notices read: the sender, then one changed key per line.
    assert wire.split(b"\n")[:3] == [b"me", b"u:ann", b"v:x"]
    sender, notice = decode_notice(wire)
    assert sender == "me" and notice.dropped == ["u:ann"]
    (only,) = notice.appended
    assert (only.key, only.prev, only.seq, only.batch_id) == ("v:x", 4, 5, "b1")
    assert [h.path for h in only.changes()] == ["/a", "/b"]  # oldest first, as a store folds
    assert notice.keys() == ["u:ann", "v:x"]


def test_an_older_versions_message_drops_every_key_it_names() -> None:
    assert decode_notice(b"them\nv:x\nu:ann") == ("them", Notice(["v:x", "u:ann"], []))


def test_large_changes_are_sent_as_a_plain_drop_and_a_notice_stays_bounded() -> None:
    big = log_entry("b", Event("custom", "note", 1.0, {"text": "x" * MAX_ENTRY_BYTES}))
    small = log_entry("b", hit(1.0))
    wire = encode_notice("me", [], [("v:big", 1, 2, big), ("v:small", 1, 2, small)])
    _, notice = decode_notice(wire)
    assert notice.dropped == ["v:big"] and [a.key for a in notice.appended] == ["v:small"]
    many = [(f"v:{i}", 1, 2, small) for i in range(MAX_FOLD_BYTES // len(small) + 50)]
    wire = encode_notice("me", [], many)
    _, notice = decode_notice(wire)
    keys = sum(len(key) + 1 for key, _, _, _ in many)
    assert len(wire) <= keys + 3 + MAX_FOLD_BYTES  # the keys, and changes up to the bound
    assert 0 < len(notice.appended) < len(many)
    assert len(notice.dropped) + len(notice.appended) == len(many)  # every key is told


@pytest.mark.parametrize(
    "folds",
    [b"not json", b'[["v:x", 1]]', b'[["v:x", "one", 2, ["b"]]]', b'{"v:x": 1}', b"[[1,2,3,4]]"],
)
def test_unreadable_changes_drop_every_key_of_the_notice(folds: bytes) -> None:
    sender, notice = decode_notice(b"peer\nv:x\n" + FOLDS.encode() + folds)
    assert sender == "peer" and notice.dropped == ["v:x"] and notice.appended == []


def test_a_change_that_cannot_be_decoded_drops_the_copy() -> None:
    broken = Appended("v:x", 1, 2, "b", (["h9", 1.0],))
    with pytest.raises(ValueError, match="unknown change log record"):
        broken.changes()
    assert fold_notice(entry(1), broken, {}) is None


# -- the fold rules -------------------------------------------------------------------------


def test_changes_that_follow_the_copys_position_are_folded_into_a_new_profile() -> None:
    before = entry(7)
    after = fold_notice(before, appended(7, 8, hit(1.0, "/a"), hit(2.0, "/b")), {})
    assert after is not None
    profile, stored_at, position = after
    assert (profile.page_views, position, stored_at) == (2, 8, 0.0)
    assert profile.batches == ["b8"]
    assert before[0].page_views == 0 and before[0].batches == []  # a page may still hold it
    event = validate_event("order", {"order_id": "o1", "products": ["p1"]}, ts=1.7e9)
    after = fold_notice(after, appended(8, 9, event), {})
    assert after is not None and after[2] == 9 and after[0].page_views == 2
    assert profile.events == [] and after[0].batches == ["b8", "b9"]


def test_a_duplicate_notice_changes_nothing() -> None:
    current = entry(9, page_views=9)
    assert fold_notice(current, appended(8, 9, hit(1.0)), {}) is current
    assert fold_notice(current, appended(2, 3, hit(1.0)), {}) is current
    # The same batch once more under a new number (sent again after a timeout): the store
    # skips it on reading, and so does the copy, which moves on.
    again = fold_notice(current, appended(9, 10, hit(1.0), batch="b9"), {})
    assert again is not None and again[0] is current[0] and again[2] == 10


def test_a_gap_drops_the_copy() -> None:
    current = entry(7, page_views=7)
    assert fold_notice(current, appended(8, 9, hit(1.0)), {}) is None  # 7 -> 8 never heard of
    # Far below: a profile erased and created again numbers from a new random start.
    far = 7 - DUPLICATE_WINDOW
    assert fold_notice(current, appended(far - 1, far, hit(1.0)), {}) is None
    assert fold_notice(current, appended(0, 1 << 40, hit(1.0)), {}) is None


def test_notices_out_of_order_fold_in_order_or_drop_the_copy() -> None:
    start = entry(1)
    second, third = appended(2, 3, hit(2.0)), appended(1, 2, hit(1.0))
    # Each in turn: folded.
    folded = fold_notice(fold_notice(start, third, {}), second, {})  # type: ignore[arg-type]
    assert folded is not None and folded[2] == 3 and folded[0].page_views == 2
    # The later one first: the copy cannot know what it misses, so it is dropped; the
    # earlier one then finds nothing to fold into (the next read goes to the store).
    assert fold_notice(start, second, {}) is None


def test_own_writes_ahead_of_a_missing_notice_are_passed_once_it_arrives() -> None:
    ahead = {3: 4, 4: 5}  # this process wrote 3 -> 4 and 4 -> 5, not knowing 2 -> 3 yet
    folded = fold_notice(entry(2), appended(2, 3, hit(1.0)), ahead)
    assert folded is not None and folded[2] == 5 and ahead == {}


@pytest.mark.parametrize(
    "current",
    [
        (Profile(key="v:x"), 0.0, None),  # position unknown (a merge or traits wrote it)
        (Profile(key=""), 0.0, 1),  # the store's "no profile"
        (Profile(key="v:x", merged_into="u:ann"), 0.0, 1),  # a tombstone
    ],
)
def test_a_copy_that_cannot_take_the_changes_is_dropped(current: Entry) -> None:
    assert fold_notice(current, appended(1, 2, hit(1.0)), {}) is None


# -- the near-cache with a store that numbers its writes ------------------------------------


class NumberedStore(MemoryStore):
    """A MemoryStore that numbers appends per key (as RedisStore does) and lets a test play
    the other processes' notices; ``gate`` holds writes while it is cleared."""

    def __init__(self) -> None:
        super().__init__()
        self.seq: dict[str, int] = {}
        self.listeners: list[Callable[[Notice | None], None]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.reads = 0

    def on_notice(self, callback: Callable[[Notice | None], None]) -> None:
        self.listeners.append(callback)

    def tell(self, notice: Notice | None) -> None:
        for listener in self.listeners:
            listener(notice)

    async def get_at(self, key: str) -> tuple[Profile | None, int]:
        self.reads += 1
        return await self.get(key), self.seq.get(key, 0)

    async def apply_changes_at(
        self, changes: Mapping[str, Sequence[Change]], *, batch_id: str | None = None
    ) -> tuple[dict[str, Profile], dict[str, tuple[int, int]]]:
        await self.gate.wait()
        written = await self.apply_changes(changes, batch_id=batch_id)
        return written, {key: self.bump(key) for key in changes}

    def bump(self, key: str) -> tuple[int, int]:
        prev = self.seq.get(key, 0)
        self.seq[key] = prev + 1
        return prev, prev + 1

    async def peer_writes(self, key: str, *changes: Change, tell: bool = True) -> Appended:
        """Another process appends ``changes`` (and its notice arrives, unless ``tell``)."""
        await self.apply_changes({key: changes})
        prev, seq = self.bump(key)
        notice = Appended(key, prev, seq, f"peer{seq}", tuple(map(change_value, changes)))
        if tell:
            self.tell(Notice([], [notice]))
        return notice


def run(coro: object) -> None:
    asyncio.run(coro)  # type: ignore[arg-type]


def test_a_copy_follows_another_processes_writes_without_reading_the_store() -> None:
    async def scenario() -> None:
        store = NumberedStore()
        profiles = ProfileService(store, flush_interval=0)
        await store.peer_writes("v:x", hit(1.0))
        assert (await profiles.load("v:x")).page_views == 1  # type: ignore[union-attr]
        for ts in (2.0, 3.0, 4.0):
            await store.peer_writes("v:x", hit(ts))
        cached = profiles.cached("v:x")
        assert isinstance(cached, Profile) and cached.page_views == 4
        await profiles.record("v:x", hit(5.0))  # its own write follows theirs
        await store.peer_writes("v:x", hit(6.0))
        assert (await profiles.load("v:x")).page_views == 6  # type: ignore[union-attr]
        assert store.reads == 1 and profiles.stats["notices_folded"] == 4
        assert (await store.get("v:x")).page_views == 6  # type: ignore[union-attr]

    run(scenario())


def test_a_missed_notice_makes_the_next_read_go_to_the_store() -> None:
    async def scenario() -> None:
        store = NumberedStore()
        profiles = ProfileService(store, flush_interval=0)
        await store.peer_writes("v:x", hit(1.0))
        await profiles.load("v:x")
        await store.peer_writes("v:x", hit(2.0), tell=False)  # lost on the way
        await store.peer_writes("v:x", hit(3.0))  # follows the lost one: a gap
        assert profiles.cached("v:x") is MISSING and profiles.stats["notices_dropped"] == 1
        assert (await profiles.load("v:x")).page_views == 3  # type: ignore[union-attr]
        assert store.reads == 2
        store.tell(None)  # the listener reconnected: anything may have changed
        assert profiles.cached("v:x") is MISSING
        await profiles.load("v:x")
        assert store.reads == 3

    run(scenario())


def test_notices_that_overtake_its_own_write_wait_for_its_number() -> None:
    """Its write (numbered 1 -> 2) is under way when another process's notice 2 -> 3 arrives:
    held, and folded once the write's number is known, not taken for a gap."""

    async def scenario() -> None:
        store = NumberedStore()
        profiles = ProfileService(store, flush_interval=0)
        await store.peer_writes("v:x", hit(1.0))
        await profiles.load("v:x")
        store.gate.clear()
        writing = asyncio.create_task(profiles.record("v:x", hit(2.0)))
        await asyncio.sleep(0.01)
        store.tell(Notice([], [Appended("v:x", 2, 3, "p3", (change_value(hit(3.0)),))]))
        store.gate.set()
        await writing
        cached = profiles.cached("v:x")
        assert isinstance(cached, Profile) and cached.page_views == 3
        assert profiles.stats["notices_folded"] == 1 and store.reads == 1

    run(scenario())


def test_a_read_that_overlaps_a_notice_is_not_cached() -> None:
    async def scenario() -> None:
        store = NumberedStore()
        profiles = ProfileService(store, flush_interval=0)
        slow_get = store.get_at

        async def get_at(key: str) -> tuple[Profile | None, int]:
            result = await slow_get(key)
            await store.peer_writes(key, hit(9.0))  # arrives while the read comes back
            return result

        profiles._get_at = get_at  # type: ignore[assignment]
        await profiles.load("v:x")
        assert profiles.cached("v:x") is MISSING  # read again next time

    run(scenario())


def test_its_own_write_after_one_it_never_heard_of_drops_the_copy_soon() -> None:
    """Its write follows another process's write whose notice never comes: the copy waits
    :data:`GAP_WAIT` for it (usually it is on its way), then is dropped."""

    async def scenario() -> None:
        store = NumberedStore()
        profiles = ProfileService(store, flush_interval=0)
        await store.peer_writes("v:x", hit(1.0))
        await profiles.load("v:x")
        await store.peer_writes("v:x", hit(2.0), tell=False)
        await profiles.record("v:x", hit(3.0))
        assert profiles.cached("v:x") is not MISSING  # waiting for the notice
        await asyncio.sleep(GAP_WAIT + 0.1)
        assert profiles.cached("v:x") is MISSING
        assert (await profiles.load("v:x")).page_views == 3  # type: ignore[union-attr]
        # When the notice does come in time, the copy moves past both writes.
        late = await store.peer_writes("v:x", hit(4.0), tell=False)
        await profiles.record("v:x", hit(5.0))
        store.tell(Notice([], [late]))
        await asyncio.sleep(GAP_WAIT + 0.1)
        cached = profiles.cached("v:x")
        assert isinstance(cached, Profile) and cached.page_views == 5 and store.reads == 2

    run(scenario())


def test_a_drop_notice_drops_the_copy() -> None:
    async def scenario() -> None:
        store = NumberedStore()
        profiles = ProfileService(store, flush_interval=0)
        await store.peer_writes("v:x", hit(1.0))
        await profiles.load("v:x")
        store.tell(Notice(["v:x"], []))  # a merge, traits, erasure, quarantine elsewhere
        assert profiles.cached("v:x") is MISSING

    run(scenario())


def test_redis_notices_fold_appends_and_drop_merges_and_erasure(redis_prefix: str) -> None:
    """What one RedisStore publishes, another hears: page views as changes to fold, a login
    (merge), traits and erasure as keys to drop; folding a log into the profile: nothing."""
    from personalize.stores.redis import RedisStore
    from tests.conftest import REDIS_URL

    async def scenario() -> None:
        writer = RedisStore(REDIS_URL, prefix=redis_prefix, log_limit=2)
        reader = RedisStore(REDIS_URL, prefix=redis_prefix)
        heard: list[Notice | None] = []
        reader.on_notice(heard.append)
        await reader.get("v:none")  # starts its listener
        for _ in range(100):
            if heard:
                break
            await asyncio.sleep(0.02)
        assert heard == [None]  # (re)connected: anything may have changed
        heard.clear()

        async def notices(count: int) -> list[Notice]:
            for _ in range(200):
                if len(heard) >= count:
                    break
                await asyncio.sleep(0.01)
            got = [n for n in heard if n is not None]
            heard.clear()
            return got

        await writer.apply_changes({"v:x": [hit(1.0, "/a")]}, batch_id="b1")
        (notice,) = await notices(1)
        (appended,) = notice.appended
        assert (appended.key, appended.prev, appended.batch_id) == ("v:x", 0, "b1")
        assert [h.path for h in appended.changes()] == ["/a"]
        profile, seq = await reader.get_at("v:x")
        assert seq == appended.seq and profile is not None and profile.page_views == 1
        await writer.apply_changes({"v:x": [hit(2.0, "/b")]}, batch_id="b2")
        await writer.apply_changes({"v:x": [hit(3.0, "/c")]}, batch_id="b3")  # folds the log
        got = await notices(2)
        assert [(n.dropped, [a.seq for a in n.appended]) for n in got] == [
            ([], [seq + 1]),
            ([], [seq + 2]),
        ]  # the fold past log_limit said nothing
        await writer.merge("v:x", "u:ann", user_id="ann", now=10.0)
        got = await notices(3)
        assert {k for n in got for k in n.dropped} == {"v:x", "u:ann"}
        assert all(not n.appended for n in got)
        await writer.erase("u:ann")
        got = await notices(1)
        assert "u:ann" in {k for n in got for k in n.dropped}
        await writer.close()
        await reader.close()

    run(scenario())
