"""``invoice.paid``, ``invoice.payment_succeeded``, ``invoice.payment_failed``: a subscription
invoice paid (the period's units, the current payment) or failed (past due).

Which subscription an invoice belongs to is remembered for its ``invoice_payment.paid``
(current API versions name the payment intent only there), under the invoice's lock that
event takes too: whichever of the two arrives second links the payment.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..entitlement import PAST_DUE
from ..events import invoice_payment
from . import invoice_payment as payment_event
from . import keys
from .context import INCOMPLETE, Context, Target
from .fields import as_dict, as_list, integer, price_ids, stored_id
from .ordering import claim_status, current_payment, grant_period, see_period
from .subscription import subscription_target


@dataclass(frozen=True)
class Invoice:
    id: str | None
    subscription: str | None
    subscription_metadata: dict[str, Any]
    customer: str | None
    prices: list[str]
    period_start: int | None
    period_end: int | None
    payment_intent: str | None
    billing_reason: str | None
    amount_paid: int | None
    created: int | None


def read(obj: dict[str, Any]) -> Invoice:
    details = as_dict(as_dict(obj.get("parent")).get("subscription_details"))
    subscription = (stored_id(details.get("subscription"), "subscription")
                    or stored_id(obj.get("subscription"), "subscription"))
    sub_metadata = as_dict(details.get("metadata")) or as_dict(
        as_dict(obj.get("subscription_details")).get("metadata"))
    lines = as_list(obj.get("lines"))
    sub_lines = [line for line in lines if _is_subscription_line(line)]
    subscription = subscription or next(
        (s for s in map(_line_subscription, sub_lines) if s), None)
    # The billing period comes only from a line charging for a period: a proration line (a
    # plan or quantity change mid-period) covers the rest of the current one, and must not
    # look like a new period to grant units for. No such line: no period.
    period_lines = [line for line in sub_lines if not _is_proration(line)]
    period = as_dict((period_lines or [{}])[0].get("period"))
    payment_intent = stored_id(obj.get("payment_intent"), "payment intent")
    for payment in as_list(obj.get("payments")):  # current versions, when the list is included
        payment_intent = payment_intent or stored_id(
            as_dict(payment.get("payment")).get("payment_intent"), "payment intent")
    reason = obj.get("billing_reason")
    return Invoice(
        id=stored_id(obj.get("id"), "invoice"), subscription=subscription,
        subscription_metadata=sub_metadata,
        customer=stored_id(obj.get("customer"), "customer"),
        prices=[p for line in (sub_lines or lines) for p in price_ids(line)],
        period_start=integer(period.get("start")), period_end=integer(period.get("end")),
        payment_intent=payment_intent,
        billing_reason=reason if isinstance(reason, str) else None,
        amount_paid=integer(obj.get("amount_paid")), created=integer(obj.get("created")),
    )


def _is_subscription_line(line: dict[str, Any]) -> bool:
    # current versions: parent.type; older ones: type "subscription"
    return (as_dict(line.get("parent")).get("type") == "subscription_item_details"
            or line.get("type") == "subscription")


def _is_proration(line: dict[str, Any]) -> bool:
    # current versions: parent.subscription_item_details.proration; older ones: proration
    details = as_dict(as_dict(line.get("parent")).get("subscription_item_details"))
    return details.get("proration") is True or line.get("proration") is True


def _line_subscription(line: dict[str, Any]) -> str | None:
    details = as_dict(as_dict(line.get("parent")).get("subscription_item_details"))
    return (stored_id(details.get("subscription"), "subscription")
            or stored_id(line.get("subscription"), "subscription"))


def paid(ctx: Context, invoice: Invoice) -> None:
    """The subscription is active, the period's units are granted once, and this invoice's
    payment becomes the one refunds and disputes are judged on."""
    found = _subscription_of(ctx, invoice, paying=True)
    if found is None:
        return
    target, payment_intent, payment_order = found
    assert invoice.id is not None and invoice.subscription is not None
    trial_start = invoice.amount_paid == 0 and invoice.billing_reason == "subscription_create"
    if not trial_start:
        claim_status(ctx, target, "active")
    see_period(ctx, target, invoice.period_end)
    grant_period(ctx, target, invoice.period_start)
    if payment_intent is not None:
        current_payment(ctx, target, payment_intent, payment_order)
    elif not invoice.amount_paid:
        current_payment(ctx, target, None, ctx.ev.order)  # nothing was paid, no refund
    # else: its invoice_payment.paid names the payment and links it
    first_copy = ctx.order_of(keys.invoice_paid(invoice.id)) is None
    ctx.advance(keys.invoice_paid(invoice.id), ctx.ev.order)
    if first_copy:  # invoice.paid and invoice.payment_succeeded describe one payment
        ctx.announce(invoice_payment(
            succeeded=True, invoice_id=invoice.id, subscription_id=invoice.subscription,
            subject_ref=target.record.subject_ref, view=ctx.view(target)))


def payment_failed(ctx: Context, invoice: Invoice) -> None:
    """``past_due`` with grace (the first invoice: ``incomplete``)."""
    found = _subscription_of(ctx, invoice, paying=False)
    if found is None:
        return
    target = found[0]
    assert invoice.id is not None and invoice.subscription is not None
    period = invoice.period_start if invoice.period_start is not None else invoice.created
    status = INCOMPLETE if invoice.billing_reason == "subscription_create" else PAST_DUE
    claim_status(ctx, target, status, period=period)
    ctx.announce(invoice_payment(
        succeeded=False, invoice_id=invoice.id, subscription_id=invoice.subscription,
        subject_ref=target.record.subject_ref, view=ctx.view(target)))


def _subscription_of(ctx: Context, invoice: Invoice, *, paying: bool
                     ) -> tuple[Target, str | None, tuple[int, str]] | None:
    """The invoice's subscription entitlement (locked, and linked to the invoice), with the
    payment intent that paid the invoice when known, and the order of the event naming it."""
    if invoice.id is None or invoice.subscription is None:
        ctx.note("not a subscription invoice")
        return None
    ctx.lock(invoice.id)
    if ctx.linked(keys.invoice_subscription(invoice.id)) is None:
        ctx.link(keys.invoice_subscription(invoice.id), invoice.subscription)
    payment_intent, payment_order = invoice.payment_intent, ctx.ev.order
    if payment_intent is None:
        payment_intent, payment_order = payment_event.payment_of(ctx, invoice.id)
    if paying and payment_intent is not None:
        ctx.lock(payment_intent)
    meta = invoice.subscription_metadata
    product = ctx.product_from(invoice.prices, meta.get("product_code"))
    target = subscription_target(ctx, invoice.subscription, invoice.customer, meta, product, 1)
    return None if target is None else (target, payment_intent, payment_order)
