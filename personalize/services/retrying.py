"""A write-behind buffer's retry that does not wait for the next request.

A buffer whose write failed backs off, and the next request after the back-off sends the
batch again. When no request comes (the last visitors left during an outage, a worker that
only serves now and then), the batch would sit in memory until the next one or until
shutdown, and die with the process if it is killed. :class:`RetryTimer` schedules the retry
on the event loop instead.

>>> import asyncio
>>> async def main():
...     calls = []
...     async def retry():
...         calls.append("retried")
...     timer = RetryTimer(retry)
...     timer.arm(0.01)
...     await asyncio.sleep(0.05)
...     return calls
>>> asyncio.run(main())
['retried']
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

__all__ = ["RetryTimer"]

logger = logging.getLogger("personalize")

# Past the back-off's end: the loop may run a timer a clock tick early, and a retry that
# comes before the back-off ended does nothing.
_MARGIN = 0.01  # seconds


class RetryTimer:
    """Calls ``retry()`` once, ``delay`` seconds after :meth:`arm`, on the running event loop;
    arming again replaces the pending call."""

    def __init__(self, retry: Callable[[], Awaitable[None]]) -> None:
        self._retry = retry
        self._handle: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[None] | None = None  # referenced, so it is not collected

    def arm(self, delay: float) -> None:
        """Retry ``delay`` seconds from now (nothing outside a running event loop)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self.cancel()
        self._handle = loop.call_later(max(0.0, delay) + _MARGIN, self._fire, loop)

    def cancel(self) -> None:
        """Forget the pending retry, if any (one already running finishes)."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _fire(self, loop: asyncio.AbstractEventLoop) -> None:
        self._handle = None
        self._task = loop.create_task(self._run(), name="personalize-write-retry")

    async def _run(self) -> None:
        try:
            await self._retry()
        except Exception:  # a bug, not an outage: the buffer logs and keeps its failures
            logger.exception("personalize: retrying a buffered write failed")
