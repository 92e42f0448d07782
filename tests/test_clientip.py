from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from personalize.context.clientip import MAX_HEADER_LENGTH, MAX_HOPS, ClientIPResolver
from personalize.exceptions import ConfigurationError

CASES: list[dict[str, Any]] = yaml.safe_load(
    (Path(__file__).parent / "data" / "clientip.yaml").read_text(encoding="utf-8")
)
TRUSTED = ["10.0.0.0/8"]


@pytest.mark.parametrize("case", CASES, ids=[case["id"] for case in CASES])
def test_resolve_table(case: dict[str, Any]) -> None:
    resolver = ClientIPResolver(case["trusted"])
    assert resolver.resolve(case["peer"], case["xff"], case["forwarded"]) == case["expect"]


def test_table_ids_are_unique() -> None:
    ids = [case["id"] for case in CASES]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize(
    "entries",
    [
        ["garbage"],
        ["10.0.0.0/33"],
        ["10.0.0.1/8"],  # host bits set
        ["2001:db8::1/32"],
        [""],
        ["10.0.0.0/8", "nope"],
        ["1.2.3"],
        [None],
        [167772161],
        "10.0.0.1",  # a bare string, not a list
    ],
    ids=repr,
)
def test_invalid_trusted_proxies_fail_at_construction(entries: Any) -> None:
    with pytest.raises(ConfigurationError):
        ClientIPResolver(entries)


def test_host_bits_message_suggests_network() -> None:
    with pytest.raises(ConfigurationError, match=r"did you mean '10\.0\.0\.0/8'"):
        ClientIPResolver(["10.0.0.1/8"])


def test_trusted_proxies_are_normalised() -> None:
    resolver = ClientIPResolver(
        [" 10.0.0.1 ", "2001:DB8::/32", "::ffff:192.168.0.0/112", "fd00::/8", "127.0.0.1/32"]
    )
    assert [str(n) for n in resolver.trusted_proxies] == [
        "10.0.0.1/32",
        "192.168.0.0/16",
        "127.0.0.1/32",
        "2001:db8::/32",
        "fd00::/8",
    ]


def test_accepts_any_iterable() -> None:
    resolver = ClientIPResolver(net for net in ("10.0.0.0/8",))
    assert resolver.resolve("10.0.0.1", "1.2.3.4", None) == "1.2.3.4"


def test_xff_8kb_header() -> None:
    resolver = ClientIPResolver(TRUSTED)
    header = ", ".join(["6.6.6.6"] * 1200) + ", 203.0.113.7, 10.0.0.1"
    assert len(header) > 8 * 1024
    assert resolver.resolve("10.0.0.2", header, None) == "203.0.113.7"


def test_forwarded_8kb_header() -> None:
    resolver = ClientIPResolver(TRUSTED)
    header = ", ".join(['for="[2001:db8::6]:1"'] * 400) + ", for=203.0.113.7;proto=https"
    assert len(header) > 8 * 1024
    assert resolver.resolve("10.0.0.2", None, header) == "203.0.113.7"


def test_cut_hop_at_the_cap_is_not_misread() -> None:
    # The cap falls inside "21.1.1.1": read as cut it would be "1.1.1.1". It must be dropped.
    header = "21.1.1.1," + " " * (MAX_HEADER_LENGTH - 16) + "10.0.0.5"
    assert header[-MAX_HEADER_LENGTH:].startswith("1.1.1.1,")
    resolver = ClientIPResolver(TRUSTED)
    assert resolver.resolve("10.0.0.2", header, None) is None


def test_only_the_last_hops_are_considered() -> None:
    resolver = ClientIPResolver(TRUSTED)
    trusted_hops = ", ".join(f"10.0.0.{i}" for i in range(1, MAX_HOPS + 1))
    # The client sits just beyond the last MAX_HOPS hops: unknown rather than guessed.
    assert resolver.resolve("10.0.0.254", "203.0.113.7, " + trusted_hops, None) is None
    # One hop fewer and it is found.
    fewer = ", ".join(f"10.0.0.{i}" for i in range(1, MAX_HOPS))
    assert resolver.resolve("10.0.0.254", "203.0.113.7, " + fewer, None) == "203.0.113.7"


def test_many_untrusted_hops_are_cheap_and_correct() -> None:
    resolver = ClientIPResolver(TRUSTED)
    header = ",".join(f"198.51.100.{i % 250}" for i in range(100_000))
    assert resolver.resolve("10.0.0.2", header, None) == f"198.51.100.{99_999 % 250}"


@pytest.mark.parametrize(
    "header",
    [
        "\x00" * 10_000,
        '"' * 10_000,
        "[" * 10_000,
        ";" * 10_000,
        "for=" + "\\" * 10_000,
        "for=" + "9" * 10_000,
        "ÿ" * 10_000,
        "for=[::1]:99999999999",
    ],
    ids=lambda h: repr(h[:12]),
)
def test_garbage_never_raises(header: str) -> None:
    resolver = ClientIPResolver(TRUSTED)
    assert resolver.resolve("10.0.0.2", header, header) in (None, "10.0.0.2")


def test_untrusted_peer_never_reads_headers() -> None:
    resolver = ClientIPResolver(TRUSTED)
    for header in ("1.2.3.4", "for=1.2.3.4", "\x00" * 100):
        assert resolver.resolve("203.0.113.7", header, header) == "203.0.113.7"


def test_default_trusts_nobody() -> None:
    assert ClientIPResolver().resolve("127.0.0.1", "1.2.3.4", "for=1.2.3.4") == "127.0.0.1"
