"""Litestar: the visitor through dependency injection.

Litestar runs the middleware of ``Litestar(middleware=[...])`` only for requests that match
one of its routes, so ``/_personalize/*`` would answer 404 there: wrap the whole application
instead. Handlers then ask for ``visitor: Visitor``:

>>> from litestar import Litestar, get
>>> from litestar.di import NamedDependency, Provide
>>> from litestar.testing import TestClient
>>> from personalize import MemoryStore, PersonalizeMiddleware, Visitor
>>> @get("/", sync_to_thread=False)
... def home(visitor: NamedDependency[Visitor]) -> dict[str, object]:
...     return {"device": visitor.context.device.type, "visits": visitor.profile.visits}
>>> site = Litestar([home], dependencies={"visitor": Provide(provide_visitor)})
>>> app = PersonalizeMiddleware(site, secret_key="s" * 32, store=MemoryStore())
>>> with TestClient(app) as client:
...     client.get("/", headers={"user-agent": "Mozilla/5.0 (X11; Linux x86_64)"}).json()
...     client.get("/_personalize/ping").text
{'device': 'desktop', 'visits': 1}
'ok'
"""

# No "from __future__ import annotations": doctests compile with this module's future flags,
# and the example's handler must hand Litestar real types, not strings.
from collections.abc import MutableMapping
from typing import TYPE_CHECKING, Any, Protocol

from personalize import Visitor, get_visitor

if TYPE_CHECKING:
    # What this module needs of a request. Litestar reads the annotation below at run time
    # and resolves the name "Request" to its own class (it resolves its public names in
    # annotations for code that imports them only for type checking), so Litestar hands the
    # provider the request without personalize importing Litestar.
    class Request(Protocol):
        scope: MutableMapping[str, Any]


async def provide_visitor(request: "Request") -> Visitor:
    """The :class:`~personalize.Visitor` of this request, for ``Provide(provide_visitor)``.

    ``async`` so that Litestar calls it on the event loop. Raises
    :class:`~personalize.MiddlewareMissingError` when PersonalizeMiddleware does not wrap the
    application.
    """
    return get_visitor(request)
