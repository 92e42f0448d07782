"""Who a decision is for: the :class:`Subject` protocol, and :class:`Preview`, a subject for
which nothing is recorded.

>>> from personalize.context.records import VisitorContext
>>> from personalize.profiles.profile import Profile
>>> Preview({"country": "GB"}, Profile(key="preview"), VisitorContext()).id is None
True
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from personalize.context.records import VisitorContext
from personalize.profiles.profile import Profile
from personalize.rules.segments import Membership

__all__ = ["Preview", "Subject"]


class Subject(Protocol):
    """Who a decision is for: what the engine reads of a visitor.

    A subject without an ``id`` (a bot, a preview) is decided for without recording anything:
    no exposure counted, no frequency cap touched, no decision cached.
    """

    @property
    def id(self) -> str | None: ...

    @property
    def profile_key(self) -> str | None: ...

    @property
    def attributes(self) -> dict[str, Any]: ...

    @property
    def profile(self) -> Profile: ...

    @property
    def context(self) -> VisitorContext: ...

    @property
    def is_known(self) -> bool: ...

    @property
    def evaluated_segments(self) -> Sequence[Membership] | None: ...


@dataclass(frozen=True, slots=True)
class Preview:
    """A subject for which nothing is recorded: a simulated visitor, or an explanation."""

    attributes: dict[str, Any]
    profile: Profile
    context: VisitorContext
    is_known: bool = False
    evaluated_segments: Sequence[Membership] | None = None
    id: None = None
    profile_key: None = None
