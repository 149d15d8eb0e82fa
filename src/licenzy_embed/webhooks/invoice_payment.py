"""``invoice_payment.paid``: the payment intent that paid an invoice — the only place current
API versions name it. Linked to the invoice's subscription as its current payment (ordered by
this event): here when the invoice event came first, else by the invoice event."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from . import keys
from .context import Context
from .event import Order
from .fields import as_dict, stored_id
from .ordering import current_payment


@dataclass(frozen=True)
class InvoicePayment:
    invoice: str | None
    payment_intent: str | None


def read(obj: dict[str, Any]) -> InvoicePayment:
    return InvoicePayment(
        invoice=stored_id(obj.get("invoice"), "invoice"),
        payment_intent=stored_id(as_dict(obj.get("payment")).get("payment_intent"),
                                 "payment intent"))


def paid(ctx: Context, payment: InvoicePayment) -> None:
    invoice, payment_intent = payment.invoice, payment.payment_intent
    if invoice is None or payment_intent is None:
        ctx.note("not an invoice paid by a payment intent")
        return
    ctx.lock(invoice)
    ctx.lock(payment_intent)
    mark = ctx.order_of(keys.invoice_payment(invoice))
    if mark is None or ctx.ev.order > mark:
        ctx.advance(keys.invoice_payment(invoice), ctx.ev.order)
        ctx.link(keys.paid_by(invoice), payment_intent)
    named, order = payment_of(ctx, invoice)
    subscription = ctx.linked(keys.invoice_subscription(invoice))
    target = None if subscription is None else ctx.target(subscription, lambda: None)
    if target is None or named is None:
        ctx.note("no subscription of this app is known for the invoice yet; the payment "
                 "is linked when its invoice event arrives")
        return
    current_payment(ctx, target, named, order)


def payment_of(ctx: Context, invoice: str) -> tuple[str | None, Order]:
    """The payment intent an invoice_payment.paid named for the invoice, and that event's
    order (None, and the current event's order, when it has not arrived)."""
    order = ctx.order_of(keys.invoice_payment(invoice))
    named = ctx.linked(keys.paid_by(invoice))
    if order is None or named is None:
        return None, ctx.ev.order
    return named, order
