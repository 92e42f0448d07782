"""Hypothesis strategies for hostile input: header bytes, cookies, queries, paths, events, YAML.

Big values are built by repeating a small drawn block (cheap to generate, still up to 8 KB),
so a long run reaches 100,000 cases in minutes.
"""

from __future__ import annotations

import ipaddress
import json
import math
from typing import Any

from hypothesis import strategies as st

from personalize.profiles.cookie import CookieState, VisitorCookie
from tests.hostile.harness import API_KEY, COOKIES, EDITOR, OLD_SECRET, PREFIXES, SECRET, Harness

MAX_HEADER = 8192
UAS = [
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 (Linux; Android 14; SM-X710) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0 Safari/537.36",
    "curl/8.5.0",
    "Mozilla/5.0",
    "",
]


# -- bytes and text ----------------------------------------------------------------------------


def _repeat(block: bytes, size: int) -> bytes:
    return (block * (size // max(len(block), 1) + 1))[:size] if block else b""


huge_bytes = st.builds(
    _repeat, st.binary(min_size=1, max_size=24), st.integers(1024, MAX_HEADER + 64)
)
small_bytes = st.binary(max_size=48)
unicode_bytes = st.text(max_size=40).map(lambda s: s.encode("utf-8", "surrogatepass"))
odd_bytes = st.sampled_from(
    [
        b"\xff\xfe\x00",
        b"\xc3\x28\xa0\xa1",
        b"\r\n",
        b"\x00",
        b'"',
        b"\\",
        b"%",
        b"%zz",
        b";",
        b",",
        b"=",
        b"\t ",
        b"\xed\xa0\x80",
        "\u2028☃".encode(),
        b"\xef\xbb\xbf",
    ]
)
junk_bytes = st.one_of(small_bytes, unicode_bytes, odd_bytes, huge_bytes)


def _splice(parts: list[bytes]) -> bytes:
    return b"".join(parts)


def near(*pools: list[bytes] | st.SearchStrategy[bytes]) -> st.SearchStrategy[bytes]:
    """Valid-looking values, junk, and valid values with junk spliced in."""
    base = st.one_of(*[st.sampled_from(p) if isinstance(p, list) else p for p in pools])
    spliced = st.lists(st.one_of(base, junk_bytes), min_size=2, max_size=4).map(_splice)
    return st.one_of(base, base, junk_bytes, spliced)


# -- addresses ---------------------------------------------------------------------------------

ips = st.one_of(  # st.ip_addresses() is slow to generate; one integer per address is not
    st.integers(0, 2**32 - 1).map(lambda n: str(ipaddress.IPv4Address(n))),
    st.integers(0, 2**128 - 1).map(lambda n: str(ipaddress.IPv6Address(n))),
    st.sampled_from(["::ffff:8.8.8.8", "2001:db8::1", "81.2.69.142", "::", "0.0.0.0"]),
)
trusted_peers = st.sampled_from(["127.0.0.1", "10.1.2.3", "::1", "fd00::7"])
peer = st.one_of(
    trusted_peers,
    ips,
    st.sampled_from(["not-an-ip", "999.1.1.1", "", "unix:/tmp/x", "1.2.3.4%eth0"]),
)


@st.composite
def forwarded_for(draw: st.DrawFn) -> tuple[bytes, list[str]]:
    addrs = draw(st.lists(ips, min_size=1, max_size=4))
    junk = draw(st.sampled_from(["", "unknown", " ", "1.2.3", "[::1]:80", ",,"]))
    port = draw(st.sampled_from(["", "", ":80", ":99999"]))
    items = [a + port if "." in a else a for a in addrs]
    items.insert(draw(st.integers(0, len(items))), junk)
    return ", ".join(items).encode(), addrs


@st.composite
def forwarded(draw: st.DrawFn) -> tuple[bytes, list[str]]:
    addrs = draw(st.lists(ips, min_size=1, max_size=4))
    parts = []
    for a in addrs:
        value = f'"[{a}]:{draw(st.integers(0, 9))}"' if ":" in a else a
        extra = draw(st.sampled_from(["", ";proto=https", ";by=10.0.0.1", ';host="x"', ";;"]))
        parts.append(f"for={value}{extra}")
    return ", ".join(parts).encode(), addrs


# -- cookies -----------------------------------------------------------------------------------

_signers = {
    "current": VisitorCookie(SECRET),
    "old": VisitorCookie(OLD_SECRET),
    "wrong": VisitorCookie("an-attacker-secret-0123456789abcdef"),
}
ids = st.one_of(
    st.uuids().map(lambda u: u.hex),
    st.text(max_size=40),
    st.sampled_from(["", "null", "guest", "admin", "0" * 32, "x" * 300, "a\nb", "é"]),
)
# Ids an API sender may send: lone surrogates (JSON escapes them; no store can write them).
event_ids = st.one_of(ids, st.sampled_from(["\ud800", "a\udc00", "x\x85y", "\x9b", "undefined"]))


@st.composite
def signed_cookie(draw: st.DrawFn) -> bytes:
    state = CookieState(
        visitor_id=draw(ids),
        user_id=draw(st.none() | ids),
        consent=draw(st.booleans()),
        opted_out=draw(st.booleans()),
    )
    value = _signers[draw(st.sampled_from(list(_signers)))].dump(state).encode("utf-8", "replace")
    how = draw(st.sampled_from(["as is", "as is", "flip", "cut", "append", "dots", "quote"]))
    if how == "flip" and value:
        i = draw(st.integers(0, len(value) - 1))
        value = value[:i] + bytes([value[i] ^ draw(st.integers(1, 255))]) + value[i + 1 :]
    elif how == "cut":
        value = value[: draw(st.integers(0, len(value)))]
    elif how == "append":
        value += draw(junk_bytes)
    elif how == "dots":
        value = value.replace(b".", draw(st.sampled_from([b"", b"..", b"%2E", b". "])))
    elif how == "quote":
        value = b'"' + value + b'"'
    return value


cookie_value = st.one_of(signed_cookie(), signed_cookie(), junk_bytes)


@st.composite
def cookie_header(draw: st.DrawFn, config: str) -> bytes:
    name = COOKIES[config].encode()
    ours = name + b"=" + draw(cookie_value)
    other = st.tuples(
        st.one_of(st.sampled_from([b"a", b"_ga", name, b""]), small_bytes),
        st.one_of(small_bytes, odd_bytes),
    ).map(lambda kv: kv[0] + b"=" + kv[1])
    others = draw(
        st.one_of(
            st.lists(other, max_size=3),
            st.builds(
                lambda kv, n: [kv + b"%d" % i for i in range(n)], other, st.integers(50, 300)
            ),
        )
    )
    parts = [*others]
    parts.insert(draw(st.integers(0, len(parts))), ours)
    sep = draw(st.sampled_from([b"; ", b";", b", ", b" ;  "]))
    header = sep.join(parts)
    if draw(st.integers(0, 9)) == 0:
        header = _repeat(header or b"x", draw(st.integers(4096, MAX_HEADER + 512)))
    return header


# -- headers -----------------------------------------------------------------------------------


def header_values(config: str, prefix: str) -> dict[bytes, st.SearchStrategy[bytes]]:
    """Per header the middleware reads: near-valid values and junk."""
    ua = [u.encode() for u in UAS]
    return {
        b"user-agent": near(ua),
        b"referer": near(
            [
                b"https://www.google.com/search?q=boots",
                b"https://www.facebook.com/",
                b"http://testserver/shoes/x",
                b"https://shop.example.com/",
                b"android-app://x",
                b"https://mail.google.com/",
                b"https://[::1]:99/",
                b"//evil",
                b"http://%zz",
            ]
        ),
        b"accept-language": near(
            [
                b"de-CH,de;q=0.9,en;q=0.8",
                b"*",
                b"en;q=abc",
                b"fr-CH",
                b"x-" * 400,
                b"zh-Hant-TW;q=1.5, ;q=0",
            ]
        ),
        b"sec-gpc": near([b"1", b"0", b" 1 ", b"true", b"1, 1"]),
        b"dnt": near([b"1", b"0", b"null"]),
        b"host": near(
            [
                b"testserver",
                b"example.com",
                b"shop.example.com:8080",
                b"[::1]:80",
                b"EXAMPLE.COM.",
                b"a" * 300,
                b":99999",
            ]
        ),
        b"authorization": near(
            [
                b"Bearer " + API_KEY.encode(),
                b"Bearer " + API_KEY.encode()[:-1],
                b"Bearer",
                Harness.basic(*EDITOR),
                Harness.basic(EDITOR[0], "wrong"),
                b"Basic !!!",
                b"Basic " + b"QQ==" * 300,
            ]
        ),
        b"content-type": near(
            [
                b"application/json",
                b"text/plain;charset=UTF-8",
                b"application/json; charset=x",
                b"application/x-www-form-urlencoded",
                b"multipart/form-data; boundary=x",
            ]
        ),
        b"origin": near(
            [b"http://testserver", b"https://testserver", b"null", b"https://evil.example"]
        ),
        b"if-none-match": near([b'"abc"', b"*"]),
        # Client hints (read by both configurations) and CDN geo ("full" believes Cloudflare,
        # CloudFront and Netlify from its trusted proxies).
        b"sec-ch-ua": near(
            [
                b'"Chromium";v="156", "Not.A/Brand";v="99", "Google Chrome";v="156"',
                b'"unterminated',
                b'"a";v=' + b"9" * 600,
                b", ".join([b'"b";v="1"'] * 40),
            ]
        ),
        b"sec-ch-ua-mobile": near([b"?1", b"?0", b"?2", b"1", b"?1;x=1"]),
        b"sec-ch-ua-platform": near([b'"Android"', b'"Windows"', b"Android", b'""', b'"\\x"']),
        b"sec-ch-ua-platform-version": near(
            [b'"15.0.0"', b'"0.3.0"', b'"99999999999999"', b'"a.b"']
        ),
        b"cf-ipcountry": near([b"GB", b"T1", b"XX", b"gb", b"<b>"]),
        b"cf-timezone": near([b"Europe/London", b"EST", b"../../etc/passwd", b"Etc/GMT+25"]),
        b"cloudfront-viewer-country": near([b"US", b"**", b"USA"]),
        b"x-nf-geo": near([b'{"country": {"code": "DE"}}', b"e30=", b"!!!", b"[" * 500]),
        b"cookie": cookie_header(config),
    }


@st.composite
def headers(draw: st.DrawFn, config: str = "full") -> tuple[list[tuple[bytes, bytes]], list[str]]:
    """A header list (names as sent, some repeated or upper-cased) and the IPs it carries."""
    pools = header_values(config, PREFIXES[config])
    names = draw(st.lists(st.sampled_from(sorted(pools)), max_size=6, unique=True))
    out: list[tuple[bytes, bytes]] = []
    carried: list[str] = []
    for name in names:
        for _ in range(draw(st.sampled_from([1, 1, 1, 2]))):
            upper = draw(st.integers(0, 19)) == 0
            out.append((name.upper() if upper else name, draw(pools[name])))
    if draw(st.booleans()):
        value, addrs = draw(st.one_of(forwarded_for(), forwarded()))
        name = b"x-forwarded-for" if b"for=" not in value else b"forwarded"
        out.append((name, value))
        carried += addrs
    if draw(st.integers(0, 4)) == 0:
        out.append((draw(st.sampled_from([b"x-forwarded-for", b"forwarded"])), draw(junk_bytes)))
    for _ in range(draw(st.integers(0, 2))):
        out.append((draw(st.binary(min_size=1, max_size=20)).lower(), draw(junk_bytes)))
    return out, carried


# -- query strings and paths -------------------------------------------------------------------

QUERY_KEYS = [
    "utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content", "gclid", "fbclid",
    "msclkid", "dclid", "wbraid", "gbraid", "ttclid", "li_fat_id", "ref", "slot", "user",
    "name", "order_id", "q", "done", "",
]  # fmt: skip
QUERY_VALUES = [b"google", b"cpc", b"email", b"spring_2026", b"hero", b"banner", b"x" * 65,
                b"%ff%fe", b"%", b"%2", b"ann", b"null", b"boots"]  # fmt: skip


pair = st.tuples(
    st.one_of(st.sampled_from(QUERY_KEYS).map(str.encode), small_bytes),
    st.one_of(st.sampled_from(QUERY_VALUES), junk_bytes),
).map(lambda kv: kv[0] + b"=" + kv[1])


@st.composite
def query(draw: st.DrawFn) -> bytes:
    pairs = draw(
        st.one_of(
            st.lists(pair, max_size=4),
            st.builds(lambda kv, n: [kv] * n, pair, st.integers(20, 400)),
        )
    )
    sep = draw(st.sampled_from([b"&", b"&", b";", b"&&"]))
    return sep.join(pairs)


def _percent_junk(data: bytes) -> str:
    return "".join(f"%{b:02X}" if b < 0x30 or b > 0x7A else chr(b) for b in data)


@st.composite
def path(draw: st.DrawFn, config: str = "full") -> str:
    prefix = PREFIXES[config]
    known = [
        "/", "/plain", "/login", "/logout", "/forget", "/consent", "/track", "/shoes/red",
        "/bags/", "/static/x.css", "/favicon.ico", "/health",
        prefix, prefix + "/", prefix + "/ping", prefix + "/slots", prefix + "/collect",
        prefix + "/events", prefix + "/beacon.js", prefix + "/me", prefix + "/me/export",
        prefix + "/me/opt-out", prefix + "/me/opt-in", prefix + "/me/erase",
        prefix + "/assets/pages.css", prefix + "/admin", prefix + "/admin/segments",
        prefix + "/admin/slots", prefix + "/admin/preview", prefix + "/admin/profiles",
        prefix + "/admin/model", prefix + "//events", prefix + "/../admin", "//", "/%2e%2e/",
    ]  # fmt: skip
    base = draw(st.sampled_from(known))
    how = draw(st.sampled_from(["as is", "as is", "as is", "text", "junk", "suffix", "huge"]))
    if how == "text":
        return "/" + draw(st.text(max_size=40))
    if how == "junk":
        return base + _percent_junk(draw(small_bytes))
    if how == "suffix":
        return base + draw(st.sampled_from(["/", "//", "/x", "%00", "\x00", "/\u2028", "?"]))
    if how == "huge":
        return "/" + "a/" * draw(st.integers(100, 4000))
    return base


METHODS = ["GET", "GET", "GET", "POST", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "PATCH"]
method = st.one_of(st.sampled_from(METHODS), st.from_regex(r"\A[A-Z]{1,12}\Z"))


# -- JSON and event payloads -------------------------------------------------------------------

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=5),
        st.dictionaries(st.text(max_size=12), children, max_size=5),
    ),
    max_leaves=10,
)
times = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(2**64), max_value=2**64),
    st.sampled_from(
        [
            "2026-11-26T10:00:00+00:00",
            "2026-11-26T10:00:00",
            "yesterday",
            "",
            "9999-12-31T23:59:59+14:00",
            "0001-01-01T00:00:00-23:59",
            "2026-13-40",
        ]
    ),
    st.datetimes().map(lambda d: d.isoformat() + "+00:00"),
    json_values,
)
fuzzy = st.one_of(json_values, st.text(max_size=20))
# For events and beacons: what overflows a sum, what JSON parsers read as infinity, text no
# store can write (JSON escapes a lone surrogate).
extreme = st.sampled_from([1e308, -1e308, 1e12, 1e12 + 1, math.inf, math.nan, 2**63, "\ud800"])
fuzzier = st.one_of(
    fuzzy,
    extreme,
    st.lists(extreme, max_size=2),
    st.dictionaries(st.text(max_size=3), extreme, max_size=2),
)


