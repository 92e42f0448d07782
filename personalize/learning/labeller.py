"""Late labels: keep the pages of open sessions and learn each session once its outcome is known.

A session is labelled ``True`` when it converts, ``False`` when it ends without converting
(no activity for ``timeout`` seconds, or an explicit end), and learned once, as one example
made of its pages' features (at most ``max_pages`` of them: the first ones and the latest).
A labelled session is remembered for a while, so the page after an order (or a second report
of the same order, from the beacon) neither opens it again nor counts twice. At most
``max_open`` sessions are held; beyond that the least recently active one is dropped
unlabelled (counted in ``dropped``) rather than guessed. The clock is injectable, so tests are
deterministic.

>>> learned = []
>>> class Recorder:
...     def learn_session(self, pages, y):
...         learned.append((pages[0]["channel"], len(pages), y))
>>> now = [0.0]
>>> labeller = SessionLabeller(Recorder(), timeout=1800, clock=lambda: now[0])
>>> labeller.observe("a", {"channel": "email"}), labeller.observe("b", {"channel": "direct"})
(True, True)
>>> labeller.observe("a", {"channel": "email"}), labeller.convert("a")
(False, True)
>>> labeller.observe("a", {"channel": "email"}), labeller.convert("a")  # the thank-you page
(False, False)
>>> now[0] = 1801.0
>>> labeller.expire()
1
>>> learned, labeller.positives, labeller.negatives
([('email', 2, True), ('direct', 1, False)], 1, 1)
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from personalize.profiles.pageviews import SESSION_TIMEOUT

__all__ = ["SessionLabeller", "Supervised"]


class Supervised(Protocol):
    """A model that learns whole sessions (see :class:`~personalize.learning.PropensityModel`)."""

    def learn_session(self, pages: Sequence[Mapping[str, Any]], y: bool) -> None: ...


class _Open:
    """An open session: its last activity, its first page's features and, for each later page
    kept, only what changed since the first (a few keys: page counts, the hour, the top
    category), so a hundred thousand open sessions stay small."""

    __slots__ = ("changes", "first", "last")

    def __init__(self, last: float, first: Mapping[str, Any]) -> None:
        self.last = last
        self.first = first
        self.changes: list[dict[str, Any]] = []

    def add(self, x: Mapping[str, Any], max_pages: int) -> None:
        first = self.first
        change = {k: v for k, v in x.items() if k not in first or first[k] != v}
        change.update(dict.fromkeys((k for k in first if k not in x), None))
        if len(self.changes) < max_pages - 1:
            self.changes.append(change)
        elif self.changes:
            self.changes[-1] = change

    @property
    def pages(self) -> list[Mapping[str, Any]]:
        first = self.first
        pages: list[Mapping[str, Any]] = [first]
        for change in self.changes:
            page = {**first, **change}
            pages.append({k: v for k, v in page.items() if v is not None or k not in first})
        return pages


class SessionLabeller:
    """Holds open sessions' pages and feeds ``model.learn_session`` when their label is known."""

    def __init__(
        self,
        model: Supervised,
        *,
        timeout: float = SESSION_TIMEOUT,  # seconds of inactivity that end a session
        max_open: int = 100_000,
        max_pages: int = 8,  # page features kept per session: the first ones and the latest
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.model = model
        self.timeout = timeout
        self.max_open = max_open
        self.max_pages = max_pages
        self.clock = clock
        self._open: OrderedDict[str, _Open] = OrderedDict()  # oldest activity first
        # Labelled sessions -> when: pages and reports that come after the label are ignored.
        self._done: OrderedDict[str, tuple[float, bool]] = OrderedDict()
        self.dropped = 0
        self.positives = 0
        self.negatives = 0
        self.late = 0  # conversions of sessions already learned as not converted

    @property
    def labelled(self) -> int:
        """Sessions learned so far."""
        return self.positives + self.negatives

    def __len__(self) -> int:
        return len(self._open)

    def observe(self, session: str, x: Mapping[str, Any], *, ts: float | None = None) -> bool:
        """A page of a session, with its features at the page's start; True if the session is
        new. Pages of a session that is already labelled are ignored."""
        now = self.clock() if ts is None else ts
        if session in self._done:
            return False
        entry = self._open.get(session)
        new = entry is None
        if entry is None:
            self._open[session] = _Open(now, x)
        else:
            entry.last = max(entry.last, now)
            entry.add(x, self.max_pages)
            self._open.move_to_end(session)
        while len(self._open) > self.max_open:
            self._open.popitem(last=False)
            self.dropped += 1
        return new

    def convert(self, session: str, x: Mapping[str, Any] | None = None) -> bool:
        """The session converted: learn it as positive. False when it is already labelled, or
        neither open nor described by ``x``."""
        done = self._done.get(session)
        if done is not None:
            if not done[1]:
                self.late += 1
            return False
        entry = self._open.pop(session, None)
        pages = entry.pages if entry is not None else [x] if x is not None else None
        if not pages:
            return False
        self._learn(session, pages, True)
        return True

    def end(self, session: str) -> bool:
        """The session ended without converting: learn it as negative; False if not open."""
        entry = self._open.pop(session, None)
        if entry is None:
            return False
        self._learn(session, entry.pages, False)
        return True

    def expire(self, now: float | None = None) -> int:
        """Learn every session idle for more than ``timeout`` as negative; returns how many."""
        now = self.clock() if now is None else now
        cutoff = now - self.timeout
        n = 0
        while self._open:
            session, entry = next(iter(self._open.items()))
            if entry.last > cutoff:
                break
            del self._open[session]
            self._learn(session, entry.pages, False)
            n += 1
        # Forget labels once no page of their session can come any more.
        while self._done and next(iter(self._done.values()))[0] < cutoff - self.timeout:
            self._done.popitem(last=False)
        return n

    def _learn(self, session: str, pages: Sequence[Mapping[str, Any]], y: bool) -> None:
        self.model.learn_session(pages, y)
        if y:
            self.positives += 1
        else:
            self.negatives += 1
        # A late conversion of a negative is counted (``late``), never learned twice.
        self._done[session] = (self.clock(), y)
        while len(self._done) > self.max_open:
            self._done.popitem(last=False)
