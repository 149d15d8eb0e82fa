"""The example's views: Django's own auth signs the demo user in, the library's decorators
guard the report and the metered Generate action, and the pages come from ``_pages``."""

from __future__ import annotations

from asgiref.sync import sync_to_async
from django.contrib.auth import login, logout
from django.contrib.auth.models import User
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.middleware.csrf import get_token
from django.shortcuts import redirect
from django.views.decorators.http import require_GET, require_POST

import _pages
from billing import products
from licenzy_embed import LicenzyError
from licenzy_embed.integrations.django import consumes_usage, get_licenzy, requires_access

FRAMEWORK = "Django"


def _user(request: HttpRequest) -> str | None:
    return request.user.get_username() if request.user.is_authenticated else None


def _html(request: HttpRequest) -> bool:
    return _pages.wants_html(request.headers.get("accept"))


def _page(request: HttpRequest, render: _pages.Render, status: int = 200) -> HttpResponse:
    # get_token also sets the CSRF cookie, as a template's {% csrf_token %} would.
    return HttpResponse(render(_user(request), csrf=get_token(request), framework=FRAMEWORK),
                        status=status)


def denied(request: HttpRequest, error: LicenzyError) -> HttpResponse:
    """``LICENZY["DENIAL_HANDLER"]``: a page for a browser, the library's JSON otherwise."""
    if _html(request):
        return _page(request, lambda user, **kw: _pages.refusal(error, user, **kw),
                     error.status)
    return JsonResponse(error.to_dict(), status=error.status)


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    return _page(request, _pages.home)


@require_POST
def demo_login(request: HttpRequest) -> HttpResponse:
    """Demo sign-in as one of the users the migration created, with Django's ``login``: a real
    project checks a password first (``LoginView``) or an SSO assertion."""
    user = User.objects.filter(username=request.GET.get("user", "")).first()
    if user is None:
        return JsonResponse({"error": "invalid_request",
                             "message": f"sign in as one of {list(_pages.DEMO_USERS)}"},
                            status=400)
    login(request, user)
    if _html(request):
        return redirect("/pricing")
    return JsonResponse({"user": user.username, "subject_ref": str(user.pk)})


@require_POST
def demo_logout(request: HttpRequest) -> HttpResponse:
    logout(request)
    return redirect("/")


@require_GET
def pricing(request: HttpRequest) -> HttpResponse:
    return _page(request, lambda user, **kw: _pages.pricing(user, products(), **kw))


@require_GET
def success(request: HttpRequest) -> HttpResponse:
    return _page(request, _pages.success)


@require_GET
def cancel(request: HttpRequest) -> HttpResponse:
    return _page(request, _pages.cancelled)


@requires_access
def report(request: HttpRequest) -> HttpResponse:
    if not _html(request):
        return JsonResponse({"report": f"the monthly report for {request.user.get_username()}"})
    access = get_licenzy().customer_access(str(request.user.pk))
    return _page(request, lambda user, **kw: _pages.report(user, access, **kw))


@require_POST
@consumes_usage(_pages.GENERATE_UNITS)
async def generate(request: HttpRequest) -> HttpResponse:
    # An async view: the adapter keeps its store calls off the event loop, and so does this.
    # The hold already took its units out of what is left; they are spent when this answers.
    return await sync_to_async(_generated)(request)


def _generated(request: HttpRequest) -> HttpResponse:
    access = get_licenzy().customer_access(str(request.user.pk))
    if not _html(request):
        return JsonResponse({"generated": True, "units_left": _pages.units_left(access)})
    return _page(request, lambda user, **kw: _pages.generated(user, access, **kw))
