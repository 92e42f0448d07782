"""What a visitor asks of the site it visits: the :class:`Site` protocol.

:class:`~personalize.Personalizer` implements it; a :class:`~personalize.Visitor` sees its site
only through it, so it never reaches for more than it needs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from personalize.content.decisions import DecisionEngine
    from personalize.context.records import VisitorContext
    from personalize.learning.runtime import Visit
    from personalize.profiles.pageviews import CategoryMap, Hit
    from personalize.rules.segments import SegmentLibrary
    from personalize.services.profiles import ProfileService

__all__ = ["Site"]


class Site(Protocol):
    """What a visitor asks of the site it visits; :class:`~personalize.Personalizer` is one."""

    @property
    def profiles(self) -> ProfileService: ...

    @property
    def segments(self) -> SegmentLibrary | None: ...

    @property
    def categories(self) -> CategoryMap: ...  # the site's interest categories

    @property
    def decisions(self) -> DecisionEngine | None: ...

    def now(self) -> float: ...  # seconds since the epoch

    async def erase(self, key: str) -> list[str]:
        """Erase profile ``key`` and everything stored that names it or its merged ids."""

    def learned_scores(self, visitor: Visit) -> Mapping[str, Any] | None: ...

    def converted(self, visitor: Visit, value: float = 0.0, *, ref: str = "") -> None:
        """An order or conversion worth ``value`` (``ref``: its order id, if any)."""

    def page_view(self, context: VisitorContext, now: float, device_id: str) -> Hit: ...
