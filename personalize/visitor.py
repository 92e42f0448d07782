"""The visitor of the current request, as the application sees it.

>>> from starlette.applications import Starlette
>>> from starlette.responses import PlainTextResponse
>>> from starlette.routing import Route
>>> from starlette.testclient import TestClient
>>> from personalize import MemoryStore, PersonalizeMiddleware, get_visitor
>>> async def home(request):
...     visitor = get_visitor(request)
...     return PlainTextResponse(f"{visitor.context.device.type} visit {visitor.profile.visits}")
>>> app = Starlette(routes=[Route("/", home)])
>>> app.add_middleware(PersonalizeMiddleware, secret_key="s" * 32, store=MemoryStore())
>>> TestClient(app).get("/", headers={"user-agent": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 "
...     "like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 "
...     "Safari/604.1"}).text
'mobile visit 1'
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

from personalize.context import VisitorContext
from personalize.exceptions import MiddlewareMissingError
from personalize.profile import Hit, Profile, apply_hit
from personalize.service import copy_profile

STATE_KEY = "visitor"
_MISSING = (
    "PersonalizeMiddleware must be installed to use request.state.visitor: add "
    "`app.add_middleware(PersonalizeMiddleware, secret_key=...)`, and check that this path is "
    "not excluded"
)


class Visitor:
    """Who is asking, in what context, and what is known about them.

    Reading :attr:`context` or :attr:`profile` marks the response as personalized: it then gets
    ``Cache-Control: private`` and ``Vary: Cookie`` so no shared cache hands it to someone else.
    """

    __slots__ = (
        "_context",
        "_hit",
        "_profile",
        "_stored",
        "_view",
        "id",
        "is_new",
        "used",
        "user_id",
    )

    def __init__(
        self,
        *,
        visitor_id: str | None,
        user_id: str | None,
        context: VisitorContext,
        is_new: bool,
        stored: Profile | None = None,
        hit: Hit | None = None,
    ) -> None:
        self.id = visitor_id  # None for bots: they get no id, no cookie and no profile
        self.user_id = user_id
        self.is_new = is_new
        self.used = False
        self._context = context
        self._stored = stored
        self._hit = hit
        self._view: Profile | None = None

    def __repr__(self) -> str:
        who = f"user_id={self.user_id!r}" if self.user_id else f"id={self.id!r}"
        return f"<Visitor {who} new={self.is_new}>"

    @property
    def is_known(self) -> bool:
        """True once the visitor has logged in (the cookie is bound to a user id)."""
        return self.user_id is not None

    @property
    def is_bot(self) -> bool:
        return self._context.device.is_bot

    @property
    def profile_key(self) -> str | None:
        """The key the profile is stored under: the user id when known, else the visitor id."""
        if self.id is None:
            return None
        return f"u:{self.user_id}" if self.user_id is not None else f"v:{self.id}"

    @property
    def context(self) -> VisitorContext:
        """Geo, device, source, local clock and browser signals of this request."""
        self.used = True
        return self._context

    @property
    def profile(self) -> Profile:
        """The stored profile with this page view already folded in (a private copy)."""
        self.used = True
        if self._view is None:
            if self._stored is None:
                view = Profile(key=self.profile_key or "", user_id=self.user_id)
            else:
                view = copy_profile(self._stored)
            if self._hit is not None:
                apply_hit(view, self._hit)
            self._view = view
        return self._view

    def as_dict(self) -> dict[str, Any]:
        """A JSON-able summary of the visitor (for pages that show a visitor their data)."""
        from dataclasses import asdict

        return {
            "visitor_id": self.id,
            "user_id": self.user_id,
            "is_new": self.is_new,
            "context": asdict(self.context),
            "profile": self.profile.to_dict() if self.id is not None else None,
        }


def get_visitor(request: Any) -> Visitor:
    """The :class:`Visitor` of a Starlette ``Request`` (or an ASGI ``scope``).

    Raises :class:`MiddlewareMissingError` with a clear message when PersonalizeMiddleware did
    not see this request.
    """
    scope: MutableMapping[str, Any] = request if isinstance(request, dict) else request.scope
    visitor = scope.get("state", {}).get(STATE_KEY)
    if not isinstance(visitor, Visitor):
        raise MiddlewareMissingError(_MISSING)
    return visitor
