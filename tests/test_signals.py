from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from personalize.context import Signals, signals
from personalize.context.signals import MAX_HEADER_LENGTH, MAX_LANGUAGES, parse_signals

CASES: list[dict[str, Any]] = yaml.safe_load(
    (Path(__file__).parent / "data" / "signals.yaml").read_text(encoding="utf-8")
)


@pytest.mark.parametrize("case", CASES, ids=[case["id"] for case in CASES])
def test_parse_signals_table(case: dict[str, Any]) -> None:
    got = parse_signals(case["accept_language"], case["sec_gpc"], case["dnt"])
    assert got == Signals(
        languages=tuple(case["languages"]), gpc=case["gpc"], dnt=case["dnt_expect"]
    )


def test_table_ids_are_unique() -> None:
    ids = [case["id"] for case in CASES]
    assert len(ids) == len(set(ids))


def test_huge_header_is_capped_to_whole_elements() -> None:
    # 8 KB of languages: only the first MAX_HEADER_LENGTH characters are read, and the element
    # cut there is dropped rather than read as a shorter tag.
    header = ",".join(["en-gb;q=0.5", "de;q=0.9"] * 400)
    assert len(header) > 8000
    got = parse_signals(header, None, None)
    assert got.languages == ("de", "en-gb")


def test_cut_element_at_cap_is_not_misread() -> None:
    # "zz-yy" straddles the cap: read as cut it would be "zz", a valid but wrong tag.
    prefix = "aa;q=0.001," * 90
    header = prefix + " " * (MAX_HEADER_LENGTH - len(prefix) - 2) + "zz-yy"
    assert header[:MAX_HEADER_LENGTH].endswith(" zz")
    assert parse_signals(header, None, None).languages == ("aa",)
    assert parse_signals(header[:MAX_HEADER_LENGTH], None, None).languages == ("zz", "aa")


def test_huge_single_token_is_harmless() -> None:
    assert parse_signals("e" * 100_000, "1", None) == Signals(languages=(), gpc=True)


def test_many_languages_keep_the_best_ten() -> None:
    tags = [f"l{chr(97 + i // 26)}{chr(97 + i % 26)}" for i in range(40)]
    header = ", ".join(f"{tag};q=0.{i:03d}" for i, tag in enumerate(tags, start=1))
    got = parse_signals(header, None, None).languages
    assert len(got) == MAX_LANGUAGES
    assert got == tuple(reversed(tags))[:MAX_LANGUAGES]


def test_primary_language_property() -> None:
    assert parse_signals("pt-BR, en;q=0.5", None, None).language == "pt"
    assert parse_signals(None, None, None).language is None


def test_memoized_and_bounded() -> None:
    signals._signals.cache_clear()
    first = parse_signals("en-US,en;q=0.9", "1", None)
    second = parse_signals("en-US,en;q=0.9", " 1", None)
    assert first is second  # same parse: the cache key is the normalised signals
    info = signals._signals.cache_info()
    assert info.hits == 1
    assert info.maxsize is not None and info.maxsize > 0


def test_headers_as_latin1_bytes() -> None:
    raw = "fr-FR,fr;q=0.9,é;q=0.8".encode("latin-1")
    assert parse_signals(raw.decode("latin-1"), None, None).languages == ("fr-fr", "fr")
