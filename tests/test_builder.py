"""The context memo (ContextBuilder.memoized): remembered by the raw bytes it reads, never
handed to a request that differs in anything the context depends on."""

from __future__ import annotations

from typing import Any

from personalize.context.builder import LOCAL_HOUR, ContextBuilder

CHROME = (
    b"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    b"Chrome/124.0.0.0 Safari/537.36"
)
IPHONE = (
    b"Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "
    b"(KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1"
)
NOW = 1_700_000_000.0


def scope(path: str = "/", query: bytes = b"", **extra: Any) -> dict[str, Any]:
    return {"type": "http", "path": path, "query_string": query, "client": ("1.2.3.4", 5), **extra}


def headers(**values: bytes) -> dict[bytes, bytes]:
    raw = {b"host": b"shop.test", b"user-agent": CHROME, b"accept-language": b"en-GB"}
    raw.update({name.replace("_", "-").encode(): value for name, value in values.items()})
    return raw


def test_the_same_request_in_the_same_minute_gets_the_same_context() -> None:
    builder = ContextBuilder()
    first = builder.memoized(scope(), headers(cookie=b"pz_visitor=a"), NOW)
    again = builder.memoized(scope(), headers(cookie=b"pz_visitor=b"), NOW + 1)
    assert again is first  # the cookie is not part of the context
    assert first == builder.build(scope(), {k: v.decode() for k, v in headers().items()}, NOW)


def test_anything_the_context_reads_makes_another_context() -> None:
    builder = ContextBuilder()
    base = builder.memoized(scope(), headers(), NOW)
    assert builder.memoized(scope(), headers(user_agent=IPHONE), NOW).device.type == "mobile"
    assert builder.memoized(scope("/shoes"), headers(), NOW).path == "/shoes"
    paid = builder.memoized(scope(query=b"gclid=x"), headers(), NOW)
    assert paid.source.channel == "paid_search"
    assert builder.memoized(scope(), headers(sec_gpc=b"1"), NOW).signals.gpc
    german = builder.memoized(scope(), headers(accept_language=b"de"), NOW)
    assert german.signals.languages == ("de",)
    referred = builder.memoized(scope(), headers(referer=b"https://www.google.com/"), NOW)
    assert referred.source.channel == "organic_search"
    evening = builder.memoized({**scope(), LOCAL_HOUR: 20}, headers(), NOW)
    assert evening.clock.hour == 20
    assert builder.memoized(scope(), headers(), NOW) is base  # and the first is still there


def test_a_new_minute_builds_the_clock_again() -> None:
    builder = ContextBuilder()
    first = builder.memoized(scope(), headers(), NOW)
    later = builder.memoized(scope(), headers(), NOW + 3600)
    assert later is not first and later.clock.hour == (first.clock.hour + 1) % 24


def test_the_client_address_is_not_part_of_the_key_without_geo() -> None:
    builder = ContextBuilder()
    first = builder.memoized(scope(), headers(), NOW)
    assert builder.memoized(scope(client=("5.6.7.8", 9)), headers(), NOW) is first


def test_the_memo_is_bounded_and_forgets_the_oldest_first() -> None:
    builder = ContextBuilder()
    oldest = builder.memoized(scope("/p0"), headers(), NOW)
    newest = None
    for i in range(1, 5000):
        newest = builder.memoized(scope(f"/p{i}"), headers(), NOW)
    assert builder.memoized(scope("/p4999"), headers(), NOW) is newest
    assert builder.memoized(scope("/p0"), headers(), NOW) is not oldest  # built again
