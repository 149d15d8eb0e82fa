"""Checkout: turning "subject wants product" into a Stripe Checkout Session, exactly once per
idempotency key.

Creating a session grants nothing (SPEC §1): it stores a ``CheckoutAttempt`` in state
``created`` and hands back Stripe's URL. Only the webhook for the completed, paid session turns
the attempt ``finalized`` and grants the entitlement.

Exactly once: a repeated call with the same key and the same arguments answers the stored
attempt without asking Stripe again; the same key with other arguments is an
``IdempotencyConflict``. The key also travels to Stripe as its ``Idempotency-Key``, so two
concurrent first calls (or a retry after a crash between Stripe's answer and our commit) get the
same session back from Stripe instead of two. For the same reason the session parameters hold
nothing random — a retry must send byte-for-byte the same request.

Stripe is never called inside a store transaction: a slow network must not hold database locks.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from . import validation
from ._ids import new_id
from .catalog import Catalog, Product
from .clock import iso
from .errors import IdempotencyConflict, InvalidRequest
from .gateway import StripeGateway
from .records import CheckoutAttempt, CustomerLink
from .stores.base import Store, StoreTransaction
from .unit_of_work import UnitOfWork

# Stripe limits: client_reference_id holds at most 200 characters, a metadata value 500.
_CLIENT_REFERENCE_MAX = 200
_URL_MAX = 2048


@dataclass(frozen=True)
class CheckoutSession:
    """A checkout attempt as the app sees it: send the browser to ``checkout_url``."""

    attempt_id: str
    status: str  # created | finalized | failed
    checkout_url: str
    mode: str  # test | live
    subject_ref: str
    product_code: str
    session_id: str  # Stripe's cs_… id
    created_at: datetime
    replayed: bool = False  # answered from a stored attempt, without calling Stripe

    @classmethod
    def from_attempt(cls, attempt: CheckoutAttempt, *, replayed: bool) -> CheckoutSession:
        return cls(
            attempt_id=attempt.id,
            status=attempt.status,
            checkout_url=attempt.checkout_url,
            mode=attempt.mode,
            subject_ref=attempt.subject_ref,
            product_code=attempt.product_code,
            session_id=attempt.stripe_session_id,
            created_at=attempt.created_at,
            replayed=replayed,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "attempt_id": self.attempt_id,
            "status": self.status,
            "checkout_url": self.checkout_url,
            "mode": self.mode,
            "subject_ref": self.subject_ref,
            "product_code": self.product_code,
            "session_id": self.session_id,
            "created_at": iso(self.created_at),
        }


class CheckoutService:
    """``Licenzy.create_checkout_session``. Its collaborators come in explicitly: the unit of
    work its writes run in (which re-runs the loser of a race for a unique key, so the loser
    answers what the winner stored), the store for plain reads, the catalog, the clock, and
    the gateway to Stripe — a callable, because the gateway is built lazily and the testing
    kit may attach its simulator after construction."""

    def __init__(self, *, unit_of_work: UnitOfWork, store: Store, mode: str, catalog: Catalog,
                 now: Callable[[], datetime], gateway: Callable[[], StripeGateway],
                 success_url: str | None, cancel_url: str | None) -> None:
        self.unit_of_work = unit_of_work
        self.store = store
        self.mode = mode
        self.catalog = catalog
        self.now = now
        self.gateway = gateway
        self.success_url = success_url
        self.cancel_url = cancel_url

    def create(self, subject_ref: str, product_code: str, *, idempotency_key: str,
               success_url: str | None, cancel_url: str | None) -> CheckoutSession:
        subject_ref = validation.subject_ref(subject_ref)
        product = self.catalog.get(product_code)
        key = validation.idempotency_key(idempotency_key)
        success = redirect_url(
            success_url if success_url is not None else self.success_url, "success_url")
        cancel = redirect_url(
            cancel_url if cancel_url is not None else self.cancel_url, "cancel_url")
        fingerprint = _fingerprint(subject_ref, product.code, success, cancel)

        with self.store.transaction(self.mode) as tx:
            existing = tx.get_attempt_by_key(key)
            link = tx.get_customer(subject_ref)
        if existing is not None:
            return _replay(existing, fingerprint)

        customer_id = link.stripe_customer_id if link else self._create_customer(subject_ref)
        params = session_params(subject_ref, product, customer_id, success, cancel)
        created = self.gateway().create_checkout_session(params, idempotency_key=key)
        now = self.now()
        attempt = CheckoutAttempt(
            id=new_id("att"), mode=self.mode, subject_ref=subject_ref,
            product_code=product.code, idempotency_key=key, fingerprint=fingerprint,
            status="created", stripe_session_id=created.id, checkout_url=created.url,
            created_at=now, updated_at=now,
        )

        def store_attempt(tx: StoreTransaction) -> tuple[CheckoutAttempt | None, list[Any]]:
            # A concurrent first call with the same key may have committed since our read
            # (its insert makes ours a DuplicateKey, and the re-run lands here).
            winner = tx.get_attempt_by_key(key)
            if winner is not None:
                return winner, []
            tx.insert_attempt(attempt)
            return None, []

        winner = self.unit_of_work.run(store_attempt)
        if winner is not None:
            return _replay(winner, fingerprint)
        return CheckoutSession.from_attempt(attempt, replayed=False)

    def _create_customer(self, subject_ref: str) -> str:
        """One Stripe customer per subject and mode. The Stripe idempotency key is derived from
        the subject, so two processes racing to create it get the same customer from Stripe,
        and the store's unique key settles which link is written."""
        customer_id = self.gateway().create_customer(
            {"metadata": {"subject_ref": subject_ref}},
            idempotency_key=f"licenzy-customer-{self.mode}-{_digest(subject_ref)}",
        )
        link = CustomerLink(self.mode, subject_ref, customer_id, self.now())

        def save(tx: StoreTransaction) -> tuple[str, list[Any]]:
            current = tx.get_customer(subject_ref)
            if current is not None:
                return current.stripe_customer_id, []
            tx.insert_customer(link)
            return customer_id, []

        return self.unit_of_work.run(save)


