"""The test project's own views, decorated with the adapter's decorators."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.middleware.csrf import get_token
from django.utils.decorators import method_decorator
from django.views import View

from licenzy_embed.integrations.django import consumes_usage, get_licenzy, requires_access


@requires_access
def sync_report(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"report": "sync"})


@requires_access()
async def async_report(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"report": "async"})


@consumes_usage(10)
def sync_generate(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"generated": "sync", "hold": request.licenzy_reservation.units})  # type: ignore[attr-defined]


@consumes_usage(10)
async def async_generate(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"generated": "async", "hold": request.licenzy_reservation.units})  # type: ignore[attr-defined]


@consumes_usage(10)
def sync_boom(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("the work failed")


@consumes_usage(10)
async def async_boom(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("the work failed")


@consumes_usage(10)
def sync_fail500(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"error": "upstream"}, status=500)


@consumes_usage(10)
async def async_fail500(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"error": "upstream"}, status=500)


@consumes_usage(lambda request: int(request.GET["n"]))
def sync_sized(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"ok": True})


@consumes_usage(10)
def sync_redirect(request: HttpRequest) -> HttpResponse:
    return HttpResponseRedirect("/done")


@consumes_usage(10)
def sync_slow(request: HttpRequest) -> HttpResponse:
    get_licenzy().clock.advance(minutes=10)  # type: ignore[attr-defined]  # past the hold's TTL
    return JsonResponse({"done": "too late"})


@consumes_usage(10)
async def async_slow(request: HttpRequest) -> HttpResponse:
    get_licenzy().clock.advance(minutes=10)  # type: ignore[attr-defined]
    return JsonResponse({"done": "too late"})


@requires_access("reports")
def feature_reports(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"feature": "reports"})


@requires_access(feature="sso")
async def feature_sso(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"feature": "sso"})


@consumes_usage(10, meter="api_calls")
def feature_api(request: HttpRequest) -> HttpResponse:
    hold = request.licenzy_reservation  # type: ignore[attr-defined]
    return JsonResponse({"hold": hold.units, "meter": hold.meter})


@consumes_usage(1, meter="api_cals")
def feature_typo(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"ran": True})


@method_decorator(requires_access, name="dispatch")
class ReportView(View):
    def get(self, request: HttpRequest) -> HttpResponse:
        return JsonResponse({"report": "class"})


def csrf(request: HttpRequest) -> HttpResponse:
    """The app's page that hands out a CSRF token, as a template with {% csrf_token %} would."""
    return JsonResponse({"token": get_token(request)})


def app_post(request: HttpRequest) -> HttpResponse:
    """The app's own POST view: CsrfViewMiddleware must keep protecting it."""
    return JsonResponse({"posted": True})
