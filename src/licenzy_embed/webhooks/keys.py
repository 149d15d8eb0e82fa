"""Typed builders for every watermark key the webhook rules keep, one per kind of row.

A watermark row is ``(key, created, value)``; what ``value`` (the store's ``event_id`` column)
holds depends on the kind of key, so each kind has its own type and the rules read a row only
through the accessor of its kind (``Context.order_of``, ``linked``, ``grace_of``…):

* :class:`OrderKey` — the newest ``(created, event id)`` applied to one part of one object;
* :class:`LinkKey` — an id another object named (the subscription of an invoice, the payment
  intent that paid it); ``value`` is that id, never an event id;
* :class:`PastDueKey` — the earliest ``created`` of the claims that a billing period went past
  due; :class:`GraceKey` — when the current grace started and which period it is about
  (``value`` is that period's :class:`PastDueKey`);
* :class:`LockKey` — a row whose only use is its row lock.

Keys are ``<stripe id>#<part>``; the longest part fixes how long a Stripe id may be
(:data:`MAX_STRIPE_ID`) so that every key fits the store's identifier column.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

COLUMN = 255  # the stores' identifier columns (stores/_sql_schema.py: REF)
_LONGEST_PART = len("#past_due@") + len("253402300799")  # a period start up to year 9999
MAX_STRIPE_ID = COLUMN - _LONGEST_PART

Fact = Literal["refunded", "dispute_open", "dispute_won", "dispute_lost"]
FACTS: tuple[Fact, ...] = ("refunded", "dispute_open", "dispute_won", "dispute_lost")


@dataclass(frozen=True)
class OrderKey:
    key: str


@dataclass(frozen=True)
class LinkKey:
    key: str


@dataclass(frozen=True)
class PastDueKey:
    key: str


@dataclass(frozen=True)
class GraceKey:
    key: str


@dataclass(frozen=True)
class LockKey:
    key: str


def status(purchase: str) -> OrderKey:
    """The newest status claim of a purchase (subscription or one-off payment)."""
    return OrderKey(f"{purchase}#status")


def plan(subscription: str) -> OrderKey:
    """The newest subscription snapshot that set the plan (price and quantity)."""
    return OrderKey(f"{subscription}#plan")


def current_payment(subscription: str) -> OrderKey:
    """The event that named the subscription's current payment (its newest paid invoice)."""
    return OrderKey(f"{subscription}#payment")


def fact(payment_intent: str, name: Fact) -> OrderKey:
    """A refund or dispute fact about one payment intent."""
    return OrderKey(f"{payment_intent}#{name}")


def invoice_paid(invoice: str) -> OrderKey:
    """Whether (and by which event) an invoice's payment was first announced."""
    return OrderKey(f"{invoice}#paid")


def invoice_payment(invoice: str) -> OrderKey:
    """The newest ``invoice_payment.paid`` of an invoice (its intent: :func:`paid_by`)."""
    return OrderKey(f"{invoice}#payment")


def paid_by(invoice: str) -> LinkKey:
    """The payment intent the newest ``invoice_payment.paid`` named for an invoice."""
    return LinkKey(f"{invoice}#payment_intent")


def invoice_subscription(invoice: str) -> LinkKey:
    """The subscription an invoice belongs to."""
    return LinkKey(f"{invoice}#subscription")


def past_due(purchase: str, period: int | None) -> PastDueKey:
    return PastDueKey(f"{purchase}#past_due@{'?' if period is None else period}")


def grace(purchase: str) -> GraceKey:
    return GraceKey(f"{purchase}#grace")


def lock(stripe_id: str) -> LockKey:
    return LockKey(f"{stripe_id}#lock")
