"""Late labels: keep the features of open sessions and learn once each outcome is known.

A session is labelled ``True`` when it converts, ``False`` when it ends without converting
(no activity for ``timeout`` seconds, or an explicit end). At most ``max_open`` sessions are
held; beyond that the least recently active one is dropped unlabelled (counted in
``dropped``) rather than guessed. The clock is injectable, so tests are deterministic.

>>> learned = []
>>> class Recorder:
...     def learn_one(self, x, y):
...         learned.append((x["channel"], y))
>>> now = [0.0]
>>> labeller = SessionLabeller(Recorder(), timeout=1800, clock=lambda: now[0])
>>> labeller.observe("a", {"channel": "email"}), labeller.observe("b", {"channel": "direct"})
(True, True)
>>> labeller.convert("a")
True
>>> now[0] = 1801.0
>>> labeller.expire()
1
>>> learned
[('email', True), ('direct', False)]
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from personalize.profiles.pageviews import SESSION_TIMEOUT

__all__ = ["SessionLabeller", "Supervised"]


class Supervised(Protocol):
    """Anything with river's ``learn_one(x, y)``."""

    def learn_one(self, x: Any, y: bool) -> None: ...


class SessionLabeller:
    """Holds open sessions' features and feeds ``model.learn_one`` when their label is known."""

    def __init__(
        self,
        model: Supervised,
        *,
        timeout: float = SESSION_TIMEOUT,  # seconds of inactivity that end a session
        max_open: int = 100_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.model = model
        self.timeout = timeout
        self.max_open = max_open
        self.clock = clock
        # session id -> (last activity, features); oldest activity first
        self._open: OrderedDict[str, tuple[float, Mapping[str, Any]]] = OrderedDict()
        self.dropped = 0
        self.labelled = 0

    def __len__(self) -> int:
        return len(self._open)

    def observe(self, session: str, x: Mapping[str, Any], *, ts: float | None = None) -> bool:
        """Remember (or update) the features of an open session; True if it is a new one."""
        now = self.clock() if ts is None else ts
        new = session not in self._open
        self._open[session] = (now, x)
        self._open.move_to_end(session)
        while len(self._open) > self.max_open:
            self._open.popitem(last=False)
            self.dropped += 1
        return new

    def convert(self, session: str, x: Mapping[str, Any] | None = None) -> bool:
        """The session converted: learn it as positive; False if it is not open (nor ``x``)."""
        entry = self._open.pop(session, None)
        features = entry[1] if entry is not None else x
        if features is None:
            return False
        self._learn(features, True)
        return True

    def end(self, session: str) -> bool:
        """The session ended without converting: learn it as negative; False if not open."""
        entry = self._open.pop(session, None)
        if entry is None:
            return False
        self._learn(entry[1], False)
        return True

    def expire(self, now: float | None = None) -> int:
        """Learn every session idle for more than ``timeout`` as negative; returns how many."""
        cutoff = (self.clock() if now is None else now) - self.timeout
        n = 0
        while self._open:
            session, (last, features) = next(iter(self._open.items()))
            if last > cutoff:
                break
            del self._open[session]
            self._learn(features, False)
            n += 1
        return n

    def _learn(self, x: Mapping[str, Any], y: bool) -> None:
        self.model.learn_one(x, y)
        self.labelled += 1