@st.composite
def event(draw: st.DrawFn) -> Any:
    """A near-valid event dict: the documented shape, with fields dropped, swapped or junk."""
    kind = draw(
        st.sampled_from(["order", "return", "ticket", "custom", "preference", "refund", "", 7])
    )
    props: dict[str, Any] = {
        "order": {"order_id": "o-17", "products": ["boots-42"], "value": 89.0},
        "return": {"order_id": "o-17", "products": ["boots-42"]},
        "ticket": {"ticket_id": "t-3", "status": "open"},
        "preference": {"promotions": "never", "interest.shoes": "less", "location": False},
    }.get(kind if isinstance(kind, str) else "", {})
    props = dict(props)
    for key in draw(
        st.lists(
            st.sampled_from(
                [
                    "order_id",
                    "products",
                    "value",
                    "ticket_id",
                    "status",
                    "x",
                    "promotions",
                    "language",
                    "history",
                    "interest.shoes",
                    "interest.",
                    "segment.mobile",
                    "cluster.1",
                    "origin",
                ]
            ),
            max_size=3,
        )
    ):
        props[key] = draw(fuzzier)
    if draw(st.booleans()):
        props.pop(draw(st.sampled_from(["order_id", "products", "value", "status"])), None)
    data: dict[str, Any] = {"type": kind, "properties": props}
    who = draw(st.sampled_from(["user_id", "visitor_id", "both", "none"]))
    if who in ("user_id", "both"):
        data["user_id"] = draw(st.one_of(event_ids, fuzzy))
    if who in ("visitor_id", "both"):
        data["visitor_id"] = draw(st.one_of(event_ids, fuzzy))
    if draw(st.booleans()):
        data["ts"] = draw(times)
    if kind == "custom" or draw(st.integers(0, 5)) == 0:
        data["name"] = draw(st.one_of(st.sampled_from(["signup", "9lives", "a" * 200]), fuzzy))
    if draw(st.integers(0, 7)) == 0:
        data[draw(st.text(max_size=8))] = draw(fuzzy)
    if draw(st.integers(0, 7)) == 0:
        data["properties"] = draw(fuzzy)
    return data


