"""A small Django project served over ASGI: settings, views, URLs and the ASGI application,
as the README's Django section writes them."""

from __future__ import annotations

from typing import Any

import django
from asgiref.sync import async_to_sync
from django.conf import settings
from django.contrib.auth import aauthenticate, alogin, alogout, authenticate, login
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import path
from django.views.decorators.cache import cache_control
from starlette.types import ASGIApp

from personalize import PersonalizeMiddleware
from personalize.integrations.django import with_lifespan
from tests.frameworks.common import HERE

if not settings.configured:
    settings.configure(
        SECRET_KEY="django-secret-key-for-the-framework-tests-0123456789",
        ALLOWED_HOSTS=["testserver"],
        ROOT_URLCONF=__name__,
        INSTALLED_APPS=[
            "django.contrib.auth",
            "django.contrib.contenttypes",
            "django.contrib.sessions",
        ],
        MIDDLEWARE=[
            "django.contrib.sessions.middleware.SessionMiddleware",
            "django.contrib.auth.middleware.AuthenticationMiddleware",
            "personalize.integrations.django.VisitorMiddleware",
        ],
        TEMPLATES=[
            {
                "BACKEND": "django.template.backends.django.DjangoTemplates",
                "DIRS": [HERE / "django_templates"],
                "OPTIONS": {
                    "context_processors": [
                        "django.template.context_processors.request",
                        "personalize.integrations.django.context_processor",
                    ]
                },
            }
        ],
        # One in-memory database shared by the test thread and the threads Django runs
        # its ORM calls in.
        DATABASES={
            "default": {
                "ENGINE": "django.db.backends.sqlite3",
                "NAME": "file:personalize-framework-tests?mode=memory&cache=shared",
            }
        },
        PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"],  # fast, for tests
        DEFAULT_AUTO_FIELD="django.db.models.AutoField",
        USE_TZ=True,
    )
    django.setup()


async def home(request: HttpRequest) -> HttpResponse:
    return render(request, "page.html")


async def login_view(request: HttpRequest) -> HttpResponse:
    user = await aauthenticate(
        request, username=request.POST["username"], password=request.POST["password"]
    )
    if user is None:
        return HttpResponse("Wrong user name or password", status=401)
    await alogin(request, user)
    # Not the bare pk: "1", the first user's, is refused as a placeholder id.
    await request.visitor.identify(str(user.pk), traits={"email": user.email})
    return render(request, "page.html")  # this response already sees the merged profile


async def logout_view(request: HttpRequest) -> HttpResponse:
    await alogout(request)
    request.visitor.logout()
    return JsonResponse({"known": request.visitor.is_known})


def sync_page(request: HttpRequest) -> HttpResponse:
    # Sync views read the visitor and render slots as they are (no I/O is involved).
    return render(request, "page.html", {"title": request.visitor.context.device.type})


def sync_login(request: HttpRequest) -> HttpResponse:
    user = authenticate(
        request, username=request.POST["username"], password=request.POST["password"]
    )
    if user is None:
        return HttpResponse("Wrong user name or password", status=401)
    login(request, user)
    async_to_sync(request.visitor.identify)(str(user.pk))
    return render(request, "page.html")


def sync_login_without_async_to_sync(request: HttpRequest) -> HttpResponse:
    # The mistake: a coroutine that is never awaited. Nobody is logged in.
    request.visitor.identify(request.POST["username"])
    return render(request, "page.html")


async def async_to_sync_in_an_async_view(request: HttpRequest) -> HttpResponse:
    # The other mistake: an async view must simply await.
    profile = async_to_sync(request.visitor.identify)(request.POST["username"])
    return HttpResponse(f"{profile.page_views} page views")


@cache_control(public=True, max_age=600, s_maxage=600)
async def offer(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"variant": request.visitor.decide_sync("hero").variant})


async def health(request: HttpRequest) -> HttpResponse:
    # /health is excluded from personalization: no visitor, and a page that does not ask works.
    if request.GET.get("read"):
        request.visitor.context  # noqa: B018
    return HttpResponse("ok", content_type="text/plain")


urlpatterns = [
    path("", home),
    path("login", login_view),
    path("logout", logout_view),
    path("sync", sync_page),
    path("sync/login", sync_login),
    path("sync/login-forgot", sync_login_without_async_to_sync),
    path("async/login-async-to-sync", async_to_sync_in_an_async_view),
    path("offer", offer),
    path("health", health),
]


def application(**options: Any) -> ASGIApp:
    """asgi.py: Django's ASGI application wrapped in PersonalizeMiddleware, answering the
    ASGI lifespan so the page views still buffered are written at shutdown."""
    from django.core.asgi import get_asgi_application

    return with_lifespan(PersonalizeMiddleware(get_asgi_application(), **options))
