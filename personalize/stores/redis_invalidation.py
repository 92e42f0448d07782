"""Near-cache coherence over Redis pub/sub: every write publishes a
:class:`~personalize.stores.notices.Notice` (the keys it changed, and the changes it appended,
for peers to fold in), and every process listens and tells its profile service.

A process ignores its own messages (each carries the sender's instance id). After the listener
(re)connects it reports "everything may have changed" (None), since messages sent while it was
away are lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Callable, Sequence
from typing import Any

from personalize.stores.notices import Notice, decode_notice, encode_notice
from personalize.stores.redis_support import client_turn

__all__ = ["InvalidationBus"]

logger = logging.getLogger("personalize.redis")

Callback = Callable[[Notice | None], None]

_CLOSE_TRIES = 4  # cancellations sent, each followed by a bounded wait (see close)


class InvalidationBus:
    """Publishes notices on ``channel`` and calls subscribers with other processes' notices."""

    def __init__(self, client: Any, channel: str, *, timeout: float, enabled: bool) -> None:
        self._client = client
        self.channel = channel
        self.timeout = timeout
        self.enabled = enabled
        self.instance = secrets.token_hex(6)
        self._callbacks: list[Callback] = []
        self._listener: asyncio.Task[None] | None = None
        self._closed = False
        self.listening = False

    def subscribe(self, callback: Callback) -> None:
        """Call ``callback(notice)`` when another process changed profiles (None: anything
        may have changed)."""
        self._callbacks.append(callback)

    async def publish(
        self, keys: list[str], appended: Sequence[tuple[str, int, int, bytes]] = ()
    ) -> None:
        """Tell the other processes that ``keys`` changed, and which changes were appended
        (key, prev, seq, change log entry; see :func:`encode_notice`). Best effort."""
        if not self.enabled:
            return
        messages = self.messages(keys, appended)
        try:
            async with asyncio.timeout(self.timeout):  # not wait_for: see CallGuard.call
                async with client_turn(self._client):  # a cluster's connections are bounded
                    await self._send(messages)
        except Exception as exc:  # the write itself succeeded; caches expire on their own
            logger.warning("personalize: could not publish invalidation: %s", exc)

    def messages(
        self, keys: list[str], appended: Sequence[tuple[str, int, int, bytes]] = ()
    ) -> dict[str, bytes]:
        """What :meth:`publish` sends: the notice of each channel."""
        if type(self).channel_of is InvalidationBus.channel_of:  # one channel for every key
            return {self.channel: encode_notice(self.instance, keys, appended)}
        groups: dict[str, tuple[list[str], list[tuple[str, int, int, bytes]]]] = {}
        for key in keys:
            groups.setdefault(self.channel_of(key), ([], []))[0].append(key)
        for item in appended:
            groups.setdefault(self.channel_of(item[0]), ([], []))[1].append(item)
        return {c: encode_notice(self.instance, *group) for c, group in groups.items()}

    # -- the transport: plain pub/sub on one channel (redis_sharded: one per slot range) ---

    def channel_of(self, key: str) -> str:
        """The channel that carries the notices of ``key``."""
        return self.channel

    async def _send(self, messages: dict[str, bytes]) -> None:
        for channel, message in messages.items():
            await self._client.publish(channel, message)

    def _pubsub(self) -> Any:
        return self._client.pubsub(ignore_subscribe_messages=True)

    async def _subscribe(self, pubsub: Any) -> None:
        await pubsub.subscribe(self.channel)

    async def _next_message(self, pubsub: Any) -> dict[str, Any] | None:
        message: dict[str, Any] | None = await pubsub.get_message(timeout=1.0)
        return message

    def ensure_listener(self) -> None:
        """Start listening (on the running event loop) if anyone subscribed and it is not."""
        if not self.enabled or not self._callbacks or self._closed:
            return
        if self._listener is not None and not self._listener.done():
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._listener = loop.create_task(self._listen(), name="personalize-redis-invalidation")

    async def close(self) -> None:
        """Stop listening, within a poll or two even if the cancellation is lost.

        A cancellation can be swallowed below the listener (redis-py, or ``asyncio.wait_for``
        on Python 3.11 when the awaited call completes at that moment): the listener then
        polls on for ever, and a close that awaited it hung the process's shutdown. So the
        listener also stops when it sees the bus closed, and each wait here is bounded.
        """
        self._closed = True
        listener, self._listener = self._listener, None
        if listener is None:
            return
        for _ in range(_CLOSE_TRIES):
            listener.cancel()
            done, _ = await asyncio.wait({listener}, timeout=self.timeout)
            if done:
                if not listener.cancelled():
                    with contextlib.suppress(Exception):
                        listener.result()
                return
        logger.warning("personalize: the invalidation listener did not stop; left behind")

    def _notify(self, notice: Notice | None) -> None:
        for callback in self._callbacks:
            callback(notice)

    async def _listen(self) -> None:
        backoff, own = 0.1, (self.instance + "\n").encode()
        while not self._closed:
            pubsub = self._pubsub()
            try:
                async with asyncio.timeout(self.timeout * 4):  # not wait_for: see CallGuard
                    await self._subscribe(pubsub)
                self.listening = True
                self._notify(None)  # invalidations may have been missed while disconnected
                backoff = 0.1
                while not self._closed:
                    message = await self._next_message(pubsub)
                    if message is None:
                        continue
                    data = message["data"]
                    if not data.startswith(own):  # its own changes are in its cache already
                        self._notify(decode_notice(data)[1])
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
