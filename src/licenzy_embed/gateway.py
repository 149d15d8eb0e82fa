"""The Stripe gateway: the only place the library calls Stripe's API.

Checkout needs two calls — create a customer, create a Checkout Session — so the gateway is a
two-method :class:`Protocol`. :class:`StripeClientGateway` makes them with the official SDK's
``StripeClient`` (its base address can point at a local server in tests); the Stripe simulator
of :mod:`licenzy_embed.testing` implements the same Protocol without any network. Both take the
same request parameters, built once by :mod:`licenzy_embed.checkout`, so what the simulator sees
is exactly what Stripe would be sent.

Every provider failure comes out as :class:`~licenzy_embed.errors.PaymentProviderError` (or
:class:`~licenzy_embed.errors.ModeMismatch` when Stripe says the price lives in the other mode),
so callers never handle SDK exception types.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import stripe

from .errors import ModeMismatch, PaymentProviderError

logger = logging.getLogger("licenzy_embed")


@dataclass(frozen=True)
class GatewaySession:
    """What checkout keeps of a created Checkout Session."""

    id: str
    url: str


class NotPermitted(PaymentProviderError):
    """The key may not make this read: a restricted key without that permission."""


@runtime_checkable
class StripeGateway(Protocol):
    def create_customer(self, params: dict[str, Any], *, idempotency_key: str) -> str:
        """Create a Stripe customer; returns its id."""

    def create_checkout_session(self, params: dict[str, Any], *,
                                idempotency_key: str) -> GatewaySession:
        """Create a Checkout Session from the parameters ``POST /v1/checkout/sessions`` takes."""


@runtime_checkable
class StripeHistory(Protocol):
    """What ``reconcile`` reads from Stripe: the Events API, and the current state of one
    subscription or payment intent. Plain JSON dicts, as Stripe sends them; the simulator of
    the testing kit implements it too, so a key-less app can reconcile in tests and demos."""

    def list_events(self, *, types: Iterable[str], created_gte: int) -> list[dict[str, Any]]:
        """Every event of ``types`` created at or after ``created_gte``, all pages."""

    def retrieve_subscription(self, subscription_id: str) -> dict[str, Any] | None:
        """The subscription now, or None when Stripe has no such subscription."""

    def retrieve_payment_intent(self, payment_intent_id: str) -> dict[str, Any] | None:
        """The payment intent now with its ``latest_charge`` expanded, or None."""


class StripeClientGateway:
    """The gateway over the official SDK. Idempotency keys go to Stripe as the
    ``Idempotency-Key`` header, so a retried request can never create a second object."""

    def __init__(self, client: stripe.StripeClient) -> None:
        self.client = client

    def create_customer(self, params: dict[str, Any], *, idempotency_key: str) -> str:
        try:
            customer = self.client.v1.customers.create(
                params=params,  # type: ignore[arg-type]
                options={"idempotency_key": idempotency_key},
            )
        except stripe.StripeError as exc:
            raise _translate(exc, "creating a customer") from exc
        return str(customer.id)

    def create_checkout_session(self, params: dict[str, Any], *,
                                idempotency_key: str) -> GatewaySession:
        try:
            session = self.client.v1.checkout.sessions.create(
                params=params,  # type: ignore[arg-type]
                options={"idempotency_key": idempotency_key},
            )
        except stripe.StripeError as exc:
            raise _translate(exc, "creating a checkout session") from exc
        url = session.url
        if not session.id or not url:
            raise PaymentProviderError("Stripe returned a checkout session without an id or url")
        return GatewaySession(str(session.id), str(url))

    # Reads for ``licenzy-embed doctor``; checkout never needs them, so they are not part of
    # the :class:`StripeGateway` Protocol the simulator implements.
    # A restricted key may lack the permission for them: that raises ``NotPermitted``.
    def retrieve_price(self, price_id: str) -> stripe.Price | None:
        """The Price, or None when the key's mode has no such price. A price of the other
        mode raises ``ModeMismatch``; any other failure ``PaymentProviderError``."""
        try:
            return self.client.v1.prices.retrieve(price_id)
        except stripe.PermissionError as exc:
            raise NotPermitted(f"the key may not read prices: {_message(exc)}") from exc
        except stripe.StripeError as exc:
            if exc.http_status == 404 and not _names_other_mode(_message(exc)):
                return None
            raise _translate(exc, f"reading price {price_id}") from exc

    def list_webhook_endpoints(self) -> list[stripe.WebhookEndpoint]:
        """Every webhook endpoint of the key's mode."""
        try:
            page = self.client.v1.webhook_endpoints.list(params={"limit": 100})
            return list(page.auto_paging_iter())
        except stripe.PermissionError as exc:
            raise NotPermitted(f"the key may not read webhook endpoints: {_message(exc)}"
                               ) from exc
        except stripe.StripeError as exc:
            raise _translate(exc, "listing webhook endpoints") from exc


    # Reads for ``reconcile`` (:class:`StripeHistory`).
    def list_events(self, *, types: Iterable[str], created_gte: int) -> list[dict[str, Any]]:
        params = {"types": sorted(types), "created": {"gte": created_gte}, "limit": 100}
        try:
            page = self.client.v1.events.list(params=params)  # type: ignore[arg-type]
            return [_plain(event) for event in page.auto_paging_iter()]
        except stripe.PermissionError as exc:
            raise NotPermitted(f"the key may not read events: {_message(exc)}") from exc
        except stripe.StripeError as exc:
            raise _translate(exc, "listing events") from exc

    def retrieve_subscription(self, subscription_id: str) -> dict[str, Any] | None:
        try:
            return _plain(self.client.v1.subscriptions.retrieve(subscription_id))
        except stripe.StripeError as exc:
            _raise_unless_missing(exc, f"reading subscription {subscription_id}")
            return None

    def retrieve_payment_intent(self, payment_intent_id: str) -> dict[str, Any] | None:
        try:
            return _plain(self.client.v1.payment_intents.retrieve(
                payment_intent_id, params={"expand": ["latest_charge"]}))
        except stripe.StripeError as exc:
            _raise_unless_missing(exc, f"reading payment intent {payment_intent_id}")
            return None


def _plain(obj: stripe.StripeObject) -> dict[str, Any]:
    """The object as the JSON Stripe sent (what a webhook body holds)."""
    plain: dict[str, Any] = json.loads(json.dumps(obj.to_dict(for_json=True)))
    return plain


def _raise_unless_missing(exc: stripe.StripeError, doing: str) -> None:
    """Return for "no such object" in the key's mode; raise for any other failure."""
    if isinstance(exc, stripe.PermissionError):
        raise NotPermitted(f"the key may not make this read ({doing}): {_message(exc)}"
                           ) from exc
    if exc.http_status == 404 and not _names_other_mode(_message(exc)):
        return None
    raise _translate(exc, doing) from exc


def _translate(exc: stripe.StripeError, doing: str) -> Exception:
    """Turn an SDK error into ours. The message is Stripe's own user-facing text, which names
    the parameter at fault but never a key or a card number."""
    message = _message(exc)
    if _names_other_mode(message):
        return ModeMismatch(f"Stripe refused {doing}: {message}")
    logger.warning("licenzy-embed: Stripe refused %s: %s", doing, message)
    return PaymentProviderError(f"Stripe refused {doing}: {message}")


def _message(exc: stripe.StripeError) -> str:
    return exc.user_message or str(exc) or exc.__class__.__name__


def _names_other_mode(message: str) -> bool:
    """Stripe's "No such …; a similar object exists in live mode, but a test mode key…"."""
    return "similar object exists in" in message and ("live mode" in message or
                                                       "test mode" in message)
