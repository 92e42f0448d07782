from __future__ import annotations

import ipaddress
import json
import logging
import shutil
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import shared_data_path

from personalize.context import Geo
from personalize.context import geo as geo_module
from personalize.context.geo import GeoLocator
from personalize.exceptions import ConfigurationError, GeoDatabaseError

TEST_DATA = ("maxmind-test-db", "test-data")
SOURCE_DATA = ("maxmind-test-db", "source-data")
CASES: list[dict[str, Any]] = yaml.safe_load(
    (Path(__file__).parent / "data" / "geo.yaml").read_text(encoding="utf-8")
)


def db_path(name: str) -> Path:
    return shared_data_path(*TEST_DATA, name)


@pytest.fixture
def city() -> Iterator[GeoLocator]:
    with GeoLocator(db_path("GeoIP2-City-Test.mmdb")) as locator:
        yield locator


@pytest.mark.parametrize("case", CASES, ids=[case["id"] for case in CASES])
def test_lookup_table(case: dict[str, Any]) -> None:
    with GeoLocator(db_path(case["db"])) as locator:
        got = locator.lookup(case["ip"])
    if case["expect"] is None:
        assert got is None
    else:
        assert got is not None
        fields = asdict(got)
        assert {key: fields[key] for key in case["expect"]} == case["expect"]


def test_table_ids_are_unique() -> None:
    ids = [case["id"] for case in CASES]
    assert len(ids) == len(set(ids))


def _first_address(network: str) -> str:
    net = ipaddress.ip_network(network, strict=False)
    address = net.network_address
    # The source data writes IPv4 networks IPv6-embedded: ::81.2.69.142/127 is 81.2.69.142/31.
    if address.version == 6 and net.prefixlen >= 96 and int(address) < 2**32:
        return str(ipaddress.IPv4Address(int(address)))
    return str(address)


def _name(part: dict[str, Any] | None) -> str | None:
    name = (part or {}).get("names", {}).get("en")
    return str(name) if name is not None else None


@pytest.mark.parametrize(
    ("db", "source"),
    [
        ("GeoIP2-City-Test.mmdb", "GeoIP2-City-Test.json"),
        ("GeoLite2-City-Test.mmdb", "GeoLite2-City-Test.json"),
        ("GeoIP2-Country-Test.mmdb", "GeoIP2-Country-Test.json"),
        ("GeoLite2-Country-Test.mmdb", "GeoLite2-Country-Test.json"),
    ],
)
def test_every_source_record(db: str, source: str) -> None:
    """The first address of each source network gives that record's country, city, region..."""
    records = json.loads(shared_data_path(*SOURCE_DATA, source).read_text(encoding="utf-8"))
    is_city = "City" in db
    mismatches = []
    with GeoLocator(db_path(db)) as locator:
        for item in records:
            ((network, record),) = item.items()
            ip = _first_address(network)
            got = asdict(locator.lookup(ip) or Geo())
            subdivisions = record.get("subdivisions") or [{}]
            location = record.get("location", {})
            expected = {
                "country": record.get("country", {}).get("iso_code"),
                "country_name": _name(record.get("country")),
                "continent": record.get("continent", {}).get("code"),
                "city": _name(record.get("city")) if is_city else None,
                "region": subdivisions[0].get("iso_code") if is_city else None,
                "region_name": _name(subdivisions[0]) if is_city else None,
                "time_zone": location.get("time_zone") if is_city else None,
                "latitude": location.get("latitude") if is_city else None,
                "longitude": location.get("longitude") if is_city else None,
            }
            if got != expected:
                mismatches.append((network, ip, got, expected))
    assert len(records) > 200
    assert mismatches == []


# --- start-up errors -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "message"),
    [
        # Opens (the reader is lazy) but its data section cannot be decoded: the start-up
        # probe decodes the first records and fails.
        ("GeoIP2-City-Test-Broken-Double-Format.mmdb", "is corrupt: decoding its first records"),
        # The reader itself refuses it: the search tree extends past the end of the file.
        ("GeoIP2-City-Test-Invalid-Node-Count.mmdb", "is not a valid MaxMind DB file"),
        ("GeoLite2-ASN-Test.mmdb", "is a 'GeoLite2-ASN' database"),
        ("GeoIP2-Anonymous-IP-Test.mmdb", "is a 'GeoIP2-Anonymous-IP' database"),
    ],
)
def test_unusable_test_databases_fail_at_start_up(name: str, message: str) -> None:
    path = db_path(name)
    with pytest.raises(GeoDatabaseError, match=message) as info:
        GeoLocator(path)
    assert str(path) in str(info.value)
    assert "GeoLite2-City" in str(info.value)  # says what to use instead
    assert isinstance(info.value, ConfigurationError)


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "GeoLite2-City.mmdb"
    with pytest.raises(GeoDatabaseError, match="does not exist") as info:
        GeoLocator(path)
    assert str(path) in str(info.value)


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(GeoDatabaseError, match="is a directory"):
        GeoLocator(tmp_path)


