"""The one table of the event types this library handles: type → (typed reader, handler).

The handled set is the table's keys; a type missing from it is answered ``ignored``, never
handled by a branch meant for another. The reader runs when the event is parsed, before any
transaction, so a payload the library could not store is refused (``InvalidPayload``) with
nothing written; the handler then runs inside the event's unit of work.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Generic, TypeVar

from . import checkout_session, invoice, invoice_payment, payment, subscription
from .context import Context

T = TypeVar("T")
Apply = Callable[[Context], None]


@dataclass(frozen=True)
class Handler(Generic[T]):
    read: Callable[[dict[str, Any]], T]
    apply: Callable[[Context, T], None]

    def prepare(self, obj: dict[str, Any]) -> Apply:
        """Read ``obj`` now (raising ``InvalidPayload``); apply it later."""
        typed = self.read(obj)
        return lambda ctx: self.apply(ctx, typed)


def _table() -> Mapping[str, Handler[Any]]:
    session = checkout_session.read
    sub = subscription.read
    return MappingProxyType({
        "checkout.session.completed": Handler(session, checkout_session.completed),
        "checkout.session.async_payment_succeeded": Handler(
            session, checkout_session.async_payment_succeeded),
        "checkout.session.async_payment_failed": Handler(
            session, checkout_session.async_payment_failed),
        "checkout.session.expired": Handler(session, checkout_session.expired),
        "customer.subscription.created": Handler(sub, subscription.changed),
        "customer.subscription.updated": Handler(sub, subscription.changed),
        "customer.subscription.paused": Handler(sub, subscription.changed),
        "customer.subscription.resumed": Handler(sub, subscription.changed),
        "customer.subscription.deleted": Handler(sub, subscription.deleted),
        "invoice.paid": Handler(invoice.read, invoice.paid),
        "invoice.payment_succeeded": Handler(invoice.read, invoice.paid),
        "invoice.payment_failed": Handler(invoice.read, invoice.payment_failed),
        # Current API versions name an invoice's payment intent only here.
        "invoice_payment.paid": Handler(invoice_payment.read, invoice_payment.paid),
        "charge.refunded": Handler(payment.read_charge, payment.charge_refunded),
        "refund.created": Handler(payment.read_refund, payment.refund_changed),
        "refund.updated": Handler(payment.read_refund, payment.refund_changed),
        "charge.dispute.created": Handler(payment.read_dispute, payment.dispute_created),
        "charge.dispute.closed": Handler(payment.read_dispute, payment.dispute_closed),
    })


HANDLERS: Mapping[str, Handler[Any]] = _table()
HANDLED_EVENTS: frozenset[str] = frozenset(HANDLERS)
