"""What the three adapters share, kept free of any framework so each adapter only translates.

Every decision lives here once — which error a missing subject is, what a webhook failure
answers, when a hold is committed or given back, how a client's ``Idempotency-Key`` becomes a
hold key — and the adapters turn the resulting ``(status, body)`` or ``LicenzyError`` into their
own response type (the Authlib split: the core raises, integrations render).

Everything here is blocking (it talks to the store); async adapters call it off the event loop.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from licenzy_embed import validation
from licenzy_embed.errors import (
    AccessDenied,
    InvalidRequest,
    InvalidSignature,
    LicenzyError,
    Unauthenticated,
)
from licenzy_embed.licenzy import Licenzy
from licenzy_embed.usage import Reservation

logger = logging.getLogger("licenzy_embed.integrations")

RequestT = TypeVar("RequestT")

IDEMPOTENCY_HEADER = "Idempotency-Key"
SIGNATURE_HEADER = "Stripe-Signature"
# CORS preflight carries no credentials; denying it would break every browser client. But the
# protected view must not run for it either (Django hands every method to a function view, so
# an OPTIONS request would get the paid content, or the metered work, for free): the decorators
# answer it with an empty 200 of their own instead (CORS middleware adds its headers to that).
PREFLIGHT_METHODS = frozenset({"OPTIONS"})

#: ``units`` for ``consumes_usage``: a fixed number, or a function of the request.
Units = int | Callable[[RequestT], int]


class WebhookFailed(LicenzyError):
    """Processing the event failed; nothing was recorded, so Stripe's retry will run it again."""

    code = "webhook_processing_failed"
    status = 500


def denial(error: LicenzyError) -> tuple[int, dict[str, Any]]:
    """The one place an error becomes the status and JSON body every adapter answers."""
    return error.status, error.to_dict()


# --------------------------------------------------------------------------- subjects
def subject_ref(value: object) -> str:
    """Turn what a resolver returned into a subject_ref, or raise ``Unauthenticated``.

    Resolvers may return a primary key (Django's ``user.pk`` is an int or a UUID); ``None`` and
    the empty string mean "nobody", so a resolver never has to raise to deny."""
    if value is None or value == "":
        raise Unauthenticated()
    if isinstance(value, int | uuid.UUID) and not isinstance(value, bool):
        return str(value)  # an integer or UUID primary key, as Django's ``user.pk`` may be
    if isinstance(value, str):
        return validation.subject_ref(value)
    raise TypeError(
        "the subject resolver must return a str, an int, a UUID or None, "
        f"not {type(value).__name__}"
    )


def check_access(lz: Licenzy, subject: object) -> str:
    """Raise the denial for this subject, or return its subject_ref when it has access.

    Any store failure propagates (``StoreUnavailable`` → 503): access is never guessed."""
    ref = subject_ref(subject)
    if not lz.check_access(ref):
        raise AccessDenied(ref)
    return ref


# --------------------------------------------------------------------------- usage
def check_units(units: object) -> None:
    """Reject a bad ``units`` when the view is decorated, not on its first request."""
    if callable(units):
        return
    if isinstance(units, bool) or not isinstance(units, int):
        raise TypeError("consumes_usage(units): units must be an int or a callable of the request")
    if not 1 <= units <= validation.MAX_UNITS:
        raise ValueError(f"consumes_usage(units): units must be between 1 and "
                         f"{validation.MAX_UNITS}")


def resolve_units(units: Units[RequestT], request: RequestT) -> int:
    value = units(request) if callable(units) else units
    return validation.units(value)


def view_id(func: Callable[..., Any]) -> str:
    """A short, stable name for a view, used to scope client idempotency keys to it.

    Without it one ``Idempotency-Key`` charged on one metered view would make every other
    metered view free for the same key."""
    name = f"{getattr(func, '__module__', '')}.{getattr(func, '__qualname__', repr(func))}"
    return hashlib.blake2b(name.encode(), digest_size=5).hexdigest()