@pytest.mark.parametrize(
    "content",
    [b"", b"hello, world\n", b"\xab\xcd\xefMaxMind.com" + b"\x00" * 100, b"\x00" * 4096],
    ids=["empty", "text", "bare-metadata-marker", "zeros"],
)
def test_not_a_database(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "fake.mmdb"
    path.write_bytes(content)
    with pytest.raises(GeoDatabaseError, match="not a valid MaxMind DB file"):
        GeoLocator(path)


@pytest.mark.parametrize("keep", [0.1, 0.5, 0.9, 0.99])
def test_truncated_database(tmp_path: Path, keep: float) -> None:
    data = db_path("GeoIP2-City-Test.mmdb").read_bytes()
    path = tmp_path / "truncated.mmdb"
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(GeoDatabaseError):
        GeoLocator(path)


def test_copy_of_good_database_works(tmp_path: Path) -> None:
    path = tmp_path / "city.mmdb"
    shutil.copyfile(db_path("GeoIP2-City-Test.mmdb"), path)
    with GeoLocator(str(path), cache_size=0) as locator:
        assert locator.database_type == "GeoIP2-City"
        assert locator.path == str(path)
        result = locator.lookup("81.2.69.142")
        assert result is not None and result.city == "London"


@pytest.mark.parametrize("cache_size", [-1, 1.5, "10", True])
def test_bad_cache_size(cache_size: Any) -> None:
    with pytest.raises(ConfigurationError, match="cache_size"):
        GeoLocator(db_path("GeoIP2-City-Test.mmdb"), cache_size=cache_size)


# --- per request ----------------------------------------------------------------------------


def test_corrupt_record_at_request_time_is_none_and_warns_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Without the start-up probe the broken database opens, and its records fail per request.
    monkeypatch.setattr(geo_module, "_PROBE_RECORDS", 0)
    caplog.set_level(logging.WARNING, logger="personalize.context.geo")
    with GeoLocator(db_path("GeoIP2-City-Test-Broken-Double-Format.mmdb")) as locator:
        assert locator.lookup("81.2.69.142") is None
        assert locator.lookup("2.125.160.216") is None
        assert locator.lookup("2001:218::1") is None
        assert locator.lookup("1.1.1.1") is None  # simply absent: no warning
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "InvalidDatabaseError" in warnings[0].getMessage()
    assert "Broken-Double-Format" in warnings[0].getMessage()


class CountingModel:
    def __init__(self, locator: GeoLocator) -> None:
        self.calls: list[str] = []
        self._model = locator._model

    def __call__(self, address: Any) -> Any:
        self.calls.append(str(address))
        return self._model(address)


def test_non_global_addresses_never_touch_the_database(
    city: GeoLocator, monkeypatch: pytest.MonkeyPatch
) -> None:
    spy = CountingModel(city)
    monkeypatch.setattr(city, "_model", spy)
    for ip in ("10.0.0.1", "127.0.0.1", "::1", "192.168.0.1", "fe80::1", "100.64.0.1", "x"):
        assert city.lookup(ip) is None
    assert spy.calls == []


def test_lookups_are_memoized_and_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    with GeoLocator(db_path("GeoIP2-City-Test.mmdb"), cache_size=2) as locator:
        spy = CountingModel(locator)
        monkeypatch.setattr(locator, "_model", spy)
        first = locator.lookup("81.2.69.142")
        assert locator.lookup("81.2.69.142") is first
        assert locator.lookup("::ffff:81.2.69.142") is first  # same address, same entry
        assert spy.calls == ["81.2.69.142"]
        locator.lookup("2.125.160.216")
        locator.lookup("1.1.1.1")  # a miss is cached too, and evicts London
        locator.lookup("81.2.69.142")
        assert spy.calls == ["81.2.69.142", "2.125.160.216", "1.1.1.1", "81.2.69.142"]


def test_cache_off(monkeypatch: pytest.MonkeyPatch) -> None:
    with GeoLocator(db_path("GeoIP2-City-Test.mmdb"), cache_size=0) as locator:
        spy = CountingModel(locator)
        monkeypatch.setattr(locator, "_model", spy)
        locator.lookup("81.2.69.142")
        locator.lookup("81.2.69.142")
        assert len(spy.calls) == 2


def test_close_is_idempotent_and_later_lookups_are_none() -> None:
    locator = GeoLocator(db_path("GeoIP2-City-Test.mmdb"))
    assert locator.lookup("81.2.69.142") is not None
    locator.close()
    locator.close()
    assert locator.lookup("81.2.69.142") is None
    assert "closed" in repr(locator)


def test_context_manager_closes() -> None:
    with GeoLocator(db_path("GeoLite2-Country-Test.mmdb")) as locator:
        assert "country" in repr(locator)
    assert locator.lookup("81.2.69.142") is None


def test_huge_input_is_none(city: GeoLocator) -> None:
    assert city.lookup("1" * 100_000) is None
    assert city.lookup("81.2.69.142" + " " * 100) is None
