"""What the three adapters share, kept free of any framework so each adapter only translates.

Every decision lives here once — which error a missing subject is, what a webhook failure
answers, when a hold is committed or given back, how a client's ``Idempotency-Key`` becomes a
hold key — and the adapters turn the resulting ``(status, body)`` or ``LicenzyError`` into their
own response type (the Authlib split: the core raises, integrations render).

Everything here is blocking (it talks to the store) and async adapters call it off the event
loop, except the async hold lifecycle (:class:`AsyncHold`, :func:`metered_async`), which takes
the adapter's way of running blocking work in a thread.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import threading
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from licenzy_embed import validation
from licenzy_embed.catalog import NAME
from licenzy_embed.errors import (
    IdempotencyConflict,
    InvalidRequest,
    InvalidSignature,
    LicenzyError,
    PayloadTooLarge,
    Unauthenticated,
)
from licenzy_embed.licenzy import Licenzy
from licenzy_embed.usage import Reservation

# A child of "licenzy_embed": what the client is not told (driver text, Stripe's message,
# operator instructions) is logged here, where the operator looks.
logger = logging.getLogger("licenzy_embed.integrations")

RequestT = TypeVar("RequestT")
R = TypeVar("R")
T = TypeVar("T")

IDEMPOTENCY_HEADER = "Idempotency-Key"
SIGNATURE_HEADER = "Stripe-Signature"
# CORS preflight carries no credentials; denying it would break every browser client. But the
# protected view must not run for it either (Django hands every method to a function view, so
# an OPTIONS request would get the paid content, or the metered work, for free): the decorators
# answer it with an empty 200 of their own instead (CORS middleware adds its headers to that).
PREFLIGHT_METHODS = frozenset({"OPTIONS"})

#: ``units`` for ``consumes_usage``: a fixed number, or a function of the request.
Units = int | Callable[[RequestT], int]

#: Body size limits of the mounted routes. Stripe's events are a few KiB (a large invoice a few
#: hundred); a checkout body is one product code. Anything bigger is refused (413) before it
#: is read in full, so a 50 MB body costs neither memory nor an HMAC over all of it.
WEBHOOK_MAX_BYTES = 1024 * 1024
CHECKOUT_MAX_BYTES = 64 * 1024

#: What a client is told for a 5xx denial; the error's own text goes to the log only, since it
#: may name the database host and port, carry Stripe's message (a masked key, network details)
#: or an operator's instruction ("run `licenzy-embed migrate`") that means nothing to a client.
PLAIN_MESSAGES = {
    503: "Entitlements are temporarily unavailable; try again shortly.",
    502: "The payment provider could not be reached; try again shortly.",
}


class WebhookFailed(LicenzyError):
    """Processing the event failed; nothing was recorded, so Stripe's retry will run it again."""

    code = "webhook_processing_failed"
    status = 500


class RequestAbandoned(LicenzyError):
    """The request was given up (cancelled, timed out, its worker gone) before its hold was
    settled: the units went back, and nothing was charged."""

    code = "request_abandoned"
    status = 503


def public(error: LicenzyError, *, log: bool = True) -> LicenzyError:
    """The error as a client may see it: a 502/503 keeps its class, code and fields but gets a
    plain message; the original text is logged. Every adapter passes its denials through here
    before they reach the JSON body or the app's denial handler."""
    plain = PLAIN_MESSAGES.get(error.status)
    if plain is None or error.message == plain:
        return error
    if log:
        logger.warning("licenzy-embed: answered %s %s: %s", error.status, error.code,
                       error.message)
    shown = copy.copy(error)
    shown.message = plain
    shown.args = (plain,)
    return shown


def denial(error: LicenzyError, *, log: bool = True) -> tuple[int, dict[str, Any]]:
    """The one place an error becomes the status and JSON body every adapter answers."""
    error = public(error, log=log)
    return error.status, error.to_dict()


