"""The editor UI at ``<prefix>/admin`` (``/_personalize/admin`` by default).

Enabled by ``PersonalizeMiddleware(admin_users={"ann": "<hash>"})`` (hashes from
``personalize hash-password``). Every path below ``/admin``, known or not, and every method
is behind HTTP Basic authentication first (:mod:`personalize.web.admin.auth`), so without
credentials no route can be told from another; every form post is behind a CSRF token bound
to the editor and an Origin check. Pages are private and never cached.

==========================  ========  ===============================================
route                       methods   what
==========================  ========  ===============================================
``/admin``                  GET       overview: what is configured, what needs care
``/admin/segments``         GET       definitions, origin file:line, member counts
``/admin/slots``            GET/POST  per slot the ordered mapping; a form saves it
``/admin/preview``          GET       any page path as a simulated visitor
``/admin/profiles``         GET       a stored profile by ``user_id`` or ``visitor_id``
``/admin/model``            GET       events learned, prequential AUC chart, the gate
``/admin/impact``           GET/POST  uplift vs the holdout, chart, CSV/JSON; the holdout
==========================  ========  ===============================================

>>> sorted(PAGES)
['', '/impact', '/model', '/preview', '/profiles', '/segments', '/slots']
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response

from personalize.exceptions import FormError
from personalize.personalizer import Personalizer
from personalize.routing import Router
from personalize.web.admin import views
from personalize.web.admin.auth import Editor, Guard
from personalize.web.admin.impact_page import impact_page
from personalize.web.admin.views import AdminState
from personalize.web.csrf import FIELD, CsrfSigner, same_origin
from personalize.web.pages import read_form, text

if TYPE_CHECKING:
    from personalize.visitor import Visitor

__all__ = ["PAGES", "EditorUI"]

Page = Callable[[Request, AdminState, Editor], Awaitable[Response]]
_GET = frozenset({"GET", "HEAD"})
#: path below /admin -> (methods, page)
PAGES: dict[str, tuple[frozenset[str], Page]] = {
    "": (_GET, views.overview),
    "/segments": (_GET, views.segments_page),
    "/slots": (_GET | {"POST"}, views.slots_page),
    "/preview": (_GET, views.preview_page),
    "/profiles": (_GET, views.profiles_page),
    "/model": (_GET, views.model_page),
    "/impact": (_GET | {"POST"}, impact_page),
}
ALL_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


class EditorUI:
    """The editor UI of one site."""

    def __init__(self, site: Personalizer) -> None:
        ips = site.context.ips

        def client_of(request: Request) -> str | None:
            peer = request.client.host if request.client else None
            headers = request.headers
            return ips.resolve(peer, headers.get("x-forwarded-for"), headers.get("forwarded"))

        self.guard = Guard(site.settings.admin_users or {}, client_of)
        # A CSRF key derived from the cookie secret: every worker accepts every other's forms.
        self.csrf = CsrfSigner(site.cookies.signing_secret, purpose="admin")
        self.state = AdminState(site)
        self.prefix = site.router.prefix + "/admin"

    def add_to(self, router: Router) -> None:
        """Route ``/admin`` and everything below it to the guard."""
        router.add("/admin", self.dispatch, ALL_METHODS, tree=True)

    async def dispatch(self, request: Request, visitor: Visitor) -> Response:
        """Authenticate, then serve the page (404 for a path that is none, after the guard)."""
        who = await self.guard.authenticate(request)
        if isinstance(who, Response):
            return who
        found = PAGES.get(request.scope["path"][len(self.prefix) :])
        if found is None:
            return text("Not Found", 404)
        methods, page = found
        if request.method not in methods:
            return text("Method Not Allowed", 405, {"allow": ", ".join(sorted(methods))})
        subject = f"editor:{who}"
        editor = Editor(who, self.csrf.token(subject))
        if request.method == "POST":
            try:
                editor.form = await read_form(request)
            except FormError as exc:
                return text(str(exc), exc.status)
            if not same_origin(request.headers, scheme=request.scope.get("scheme", "http")):
                return text("Refused: this form was posted from another site.", 403)
            if not self.csrf.check(editor.form.get(FIELD), subject):
                return text(
                    "Refused: the form's security token is missing or expired. Go back, "
                    "reload the page and submit again.",
                    403,
                )
        return await page(request, self.state, editor)
