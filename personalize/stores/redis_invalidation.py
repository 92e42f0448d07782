"""Near-cache invalidation over Redis pub/sub: every write publishes the keys it changed, and
every process listens and tells its profile service.

A process ignores its own messages (each carries the sender's instance id). After the listener
(re)connects it reports "everything may have changed" (None), since messages sent while it was
away are lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Callable
from typing import Any

__all__ = ["InvalidationBus"]

logger = logging.getLogger("personalize.redis")

Callback = Callable[[list[str] | None], None]


class InvalidationBus:
    """Publishes changed keys on ``channel`` and calls subscribers with other processes' keys."""

    def __init__(self, client: Any, channel: str, *, timeout: float, enabled: bool) -> None:
        self._client = client
        self.channel = channel
        self.timeout = timeout
        self.enabled = enabled
        self.instance = secrets.token_hex(6)
        self._callbacks: list[Callback] = []
        self._listener: asyncio.Task[None] | None = None
        self.listening = False

    def subscribe(self, callback: Callback) -> None:
        """Call ``callback(keys)`` when another process changed ``keys`` (None: anything)."""
        self._callbacks.append(callback)

    async def publish(self, keys: list[str]) -> None:
        """Tell the other processes that ``keys`` changed (best effort)."""
        if not self.enabled:
            return
        message = self.instance + "\n" + "\n".join(keys)
        try:
            await asyncio.wait_for(self._client.publish(self.channel, message), self.timeout)
        except Exception as exc:  # the write itself succeeded; caches expire on their own
            logger.warning("personalize: could not publish invalidation: %s", exc)

    def ensure_listener(self) -> None:
        """Start listening (on the running event loop) if anyone subscribed and it is not."""
        if not self.enabled or not self._callbacks:
            return
        if self._listener is not None and not self._listener.done():
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._listener = loop.create_task(self._listen(), name="personalize-redis-invalidation")

    async def close(self) -> None:
        """Stop listening."""
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._listener
            self._listener = None

    def _notify(self, keys: list[str] | None) -> None:
        for callback in self._callbacks:
            callback(keys)

    async def _listen(self) -> None:
        backoff = 0.1
        while True:
            pubsub = self._client.pubsub(ignore_subscribe_messages=True)
            try:
                await asyncio.wait_for(pubsub.subscribe(self.channel), self.timeout * 4)
                self.listening = True
                self._notify(None)  # invalidations may have been missed while disconnected
                backoff = 0.1
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is None:
                        continue
                    sender, _, body = message["data"].decode().partition("\n")
                    if sender != self.instance:
                        self._notify(body.split("\n"))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self.listening:
                    logger.warning("personalize: invalidation listener lost Redis: %s", exc)
            finally:
                self.listening = False
                with contextlib.suppress(Exception):
                    await asyncio.shield(pubsub.aclose())
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)
