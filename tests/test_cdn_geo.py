"""CDN geolocation headers: a table per provider, the merge with GeoIP, and garbage."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Any, get_args

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from personalize.context import Geo
from personalize.context.cdn_geo import HEADER_NAMES, CDNGeoReader, Provider, merge_geo
from personalize.context.clock import validate_time_zone
from personalize.exceptions import ConfigurationError

CASES: list[dict[str, Any]] = yaml.safe_load(
    (Path(__file__).parent / "data" / "cdn_geo_cases.yaml").read_text("utf-8")
)


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_case(case: dict[str, Any]) -> None:
    reader = CDNGeoReader(case.get("providers", ["cloudflare"]))
    got = reader.read(case["headers"], trusted=case.get("trusted", True))
    expected = case["expect"]
    assert got == (None if expected is None else Geo(**expected))


def test_cases_cover_every_provider() -> None:
    used = {p for c in CASES for p in c.get("providers", ["cloudflare"])}
    assert used == set(get_args(Provider))


def test_nothing_is_read_from_an_untrusted_peer_whatever_it_sends() -> None:
    reader = CDNGeoReader(list(get_args(Provider)))
    headers = {name: "US" for names in HEADER_NAMES.values() for name in names}
    assert reader.read(headers, trusted=True) is not None
    assert reader.read(headers, trusted=False) is None


@pytest.mark.parametrize(
    "providers",
    [[], ["cloudflair"], ["cloudflare", "auto"], "cloudflare", ["auto"]],
)
def test_providers_are_checked_at_start_up(providers: Any) -> None:
    with pytest.raises(ConfigurationError):
        CDNGeoReader(providers)


@pytest.mark.parametrize("size", [-1, True, "10"])
def test_cache_size_is_checked(size: Any) -> None:
    with pytest.raises(ConfigurationError):
        CDNGeoReader(["cloudflare"], cache_size=size)


def test_header_names_follow_the_providers() -> None:
    reader = CDNGeoReader(["vercel", "cloudflare", "vercel"])
    assert reader.providers == ("vercel", "cloudflare")
    assert reader.header_names[0] == "x-vercel-ip-country"
    assert "cf-ipcountry" in reader.header_names
    assert all(n == n.lower() for n in reader.header_names)


def test_answers_are_memoized_by_header_values() -> None:
    reader = CDNGeoReader(["cloudflare"], cache_size=2)
    first = reader.read({"cf-ipcountry": "GB", "cf-ipcity": "Leeds"}, trusted=True)
    assert reader.read({"cf-ipcity": "Leeds", "cf-ipcountry": "GB"}, trusted=True) is first


def test_huge_headers_are_cut_before_they_are_cached() -> None:
    reader = CDNGeoReader(["netlify", "cloudflare"])
    headers = {"x-nf-geo": "e" * 100_000, "cf-ipcountry": "GB", "cf-ipcity": "x" * 100_000}
    assert reader.read(headers, trusted=True) == Geo(country="GB")


LONDON = Geo(
    country="GB",
    country_name="United Kingdom",
    region="ENG",
    region_name="England",
    city="London",
    time_zone="Europe/London",
    latitude=51.5,
    longitude=-0.12,
    continent="EU",
)
MERGES: list[tuple[str, Geo | None, Geo | None, Geo | None]] = [
    ("neither", None, None, None),
    ("geoip-only", None, LONDON, LONDON),
    ("cdn-only", Geo(country="GB"), None, Geo(country="GB")),
    (
        "country-only-cdn-is-filled-in",
        Geo(country="GB"),
        LONDON,
        LONDON,
    ),
    (
        "cdn-values-win",
        Geo(country="GB", city="LONDON", time_zone="Europe/Belfast"),
        LONDON,
        replace(LONDON, city="LONDON", time_zone="Europe/Belfast"),
    ),
    ("another-country-adds-nothing", Geo(country="IE"), LONDON, Geo(country="IE")),
    (
        "another-region-adds-only-country-facts",
        Geo(country="GB", region="SCT", city="Glasgow"),
        LONDON,
        Geo(
            country="GB",
            country_name="United Kingdom",
            continent="EU",
            region="SCT",
            city="Glasgow",
        ),
    ),
    (
        "another-city-adds-no-point-or-zone",
        Geo(country="GB", region="ENG", city="Leeds"),
        LONDON,
        Geo(
            country="GB",
            country_name="United Kingdom",
            continent="EU",
            region="ENG",
            region_name="England",
            city="Leeds",
        ),
    ),
]


@pytest.mark.parametrize(
    ("cdn", "geoip", "expected"), [m[1:] for m in MERGES], ids=[m[0] for m in MERGES]
)
def test_merge_with_geoip(cdn: Geo | None, geoip: Geo | None, expected: Geo | None) -> None:
    assert merge_geo(cdn, geoip) == expected


_values = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["GB", "XX", "T1", "Europe/London", "EST", "51.5", "-0.1", "nan", "**", ""]),
    st.floats(allow_nan=True).map(str),
)


@settings(max_examples=300, deadline=None)
@given(
    headers=st.dictionaries(
        st.sampled_from([n for names in HEADER_NAMES.values() for n in names]), _values
    )
)
def test_never_raises_and_every_value_is_valid(headers: dict[str, str]) -> None:
    geo = CDNGeoReader(list(get_args(Provider)), cache_size=0).read(headers, trusted=True)
    if geo is None:
        return
    assert geo.country and len(geo.country) == 2 and geo.country.isupper()
    assert geo.country not in {"XX", "T1", "ZZ", "EU"}
    if geo.time_zone is not None:
        assert validate_time_zone(geo.time_zone) == geo.time_zone
    assert (geo.latitude is None) == (geo.longitude is None)
    if geo.latitude is not None and geo.longitude is not None:
        assert math.isfinite(geo.latitude) and abs(geo.latitude) <= 90
        assert math.isfinite(geo.longitude) and abs(geo.longitude) <= 180
    for name in ("country_name", "region_name", "city"):
        value = getattr(geo, name)
        assert value is None or 0 < len(value) <= 100
