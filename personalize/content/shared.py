"""The content engine's state shared by every worker: bandit counters, frequency caps and
session picks, kept in the state service (:class:`~personalize.services.state.StateService`).

Nothing here waits for the store: reads come from the service's cache (fresh within its
``cache_ttl``, read again after the response when stale, and fetched for a visitor before
their page by :meth:`SharedDecisionState.prepare`); writes are buffered and written after
the response.

- **counters** of an arm in a context bucket: key ``arm:<slot>/<variant>|<bucket>``, fields
  ``trials``, ``rewards``, ``value`` (as :class:`~personalize.content.policy.Counts`);
- **frequency caps** of a visitor: one hash ``caps:<profile key>``, per arm the views since
  the last click (field ``<arm>``) and the end of its rest (field ``<arm>!``, seconds since
  the epoch, 0 when not resting), kept 30 days after the visitor's last capped view;
- **session picks**: value ``pick:<profile key>|<session start>|<slot>`` = the variant and the
  rule that allowed it, put only if absent, so of two workers deciding at once both keep the
  first one's; it holds while the same rule matches (as a worker's own cached decision).
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Iterable

from personalize.content.policy import Counts
from personalize.content.slots import Cap
from personalize.services.state import MISSING, StateService

__all__ = [
    "CAP_MEMORY",
    "MAX_PAGES",
    "PICK_LIFE",
    "PageSlots",
    "SharedDecisionState",
    "SharedExposures",
    "SharedPolicyStore",
]

CAP_MEMORY = 30 * 86_400.0  # seconds a visitor's cap counts are kept after their last view
PICK_LIFE = 86_400.0  # seconds a session pick is kept (a session rarely lasts a day)
_FIELDS = ("trials", "rewards", "value")
_PICK_TAIL = re.compile(r"[^|]+\|[a-z][a-z0-9_-]*")  # a pick key after "pick:<visitor>|"
MAX_PAGES = 1024  # paths whose slots are remembered (the least recently used are forgotten)


class SharedPolicyStore:
    """A :class:`~personalize.content.policy.PolicyStore` in the state service."""

    def __init__(self, state: StateService, prefix: str = "arm:") -> None:
        self.state = state
        self.prefix = prefix

    def get(self, key: str) -> Counts:
        fields = self.state.cached(self.prefix + key)
        if not fields:
            return Counts()
        return Counts(
            fields.get("trials", 0.0), fields.get("rewards", 0.0), fields.get("value", 0.0)
        )

    def add(self, key: str, trials: float = 0.0, rewards: float = 0.0, value: float = 0.0) -> None:
        amounts = {n: a for n, a in zip(_FIELDS, (trials, rewards, value), strict=True) if a}
        if amounts:
            self.state.add_many({self.prefix + key: amounts})

    def snapshot(self) -> dict[str, tuple[float, float, float]]:
        """The counters this process knows, as plain data (as ``MemoryPolicyStore``'s)."""
        start = len(self.prefix)
        return {
            key[start:]: (f.get("trials", 0.0), f.get("rewards", 0.0), f.get("value", 0.0))
            for key, f in self.state.known(self.prefix).items()
            if f
        }

    def keys(self, names: Iterable[str]) -> list[str]:
        """The state keys of policy keys ``names``."""
        return [self.prefix + name for name in names]


class SharedExposures:
    """Frequency caps in the state service, with :class:`~personalize.content.suppression.
    ExposureLog`'s interface: every worker counts the same views, and a restart keeps them.

    One page asking for a slot twice counts one view: which page counted last is remembered
    in this process (a page is served by one worker).
    """

    def __init__(self, state: StateService, *, max_visitors: int = 100_000) -> None:
        self.state = state
        self.max_visitors = max_visitors
        self._pages: OrderedDict[tuple[str, str], float] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def key(visitor: str) -> str:
        return f"caps:{visitor}"

    def _fields(self, visitor: str) -> dict[str, float]:
        return self.state.cached(self.key(visitor)) or {}

    def resting_until(self, visitor: str, arm: str, now: float) -> float | None:
        """When the arm's rest ends, if it is resting now."""
        until = self._fields(visitor).get(arm + "!", 0.0)
        return until if until > now else None

    def seen(self, visitor: str, arm: str, cap: Cap | None, *, now: float, request: float) -> None:
        """Count a view; ``request`` (the page view's time) counts one view per page."""
        if cap is None:
            return
        with self._lock:
            page = (visitor, arm)
            if self._pages.get(page) == request:
                return  # the same page asked twice
            self._pages[page] = request
            self._pages.move_to_end(page)
            while len(self._pages) > self.max_visitors:
                self._pages.popitem(last=False)
        fields = self._fields(visitor)
        views, until = max(fields.get(arm, 0.0), 0.0), fields.get(arm + "!", 0.0)
        # Counters only add: each change is the difference to what is known.
        if until and until <= now:  # the rest is over: count again from nothing
            add_views, add_until = 1.0 - views, -until
        else:
            add_views, add_until = 1.0, 0.0
        if views + add_views >= cap.views:
            add_until = now + cap.rest_hours * 3600.0 - until
        ttl = max(CAP_MEMORY, cap.rest_hours * 3600.0 + 86_400.0)
        self.state.add_many({self.key(visitor): {arm: add_views, arm + "!": add_until}}, ttl=ttl)

    def clicked(self, visitor: str, arm: str) -> None:
        """A click resets the count: the visitor wants it."""
        fields = self._fields(visitor)
        views, until = fields.get(arm, 0.0), fields.get(arm + "!", 0.0)
        if views or until:
            self.state.add_many({self.key(visitor): {arm: -views, arm + "!": -until}})


class PageSlots:
    """The slots each path decided, so that the read before a page asks only for those.

    Before a page, its visitor's caps and the session picks of its slots are read where the
    cache holds them no fresher than ``cache_ttl`` (with visits more than a second apart,
    every page). Which slots a page decides is known only once it ran: this remembers it per
    path (the union over its visits, for one version of the content), so the read asks for
    the picks of those slots instead of every slot of the library, and a path that decided
    none reads nothing. A path not seen yet (or forgotten: :data:`MAX_PAGES` are kept) reads
    every slot. A slot that a page decides for the first time on its path (a template
    changed, or a branch no visitor took before) is decided from what this worker holds,
    and read after the response.

    >>> pages = PageSlots()
    >>> pages.get("/", 1) is None
    True
    >>> pages.add("/", 1, ["hero", "banner"])
    >>> pages.add("/", 1, ["hero"])
    >>> sorted(pages.get("/", 1))
    ['banner', 'hero']
    >>> pages.add("/cart", 1, ()); pages.get("/cart", 1)
    frozenset()
    >>> pages.get("/", 2) is None  # the content changed: learned again
    True
    """

    def __init__(self, size: int = MAX_PAGES) -> None:
        self._size = size
        self._version = -1
        self._slots: OrderedDict[str, frozenset[str]] = OrderedDict()

    def get(self, path: str, version: int) -> frozenset[str] | None:
        """The slots ``path`` decided with content ``version``; None when not known."""
        if version != self._version:
            self._slots.clear()
            self._version = version
            return None
        return self._slots.get(path)

    def add(self, path: str, version: int, slots: Iterable[str]) -> None:
        """Remember that ``path`` decided ``slots`` (maybe none) with content ``version``."""
        known = self.get(path, version)
        if known is not None and known.issuperset(slots):
            return
        self._slots[path] = frozenset(slots) if known is None else known.union(slots)
        self._slots.move_to_end(path)
        while len(self._slots) > self._size:
            self._slots.popitem(last=False)


class SharedDecisionState:
    """What a :class:`~personalize.content.decisions.DecisionEngine` keeps in the state
    service: its policy store, its exposures (caps) and the session picks."""

    def __init__(self, state: StateService) -> None:
        self.state = state
        self.policy = SharedPolicyStore(state)
        self.exposures = SharedExposures(state)
        self.pages = PageSlots()
        self._session: tuple[str, float, str] = ("", 0.0, "")  # the last session's key prefix

    @staticmethod
    def pick_key(visitor: str, started: float, slot: str) -> str:
        return f"pick:{visitor}|{started!r}|{slot}"

    def _prefix(self, visitor: str, started: float) -> str:
        """``pick_key`` less the slot, remembered for the last session (a page asks for
        each of its slots in turn)."""
        last = self._session
        if last[0] == visitor and last[1] == started and last[2]:
            return last[2]
        prefix = f"pick:{visitor}|{started!r}|"
        self._session = (visitor, started, prefix)
        return prefix

    async def forget(self, visitors: Iterable[str]) -> int:
        """Erase the caps and session picks of profile keys ``visitors``; returns how many
        keys were deleted (StoreError when the store cannot delete them)."""
        keys: list[str] = []
        for visitor in visitors:
            keys.append(SharedExposures.key(visitor))
            prefix = f"pick:{visitor}|"
            # Only "<start>|<slot>" after the prefix: a user id may itself hold "|".
            found = await self.state.keys(prefix)
            keys += [k for k in found if _PICK_TAIL.fullmatch(k[len(prefix) :])]
        return await self.state.delete(keys)

    def pick(self, visitor: str, started: float, slot: str) -> tuple[str, str] | None:
        """``(variant, rule)``: what this visitor's session shows in ``slot`` and the rule
        that allowed it, if any worker picked one."""
        found = self.state.cached_value(self._prefix(visitor, started) + slot)
        if found is MISSING or found is None:
            return None
        variant, _, rule = found.decode("utf-8", "replace").partition("\n")
        return variant, rule

    def keep_pick(
        self, visitor: str, started: float, slot: str, variant: str, rule: str, *, replace: bool
    ) -> None:
        """Remember the session's pick and the rule that allowed it: a first pick only if no
        worker picked first (then theirs stays); with ``replace``, instead of a pick that can
        no longer show or that another rule allowed."""
        key = self._prefix(visitor, started) + slot
        value = f"{variant}\n{rule}".encode()
        self.state.put_value_soon(key, value, ttl=PICK_LIFE, only_if_absent=not replace)

    def ready(self, visitor: str, started: float, slots: Iterable[str]) -> bool:
        """True when :meth:`prepare` would read nothing: the page can decide at once."""
        prefix = self._prefix(visitor, started)
        picks = [prefix + slot for slot in slots]
        return self.state.holds(counters=[SharedExposures.key(visitor)], values=picks)

    async def prepare(self, visitor: str, started: float, slots: Iterable[str]) -> None:
        """Read a visitor's caps and session picks before their page, where not cached."""
        prefix = self._prefix(visitor, started)
        picks = [prefix + slot for slot in slots]
        await self.state.prefetch(counters=[SharedExposures.key(visitor)], values=picks)