def _dump(value: Any) -> bytes:
    return json.dumps(value, allow_nan=True).encode()


event_body = st.one_of(
    st.lists(event(), max_size=6).map(_dump),
    event().map(_dump),
    json_values.map(_dump),
    st.builds(lambda e, n: _dump([e] * n), event(), st.integers(990, 1010)),
    st.sampled_from([b"", b"{", b"[]", b"null", b"NaN", b'{"a":' * 3000, b"\xff\xfe"]),
    junk_bytes,
)
collect_body = st.one_of(
    st.fixed_dictionaries(
        {
            "decision_id": st.one_of(st.text(max_size=40), fuzzy),
            "type": st.sampled_from(["click", "conversion", "view", 1]),
        },
        optional={"value": st.one_of(st.floats(), st.integers(), fuzzier), "extra": fuzzy},
    ).map(_dump),
    json_values.map(_dump),
    junk_bytes,
)
form_body = st.lists(
    st.tuples(
        st.sampled_from(
            [
                "csrf_token",
                "confirm",
                "slot",
                "digest",
                "rules",
                "default",
                "pin",
                "new-segment",
                "new-variants",
                "new-order",
                "rule-0-delete",
                "x",
                "form",
                "name",
                "promotions",
                "interest.shoes",
                "location",
                "language",
            ]
        ),
        st.one_of(
            st.sampled_from(
                [
                    "yes",
                    "hero",
                    "welcome",
                    "mobile",
                    "0",
                    "-1",
                    "1e9",
                    "preferences",
                    "never",
                    "less",
                    "off",
                    "segment.mobile",
                    "interest.shoes",
                ]
            ),
            st.text(max_size=30),
        ),
    ),
    max_size=8,
)


