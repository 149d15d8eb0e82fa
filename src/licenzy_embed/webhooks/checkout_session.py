"""``checkout.session.*``: a Checkout Session paid (or not), and its attempt settled.

A payment-mode session is the purchase of a pack or pass, keyed by its payment intent. A
subscription-mode session only says provisionally what the subscription's status is (see
:func:`~.ordering.provisional_status`); the subscription and invoice events decide it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..catalog import Product
from ..entitlement import FAILED, PENDING, PURCHASE_ACTIVE
from ..events import purchase_finalized
from ..records import CheckoutAttempt
from .context import INCOMPLETE, Context
from .fields import as_list, integer, metadata, price_ids, stored_id
from .ordering import apply_payment_facts, claim_status, provisional_status


@dataclass(frozen=True)
class Session:
    id: str | None
    mode: Any
    payment_status: Any
    customer: str | None
    subscription: str | None
    payment_intent: str | None
    metadata: dict[str, Any]
    client_reference_id: Any
    line_items: list[tuple[list[str], int | None]]  # (prices, quantity) when expanded

    @property
    def line_prices(self) -> list[str]:
        return [p for prices, _ in self.line_items for p in prices]

    def quantity(self, product: Product) -> int:
        """How many of the product were bought: from the line items when the payload carries
        them (expanded), else 1 — sessions created by this library always sell one."""
        for prices, quantity in self.line_items:
            if product.price in prices and quantity is not None and 0 < quantity <= 10**6:
                return quantity
        return 1


@dataclass(frozen=True)
class Claims:
    """What one kind of session event says: the subscription's provisional status, the
    one-off purchase's status, and whether the attempt is finalized (paid)."""

    subscription: str
    one_off: str
    finalized: bool
    fails_attempt: bool = False


def read(obj: dict[str, Any]) -> Session:
    return Session(
        id=stored_id(obj.get("id"), "checkout session"), mode=obj.get("mode"),
        payment_status=obj.get("payment_status"),
        customer=stored_id(obj.get("customer"), "customer"),
        subscription=stored_id(obj.get("subscription"), "subscription"),
        payment_intent=stored_id(obj.get("payment_intent"), "payment intent"),
        metadata=metadata(obj), client_reference_id=obj.get("client_reference_id"),
        line_items=[(price_ids(item), integer(item.get("quantity")))
                    for item in as_list(obj.get("line_items"))],
    )


def completed(ctx: Context, session: Session) -> None:
    paid = session.payment_status in ("paid", "no_payment_required")
    status = ("trialing" if session.payment_status == "no_payment_required"
              else "active" if paid else INCOMPLETE)
    apply(ctx, session, Claims(status, PURCHASE_ACTIVE if paid else PENDING, paid))


def async_payment_succeeded(ctx: Context, session: Session) -> None:
    apply(ctx, session, Claims("active", PURCHASE_ACTIVE, True))


def async_payment_failed(ctx: Context, session: Session) -> None:
    apply(ctx, session, Claims(INCOMPLETE, FAILED, False, fails_attempt=True))


def expired(ctx: Context, session: Session) -> None:
    if session.id is None:
        ctx.unmatched("the checkout session has no id")
        return
    attempt = ctx.tx.get_attempt_by_session(session.id)
    ctx.settle_attempt(attempt, "failed")
    if attempt is None:
        ctx.note("no checkout attempt of this app has this session")


def apply(ctx: Context, session: Session, claims: Claims) -> None:
    if session.id is None:
        ctx.unmatched("the checkout session has no id")
        return
    attempt = ctx.tx.get_attempt_by_session(session.id)
    subject = ctx.subject_from(
        attempt.subject_ref if attempt else None, session.metadata.get("subject_ref"),
        session.client_reference_id, customer=session.customer)
    product = ctx.product_from(session.line_prices, attempt.product_code if attempt else None,
                               session.metadata.get("product_code"))
    if claims.fails_attempt:
        ctx.settle_attempt(attempt, "failed")
    if subject is None or product is None:
        ctx.unmatched("no subject matched the checkout session" if subject is None
                      else "no catalog product matched the checkout session")
        return
    if (session.mode == "subscription") != (product.kind == "subscription") or (
        session.mode == "subscription" and session.subscription is None
    ):
        ctx.unmatched(f"a {session.mode}-mode session cannot buy {product.code} "
                      f"({product.kind})")
        return
    purchase(ctx, session, claims, attempt, subject, product)


def purchase(ctx: Context, session: Session, claims: Claims, attempt: CheckoutAttempt | None,
             subject: str, product: Product) -> None:
    """The purchase the session bought: created when this is the first event about it."""
    assert session.id is not None
    ctx.link_customer(subject, session.customer)
    quantity = session.quantity(product)
    subscription, payment_intent = session.subscription, session.payment_intent
    if not subscription and payment_intent:
        ctx.lock(payment_intent)  # before the purchase: its refunds serialise on it too
    key = subscription if subscription else (payment_intent or session.id)
    target = ctx.target(key, lambda: ctx.new_record(
        key, subject, product, customer=session.customer, subscription=subscription,
        session=session.id, payment_intent=None if subscription else payment_intent,
        quantity=quantity))
    assert target is not None
    if target.record.stripe_checkout_session_id is None:
        ctx.change(target, None, "checkout session", stripe_checkout_session_id=session.id)
    if subscription:
        provisional_status(ctx, target, claims.subscription)
    else:
        claim_status(ctx, target, claims.one_off)
        apply_payment_facts(ctx, target)
    # Announced once per purchase: when its attempt turns finalized (or, for a session created
    # outside this app, with the one event that says it was paid).
    if claims.finalized and (ctx.settle_attempt(attempt, "finalized") or attempt is None):
        ctx.announce(purchase_finalized(
            attempt_id=attempt.id if attempt else None, session_id=session.id,
            subject_ref=subject, product_code=product.code, view=ctx.view(target)))
