"""FastAPI: the visitor as a dependency.

>>> from typing import Annotated
>>> from fastapi import Depends, FastAPI
>>> from fastapi.testclient import TestClient
>>> from personalize import MemoryStore, PersonalizeMiddleware, Visitor
>>> CurrentVisitor = Annotated[Visitor, Depends(current_visitor)]
>>> app = FastAPI()
>>> @app.get("/")
... async def home(visitor: CurrentVisitor) -> dict[str, object]:
...     return {"device": visitor.context.device.type, "visits": visitor.profile.visits}
>>> app.add_middleware(PersonalizeMiddleware, secret_key="s" * 32, store=MemoryStore())
>>> TestClient(app).get("/", headers={"user-agent": "Mozilla/5.0 (X11; Linux x86_64)"}).json()
{'device': 'desktop', 'visits': 1}
"""

from __future__ import annotations

# Starlette's Request, which fastapi.Request is: FastAPI reads this annotation at run time to
# hand the dependency its request, so it cannot hide behind TYPE_CHECKING.
from starlette.requests import Request

from personalize import Visitor, get_visitor


async def current_visitor(request: Request) -> Visitor:
    """The :class:`~personalize.Visitor` of this request, for ``Depends(current_visitor)``.

    ``async`` so that FastAPI calls it on the event loop instead of a worker thread. Raises
    :class:`~personalize.MiddlewareMissingError` when PersonalizeMiddleware is not mounted.
    """
    return get_visitor(request)
