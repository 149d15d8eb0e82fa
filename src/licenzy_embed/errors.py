"""Errors of licenzy-embed.

Every error carries a stable ``code`` and an HTTP ``status`` so that each framework adapter
only *translates* an error into its own response type and never decides what it means
(the Authlib pattern). ``to_dict`` is the JSON body that every adapter sends.
"""

from __future__ import annotations

from typing import Any


class LicenzyError(Exception):
    """Base class: ``code`` is stable across releases, ``status`` is the HTTP status to answer."""

    code: str = "licenzy_error"
    status: int = 500

    def __init__(self, message: str | None = None) -> None:
        self.message = message or self.__class__.__doc__ or self.code
        super().__init__(self.message)

    def to_dict(self) -> dict[str, Any]:
        return {"error": self.code, "message": self.message}


class Unauthenticated(LicenzyError):
    """No subject could be resolved for the request: nobody is signed in. Raised by the
    framework adapters, kept here so every denial's code and status live in one module."""

    code = "unauthenticated"
    status = 401


class AccessDenied(LicenzyError):
    """The subject has no available entitlement (an adapter's ``requires_access``)."""

    code = "access_denied"
    status = 402

    def __init__(self, subject_ref: str) -> None:
        self.subject_ref = subject_ref
        super().__init__("an active subscription, pass or usage pack is required")


class InvalidRequest(LicenzyError):
    """The request is malformed: a bad subject_ref, units, product code or missing key."""

    code = "invalid_request"
    status = 400


class UnknownProduct(LicenzyError):
    """No product with this code in the catalog."""

    code = "unknown_product"
    status = 404

    def __init__(self, product_code: str) -> None:
        self.product_code = product_code
        super().__init__(f"unknown product code {product_code!r}")

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "product_code": self.product_code}


class EntitlementNotFound(LicenzyError):
    """No entitlement with this id in the current mode."""

    code = "entitlement_not_found"
    status = 404


class EventNotFound(LicenzyError):
    """No change event with this id in the outbox of the current mode."""

    code = "event_not_found"
    status = 404


class InsufficientUsage(LicenzyError):
    """The subject's available units do not cover the request; nothing was consumed."""

    code = "insufficient_usage"
    status = 409

    def __init__(self, requested: int, usage_remaining: int) -> None:
        self.requested = requested
        self.usage_remaining = usage_remaining
        super().__init__(
            f"requested {requested} units but only {usage_remaining} are available"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            **super().to_dict(),
            "requested": self.requested,
            "usage_remaining": self.usage_remaining,
        }


class ReservationExpired(LicenzyError):
    """The hold expired (or was released) before it was committed; its units went back."""

    code = "reservation_expired"
    status = 409


class IdempotencyConflict(LicenzyError):
    """The idempotency key was already used with different arguments."""

    code = "idempotency_conflict"
    status = 422


class InvalidSignature(LicenzyError):
    """The webhook signature is missing, forged, stale or made with another secret."""

    code = "invalid_signature"
    status = 400


class InvalidPayload(LicenzyError):
    """The webhook body is not a Stripe event (malformed JSON, missing fields)."""

    code = "invalid_payload"
    status = 400


class ModeMismatch(LicenzyError):
    """A live-mode object reached a test-mode instance, or the reverse."""

    code = "mode_mismatch"
    status = 400


class StoreUnavailable(LicenzyError):
    """The entitlement store cannot be reached; access is refused rather than guessed."""

    code = "entitlements_unavailable"
    status = 503

    def __init__(self, message: str | None = None, *, retryable: bool = False,
                 detail: str | None = None) -> None:
        # True when the database broke a deadlock or a serialization conflict: nothing was
        # written and the very same transaction may simply run again.
        self.retryable = retryable
        # For the log only, never a response body: the driver's text (host, port) and what
        # an operator should do. ``message`` stays plain enough to show any client.
        self.detail = detail
        super().__init__(message)


class PaymentProviderError(LicenzyError):
    """Stripe refused or could not be reached while creating a checkout session."""

    code = "payment_provider_error"
    status = 502


class PayloadTooLarge(LicenzyError):
    """A request body over the route's size limit; refused before it is read in full."""

    code = "payload_too_large"
    status = 413