def session_params(subject_ref: str, product: Product, customer_id: str,
                   success_url: str | None, cancel_url: str | None) -> dict[str, Any]:
    """The ``POST /v1/checkout/sessions`` parameters. ``subject_ref`` and ``product_code`` go
    on the session *and* on what outlives it (the subscription or the payment intent), so
    every later event can be matched even if the customer link were lost."""
    metadata = {"subject_ref": subject_ref, "product_code": product.code}
    params: dict[str, Any] = {
        "mode": "subscription" if product.kind == "subscription" else "payment",
        "line_items": [{"price": product.price, "quantity": 1}],
        "customer": customer_id,
        "metadata": dict(metadata),
    }
    if len(subject_ref) <= _CLIENT_REFERENCE_MAX:
        params["client_reference_id"] = subject_ref
    if product.kind == "subscription":
        params["subscription_data"] = {"metadata": dict(metadata)}
    else:
        params["payment_intent_data"] = {"metadata": dict(metadata)}
    if success_url is not None:
        params["success_url"] = success_url
    if cancel_url is not None:
        params["cancel_url"] = cancel_url
    return params


def _replay(attempt: CheckoutAttempt, fingerprint: str) -> CheckoutSession:
    if attempt.fingerprint != fingerprint:
        raise IdempotencyConflict(
            f"idempotency key {attempt.idempotency_key!r} was used for another checkout "
            f"({attempt.product_code} for {attempt.subject_ref!r})"
        )
    return CheckoutSession.from_attempt(attempt, replayed=True)


def redirect_url(value: Any, name: str) -> str | None:
    """A success/cancel URL as Stripe accepts it (absolute http(s)), or ``InvalidRequest``."""
    if value is None:
        return None
    if not isinstance(value, str) or not value.startswith(("https://", "http://")):
        raise InvalidRequest(f"{name} must be an http(s) URL")
    if len(value) > _URL_MAX or any(ord(ch) < 33 or ord(ch) == 127 for ch in value):
        raise InvalidRequest(f"{name} must be a URL of at most {_URL_MAX} characters "
                             "without spaces or control characters")
    return value


def _fingerprint(*parts: str | None) -> str:
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:40]
