"""Client hints: real Chromium request headers, a table of hand-written cases, and garbage."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Any, get_args

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from personalize.context import Device, DeviceType
from personalize.context.client_hints import (
    ACCEPT_CH,
    HIGH_ENTROPY_HINTS,
    LOW_ENTROPY_HINTS,
    MAX_FIELD_LENGTH,
    VARY_LOW_ENTROPY,
    VARY_WITH_ACCEPT_CH,
    Brand,
    ClientHints,
    ClientHintsParser,
    apply_client_hints,
)
from personalize.context.device import DeviceDetector
from personalize.exceptions import ConfigurationError

DATA = Path(__file__).parent / "data"
CAPTURED: dict[str, Any] = yaml.safe_load((DATA / "client_hints_chromium.yaml").read_text("utf-8"))
CASES: dict[str, Any] = yaml.safe_load((DATA / "client_hints_cases.yaml").read_text("utf-8"))
HINT_NAMES = (*LOW_ENTROPY_HINTS, *HIGH_ENTROPY_HINTS)


@pytest.fixture(scope="module")
def detector() -> DeviceDetector:
    return DeviceDetector()


def _device(detector: DeviceDetector, headers: dict[str, str]) -> tuple[Device, ClientHints]:
    """What the builder will do: the User-Agent's device, then the hints over it."""
    user_agent = headers.get("user-agent")
    hints = ClientHintsParser().parse(headers)
    return apply_client_hints(detector.detect(user_agent), hints, user_agent=user_agent), hints


def _fields(record: Any, names: dict[str, Any]) -> dict[str, Any]:
    got = {name: getattr(record, name) for name in names}
    for name, value in got.items():  # tuples of Brand as lists, as YAML writes them
        if isinstance(value, tuple):
            got[name] = [list(v) if isinstance(v, Brand) else v for v in value]
    return got


def _captured() -> list[tuple[str, dict[str, str]]]:
    return [
        (scenario["name"], request["headers"])
        for scenario in CAPTURED["scenarios"]
        for request in scenario["requests"]
    ]


def test_the_capture_is_of_chromium_and_has_every_scenario() -> None:
    assert str(CAPTURED["chromium"]).count(".") == 3
    assert {s["name"] for s in CAPTURED["scenarios"]} == set(CASES["chromium"])
    asked = [h for _, h in _captured() if "sec-ch-ua-platform-version" in h]
    assert len(asked) >= 2 * len(CASES["chromium"])  # the Critical-CH retry and the next page


@pytest.mark.parametrize(
    ("scenario", "headers"), _captured(), ids=[f"{n}-{i}" for i, (n, _) in enumerate(_captured())]
)
def test_real_chromium_headers(
    detector: DeviceDetector, scenario: str, headers: dict[str, str]
) -> None:
    expected = CASES["chromium"][scenario]
    ua_only = detector.detect(headers["user-agent"])
    assert _fields(ua_only, expected["ua_only"]) == expected["ua_only"]
    device, hints = _device(detector, headers)
    assert hints.present and hints.platform and hints.mobile is not None
    want = expected["asked" if "sec-ch-ua-platform-version" in headers else "first"]
    assert _fields(device, want) == want


def test_reduced_android_user_agent_gets_its_model_and_version_from_the_hints() -> None:
    scenario = next(s for s in CAPTURED["scenarios"] if s["name"] == "android-phone-reduced-ua")
    headers = scenario["requests"][-1]["headers"]
    assert "Android 10; K)" in headers["user-agent"]
    hints = ClientHintsParser().parse(headers)
    assert (hints.model, hints.platform_version, hints.form_factors) == (
        "Pixel 7",
        "14.0.0",
        ("mobile",),
    )
    assert [b.name for b in hints.full_versions] == ["Chromium", "Google Chrome"]


@pytest.mark.parametrize("case", CASES["cases"], ids=[c["id"] for c in CASES["cases"]])
def test_case(detector: DeviceDetector, case: dict[str, Any]) -> None:
    device, hints = _device(detector, case["headers"])
    assert _fields(device, case["expect"]) == case["expect"]
    if "hints" in case:
        assert _fields(hints, case["hints"]) == case["hints"]


def test_no_hints_leave_the_device_alone(detector: DeviceDetector) -> None:
    device = detector.detect("Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 Mobile")
    hints = ClientHintsParser().parse({"user-agent": "x", "accept": "text/html"})
    assert hints == ClientHints() and not hints.present
    assert apply_client_hints(device, hints, user_agent="Android 10; K)") is device


def test_parses_are_memoized_by_raw_values_in_a_bounded_cache() -> None:
    parser = ClientHintsParser(cache_size=2)
    headers = {"sec-ch-ua-mobile": "?1", "sec-ch-ua-platform": '"Android"'}
    first = parser.parse(headers)
    assert parser.parse(dict(headers)) is first
    for i in range(3):
        parser.parse({"sec-ch-ua-platform-version": f'"{i}.0"'})
    again = parser.parse(headers)
    assert again == first and again is not first
    assert ClientHintsParser(cache_size=0).parse(headers) == first


@pytest.mark.parametrize("size", [-1, True, 1.5, "10"])
def test_cache_size_is_checked(size: Any) -> None:
    with pytest.raises(ConfigurationError):
        ClientHintsParser(cache_size=size)


def test_overlong_fields_are_ignored_even_when_they_would_parse() -> None:
    brands = ", ".join(f'"B{i}";v="{i}"' for i in range(200))
    assert len(brands) > MAX_FIELD_LENGTH
    hints = ClientHintsParser().parse({"sec-ch-ua": brands, "sec-ch-ua-mobile": "?0"})
    assert hints.brands == () and hints.mobile is False
    short = ", ".join(f'"B{i}";v="{i}"' for i in range(30))
    assert len(ClientHintsParser().parse({"sec-ch-ua": short}).brands) == 12


def test_header_name_constants_agree() -> None:
    assert {n.strip().lower() for n in ACCEPT_CH.split(",")} == set(HIGH_ENTROPY_HINTS)
    assert {n.strip().lower() for n in VARY_LOW_ENTROPY.split(",")} == set(LOW_ENTROPY_HINTS)
    assert {n.strip().lower() for n in VARY_WITH_ACCEPT_CH.split(",")} == set(HINT_NAMES)
    assert all(name == name.lower() for name in HINT_NAMES)


_values = st.one_of(
    st.text(max_size=60),
    st.text(alphabet='"?01;=,() vAndroiWsNtB.', max_size=40),
    st.sampled_from(['"Android"', "?1", "?0", '"14.0.0"', '"Tablet", "Mobile"', '"13.0.0"']),
)


@settings(max_examples=300, deadline=None)
@given(
    headers=st.dictionaries(st.sampled_from(HINT_NAMES), _values, max_size=7),
    user_agent=st.one_of(st.none(), st.text(max_size=80)),
    base=st.sampled_from([Device(), Device(type="mobile", os="iOS", is_touch=True)]),
)
def test_never_raises(headers: dict[str, str], user_agent: str | None, base: Device) -> None:
    hints = ClientHintsParser(cache_size=0).parse(headers)
    device = apply_client_hints(base, hints, user_agent=user_agent)
    assert device.type in get_args(DeviceType)
    for field in fields(Device):
        value = getattr(device, field.name)
        assert not isinstance(value, str) or len(value) <= 64
