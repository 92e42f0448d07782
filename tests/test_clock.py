from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from personalize.context import Clock
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
