"""Redis going away mid-load: pages stay normal, nothing is lost, the store reconnects.

A TCP proxy in front of the real Redis stands in for the network: cutting it drops every
connection and refuses new ones, exactly what a Redis restart or a network partition does,
without disturbing the Redis server other tests share.
"""

from __future__ import annotations

import asyncio
import contextlib
from urllib.parse import urlparse

import httpx2 as httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from personalize import PersonalizeMiddleware, get_visitor
from tests.apps import SECRET
from tests.conftest import REDIS_URL

UA = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0) AppleWebKit/605.1.15 Version/17.0 Safari"


class Proxy:
    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.server: asyncio.Server | None = None
        self.listen_port = 0
        self.writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", self.listen_port)
        self.listen_port = self.server.sockets[0].getsockname()[1]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(self.host, self.port)
        except OSError:
            writer.close()
            return
        self.writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(Exception):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self.writers -= {writer, up_writer}

    async def cut(self) -> None:
        assert self.server is not None
        self.server.close()
        for w in list(self.writers):
            w.close()
        self.writers.clear()
        await self.server.wait_closed()

    async def restore(self) -> None:
        await self.start()


async def page(request: Request) -> Response:
    v = get_visitor(request)
    return HTMLResponse(f"<p>{v.id}|{v.profile.page_views}</p>")


@pytest.mark.redis
def test_redis_outage_gives_normal_pages_loses_nothing_and_recovers(redis_prefix: str) -> None:
    from personalize.stores.redis import RedisStore

    target = urlparse(REDIS_URL)

    async def scenario() -> None:
        proxy = Proxy(target.hostname or "127.0.0.1", target.port or 6379)
        await proxy.start()
        db = target.path.lstrip("/") or "0"
        store = RedisStore(
            f"redis://127.0.0.1:{proxy.listen_port}/{db}",
            prefix=redis_prefix,
            timeout=0.2,
            retry_after=0.2,
        )
        pz = PersonalizeMiddleware(
            Starlette(routes=[Route("/", page)]), secret_key=SECRET, store=store, flush_interval=0
        )
        pz.personalizer.profiles._retry_backoff = 0.2
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=pz),
            base_url="http://shop.test",
            headers={"user-agent": UA},
        )
        statuses: list[int] = []
        for _ in range(5):
            statuses.append((await client.get("/")).status_code)
        visitor_id = (await client.get("/")).text.removeprefix("<p>").split("|")[0]

        await proxy.cut()
        await asyncio.sleep(1.1)  # let the near-cache entry expire: reads must go to Redis
        during = [await client.get("/") for _ in range(10)]
        statuses += [r.status_code for r in during]
        # Same visitor, default content (no stored profile), never an error.
        assert all(r.text.removeprefix("<p>").split("|")[0] == visitor_id for r in during)
        assert pz.personalizer.profiles.pending > 0

        await proxy.restore()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        recovered_after = None
        while loop.time() < deadline:
            r = await client.get("/")
            statuses.append(r.status_code)
            if (
                pz.personalizer.profiles.pending == 0
                and int(r.text.split("|")[1].rstrip("</p>")) > 1
            ):
                recovered_after = loop.time()
                break
            await asyncio.sleep(0.1)
        assert recovered_after is not None, "the store did not reconnect within 10 s"
        await pz.personalizer.profiles.flush()
        assert set(statuses) == {200}
        stored = await store.get(f"v:{visitor_id}")
        assert stored is not None
        assert stored.page_views == len(statuses) + 1  # every page view, none lost
        await client.aclose()
        await pz.aclose()
        await proxy.cut()

    asyncio.run(scenario())
