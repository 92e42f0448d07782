from __future__ import annotations

import functools
import json
import re
from dataclasses import asdict
from pathlib import Path
from typing import Any

import crawleruseragents
import pytest
import yaml
from conftest import shared_data_path

from personalize.context import Device
from personalize.context.device import (
    MAX_USER_AGENT_LENGTH,
    PATTERN_FIXES,
    CrawlerMatcher,
    DeviceDetector,
    crawler_matcher,
)
from personalize.exceptions import ConfigurationError

CASES: list[dict[str, Any]] = yaml.safe_load(
    (Path(__file__).parent / "data" / "device_cases.yaml").read_text(encoding="utf-8")
)

# Crawler examples that are real browsers' User-Agents, so cannot be called bots without calling
# those browsers bots too (their patterns are dropped, see PATTERN_FIXES).
NOT_BOTS = {
    # Instagram's in-app browser on an OPPO phone; crawler-user-agents lists its Android build id
    # "AP3A.240617.008" as 80legs'.
    "Mozilla/5.0 (Linux; Android 15; CPH2557 Build/AP3A.240617.008; wv) AppleWebKit/537.36"
    " (KHTML, like Gecko) Version/4.0 Chrome/142.0.7444.142 Mobile Safari/537.36 Instagram"
    " 406.0.0.58.159 Android (35/15; 480dpi; 1080x2400; OPPO; CPH2557; OP573DL1; mt6833; en_MY;"
    " 822918295; IABMV/1) NV/1",
}


@pytest.fixture(scope="module")
def detector() -> DeviceDetector:
    return DeviceDetector(cache_size=65536)


def _ua(case: dict[str, Any]) -> str | None:
    ua: str | None = case["ua"]
    return None if ua is None else ua * case.get("repeat", 1)


@pytest.mark.parametrize("case", CASES, ids=[case["id"] for case in CASES])
def test_detect_table(detector: DeviceDetector, case: dict[str, Any]) -> None:
    fields = asdict(detector.detect(_ua(case)))
    assert {key: fields[key] for key in case["expect"]} == case["expect"]


def test_table_ids_are_unique() -> None:
    ids = [case["id"] for case in CASES]
    assert len(ids) == len(set(ids))


def test_bot_type_agrees_with_is_bot(detector: DeviceDetector) -> None:
    for case in CASES:
        device = detector.detect(_ua(case))
        assert (device.type == "bot") == device.is_bot, case["id"]


@pytest.mark.parametrize("value", [None, "", b"curl/8.5.0", 42, "\ud800", "\x00" * 5000])
def test_never_raises(value: Any) -> None:
    assert isinstance(DeviceDetector().detect(value), Device)


def test_long_header_is_truncated_before_parsing() -> None:
    detector = DeviceDetector()
    ua = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/124.0.0.0 Safari/537.36 "
    long = (ua * 200)[: MAX_USER_AGENT_LENGTH + 5000]
    assert detector.detect(long) == detector.detect(long[:MAX_USER_AGENT_LENGTH])
    # Both were the same cache entry: the key is the truncated header.
    assert detector.cache_info().currsize == 1


def test_cache_hits_on_repeat() -> None:
    detector = DeviceDetector(cache_size=16)
    ua = "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)"
    first = detector.detect(ua)
    for _ in range(5):
        assert detector.detect(ua) is first
    info = detector.cache_info()
    assert (info.hits, info.misses, info.currsize) == (5, 1, 1)
    detector.cache_clear()
    assert detector.cache_info().currsize == 0


def test_cache_is_bounded() -> None:
    size = 64
    detector = DeviceDetector(cache_size=size)
    for i in range(2 * size):
        detector.detect(f"Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/{i}.0 Safari/537.36")
        assert detector.cache_info().currsize <= size
    info = detector.cache_info()
    assert (info.maxsize, info.currsize, info.misses) == (size, size, 2 * size)


def test_cache_size_zero_disables_the_cache() -> None:
    detector = DeviceDetector(cache_size=0)
    assert detector.detect("curl/8.5.0").is_bot
    assert detector.cache_info().currsize == 0


def test_negative_cache_size_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="cache_size"):
        DeviceDetector(cache_size=-1)


