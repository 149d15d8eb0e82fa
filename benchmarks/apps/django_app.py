"""Django under gunicorn, in one module (settings, URLs, views): ``/plain``, ``/access``
(``requires_access``), ``/consume`` (``consumes_usage(1)``), the same view body each;
``/bare-check`` and ``/bare-spend`` do the floors' work in the view (see ``common``)."""

from __future__ import annotations

import django
from common import bare_check, bare_spend, licenzy, subject
from django.conf import settings
from django.core.wsgi import get_wsgi_application
from django.http import HttpRequest, HttpResponse
from django.urls import path

lz = licenzy()
settings.configure(
    DEBUG=False,
    SECRET_KEY="benchmark-only",
    ALLOWED_HOSTS=["127.0.0.1", "localhost"],
    ROOT_URLCONF=__name__,
    MIDDLEWARE=[],
    INSTALLED_APPS=["licenzy_embed.integrations.django"],
    LICENZY={"INSTANCE": f"{__name__}.lz", "SUBJECT_RESOLVER": f"{__name__}.subject"},
)
django.setup()

from licenzy_embed.integrations.django import consumes_usage, requires_access  # noqa: E402


def plain(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok")


@requires_access
def access(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok")


@consumes_usage(1)
def consume(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok")


def bare_check_view(request: HttpRequest) -> HttpResponse:
    bare_check()
    return HttpResponse("ok")


def bare_spend_view(request: HttpRequest) -> HttpResponse:
    bare_spend()
    return HttpResponse("ok")


urlpatterns = [path("plain", plain), path("access", access), path("consume", consume),
               path("bare-check", bare_check_view), path("bare-spend", bare_spend_view)]
application = get_wsgi_application()
__all__ = ["application", "subject", "urlpatterns"]
