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
    error = _common.public(error)
    handler = get_settings().denial_handler
    if handler is not None:
        return handler(request, error)
    status, body = _common.denial(error)
    return JsonResponse(body, status=status)


def _body(request: HttpRequest, limit: int) -> bytes:
    """The body, refused (413) by its Content-Length before any of it is read, else read with
    a cap: ``request.body`` would read it whole first (up to DATA_UPLOAD_MAX_MEMORY_SIZE)."""
    _common.check_declared_length(request.META.get("CONTENT_LENGTH"), limit)
    # After a middleware read request.body (CsrfViewMiddleware does for a form), read()
    # reads that copy again.
    return _common.read_capped(request.read, limit)


def current_subject(request: HttpRequest) -> object:
    return get_settings().subject_resolver(request)


# Stripe cannot send a CSRF token: the signature is what authenticates this request.
@csrf_exempt  # type: ignore[untyped-decorator, unused-ignore]
@require_POST  # type: ignore[untyped-decorator, unused-ignore]
def stripe_webhook(request: HttpRequest) -> HttpResponse:
    # The raw stream is the exact bytes Stripe signed; request.POST would re-encode them.
    try:
        payload = _body(request, get_settings().webhook_max_bytes)
    except LicenzyError as error:
        status, body = _common.denial(error)
    else:
        status, body = _common.webhook(get_settings().licenzy, payload,
                                       request.headers.get(_common.SIGNATURE_HEADER))
    return JsonResponse(body, status=status)


@require_POST  # type: ignore[untyped-decorator, unused-ignore]
def checkout(request: HttpRequest) -> HttpResponse:
    """Left under CsrfViewMiddleware: it acts for the signed-in user, so a cross-site form must
    not be able to start purchases in their name."""
    try:
        subject = current_subject(request)
        return JsonResponse(_common.checkout(
            get_settings().licenzy, subject, _body(request, get_settings().checkout_max_bytes),
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