# --------------------------------------------------------------------------- request bodies
def check_limit(value: object, name: str) -> int:
    """A body size limit from configuration, checked when the adapter is configured."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive number of bytes, not {value!r}")
    return value


def too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"the request body is over this route's limit of {limit} bytes")


def check_declared_length(declared: str | None, limit: int) -> None:
    """Refuse a body by its ``Content-Length`` before reading any of it."""
    if declared is None or declared == "":
        return
    try:
        length = int(declared)
    except ValueError:
        raise InvalidRequest("the Content-Length header is not a number") from None
    if length < 0:
        raise InvalidRequest("the Content-Length header is not a number")
    if length > limit:
        raise too_large(limit)


def read_capped(read: Callable[[int], bytes], limit: int, chunk: int = 64 * 1024) -> bytes:
    """Read a body stream to its end, but never more than ``limit`` + 1 bytes: a chunked body
    has no ``Content-Length`` to refuse up front, so the cap is applied while reading."""
    parts: list[bytes] = []
    size = 0
    while True:
        part = read(min(chunk, limit + 1 - size))
        if not part:
            return b"".join(parts)
        parts.append(part)
        size += len(part)
        if size > limit:
            raise too_large(limit)


# --------------------------------------------------------------------------- subjects
def subject_ref(value: object) -> str:
    """Turn what a resolver returned into a subject_ref, or raise ``Unauthenticated``.

    Resolvers may return a primary key (Django's ``user.pk`` is an int or a UUID); ``None`` and
    the empty string mean "nobody", so a resolver never has to raise to deny."""
    if value is None or value == "":
        raise Unauthenticated("sign in to continue: this request is not signed in")
    if isinstance(value, int | uuid.UUID) and not isinstance(value, bool):
        return str(value)  # an integer or UUID primary key, as Django's ``user.pk`` may be
    if isinstance(value, str):
        return validation.subject_ref(value)
    raise TypeError(
        "the subject resolver must return a str, an int, a UUID or None, "
        f"not {type(value).__name__}"
    )


def check_access(lz: Licenzy, subject: object, feature: str | None = None) -> str:
    """Raise the denial for this subject, or return its subject_ref when it has access (to
    ``feature``, when one is named). The denial, and the products it offers to buy, come
    from the core (``Licenzy.denial``).

    Any store failure propagates (``StoreUnavailable`` → 503): access is never guessed."""
    ref = subject_ref(subject)
    if not lz.check_access(ref, feature):
        raise lz.denial(ref, feature)
    return ref


def check_name(value: object, what: str, decorator: str) -> str | None:
    """A feature or meter name given to a decorator, checked when the view is decorated (the
    catalog, which says whether any product grants it, is checked on the first request)."""
    if value is None:
        return None
    if not isinstance(value, str) or not NAME.fullmatch(value):
        raise ValueError(f"{decorator}: {what} {value!r} must match "
                         "[a-z0-9][a-z0-9_.:-]{0,63}")
    return value


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


def reserve(lz: Licenzy, subject: object, units: int, key: str,
            client_key: str | None = None, meter: str = "units") -> Reservation:
    """Hold the units before the view runs; raises the denial when the subject cannot pay.

    Under the same key this returns the first attempt's hold — ``held`` while that attempt
    is still running, ``committed`` once it was charged — so a retry is never charged twice.
    A conflict names the client's ``Idempotency-Key``, not the view-scoped key it became."""
    try:
        return lz.reserve_usage(subject_ref(subject), units, idempotency_key=key, meter=meter)
    except IdempotencyConflict:
        if client_key is None:
            raise
        raise IdempotencyConflict(
            f"the Idempotency-Key {client_key.strip()!r} was already used on this view for "
            "a different number of units") from None


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


# --------------------------------------------------------------------------- hold lifecycle
@dataclass(frozen=True)
class Denied:
    """What the lifecycle answers instead of the view's response: the adapter renders it."""

    error: LicenzyError


def _never() -> bool:
    return False


def _keep(result: object) -> None:
    return None


class _Attempt:
    """Who settles one request's hold, decided once under a lock: the settle step (commit on
    2xx/3xx, release otherwise) or the request's abandonment (release). A settle that runs in a
    worker thread after its request was cancelled — the job was queued behind a busy pool, or
    the thread outlived the task awaiting it — finds the request abandoned and releases."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reservation: Reservation | None = None
        self._abandoned = False
        self._claimed = False

    def held(self, reservation: Reservation) -> bool:
        """Record the hold; False when the request was abandoned meanwhile (release it)."""
        with self._lock:
            self._reservation = reservation
            if self._abandoned and not self._claimed:
                self._claimed = True
                return False
            return True

    def claim(self) -> str:
        """For the settle step: ``"settle"``, ``"release"`` (abandoned, nobody released yet),
        or ``""`` (the abandonment released it already)."""
        with self._lock:
            if self._claimed:
                return ""
            self._claimed = True
            return "release" if self._abandoned else "settle"

    def abandon(self) -> Reservation | None:
        """Mark the request abandoned; returns the hold to release when nobody settled it."""
        with self._lock:
            self._abandoned = True
            if self._claimed or self._reservation is None:
                return None
            self._claimed = True
            return self._reservation


def _settle_unless_abandoned(attempt: _Attempt, reservation: Reservation, status: int,
                             abandoned: Callable[[], bool]) -> None:
    verdict = attempt.claim()
    if verdict == "settle" and not abandoned():
        settle(reservation, status)
        return
    if verdict:
        release(reservation)
    raise RequestAbandoned("the request was abandoned before it was answered; "
                           "nothing was charged")


def metered(reserve: Callable[[], Reservation], run: Callable[[Reservation], R],
            status_of: Callable[[R], int], *, abandoned: Callable[[], bool] = _never,
            discard: Callable[[R], object] = _keep) -> R | Denied:
    """The hold lifecycle of ``consumes_usage``, for a view run in the calling thread.

    Reserve (a denial is answered instead of running the view), run the view (any exception,
    a cancellation included, releases the hold and propagates), then settle by status:
    commit on 2xx/3xx, release otherwise. ``abandoned()`` is asked just before committing:
    when the request was given up meanwhile the hold is released, never charged. A failed
    settle answers its error instead of the view's response (``discard`` closes that one)."""
    try:
        reservation = reserve()
    except LicenzyError as error:
        return Denied(error)
    attempt = _Attempt()
    attempt.held(reservation)
    try:
        result = run(reservation)
        status = status_of(result)
    except BaseException:
        release(reservation)
        raise
    try:
        _settle_unless_abandoned(attempt, reservation, status, abandoned)
    except LicenzyError as error:
        discard(result)
        return Denied(error)
    return result


class AsyncHold:
    """One request's hold in an async adapter: :meth:`take` before the view, then
    :meth:`settle` with the response's status, or :meth:`give_back` after any exception.

    The blocking store calls run through ``offload`` (a worker thread); the release after a
    failure through ``shielded`` (one a cancellation cannot stop). A request cancelled while
    its reserve or settle job is queued or running is abandoned: whichever comes second — the
    job or the cancellation — gives the units back, and a settle job that runs after its
    request was given up (``abandoned()`` in that thread) releases instead of committing.
    FastAPI's dependency takes the hold and its route class settles it; the decorators use
    :func:`metered_async`."""

    def __init__(self, *, offload: Callable[[Callable[[], Any]], Awaitable[Any]],
                 shielded: Callable[[Callable[[], Any]], Awaitable[Any]],
                 abandoned: Callable[[], bool] = _never) -> None:
        self._offload = offload
        self._shielded = shielded
        self._abandoned = abandoned
        self._attempt = _Attempt()
        self.reservation: Reservation | None = None

    async def take(self, reserve: Callable[[], Reservation]) -> Reservation:
        """Reserve; a denial (``LicenzyError``) propagates with nothing held."""
        attempt = self._attempt

        def job() -> Reservation:
            reservation = reserve()
            if not attempt.held(reservation):
                release(reservation)  # the request was cancelled while this job waited or ran
            return reservation

        try:
            self.reservation = await self._offload(job)
        except LicenzyError:
            raise
        except BaseException:
            await self.give_back()
            raise
        return self.reservation

    async def give_back(self) -> None:
        reservation = self._attempt.abandon()
        if reservation is not None:
            await self._shielded(lambda: release(reservation))

    async def settle(self, status: int) -> None:
        """Commit on 2xx/3xx, release otherwise; a failed settle raises its error."""
        reservation = self.reservation
        if reservation is None:
            return
        try:
            await self._offload(lambda: _settle_unless_abandoned(
                self._attempt, reservation, status, self._abandoned))
        except LicenzyError:
            raise
        except BaseException:
            await self.give_back()
            raise


async def metered_async(reserve: Callable[[], Reservation],
                        run: Callable[[Reservation], Awaitable[R]],
                        status_of: Callable[[R], int], *,
                        offload: Callable[[Callable[[], Any]], Awaitable[Any]],
                        shielded: Callable[[Callable[[], Any]], Awaitable[Any]],
                        abandoned: Callable[[], bool] = _never,
                        discard: Callable[[R], object] = _keep) -> R | Denied:
    """:func:`metered` for an async view, with an :class:`AsyncHold`."""
    hold = AsyncHold(offload=offload, shielded=shielded, abandoned=abandoned)
    try:
        reservation = await hold.take(reserve)
    except LicenzyError as error:
        return Denied(error)
    try:
        result = await run(reservation)
        status = status_of(result)
    except BaseException:
        await hold.give_back()
        raise
    try:
        await hold.settle(status)
    except LicenzyError as error:
        discard(result)
        return Denied(error)
    return result


# --------------------------------------------------------------------------- routes
def webhook(lz: Licenzy, payload: bytes, signature: str | None) -> tuple[int, dict[str, Any]]:
    """Stripe's side of the webhook route: 200 for processed, duplicate and ignored events;
    the error's own status for what Stripe should not retry (bad signature or payload);
    5xx for anything else, so that Stripe retries until the app is healthy again."""
    if not signature:
        return denial(InvalidSignature("the Stripe-Signature header is missing"))
    try:
        # The core refuses what it cannot take apart (a header the SDK chokes on, a body that
        # is not UTF-8 or nests too deep) as a 400 itself, so no special case is needed here.
        # Other exceptions stay 5xx: a bug in a handler must not turn into a 400 that makes
        # Stripe drop the event.
        result = lz.handle_webhook(payload, signature)
    except LicenzyError as error:
        if error.status >= 500:
            logger.error("licenzy-embed: webhook not processed: %s", error.message)
        return denial(error, log=False)
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
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        # RecursionError: a few KiB of "[" nest deeper than the parser's stack.
        raise InvalidRequest("the body must be a JSON object") from None
    if not isinstance(data, dict) or not isinstance(data.get("product_code"), str):
        raise InvalidRequest('the body must be a JSON object with a string "product_code"')
    try:
        session = lz.create_checkout_session(ref, data["product_code"],
                                             idempotency_key=checkout_key(ref, client_key))
    except IdempotencyConflict:
        if client_key is None:
            raise
        # The core names the key it was given: the subject-scoped one, which is ours, not
        # the client's.
        raise IdempotencyConflict(
            f"the Idempotency-Key {client_key.strip()!r} was already used for another "
            "checkout") from None
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