# The index must agree with re.search pattern by pattern: every one of these patterns is tried on
# every one of the texts. They cover what the literal extraction reads and what it gives up on.
TRICKY_PATTERNS = [
    r"Googlebot\/",
    r"^curl",
    r"[wW]get",
    r"S[eE][mM]rushBot",
    r"(^| )sentry\/",
    r"AdsBot-Google([^-]|$)",
    r"Automaton|Newsify Feed Fetcher",
    r"BlogTraffic\/\d\.\d+ Feed-Fetcher",
    r"ContextualBot[\s\S]*outcomes\.net",
    r"abc?de",
    r"abx*yz",
    r"abcd{2}ef",
    r"ab+cd",
    r"xy\.?zw",
    r"(?i)mixedcase",
    r"(?x) spa ced",
    r"\x41BCD",
    r"[]x]yzw",
    r"(a|b)cde|fg",
    r"SSL Labs$",
    r"ab",
]
TRICKY_TEXTS = [
    "Googlebot/2.1",
    "curl/8",
    "xcurl",
    "wget",
    "Wget/1",
    "SemrushBot",
    "SEMrushBot",
    "app sentry/1",
    "sentry/1",
    "xsentry/1",
    "AdsBot-Google",
    "AdsBot-Google-Mobile",
    "Automaton",
    "Newsify Feed Fetcher",
    "BlogTraffic/1.23 Feed-Fetcher",
    "ContextualBot x y outcomes.net",
    "abde",
    "abcde",
    "abyz",
    "abxxxyz",
    "abcddef",
    "abbbcd",
    "xyzw",
    "xy.zw",
    "MIXEDcase",
    "spaced",
    "ABCD",
    "]yzw",
    "acde",
    "fg",
    "SSL Labs",
    "SSL Labs x",
    "ab",
    "",
]


@pytest.mark.parametrize("pattern", TRICKY_PATTERNS)
def test_matcher_agrees_with_re_search(pattern: str) -> None:
    matcher = CrawlerMatcher([pattern])
    for text in TRICKY_TEXTS:
        assert matcher.matches(text) == bool(re.search(pattern, text)), (pattern, text)


def test_matcher_skips_what_does_not_compile() -> None:
    matcher = CrawlerMatcher(["good", "bad(", "[unclosed", "(?<=a+)b"])
    assert matcher.size == 1
    assert [pattern for pattern, _ in matcher.skipped] == ["bad(", "[unclosed", "(?<=a+)b"]
    assert all("does not compile" in reason for _, reason in matcher.skipped)
    assert matcher.matches("so good") and not matcher.matches("bad(")


def test_package_patterns_all_compile() -> None:
    matcher = crawler_matcher()
    assert matcher.skipped == ()
    dropped = sum(1 for fix in PATTERN_FIXES.values() if fix is None)
    assert matcher.size == len(crawleruseragents.CRAWLER_USER_AGENTS_DATA) - dropped


def test_pattern_fixes_still_match_their_examples() -> None:
    entries = {entry["pattern"]: entry for entry in crawleruseragents.CRAWLER_USER_AGENTS_DATA}
    for original, fix in PATTERN_FIXES.items():
        assert original in entries, f"{original!r} is no longer in crawler-user-agents"
        for example in entries[original]["instances"]:
            if fix is None:
                assert example in NOT_BOTS
            else:
                assert re.search(fix, example), (fix, example)


def test_package_examples_are_bots(detector: DeviceDetector) -> None:
    """The crawler-user-agents package's own examples, which need no ../shared/data."""
    missed = [
        example
        for entry in crawleruseragents.CRAWLER_USER_AGENTS_DATA
        for example in entry.get("instances", [])
        if example not in NOT_BOTS and not detector.detect(example).is_bot
    ]
    assert missed == []


def test_crawler_examples_are_bots(detector: DeviceDetector) -> None:
    entries = json.loads(
        shared_data_path("crawler-user-agents", "crawler-user-agents.json").read_text("utf-8")
    )
    examples = [example for entry in entries for example in entry.get("instances", [])]
    assert len(examples) == 2116
    missed = [ua for ua in examples if not detector.detect(ua).is_bot]
    assert sorted(missed) == sorted(NOT_BOTS)
    for ua in NOT_BOTS:
        assert detector.detect(ua).type == "mobile"


def _uap_cases(name: str) -> list[dict[str, Any]]:
    return _load_uap_cases(shared_data_path("uap-core", "tests", name))


@functools.cache
def _load_uap_cases(path: Path) -> list[dict[str, Any]]:
    # test_device.yaml holds 16,129 cases: the C loader reads it in seconds, not tens.
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    cases: list[dict[str, Any]] = yaml.load(path.read_text("utf-8"), Loader=loader)["test_cases"]
    return cases