def chunks(body: bytes, cuts: list[int]) -> tuple[bytes, ...]:
    """``body`` split at ``cuts`` (the ASGI server may deliver a body in pieces)."""
    points = sorted({min(c, len(body)) for c in cuts})
    pieces, last = [], 0
    for p in points:
        pieces.append(body[last:p])
        last = p
    pieces.append(body[last:])
    return tuple(pieces)


# -- editor YAML -------------------------------------------------------------------------------

ATTRIBUTE_NAMES = ["country", "device_type", "channel", "hour", "visits", "campaign", "path",
                   "languages", "last_purchase_at", "affinity.shoes", "traits.plan",
                   "events.signup.count", "purchased", "nope", "", "events.", "Hour"]  # fmt: skip
OPERATORS = ["eq", "ne", "in", "not_in", "gt", "gte", "lt", "lte", "between", "contains",
             "matches", "exists", "within_days", "EQ", "like", ""]  # fmt: skip
PATTERNS = ["^spring_[0-9]+$", "(red|blue)+ shoes?", "(a+)+", "((ab)*c)*", "[", "(?P<x>a)",
            "\\", "a{2,}{3}", "(?i)SALE", ".*" * 50, "x" * 201, "(\\w*x){2,}"]  # fmt: skip
plausible = st.one_of(
    st.sampled_from(["GB", "mobile", "paid_search", 18, [18, 23], [22, 5], 30, True, ["de"]]),
    st.sampled_from(PATTERNS),
    st.lists(st.integers(-5, 30), max_size=3),
    st.builds(
        lambda t, n: [f"{t}{i}" for i in range(n)], st.text(max_size=3), st.integers(990, 1010)
    ),
)
leaf = st.fixed_dictionaries(
    {"attribute": st.one_of(st.sampled_from(ATTRIBUTE_NAMES), fuzzy),
     "operator": st.one_of(st.sampled_from(OPERATORS), fuzzy),
     "value": st.one_of(plausible, plausible, fuzzy)},
    optional={"extra": fuzzy},
)  # fmt: skip
rule = st.recursive(
    st.one_of(leaf, leaf, fuzzy),
    lambda children: st.one_of(
        st.dictionaries(st.sampled_from(["all", "any", "none", "al", "not"]),
                        st.lists(children, max_size=4), min_size=1, max_size=2),
        st.lists(children, max_size=3),
    ),
    max_leaves=12,
)  # fmt: skip
segment_item = st.fixed_dictionaries(
    {},
    optional={
        "name": st.one_of(st.sampled_from(["mobile", "uk_visitors", "Bad Name", "x" * 70]), fuzzy),
        "description": st.one_of(st.sampled_from(["Phones", "", "  "]), fuzzy),
        "rule": rule,
        "rules": fuzzy,
    },
)
segment_doc = st.one_of(
    st.lists(segment_item, max_size=4),
    st.fixed_dictionaries({"segments": st.lists(segment_item, max_size=4)},
                          optional={"other": fuzzy}),
    fuzzy,
)  # fmt: skip
variant = st.fixed_dictionaries(
    {"id": st.one_of(st.sampled_from(["welcome", "phone", "Deal!", ""]), fuzzy)},
    optional={
        "html": st.one_of(st.text(max_size=30), fuzzy),
        "markdown": st.one_of(st.sampled_from(["**Hi** <script>x</script>", "[a](javascript:1)"]),
                              st.text(max_size=30)),
        "template": st.sampled_from(["hero.html", "missing.html", "../etc/passwd", "bad.html"]),
        "value": st.one_of(st.floats(), st.integers(), fuzzy),
        "tags": st.one_of(st.fixed_dictionaries({}, optional={"products": fuzzy,
                                                             "campaign": fuzzy}), fuzzy),
        "schedule": st.one_of(
            st.fixed_dictionaries({}, optional={
                "days": st.one_of(st.lists(st.sampled_from(["mon", "fri", "sun", "xyz"])), fuzzy),
                "hours": st.one_of(st.lists(st.integers(-2, 30), max_size=3), fuzzy),
                "from": fuzzy, "until": st.one_of(st.sampled_from(["2026-12-01"]), fuzzy)}),
            fuzzy),
        "cap": st.one_of(st.fixed_dictionaries({"views": fuzzy, "rest_hours": fuzzy}), fuzzy),
    },
)  # fmt: skip
mapping_rule = st.fixed_dictionaries(
    {},
    optional={"segment": st.one_of(st.sampled_from(["mobile", "unknown"]), fuzzy),
              "when": rule,
              "variants": st.one_of(st.lists(st.sampled_from(["welcome", "phone", "x"])), fuzzy),
              "pin": fuzzy},
)  # fmt: skip
slot = st.fixed_dictionaries(
    {"variants": st.one_of(st.lists(variant, max_size=3), fuzzy)},
    optional={
        "rules": st.one_of(st.lists(mapping_rule, max_size=3), fuzzy),
        "default": st.one_of(st.lists(st.sampled_from(["welcome", "phone", "nope"]), max_size=2),
                             fuzzy),
        "pin": fuzzy,
        "reward": st.one_of(st.sampled_from(["click", "conversion"]), fuzzy),
        "long_term_weight": st.one_of(st.floats(), fuzzy),
        "suppress_purchased_days": st.one_of(st.floats(), fuzzy),
        "cap": fuzzy,
        "description": fuzzy,
    },
)  # fmt: skip
content_doc = st.one_of(
    st.fixed_dictionaries(
        {"slots": st.dictionaries(st.one_of(st.sampled_from(["hero", "banner", "Bad"]),
                                            st.text(max_size=8)), slot, max_size=3)},
        optional={"x": fuzzy},
    ),
    fuzzy,
)  # fmt: skip
YAML_JUNK = [
    "- &a {name: x}\n- *a\n", "a: !!python/object/apply:os.system [echo]\n", "{{{{", "- [",
    "slots: !!binary aGVsbG8=\n", "? [a, b]\n: c\n", "key: 'unterminated\n", "\t- x\n",
    "%YAML 9.9\n---\na: 1\n", "---\n---\n- 1\n", "a: 1\na: 2\n", "slots:\n  hero: &h\n"
    "    variants: [{id: a, html: x}]\n    default: [a]\n  banner: *h\n",
    "- !!timestamp 2026-13-45\n", "- 0x_1\n- .inf\n- !!float nan\n", "\ufeff- x\n",
    "segments: {a: 1, a: 2}\n", "- name: [a]\n  description: {b: c}\n  rule: *undefined\n",
]  # fmt: skip
yaml_text = st.one_of(
    st.sampled_from(YAML_JUNK),
    st.text(max_size=120),
    st.lists(st.sampled_from(["- ", ": ", "{", "}", "[", "]", "&a ", "!!str ", "\n",
                              "  ", "name", "rule", "slots", "'", '"', "#", "|\n", ">\n", "?"]),
             max_size=40).map("".join),
)  # fmt: skip
