"""Where the visitor lives during a request: the middleware puts it in the ASGI scope's state
under :data:`STATE_KEY`, and :func:`get_visitor` finds it there.

>>> get_visitor({"type": "http", "state": {}})
Traceback (most recent call last):
...
personalize.exceptions.MiddlewareMissingError: PersonalizeMiddleware must be installed ...
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from typing import Any

from personalize.exceptions import MiddlewareMissingError
from personalize.profiles.profile import Profile
from personalize.visitor import Visitor

__all__ = ["STATE_KEY", "get_visitor", "identify"]

STATE_KEY = "visitor"
_MISSING = (
    "PersonalizeMiddleware must be installed to use request.state.visitor: add "
    "`app.add_middleware(PersonalizeMiddleware, secret_key=...)`, and check that this path is "
    "not excluded"
)


def get_visitor(request: Any) -> Visitor:
    """The :class:`Visitor` of a Starlette ``Request`` (or an ASGI ``scope``).

    Raises :class:`MiddlewareMissingError` with a clear message when PersonalizeMiddleware did
    not see this request.
    """
    scope: MutableMapping[str, Any] = request if isinstance(request, dict) else request.scope
    try:
        visitor = scope["state"][STATE_KEY]
    except (KeyError, TypeError):
        visitor = None
    if not isinstance(visitor, Visitor):
        raise MiddlewareMissingError(_MISSING)
    return visitor


async def identify(request: Any, user_id: str, traits: Mapping[str, Any] | None = None) -> Profile:
    """Log in the visitor of ``request`` (a Starlette ``Request`` or an ASGI scope) as
    ``user_id``; see :meth:`Visitor.identify`."""
    return await get_visitor(request).identify(user_id, traits)
