"""What LICENZY's dotted paths point at in the test settings."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse

from licenzy_embed import Licenzy
from licenzy_embed.errors import LicenzyError

from .._support import make_lz


def create_licenzy() -> Licenzy:
    return make_lz()


def header_subject(request: HttpRequest) -> str | None:
    """A test-only resolver (the default is request.user.pk): lets many threads hit the app
    without logging each one in."""
    return request.headers.get("X-User")


def teapot(request: HttpRequest, error: LicenzyError) -> HttpResponse:
    return HttpResponse(f"denied: {error.code}", status=418)
