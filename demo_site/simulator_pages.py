"""The visitor simulator's two forms (demo mode only): apply a simulation, stop simulating.

Applying one may also give the visitor a routine (five desktop mornings), so that a visit on
another device is unusual *for them* (the ``unusual`` attribute, ``segments/learned.yaml``).

See :mod:`demo_site.simulator` for what a simulation changes in each request.
"""

from __future__ import annotations

import contextlib
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from demo_site.forms import read_form
from demo_site.shop import local_path, redirect, shop_of, whole_number
from demo_site.simulator import COUNTRIES, DEVICES, SIM_COOKIE, SOURCES, Simulation
from personalize import IdentityError, PersonalizeMiddleware, get_visitor
from personalize.profiles.pageviews import Hit

__all__ = ["simulate", "simulate_reset"]


async def simulate(request: Request) -> Response:
    shop = shop_of(request)
    if not shop.demo_mode:
        raise HTTPException(404, "There is no such page in the shop.")
    form = await read_form(request)
    country, device, source = (
        form.get("country", ""),
        form.get("device", ""),
        form.get("source", ""),
    )
    if country and country not in COUNTRIES:
        raise HTTPException(400, "Unknown country sample.")
    if device and device not in DEVICES:
        raise HTTPException(400, "Unknown device sample.")
    if source and source not in SOURCES:
        raise HTTPException(400, "Unknown source sample.")
    hour = whole_number(form["hour"], 0, 23, "Hour") if form.get("hour") else None
    sim = Simulation(country=country, hour=hour, device=device, source=source, arriving=True)
    target = local_path(form.get("next")).split("?", 1)[0]
    if source and SOURCES[source].query:
        target += "?" + SOURCES[source].query
    response = redirect(target)
    if form.get("new_visit") == "1" or form.get("history") == "1":
        # Decisions stay put for a whole visit; a new context shows best on a new visit.
        with contextlib.suppress(IdentityError):
            get_visitor(request).logout()
    if form.get("history") == "1":
        await _desktop_history(request)
    if sim.active:
        response.set_cookie(SIM_COOKIE, shop.simulations.dump(sim), httponly=True,
                            samesite="lax")  # fmt: skip
    else:
        response.delete_cookie(SIM_COOKIE)
    return response


async def _desktop_history(request: Request) -> None:
    """Give the (new) visitor of this request a routine: five visits from a desktop computer,
    one a day at 09:00 their time, so that a visit on a phone is unusual *for them*."""
    visitor = get_visitor(request)
    key = visitor.profile_key
    node: Any = request.app.middleware_stack
    while node is not None and not isinstance(node, PersonalizeMiddleware):
        node = getattr(node, "app", None)
    if key is None or node is None or visitor.id is None:
        return
    site = node.personalizer
    now = site.now()
    for days in range(5, 0, -1):
        hit = Hit(ts=now - days * 86_400.0, path="/", device_type="desktop", device_id=visitor.id,
                  os="Windows", browser="Chrome", hour=9)  # fmt: skip
        await site.profiles.record(key, hit, new=days == 5)


async def simulate_reset(request: Request) -> Response:
    if not shop_of(request).demo_mode:
        raise HTTPException(404, "There is no such page in the shop.")
    form = await read_form(request)
    response = redirect(local_path(form.get("next")).split("?", 1)[0])
    response.delete_cookie(SIM_COOKIE)
    return response
