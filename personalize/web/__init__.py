"""The built-in HTTP endpoints under the prefix (``/_personalize`` by default).

:func:`install` routes them on a :class:`~personalize.Personalizer`'s router; the middleware
calls it once per personalizer. Each endpoint is built with the narrow parts it needs.

=================  ==================================================================
module             what lives there
=================  ==================================================================
``me``             the visitor's own pages: see, export, opt out, erase
``me_preferences`` the visitor's say: stated preferences, "not me" to inferences
``admin/``         the editor UI (authentication, segments, slots, preview, profiles)
``events_api``     events from other channels, server to server
``decisions_api``  slots for single-page apps, the beacon and its clicks
``metrics``        Prometheus metrics
``pages``          rendering, forms and security headers of the server-side pages
``csrf``           CSRF tokens and the Origin check of form posts
``apikeys``        Bearer keys of the server-to-server endpoints
=================  ==================================================================

>>> from personalize import MemoryStore, Personalizer
>>> site = Personalizer(secret_key="change-me-to-32-random-characters", store=MemoryStore())
>>> install(site)
>>> site.router.paths  # doctest: +NORMALIZE_WHITESPACE
['/admin', '/assets/pages.css', '/beacon.js', '/collect', '/events', '/me', '/me/erase',
 '/me/export', '/me/not-me', '/me/opt-in', '/me/opt-out', '/me/preferences', '/me/withdraw',
 '/metrics', '/ping', '/slots']
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from personalize.personalizer import Personalizer
from personalize.web.admin import EditorUI
from personalize.web.apikeys import ApiKeys
from personalize.web.decisions_api import DecisionsApi, beacon
from personalize.web.events_api import EventsApi
from personalize.web.me import MePages
from personalize.web.metrics import MetricsEndpoint
from personalize.web.pages import stylesheet

if TYPE_CHECKING:
    from personalize.visitor import Visitor

__all__ = ["install"]

_INSTALLED = "/ping"


async def ping(request: Request, visitor: Visitor) -> Response:
    """A liveness check that also proves the middleware is mounted."""
    return PlainTextResponse("ok", headers={"cache-control": "no-store"})


def install(site: Personalizer) -> None:
    """Route the built-in endpoints on ``site.router`` (once; a second call does nothing)."""
    router = site.router
    if _INSTALLED in router.paths:
        return
    settings = site.settings
    keys = ApiKeys(settings.api_keys)
    router.add("/ping", ping)
    router.add("/assets/pages.css", stylesheet)
    router.add("/beacon.js", beacon)
    decisions = DecisionsApi(site.decisions, site.converted)
    router.add("/slots", decisions.slots)
    router.add("/collect", decisions.collect, ("POST",))
    events = EventsApi(site.profiles, keys, site.categories.names, stored=site.orders_stored)
    router.add("/events", events.post, ("POST",))
    router.add("/metrics", MetricsEndpoint(site, keys, public=settings.metrics_public).get)
    me = MePages(
        site.profiles,
        site.decisions,
        site.cookies.signing_secret,
        clock=site.now,
        prefix=router.prefix,
        categories=site.categories.names,
        segments=site.segments,
    )
    me.add_to(router)
    EditorUI(site).add_to(router)
