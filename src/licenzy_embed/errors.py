"""Errors of licenzy-embed.

Every error carries a stable ``code`` and an HTTP ``status`` so that each framework adapter
only *translates* an error into its own response type and never decides what it means
(the Authlib pattern). ``to_dict`` is the JSON body that every adapter sends.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

# What a denial offers to buy: (product_code, kind) of each catalog product that would grant
# what was refused, in catalog order (``Catalog.granting``).
Upgrade = tuple[tuple[str, str], ...]


def _upgrade_body(upgrade: Upgrade) -> list[dict[str, str]]:
    return [{"product_code": code, "kind": kind} for code, kind in upgrade]


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
    """The subject has no available entitlement (an adapter's ``requires_access``), or none
    that grants the feature asked for. ``upgrade`` names the products that would."""

    code = "access_denied"
    status = 402

    def __init__(self, subject_ref: str, *, feature: str | None = None,
                 upgrade: Iterable[tuple[str, str]] = ()) -> None:
        self.subject_ref = subject_ref
        self.feature = feature
        self.upgrade: Upgrade = tuple(upgrade)
        super().__init__("an active subscription, pass or usage pack is required"
                         if feature is None else
                         f"a subscription, pass or usage pack granting {feature!r} is required")

    def to_dict(self) -> dict[str, Any]:
        body = super().to_dict()
        if self.feature is not None:
            body["feature"] = self.feature
        return {**body, "upgrade": _upgrade_body(self.upgrade)}


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

    def __init__(self, requested: int, usage_remaining: int, *, meter: str = "units",
                 upgrade: Iterable[tuple[str, str]] = ()) -> None:
        self.requested = requested
        self.usage_remaining = usage_remaining
        self.meter = meter
        self.upgrade: Upgrade = tuple(upgrade)
        what = "units" if meter == "units" else f"units of {meter!r}"
        super().__init__(
            f"requested {requested} {what} but only {usage_remaining} are available"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            **super().to_dict(),
            "requested": self.requested,
            "usage_remaining": self.usage_remaining,
            "meter": self.meter,
            "upgrade": _upgrade_body(self.upgrade),
        }


class NothingToSpend(InsufficientUsage):
    """The subject has no entitlement carrying the meter at all: nothing to spend from, so the
    answer is a 402 like a denied access (buy something), not a 409 (wait, or buy more).
    Still an ``InsufficientUsage``, so code that catches that keeps working."""

    code = "access_denied"
    status = 402


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
