"""When a variant may show: a window of weekdays, hours and dates in the visitor's local time.

Written in content YAML as ``schedule: {days: [mon, fri], hours: [18, 23]}``. ``hours`` is
``[first, last]``, both included (``[18, 23]`` is 18:00 to 23:59); when ``first > last`` the
window crosses midnight (``[22, 2]`` is 22:00 to 02:59) and the hours after midnight belong to
the day the window opened, so ``{days: [fri], hours: [22, 2]}`` still shows at 01:30 on
Saturday. ``from`` / ``until`` (ISO dates, local, both included) bound a campaign.

>>> from personalize.context.records import Clock
>>> late = parse_schedule({"days": ["fri"], "hours": [22, 2]})
>>> late.active(Clock(hour=1, weekday=5)), late.active(Clock(hour=1, weekday=4))
(True, False)
>>> late.describe()
'Friday, 22:00-02:59'
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date

from personalize.context.records import Clock
from personalize.exceptions import ScheduleError
from personalize.rules.attributes import WEEKDAYS
from personalize.rules.values import weekday_number

_KEYS = ("days", "hours", "from", "until")


@dataclass(frozen=True, slots=True)
class Schedule:
    """A local-time window; ``None`` parts are unrestricted."""

    days: frozenset[int] | None = None  # Monday is 0
    hours: tuple[int, int] | None = None  # first, last hour, both included
    start: str | None = None  # ISO date, included
    end: str | None = None  # ISO date, included

    def active(self, clock: Clock) -> bool:
        """True when the visitor's local ``clock`` is inside the window."""
        day = clock.weekday
        if self.hours is not None:
            first, last = self.hours
            if first <= last:
                if not first <= clock.hour <= last:
                    return False
            elif clock.hour < first:
                if clock.hour > last:
                    return False
                day = (day - 1) % 7  # after midnight: the window opened yesterday
        if self.days is not None and day not in self.days:
            return False
        if self.start is not None or self.end is not None:
            today = clock.iso[:10]
            if not today:
                return False
            if (self.start and today < self.start) or (self.end and today > self.end):
                return False
        return True

    def describe(self) -> str:
        """The window in words, for explanations."""
        parts = []
        if self.days is not None:
            parts.append(", ".join(WEEKDAYS[d].capitalize() for d in sorted(self.days)))
        if self.hours is not None:
            parts.append(f"{self.hours[0]:02d}:00-{self.hours[1]:02d}:59")
        if self.start or self.end:
            parts.append(f"{self.start or '...'} to {self.end or '...'}")
        return ", ".join(parts) or "always"


def parse_schedule(data: object) -> Schedule:
    """Validate schedule data; raises :class:`ScheduleError`.

    >>> parse_schedule({"hours": [18, 24]})
    Traceback (most recent call last):
    ...
    personalize.exceptions.ScheduleError: schedule hours are [first, last] whole hours 0-23, \
e.g. [18, 23]
    """
    if not isinstance(data, Mapping) or not data:
        raise ScheduleError("", "a schedule is a mapping with days, hours, from or until")
    for key in data:
        if key not in _KEYS:
            raise ScheduleError(str(key), f"unknown schedule key {str(key)[:40]!r}")
    days = None
    if "days" in data:
        raw = data["days"]
        if not isinstance(raw, list) or not raw:
            raise ScheduleError("days", "schedule days is a list such as [mon, fri]")
        numbers = [weekday_number(d) for d in raw]
        if any(n is None for n in numbers):
            bad = next(d for d, n in zip(raw, numbers, strict=True) if n is None)
            raise ScheduleError("days", f"{str(bad)[:20]!r} is not a weekday (mon ... sun)")
        days = frozenset(n for n in numbers if n is not None)
    hours = None
    if "hours" in data:
        raw = data["hours"]
        if (
            not isinstance(raw, list)
            or len(raw) != 2
            or not all(isinstance(h, int) and not isinstance(h, bool) and 0 <= h <= 23 for h in raw)
        ):
            raise ScheduleError(
                "hours", "schedule hours are [first, last] whole hours 0-23, e.g. [18, 23]"
            )
        hours = (raw[0], raw[1])
    start, end = _date(data, "from"), _date(data, "until")
    if start and end and start > end:
        raise ScheduleError("until", f"schedule until {end} is before from {start}")
    return Schedule(days, hours, start, end)


def _date(data: Mapping[str, object], key: str) -> str | None:
    if key not in data:
        return None
    value = data[key]
    if isinstance(value, date):  # YAML reads 2026-11-27 as a date already
        return value.isoformat()
    try:
        return date.fromisoformat(str(value)).isoformat()
    except ValueError:
        raise ScheduleError(key, f"schedule {key} must be a date like 2026-11-27") from None
