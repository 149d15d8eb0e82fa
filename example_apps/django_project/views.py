from __future__ import annotations

from django.contrib.auth import login
from django.contrib.auth.models import User
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.middleware.csrf import get_token
from django.views.decorators.http import require_POST

from licenzy_embed.integrations.django import consumes_usage, requires_access


def home(request: HttpRequest) -> HttpResponse:
    """Hands out the CSRF token, as a template's {% csrf_token %} would."""
    return JsonResponse({"csrf_token": get_token(request)})


@require_POST
def demo_login(request: HttpRequest) -> HttpResponse:
    """Demo sign-in: a real project uses django.contrib.auth's LoginView."""
    user, _ = User.objects.get_or_create(username=request.GET["user"])
    login(request, user)
    return JsonResponse({"user": user.username, "subject_ref": str(user.pk)})


@requires_access
def report(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"report": f"the monthly report for {request.user.get_username()}"})


@require_POST
@consumes_usage(10)
async def generate(request: HttpRequest) -> HttpResponse:
    # An async view: the adapter keeps its store calls off the event loop.
    return JsonResponse({"generated": True})
