"""Signing in and out, and the help desk (support tickets)."""

from __future__ import annotations

import contextlib
import secrets
from urllib.parse import urlencode

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from demo_site.accounts import DEMO_LOGINS, authenticate
from demo_site.forms import read_form
from demo_site.shop import local_path, redirect, render
from personalize import EventError, IdentityError, get_visitor

__all__ = ["login", "login_page", "logout", "support_close", "support_open", "support_page"]

TICKET_TOPICS = {
    "delivery": "Where is my order?",
    "return": "I want to return something",
    "product": "A product is faulty",
    "other": "Something else",
}
MAX_MESSAGE = 2000  # characters


async def login_page(request: Request) -> Response:
    next_path = local_path(request.query_params.get("next"))
    return render(request, "login.html", {"logins": DEMO_LOGINS, "next": next_path})


async def login(request: Request) -> Response:
    form = await read_form(request)
    email = form.get("email", "")[:200]
    next_path = local_path(form.get("next"))
    account = authenticate(email, form.get("password", "")[:200])
    if account is None:
        context = {"logins": DEMO_LOGINS, "next": next_path, "email": email,
                   "error": "That e-mail and password do not match an account."}  # fmt: skip
        return render(request, "login.html", context, status=401)
    visitor = get_visitor(request)
    try:
        await visitor.identify(account.user_id, {"name": account.name})
    except IdentityError as exc:  # a bot or a browser without the visitor cookie machinery
        raise HTTPException(400, f"Could not sign in: {exc}") from None
    return redirect(next_path)


async def logout(request: Request) -> Response:
    await read_form(request)
    visitor = get_visitor(request)
    with contextlib.suppress(IdentityError):  # a bot: nothing to forget
        visitor.logout()
    return redirect("/")


async def support_page(request: Request) -> Response:
    visitor = get_visitor(request)
    tickets = visitor.profile.facts.get("tickets", {})
    return render(
        request,
        "support.html",
        {
            "topics": TICKET_TOPICS,
            "tickets": tickets,
            "opened": request.query_params.get("opened", "")[:20],
        },
    )


async def support_open(request: Request) -> Response:
    form = await read_form(request)
    topic = form.get("topic", "")
    message = form.get("message", "").strip()
    if topic not in TICKET_TOPICS:
        raise HTTPException(400, "Pick one of the topics.")
    if not 0 < len(message) <= MAX_MESSAGE:
        raise HTTPException(400, f"Write a message of 1 to {MAX_MESSAGE} characters.")
    ticket_id = f"t-{secrets.token_hex(4)}"
    try:
        # The message itself would go to the help desk; the profile keeps only the status.
        await get_visitor(request).track(
            "ticket", {"ticket_id": ticket_id, "status": "open", "topic": topic}
        )
    except (EventError, IdentityError) as exc:
        raise HTTPException(400, f"The ticket could not be opened: {exc}") from None
    return redirect("/support?" + urlencode({"opened": ticket_id}))


async def support_close(request: Request) -> Response:
    form = await read_form(request)
    visitor = get_visitor(request)
    ticket_id = form.get("ticket_id", "")
    ticket = visitor.profile.facts.get("tickets", {}).get(ticket_id)
    if ticket is None:
        raise HTTPException(400, "You have no ticket with that number.")
    if ticket.get("status") == "open":
        await visitor.track("ticket", {"ticket_id": ticket_id, "status": "closed"})
    return redirect("/support")
