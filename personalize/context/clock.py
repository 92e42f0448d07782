"""The visitor's local time: a UTC instant seen in the visitor's (or the site's) time zone.

Dayparts are fixed six-hour blocks of the local hour: night 0-5, morning 6-11,
afternoon 12-17, evening 18-23. Saturday and Sunday are the weekend.

>>> from datetime import datetime, timezone
>>> now = datetime(2024, 3, 31, 0, 30, tzinfo=timezone.utc)
>>> clock = local_clock(now, "Asia/Kolkata")
>>> clock.iso, clock.daypart, clock.weekend
('2024-03-31T06:00:00+05:30', 'morning', True)
>>> local_clock(now, "Mars/Olympus_Mons", default="Europe/London").time_zone
'Europe/London'
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime, tzinfo
from zoneinfo import ZoneInfo

from personalize.context.records import Clock, Daypart
from personalize.exceptions import ConfigurationError

__all__ = ["local_clock", "validate_time_zone"]

_DAYPARTS: tuple[Daypart, ...] = ("night", "morning", "afternoon", "evening")  # by hour // 6
_MAX_NAME_LENGTH = 64  # the longest IANA name is about 32 characters
_UTC_NAMES = frozenset({"UTC", "Etc/UTC"})


def local_clock(now: datetime, time_zone: str | None, *, default: str = "UTC") -> Clock:
    """The local clock at ``now`` in ``time_zone``; an unknown or missing zone uses ``default``.

    ``now`` should be timezone-aware; a naive datetime is taken as UTC. If ``default`` is
    unknown too, UTC is used. Never raises on a bad zone name.

    >>> from datetime import datetime, timezone
    >>> local_clock(datetime(2024, 1, 6, 23, 15, tzinfo=timezone.utc), None).daypart
    'evening'
    """
    name = time_zone
    zone = _zone(time_zone) if time_zone else None
    if zone is None:
        name, zone = default, _zone(default)
    if zone is None or name is None:
        name, zone = "UTC", UTC
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    local = now.astimezone(zone)
    weekday = local.weekday()
    return Clock(
        time_zone=name,
        hour=local.hour,
        minute=local.minute,
        weekday=weekday,
        daypart=_DAYPARTS[local.hour // 6],
        weekend=weekday >= 5,
        iso=local.isoformat(timespec="seconds"),
    )


def validate_time_zone(name: str) -> str:
    """Return ``name`` if it is a known IANA time zone, else raise ConfigurationError.

    For the site's default zone, checked once at start-up.

    >>> validate_time_zone("Europe/Berlin")
    'Europe/Berlin'
    >>> validate_time_zone("Europe/Berlin ")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    personalize.exceptions.ConfigurationError: unknown time zone 'Europe/Berlin '; ...
    """
    if not isinstance(name, str) or _zone(name) is None:
        raise ConfigurationError(
            f"unknown time zone {name!r}; use an IANA name such as 'Europe/London' or 'UTC' "
            "(pip install tzdata if the system has no zoneinfo files)"
        )
    return name


@functools.lru_cache(maxsize=1024)
def _zone(name: str) -> tzinfo | None:
    if len(name) > _MAX_NAME_LENGTH:
        return None
    try:
        return ZoneInfo(name)
    except (ValueError, KeyError, OSError):  # ZoneInfoNotFoundError is a KeyError
        # UTC works even on a system without zoneinfo files or tzdata.
        return UTC if name in _UTC_NAMES else None
