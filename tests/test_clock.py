from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from personalize.context import Clock, Geo
from personalize.context.builder import LOCAL_HOUR, ContextBuilder
from personalize.context.clock import local_clock, validate_time_zone
from personalize.exceptions import ConfigurationError

CASES: list[dict[str, Any]] = yaml.safe_load(
    (Path(__file__).parent / "data" / "clock.yaml").read_text(encoding="utf-8")
)


@pytest.mark.parametrize("case", CASES, ids=[case["id"] for case in CASES])
def test_local_clock_table(case: dict[str, Any]) -> None:
    now = datetime.fromisoformat(case["now"])
    clock = local_clock(now, case["zone"], default=case.get("default", "UTC"))
    assert asdict(clock) == case["expect"]


def test_table_ids_are_unique() -> None:
    ids = [case["id"] for case in CASES]
    assert len(ids) == len(set(ids))


def test_naive_datetime_is_taken_as_utc() -> None:
    aware = local_clock(datetime(2024, 7, 15, 11, 30, tzinfo=UTC), "Asia/Tokyo")
    naive = local_clock(datetime(2024, 7, 15, 11, 30), "Asia/Tokyo")
    assert naive == aware
    assert naive.iso == "2024-07-15T20:30:00+09:00"


def test_every_hour_has_its_daypart() -> None:
    expected = ["night"] * 6 + ["morning"] * 6 + ["afternoon"] * 6 + ["evening"] * 6
    got = [local_clock(datetime(2024, 1, 1, hour, tzinfo=UTC), "UTC").daypart for hour in range(24)]
    assert got == expected


def test_every_weekday_weekend_flag() -> None:
    # 2024-01-01 was a Monday.
    clocks = [local_clock(datetime(2024, 1, 1 + day, 12, tzinfo=UTC), None) for day in range(7)]
    assert [c.weekday for c in clocks] == list(range(7))
    assert [c.weekend for c in clocks] == [False] * 5 + [True] * 2


def test_very_long_zone_name_falls_back() -> None:
    clock = local_clock(datetime(2024, 1, 1, tzinfo=UTC), "Europe/" + "x" * 10_000)
    assert clock.time_zone == "UTC"


def test_returns_clock_record() -> None:
    assert isinstance(local_clock(datetime(2024, 1, 1, tzinfo=UTC), "UTC"), Clock)


@pytest.mark.parametrize(
    "name", ["UTC", "Etc/UTC", "Europe/London", "Asia/Kolkata", "America/Argentina/Buenos_Aires"]
)
def test_validate_time_zone_accepts(name: str) -> None:
    assert validate_time_zone(name) == name


@pytest.mark.parametrize(
    "name",
    [
        "",
        "Mars/Olympus_Mons",
        "Europe",
        "../etc/passwd",
        "/etc/localtime",
        "Europe/London ",
        "x" * 300,
    ],
)
def test_validate_time_zone_rejects(name: str) -> None:
    with pytest.raises(ConfigurationError, match="unknown time zone"):
        validate_time_zone(name)


def test_validate_time_zone_rejects_non_string() -> None:
    with pytest.raises(ConfigurationError):
        validate_time_zone(None)  # type: ignore[arg-type]


# -- a simulated local hour (scope["personalize.local_hour"], set by an outer ASGI layer) -----


class _ZoneOnly:
    """A stand-in for the GeoIP reader that puts every address in one time zone."""

    def __init__(self, zone: str) -> None:
        self.zone = zone

    def lookup(self, ip: str) -> Geo:
        return Geo(country="XX", time_zone=self.zone)

    def close(self) -> None:
        pass


@pytest.mark.parametrize(
    "instant",
    [
        "2024-01-15T12:00:00+00:00",
        "2024-03-31T00:30:00+00:00",  # London springs forward at 01:00 UTC
        "2024-10-27T00:59:00+00:00",  # and falls back at 01:00 UTC
        "2024-07-06T23:45:00+00:00",  # Saturday night in London, Sunday morning in Tokyo
    ],
)
@pytest.mark.parametrize("zone", [None, "Asia/Tokyo", "America/St_Johns", "Asia/Kathmandu"])
def test_a_simulated_local_hour_keeps_the_zone_and_moves_the_clock(
    instant: str, zone: str | None
) -> None:
    builder = ContextBuilder(site_time_zone="Europe/London")
    if zone is not None:  # as if GeoIP had placed the visitor there
        builder.geo = _ZoneOnly(zone)  # type: ignore[assignment]
    now = datetime.fromisoformat(instant).timestamp()
    plain = {"type": "http", "client": ("203.0.113.9", 1)}
    real = builder.build(plain, {}, now).clock
    assert real.time_zone == (zone or "Europe/London")
    for hour in range(24):
        clock = builder.build({**plain, LOCAL_HOUR: hour}, {}, now).clock
        assert (clock.hour, clock.time_zone, clock.minute) == (hour, real.time_zone, real.minute)
        assert clock.daypart == ("night", "morning", "afternoon", "evening")[hour // 6]
        # The nearest such time: at most 12 hours away (the weekday moves only when that
        # crosses midnight); an hour a daylight saving change skips is taken a day away.
        moved = abs(datetime.fromisoformat(clock.iso) - datetime.fromisoformat(real.iso))
        limit = 12 if instant.startswith(("2024-01", "2024-07")) else 25
        assert moved.total_seconds() <= limit * 3600


@pytest.mark.parametrize("value", [True, 24, -1, 20.0, "20", None, [20]])
def test_anything_but_an_hour_leaves_the_clock_alone(value: object) -> None:
    builder = ContextBuilder(site_time_zone="Europe/London")
    now = datetime(2024, 1, 15, 12, 0, tzinfo=UTC).timestamp()
    assert builder.build({"type": "http", LOCAL_HOUR: value}, {}, now).clock.hour == 12