def hold_key(view: str, client_key: str | None) -> str:
    """The hold's idempotency key: the client's ``Idempotency-Key`` (scoped to the view), so a
    retried request finds the hold of its first attempt; otherwise a fresh one per request."""
    if client_key is None or not client_key.strip():
        return f"req:{uuid.uuid4().hex}"
    return f"view-{view}:{client_key.strip()}"


def reserve(lz: Licenzy, subject: object, units: int, key: str) -> Reservation:
    """Hold the units before the view runs; raises the denial when the subject cannot pay.

    Under the same key this returns the first attempt's hold — ``held`` while that attempt
    is still running, ``committed`` once it was charged — so a retry is never charged twice."""
    return lz.reserve_usage(subject_ref(subject), units, idempotency_key=key)


def succeeded(status: int) -> bool:
    return 200 <= status < 400


def settle(reservation: Reservation, status: int) -> None:
    """Commit the hold after a 2xx/3xx answer, give it back after any other.

    A hold that is no longer ``held`` was settled already: by the view itself, or — for a
    retried request — by the first attempt, whose charge stands. A failed commit raises (the
    work is not paid for, so the client gets the error and may retry under the same key)."""
    if reservation.status != "held":
        return
    if succeeded(status):
        reservation.commit()
    else:
        release(reservation)


def release(reservation: Reservation) -> None:
    """Give the units back after a failure, never masking the failure itself: when even the
    release fails, the hold's TTL gives the units back."""
    if reservation.status != "held":
        return
    try:
        reservation.release()
    except Exception:
        logger.warning("licenzy-embed: could not release hold %s; it will expire",
                       reservation.id, exc_info=True)


# --------------------------------------------------------------------------- routes
def webhook(lz: Licenzy, payload: bytes, signature: str | None) -> tuple[int, dict[str, Any]]:
    """Stripe's side of the webhook route: 200 for processed, duplicate and ignored events;
    the error's own status for what Stripe should not retry (bad signature or payload);
    5xx for anything else, so that Stripe retries until the app is healthy again."""
    if not signature:
        return denial(InvalidSignature("the Stripe-Signature header is missing"))
    try:
        result = lz.handle_webhook(payload, signature)
    except LicenzyError as error:
        if error.status >= 500:
            logger.error("licenzy-embed: webhook not processed: %s", error.message)
        return denial(error)
    except Exception:
        logger.exception("licenzy-embed: webhook processing failed; Stripe will retry")
        return denial(WebhookFailed())
    return 200, result.to_dict()


def checkout(lz: Licenzy, subject: object, body: bytes,
             client_key: str | None) -> dict[str, Any]:
    """Create a Checkout Session for the resolved subject.

    The subject comes from the server-side resolver only: a ``subject_ref`` in the body is
    ignored, or anyone could buy (or start purchases) on another user's behalf."""
    ref = subject_ref(subject)
    try:
        data = json.loads(body or b"null")
    except (ValueError, UnicodeDecodeError):
        raise InvalidRequest("the body must be a JSON object") from None
    if not isinstance(data, dict) or not isinstance(data.get("product_code"), str):
        raise InvalidRequest('the body must be a JSON object with a string "product_code"')
    session = lz.create_checkout_session(ref, data["product_code"],
                                         idempotency_key=checkout_key(ref, client_key))
    result: dict[str, Any] = session.to_dict()
    return result


def checkout_key(subject: str, client_key: str | None) -> str:
    """The checkout's idempotency key: the client's ``Idempotency-Key`` scoped to the subject.

    Checkout keys are unique per mode, not per subject, and a conflict names the checkout
    that holds the key; scoping keeps one user's key from ever meeting another user's."""
    if client_key is None or not client_key.strip():
        return f"req:{uuid.uuid4().hex}"
    digest = hashlib.blake2b(subject.encode(), digest_size=5).hexdigest()
    return f"sub-{digest}:{client_key.strip()}"


def customer_access(lz: Licenzy, subject: object) -> dict[str, Any]:
    return lz.customer_access(subject_ref(subject)).to_dict()
