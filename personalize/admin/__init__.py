"""The editor UI at ``<prefix>/admin`` (``/_personalize/admin`` by default).

Enabled by ``PersonalizeMiddleware(admin_users={"ann": "<hash>"})`` (hashes from
``personalize hash-password``); without any user every route answers 404 and says how to
enable it. Every route and method is behind HTTP Basic authentication, and every form post
behind a CSRF token (:mod:`personalize.admin.auth`). Pages are private and never cached.

==========================  ========  ===============================================
route                       methods   what
==========================  ========  ===============================================
``/admin``                  GET       overview: what is configured, what needs care
``/admin/segments``         GET       definitions, origin file:line, member counts
``/admin/slots``            GET/POST  per slot the ordered mapping; a form saves it
``/admin/preview``          GET       any page path as a simulated visitor
``/admin/profiles``         GET       a stored profile by ``user_id`` or ``visitor_id``
``/admin/model``            GET       events learned, prequential AUC chart, the gate
==========================  ========  ===============================================

>>> from personalize.endpoints import ROUTES
>>> sorted(p for p in ROUTES if p.startswith("/admin"))  # doctest: +NORMALIZE_WHITESPACE
['/admin', '/admin/model', '/admin/preview', '/admin/profiles', '/admin/segments',
 '/admin/slots']
"""

from personalize.admin import views  # noqa: F401 - registers the routes

__all__: list[str] = []
