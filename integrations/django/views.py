"""The three billing views that ``urls.py`` mounts, and the one function that turns a
``LicenzyError`` into a response (used by the decorators too)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from licenzy_embed.errors import LicenzyError

from .. import _common
from .conf import get_settings


def deny(request: HttpRequest, error: LicenzyError) -> HttpResponse:
    """The denial response: the app's ``DENIAL_HANDLER`` when set, else the standard JSON."""
    handler = get_settings().denial_handler
    if handler is not None:
        return handler(request, error)
    status, body = _common.denial(error)
    return JsonResponse(body, status=status)


def current_subject(request: HttpRequest) -> object:
    return get_settings().subject_resolver(request)


# Stripe cannot send a CSRF token: the signature is what authenticates this request.
@csrf_exempt  # type: ignore[untyped-decorator, unused-ignore]
@require_POST  # type: ignore[untyped-decorator, unused-ignore]
def stripe_webhook(request: HttpRequest) -> HttpResponse:
    # request.body is the exact bytes Stripe signed; request.POST would re-encode them.
    status, body = _common.webhook(get_settings().licenzy, request.body,
                                   request.headers.get(_common.SIGNATURE_HEADER))
    return JsonResponse(body, status=status)


@require_POST  # type: ignore[untyped-decorator, unused-ignore]
def checkout(request: HttpRequest) -> HttpResponse:
    """Left under CsrfViewMiddleware: it acts for the signed-in user, so a cross-site form must
    not be able to start purchases in their name."""
    try:
        return JsonResponse(_common.checkout(
            get_settings().licenzy, current_subject(request), request.body,
            request.headers.get(_common.IDEMPOTENCY_HEADER)))
    except LicenzyError as error:
        return deny(request, error)


@require_GET  # type: ignore[untyped-decorator, unused-ignore]
def access(request: HttpRequest) -> HttpResponse:
    try:
        return JsonResponse(_common.customer_access(get_settings().licenzy,
                                                    current_subject(request)))
    except LicenzyError as error:
        return deny(request, error)
