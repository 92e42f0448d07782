"""Exceptions raised by personalize.

The hierarchy::

    PersonalizeError                 base of everything raised here
    ├── ConfigurationError           bad options or files, raised at start-up, never per request
    │   ├── GeoDatabaseError         the GeoIP database is missing or unreadable
    │   ├── SegmentError             segments/*.yaml do not validate (every path:line: problem)
    │   └── RuleError                one rule does not validate (personalize.rules)
    ├── IdentityError                identify() refused a user id (junk, too long, ...)
    ├── MiddlewareMissingError       request.state.visitor used without PersonalizeMiddleware
    └── StoreError                   a ProfileStore operation failed
        └── StoreUnavailableError    the store cannot be reached (the request goes on anonymously)

Request-path code never lets these reach the visitor: the middleware falls back to an
anonymous, default experience and logs the problem.
"""

from __future__ import annotations

from collections.abc import Sequence


class PersonalizeError(Exception):
    """Base class of every exception raised by personalize."""


class ConfigurationError(PersonalizeError, ValueError):
    """An option, file or database given to personalize is not usable."""


class GeoDatabaseError(ConfigurationError):
    """The GeoIP database file is missing, unreadable or not a City/Country database."""


class IdentityError(PersonalizeError, ValueError):
    """A user id was refused: empty, a junk placeholder ("null", "guest"...), or too long."""


class SegmentError(ConfigurationError):
    """Segment files are not valid; ``problems`` holds every ``path:line: problem``."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        count = len(self.problems)
        header = f"{count} problem{'s' if count != 1 else ''} in segments:"
        super().__init__("\n".join([header, *self.problems]))


class MiddlewareMissingError(PersonalizeError, RuntimeError):
    """The visitor was asked for on a request that PersonalizeMiddleware did not see."""


class StoreError(PersonalizeError):
    """A profile store operation failed."""


class StoreUnavailableError(StoreError):
    """The profile store cannot be reached right now."""