def _family(family: str) -> str | None:
    return None if family == "Other" else family


def test_uap_core_browser_families(detector: DeviceDetector) -> None:
    cases = _uap_cases("test_ua.yaml")
    assert len(cases) == 1601
    wrong = [
        (case["user_agent_string"], case["family"], detector.detect(case["user_agent_string"]))
        for case in cases
        if detector.detect(case["user_agent_string"]).browser != _family(case["family"])
    ]
    assert wrong == []


def test_uap_core_os_families(detector: DeviceDetector) -> None:
    cases = _uap_cases("test_os.yaml")
    wrong = [
        (case["user_agent_string"], case["family"])
        for case in cases
        if detector.detect(case["user_agent_string"]).os != _family(case["family"])
    ]
    assert wrong == []


# Browsers by uap-core's own family names; none of their cases may be called a bot.
BROWSERS = {
    "Chrome",
    "Chrome Mobile",
    "Chrome Mobile iOS",
    "Chrome Mobile WebView",
    "Edge",
    "Edge Mobile",
    "Firefox",
    "Firefox Mobile",
    "IE",
    "IE Mobile",
    "Mobile Safari",
    "Mobile Safari UI/WKWebView",
    "Opera",
    "Opera Mini",
    "Opera Mobile",
    "Safari",
    "Samsung Internet",
    "UC Browser",
    "Yandex Browser",
    "HeyTap Browser",
}


def test_uap_core_browsers_are_not_bots(detector: DeviceDetector) -> None:
    cases = [
        case
        for case in _uap_cases("test_ua.yaml")
        if case["family"] in BROWSERS
        # Google's page-preview fetcher, a bot that uap-core files under Chrome
        and "Google Web Preview" not in case["user_agent_string"]
    ]
    assert len(cases) > 100
    bots = [
        case["user_agent_string"]
        for case in cases
        if detector.detect(case["user_agent_string"]).is_bot
    ]
    assert bots == []


def test_uap_core_browsers_are_plausible_browsers(detector: DeviceDetector) -> None:
    """Nearly every browser in uap-core's vectors is remembered; what is not is old
    feature-phone software (J2ME, Symbian), app fetches (CFNetwork) or mangled log lines."""
    cases = [
        case["user_agent_string"]
        for case in _uap_cases("test_ua.yaml")
        if case["family"] in BROWSERS and "Google Web Preview" not in case["user_agent_string"]
    ]
    browsers = [ua for ua in cases if detector.detect(ua).is_browser]
    assert len(browsers) >= 0.8 * len(cases) > 80
    modern = [ua for ua in cases if ua.startswith("Mozilla/5.0 (")]
    assert [ua for ua in modern if ua not in browsers] == []


def test_uap_core_spiders_are_not_browsers(detector: DeviceDetector) -> None:
    cases = [
        c["user_agent_string"] for c in _uap_cases("test_device.yaml") if c["family"] == "Spider"
    ]
    assert len(cases) > 50
    assert [ua for ua in cases if detector.detect(ua).is_browser] == []


@pytest.mark.parametrize(
    ("families", "expected"),
    [
        ({"iPhone", "iPod"}, "mobile"),
        ({"iPad", "Kindle"}, "tablet"),
        ({"Spider"}, "bot"),
    ],
)
def test_uap_core_device_families(
    detector: DeviceDetector, families: set[str], expected: str
) -> None:
    cases = [case for case in _uap_cases("test_device.yaml") if case["family"] in families]
    assert len(cases) >= 8
    wrong = [
        case["user_agent_string"]
        for case in cases
        if detector.detect(case["user_agent_string"]).type != expected
    ]
    assert wrong == []


def test_uap_core_phone_brands_are_mobile_or_tablet(detector: DeviceDetector) -> None:
    """Phones and tablets of the big brands are never desktops, bots or "other" (1 in 4 of them)."""
    cases = [
        case
        for case in _uap_cases("test_device.yaml")
        if case["brand"] in {"Apple", "Samsung", "Huawei", "XiaoMi"}
        and "Mozilla/5.0" in case["user_agent_string"]
        and any(os in case["user_agent_string"] for os in ("Android", "iPhone", "iPad"))
    ][::4]
    assert len(cases) > 400
    wrong = [
        (case["brand"], case["user_agent_string"])
        for case in cases
        if detector.detect(case["user_agent_string"]).type not in {"mobile", "tablet"}
    ]
    assert wrong == []
