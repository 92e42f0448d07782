"""Exceptions raised by personalize.

The hierarchy::

    PersonalizeError                 base of everything raised here
    ├── ConfigurationError           bad options or files, raised at start-up, never per request
    │   ├── GeoDatabaseError         the GeoIP database is missing or unreadable
    │   ├── SegmentError             segments/*.yaml do not validate (every path:line: problem)
    │   ├── ContentError             content/*.yaml do not validate (every path:line: problem)
    │   ├── RuleError                one rule does not validate (every problem, with its place)
    │   ├── RuleValueError           one rule's value does not fit its attribute or operator
    │   └── ScheduleError            a variant's schedule does not validate
    ├── IdentityError                identify() refused a user id (junk, too long, ...)
    ├── EventError                   an event from another channel is not valid
    ├── MiddlewareMissingError       request.state.visitor used without PersonalizeMiddleware
    ├── StoreError                   a store operation failed
    │   └── StoreUnavailableError    the store cannot be reached (retry later)
    ├── EditError                    the editor UI refused an edit (with an HTTP status)
    ├── FormError                    a form post cannot be read (with an HTTP status)
    └── ReplayError                  a record of a replay file cannot be used (file:line)

Request-path code never lets these reach the visitor: the middleware falls back to an
anonymous, default experience and logs the problem. Those that are also ``ValueError``
(configuration, identity and event errors) can be caught as such.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "ConfigurationError",
    "ContentError",
    "EditError",
    "EventError",
    "FormError",
    "GeoDatabaseError",
    "IdentityError",
    "MiddlewareMissingError",
    "PersonalizeError",
    "ReplayError",
    "RuleError",
    "RuleProblem",
    "RuleValueError",
    "ScheduleError",
    "SegmentError",
    "StoreError",
    "StoreUnavailableError",
]


class PersonalizeError(Exception):
    """Base class of every exception raised by personalize."""


class ConfigurationError(PersonalizeError, ValueError):
    """An option, file or database given to personalize is not usable."""


class GeoDatabaseError(ConfigurationError):
    """The GeoIP database file is missing, unreadable or not a City/Country database."""


def _counted(problems: Sequence[str], what: str) -> str:
    count = len(problems)
    return "\n".join([f"{count} problem{'s' if count != 1 else ''} in {what}:", *problems])


class SegmentError(ConfigurationError):
    """Segment files are not valid; ``problems`` holds every ``path:line: problem``."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        super().__init__(_counted(self.problems, "segments"))


class ContentError(ConfigurationError):
    """Content files are not valid; ``problems`` holds every ``path:line: problem``."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        super().__init__(_counted(self.problems, "content"))


@dataclass(frozen=True, slots=True)
class RuleProblem:
    """One thing wrong with a rule: where in the data (keys and list indexes) and what."""

    path: tuple[str | int, ...]
    message: str

    def __str__(self) -> str:
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in self.path)
        return f"{where.lstrip('.')}: {self.message}" if where else self.message


class RuleError(ConfigurationError):
    """A rule is not valid; ``problems`` lists every problem, each with its place in the data."""

    def __init__(self, where: str, problems: Sequence[RuleProblem]) -> None:
        self.where = where
        self.problems = tuple(problems)
        super().__init__("\n".join(f"{where}: {p}" for p in self.problems))


class RuleValueError(ConfigurationError):
    """A rule's value that does not fit its attribute or operator; the message says why."""


class ScheduleError(ConfigurationError):
    """A schedule is not valid; ``key`` names the field at fault (for the line number)."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


class IdentityError(PersonalizeError, ValueError):
    """A user id was refused: empty, a junk placeholder ("null", "guest"...), or too long."""


class EventError(PersonalizeError, ValueError):
    """An event payload is not valid; the message says which field and why."""


class MiddlewareMissingError(PersonalizeError, RuntimeError):
    """The visitor was asked for on a request that PersonalizeMiddleware did not see."""


class StoreError(PersonalizeError):
    """A store operation failed."""


class StoreUnavailableError(StoreError):
    """The store cannot be reached right now; the operation may be retried later."""


class EditError(PersonalizeError):
    """The editor UI refused an edit; ``problems`` says why, ``status`` is the HTTP status."""

    def __init__(self, problems: Sequence[str], status: int = 400) -> None:
        super().__init__("; ".join(problems))
        self.problems = tuple(problems)
        self.status = status


class FormError(PersonalizeError):
    """A form post that cannot be read; ``status`` is the HTTP status to answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class ReplayError(PersonalizeError, ValueError):
    """A record of a replay file (``personalize evaluate --replay``) that cannot be used."""

    def __init__(self, path: str, line: int, problem: str) -> None:
        super().__init__(f"{path}:{line}: {problem}")
        self.path, self.line, self.problem = path, line, problem
